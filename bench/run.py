"""``make bench``: our export and restore against the alternatives, in one run.

For each local DynamoDB server named by ``--backends`` (AWS's DynamoDB Local, dynalite), starts
it (dynalite's data under ``.state/bench``, so a seeded table is reused by the next run; DynamoDB
Local in memory, as the tests run it) and moto, seeds N
items of about 500 bytes mixing every type, checks that the fast export path writes the same bytes
as the plain one, then runs each contender in turn in a child process and measures items/s, CPU
seconds of the process tree, the peak RSS of its largest single process, and the server's CPU.
The first backend runs every contender; the others run the server's ceilings and ours against
them (``bench/backends.py``). Writes bench-results/<backend>/results.json, results.md and
items_per_second.png (straight into bench-results/ for a single backend), and
bench-results/backends.json and backends.md: each server's ceilings, ours against each, and its
start-up time.

    .venv/bin/python bench/run.py [--items 200000] [--backends ddblocal,dynalite] [--memory-scaling] [--profile]
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _p in (REPO, REPO / "plugins", REPO / "include"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import boto3  # noqa: E402

from bench import backends, report  # noqa: E402
from bench.identity import check_fast_path_identity  # noqa: E402
from bench.measure import Measurement, median_run, run_measured  # noqa: E402
from bench.seed import count_items, create_table, delete_table, seed_table  # noqa: E402
from bench.verify import sample_matches  # noqa: E402
from local_aws import BACKENDS, free_port, start_moto  # noqa: E402

log = logging.getLogger("bench")
PY = sys.executable
DUMPODUMP_VENV = REPO / ".state" / "bench-venv"
STATE = REPO / ".state" / "bench"
BUCKET = "bench"
DATE = "2024-01-02T03:04:05Z"
FOLDER_DATE = "2024-01-02-03-04-05"
BIG = "1000000000"  # --on-demand-capacity: never throttle against the local server
SERVER_LABEL = {"dynalite": "dynalite (with --path)", "ddblocal": "DynamoDB Local 3.3.0 (in memory)"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=200_000, help="items in the benchmark table (default 200000)")
    p.add_argument("--processes", type=int, default=cores,
                   help="worker processes for ours and the floor (default: cores)")
    p.add_argument("--segments", type=int, default=2 * cores, help="parallel scan segments (default: 2 x cores)")
    p.add_argument("--memory-scaling", action="store_true",
                   help="also seed a 1M-item table and measure one export worker on it (slow)")
    p.add_argument("--profile", action="store_true", help="also cProfile one export worker and the floor")
    p.add_argument("--skip", default="", help="comma-separated contender groups to skip: "
                   "ceiling,floor,ours,provider,dynamodump,restore,memory,identity,rate,pitr,asof")
    p.add_argument("--asof-items", type=int, default=None,
                   help="items in the as-of restore's own table (default: --items)")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help="comma-separated DynamoDB servers to measure, the first fully, the others' ceilings and "
                   f"ours against them (default %(default)s; one of {', '.join(BACKENDS)} or both)")
    p.add_argument("--out", type=Path, default=REPO / "bench-results")
    p.add_argument("--repeats", type=int, default=3, help="runs per contender; the median is reported (default 3)")
    p.add_argument("--seed-processes", type=int, default=max(2, cores * 2))
    return p.parse_args(argv)


def dynamodump_bin() -> Path | None:
    """dynamodump lives in its own venv (it pins an older boto3); install it if missing."""
    binary = DUMPODUMP_VENV / "bin" / "dynamodump"
    if binary.exists():
        return binary
    uv = shutil.which("uv")
    if uv is None:
        log.warning("uv not found: skipping dynamodump")
        return None
    import subprocess

    reqs = REPO / "bench" / "requirements-dynamodump.txt"
    subprocess.run([uv, "venv", "--quiet", "--allow-existing", "--python", "3.11", str(DUMPODUMP_VENV)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python",
                    str(DUMPODUMP_VENV / "bin" / "python"), "-r", str(reqs)], check=True)
    return binary if binary.exists() else None


@dataclass
class Contender:
    name: str
    command: list[str]
    before: Callable[[], None] | None = None
    after: Callable[[Measurement, Path], None] | None = None
    cwd: Path | None = None


def by_round(ours: list[Measurement], ceiling: list[Measurement], rate: Callable[[Measurement], float]) -> list[float]:
    """Each round's rate of ours over the ceiling's in the same round (failed runs left out)."""
    return [round(rate(m) / c.items_per_second, 3) for m, c in zip(ours, ceiling, strict=True)
            if m.returncode == 0 and c.returncode == 0 and c.items_per_second > 0]


class Bench:
    def __init__(self, args: argparse.Namespace, ddb_url: str, s3_url: str, server_pids: list[int],
                 s3_pids: list[int] | None = None, backend: str = "dynalite") -> None:
        self.args = args
        self.backend = backend
        self.ddb_url, self.s3_url = ddb_url, s3_url
        self.server_pids = server_pids
        self.s3_pids = s3_pids or []
        self.logs = args.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update({
            "AWS_ENDPOINT_URL_DYNAMODB": ddb_url, "AWS_ENDPOINT_URL_S3": s3_url,
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins"), str(REPO / "include")]),
            "AIRFLOW_HOME": str(STATE / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_AWS_DEFAULT": (
                '{"conn_type": "aws", "login": "local", "password": "local", "extra": {"region_name": "us-east-1", '
                f'"service_config": {{"s3": {{"endpoint_url": "{s3_url}"}}, '
                f'"dynamodb": {{"endpoint_url": "{ddb_url}"}}}}}}}}'
            ),
        })
        self.results: list[Measurement] = []
        self.memory: list[Measurement] = []
        self.checks: dict[str, Any] = {}
        self.rounds: dict[str, list[Measurement]] = {}  # every run of the contenders run in rounds

    def run(self, name: str, command: list[str], items: int, *, record: bool = True, cwd: Path | None = None,
            repeats: int | None = None, before: Callable[[], None] | None = None,
            after: Callable[[Measurement, Path], None] | None = None) -> Measurement:
        """Run a contender ``repeats`` times (``--repeats``) and keep the median run by wall time.

        ``before`` runs ahead of every repeat, unmeasured (e.g. dropping a restore's target);
        ``after`` reads each run's output (its log, its sidecar) into the run's ``extra``.
        """
        contender = Contender(name, command, before, after, cwd)
        m = median_run([self._run_once(contender, items, attempt) for attempt in range(repeats or self.args.repeats)])
        if record:
            self.results.append(m)
        return m

    def run_rounds(self, contenders: list[Contender], items: int) -> list[Measurement]:
        """Each contender once per round, for ``--repeats`` rounds; the median run of each is recorded.

        Interleaved, so that a drift over the rounds (the machine's load, or dynalite's database
        growing and compacting as tables are dropped and refilled) falls on every contender alike
        instead of on whichever ran last. A contender and its ceiling are then compared within
        each round too (``extra.of_ceiling_by_round``, filled in by the caller).
        """
        runs: dict[str, list[Measurement]] = {c.name: [] for c in contenders}
        for attempt in range(self.args.repeats):
            for contender in contenders:
                runs[contender.name].append(self._run_once(contender, items, attempt))
        self.rounds.update(runs)
        medians = [median_run(runs[c.name]) for c in contenders]
        self.results.extend(medians)
        return medians

    def _run_once(self, contender: Contender, items: int, attempt: int) -> Measurement:
        if contender.before is not None:
            contender.before()
        log.info("running %s (%d)", contender.name, attempt + 1)
        slug = "".join(c if c.isalnum() else "-" for c in contender.name).strip("-")
        log_path = self.logs / f"{slug}-{attempt + 1}.log"
        m = run_measured(contender.name, contender.command, items, env=self.env, cwd=contender.cwd or REPO,
                         log_path=log_path, server_pids=self.server_pids, s3_pids=self.s3_pids)
        if m.returncode == 0 and contender.after is not None:
            contender.after(m, log_path)
        log.info("%s: %.1f s, %.0f items/s, CPU %.1f s, peak RSS %.0f MB%s", contender.name, m.seconds,
                 m.items_per_second, m.cpu_seconds, m.peak_rss_mb,
                 "" if m.returncode == 0 else f"  FAILED rc={m.returncode}, see {log_path}")
        return m

    def export_command(self, table: str, prefix: str, compression: str, workers: int, segments: int) -> list[str]:
        return [PY, "-m", "dynamodb_backup", "export", "--table", table, "--to", f"s3://{BUCKET}/{prefix}",
                "--segments", str(segments), "--workers", str(workers), "--read-ratio", "1.5",
                "--on-demand-capacity", BIG, "--compression", compression, "--date", DATE, "--overwrite"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    names = backends.parse_backends(args.backends)
    STATE.mkdir(parents=True, exist_ok=True)
    out = args.out
    lines, status = [], 0
    for position, backend in enumerate(names):
        args.out = out if len(names) == 1 else out / backend
        args.out.mkdir(parents=True, exist_ok=True)
        # Each keeps its own data under STATE (dynalite/ or ddblocal/): the seeded tables are per server.
        server, kept_startup = backends.start_for_bench(backend, STATE)
        log.info("%s: answering %.2f s after it was started", backend, kept_startup)
        moto = None
        try:
            moto = start_moto(free_port(), STATE)
            os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                               "AWS_DEFAULT_REGION": "us-east-1"})
            bench = Bench(args, server.url, moto.url, [server.pid] if server.pid else [],
                          [moto.pid] if moto.pid else [], backend=backend)
            status |= run_all(bench, skip if position == 0 else skip | backends.CORE_ONLY_SKIP)
            lines.append(backends.summary(backend, bench.results, kept_startup))
        finally:
            if moto is not None:
                moto.stop()
            server.stop()
    for line in lines:  # measured with nothing else running
        times = backends.startup_seconds(line["backend"], max(3, args.repeats))
        line["startup_empty_seconds"] = times
        line["startup_empty_seconds_median"] = round(sorted(times)[len(times) // 2], 2)
    comparison = backends.table(lines)
    print(f"\nthe local DynamoDB servers, {args.items:,} items (medians of {args.repeats}):\n{comparison}")
    report.write_json(out / "backends.json", {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                                             "items": args.items, "repeats": args.repeats, "backends": lines})
    (out / "backends.md").write_text(comparison + "\n")
    print(f"wrote {out / 'backends.json'} and backends.md")
    return status


def run_all(bench: Bench, skip: set[str]) -> int:
    args = bench.args
    n, procs, segs = args.items, args.processes, args.segments
    table = f"bench-{n}"
    ddb = boto3.client("dynamodb", endpoint_url=bench.ddb_url)
    s3 = boto3.client("s3", endpoint_url=bench.s3_url)
    s3.create_bucket(Bucket=BUCKET)
    seeding = [seed_table(bench.ddb_url, table, n, args.seed_processes)]
    memory_tables = {100_000: "bench-100000"}
    if args.memory_scaling:
        memory_tables[1_000_000] = "bench-1000000"
    if "memory" not in skip:
        for count, name in memory_tables.items():
            if name != table:
                seeding.append(seed_table(bench.ddb_url, name, count, args.seed_processes))

    if "identity" not in skip:
        bench.checks["fast_path_identity"] = check_fast_path_identity(bench.ddb_url, bench.s3_url, BUCKET)
        log.info("fast path identity: %s", bench.checks["fast_path_identity"])

    # The scan ceiling and our exports in rounds (ceiling, gzip, uncompressed; three times).
    scan_round: list[Contender] = []
    if "ceiling" not in skip:
        scan_round.append(Contender(
            f"ceiling: raw HTTP scan (orjson), {procs} proc, {segs} seg",
            [PY, "-m", "bench.ceiling", "scan", "--endpoint", bench.ddb_url, "--table", table,
             "--segments", str(segs), "--processes", str(procs)], after=check_printed(n)))
    if "ours" not in skip:
        for compression in ("gzip", "none"):
            prefix = f"ours-{compression}"
            scan_round.append(Contender(
                f"ours: export {'gzip' if compression == 'gzip' else 'uncompressed'}, {procs} proc, {segs} seg",
                bench.export_command(table, prefix, compression, procs, segs),
                after=items_from_sidecar(s3, f"s3://{BUCKET}/{prefix}/{table}/{FOLDER_DATE}")))
    measured = bench.run_rounds(scan_round, n)
    ours: Measurement | None = measured[-2] if "ours" not in skip else None
    if "ceiling" not in skip and "ours" not in skip:
        ceiling_runs = bench.rounds[scan_round[0].name]
        for m, contender in zip(measured[1:], scan_round[1:], strict=True):
            m.extra["of_ceiling_by_round"] = by_round(bench.rounds[contender.name], ceiling_runs,
                                                      lambda r: r.items_per_second)
    if "floor" not in skip:
        bench.run(f"floor: boto3 parallel scan, {procs} proc, {segs} seg",
                  [PY, "-m", "bench.floor", "--endpoint", bench.ddb_url, "--table", table,
                   "--segments", str(segs), "--processes", str(procs)], n)
        bench.run(f"floor: boto3 parallel scan, 1 proc, {segs} seg",
                  [PY, "-m", "bench.floor", "--endpoint", bench.ddb_url, "--table", table,
                   "--segments", str(segs), "--processes", "1"], n)
    if "pitr" not in skip:
        bench.checks["pitr_conversion"] = run_pitr(bench, table, n, ours)
    if "provider" not in skip:
        for count in (1, 4):
            bench.run(f"provider DynamoDBToS3Operator, {count} proc" + (f", {count} seg" if count > 1 else ""),
                      [PY, "-m", "bench.provider", "--table", table, "--bucket", BUCKET,
                       "--prefix", f"provider-{count}", "--segments", str(count)], n)
    dump_path = STATE / "dump"
    binary = dynamodump_bin() if ("dynamodump" not in skip or "restore" not in skip) else None
    local = ["--host", "127.0.0.1", "--port", bench.ddb_url.rsplit(":", 1)[1],
             "--accessKey", "local", "--secretKey", "local", "-r", "us-east-1", "--dumpPath", str(dump_path)]
    if binary and "dynamodump" not in skip:
        m = bench.run("dynamodump backup, 1 proc", [str(binary), "-m", "backup", "-s", table, *local], n,
                      cwd=STATE, before=functools.partial(shutil.rmtree, dump_path, ignore_errors=True))
        m.extra.update(dynamodump_scan_phase(dump_path / table, n))
    if "restore" not in skip:
        run_restores(bench, ddb, table, n, binary if "dynamodump" not in skip else None, local)
    if "asof" not in skip:
        from bench.asof import run_asof

        try:
            bench.checks["asof_restore"] = run_asof(bench, BUCKET, STATE, PY, BIG)
        except Exception as exc:  # the other contenders' figures are still written
            log.exception("the as-of restore could not be measured")
            bench.checks["asof_restore"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "memory" not in skip:
        for count, name in memory_tables.items():
            m = bench.run(f"ours: one export worker, {count:,} items", bench.export_command(
                name, "memory", "gzip", 1, segs), count, record=False, repeats=1)
            bench.memory.append(m)
    if "rate" not in skip:
        bench.checks["rate_accuracy"] = rate_accuracy(bench)
    if args.profile:
        from bench.profiling import profile_export

        bench.checks["profile"] = profile_export(bench.ddb_url, bench.s3_url, BUCKET, table, segs, args.out)
    write_outputs(bench, ours, seeding)
    return 0 if all(m.returncode == 0 for m in bench.results + bench.memory) else 1


def run_pitr(bench: Bench, table: str, n: int, ours: Measurement | None) -> dict[str, Any]:
    """Convert a native export of the table (made once by the PITR stand-in) with 1 and N workers."""
    from bench.pitr import prepare

    standin, arn = prepare(bench.ddb_url, bench.s3_url, table, BUCKET, STATE)
    try:
        runs = {}
        s3 = boto3.client("s3", endpoint_url=bench.s3_url)
        destination = f"pitr/{table}/{FOLDER_DATE}"
        for procs in sorted({1, bench.args.processes}):
            # Each repeat starts from an empty folder: the conversion's checkpoints would skip finished files.
            runs[procs] = bench.run(f"ours: pitr convert (native export -> Data Pipeline), {procs} proc", [
                PY, "-m", "bench.pitr", "convert", "--export-arn", arn, "--standin", standin.url,
                "--table", table, "--to", f"s3://{BUCKET}/{destination}", "--processes", str(procs)], n,
                before=functools.partial(clear_prefix, s3, BUCKET, destination + "/"))
    finally:
        standin.stop()
    best = runs[bench.args.processes]
    ratio = best.items_per_second / ours.items_per_second if ours and ours.items_per_second else None
    check = {"items_per_second": round(best.items_per_second), "vs_scan_export": round(ratio, 2) if ratio else None,
             "one_worker_peak_rss_mb": round(runs[1].peak_rss_mb, 1), "goal": ">= 2x scan export, <= 150 MB/worker"}
    log.info("pitr conversion: %s", check)
    return check


def rate_accuracy(bench: Bench) -> list[dict[str, Any]]:
    """Consumed read units/s of an export through the capacity-enforcing proxy, against the target.

    60 s of simulated time per ratio (every scan is real; only waiting is simulated).
    """
    sys.path.insert(0, str(REPO / "tests"))
    from faultproxy.rate_accuracy import measure

    rows = []
    for ratio in (0.25, 0.5, 1.0):
        result = measure(ratio, dynamodb_url=bench.ddb_url, s3_url=bench.s3_url, seconds=60.0)
        log.info("rate accuracy at %.2f: target %.2f units/s, achieved %.2f (%.3fx)", ratio,
                 result["target"], result["achieved"], result["accuracy"])
        rows.append({k: result[k] for k in ("ratio", "target", "achieved", "accuracy", "seconds", "throttled")})
    return rows


def dynamodump_scan_phase(folder: Path, items: int) -> dict[str, Any]:
    """dynamodump idles before it scans (it starts 25 threads a second apart); time the scan from its files."""
    try:
        start = (folder / "schema.json").stat().st_mtime
        ends = [p.stat().st_mtime for p in (folder / "data").iterdir()]
    except OSError:
        return {}
    seconds = max(ends) - start if ends else 0.0
    return {"scan_phase_seconds": round(seconds, 2),
            "scan_phase_items_per_second": round(items / seconds, 1) if seconds > 0 else None}


def clear_prefix(s3: Any, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix``: a contender that resumes from its checkpoints must start afresh."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def check_printed(expected: int) -> Callable[[Measurement, Path], None]:
    """A ceiling run must have read or written every item: its last line says how many."""
    def after(m: Measurement, log_path: Path) -> None:
        last = log_path.read_text().strip().splitlines()[-1]
        m.extra["items_done"] = int(last.split()[1])
        if m.extra["items_done"] != expected:
            m.returncode = m.returncode or 3
            m.note = f"did {m.extra['items_done']} items, not {expected}"
    return after


def items_from_sidecar(s3: Any, folder: str) -> Callable[[Measurement, Path], None]:
    """Count an export's items from what it wrote (its sidecar), not from what was asked."""
    from dynamodb_backup.formats.catalog import read_sidecar
    from dynamodb_backup.formats.layout import S3Location

    def after(m: Measurement, _log: Path) -> None:
        m.items = read_sidecar(s3, S3Location.parse(folder)).item_count
    return after


def restore_phases(expected: int) -> Callable[[Measurement, Path], None]:
    """Read the restore's own ``loaded N items`` and ``phases: validate .. s, target .. s, load .. s, ..`` lines."""
    def after(m: Measurement, log_path: Path) -> None:
        for line in log_path.read_text().splitlines():
            if line.startswith("loaded ") and "items" in line:
                m.extra["loaded_items"] = int(line.split()[1])
            elif line.startswith("phases: "):
                m.extra["phase_seconds"] = {p.split()[0]: float(p.split()[1]) for p in line[8:].split(", ")}
        load = m.extra.get("phase_seconds", {}).get("load")
        if load:
            m.extra["load_items_per_second"] = round(m.extra.get("loaded_items", 0) / load, 1)
        if m.extra.get("loaded_items") != expected:
            m.returncode = m.returncode or 3
            m.note = f"loaded {m.extra.get('loaded_items')} items, not {expected}"
    return after


def run_restores(bench: Bench, ddb: Any, table: str, n: int, binary: Path | None, local: list[str]) -> None:
    procs = bench.args.processes
    target = f"{table}-restore-ours"
    folder = f"s3://{BUCKET}/ours-gzip/{table}/{FOLDER_DATE}"
    drop_target = functools.partial(delete_table, ddb, target)

    def restore(workers: int, *flags: str) -> list[str]:
        return [PY, "-m", "dynamodb_backup", "restore", folder, "--table", target, "--create-table",
                "--write-ratio", "1.5", "--workers", str(workers), "--on-demand-capacity", BIG, *flags]

    # The write ceiling: the same items as BatchWriteItem bodies built before the clock starts.
    bodies = STATE / f"{table}-batch-bodies.jsonl"
    ceiling_target = f"{table}-ceiling-write"
    if not bodies.exists():
        run_measured("ceiling: prepare BatchWriteItem bodies", [
            PY, "-m", "bench.ceiling", "prepare-writes", "--endpoint", bench.ddb_url, "--source", table,
            "--table", ceiling_target, "--out", str(bodies)], n, env=bench.env, cwd=REPO)

    def fresh_ceiling_target() -> None:
        delete_table(ddb, ceiling_target)
        create_table(ddb, ceiling_target)

    # The write ceiling and our restore (as a user runs it, then with the fast flags) in rounds.
    def with_sample(m: Measurement, log_path: Path) -> None:
        restore_phases(n)(m, log_path)
        if m.returncode == 0:
            m.extra["sample_matches"] = sample_matches(ddb, target, n)

    write_round = [
        Contender(f"ceiling: raw HTTP BatchWriteItem (precomputed), {procs} proc", [
            PY, "-m", "bench.ceiling", "write", "--endpoint", bench.ddb_url, "--bodies", str(bodies),
            "--processes", str(procs)], before=fresh_ceiling_target, after=check_printed(n)),
        Contender(f"ours: restore gzip, {procs} proc, as a user runs it (verify + checkpoints)",
                  restore(procs), before=drop_target, after=with_sample),
        Contender(f"ours: restore gzip, {procs} proc, fast flags (--no-verify --no-checkpoints)",
                  restore(procs, "--no-verify", "--no-checkpoints"), before=drop_target, after=restore_phases(n)),
    ]
    measured = bench.run_rounds(write_round, n)
    ceiling_runs = bench.rounds[write_round[0].name]
    for m, contender in zip(measured[1:], write_round[1:], strict=True):
        m.extra["of_ceiling_by_round"] = by_round(bench.rounds[contender.name], ceiling_runs,
                                                  lambda r: float(r.extra.get("load_items_per_second") or 0))
    # Worker scaling: the load phase's rate with 1 to 4 workers (one run each) against the same server.
    scaling = []
    for workers in (1, 2, 3, 4):
        s = bench.run(f"ours: restore, {workers} workers (scaling, fast flags)",
                      restore(workers, "--no-verify", "--no-checkpoints"), n, record=False, repeats=1,
                      before=drop_target, after=restore_phases(n))
        scaling.append({"workers": workers, "seconds": round(s.seconds, 2),
                        "load_items_per_second": s.extra.get("load_items_per_second"),
                        "cpu_seconds": round(s.cpu_seconds, 1),
                        "server_cpu_seconds": round(s.server_cpu_seconds or 0, 1), "returncode": s.returncode})
    bench.checks["restore_worker_scaling"] = scaling
    if binary is not None:
        if not (STATE / "dump" / table / "data").exists():
            log.info("no dynamodump backup on disk: taking one (not measured)")
            run_measured("dynamodump backup (setup)", [str(binary), "-m", "backup", "-s", table, *local], n,
                         env=bench.env, cwd=STATE)
        dd_target = f"{table}-restore-dynamodump"
        m = bench.run("dynamodump restore, 1 proc", [
            str(binary), "-m", "restore", "-s", table, "-d", dd_target, *local,
            "--billingMode", "PAY_PER_REQUEST", "--noConfirm"], n, cwd=STATE,
            before=functools.partial(delete_table, ddb, dd_target))
        if m.returncode == 0:
            m.extra["restored_items"] = count_items(bench.ddb_url, dd_target)
            m.extra["sample_matches"] = sample_matches(ddb, dd_target, n)


def write_outputs(bench: Bench, ours: Measurement | None, seeding: list[dict[str, Any]]) -> None:
    args = bench.args
    load = os.getloadavg()[0]
    machine = f"{os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}, load avg {load:.1f} at end"
    header = list(report.COLUMNS)
    body = report.rows(bench.results, ours)
    mem_body = report.rows(bench.memory, None)
    targets = report.targets(bench.results, bench.memory, ours)
    print()
    print(f"{args.items:,} items of about 500 bytes; {machine}; {SERVER_LABEL[bench.backend]}, moto S3")
    print(report.text_table(header, body))
    if bench.memory:
        print("\nmemory of one export worker (1 process, --workers 1):")
        print(report.text_table(header, mem_body))
    print("\ntargets:")
    for t in targets:
        print(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['figure']}")
    for m in bench.results:
        if "phase_seconds" in m.extra:
            print(f"  {m.name}: phases {m.extra['phase_seconds']}, load {m.extra.get('load_items_per_second')} items/s")
        if "of_ceiling_by_round" in m.extra:
            print(f"  {m.name}: of its ceiling round by round {m.extra['of_ceiling_by_round']}")
    for name, value in bench.checks.items():
        if name not in ("profile", "rate_accuracy"):
            print(f"check {name}: {value}")
    rates = bench.checks.get("rate_accuracy") or []
    if rates:
        print("\nread-rate accuracy (export through the capacity-enforcing proxy, 60 s simulated):")
        for r in rates:
            print(f"  ratio {r['ratio']:.2f}: target {r['target']:.2f} units/s, achieved {r['achieved']:.2f}"
                  f" ({r['accuracy']:.3f}x)")
    when = datetime.now(UTC).isoformat(timespec="seconds")
    report.write_json(args.out / "results.json", {
        "when": when, "machine": machine, "backend": bench.backend, "items": args.items, "processes": args.processes,
        "segments": args.segments, "seeding": seeding, "checks": bench.checks,
        "results": [m.to_dict() for m in bench.results], "memory": [m.to_dict() for m in bench.memory],
        "targets": targets,
    })
    md = [f"Run {when}: {args.items:,} items of about 500 bytes, {machine}; local {SERVER_LABEL[bench.backend]} "
          f"and moto S3 on the same machine. CPU s is the contender's process tree (user+sys); server CPU s is "
          f"{bench.backend}'s; peak RSS is the largest single process.", "", report.markdown_table(header, body)]
    if bench.memory:
        md += ["", "Peak memory of one export worker:", "", report.markdown_table(header, mem_body)]
    md += ["", "| target | figure | met |", "|---|---|---|"]
    md += [f"| {t['target']} | {t['figure']} | {'yes' if t['met'] else 'no'} |" for t in targets]
    if rates:
        md += ["", "Read-rate accuracy (export through the capacity-enforcing proxy, 60 s simulated):", "",
               "| read ratio | target units/s | achieved units/s | achieved / target |", "|---:|---:|---:|---:|"]
        md += [f"| {r['ratio']:.2f} | {r['target']:.2f} | {r['achieved']:.2f} | {r['accuracy']:.3f} |" for r in rates]
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    report.write_chart(args.out / "items_per_second.png", bench.results,
                       f"DynamoDB backup/restore, {args.items:,} items, {machine}")
    print(f"\nwrote {args.out / 'results.json'}, results.md and items_per_second.png")


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"bench finished in {time.perf_counter() - started:.0f} s")
    sys.exit(code)
