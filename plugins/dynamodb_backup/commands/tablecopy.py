"""``copy``: copy a table into another, across endpoints, regions or accounts.

The archived DynamoDB import/export tool's command, with its sections: several
machines can each run one section of the same copy. Every section must scan with
the same segment count, so with sections ``--segments`` is required rather than
read from a DescribeTable that could differ from one machine to the next.
"""

from __future__ import annotations

import argparse
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from dynamodb_backup.aws import clients
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, check_ratio
from dynamodb_backup.commands import Subparsers
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import check_table_name
from dynamodb_backup.tablecopy.copier import MemoryCheckpoints, SegmentState, checked, copy_segments, verify_copy
from dynamodb_backup.tablecopy.plan import CopyPlan, CopyRequest, prepare_copy, rate_readers, section_segments


class LocalCheckpoints:
    """One small JSON file per segment, replaced atomically after every page (``--checkpoint-dir``)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _write(self, name: str, data: dict[str, Any]) -> Path:
        tmp = self.directory / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_bytes(orjson.dumps(data))
        return tmp

    def claim(self, plan: CopyPlan) -> CopyPlan:
        """Record the plan once; later runs (and sections) must match it and keep its ``dest_was_empty``."""
        path, tmp = self.directory / "copy.json", self._write("copy.json", plan.to_dict())
        try:
            os.link(tmp, path)  # atomic create-if-absent: the first run's view of the destination wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        first = CopyPlan.from_dict(orjson.loads(path.read_bytes()))
        for name in ("source_table", "dest_table", "total_segments", "consistent_read"):
            if getattr(first, name) != getattr(plan, name):
                raise ParameterError(f"--checkpoint-dir {self.directory}: holds a copy with {name}="
                                     f"{getattr(first, name)!r}, not {getattr(plan, name)!r}")
        if first.dest_identity != plan.dest_identity:
            raise ParameterError(f"--checkpoint-dir {self.directory}: {plan.dest_table} was deleted and created "
                                 "again since this copy began; its checkpoints do not apply (use a fresh directory)")
        return replace(plan, dest_was_empty=first.dest_was_empty)

    def load(self, segment: int, total_segments: int) -> SegmentState | None:
        path = self.directory / f"segment-{segment:07d}.json"
        state = SegmentState.from_dict(orjson.loads(path.read_bytes())) if path.exists() else None
        return checked(state, total_segments, f"--checkpoint-dir {self.directory}")

    def save(self, state: SegmentState) -> None:
        name = f"segment-{state.segment:07d}.json"
        os.replace(self._write(name, state.to_dict()), self.directory / name)

    def flush(self) -> None:
        pass


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("copy", help="copy a table into another table (another endpoint or region)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source-table", required=True)
    p.add_argument("--dest-table", required=True)
    p.add_argument("--source-endpoint", help="source DynamoDB endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB, "
                                             "else AWS)")
    p.add_argument("--dest-endpoint", help="destination DynamoDB endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB, "
                                                "else AWS in --dest-region)")
    p.add_argument("--source-region")
    p.add_argument("--dest-region")
    p.add_argument("--read-ratio", type=float, default=0.25,
                   help="share of the source's read capacity to use (0.01-1.5, default %(default)s)")
    p.add_argument("--write-ratio", type=float, default=0.5,
                   help="share of the destination's write capacity to use (0.01-1.5, default %(default)s)")
    p.add_argument("--segments", type=int, help="parallel scan segments (default: the archived tool's rule, "
                                                "10 per 3000 units of capacity, at least one per GB); "
                                                "required with --total-sections")
    p.add_argument("--total-sections", type=int, help="split the copy into this many sections (machines)")
    p.add_argument("--section", type=int, help="which section this run copies, 0 to --total-sections - 1")
    p.add_argument("--create-dest", action="store_true",
                   help="create the destination like the source (keys, indexes, billing, TTL, SSE, tags) "
                        "if it does not exist")
    p.add_argument("--consistent-read", action="store_true",
                   help="scan the source with strongly consistent reads (twice the read units)")
    p.add_argument("--verify", action="store_true",
                   help="afterwards count the destination, and compare digests if it started empty")
    p.add_argument("--checkpoint-dir", help="keep each segment's progress here so a rerun resumes where this "
                                            "run stopped (sections on one machine may share it)")
    p.add_argument("--on-demand-capacity", type=float, default=DEFAULT_ON_DEMAND_CAPACITY,
                   help="units per second assumed for on-demand tables (default %(default)s)")
    p.set_defaults(run=run)


def check_args(args: argparse.Namespace) -> None:
    """Flag combinations argparse cannot express; each message names the flag."""
    check_ratio(args.read_ratio, "--read-ratio")
    check_ratio(args.write_ratio, "--write-ratio")
    if args.segments is not None and args.segments < 1:
        raise ParameterError(f"--segments must be at least 1, got {args.segments}")
    if (args.total_sections is None) != (args.section is None):
        raise ParameterError("--total-sections and --section go together")
    if args.total_sections is not None:
        if args.segments is None:
            raise ParameterError("--segments is required with --total-sections: every section must scan with "
                                 "the same segment count")
        if args.verify:
            raise ParameterError("--verify checks the whole destination, so it cannot run inside one section: "
                                 "after every section has finished, run the same copy once without "
                                 "--total-sections/--section and with --verify (with the sections' "
                                 "--checkpoint-dir it copies nothing again)")
        section_segments(args.segments, args.total_sections, args.section)
    if args.on_demand_capacity <= 0:
        raise ParameterError(f"--on-demand-capacity must be positive, got {args.on_demand_capacity}")
    check_table_name(args.source_table, "--source-table")
    check_table_name(args.dest_table, "--dest-table")
    if args.checkpoint_dir:
        where = Path(args.checkpoint_dir)
        if where.exists() and not where.is_dir():
            raise ParameterError(f"--checkpoint-dir {where}: exists and is not a directory")
        if where.is_dir() and not os.access(where, os.W_OK | os.X_OK):
            raise ParameterError(f"--checkpoint-dir {where}: not writable")


def run(args: argparse.Namespace) -> int:
    check_args(args)
    source = clients.client("dynamodb", args.source_endpoint, args.source_region)
    dest = clients.client("dynamodb", args.dest_endpoint, args.dest_region)
    request = CopyRequest(
        source_table=args.source_table, dest_table=args.dest_table, read_ratio=args.read_ratio,
        write_ratio=args.write_ratio, segments=args.segments, create_dest=args.create_dest,
        consistent_read=args.consistent_read,
        on_demand_capacity=args.on_demand_capacity,
    )
    plan = prepare_copy(source, dest, request)
    store = LocalCheckpoints(args.checkpoint_dir) if args.checkpoint_dir else MemoryCheckpoints()
    if isinstance(store, LocalCheckpoints):
        plan = store.claim(plan)
    if args.total_sections is None:
        segments, what = list(range(plan.total_segments)), f"{plan.total_segments} segments"
    else:
        segments = section_segments(plan.total_segments, args.total_sections, args.section)
        what = (f"section {args.section} of {args.total_sections}: segments {segments[0]}-{segments[-1]} "
                f"of {plan.total_segments}")
    read_rate, write_rate = plan.rates(segments)
    result = copy_segments(
        source, dest, plan.source_table, plan.dest_table, segments, plan.total_segments,
        TokenBucket(read_rate), TokenBucket(write_rate), key_names=plan.key_names, checkpoint=store,
        index_scales=plan.dest_index_scales,
        rates_now=rate_readers(source, dest, plan, request, segments, plan.dest_index_scales),
        consistent_read=plan.consistent_read,
    )
    summary, fresh = result.to_dict(), result.items - result.resumed_items
    earlier = f", {result.resumed_items:,} of them by an earlier run" if result.resumed_items else ""
    print(f"copied {result.items:,} items{earlier} from {plan.source_table} to {plan.dest_table} ({what}) in "
          f"{result.seconds:.1f} s: {summary['read_units']:,.1f} read units, {summary['write_units']:,.1f} "
          f"write units, {fresh / max(result.seconds, 1e-9):,.0f} items/s")
    if args.verify:
        check = verify_copy(dest, plan, result.digest, args.read_ratio, args.on_demand_capacity, source_client=source)
        print(check.message)
        return 0 if check.ok else 1
    return 0
