"""backups.yaml text for the entries a set of definitions mapped to, with what did not map as comments."""

from __future__ import annotations

import yaml

from dynamodb_backup.migrate.mapping import Entry, Mapping


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in text.splitlines() or [""]]


def _setting(key: str, value: object) -> str:
    dumped = yaml.safe_dump({key: value}, default_flow_style=False, sort_keys=False, width=1000).rstrip("\n")
    return dumped.replace("\n", "\n    ")


def render_entry(entry: Entry) -> list[str]:
    lines = _comment(f"from {entry.source}", "  ")
    lines += [line for note in entry.notes for line in _comment(note, "  ")]
    lines += [line for item in entry.unmapped for line in _comment(f"NOT MAPPED: {item}", "  ")]
    for i, (key, value) in enumerate(entry.settings.items()):
        lines.append(("  - " if i == 0 else "    ") + _setting(key, value))
    return lines


def render(mappings: list[Mapping]) -> str:
    """The whole file: ``backups:`` and each entry; definition-level notes first."""
    lines = ["# backups.yaml entries from AWS Data Pipeline definitions (dynamodb-backup import-pipeline)."]
    for mapping in mappings:
        lines += [line for note in mapping.notes for line in _comment(note, "")]
    entries = [entry for mapping in mappings for entry in mapping.entries]
    lines.append("backups:" if entries else "backups: []")
    for entry in entries:
        lines += render_entry(entry)
    return "\n".join(lines) + "\n"
