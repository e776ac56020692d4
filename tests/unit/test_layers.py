"""Imports run one way: from the shell (cli, commands, operators, console) down to aws/ and formats/.

Each package of plugins/dynamodb_backup has a rank; a module may import its own
package or a package of a lower rank, never one beside or above it. Reading a
backup (repository/) sits below everything that reads one, as restic's
archiver and restorer both stand on its repository package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "dynamodb_backup"

RANKS: dict[str, int] = {
    "errors": 0,
    "gcpause": 0,
    "aws": 1,
    "formats": 1,
    "repository": 2,
    "progress": 2,
    "loading": 3,
    "backup": 3,
    "pitr": 4,
    "incremental": 5,
    "restore": 6,
    "retention": 6,
    "drill": 6,
    "streams": 6,
    "tablecopy": 7,
    "replica": 7,
    "migrate": 7,
    "config": 8,
    # The shell: wires the core to Airflow (hooks, triggers, operators: one folder per role,
    # as in the amazon provider) and to the command line.
    "hooks": 9,
    "triggers": 10,
    "operators": 11,
    "commands": 11,
    "console": 12,
    "cli": 13,
    "__main__": 14,
    "__init__": 0,
}


def package_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dynamodb_backup."):
            found.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names
                      if a.name.startswith("dynamodb_backup.")]
    return found


def upward_imports() -> list[str]:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = package_of(path)
        for line, there in imports_of(path):
            if there == here:
                continue
            if here not in RANKS or there not in RANKS:
                unranked = here if here not in RANKS else there
                wrong.append(f"{path.relative_to(PACKAGE)}:{line}: give package {unranked!r} a rank in test_layers.py")
            elif RANKS[there] >= RANKS[here]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line}: {here} (rank {RANKS[here]}) imports {there}"
                             f" (rank {RANKS[there]})")
    return wrong


def test_every_import_runs_down_the_layers() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a repository module importing restore is named with its line."""
    fake = tmp_path / "dynamodb_backup"
    (fake / "repository").mkdir(parents=True)
    (fake / "repository" / "bad.py").write_text("import os\nfrom dynamodb_backup.restore.job import run\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert upward_imports() == ["repository/bad.py:2: repository (rank 2) imports restore (rank 6)"]


def test_reading_a_backup_stands_below_its_readers() -> None:
    readers = ["restore", "pitr", "incremental", "retention", "tablecopy", "streams"]
    assert all(RANKS["repository"] < RANKS[r] for r in readers)
    assert all(RANKS["loading"] < RANKS[r] for r in ["restore", "incremental", "tablecopy", "replica"])
