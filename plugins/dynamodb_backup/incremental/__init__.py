"""Incremental backups: chains of a full pitr backup and nightly change exports, and applying them."""
