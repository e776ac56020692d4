"""Compression library and level by measured ratio against CPU, on the bench's three shapes.

Why: on 100 KB items, zlib's gzip at level 6 was two thirds of an export's CPU (issue 24). The
output must stay standard gzip (Data Pipeline's importer and ``gunzip`` read it), so the choice is
between implementations of deflate (zlib, python-isal's ``isal_zlib``, zlib-ng's ``zlib_ng``) and
their levels, with zstd's levels beside them for ``--compression zstd``.

Each shape's Data Pipeline lines (about 8 MB of them) go through a streaming compressor in 1 MB
writes, as the export's writer feeds it one scan page at a time. For each codec and level: CPU
seconds (``time.process_time``, the minimum of ``--rounds``; CPU is steadier than wall time on a
shared machine), MB of lines per CPU-second to compress and to decompress, and the compressed size
against zlib level 6's. Libraries not installed are skipped and listed.

    PYTHONPATH=plugins:bench .venv/bin/python bench/compression_levels.py [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

from shapes import make_item

from dynamodb_backup.formats.codec.datapipeline import encode_item

#: Lines per shape: about 8 MB each (one export part's worth).
TARGET_BYTES = 8 * 1024 * 1024
WRITE_BYTES = 1024 * 1024
SHAPES = ("small", "wide", "large")


def shape_lines(shape: str) -> list[bytes]:
    """Whole writes of about 1 MB of newline-terminated lines, as the writer receives them."""
    writes: list[bytes] = []
    batch: list[bytes] = []
    size = total = i = 0
    while total < TARGET_BYTES:
        line = encode_item(make_item(shape, i)) + b"\n"
        batch.append(line)
        size += len(line)
        total += len(line)
        i += 1
        if size >= WRITE_BYTES:
            writes.append(b"".join(batch))
            batch, size = [], 0
    if batch:
        writes.append(b"".join(batch))
    return writes


Codec = tuple[str, int, Callable[[], Any], Callable[[], Any]]


def codecs() -> tuple[list[Codec], list[str]]:
    """(library, level, new compressor, new decompressor) for every library importable here."""
    found: list[Codec] = []
    missing: list[str] = []

    def deflate(module: Any, name: str, levels: list[int]) -> None:
        for level in levels:
            found.append((name, level, lambda m=module, lv=level: m.compressobj(lv, m.DEFLATED, 31),
                          lambda m=module: m.decompressobj(31)))

    deflate(zlib, "zlib", [1, 3, 6])
    others = (("isal.isal_zlib", "isal", [0, 1, 2, 3]), ("zlib_ng.zlib_ng", "zlib-ng", [1, 2, 3, 6]))
    for module_name, name, levels in others:
        try:
            deflate(importlib.import_module(module_name), name, levels)
        except ImportError:
            missing.append(name)
    import zstandard
    for level in (1, 2, 3, 6, 9):
        found.append(("zstd", level, lambda lv=level: zstandard.ZstdCompressor(level=lv).compressobj(),
                      lambda: zstandard.ZstdDecompressor().decompressobj()))
    return found, missing


def _cpu(work: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(rounds):
        start = time.process_time()
        result = work()
        best = min(best, time.process_time() - start)
    return best, result


def measure(writes: list[bytes], new_compressor: Callable[[], Any], new_decompressor: Callable[[], Any],
            rounds: int) -> dict[str, float]:
    raw = sum(map(len, writes))

    def compress() -> bytes:
        obj = new_compressor()
        out = bytearray()
        for data in writes:
            out += obj.compress(data)
        out += obj.flush()
        return bytes(out)

    compress_cpu, stored = _cpu(compress, rounds)

    def decompress() -> int:
        obj, total = new_decompressor(), 0
        for start in range(0, len(stored), WRITE_BYTES):
            total += len(obj.decompress(stored[start:start + WRITE_BYTES]))
        return total

    decompress_cpu, back = _cpu(decompress, rounds)
    assert back == raw, "round trip lost bytes"
    mb = raw / 1e6
    return {"raw_bytes": raw, "stored_bytes": len(stored), "compress_cpu_s": round(compress_cpu, 4),
            "compress_mb_per_cpu_s": round(mb / max(compress_cpu, 1e-9), 1),
            "decompress_mb_per_cpu_s": round(mb / max(decompress_cpu, 1e-9), 1)}


def run(rounds: int) -> dict[str, Any]:
    found, missing = codecs()
    results: dict[str, Any] = {"rounds": rounds, "missing": missing, "shapes": {}}
    for shape in SHAPES:
        writes = shape_lines(shape)
        rows = []
        for name, level, new_c, new_d in found:
            rows.append({"library": name, "level": level, **measure(writes, new_c, new_d, rounds)})
        baseline = next(r["stored_bytes"] for r in rows if r["library"] == "zlib" and r["level"] == 6)
        for row in rows:
            row["size_vs_zlib6"] = round(row["stored_bytes"] / baseline, 3)
        results["shapes"][shape] = rows
    return results


def table(results: dict[str, Any]) -> str:
    out = []
    for shape, rows in results["shapes"].items():
        out.append(f"\n{shape} ({rows[0]['raw_bytes'] / 1e6:.1f} MB of lines)")
        out.append(f"{'library':8} {'level':>5} {'compress MB/cpu-s':>18} {'decompress MB/cpu-s':>20} "
                   f"{'ratio':>6} {'size vs zlib 6':>15}")
        for r in rows:
            out.append(f"{r['library']:8} {r['level']:>5} {r['compress_mb_per_cpu_s']:>18} "
                       f"{r['decompress_mb_per_cpu_s']:>20} {r['raw_bytes'] / r['stored_bytes']:>6.2f} "
                       f"{r['size_vs_zlib6']:>15}")
    if results["missing"]:
        out.append(f"\nnot installed (skipped): {', '.join(results['missing'])}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    results = run(args.rounds)
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
