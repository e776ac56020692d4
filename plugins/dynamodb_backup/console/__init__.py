"""The "DynamoDB backups" page in the Airflow UI.

``views`` builds what the pages show from S3 (through :mod:`dynamodb_backup.formats.catalog`, the
code ``ls`` uses) and ``render`` turns it into HTML and an inline SVG chart; neither imports
Airflow. ``app`` is the thin shell: a FastAPI app behind Airflow's own authentication that finds
the tables, the DAG runs and the AWS connection, and calls them. The plugin module that registers
it is ``plugins/dynamodb_backup_console.py``.
"""
