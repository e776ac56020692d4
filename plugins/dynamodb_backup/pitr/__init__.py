"""Point-in-time backups: DynamoDB's native export of the table as it was, converted to our layout."""

SCAN, PITR, INCREMENTAL = "scan", "pitr", "incremental"
#: How a run reads the table: a paced parallel scan now, DynamoDB's export of a past moment, or the
#: changes of the run's data interval (with a full export now and then).
MODES = (SCAN, PITR, INCREMENTAL)
DATAPIPELINE, NATIVE = "datapipeline", "native"
#: What the dated folder holds: Data Pipeline's layout, or the native export kept as it is.
OUTPUT_FORMATS = (DATAPIPELINE, NATIVE)
