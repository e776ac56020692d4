"""qyjohn/DDBImportExport's DDBExport.py and DDBImport.py, run as they are, at one pinned commit.

The repository carries no licence, so its scripts are not copied into this one: the bench fetches
them at bench time into ``.state/bench-peers/DDBImportExport`` (``git clone`` of the pinned
commit, or of a local mirror named by ``DDBIMPORTEXPORT_GIT``) and refuses to run them unless
both files hash to the SHA-256 recorded here, so every run measures the same code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

URL = "https://github.com/qyjohn/DDBImportExport"
COMMIT = "576b76e341f1d3a4bb856db009e396f9d4723dbc"  # 2022-01-25, "Update DDBImport.py": the newest
SHA256 = {
    "DDBExport.py": "fa387faf5fe8c544acc0549668b29c2980f859cb0a9388ed29b94501983795ab",
    "DDBImport.py": "1ef34e930ca416380a5d2a26dadb4a1c80a1079c3db132269c861453d225d387",
}


def _verified(folder: Path) -> bool:
    return all((folder / name).is_file()
               and hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
               for name, digest in SHA256.items())


def scripts(state: Path) -> Path:
    """The folder holding both scripts at ``COMMIT``, fetched if missing; raises when they differ."""
    folder = state / "bench-peers" / "DDBImportExport"
    if _verified(folder):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    source = os.environ.get("DDBIMPORTEXPORT_GIT", URL)
    subprocess.run(["git", "clone", "--quiet", source, str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "checkout", "--quiet", COMMIT], check=True)
    if not _verified(folder):
        raise RuntimeError(f"{folder}: DDBExport.py/DDBImport.py at {COMMIT[:12]} do not match the recorded SHA-256")
    return folder
