"""``python -m dynamodb_backup ...``"""

import sys

from dynamodb_backup.cli import main

sys.exit(main(prog="python -m dynamodb_backup"))
