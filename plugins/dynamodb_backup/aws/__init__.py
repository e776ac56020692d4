"""Talking to AWS gently: clients, retries, pacing, table descriptions, S3 writers."""
