"""prune against moto's S3 over HTTP: a chain with a gap, all backups old, folders that are not ours,
beside-objects, and an Object Lock that refuses a delete (counted, reported, not a failure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dynamodb_backup.cli import main
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location, folder_name
from dynamodb_backup.formats.sidecar import FileRecord, Sidecar
from dynamodb_backup.retention.plan import RetentionPolicy
from dynamodb_backup.retention.prune import prune_table

NOW = datetime.now(UTC).replace(microsecond=0)
TABLE = "Orders"


def day(n: float) -> datetime:
    return NOW - timedelta(days=n)


def write_folder(s3, bucket: str, when: datetime, *, mode: str = "scan", complete: bool = True,
                 chain: dict | None = None, sidecar: bool = True, extra: dict[str, bytes] | None = None,
                 lock: dict | None = None) -> str:
    """One of our folders (data file, manifest, sidecar, _SUCCESS), as the seal leaves it."""
    folder = S3Location(bucket, f"b/{TABLE}/{folder_name(when)}")
    source: dict = {"mode": mode}
    if mode == "pitr":
        source["export_time"] = when.isoformat()
    if mode == "incremental":
        source.update(export_from=(when - timedelta(days=1)).isoformat(), export_to=when.isoformat())
    if chain:
        source["chain"] = chain
    objects = {"0a.gz": b"data", MANIFEST: b"{}", **(extra or {})}
    if sidecar:
        objects[SIDECAR] = Sidecar(table={"TableName": TABLE}, logical_date=when.isoformat(),
                                   snapshot_start=when.isoformat(), snapshot_end=when.isoformat(),
                                   compression="gzip", total_segments=1,
                                   files=[FileRecord("0a.gz", 0, 1, 4, "00")], source=source).to_json()
    if complete:
        objects[SUCCESS] = b""
    for name, body in objects.items():
        s3.put_object(Bucket=bucket, Key=folder.key(name), Body=body, **((lock or {}).get(name, {})))
    return folder.uri


def keys(s3, bucket: str) -> set[str]:
    found = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"b/{TABLE}/"):
        found |= {o["Key"] for o in page.get("Contents", [])}
    return found


def folders(s3, bucket: str) -> set[str]:
    return {k.split("/")[2] for k in keys(s3, bucket) if not k.split("/")[2].startswith("_")}


def test_dry_run_then_prune_a_chain_with_a_gap_and_folders_that_are_not_ours(local_aws, s3_bucket, capsys):
    s3 = local_aws.s3_client()
    # Chain A (old): full 60 days ago, links 59 and 58. Night 57 died (partial, ours: _checkpoints/ only).
    full_a = write_folder(s3, s3_bucket, day(60), mode="pitr", chain={"role": "full"})
    link = write_folder(s3, s3_bucket, day(59), mode="incremental", chain={"full": full_a, "previous": full_a})
    write_folder(s3, s3_bucket, day(58), mode="incremental", chain={"full": full_a, "previous": link})
    s3.put_object(Bucket=s3_bucket, Key=f"b/{TABLE}/{folder_name(day(57))}/_checkpoints/segment-0.json", Body=b"{}")
    # Chain B after the gap: a full 56 days ago, then links up to 50 days ago (all past keep_days).
    full_b = previous = write_folder(s3, s3_bucket, day(56), mode="pitr", chain={"role": "full"})
    for n in range(55, 49, -1):
        previous = write_folder(s3, s3_bucket, day(n), mode="incremental", chain={"full": full_b, "previous": previous})
    # Not ours: a Data Pipeline folder (no sidecar), and an old partial folder of unknown data.
    write_folder(s3, s3_bucket, day(300), sidecar=False)
    write_folder(s3, s3_bucket, day(200), sidecar=False, complete=False)
    # Beside an old folder that goes: a restore's checkpoints and its drill record.
    s3.put_object(Bucket=s3_bucket, Key=f"b/{TABLE}/_restore_checkpoints/{folder_name(day(60))}/x/run/f.done",
                  Body=b"{}")
    s3.put_object(Bucket=s3_bucket, Key=f"b/{TABLE}/_drills/{folder_name(day(60))}.json", Body=b"{}")
    before = keys(s3, s3_bucket)

    code = main(["prune", "--from", f"s3://{s3_bucket}/b", "--keep-days", "35", "--keep-min", "3", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert keys(s3, s3_bucket) == before, "a dry run deletes nothing"
    assert "Orders: 13 folders: 3 to delete, 10 kept (2 not ours) (dry run: nothing deleted)" in out, out
    lines = {line.split()[1].rstrip("/").rsplit("/", 1)[-1]: line for line in out.splitlines()[1:]}
    assert "builds on it" in lines[folder_name(day(56))]
    # The failed night's folder was written just now (S3's LastModified): it may be a backfill still running.
    assert "may still be running" in lines[folder_name(day(57))]
    assert "not written by dynamodb-backup" in lines[folder_name(day(300))]

    # 36 days later (no new backups), the failed night's folder is an abandoned attempt too.
    report = prune_table(s3, S3Location(s3_bucket, "b"), TABLE, RetentionPolicy(35, 3), dry_run=False,
                         now=NOW + timedelta(days=36))
    assert "an abandoned attempt" in next(d.why for d in report.decisions if d.folder.name == folder_name(day(57)))
    gone = {folder_name(day(n)) for n in (60, 59, 58, 57)}
    assert {o.folder.rsplit("/", 1)[-1] for o in report.outcomes if o.gone} == gone
    assert not report.locked and not report.errors
    assert folders(s3, s3_bucket) == {folder_name(day(n)) for n in (300, 200, *range(56, 49, -1))}
    assert not [k for k in keys(s3, s3_bucket) if folder_name(day(60)) in k], "its checkpoints and drill record go"
    assert report.outcomes[0].beside == 2


def test_all_backups_old_keeps_the_newest_complete_ones(local_aws, s3_bucket):
    s3 = local_aws.s3_client()
    for n in range(100, 110):
        write_folder(s3, s3_bucket, day(n))
    write_folder(s3, s3_bucket, day(99), complete=False)  # a newer partial is not the newest complete backup
    report = prune_table(s3, S3Location(s3_bucket, "b"), TABLE, RetentionPolicy(35, 2), dry_run=False,
                         now=NOW + timedelta(days=36))  # the partial was written (LastModified) 36 days before
    assert folders(s3, s3_bucket) == {folder_name(day(100)), folder_name(day(101))}
    assert len(report.outcomes) == 9 and all(o.gone for o in report.outcomes)


def test_an_object_lock_refuses_a_delete_it_is_reported_and_skipped(local_aws):
    s3 = local_aws.s3_client()
    bucket = f"b-lock-{NOW:%H%M%S%f}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    hold = {"ObjectLockLegalHoldStatus": "ON"}
    until = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": NOW + timedelta(days=1)}
    held = write_folder(s3, bucket, day(90), lock={"0a.gz": hold})          # a data file on legal hold
    retained = write_folder(s3, bucket, day(80), lock={SUCCESS: until})      # _SUCCESS under retention
    write_folder(s3, bucket, day(70))                                          # plain: goes
    s3.put_object(Bucket=bucket, Key=f"b/{TABLE}/{folder_name(day(70))}/0a.gz", Body=b"rewritten")  # 2 versions
    write_folder(s3, bucket, day(1))
    base = S3Location(bucket, "b")

    report = prune_table(s3, base, TABLE, RetentionPolicy(35, 1), dry_run=False)

    by_folder = {o.folder: o for o in report.outcomes}
    assert report.locked == [f"b/{TABLE}/{folder_name(day(90))}/0a.gz ({_version(s3, held, '0a.gz')})",
                             f"b/{TABLE}/{folder_name(day(80))}/{SUCCESS} ({_version(s3, retained, SUCCESS)})"]
    assert not report.errors
    # The denials really happened: the locked versions are still stored.
    assert _version(s3, held, "0a.gz") and _version(s3, retained, SUCCESS)
    # The held folder lost _SUCCESS (never complete-looking with data missing) but kept its sidecar (still ours).
    assert _names(s3, held) == {"0a.gz", SIDECAR}
    # _SUCCESS refused: the folder is left whole.
    assert _names(s3, retained) == {"0a.gz", MANIFEST, SIDECAR, SUCCESS} and by_folder[retained].deleted == 0
    # The plain folder is gone, every version of it (on a versioned bucket: no delete markers left behind).
    gone = f"b/{TABLE}/{folder_name(day(70))}/"
    assert not s3.list_object_versions(Bucket=bucket, Prefix=gone).get("Versions")
    assert not s3.list_object_versions(Bucket=bucket, Prefix=gone).get("DeleteMarkers")
    assert by_folder[f"s3://{bucket}/{gone.rstrip('/')}"].deleted == 5

    # The hold is lifted: the next prune finishes the partial folder it left.
    s3.put_object_legal_hold(Bucket=bucket, Key=f"b/{TABLE}/{folder_name(day(90))}/0a.gz",
                             LegalHold={"Status": "OFF"})
    # (A partial folder counts as abandoned once its newest object is past keep_days: 36 days on.)
    again = prune_table(s3, base, TABLE, RetentionPolicy(35, 1), dry_run=False, now=NOW + timedelta(days=36))
    assert [o.folder for o in again.outcomes if o.gone] == [held]
    assert len(again.locked) == 1, "the retained _SUCCESS (S3's clock: a day left) is still refused"
    assert _names(s3, held) == set()


def _version(s3, folder_uri: str, name: str) -> str | None:
    folder = S3Location.parse(folder_uri)
    versions = s3.list_object_versions(Bucket=folder.bucket, Prefix=folder.key(name)).get("Versions", [])
    return versions[0]["VersionId"] if versions else None


def _names(s3, folder_uri: str) -> set[str]:
    folder = S3Location.parse(folder_uri)
    listed = s3.list_objects_v2(Bucket=folder.bucket, Prefix=folder.key("")).get("Contents", [])
    return {o["Key"][len(folder.key("")):] for o in listed}
