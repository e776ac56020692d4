"""`make docs` fails on a broken link: the Makefile's command, with mkdocs.yml's own settings.

A small site is built in a temporary folder with the repository's mkdocs.yml (its theme, strict
mode and link validation; a nav of its own): a link to a page that is not there, an anchor that
is not on its page, and a page left out of the nav each fail the build; the same site without them
builds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def docs_command() -> list[str]:
    recipe = re.search(r"^docs:.*\n\t(?P<command>.+)$", (REPO / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile has a docs target"
    words = recipe["command"].split()
    assert "--strict" in words and "--quiet" not in words and "-q" not in words  # --quiet hides what --strict counts
    return words[words.index("build"):]


def build(tmp_path: Path, pages: dict[str, str], nav: list[str]) -> subprocess.CompletedProcess[str]:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config.update(docs_dir="docs", site_dir="site", nav=nav)
    (tmp_path / "docs").mkdir()
    for name, text in pages.items():
        (tmp_path / "docs" / name).write_text(text)
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "mkdocs", *docs_command()], cwd=tmp_path, capture_output=True,
                          text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"}, timeout=120)


GOOD = {"index.md": "# Home\n\nSee [the other page](other.md#a-part).\n", "other.md": "# Other\n\n## A part\n"}


def test_a_site_without_broken_links_builds(tmp_path):
    done = build(tmp_path, GOOD, ["index.md", "other.md"])
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "other" / "index.html").exists()


@pytest.mark.parametrize(("pages", "nav", "warning"), [
    ({**GOOD, "index.md": "# Home\n\nSee [nothing](missing.md).\n"}, ["index.md", "other.md"], "missing.md"),
    ({**GOOD, "index.md": "# Home\n\nSee [no part](other.md#no-part).\n"}, ["index.md", "other.md"], "no-part"),
    (GOOD, ["index.md"], "other.md"),
], ids=["missing page", "missing anchor", "page out of the nav"])
def test_a_broken_link_fails_the_build(tmp_path, pages, nav, warning):
    done = build(tmp_path, pages, nav)
    assert done.returncode != 0
    assert "strict mode" in done.stdout + done.stderr and warning in done.stderr
