"""``stream``: tail a table's DynamoDB stream into S3 segments for a bounded time.

    dynamodb-backup stream --table T --to s3://bucket/prefix --for 60s

Segments go to ``<prefix>/<T>/stream/``; the next run resumes where this one stopped (progress is
in S3). A broken chain (records the stream no longer holds) is marked, a new base is taken at once,
and a ``notice:`` line is printed on stderr; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import re
import sys

from dynamodb_backup.aws import clients
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.commands import Subparsers, client_factory
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.streams.gaps import notice_line, take_base_backup
from dynamodb_backup.streams.segmentwriter import DEFAULT_FLUSH_SECONDS, SegmentSettings
from dynamodb_backup.streams.source import StreamSource
from dynamodb_backup.streams.tail import TailSettings, tail_stream

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, param: str) -> float:
    """``90s``, ``500ms``, ``5m``, ``1h`` or plain seconds (``replicate`` reads its durations the same way)."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ParameterError(f"{param}: {text!r} is not a duration such as 90s, 5m or 1h")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ParameterError(f"{param}: must be more than 0, got {text!r}")
    return seconds


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("stream", help="tail a table's stream into S3 segments for a bounded time")
    p.add_argument("--table", required=True)
    p.add_argument("--to", required=True, metavar="S3_URI",
                   help="s3://bucket/prefix; segments go to <table>/stream/ under it, beside the table's backups")
    p.add_argument("--for", dest="duration", default="60s", metavar="DURATION",
                   help="how long to tail, e.g. 60s, 5m (default 60s); the next run resumes")
    p.add_argument("--flush-every", default=f"{DEFAULT_FLUSH_SECONDS:.0f}s", metavar="DURATION",
                   help=f"close a segment at least this often (default {DEFAULT_FLUSH_SECONDS:.0f}s, at most 60s)")
    p.add_argument("--segment-mb", type=int, default=16, help="close a segment at this many uncompressed MB")
    p.add_argument("--progress-every", default="10s", metavar="DURATION", help="a progress line this often")
    p.add_argument("--no-base", action="store_true",
                   help="on a break (or the first run) mark it but take no new base (not recommended)")
    p.add_argument("--poll-every", default="10s", metavar="DURATION",
                   help="how often a new base's PITR export is checked (default 10s)")
    p.add_argument("--endpoint", help="DynamoDB endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB, else AWS)")
    p.add_argument("--streams-endpoint",
                   help="DynamoDB Streams endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB_STREAMS, else "
                        "streams.dynamodb.<region>.amazonaws.com)")
    p.add_argument("--region")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    table = check_table_name(args.table, "--table")
    base = S3Location.parse(args.to, "--to")
    flush = parse_duration(args.flush_every, "--flush-every")
    if flush > 60:
        raise ParameterError(f"--flush-every: at most 60s (segments are written at least once a minute), "
                             f"got {args.flush_every!r}")
    if not 1 <= args.segment_mb <= 1024:
        raise ParameterError(f"--segment-mb must be between 1 and 1024, got {args.segment_mb}")
    settings = TailSettings(duration=parse_duration(args.duration, "--for"),
                            segments=SegmentSettings(flush_seconds=flush, max_bytes=args.segment_mb * 1024 * 1024),
                            progress_seconds=min(parse_duration(args.progress_every, "--progress-every"), 10.0),
                            describe_seconds=min(10.0, flush), idle_seconds=min(1.0, flush / 2),
                            take_base_at_start=not args.no_base)
    make_client = client_factory(args.endpoint, args.region)
    source = StreamSource(make_client("dynamodb"), clients.client("dynamodbstreams", args.streams_endpoint,
                                                                  args.region), table)
    take_base = None if args.no_base else take_base_backup(make_client, base, ExportSettings(),
                                                           parse_duration(args.poll_every, "--poll-every"))

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = tail_stream(source, make_client("s3"), base, settings, take_base, report=say)
    for marker in result.breaks:
        print(f"notice: {notice_line(marker)}", file=sys.stderr, flush=True)
    print(result.line())
    return 1 if result.breaks else 0
