"""Copying one table into another: planning the copy and copying segments."""
