"""Airflow triggers: waits that run in the triggerer, so no worker slot is held while AWS works."""
