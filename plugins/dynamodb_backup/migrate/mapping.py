"""What a pipeline definition becomes in backups.yaml: one entry per export activity, and what did not map, why.

The rules follow ../shared/reference/datapipeline-definitions.md §8: find each EmrActivity whose step runs the
DynamoDB export tool, follow its arguments (through ``#{input.*}``/``#{output.*}`` and parameters) to the table,
the output folder and the read ratio, then the schedule, alarms, logs and region around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.migrate.alarms import failure_alarms
from dynamodb_backup.migrate.definition import Definition, Ref
from dynamodb_backup.migrate.expressions import Unresolved, resolve, split_date
from dynamodb_backup.migrate.schedule import airflow_schedule

EXPORT_CLASS = "org.apache.hadoop.dynamodb.tools.dynamodbexport"  # DynamoDbExport and DynamoDBExport alike
IMPORT_CLASS = "org.apache.hadoop.dynamodb.tools.dynamodbimport"
OUR_DATE_PATTERN = "YYYY-MM-dd-HH-mm-ss"
GZIP_CODEC = "org.apache.hadoop.io.compress.GzipCodec"
NO_EMR = "no EMR in this tool: the export runs as Airflow tasks"
#: Fields that carry no meaning for us, by what they are (reported once per object, with the reason).
DP_ONLY = {"role": "IAM role of the Data Pipeline service: Airflow's connection gives the credentials",
           "resourceRole": "IAM role of the EC2 nodes: Airflow's connection gives the credentials",
           "failureAndRerunMode": "Data Pipeline's rerun cascade: Airflow clears and reruns tasks",
           "maxActiveInstances": "the DAG runs one backup of a table at a time (max_active_runs 1)",
           "maximumRetries": "the DAG's tasks retry twice (Airflow retries)",
           "retryDelay": "Airflow retries wait by the DAG's retry_delay",
           "attemptTimeout": "Airflow's execution_timeout (not set by backups.yaml)",
           "resizeClusterBeforeRunning": NO_EMR, "resizeClusterMaxInstances": NO_EMR,
           "lateAfterTimeout": "no late alarm: the console highlights a table whose newest backup is overdue"}
SKIP_FIELDS = {"id", "name", "type", "input", "output", "runsOn", "step", "schedule", "scheduleType", "parent",
               "tableName", "readThroughputPercent", "writeThroughputPercent", "directoryPath", "region",
               "onFail", "onSuccess", "onLateAction", "pipelineLogUri", "dependsOn"}


@dataclass
class Entry:
    """One backups.yaml entry, with the comments that go above it."""

    source: str
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)


@dataclass
class Mapping:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Activities that give no entry, with the reason (printed on stderr)."""
    notes: list[str] = field(default_factory=list)
    """The whole definition's comments (unmapped objects, import/copy pipelines)."""


def _step_parts(step: str) -> list[str]:
    """Comma-separated (``\\,`` an escaped comma, Data Pipeline's rule); a comma inside ``#{...}`` (the date's
    ``format(@scheduledStartTime, '...')``) separates nothing."""
    parts, current, i, inside = [], "", 0, False
    while i < len(step):
        escaped = next((e for e in ("\\\\,", "\\,") if step.startswith(e, i)), None)
        if escaped:
            current, i = current + ",", i + len(escaped)
            continue
        if step.startswith("#{", i):
            inside = True
        elif step[i] == "}":
            inside = False
        if step[i] == "," and not inside:
            parts.append(current.strip())
            current = ""
        else:
            current += step[i]
        i += 1
    return [*parts, current.strip()]


def _tool_arguments(parts: list[str]) -> tuple[dict[str, str], list[str]]:
    """Hadoop's generic ``-D k=v`` options and the positionals after the main class."""
    options: dict[str, str] = {}
    positional: list[str] = []
    args = iter(parts[2:])
    for arg in args:
        if arg == "-D":
            arg = next(args, "")
        elif arg.startswith("-D"):
            arg = arg[2:]
        else:
            positional.append(arg)
            continue
        key, _, value = arg.partition("=")
        options[key.strip()] = value.strip()
    return options, positional


def _activity_steps(definition: Definition, oid: str) -> list[str]:
    steps = [v for v in definition.get(oid, "step") if isinstance(v, str)]
    if definition.first(oid, "type", str, "").lower() == "hadoopactivity":  # jarUri + repeated argument
        jar = definition.first(oid, "jarUri", str, "")
        main = definition.first(oid, "mainClass", str, "")
        steps.append(",".join([jar, main, *[v for v in definition.get(oid, "argument") if isinstance(v, str)]]))
    return steps


def map_definition(definition: Definition) -> Mapping:
    result = Mapping()
    exports, imports = [], []
    for oid in definition.of_type("EmrActivity", "HadoopActivity"):
        for step in _activity_steps(definition, oid):
            parts = _step_parts(step)
            main = parts[1].lower() if len(parts) > 1 else ""
            if main == EXPORT_CLASS:
                exports.append((oid, parts))
            elif main == IMPORT_CLASS:
                imports.append((oid, parts))
            else:
                result.notes.append(f"{oid}: step {parts[1] if len(parts) > 1 else step!r} is not the DynamoDB "
                                    f"export tool (a resize script or a custom job): unmapped")
    for oid in definition.of_type("HiveActivity", "HiveCopyActivity"):
        result.skipped.append(f"{definition.source}: {oid}: a {definition.first(oid, 'type', str)} (Hive/CSV "
                              f"output), not Data Pipeline's export format: no entry; back the table up with an "
                              f"entry of your own")
    if exports and imports:
        result.skipped.append(f"{definition.source}: a copy pipeline (export {exports[0][0]} then import "
                              f"{imports[0][0]}): no backup entry; use `dynamodb-backup copy` for table-to-table "
                              f"copies (its temporary folder and cleanup activity are not needed)")
        return result
    for oid, parts in imports:
        result.notes.append(_import_note(definition, oid, parts))
    for oid, parts in exports:
        try:
            result.entries.append(_export_entry(definition, oid, parts))
        except (Unresolved, ParameterError) as exc:
            result.skipped.append(f"{definition.source}: {oid}: {exc}")
    if not exports and not imports and not result.skipped:
        result.skipped.append(f"{definition.source}: no DynamoDB export activity (an EmrActivity running "
                              f"org.apache.hadoop.dynamodb.tools.DynamoDbExport) in this definition")
    return result


def _import_note(definition: Definition, oid: str, parts: list[str]) -> str:
    _, positional = _tool_arguments(parts)
    try:
        folder, table = (resolve(definition, p, oid) for p in positional[:2])
        ratio = resolve(definition, positional[2], oid) if len(positional) > 2 else "0.25"
    except (Unresolved, ValueError) as exc:
        return f"{oid}: an import (restore) pipeline: no backup entry; its arguments do not resolve ({exc})"
    return (f"{oid}: an import (restore) pipeline: no backup entry; the same load is `dynamodb-backup restore "
            f"{folder.rstrip('/')}/ --table {table} --write-ratio {ratio}` (or the dynamodb_restore DAG)")


def _export_entry(definition: Definition, oid: str, parts: list[str]) -> Entry:
    options, positional = _tool_arguments(parts)
    if len(positional) < 2:
        raise ParameterError(f"the export step has {len(positional)} arguments; it needs <path>,<table>")
    entry = Entry(f"{definition.source}: {oid}", {})
    table = check_table_name(resolve(definition, positional[1], oid), f"table ({positional[1]})")
    entry.settings["table"] = table
    _output(definition, oid, positional[0], table, entry)
    if len(positional) > 2:
        raw = resolve(definition, positional[2], oid)
        try:
            entry.settings["read_ratio"] = float(raw)
        except ValueError:
            raise ParameterError(f"read ratio {positional[2]} = {raw!r} is not a number") from None
        if not 0.01 <= entry.settings["read_ratio"] <= 1.5:
            entry.unmapped.append(f"read ratio {raw}: outside 0.01-1.5; set read_ratio yourself")
            del entry.settings["read_ratio"]
    if len(positional) > 3:
        raw = resolve(definition, positional[3], oid)
        try:  # the caller puts the file and the object before the line
            entry.settings["segments"] = int(raw)
        except ValueError:
            raise ParameterError(f"segments {positional[3]} = {raw!r} is not a whole number") from None
    compress = options.get("mapreduce.output.fileoutputformat.compress", "").lower() == "true"
    codec = options.get("mapreduce.output.fileoutputformat.compress.codec", GZIP_CODEC if compress else "")
    if compress and codec == GZIP_CODEC:
        entry.settings["compression"] = "gzip"
    elif compress:
        entry.unmapped.append(f"output codec {codec}: we write gzip or zstd; compression left at gzip")
    else:
        entry.notes.append("Data Pipeline wrote plain files; we write gzip (set compression: none for plain)")
    _schedule(definition, oid, entry)
    failure_alarms(definition, oid, entry)
    _logs_and_region(definition, oid, parts, entry)
    _leftovers(definition, oid, entry)
    return entry


def _output(definition: Definition, oid: str, argument: str, table: str, entry: Entry) -> None:
    path = resolve(definition, argument, oid)
    output, pattern, after = split_date(path)
    location = S3Location.parse(output.rstrip("/"), f"output folder ({argument})")
    if pattern is None:
        entry.unmapped.append(f"output {path}: no dated folder (each run wrote into the same folder), so it is not "
                              f"listed as backups; ours go to <prefix>/<table>/<date>/")
    elif after.strip("/") or pattern != OUR_DATE_PATTERN:
        entry.unmapped.append(f"output folder date pattern {pattern!r}{' + ' + after if after else ''}: not "
                              f"{OUR_DATE_PATTERN!r}, so its folders are not listed as this table's backups")
    parent, _, last = location.prefix.rpartition("/")
    if last == table:  # <prefix>/<table>/<date>: already our layout
        entry.settings.update(bucket=location.bucket, prefix=parent)
        entry.notes.append(f"output {location}/: already <prefix>/<table>/<date>/, our layout: new backups go "
                           f"beside the old ones")
    else:
        entry.settings.update(bucket=location.bucket, prefix=location.prefix)
        if pattern == OUR_DATE_PATTERN and not after.strip("/"):
            entry.settings["datapipeline_output"] = location.uri
        entry.notes.append(f"output {location}/<date>/ (Data Pipeline's layout, no table level): new backups go to "
                           f"{location.child(table)}/<date>/")


def _schedule(definition: Definition, oid: str, entry: Entry) -> None:
    kind = (definition.first(oid, "scheduleType", str) or "cron").lower()
    schedule_ref = definition.first(oid, "schedule", Ref)
    if kind == "ondemand":
        entry.settings["schedule"] = None
        entry.notes.append("scheduleType ondemand: no schedule (trigger the DAG, or `dynamodb-backup export`)")
        return
    if schedule_ref is None or schedule_ref.id not in definition.objects:
        entry.unmapped.append(f"schedule {schedule_ref.id if schedule_ref else '(none)'}: no such Schedule object; "
                              f"schedule left at the default")
        return
    sid = schedule_ref.id
    period = resolve(definition, definition.first(sid, "period", str, ""), sid)
    start = definition.first(sid, "startDateTime", str)
    occurrences = definition.first(sid, "occurrences", str)
    if occurrences == "1":
        entry.settings["schedule"] = None
        entry.notes.append(f"Schedule {sid}: occurrences 1, a one-off run: no schedule (trigger the DAG)")
        return
    schedule, notes = airflow_schedule(period, resolve(definition, start, sid) if start else None)
    if schedule is not None:
        entry.settings["schedule"] = schedule
    entry.notes.append(f"Schedule {sid}: every {period}" + (f" from {start} UTC" if start else "")
                       + (f" -> {schedule}" if schedule else ""))
    entry.unmapped.extend(f"Schedule {sid}: {note}" for note in notes)
    if definition.first(sid, "startAt", str) == "FIRST_ACTIVATION_DATE_TIME":
        entry.unmapped.append(f"Schedule {sid}: startAt FIRST_ACTIVATION_DATE_TIME: the start was the activation "
                              f"time, which the definition does not hold; runs start at midnight UTC")
    for key in ("endDateTime", "occurrences"):
        if definition.first(sid, key, str) is not None:
            entry.unmapped.append(f"Schedule {sid}: {key} {definition.first(sid, key, str)}: Airflow's schedule "
                                  f"has no end here; pause the DAG when it should stop")


def _logs_and_region(definition: Definition, oid: str, parts: list[str], entry: Entry) -> None:
    log_uri = definition.first(oid, "pipelineLogUri", str)
    if log_uri:
        try:
            log_uri = resolve(definition, log_uri, "Default")
        except Unresolved as exc:
            log_uri = f"{log_uri} ({exc})"
        entry.notes.append(f"log location {log_uri} (pipelineLogUri): task logs go where Airflow's remote logging "
                           f"says, for all tables: DYNAMODB_BACKUP_LOG_URI={log_uri} (docker compose) or "
                           f"AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER")
    regions: dict[str, str] = {}
    candidates = [(f"EmrCluster {r.id}", definition.first(r.id, "region", str)) for r in definition.get(oid, "runsOn")
                  if isinstance(r, Ref)]
    candidates += [(f"{r.id}.region", definition.first(r.id, "region", str)) for r in definition.get(oid, "input")
                   if isinstance(r, Ref)]
    jar = parts[0]
    candidates.append(("the jar's bucket", jar[len("s3://"):].split("/", 1)[0].split("-", 2)[-1]
                       if jar.startswith(("s3://dynamodb-emr-", "s3://dynamodb-dpl-")) else None))
    for where, raw in candidates:
        if raw:
            try:
                regions[where] = resolve(definition, raw, oid).replace("_", "-")
            except Unresolved as exc:
                entry.unmapped.append(f"region of {where}: {exc}")
    distinct = sorted(set(regions.values()))
    if distinct:
        entry.notes.append(f"region {distinct[0]} ({', '.join(k for k, v in regions.items() if v == distinct[0])}): "
                           f"set region_name on the connection {entry.settings.get('aws_conn_id', 'aws_default')}")
    if len(distinct) > 1:
        entry.unmapped.append(f"regions disagree: {regions}; check which one the table is in")


def _leftovers(definition: Definition, oid: str, entry: Entry) -> None:
    for key, why in DP_ONLY.items():
        value = definition.first(oid, key, str)
        if value is not None:
            entry.unmapped.append(f"{key} {value}: {why}")
    for ref in definition.get(oid, "runsOn"):
        if isinstance(ref, Ref) and ref.id in definition.objects:
            fields = sorted(k for k in definition.objects[ref.id] if k not in SKIP_FIELDS)
            entry.unmapped.append(f"{definition.first(ref.id, 'type', str, 'resource')} {ref.id} "
                                  f"({', '.join(fields)}): {NO_EMR}")
    for ref in definition.get(oid, "dependsOn"):
        if isinstance(ref, Ref):
            entry.unmapped.append(f"dependsOn {ref.id}: an activity before the export (e.g. a resize script): "
                                  f"not needed, the read ratio paces the scan")
    for kind in ("precondition",):
        for ref in definition.get(oid, kind):
            if isinstance(ref, Ref):
                entry.unmapped.append(f"{kind} {ref.id}: Data Pipeline preconditions are not carried over")
