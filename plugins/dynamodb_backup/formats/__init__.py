"""What a backup looks like on S3: item codecs, folder layout, manifest, sidecar, and finding backups."""
