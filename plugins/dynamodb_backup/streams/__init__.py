"""Tailing a table's DynamoDB stream into S3 segments (no Airflow here).

``source`` speaks the DynamoDB Streams API (paced, retried); ``lineage`` decides which shards
may be read (parents before children); ``segmentwriter`` stores a shard's records as segments
and its progress after them; ``gaps`` marks a broken chain and takes a new base; ``tail`` runs
it all for a bounded time. The format of what is stored is ``repository.segments``.
"""
