"""Astro: not an Astro project, and no file says it is (issue 22 part 4: "for real or not at all").

Read against astro-cli's own source (github.com/astronomer/astro-cli, commit ed93cc59, 2026-08-13):

* ``config/config.go`` ``IsProjectDir``: a project is a folder holding ``.astro/config.yaml``;
  ``cmd/utils/utils.go`` ``EnsureProjectDir`` makes ``astro dev`` refuse any other folder.
* ``pkg/airflowrt/include/airflow3/dockerfile`` is one line, ``FROM <runtime image>:<tag>``, with the image
  from ``airflow/constants.go`` (``astrocrpublic.azurecr.io/runtime``, ``quay.io/astronomer/astro-runtime``);
  the runtime image itself installs ``packages.txt`` and ``requirements.txt`` and copies the project to
  ``/usr/local/airflow`` (``airflow/include/airflow3/composeyml.go.tmpl`` mounts dags/, plugins/,
  include/ and tests/ there).
* ``airflow/docker.go`` ``Start`` appends ``astro-run-dag`` to ``./requirements.txt`` before each build, and
  ``settings/settings.go`` reads ``airflow_settings.yaml`` with viper and posts the values as they are:
  no ``${...}`` is expanded.

Our ``requirements.txt`` is the lock of the whole environment, Airflow 3.3.2 included (``make install``
and the image install it exactly): on Astro Runtime it would reinstall Airflow over the runtime's own
build, and ``astro dev start`` would edit it. Our settings use ``${...}``. Making the project an Astro
project therefore needs a runtime-only requirements file split from the lock (the lock belongs to the
SPEED-CORE work), so it is not one, and says so in docs/deploying.md. These tests keep it that way:
no half project (``.astro/`` without the rest) and no claim in the files that ship or run.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: airflow/constants.go: QuayBaseImageName/AstroRuntimeAirflow2ImageName and AstroImageRegistryBaseImageName.
ASTRO_IMAGES = ("quay.io/astronomer/", "astrocrpublic.azurecr.io/")
#: Files that ship in the image or run a deployment (docs/deploying.md explains the decision, README is
#: the DOCS engineer's).
SHIPPED = ("Dockerfile", "docker-compose.yaml", "Makefile", "pyproject.toml", ".dockerignore", "deploy", "dags",
           "include", "plugins")
_ASTRO = re.compile(r"\bastro\b", re.IGNORECASE)


def shipped_files() -> list[Path]:
    files: list[Path] = []
    for name in SHIPPED:
        path = REPO / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [p for p in candidates if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix not in (".png", ".pyc", ".sqlite", ".db")]
    return files


def test_it_is_not_an_astro_project_and_not_half_of_one():
    assert not (REPO / ".astro").exists()  # config/config.go IsProjectDir: astro dev refuses the folder at once
    froms = [line.split()[1] for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("FROM ")]
    assert froms == ["apache/airflow:3.3.2-python3.11"]
    assert not froms[0].startswith(ASTRO_IMAGES)
    # The reason: the lock pins Airflow itself, which Astro Runtime's requirements.txt must not.
    assert re.search(r"^apache-airflow==3\.3\.2$", (REPO / "requirements.txt").read_text(), re.MULTILINE)


def test_no_shipped_file_claims_astro():
    files = shipped_files()
    assert len(files) > 50 and REPO / "include" / "airflow_settings_loader.py" in files
    claims = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in files
              for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if _ASTRO.search(line)]
    assert claims == []
