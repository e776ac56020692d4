"""A live replica: the table's stream segments applied, in order, to a table on another endpoint, region or account."""
