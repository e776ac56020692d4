"""Point-in-time backups: DynamoDB's native export of the table as it was, converted to our layout."""

SCAN, PITR = "scan", "pitr"
#: How a run reads the table: a paced parallel scan now, or DynamoDB's export of a past moment.
MODES = (SCAN, PITR)
DATAPIPELINE, NATIVE = "datapipeline", "native"
#: What the dated folder holds: Data Pipeline's layout, or the native export kept as it is.
OUTPUT_FORMATS = (DATAPIPELINE, NATIVE)
