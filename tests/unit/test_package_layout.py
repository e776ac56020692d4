"""No module under plugins/ is named like a standard library module.

Airflow's plugin loader imports .py files under plugins/ as top-level modules named after the file
(plugins/.airflowignore keeps it out of the package, see tests/dags/test_copy_dag.py), and a module
named ``copy`` or ``inspect`` would then replace the standard one in every Airflow process. Even
inside the package such a name invites mistakes, so none is allowed, whatever the ignore file says.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def module_names(root: Path) -> list[tuple[str, str]]:
    """(path relative to plugins/, module name) of every .py file and every package folder."""
    names = [(str(p.relative_to(root)), p.stem) for p in root.rglob("*.py")]
    names += [(str(p.parent.relative_to(root)) + "/", p.parent.name) for p in root.rglob("__init__.py")]
    return [(path, name) for path, name in names if "__pycache__" not in path]


def test_plugins_folder_has_modules():
    names = dict(module_names(PLUGINS))
    assert "dynamodb_backup/formats/layout.py" in names
    assert "dynamodb_backup/tablecopy/copier.py" in names


def test_no_module_is_named_like_a_standard_library_module():
    shadowing = sorted(path for path, name in module_names(PLUGINS) if name in sys.stdlib_module_names)
    assert not shadowing, f"{shadowing} are named like standard library modules: rename them"


def test_the_check_catches_a_shadowing_module(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").touch()
    (tmp_path / "pkg" / "copy.py").touch()
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "__init__.py").touch()
    found = sorted(path for path, name in module_names(tmp_path) if name in sys.stdlib_module_names)
    assert found == ["json/", "pkg/copy.py"]
