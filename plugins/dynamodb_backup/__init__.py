"""DynamoDB backup and restore: Data Pipeline compatible, usable with or without Airflow.

Everything in this package except ``operators`` is plain Python with no Airflow import.
"""

__version__ = "0.1.0"
