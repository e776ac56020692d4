"""Where an export worker's time goes: cProfile of one in-process worker, grouped by area."""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from dynamodb_backup.backup.export import ExportSettings, export_share
from dynamodb_backup.backup.plan import WorkerShare
from dynamodb_backup.formats.layout import S3Location

from .floor import scan_segments

#: (area, substring of "file:function") checked in order; the first match wins.
AREAS: list[tuple[str, str]] = [
    ("gzip (zlib)", "zlib"),
    ("orjson (decode + encode)", "orjson"),
    ("codec (wire -> Data Pipeline)", "codec/datapipeline"),
    ("S3 upload (multipart)", "s3writer"),
    ("botocore parser", "botocore/parsers"),
    ("botocore serializer", "botocore/serialize"),
    ("botocore validation", "botocore/validate"),
    ("botocore signing/auth", "botocore/auth"),
    ("botocore hooks/events", "botocore/hooks"),
    ("socket I/O (waiting on the server)", "socket"),
    ("SSL/http.client", "http/client"),
    ("urllib3", "urllib3"),
    ("botocore other", "botocore"),
]


def area_of(key: str) -> str:
    for area, marker in AREAS:
        if marker in key:
            return area
    return "other Python"


def group_by_area(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Self time per area, largest first."""
    totals: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        area = area_of(f"{filename}:{func}")
        totals[area] = totals.get(area, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def _profile(label: str, call: Callable[[], Any], out: Path) -> dict[str, Any]:
    profiler = cProfile.Profile()
    wall = time.perf_counter()
    profiler.enable()
    call()
    profiler.disable()
    wall = time.perf_counter() - wall
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    areas = group_by_area(stats)
    total = sum(t for _, t in areas) or 1.0
    stats.sort_stats("tottime").print_stats(25)
    text = [f"{label}: {wall:.1f} s wall under cProfile", "", "self time by area:"]
    text += [f"  {t:7.2f} s  {100 * t / total:5.1f}%  {a}" for a, t in areas]
    text += ["", stream.getvalue()]
    out.write_text("\n".join(text))
    return {"wall_seconds": round(wall, 2),
            "areas": {a: round(100 * t / total, 1) for a, t in areas}, "file": str(out)}


def profile_export(ddb_url: str, s3_url: str, bucket: str, table: str, segments: int, out_dir: Path) -> dict[str, Any]:
    """Profile one worker exporting the whole table (gzip), and the floor's scan, in this process."""
    ddb = boto3.client("dynamodb", endpoint_url=ddb_url)
    s3 = boto3.client("s3", endpoint_url=s3_url)
    share = WorkerShare(worker=0, segments=list(range(segments)), total_segments=segments, read_rate=1e9)
    folder = S3Location(bucket, "profile")
    result = {
        "export": _profile("export_share, 1 worker, gzip", lambda: export_share(
            ddb, s3, table, folder, share, ExportSettings(compression="gzip")), out_dir / "profile_export.txt"),
        "floor": _profile("boto3 scan, 1 process", lambda: scan_segments(
            ddb_url, table, list(range(segments)), segments), out_dir / "profile_floor.txt"),
    }
    return result


def profile_conversion(ddb_url: str, s3_url: str, bucket: str, table: str, export_time: str,
                       out_dir: Path) -> dict[str, Any]:
    """Profile one worker converting a native export of ``table`` (made first, through the PITR stand-in
    at ``ddb_url``) into Data Pipeline lines (gzip), in this process."""
    from datetime import datetime

    from dynamodb_backup.pitr.convert import convert_share, plan_shares
    from dynamodb_backup.pitr.native import describe_export, export_request, start_export
    from dynamodb_backup.pitr.steps import conversion_shares

    ddb = boto3.client("dynamodb", endpoint_url=ddb_url)
    s3 = boto3.client("s3", endpoint_url=s3_url)
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    at = datetime.fromisoformat(export_time.replace("Z", "+00:00"))
    staging = S3Location(bucket, "profile-pitr/_native")
    export_arn = start_export(ddb, export_request(arn, at, staging, f"profile-{time.time()}"))
    while not (status := describe_export(ddb, export_arn)).finished:
        time.sleep(1)
    files = [f for share in conversion_shares(s3, status, 1) for f in share.files]
    share = plan_shares(files, 1)[0]
    folder = S3Location(bucket, "profile-pitr")
    return {"conversion": _profile("convert_share, 1 worker, gzip", lambda: convert_share(
        s3, table, folder, share, ExportSettings(compression="gzip")), out_dir / "profile_conversion.txt")}
