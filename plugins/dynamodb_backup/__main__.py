"""``python -m dynamodb_backup ...``"""

import sys

from .cli import main

sys.exit(main())
