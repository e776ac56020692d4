"""Retention: which backup folders go (``plan``, pure), what S3 holds (``inventory``), deleting (``delete``)."""
