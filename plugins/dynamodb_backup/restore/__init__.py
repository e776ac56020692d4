"""Restoring a backup: inspecting the folder, reading files, writing items, checkpoints and verifying."""
