"""Assembles one stand-in: database, journal, PITR and export APIs, and the HTTP front."""

from __future__ import annotations

import orjson

from local_pitr.billing import BillingSwitches
from local_pitr.database import Database
from local_pitr.export_job import ExportJobs
from local_pitr.exports_api import ExportsApi
from local_pitr.items import KeySchema
from local_pitr.journal import Journal
from local_pitr.pitr import PitrApi
from local_pitr.proxy import LocalOperation, StandInServer
from local_pitr.recorder import Recorder
from local_pitr.records import ExportRecord, ExportRecords
from local_pitr.settings import Settings
from local_pitr.streams import JournalStreams, StreamingRecorder
from local_pitr.tags import TableTags

# AWS's minimum incremental window; ``--min-incremental-window-seconds`` shortens it for tests.
DEFAULT_MIN_INCREMENTAL_WINDOW_SECONDS = 900.0


class StandIn:
    def __init__(self, settings: Settings,
                 min_incremental_window_seconds: float = DEFAULT_MIN_INCREMENTAL_WINDOW_SECONDS) -> None:
        self.settings = settings
        self.db = Database(settings.state_dir)
        self.journal = Journal(self.db)
        self.records = ExportRecords(self.db)
        self.jobs = ExportJobs(self.db, self.journal, self.records, settings)
        self.pitr = PitrApi(self.journal, settings)
        self.exports = ExportsApi(self.journal, self.records, self.jobs, settings, min_incremental_window_seconds)
        self.streams = JournalStreams(self.db, self.journal) if settings.streams == "journal" else None
        recorder = (StreamingRecorder(self.journal, self._purge, self.streams) if self.streams
                    else Recorder(self.journal, on_table_deleted=self._purge))
        self.billing = BillingSwitches(self.db)  # AWS's limit on switching to on-demand
        self.tags = TableTags(self.db)  # tagging, where the backend has none (DynamoDB Local)
        operations: dict[str, LocalOperation] = {
            "UpdateContinuousBackups": self.pitr.update,
            "DescribeContinuousBackups": self.pitr.describe,
            "ExportTableToPointInTime": self.exports.export,
            "DescribeExport": self.exports.describe,
            "ListExports": self.exports.list,
            "UpdateTable": self.billing.update_table,
            "TagResource": self.tags.tag_resource,
            "UntagResource": self.tags.untag_resource,
            "ListTagsOfResource": self.tags.list_tags_of_resource,
        }
        if self.streams is not None:  # its Streams API over the journal (streams.py), not the backend's
            operations.update(self.streams.operations(self.billing.update_table))
        self.server = StandInServer((settings.host, settings.port), settings.upstream, recorder, operations)

    def _purge(self) -> None:
        running = {record.incarnation for record in self.records.in_progress()}
        self.journal.purge_deleted(running | self.jobs.busy_incarnations())

    def _keys_of(self, record: ExportRecord) -> KeySchema:
        """The key schema an unfinished export needs, from the journal row of its incarnation."""
        row = self.db.writer.execute("SELECT key_names FROM tables WHERE incarnation = ?",
                                     (record.incarnation,)).fetchone()
        return KeySchema(orjson.loads(row[0]) if row else [])

    def serve_forever(self) -> None:
        self._purge()
        self.jobs.resume_unfinished(self._keys_of)  # exports a killed stand-in left IN_PROGRESS
        self.server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
