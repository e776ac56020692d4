"""The package installs like a Python tool: ``pip install .`` gives the ``dynamodb-backup`` command.

``make install`` installs it into the virtualenv (editable), so the command runs with no PYTHONPATH;
the wheel holds the whole package and the console script, and needs no Airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["export", "ls", "show", "restore", "verify", "copy"]


def clean_env() -> dict[str, str]:
    """This environment less PYTHONPATH (pytest's own pythonpath setting changes only sys.path)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def console_script() -> Path:
    script = Path(sys.executable).parent / "dynamodb-backup"
    assert script.exists(), f"{script} is missing: run `make install` (it installs the package editable)"
    return script


@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_the_installed_command_runs_without_pythonpath(how, tmp_path):
    argv = [str(console_script())] if how == "console script" else [sys.executable, "-m", "dynamodb_backup"]
    run = subprocess.run([*argv, "--help"], env=clean_env(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    prog = "dynamodb-backup" if how == "console script" else "python -m dynamodb_backup"
    assert run.stdout.startswith(f"usage: {prog} "), run.stdout
    listed = run.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert set(COMMANDS) <= set(listed), run.stdout


def test_the_installed_command_reports_bad_usage(tmp_path):
    run = subprocess.run([str(console_script()), "ls"], env=clean_env(), cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2
    assert "dynamodb-backup ls: error: the following arguments are required: S3_URI" in run.stderr


def test_the_wheel_holds_the_package_and_the_console_script(tmp_path):
    """Built offline, as ``make install`` does, from a copy (a build writes beside its sources)."""
    uv = shutil.which("uv")
    assert uv, "uv is missing: `make install` installs it"
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copytree(REPO / "plugins" / "dynamodb_backup", source / "plugins" / "dynamodb_backup",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    run = subprocess.run([uv, "build", "--wheel", "--no-build-isolation", "--python", sys.executable,
                          "--out-dir", str(dist), str(source)],
                         env=clean_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    (wheel,) = dist.glob("dynamodb_backup-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = zf.read(entry_points).decode()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [line for line in zf.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert {"dynamodb_backup/__init__.py", "dynamodb_backup/__main__.py", "dynamodb_backup/cli.py",
            "dynamodb_backup/formats/layout.py", "dynamodb_backup/formats/codec/native.py",
            "dynamodb_backup/commands/tablecopy.py", "dynamodb_backup/operators/restore.py"} <= names
    assert {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")} == \
        {"dynamodb_backup"}, sorted(names)
    assert "[console_scripts]\ndynamodb-backup = dynamodb_backup.cli:main" in scripts, scripts
    core = {r.split(":", 1)[1].split(";")[0].strip() for r in requires if "extra ==" not in r}
    assert {"boto3", "orjson", "zstandard", "tenacity", "pyyaml"} <= {c.lower() for c in core}, requires
    assert not [c for c in core if "airflow" in c], requires
