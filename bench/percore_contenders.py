"""The per-core bench's contenders: how each is started, and what it must be seen to have done.

Every contender runs as its own process tree against the local endpoints. A run counts only when
what it did is checked from outside: the items it wrote (S3 objects' lines, our sidecar, a
dynamodump folder, a table's count) and, for restores, a sample of items compared with the ones
generated (``fidelity``), so a peer that cannot carry a shape shows it instead of being timed.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fidelity import sample_fidelity
from .seed import count_items, create_table, delete_table
from .shapes import TABLE_SPEC

PY = sys.executable
BUCKET = "bench-percore"
DATE = "2024-01-02T03:04:05Z"
FOLDER_DATE = "2024-01-02-03-04-05"
BIG = "1000000000"  # --on-demand-capacity: never throttle against the local server
PEER_CAPACITY = "10000000"  # DDBExport/DDBImport -c: their QoS counter is a C int refilled each second


@dataclass
class Ctx:
    backend: str
    ddb_url: str
    s3_url: str
    standin_url: str
    env: dict[str, str]
    work: Path
    peers: Path | None
    dynamodump: Path | None
    processes: int
    segments: int
    ddb: Any = None
    s3: Any = None
    pitr_at: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    """One shape's source table on one backend, and what the bench prepared from it."""
    shape: str
    count: int
    nbytes: int
    table: str
    pickle: Path
    bodies: Path


@dataclass
class Outcome:
    items: int | None
    note: str = ""
    fidelity: str | None = None


Step = Callable[[Ctx, Target], Any]
Check = Callable[[Ctx, Target, Path], Outcome]


@dataclass
class Contender:
    key: str
    label: str
    phase: str  # export | restore | pitr
    command: Callable[[Ctx, Target], list[str]]
    check: Check
    before: Step | None = None
    shapes: frozenset[str] | None = None  # None: every shape
    needs: str | None = None  # the export contender whose output it reads
    peer: bool = True  # a peer that fails in round 1 on a shape is not run on it again
    requires: str | None = None  # "peers" | "dynamodump": skipped when that is missing
    first_backend_only: bool = False  # idles long (thread starts, Airflow imports): CPU is measured once
    pythonpath: str | None = None  # put first on PYTHONPATH: another copy of dynamodb_backup (before/after)

    def runs_on(self, shape: str) -> bool:
        return self.shapes is None or shape in self.shapes


def failure_line(log: Path) -> str:
    """The last exception of a log and the function that raised it (a peer's worker may die with a
    traceback while its parent exits 0)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    found = list(re.finditer(r"^(?:[\w.]+(?:Error|Exception))(?::.*)?$", text, flags=re.M))
    if not found:
        return ""
    last = found[-1]
    frames = re.findall(r'^\s*File "[^"]*", line \d+, in (\w+)$', text[:last.start()], flags=re.M)
    return (last.group(0).strip() + (f" (raised in {frames[-1]})" if frames else ""))[:200]


def clear_prefix(s3: Any, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


def s3_lines(s3: Any, prefix: str) -> int:
    lines = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            lines += body.count(b"\n")
    return lines


def fresh_table(name: Callable[[Target], str]) -> Step:
    def before(ctx: Ctx, t: Target) -> None:
        delete_table(ctx.ddb, name(t))
        create_table(ctx.ddb, name(t), TABLE_SPEC)
    return before


def drop_table(name: Callable[[Target], str]) -> Step:
    return lambda ctx, t: delete_table(ctx.ddb, name(t))


def printed(ctx: Ctx, t: Target, log: Path) -> Outcome:
    """The bench's own tools print ``<verb> <n> items ...`` last."""
    lines = log.read_text().strip().splitlines() if log.exists() else []
    try:
        return Outcome(int(lines[-1].split()[1]))
    except (IndexError, ValueError):
        return Outcome(None, failure_line(log))


def lines_under(prefix: Callable[[Target], str]) -> Check:
    def check(ctx: Ctx, t: Target, log: Path) -> Outcome:
        return Outcome(s3_lines(ctx.s3, prefix(t)), failure_line(log))
    return check


def sidecar_items(folder: Callable[[Ctx, Target], str]) -> Check:
    def check(ctx: Ctx, t: Target, log: Path) -> Outcome:
        from dynamodb_backup.formats.catalog import read_sidecar
        from dynamodb_backup.formats.layout import S3Location
        try:
            return Outcome(read_sidecar(ctx.s3, S3Location.parse(folder(ctx, t))).item_count)
        except Exception as exc:  # no sidecar: the run failed; its log says why
            return Outcome(None, failure_line(log) or f"{type(exc).__name__}: {exc}"[:200])
    return check


def restored(name: Callable[[Target], str]) -> Check:
    def check(ctx: Ctx, t: Target, log: Path) -> Outcome:
        try:
            count = count_items(ctx.ddb_url, name(t), segments=2)
        except Exception as exc:
            return Outcome(None, failure_line(log) or f"{type(exc).__name__}: {exc}"[:200])
        return Outcome(count, failure_line(log), sample_fidelity(ctx.ddb, name(t), t.shape, t.count))
    return check


def dump_items(ctx: Ctx, t: Target, log: Path) -> Outcome:
    data = ctx.work / "dump" / t.table / "data"
    items = sum(len(json.loads(p.read_text())["Items"]) for p in data.glob("*.json")) if data.is_dir() else None
    return Outcome(items, failure_line(log))


def ours_folder(ctx: Ctx, t: Target) -> str:
    return f"s3://{BUCKET}/ours/{t.shape}/{t.table}/{FOLDER_DATE}"


def pitr_folder(ctx: Ctx, t: Target) -> str:
    at = ctx.pitr_at[t.shape]
    return f"s3://{BUCKET}/pitr/{t.shape}/{t.table}/{at[:19].replace('T', '-').replace(':', '-')}"


def pitr_export_time(standin_url: str, table: str) -> str:
    """The newest moment the stand-in can export ``table`` at, once its PITR window has opened."""
    import time

    import boto3

    from dynamodb_backup.pitr.steps import export_time

    ddb = boto3.client("dynamodb", endpoint_url=standin_url)
    while True:
        window = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"][
            "PointInTimeRecoveryDescription"]
        at = export_time(window["LatestRestorableDateTime"])
        if at >= export_time(window["EarliestRestorableDateTime"]):
            return str(at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        time.sleep(0.5)


def fresh_pitr_time(ctx: Ctx, t: Target) -> None:
    """A new export moment each run: an export at a moment already exported is found and reused by the
    CLI, and ``--overwrite`` has deleted that export's files from the folder (seen: "manifest-files.json
    lists None items")."""
    ctx.pitr_at[t.shape] = pitr_export_time(ctx.standin_url, t.table)


def _restore_target(key: str) -> Callable[[Target], str]:
    return lambda t: f"{t.table}-to-{key}"


def _dynamodump(ctx: Ctx, *args: str) -> list[str]:
    port = ctx.ddb_url.rsplit(":", 1)[1]
    return [str(ctx.dynamodump), *args, "--host", "127.0.0.1", "--port", port, "--accessKey", "local",
            "--secretKey", "local", "-r", "us-east-1", "--dumpPath", str(ctx.work / "dump")]


def earlier(c: Contender, plugins: Path, name: str) -> Contender:
    """``c`` (ours-export or ours-pitr) run from another copy of the project's plugins/, writing elsewhere."""
    def moved(text: str) -> str:
        return text.replace(f"s3://{BUCKET}/ours/", f"s3://{BUCKET}/ours-{name}/").replace(
            f"s3://{BUCKET}/pitr/", f"s3://{BUCKET}/pitr-{name}/")

    folder = ours_folder if c.key == "ours-export" else pitr_folder
    return Contender(f"{c.key}@{name}", f"{c.label} [{name}]", c.phase,
                     lambda ctx, t: [moved(a) for a in c.command(ctx, t)],
                     sidecar_items(lambda ctx, t: moved(folder(ctx, t))), before=c.before, peer=False,
                     pythonpath=str(plugins))


def contenders(before: Path | None = None, name: str = "before") -> list[Contender]:
    """In the order of a round: exports, restores (reading this round's exports), PITR conversion.

    ``before``: a copy of the project's plugins/ whose export and PITR conversion also run, each right
    after ours, as ``ours-export@<name>`` and ``ours-pitr@<name>``: a change's before and after in one run.
    """
    chosen = _contenders()
    if before is None:
        return chosen
    out = []
    for c in chosen:
        out.append(c)
        if c.key in ("ours-export", "ours-pitr"):
            out.append(earlier(c, before, name))
    return out


def _contenders() -> list[Contender]:
    ceiling_target, floor_target = _restore_target("ceiling"), _restore_target("floor")
    return [
        Contender("ceiling-scan", "raw HTTP scan ceiling (orjson, no signing)", "export", lambda c, t: [
            PY, "-m", "bench.ceiling", "scan", "--endpoint", c.ddb_url, "--table", t.table,
            "--segments", str(c.segments), "--processes", str(c.processes)], printed, peer=False),
        Contender("boto3-scan", "bare boto3 scan, parse only", "export", lambda c, t: [
            PY, "-m", "bench.floor", "--endpoint", c.ddb_url, "--table", t.table,
            "--segments", str(c.segments), "--processes", str(c.processes)], printed, peer=False),
        Contender("ddbexport", "DDBExport.py (qyjohn), to S3", "export", lambda c, t: [
            PY, str(c.peers / "DDBExport.py"), "-r", "us-east-1", "-t", t.table, "-p", str(c.processes),  # type: ignore[operator]
            "-c", PEER_CAPACITY, "-s", "1024", "-d", f"s3://{BUCKET}/ddbexport/{t.shape}/"],
            lines_under(lambda t: f"ddbexport/{t.shape}/"),
            before=lambda c, t: clear_prefix(c.s3, f"ddbexport/{t.shape}/"), requires="peers"),
        Contender("dynamodump-backup", "dynamodump backup (to disk)", "export",
                  lambda c, t: _dynamodump(c, "-m", "backup", "-s", t.table), dump_items,
                  before=lambda c, t: shutil.rmtree(c.work / "dump" / t.table, ignore_errors=True),
                  requires="dynamodump", first_backend_only=True),
        Contender("provider", "provider DynamoDBToS3Operator, its default process_func", "export",
                  functools.partial(_provider, func="default"),
                  lines_under(lambda t: f"provider-default/{t.shape}/"),
                  before=lambda c, t: clear_prefix(c.s3, f"provider-default/{t.shape}/"), first_backend_only=True),
        Contender("provider-typed", "provider DynamoDBToS3Operator, a typed process_func", "export",
                  functools.partial(_provider, func="typed"), lines_under(lambda t: f"provider-typed/{t.shape}/"),
                  before=lambda c, t: clear_prefix(c.s3, f"provider-typed/{t.shape}/"),
                  shapes=frozenset({"small", "empty"}), first_backend_only=True),
        Contender("ours-export", "ours: dynamodb-backup export (gzip)", "export", lambda c, t: [
            PY, "-m", "dynamodb_backup", "export", "--table", t.table, "--to", f"s3://{BUCKET}/ours/{t.shape}",
            "--segments", str(c.segments), "--workers", str(c.processes), "--read-ratio", "1.5",
            "--on-demand-capacity", BIG, "--compression", "gzip", "--date", DATE, "--overwrite"],
            sidecar_items(ours_folder), peer=False),
        Contender("ceiling-write", "raw HTTP BatchWriteItem ceiling (bodies built before)", "restore", lambda c, t: [
            PY, "-m", "bench.ceiling", "write", "--endpoint", c.ddb_url, "--bodies", str(t.bodies),
            "--processes", str(c.processes)], printed, before=fresh_table(ceiling_target), peer=False),
        Contender("boto3-write", "bare boto3 batch_write_item, items in memory", "restore", lambda c, t: [
            PY, "-m", "bench.floor_write", "--endpoint", c.ddb_url, "--table", floor_target(t),
            "--items", str(t.pickle), "--processes", str(c.processes)], printed,
            before=fresh_table(floor_target), peer=False),
        Contender("ddbimport", "DDBImport.py (qyjohn), from DDBExport's S3 files", "restore", lambda c, t: [
            PY, str(c.peers / "DDBImport.py"), "-r", "us-east-1", "-t", _restore_target("ddbimport")(t),  # type: ignore[operator]
            "-s", f"s3://{BUCKET}/ddbexport/{t.shape}/", "-p", str(c.processes), "-c", PEER_CAPACITY],
            restored(_restore_target("ddbimport")), before=fresh_table(_restore_target("ddbimport")),
            needs="ddbexport", requires="peers"),
        Contender("dynamodump-restore", "dynamodump restore (from disk)", "restore", lambda c, t: _dynamodump(
            c, "-m", "restore", "-s", t.table, "-d", _restore_target("dynamodump")(t),
            "--billingMode", "PAY_PER_REQUEST", "--noConfirm"), restored(_restore_target("dynamodump")),
            before=drop_table(_restore_target("dynamodump")), needs="dynamodump-backup",
            requires="dynamodump", first_backend_only=True),
        Contender("ours-restore", "ours: dynamodb-backup restore, as a user runs it (verify, checkpoints)",
                  "restore", lambda c, t: [
                      PY, "-m", "dynamodb_backup", "restore", ours_folder(c, t), "--table", _restore_target("ours")(t),
                      "--create-table", "--write-ratio", "1.5", "--workers", str(c.processes),
                      "--on-demand-capacity", BIG],
                  restored(_restore_target("ours")), before=drop_table(_restore_target("ours")),
                  needs="ours-export", peer=False),
        Contender("ours-pitr", "ours: dynamodb-backup export --mode pitr (conversion to Data Pipeline, gzip)",
                  "pitr", lambda c, t: [
                      PY, "-m", "dynamodb_backup", "export", "--table", t.table, "--to", f"s3://{BUCKET}/pitr/{t.shape}",
                      "--mode", "pitr", "--at", c.pitr_at[t.shape], "--workers", str(c.processes),
                      "--endpoint", c.standin_url, "--overwrite"],
                  sidecar_items(pitr_folder), before=fresh_pitr_time, peer=False),
    ]


def _provider(ctx: Ctx, t: Target, func: str) -> list[str]:
    return [PY, "-m", "bench.provider", "--table", t.table, "--bucket", BUCKET, "--prefix",
            f"provider-{func}/{t.shape}", "--segments", str(ctx.processes), "--process-func", func]
