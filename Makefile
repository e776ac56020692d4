# Two commands do everything: `make run` (the demo, end to end) and `make test`.
# Each installs what it needs: the virtualenv in .venv from the lock files, the
# local DynamoDB server from package-lock.json, and the Airflow database.

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

.PHONY: install run test test-fast lint local-aws stop bench airflow clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	uv venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	uv pip install --quiet --python $(PY) --compile-bytecode -r requirements.txt -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(AIRFLOW_HOME)/airflow.db: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate >/dev/null
	touch $@

local-aws: install  ## start dynalite and moto in the background; prints the exports
	@$(PY) include/local_aws.py start

stop:  ## stop everything `make local-aws` / `make airflow` started, by PID
	@$(PY) include/local_aws.py stop

run: install $(AIRFLOW_HOME)/airflow.db  ## the demo: seed, back up through Airflow, restore, verify
	@bash include/run_demo.sh

test: install  ## the whole suite, against real local servers
	$(VENV)/bin/pytest -n 2 --dist loadfile

test-fast: install
	$(VENV)/bin/pytest -m "not slow" -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy plugins/dynamodb_backup dags include
	$(VENV)/bin/hadolint Dockerfile

clean: stop
	rm -rf $(STATE)
