"""A stream DAG whose table entry has ``replicate_to:`` runs the replica beside the tail, for as long, into its
Asset: each segment reaches the replica soon after the tail stores it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


def _bag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, entry: dict) -> object:
    from airflow.dag_processing.dagbag import DagBag

    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": "bkt", "prefix": "ddb", "schedule": None},
                                   "backups": [entry]}))
    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups))
    return DagBag(dag_folder=str(DAGS / "dynamodb_stream.py"))


def test_replicate_to_adds_the_replica_beside_the_tail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bag = _bag(monkeypatch, tmp_path, {"table": "Orders", "stream": True, "replicate_to": {
        "table": "Orders-eu", "region": "eu-west-1", "aws_conn_id": "replica_account", "write_ratio": 0.25}})
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["dynamodb_stream_Orders"]
    assert list(dag.task_dict) == ["tail", "replicate"]
    replicate = dag.task_dict["replicate"]
    assert replicate.upstream_task_ids == set() and replicate.for_seconds == "{{ params.run_seconds }}"
    assert (replicate.to_table, replicate.to_region, replicate.to_conn_id, replicate.write_ratio) == (
        "Orders-eu", "eu-west-1", "replica_account", 0.25)
    assert [asset.uri for asset in replicate.outlets] == ["s3://bkt/ddb/Orders/stream/_replicas/Orders-eu"]
    # With a replica the tail closes segments every 2 s, so the replica's lag can stay within seconds.
    assert dag.task_dict["tail"].flush_seconds == 2.0


def test_without_a_replica_the_tail_keeps_its_default_flush(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dynamodb_backup.streams.segmentwriter import DEFAULT_FLUSH_SECONDS

    bag = _bag(monkeypatch, tmp_path, {"table": "Orders", "stream": True})
    assert not bag.import_errors, bag.import_errors
    tail = bag.dags["dynamodb_stream_Orders"].task_dict["tail"]
    assert tail.flush_seconds == DEFAULT_FLUSH_SECONDS != 2.0


def test_replicate_to_needs_a_stream_and_a_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    errors = _bag(monkeypatch, tmp_path, {"table": "Orders", "replicate_to": "Orders-eu"}).import_errors.values()
    assert any("backups[0]: replicate_to needs stream: true" in str(e) for e in errors), errors
    errors = _bag(monkeypatch, tmp_path, {"table": "Orders", "stream": True,
                                          "replicate_to": {"region": "eu-west-1"}}).import_errors.values()
    assert any("replicate_to: table is missing" in str(e) for e in errors), errors
