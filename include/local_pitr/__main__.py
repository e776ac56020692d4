"""``python -m local_pitr --port P --upstream http://127.0.0.1:<dynalite> --s3-endpoint http://127.0.0.1:<moto>
--state-dir DIR [--lag-seconds N] [--min-export-seconds S]``: serve until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from local_pitr.service import DEFAULT_MIN_INCREMENTAL_WINDOW_SECONDS, StandIn
from local_pitr.settings import DEFAULT_MIN_EXPORT_SECONDS, LAG_ENV, Settings, default_lag_seconds


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_pitr",
        description="Local stand-in for DynamoDB PITR and exports, in front of dynalite "
        "(every other call passes through).",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (the public DynamoDB endpoint)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--upstream", required=True, help="dynalite's URL, e.g. http://127.0.0.1:4570")
    parser.add_argument("--s3-endpoint", required=True, help="S3 (moto) URL the exports are written to")
    parser.add_argument("--state-dir", type=Path, required=True,
                        help="where the SQLite journal and export records live")
    parser.add_argument("--lag-seconds", type=float, default=default_lag_seconds(),
                        help=f"LatestRestorableDateTime = now - lag (env {LAG_ENV}, default %(default)s)")
    parser.add_argument("--min-export-seconds", type=float, default=DEFAULT_MIN_EXPORT_SECONDS,
                        help="an export stays IN_PROGRESS at least this long (default %(default)s)")
    parser.add_argument("--min-incremental-window-seconds", type=float,
                        default=DEFAULT_MIN_INCREMENTAL_WINDOW_SECONDS,
                        help="shortest incremental window (AWS: 900; lower only for tests)")
    parser.add_argument("--streams", choices=("relay", "journal"), default="relay",
                        help="relay: DynamoDB Streams calls go to the backend (DynamoDB Local serves them); "
                             "journal: the stand-in serves them over its journal, with shards that rotate, "
                             "split and trim on demand (streams.py)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(port=args.port, host=args.host, upstream=args.upstream, s3_endpoint=args.s3_endpoint,
                        state_dir=args.state_dir, lag_seconds=args.lag_seconds,
                        min_export_seconds=args.min_export_seconds, streams=args.streams)
    stand_in = StandIn(settings, args.min_incremental_window_seconds)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it must run outside this thread.
        threading.Thread(target=stand_in.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"local_pitr: DynamoDB with PITR on http://{args.host}:{args.port} (dynalite {args.upstream}, "
          f"S3 {args.s3_endpoint}, lag {args.lag_seconds:g} s, state {args.state_dir})", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stand_in.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
