"""Backing a table up: planning segments, scanning, exporting to S3 and sealing the folder."""
