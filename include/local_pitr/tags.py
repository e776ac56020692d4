"""Table tags through the stand-in, for a backend without them (DynamoDB Local: "Tagging is not
currently supported in DynamoDB Local", UnknownOperationException).

TagResource, UntagResource and ListTagsOfResource go to the backend first; dynalite keeps tags
itself and answers. When the backend answers UnknownOperationException, the stand-in answers from
its own store, as AWS would: tags belong to one incarnation of a table (its TableId, else its ARN
and creation time), so a table deleted and created again has none; a missing table is
ResourceNotFoundException; the errors and messages are AWS's (as dynalite reproduces them). A
restore drill deletes only a table with its tag, so a backend that silently had no tags would
hide exactly the check under test.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from local_pitr.database import Database
from local_pitr.upstream import Upstream
from local_pitr.wire import ApiError, validation_error

SCHEMA = """
CREATE TABLE IF NOT EXISTS table_tags (
    incarnation TEXT NOT NULL,        -- TableId, else '<TableArn>@<CreationDateTime>'
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (incarnation, tag_key)
);
"""
# AWS's (and dynalite's) check of a table ARN in the tagging calls.
_TABLE_ARN = re.compile(r"^arn:aws:dynamodb:.+:\d+:table/[^/]{2}[^/]+$")
MAX_TAGS = 50


class TableTags:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._backend_has_tags: bool | None = None  # learned from the first tagging call
        self._lock = threading.Lock()
        with db.lock:
            db.writer.executescript(SCHEMA)

    def _backend(self, operation: str, request: dict[str, Any], upstream: Upstream) -> dict[str, Any] | None:
        """The backend's own answer, or None when it has no tagging (then the stand-in answers)."""
        if self._backend_has_tags is False:
            return None
        try:
            answer = upstream.call(operation, request)
        except ApiError as error:
            if error.code != "UnknownOperationException":
                raise
            self._backend_has_tags = False
            return None
        self._backend_has_tags = True
        return answer

    @staticmethod
    def _incarnation(request: dict[str, Any], upstream: Upstream, not_found: str) -> str:
        arn = request.get("ResourceArn")
        if not isinstance(arn, str) or not _TABLE_ARN.match(arn):
            raise validation_error(f"Invalid TableArn: Invalid ResourceArn provided as input {arn}")
        try:
            table = upstream.call("DescribeTable", {"TableName": arn.rsplit("/", 1)[1]})["Table"]
        except ApiError as error:
            if error.code == "ResourceNotFoundException":
                raise ApiError("ResourceNotFoundException", not_found.format(arn=arn)) from None
            raise
        if table.get("TableArn") != arn:  # another account's or region's table of that name
            raise ApiError("ResourceNotFoundException", not_found.format(arn=arn))
        return str(table.get("TableId") or f"{table['TableArn']}@{table.get('CreationDateTime')}")

    def tag_resource(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        answer = self._backend("TagResource", request, upstream)
        if answer is not None:
            return answer
        tags = request.get("Tags")
        if tags is None:
            raise validation_error("1 validation error detected: Value null at 'tags' failed to satisfy constraint: "
                                   "Member must not be null")
        incarnation = self._incarnation(request, upstream, "Requested resource not found: ResourcArn: {arn} not found")
        if not tags:
            raise validation_error("Atleast one Tag needs to be provided as Input.")
        pairs = [(str(tag.get("Key", "")), str(tag.get("Value", ""))) for tag in tags]
        if any(not 1 <= len(key) <= 128 or len(value) > 256 for key, value in pairs):
            raise validation_error("One or more parameter values were invalid: tag key (1-128 characters) or value "
                                   "(up to 256 characters) out of range")
        with self._lock, self.db.transaction() as conn:
            keys = {row[0] for row in conn.execute("SELECT tag_key FROM table_tags WHERE incarnation = ?",
                                                   (incarnation,))}
            if len(keys | {key for key, _ in pairs}) > MAX_TAGS:
                raise ApiError("LimitExceededException", f"Too many tags: a table may have at most {MAX_TAGS}")
            conn.executemany("INSERT OR REPLACE INTO table_tags (incarnation, tag_key, tag_value) VALUES (?, ?, ?)",
                             [(incarnation, key, value) for key, value in pairs])
        return {}

    def untag_resource(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        answer = self._backend("UntagResource", request, upstream)
        if answer is not None:
            return answer
        incarnation = self._incarnation(request, upstream, "Requested resource not found")
        keys = request.get("TagKeys") or []
        with self._lock, self.db.transaction() as conn:
            conn.executemany("DELETE FROM table_tags WHERE incarnation = ? AND tag_key = ?",
                             [(incarnation, str(key)) for key in keys])
        return {}

    def list_tags_of_resource(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        answer = self._backend("ListTagsOfResource", request, upstream)
        if answer is not None:
            return answer
        incarnation = self._incarnation(request, upstream, "Requested resource not found: ResourcArn: {arn} not found")
        with self.db.lock:
            rows = self.db.writer.execute(
                "SELECT tag_key, tag_value FROM table_tags WHERE incarnation = ? ORDER BY tag_key",
                (incarnation,)).fetchall()
        return {"Tags": [{"Key": key, "Value": value} for key, value in rows]}
