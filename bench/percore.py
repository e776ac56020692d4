"""Per core, side by side: the CPU each contender's whole process tree spends per item and per MB.

For each local DynamoDB server named by ``--backends`` the bench starts it, moto and the PITR
stand-in, seeds one table per item shape (``bench/shapes.py``: small, wide, large, and an empty
one that measures each contender's start-up), then runs ``--repeats`` rounds. A round runs, per
shape, every export (the raw scan ceiling, the bare boto3 scan, DDBExport.py, dynamodump, the
provider's operator, ours), every restore from this round's exports (the raw write ceiling, the
bare boto3 batch_write, DDBImport.py, dynamodump, ours as a user runs it) and our PITR
conversion. Each run's CPU is its process tree's user+sys (``bench/treecpu.py``); every run is
kept in the JSON (``--out``), and the table shows medians, net of start-up, with the ratios and
issue 24's goals.

    .venv/bin/python -m bench.percore [--scale small|full] [--backends ddblocal,dynalite] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _p in (REPO, REPO / "plugins", REPO / "include"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import boto3  # noqa: E402

from bench import backends, percore_report  # noqa: E402
from bench.floor_write import write_share  # noqa: E402
from bench.measure import server_cpu  # noqa: E402
from bench.peers import ddbimportexport  # noqa: E402
from bench.percore_contenders import (  # noqa: E402
    BUCKET,
    PY,
    Contender,
    Ctx,
    Outcome,
    Target,
    contenders,
    pitr_export_time,
)
from bench.seed import count_items, create_table, delete_table, table_exists  # noqa: E402
from bench.shapes import COUNTS, TABLE_SPEC, TYPES, make_item, shape_bytes, table_name  # noqa: E402
from bench.treecpu import become_subreaper, run_tree  # noqa: E402
from local_aws import free_port, start_moto, start_pitr  # noqa: E402

log = logging.getLogger("bench.percore")
STATE = REPO / ".state" / "bench-percore"
SHAPES = ("empty", "small", "wide", "large")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(COUNTS), default="full",
                   help="items per shape: full (8 MB of small and wide items, 250 MB of large) or small (about 2.4 MB "
                   "a shape, a few minutes)")
    p.add_argument("--backends", default="ddblocal,dynalite")
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, from " + ", ".join(SHAPES))
    p.add_argument("--only", default="", help="comma-separated contender keys to run (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the medians are reported (default 3)")
    p.add_argument("--startup-rounds", type=int, default=3,
                   help="rounds that run the empty table (each contender's start-up, subtracted; default 3)")
    p.add_argument("--processes", type=int, default=2, help="worker processes per contender (default 2)")
    p.add_argument("--segments", type=int, default=4, help="scan segments where a contender takes them")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "bench-per-core.json")
    p.add_argument("--peers-everywhere", action="store_true",
                   help="run dynamodump and the provider on every backend, not the first only (their CPU is "
                   "the client's; they idle 10-30 s a run)")
    p.add_argument("--ours-from", type=Path, default=None,
                   help="a copy of the project (its plugins/ folder) whose dynamodb-backup the ours-* contenders "
                   "run, e.g. an earlier commit's `git archive`: before/after figures of a change")
    p.add_argument("--before", type=Path, default=None,
                   help="also run the export and PITR conversion of this copy of the project (e.g. an earlier "
                   "commit's `git archive`), each right after ours: a change's before and after in one run")
    p.add_argument("--before-name", default="before", help="what to call that copy's contenders (key@NAME)")
    p.add_argument("--label", default="", help="a note kept in the JSON (e.g. which gzip the exports used)")
    return p.parse_args(argv)


def contender_env(ddb_url: str, s3_url: str, ours_from: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    plugins = [str(ours_from / "plugins")] if ours_from else []
    env.update({
        # boto3 >= 1.28 honours these: how DDBExport.py/DDBImport.py (no endpoint option) reach the local servers.
        "AWS_ENDPOINT_URL_DYNAMODB": ddb_url, "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": os.pathsep.join([*plugins, str(REPO), str(REPO / "plugins"), str(REPO / "include")]),
        "AIRFLOW_HOME": str(STATE / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_AWS_DEFAULT": (
            '{"conn_type": "aws", "login": "local", "password": "local", "extra": {"region_name": "us-east-1", '
            f'"service_config": {{"s3": {{"endpoint_url": "{s3_url}"}}, '
            f'"dynamodb": {{"endpoint_url": "{ddb_url}"}}}}}}}}'),
    })
    return env


def pickled_items(shape: str, count: int) -> Path:
    """The shape's items in boto3's client form, pickled once (the write floor's input and the seed's)."""
    path = STATE / f"{table_name(shape, count)}.pickle"
    if not path.exists():
        path.write_bytes(pickle.dumps([make_item(shape, i) for i in range(count)]))
    return path


def prepare_target(ctx: Ctx, shape: str, count: int, write_bodies: bool = True) -> Target:
    """Seed the shape's table (reused when a kept dynalite already holds it) and, when the raw write
    ceiling runs (``write_bodies``), its request bodies (for 250 MB of large items, a file as big)."""
    table = table_name(shape, count)
    items = pickled_items(shape, count)
    if not (table_exists(ctx.ddb, table) and count_items(ctx.ddb_url, table, segments=2) == count):
        delete_table(ctx.ddb, table)
        create_table(ctx.ddb, table, TABLE_SPEC)
        started = time.perf_counter()
        write_share(ctx.ddb_url, table, str(items), 0, count)
        log.info("%s: seeded %s with %d items in %.1f s", ctx.backend, table, count, time.perf_counter() - started)
    bodies = STATE / f"{ctx.backend}-{table}-bodies.jsonl"
    if not write_bodies:
        return Target(shape, count, shape_bytes(shape, count), table, items, bodies)
    subprocess.run([PY, "-m", "bench.ceiling", "prepare-writes", "--endpoint", ctx.ddb_url, "--source", table,
                    "--table", f"{table}-to-ceiling", "--out", str(bodies)], check=True, cwd=REPO, env=ctx.env,
                   stdout=subprocess.DEVNULL)
    return Target(shape, count, shape_bytes(shape, count), table, items, bodies)


def enable_pitr(ctx: Ctx, table: str) -> str:
    """Turn PITR on through the stand-in and return a moment inside its window to export."""
    ddb = boto3.client("dynamodb", endpoint_url=ctx.standin_url)
    ddb.update_continuous_backups(TableName=table,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    return pitr_export_time(ctx.standin_url, table)


def measure(ctx: Ctx, c: Contender, t: Target, rnd: int, pids: dict[str, list[int]], logs: Path) -> dict[str, Any]:
    if c.before is not None:
        c.before(ctx, t)
    log_path = logs / f"{ctx.backend}-{t.shape}-{c.key}-{rnd + 1}.log"
    server_before, s3_before = server_cpu(pids["server"]), server_cpu(pids["s3"])
    started = time.monotonic()

    def progress(seconds: float) -> None:
        log.info("  ... %s still running (%.0f s)", c.key, seconds)

    env = ctx.env if c.pythonpath is None else {**ctx.env, "PYTHONPATH": os.pathsep.join(
        [c.pythonpath, ctx.env["PYTHONPATH"]])}
    run = run_tree(c.command(ctx, t), env=env, cwd=ctx.work, log_path=log_path, progress=progress)
    server_after, s3_after = server_cpu(pids["server"]), server_cpu(pids["s3"])
    try:
        outcome = c.check(ctx, t, log_path)
    except Exception as exc:  # a check that cannot read the output: the run failed
        outcome = Outcome(None, f"{type(exc).__name__}: {exc}"[:200])
    ok = run.returncode == 0 and outcome.items == t.count  # fidelity is reported beside, not folded in
    note = outcome.note
    if outcome.items != t.count and not note:
        note = f"did {outcome.items} of {t.count} items"
    elif outcome.items != t.count:
        note = f"did {outcome.items} of {t.count} items: {note}"
    if run.returncode != 0 and not note:
        note = f"exit {run.returncode}, see {log_path.name}"
    record = {
        "backend": ctx.backend, "shape": t.shape, "phase": c.phase, "key": c.key, "label": c.label,
        "round": rnd + 1, "items_expected": t.count, "items_done": outcome.items, "bytes": t.nbytes,
        "seconds": round(run.seconds, 3), "cpu_user": round(run.cpu.user, 3), "cpu_system": round(run.cpu.system, 3),
        "cpu_seconds": round(run.cpu.total, 3), "peak_rss_mb": round(run.peak_rss_mb, 1),
        "server_cpu_seconds": _delta(server_before, server_after), "s3_cpu_seconds": _delta(s3_before, s3_after),
        "returncode": run.returncode, "ok": ok, "note": note, "fidelity": outcome.fidelity,
        "orphans": run.orphans, "orphans_killed": run.orphans_killed, "log": log_path.name,
        "clock": round(time.monotonic() - started, 2),
    }
    log.info("%s %s %s r%d: %s  %.1f s wall, CPU %.2f s (%.2f user + %.2f sys)%s", ctx.backend, t.shape, c.key,
             rnd + 1, "ok" if ok else "FAILED", run.seconds, run.cpu.total, run.cpu.user, run.cpu.system,
             (f"  [{note}]" if note else "") + (f"  [{outcome.fidelity}]" if outcome.fidelity else ""))
    return record


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 3)


def run_backend(args: argparse.Namespace, backend: str, peers: Path | None, dump: Path | None,
                records: list[dict[str, Any]], first: bool) -> None:
    server, _startup = backends.start_for_bench(backend, STATE)
    moto = standin = None
    work = Path(tempfile.mkdtemp(prefix=f"work-{backend}-", dir=STATE))
    try:
        moto = start_moto(free_port(), STATE)
        pitr_state = Path(tempfile.mkdtemp(prefix="pitr-", dir=STATE))
        standin = start_pitr(free_port(), pitr_state, upstream_url=server.url, s3_url=moto.url, lag_seconds=1,
                             min_export_seconds=0)
        env = contender_env(server.url, moto.url, args.ours_from)
        ctx = Ctx(backend, server.url, moto.url, standin.url, env, work, peers, dump,
                  args.processes, args.segments, boto3.client("dynamodb", endpoint_url=server.url),
                  boto3.client("s3", endpoint_url=moto.url))
        ctx.s3.create_bucket(Bucket=BUCKET)
        shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
        counts = COUNTS[args.scale]
        only = {k.strip() for k in args.only.split(",") if k.strip()}
        targets = {shape: prepare_target(ctx, shape, counts[shape], write_bodies=not only or "ceiling-write" in only)
                   for shape in shapes}
        for shape, t in targets.items():
            ctx.pitr_at[shape] = enable_pitr(ctx, t.table)
        pids = {"server": [p for p in (server.pid, standin.pid) if p], "s3": [moto.pid] if moto.pid else []}
        missing = {name for name, found in (("peers", peers), ("dynamodump", dump)) if found is None}
        everyone = contenders(args.before / "plugins" if args.before else None, args.before_name)
        chosen = [c for c in everyone if (not only or c.key.split("@")[0] in only) and c.requires not in missing]
        cannot: dict[tuple[str, str], str] = {}
        logs = STATE / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for rnd in range(args.repeats):
            for shape, t in targets.items():
                if shape == "empty" and rnd >= args.startup_rounds:
                    continue
                for c in chosen:
                    if not c.runs_on(shape) or (c.key, shape) in cannot or (c.needs, shape) in cannot:
                        continue
                    if c.first_backend_only and not first and not args.peers_everywhere:
                        continue
                    record = measure(ctx, c, t, rnd, pids, logs)
                    records.append(record)
                    save(args, records, partial=True)
                    if not record["ok"] and c.peer and rnd == 0:
                        cannot[(c.key, shape)] = record["note"]
    finally:
        for s in (standin, moto):
            if s is not None:
                s.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def save(args: argparse.Namespace, records: list[dict[str, Any]], partial: bool = False,
         extra: dict[str, Any] | None = None) -> None:
    """The JSON: after every run (``partial``: the records so far, so a stopped bench keeps them), and at the end."""
    data: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "label": args.label,
                            "partial": partial, **(extra or {}), "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")


def dynamodump_binary() -> Path | None:
    from bench.run import dynamodump_bin

    try:
        return dynamodump_bin()
    except (OSError, subprocess.CalledProcessError) as exc:
        log.warning("dynamodump could not be installed (%s): left out", exc)
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Contenders run in a work folder: a relative copy's path would name nothing there (and Python
    # would quietly import this checkout's dynamodb_backup instead).
    for name in ("before", "ours_from"):
        path = getattr(args, name)
        if path is not None:
            if not (path / "plugins" / "dynamodb_backup").is_dir():
                raise SystemExit(f"--{name.replace('_', '-')} {path}: no plugins/dynamodb_backup in it")
            setattr(args, name, path.resolve())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    STATE.mkdir(parents=True, exist_ok=True)
    os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    reaper = become_subreaper()
    try:
        peers: Path | None = ddbimportexport.scripts(REPO / ".state")
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        log.warning("DDBImportExport could not be fetched (%s): DDBExport.py/DDBImport.py left out", exc)
        peers = None
    dump = dynamodump_binary()
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for position, backend in enumerate(backends.parse_backends(args.backends)):
        run_backend(args, backend, peers, dump, records, first=position == 0)
    rows = percore_report.summarise(records)
    table = percore_report.ratios(rows, records)
    goal_list = percore_report.goals(rows, table)
    load = os.getloadavg()[0]
    extra = {
        "machine": f"{os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}, "
                   f"load avg {load:.1f} at end", "scale": args.scale, "repeats": args.repeats,
        "processes": args.processes, "segments": args.segments, "subreaper": reaper,
        "ours_from": str(args.ours_from) if args.ours_from else None,
        "before": str(args.before) if args.before else None,
        "bench_seconds": round(time.perf_counter() - started),
        "shapes": {s: {"items": COUNTS[args.scale][s], "types": TYPES[s]} for s in SHAPES},
        "peers": {"DDBImportExport": ddbimportexport.COMMIT if peers else None,
                  "dynamodump": "bench/requirements-dynamodump.txt" if dump else None},
        "summary": rows, "ratios": table, "goals": goal_list,
    }
    save(args, records, extra=extra)
    print(percore_report.markdown(rows, table, goal_list))
    print(f"\nwrote {args.out} ({len(records)} runs in {extra['bench_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
