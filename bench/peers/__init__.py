"""The per-core bench's peers that are not pip packages (see README.md here)."""
