"""Command line: the same core as the DAGs, with no Airflow (``dynamodb-backup <command> ...``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from dynamodb_backup import __version__, commands
from dynamodb_backup.aws.mistakes import explain

#: What ``--help`` says: for the people who run the commands (the module's docstring is for its developers).
DESCRIPTION = """\
Back up DynamoDB tables to S3 in AWS Data Pipeline's format, and restore them: the commands
the Airflow DAGs run, without Airflow. `dynamodb-backup COMMAND --help` explains each one.

AWS endpoints, region and credentials come from the usual AWS settings (AWS_PROFILE,
AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3, ...) or --endpoint/--region."""

EPILOG = """\
A failure is one line on stderr, "error: <what is wrong>: <what to do>", and an exit code:
2 a bad parameter or backup, 3 AWS refused (region, credentials, permissions, clock),
4 the endpoint could not be reached, 5 throttled after every retry; 1 the command ran and
says no (e.g. a verify that did not match). -v adds debug logging and the traceback."""


def build_parser(prog: str = "dynamodb-backup") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        importlib.import_module(f"{commands.__name__}.{module}").register(subparsers)
    for command in subparsers.choices.values():  # -v after the command too; SUPPRESS keeps one given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="debug logging, and tracebacks of errors")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "dynamodb-backup") -> int:
    """The ``dynamodb-backup`` console script (``pip install .``); ``prog`` names it in usage lines."""
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        code: int = args.run(args)
        return code
    except Exception as exc:
        mistake = explain(exc)
        if mistake is None:
            raise  # a bug: its traceback is the report
        if args.verbose:
            traceback.print_exc()
        print(f"error: {mistake.line}", file=sys.stderr)
        return mistake.code
