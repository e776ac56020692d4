"""A pipeline's SnsAlarms: the failure topic becomes the table's notices; success and late alarms do not map."""

from __future__ import annotations

from typing import Any

from dynamodb_backup.migrate.definition import Definition, Ref
from dynamodb_backup.migrate.expressions import Unresolved, resolve


def _alarm_topics(definition: Definition, oid: str, key: str) -> list[tuple[str, str]]:
    found = []
    holders = [oid, *[v.id for k in ("input", "output") for v in definition.get(oid, k) if isinstance(v, Ref)]]
    for holder in holders:
        for ref in definition.get(holder, key):
            if isinstance(ref, Ref) and ref.id in definition.objects:
                topic = definition.first(ref.id, "topicArn", str)
                if topic is not None:
                    found.append((ref.id, topic))
    return list(dict.fromkeys(found))


def failure_alarms(definition: Definition, oid: str, entry: Any) -> None:
    """``onFail`` SnsAlarms (on the activity, its data nodes, or Default) -> ``failure_sns_topic_arn``; the others
    are named as not mapped."""
    failures = _alarm_topics(definition, oid, "onFail")
    topics = []
    for alarm, raw in failures:
        try:
            topics.append(resolve(definition, raw, alarm))
        except Unresolved as exc:
            entry.unmapped.append(f"SnsAlarm {alarm}: topicArn {exc}")
    if topics:
        entry.settings["failure_sns_topic_arn"] = topics[0]
        entry.notes.append(f"onFail SnsAlarm {failures[0][0]} -> failure notices to {topics[0]} (our own subject "
                           f"and message; the alarm's subject/message expressions are not used)")
        entry.unmapped.extend(f"onFail topic {t}: one topic per table; also subscribe it to {topics[0]}"
                              for t in topics[1:])
    for key in ("onSuccess", "onLateAction"):
        for alarm, topic in _alarm_topics(definition, oid, key):
            entry.unmapped.append(f"{key} SnsAlarm {alarm} ({topic}): we send failure notices only; each sealed "
                                  f"backup emits an Airflow Asset event a DAG can turn into a message")
