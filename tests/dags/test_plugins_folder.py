"""The DAGs need no installed package: Airflow finds dynamodb_backup in its plugins folder (MWAA style).

``make install`` also installs the package into the virtualenv (editable, a .pth file that puts
plugins/ on sys.path), which would hide a DAG that only imports because of that install. So the DAGs
are parsed by an interpreter that skips site's .pth files (``-S``) and sees site-packages through
PYTHONPATH only: nothing but Airflow's plugins folder puts plugins/ on its sys.path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib.util, json, sys
assert importlib.util.find_spec("dynamodb_backup") is None, sys.path
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
import dynamodb_backup
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags),
                  "package": dynamodb_backup.__file__}))
"""


def test_dags_parse_with_the_package_only_in_the_plugins_folder(tmp_path):
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    env.update({"PYTHONPATH": os.pathsep.join(dict.fromkeys(site)), "AIRFLOW_HOME": str(tmp_path),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    run = subprocess.run([sys.executable, "-S", "-c", SCRIPT, str(REPO / "dags")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert {"dynamodb_copy", "dynamodb_restore"} <= set(result["dags"])
    assert any(d.startswith("dynamodb_backup_") for d in result["dags"]), result["dags"]
    assert Path(result["package"]).is_relative_to(REPO / "plugins" / "dynamodb_backup")
