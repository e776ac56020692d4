"""Writing items into a table: paced batch writers, the wire fast path, checkpoints.

Shared by restore, incremental apply, copy and the stream replica; it stands on
aws/, formats/ and repository/.
"""
