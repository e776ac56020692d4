"""Restore drills: restore the newest complete backup into a scratch table, verify it, record the result."""
