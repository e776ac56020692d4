"""Moving over from AWS Data Pipeline: read pipeline definitions, say what they become in backups.yaml."""
