"""Reading a backup: folders, manifests, files, key rules and digests.

Everything that reads a backup (restore, pitr, incremental, streams, copy,
retention) stands on this package; it stands only on aws/ and formats/.
"""
