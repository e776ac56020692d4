"""ExportTableToPointInTime, DescribeExport and ListExports (reference section 3).

Order of checks for a new export: request validation (ValidationException; a rejected call
does not reserve its ClientToken), the ClientToken (same parameters: the same export;
changed ones: ExportConflictException), the table (TableNotFoundException), PITR
(PointInTimeRecoveryUnavailableException for a full export, before anything touches S3),
then the export time or window (InvalidExportTimeException). The answer is IN_PROGRESS at
once; ``export_job.py`` does the rest in the background.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from typing import Any

from local_pitr import incremental
from local_pitr.export_job import ExportJobs
from local_pitr.export_requests import ExportRequest, parse_export_request
from local_pitr.journal import Journal
from local_pitr.pitr import PitrWindow
from local_pitr.records import IN_PROGRESS, ExportRecord, ExportRecords
from local_pitr.settings import Settings
from local_pitr.tables import LiveTable, live_table, name_from_arn
from local_pitr.upstream import Upstream
from local_pitr.wire import ApiError, constraint_error, epoch_seconds, ms_us, now_us, validation_error

EXPORT_ARN = re.compile(
    r"^arn:aws[a-z-]*:dynamodb:[a-z0-9-]*:\d{12}:table/[a-zA-Z0-9_.-]{3,255}/export/\d{14}-[0-9a-f]{8}$")
# Up to 300 export tasks may run at once [reference 3.5].
MAX_CONCURRENT_EXPORTS = 300
MAX_LIST_RESULTS = 25


class ExportsApi:
    def __init__(self, journal: Journal, records: ExportRecords, jobs: ExportJobs, settings: Settings,
                 min_incremental_window_seconds: float) -> None:
        self.journal = journal
        self.records = records
        self.jobs = jobs
        self.settings = settings
        self.min_window_us = round(min_incremental_window_seconds * 1_000_000)
        self._token_lock = threading.Lock()  # one export per ClientToken, even for concurrent replays

    # ----------------------------------------------------------------- ExportTableToPointInTime

    def export(self, body: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        request = parse_export_request(body)
        with self._token_lock:
            earlier = self.records.by_token(request.client_token, now_us())
            if earlier is not None:
                if earlier.request != request.replay_key:
                    raise ApiError("ExportConflictException",
                                   "Export conflict: Duplicate request detected with conflicting parameters")
                return {"ExportDescription": answer_description(earlier)}
            table = self._table(upstream, request)
            record = self._new_record(request, table)
            self.records.insert(record)
        self.jobs.start(record, table.keys)
        return {"ExportDescription": answer_description(record)}

    def _table(self, upstream: Upstream, request: ExportRequest) -> LiveTable:
        table = live_table(upstream, self.journal, request.table_name)
        if table is None:
            raise ApiError("TableNotFoundException", f"Table not found: {request.table_arn}")
        return table

    def _new_record(self, request: ExportRequest, table: LiveTable) -> ExportRecord:
        followed = table.followed
        pitr_on = followed is not None and followed.pitr_enabled_us is not None
        if request.incremental is None and not pitr_on:
            raise ApiError("PointInTimeRecoveryUnavailableException",
                           f"Point in time recovery is not enabled for table '{table.name}'")
        start_us = ms_us(now_us())
        window = PitrWindow(followed, self.settings.lag_seconds, now=start_us) if pitr_on and followed else None
        plan: dict[str, Any]
        if request.incremental is None:
            assert window is not None
            export_time_us = start_us if request.export_time_us is None else request.export_time_us
            if request.export_time_us is not None:
                if export_time_us > start_us or export_time_us < window.earliest:
                    raise ApiError("InvalidExportTimeException", "Export Time is invalid")
                if export_time_us > window.latest:
                    raise ApiError("InvalidExportTimeException",
                                   "Point in Time Recovery is not available for specified export time")
            plan = {"export_time_us": export_time_us}
        else:
            checked = incremental.check_window(request.incremental, window.earliest if window else None, start_us,
                                               self.min_window_us)
            plan = {"from_us": checked.from_us, "to_us": checked.to_us, "view": checked.view}
        if len(self.records.in_progress()) >= MAX_CONCURRENT_EXPORTS:
            raise ApiError("LimitExceededException",
                           f"There are {MAX_CONCURRENT_EXPORTS} exports in progress; wait for one to finish")
        assert followed is not None
        export_id = f"{start_us // 1000:014d}-{secrets.token_hex(4)}"
        export_arn = f"{table.table_arn}/export/{export_id}"
        description: dict[str, Any] = {
            "ExportArn": export_arn,
            "ExportStatus": IN_PROGRESS,
            "StartTime": epoch_seconds(start_us),
            "TableArn": table.table_arn,
            "TableId": table.table_id,
            "ClientToken": request.client_token,
            "S3Bucket": request.s3_bucket,
            "S3SseAlgorithm": request.s3_sse_algorithm,
            "ExportFormat": request.export_format,
            "DestinationType": "S3",  # the live service answers it; botocore drops it
        }
        if "export_time_us" in plan:
            description["ExportTime"] = epoch_seconds(plan["export_time_us"])
        else:
            description["IncrementalExportSpecification"] = incremental.echo(
                incremental.Window(plan["from_us"], plan["to_us"], plan["view"]))
        for member, value in (("S3BucketOwner", request.s3_bucket_owner), ("S3Prefix", request.s3_prefix),
                              ("S3SseKmsKeyId", request.s3_sse_kms_key_id), ("ExportType", request.export_type_sent)):
            if value is not None:
                description[member] = value
        return ExportRecord(export_arn=export_arn, client_token=request.client_token, request=request.replay_key,
                            plan=plan, incarnation=followed.incarnation, table_id=table.table_id,
                            status=IN_PROGRESS, start_us=start_us, end_us=None, description=description)

    # ----------------------------------------------------------------- DescribeExport, ListExports

    def describe(self, body: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        arn = body.get("ExportArn")
        if not isinstance(arn, str):
            raise constraint_error(None, "exportArn", "Member must not be null")
        if not EXPORT_ARN.match(arn):
            raise validation_error("Invalid Export ARN")
        record = self.records.get(arn)
        if record is None:
            raise ApiError("ExportNotFoundException", f"Export not found: {arn}")
        return {"ExportDescription": answer_description(record)}

    def list(self, body: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        limit = body.get("MaxResults", MAX_LIST_RESULTS)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise constraint_error(limit, "maxResults", "Member must have value greater than or equal to 1")
        if limit > MAX_LIST_RESULTS:
            raise constraint_error(limit, "maxResults",
                                   f"Member must have value less than or equal to {MAX_LIST_RESULTS}")
        table_arn = body.get("TableArn")
        if table_arn is None:
            records = self.records.newest_first()
        else:
            name = name_from_arn(str(table_arn))
            if name is None:
                raise validation_error(f"Invalid TableArn: {table_arn}")
            table = live_table(upstream, self.journal, name)
            # Exports of a deleted or re-created table are no longer listed under its ARN.
            records = [] if table is None else self.records.newest_first(table.table_id)
        start = 0
        token = body.get("NextToken")
        if token is not None:
            after = _decode_token(token)
            positions = [i for i, r in enumerate(records) if r.export_arn == after]
            if not positions:
                raise validation_error("Invalid NextToken")
            start = positions[0] + 1
        page = records[start:start + limit]
        answer: dict[str, Any] = {"ExportSummaries": [
            {"ExportArn": r.export_arn, "ExportStatus": r.status, "ExportType": r.export_type} for r in page
        ]}
        if start + limit < len(records):
            answer["NextToken"] = base64.urlsafe_b64encode(page[-1].export_arn.encode()).decode()
        return answer


def _decode_token(token: object) -> str:
    try:
        return base64.urlsafe_b64decode(str(token).encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise validation_error("Invalid NextToken") from None


def answer_description(record: ExportRecord) -> dict[str, Any]:
    return dict(record.description)
