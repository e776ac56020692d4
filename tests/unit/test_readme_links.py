"""The README's links lead somewhere (every relative link names a file), and it lists every command.

The documentation site's own links are checked by `make docs` (mkdocs build --strict); the README is
not part of the site, so its links are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z]+:|^#", target)]


def test_every_relative_link_of_the_readme_names_a_file():
    links = relative_links((REPO / "README.md").read_text())
    assert links, "the README links into docs/"
    missing = [link for link in links if not (REPO / link.split("#", 1)[0]).exists()]
    assert missing == []


def test_a_link_to_nothing_is_caught():
    assert relative_links("see [x](docs/none.md) and [y](https://example.com) [z](#here)") == ["docs/none.md"]


def test_the_readme_and_the_docs_index_list_every_command():
    from dynamodb_backup.cli import build_parser

    parser = build_parser()
    [commands] = [action.choices for action in parser._subparsers._group_actions]  # type: ignore[union-attr]
    for page in (REPO / "README.md", REPO / "docs" / "index.md"):
        listed = set(re.findall(r"^\| `([a-z-]+)` \|", page.read_text(), re.M))
        assert listed == set(commands), page.name
