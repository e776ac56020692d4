"""``make bench-streams``: a stream backup and a live replica under a sustained write workload.

For each backend where streams work (``ddblocal``: DynamoDB Local's own Streams; ``journal``: the PITR
stand-in's Streams over its journal, in front of dynalite) the bench starts the local stack, finds the write
rate the backend holds (the target, default 1,000 writes/s, else 80% of what a calibration achieved), and for
each settings and round:

1. creates a streamed table and a replica table, and starts, as real processes, ``dynamodb-backup stream``
   and ``dynamodb-backup replicate`` (each behind its own S3 proxy that counts PUT/GET/LIST requests);
2. writes puts, updates and deletes over 2,000 keys at that rate, plus a probe item ten times a second
   (``bench/streams_load.py`` says how the probe times the recovery point and the lag);
3. after a warm-up, samples once a second the recovery point age and the replica lag; counts S3 requests;
4. stops writing, waits for both processes, and takes their CPU (``wait4``: user + system of each tree).

It prints a table of the medians of the rounds and writes every round to ``docs/bench-streams.json``.

    python -m bench.streams --backends ddblocal,journal --configs fast,default --rounds 3 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _p in (REPO, REPO / "plugins", REPO / "include"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.backends import start_for_bench  # noqa: E402
from bench.streams_figures import (  # noqa: E402
    achieved_rate,
    counts_between,
    cpu_us_per_record,
    medians,
    per_hour,
    percentile,
    rate_held,
    rate_to_hold,
    round_figures,
    table,
)
from bench.streams_load import PROBE_EVERY, CountingS3Proxy, Sampler, Workload, client, create_table  # noqa: E402
from bench.streams_results import machine, print_saved, save  # noqa: E402
from dynamodb_backup.formats.layout import S3Location  # noqa: E402
from dynamodb_backup.operators.stream import REPLICA_FLUSH_SECONDS  # noqa: E402
from dynamodb_backup.streams.segmentwriter import DEFAULT_FLUSH_SECONDS  # noqa: E402
from local_aws import DDBLOCAL, DYNALITE, free_port, start_moto, start_pitr  # noqa: E402

BACKENDS = ("ddblocal", "journal")
#: The tail's ``--flush-every`` and the replica's ``--poll``: the defaults, the fastest each takes, and the
#: tail's former default of a whole minute, and the stream DAG's flush when the table has a replica.
CONFIGS = {"default": (f"{DEFAULT_FLUSH_SECONDS:.0f}s", "2s"), "fast": ("1s", "1s"), "minute": ("60s", "2s"),
           "replica": (f"{REPLICA_FLUSH_SECONDS:.0f}s", "2s")}
BUCKET = "bench-streams"
TAIL_LINE = re.compile(r"stream \S+: ([\d,]+) records \(([\d,]+) stored\), ([\d,]+) segments")
REPLICA_LINE = re.compile(r"(\d+) changes applied")


@dataclass
class Stack:
    backend: str
    url: str  # the stand-in: DescribeTable, DescribeContinuousBackups and Streams for the tail
    write_url: str  # the workload's writes: DynamoDB Local itself, or the stand-in that journals them
    replica_url: str  # the replica table's server
    s3_url: str


def say(line: str) -> None:
    print(line, flush=True)


def start_stack(backend: str, state: Path, stack: ExitStack) -> Stack:
    """The local stack as the tests run it: the PITR stand-in in front of DynamoDB Local (its own Streams,
    relayed) or of dynalite (Streams over the stand-in's journal); moto for S3. The replica table is on the
    DynamoDB server itself."""
    moto = start_moto(free_port(), state)
    stack.callback(moto.stop)
    server, _ = start_for_bench(DDBLOCAL if backend == "ddblocal" else DYNALITE, state)
    stack.callback(server.stop)
    # The stand-in answers DescribeContinuousBackups (DynamoDB Local does not), which the tail asks before it
    # takes its base; on DynamoDB Local it relays the Streams calls, on dynalite it serves them over its journal.
    pitr = start_pitr(free_port(), state, upstream_url=server.url, s3_url=moto.url,
                      streams="journal" if backend == "journal" else None)
    stack.callback(pitr.stop)
    url = pitr.url
    client("s3", moto.url).create_bucket(Bucket=BUCKET)
    return Stack(backend, url, server.url if backend == "ddblocal" else url, server.url, moto.url)


def calibrate(st: Stack, target: float, seconds: float) -> tuple[float, int]:
    """The workload alone at ``target`` for ``seconds``: (writes/s achieved, the rate the rounds ask for)."""
    name = f"calibrate-{uuid.uuid4().hex[:6]}"
    create_table(client("dynamodb", st.url), name, stream=True)
    workload = Workload(st.write_url, name, target)
    workload.start()
    time.sleep(seconds)
    ran = workload.stop()
    achieved = achieved_rate(workload.done, ran)
    return achieved, rate_to_hold(target + 1 / PROBE_EVERY, achieved)


def _env(st: Stack, s3_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"AWS_ENDPOINT_URL_DYNAMODB": st.url, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": st.url,
                "AWS_ENDPOINT_URL_S3": s3_url, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO / "include")])})
    return env


def _wait_cpu(proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait for ``proc`` (killing it after ``timeout`` s) and return its tree's user + system CPU seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _cli(name: str, profile_to: Path | None) -> list[str]:
    """``python -m dynamodb_backup <name>``, under cProfile when ``profile_to`` is given."""
    profiler = ["-m", "cProfile", "-o", str(profile_to / f"{name}.prof")] if profile_to else []
    return [sys.executable, *profiler, "-m", "dynamodb_backup", name]


def run_round(st: Stack, config: str, rate: int, seconds: float, warmup: float, logs: Path,
              profile_to: Path | None = None) -> dict[str, Any]:
    flush, poll = CONFIGS[config]
    table_name = f"bench-{config}-{uuid.uuid4().hex[:8]}"
    replica_table = f"{table_name}-replica"
    create_table(client("dynamodb", st.url), table_name, stream=True)
    create_table(client("dynamodb", st.replica_url), replica_table, stream=False)
    base = S3Location(BUCKET, "bench")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    run_for = f"{int(warmup + seconds + 5)}s"
    with CountingS3Proxy(st.s3_url) as tail_s3, CountingS3Proxy(st.s3_url) as replica_s3:
        tail_log, replica_log = logs / f"{table_name}.tail.log", logs / f"{table_name}.replica.log"
        tail = subprocess.Popen(
            [*_cli("stream", profile_to), "--table", table_name, "--to", base.uri,
             "--for", run_for, "--flush-every", flush], env=_env(st, tail_s3.url),
            stdout=subprocess.PIPE, stderr=open(tail_log, "wb"))  # noqa: SIM115
        replica = subprocess.Popen(
            [*_cli("replicate", profile_to), "--from", base.uri, "--table", table_name,
             "--to-table", replica_table, "--to-endpoint", st.replica_url, "--for", run_for, "--poll", poll,
             "--write-ratio", "1.0", "--on-demand-capacity", "40000"], env=_env(st, replica_s3.url),
            stdout=subprocess.PIPE, stderr=open(replica_log, "wb"))  # noqa: SIM115
        workload = Workload(st.write_url, table_name, rate - 1 / PROBE_EVERY)
        sampler = Sampler(st.s3_url, st.replica_url, base, table_name, replica_table, say=say)
        workload.start()
        sampler.start()
        started = time.monotonic()
        counted_from: tuple[dict[str, int], dict[str, int]] | None = None
        window_start, said = started, started
        while (elapsed := time.monotonic() - started) < warmup + seconds:
            if counted_from is None and elapsed >= warmup:
                sampler.recording, counted_from = True, (tail_s3.snapshot(), replica_s3.snapshot())
                window_start = time.monotonic()
            if time.monotonic() - said >= 10:
                said = time.monotonic()
                say(f"  [{st.backend}/{config}] {elapsed:3.0f} s: {workload.done:,} writes, "
                    f"RP age {_last(sampler.rp_ages)}, replica lag {_last(sampler.lags)}")
            time.sleep(0.2)
        sampler.recording = False
        window = time.monotonic() - window_start
        tail_counts = counts_between(counted_from[0] if counted_from else {}, tail_s3.snapshot())
        replica_counts = counts_between(counted_from[1] if counted_from else {}, replica_s3.snapshot())
        load_average = round(os.getloadavg()[0], 1)  # other work on the machine, said beside the figures
        ran = workload.stop()
        tail_cpu = _wait_cpu(tail, warmup + seconds + 180)
        replica_cpu = _wait_cpu(replica, warmup + seconds + 180)
        sampler.stop()
    tail_out = tail.stdout.read().decode() if tail.stdout else ""
    replica_out = replica.stdout.read().decode() if replica.stdout else ""
    tail_match, replica_match = TAIL_LINE.search(tail_out), REPLICA_LINE.search(replica_out)
    records = int(tail_match.group(1).replace(",", "")) if tail_match else 0
    applied = int(replica_match.group(1)) if replica_match else 0
    tail_requests, replica_requests = sum(tail_counts.values()), sum(replica_counts.values())
    return {
        "started": started_at, "backend": st.backend, "config": config,
        "flush_every": flush, "replica_poll": poll, "table": table_name,
        "rate_asked": rate, "writes": workload.done, "write_errors": workload.errors, "seconds": round(ran, 1),
        "rate_achieved": round(achieved_rate(workload.done, ran), 1),
        "rate_held": rate_held(workload.done, ran, rate), "load_average_1m": load_average,
        "warmup_s": warmup, "window_s": round(window, 1),
        "samples": len(sampler.rp_ages), "lag_samples": len(sampler.lags),
        **{k: None if v is None else round(v, 2) for k, v in round_figures(rp_ages=sampler.rp_ages,
                                                                           lags=sampler.lags).items()},
        "recovery_point_age_series_s": [round(v, 1) for v in sampler.rp_ages],
        "replica_lag_series_s": [round(v, 1) for v in sampler.lags],
        "status_recovery_point_age_p99_s": percentile(sampler.status_rp_ages, 99),
        "status_replica_lag_p99_s": percentile(sampler.status_lags, 99),
        "tail_records": records, "tail_segments": int(tail_match.group(3).replace(",", "")) if tail_match else 0,
        "replica_applied": applied, "tail_exit": tail.returncode, "replica_exit": replica.returncode,
        "tail_cpu_s": round(tail_cpu, 2), "replica_cpu_s": round(replica_cpu, 2),
        "tail_cpu_us_per_record": _rounded(cpu_us_per_record(tail_cpu, records)),
        "replica_cpu_us_per_record": _rounded(cpu_us_per_record(replica_cpu, applied)),
        "tail_s3_requests": tail_counts, "replica_s3_requests": replica_counts,
        "tail_s3_per_hour": _rounded(per_hour(tail_requests, window)),
        "replica_s3_per_hour": _rounded(per_hour(replica_requests, window)),
        "s3_per_hour": _rounded(per_hour(tail_requests + replica_requests, window)),
    }


def _last(values: list[float]) -> str:
    return f"{values[-1]:.1f} s" if values else "-"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--configs", default="fast,default", help=f"tail/replica settings: {', '.join(CONFIGS)}")
    p.add_argument("--rate", type=float, default=1000.0, help="target writes/s (default 1000)")
    p.add_argument("--seconds", type=float, default=60.0, help="measured seconds per round (after the warm-up)")
    p.add_argument("--warmup", type=float, default=15.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calibrate-seconds", type=float, default=10.0)
    p.add_argument("--json", type=Path, default=REPO / "docs" / "bench-streams.json")
    p.add_argument("--table-only", action="store_true",
                   help="take the --json file's summary again from its rounds, print its table, and stop")
    p.add_argument("--profile-to", type=Path, help="run the tail and the replica under cProfile, writing "
                                                   "stream.prof and replicate.prof here (CPU figures then include it)")
    args = p.parse_args(argv)
    if args.table_only:
        return print_saved(args.json)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # the local stack is stopped on the way out
    backends = [b for b in args.backends.split(",") if b]
    configs = [c for c in args.configs.split(",") if c]
    for name, known in ((b, BACKENDS) for b in backends):
        if name not in known:
            raise SystemExit(f"--backends: {name!r} is not one of {', '.join(BACKENDS)}")
    for name in configs:
        if name not in CONFIGS:
            raise SystemExit(f"--configs: {name!r} is not one of {', '.join(CONFIGS)}")
    result: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                              "target_rate": args.rate, "seconds": args.seconds, "warmup": args.warmup,
                              "backends": backends, "configs": configs,
                              "summary": [], "rounds": [], "calibration": {}}
    (REPO / ".state").mkdir(exist_ok=True)
    if args.profile_to:
        args.profile_to.mkdir(parents=True, exist_ok=True)
    for backend in backends:
        with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-streams-", dir=REPO / ".state") as tmp:
            say(f"{backend}: starting the local stack")
            st = start_stack(backend, Path(tmp), stack)
            achieved, rate = calibrate(st, args.rate, args.calibrate_seconds)
            result["calibration"][backend] = {"target": args.rate, "achieved": round(achieved, 1), "asked": rate}
            say(f"{backend}: the workload alone did {achieved:,.0f} writes/s against a target of {args.rate:,.0f}; "
                f"the rounds ask for {rate:,} writes/s")
            for config in configs:
                rounds = []
                for number in range(1, args.rounds + 1):
                    say(f"{backend}/{config}: round {number} of {args.rounds}")
                    rounds.append(run_round(st, config, rate, args.seconds, args.warmup, Path(tmp),
                                            args.profile_to))
                    say(f"  {json.dumps({k: v for k, v in rounds[-1].items() if not k.endswith('requests')})}")
                result["rounds"] += rounds
                result["summary"].append({"backend": backend, "config": config, "rate_asked": rate,
                                          **medians(rounds)})
    say(table(result["summary"]))
    save(args.json, result)
    say(f"wrote {args.json}")
    return 0


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
