# Two commands do everything: `make run` (the demo, end to end) and `make test`.
# Each installs what it needs: the virtualenv in .venv from the lock files, the
# local DynamoDB servers from package-lock.json, and the Airflow database.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATE := .state

export AIRFLOW_HOME := $(CURDIR)/$(STATE)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)/include

#: The DynamoDB server behind the PITR stand-in: ddblocal (AWS's DynamoDB Local, on Java) or dynalite
#: (Node). `make run`, `make local-aws`, `make airflow` and the tests use it; `make test` also runs
#: the integration and DAG tests against OTHER_BACKEND. Choose with `make test DYNAMODB_BACKEND=dynalite`.
DYNAMODB_BACKEND ?= ddblocal
OTHER_BACKEND := $(if $(filter dynalite,$(DYNAMODB_BACKEND)),ddblocal,dynalite)
export DYNAMODB_BACKEND
export LOCAL_DYNAMODB_BACKEND ?= $(DYNAMODB_BACKEND)

.PHONY: install test-packages celery-packages backend-packages run test test-fast lint docs local-aws stop bench bench-per-core bench-streams airflow airflow-celery clean

#: Debian packages `make test` needs (package:binary:what needs it); installed when missing.
#: Debian packages of the Celery stack (make airflow-celery, tests/e2e/test_celery_workers.py).
CELERY_PACKAGES := postgresql:/usr/lib/postgresql:include/local_celery.py redis-server:redis-server:include/local_celery.py
#: Java runs AWS's DynamoDB Local (include/local_aws.py): `make test` uses both backends, so always needs it.
JAVA_PACKAGE := openjdk-17-jre-headless:java:include/local_aws.py
TEST_PACKAGES := $(JAVA_PACKAGE) chromium:/usr/bin/chromium:tests/e2e/test_ui_trigger.py $(CELERY_PACKAGES)

install: $(VENV)/.installed $(VENV)/.package node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	uv venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	uv pip install --quiet --python $(PY) --compile-bytecode -r requirements.txt -r requirements-dev.txt
	touch $@

# The package itself, editable, so .venv/bin/dynamodb-backup works with no PYTHONPATH. Its
# dependencies and the build backend (setuptools) come from the lock files above: no download.
# Airflow does not need this: it imports the package from plugins/.
$(VENV)/.package: pyproject.toml $(VENV)/.installed
	uv pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(AIRFLOW_HOME)/airflow.db: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate >/dev/null
	touch $@

# Java only when the backend is DynamoDB Local (or for `make bench`, which measures both); where it
# cannot be installed, say how to choose dynalite.
NEEDS_JAVA := $(filter ddblocal,$(LOCAL_DYNAMODB_BACKEND) $(DYNAMODB_BACKEND))$(filter bench bench-streams,$(MAKECMDGOALS))
backend-packages:  ## install Java with apt-get when the DynamoDB backend is ddblocal and java is missing
	@if [[ -n "$(NEEDS_JAVA)" ]]; then \
		bash include/system_packages.sh "make $(or $(firstword $(MAKECMDGOALS)),backend-packages)" $(JAVA_PACKAGE) \
		|| { echo "or use the Node backend: make $(firstword $(MAKECMDGOALS)) DYNAMODB_BACKEND=dynalite" >&2; exit 1; }; fi

local-aws: backend-packages install  ## start DynamoDB Local (or dynalite), moto and the PITR stand-in (the DynamoDB endpoint) in the background; prints the exports
	@$(PY) include/local_aws.py start

airflow: backend-packages install  ## a real local Airflow (LocalExecutor) wired to local AWS; prints the UI address and login
	@$(PY) include/local_airflow.py start

celery-packages:  ## install CELERY_PACKAGES with apt-get when missing, or say in one line what to install
	@bash include/system_packages.sh "make airflow-celery" $(CELERY_PACKAGES)

airflow-celery: celery-packages backend-packages install  ## a distributed Airflow: Postgres, Redis, CeleryExecutor, two workers; prints the UI address and login
	@$(PY) include/local_celery.py start

stop:  ## stop everything `make local-aws` / `make airflow` / `make airflow-celery` started, by PID
	-@$(PY) include/local_celery.py stop
	-@$(PY) include/local_airflow.py stop
	@$(PY) include/local_aws.py stop

bench: backend-packages install  ## export/restore against the server's own ceiling, the boto3 floor, the provider operator and dynamodump (medians of 3); then the ceilings and ours on the other DynamoDB backend; then per core (bench-per-core)
	$(PY) bench/run.py --items 100000 --asof-items 20000 --backends $(DYNAMODB_BACKEND),$(OTHER_BACKEND)
	$(PY) -m bench.percore --scale $(BENCH_SCALE) --backends $(DYNAMODB_BACKEND),$(OTHER_BACKEND)

#: bench-per-core's items per shape: full (8 MB of small and wide items, 250 MB of large) or small (2.4 MB a shape, the quick form).
BENCH_SCALE ?= full

bench-per-core: backend-packages install  ## CPU per item and per MB of each contender's process tree, three item shapes, both backends, peers (medians of 3): docs/bench-per-core.json
	$(PY) -m bench.percore --scale $(BENCH_SCALE) --backends $(DYNAMODB_BACKEND),$(OTHER_BACKEND)

bench-streams: backend-packages install  ## a stream backup and a live replica under a sustained write workload, both stream backends: recovery point age and replica lag p50/p99, CPU per record, S3 requests per hour (medians of 3): docs/bench-streams.json
	$(PY) -m bench.streams --backends ddblocal,journal --configs fast,default --rounds 3

run: backend-packages install $(AIRFLOW_HOME)/airflow.db  ## the demo: seed, back up through Airflow, restore, verify
	@bash include/run_demo.sh

test-packages:  ## install TEST_PACKAGES with apt-get when missing, or say in one line what to install
	@bash include/system_packages.sh "make test" $(TEST_PACKAGES)

# The whole suite on DYNAMODB_BACKEND; the integration tests again on OTHER_BACKEND (where the two differ,
# the tests follow AWS's documented behaviour), less the slow ones, whose subject is our fault proxies,
# timeouts and settings loader rather than the DynamoDB server (keeps CI under 45 minutes); the end-to-end
# tests on DYNAMODB_BACKEND.
test: test-packages install  ## the whole suite against real local servers, the integration tests on both DynamoDB backends, then a real scheduler and browser
	$(VENV)/bin/pytest -n 2 --dist loadfile -m "not e2e"
	DYNAMODB_BACKEND=$(OTHER_BACKEND) $(VENV)/bin/pytest -n 2 --dist loadfile -m "not e2e and not slow" tests/integration
	$(VENV)/bin/pytest -m e2e tests/e2e

test-fast: backend-packages install  ## everything but the slow and end-to-end tests
	$(VENV)/bin/pytest -m "not slow and not e2e" -n 2 --dist loadfile

# The documentation site (mkdocs.yml, docs/): strict, so a broken link, a missing anchor or a page left
# out of the nav fails the build (no --quiet: it hides the warnings that --strict counts, and the build passes).
# Open site/index.html (git-ignored), or `.venv/bin/mkdocs serve`.
docs: $(VENV)/.installed  ## build the documentation site into site/ with mkdocs build --strict
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
	@echo "docs: built site/index.html"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy plugins/dynamodb_backup dags include
	$(VENV)/bin/hadolint Dockerfile

clean: stop
	rm -rf $(STATE)
