"""A local stand-in for DynamoDB point-in-time recovery and exports to S3.

It sits in front of dynalite and is spoken to over HTTP with boto3 exactly as AWS is. Neither
dynalite nor moto has PITR exports, so this package adds them, following the team's reference
notes on native exports and PITR (``native-export-pitr.md``: layout, manifests, API shapes,
errors, limits) and the real 2020 export in ``tests/fixtures/native-export-2020``:

- every other DynamoDB call is forwarded to dynalite unchanged (``proxy.py``, ``upstream.py``);
- successful writes to followed tables are journaled as item images with their time, in
  SQLite under ``--state-dir`` (``recorder.py``, ``journal.py``, ``database.py``);
- UpdateContinuousBackups / DescribeContinuousBackups (``pitr.py``);
- ExportTableToPointInTime (full and incremental), DescribeExport, ListExports
  (``exports_api.py``, ``export_requests.py``, ``incremental.py``), written to S3 in the
  background (``export_job.py``, ``export_files.py``).

Run: ``python -m local_pitr --port P --upstream http://127.0.0.1:<dynalite> --s3-endpoint
http://127.0.0.1:<moto> --state-dir DIR [--lag-seconds N] [--min-export-seconds S]``.

It imports neither the product (``dynamodb_backup``) nor Airflow: it imitates AWS on its own,
so a bug in the product cannot hide behind a shared helper.
"""
