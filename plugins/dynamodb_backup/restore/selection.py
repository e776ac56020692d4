"""Restoring a few items: chosen keys (or one partition key) from a full backup or an as-of chain.

Why: someone deleted 40 items by mistake. Restoring the whole table to a new name
and copying them back by hand is slow and error-prone. This reads the backup (and
the chain's links, in order) keeping only the chosen keys, then puts exactly those
items into the EXISTING table: deleted items come back, nothing else is touched
(a chosen key that the backup does not hold is reported, not deleted). The log
lists every key written and every requested key the backup did not hold.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.aws.tablecreate import check_same_keys
from dynamodb_backup.aws.tableinfo import describe_table
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY
from dynamodb_backup.errors import BackupError, CodecError, ParameterError
from dynamodb_backup.formats.codec import Item, item_digest
from dynamodb_backup.formats.codec.datapipeline import item_from_json, load_json_object
from dynamodb_backup.formats.codec.decimals import normalize_number
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.incremental.apply import file_changes
from dynamodb_backup.incremental.chain import find_chain, link_files, refuse_incremental
from dynamodb_backup.loading.load import BatchWriter, batch_consumed, unprocessed_delay
from dynamodb_backup.pitr.window import iso
from dynamodb_backup.repository.digest import backup_items
from dynamodb_backup.repository.inspection import BackupSource, SourceFile, inspect_folder
from dynamodb_backup.repository.keyschema import KeyRules, key_description
from dynamodb_backup.restore.steps import write_rate
from dynamodb_backup.restore.streamchain import StreamPlan, at, has_stream, plan_stream, stream_changes
from dynamodb_backup.restore.verify import default_read_rate

log = logging.getLogger(__name__)

Key = tuple[str, ...]
MAX_GET_KEYS = 100
MAX_GET_ROUNDS = 50
#: Keys named one per log line; beyond this the log gives a count.
MAX_LOGGED_KEYS = 1000


def parse_keys(lines: Iterable[str | bytes], where: str, rules: KeyRules) -> list[Item]:
    """One key per line in DynamoDB JSON (``{"pk": {"S": "a"}, "sk": {"N": "1"}}``); a bad line names itself."""
    keys: dict[Key, Item] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            key = item_from_json(load_json_object(line))
            others = sorted(set(key) - set(rules.key_names))
            if others:
                raise CodecError(f"attributes {others} are not key attributes (the key is {rules.key_names})")
            rules.check(key)
        except CodecError as exc:
            raise ParameterError(f"{where} line {number}: {exc.reason}") from None
        keys.setdefault(rules.key_of(key), key)
    if not keys:
        raise ParameterError(f"{where}: no keys (one key per line in DynamoDB JSON, e.g. {{\"pk\": {{\"S\": \"a\"}}}})")
    return list(keys.values())


def read_keys_file(path: str, rules: KeyRules) -> list[Item]:
    try:
        with open(path, "rb") as handle:
            return parse_keys(handle, path, rules)
    except OSError as exc:
        raise ParameterError(f"keys: cannot read {path} ({exc.strerror})") from None


def partition_value(text: str, rules: KeyRules) -> str:
    """The partition key's value from text, canonical (as ``key_of`` gives it) for the table's key type."""
    name, kind = rules.keys[0]
    try:
        if kind == "N":
            return normalize_number(text.strip())
        if kind == "B":
            return base64.b64encode(base64.b64decode(text.strip(), validate=True)).decode("ascii")
    except (CodecError, binascii.Error, ValueError):
        raise ParameterError(f"partition_key: {text!r} is not a valid {kind} value for {name!r}") from None
    if not text:
        raise ParameterError("partition_key: empty")
    return text


@dataclass
class Selection:
    """The items to restore: these keys, or every item with this partition key value."""

    rules: KeyRules
    keys: dict[Key, Item] = field(default_factory=dict)
    partition: str | None = None

    @classmethod
    def of(cls, rules: KeyRules, keys: list[Item] | None = None, partition: str | None = None) -> Selection:
        if (keys is None) == (partition is None):
            raise ParameterError("give either keys (a file of keys) or partition_key, not both")
        if keys is not None:
            return cls(rules, {rules.key_of(k): k for k in keys})
        return cls(rules, partition=partition_value(partition or "", rules))

    def wants(self, key: Key) -> bool:
        return key in self.keys or (self.partition is not None and key[0] == self.partition)

    def describe(self) -> str:
        if self.partition is not None:
            return f"every item with {self.rules.key_names[0]} = {self.partition!r}"
        return f"{len(self.keys)} keys"


def selected_state(s3: Any, source: BackupSource, links: list[list[SourceFile]],
                   selection: Selection, stream: StreamPlan | None = None) -> dict[Key, Item]:
    """The chosen items as the backup describes them: the full's, then each link's changes in order, then the
    stream's changes (``stream``: restore to a second) in replay order."""
    rules, state = selection.rules, dict[Key, Item]()
    for _, item in backup_items(s3, source):
        key = rules.key_of(item)
        if selection.wants(key):
            state[key] = item
    for files in links:
        for file in files:
            for _, change in file_changes(s3, source.folder.bucket, file, rules):
                key = rules.key_of(change.keys)
                if not selection.wants(key):
                    continue
                if change.new is not None:
                    state[key] = change.new
                else:
                    state.pop(key, None)
    for _, stored in stream_changes(s3, stream, rules) if stream is not None else ():
        key = rules.key_of(stored.change.keys)
        if selection.wants(key):
            if stored.change.new is not None:
                state[key] = stored.change.new
            else:
                state.pop(key, None)
    return state


def read_items(dynamodb: Any, table: str, keys: Iterable[Item], rules: KeyRules, bucket: TokenBucket,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[tuple[Key, Item | None]]:
    """``(key, item or None)`` for every key, read strongly consistently with BatchGetItem (100 a call), paced."""
    unique = {rules.key_of(k): {n: k[n] for n in rules.key_names} for k in keys}
    pending = list(unique.items())
    for start in range(0, len(pending), MAX_GET_KEYS):
        chunk = dict(pending[start:start + MAX_GET_KEYS])
        found: dict[Key, Item] = {}
        request: dict[str, Any] = {table: {"Keys": list(chunk.values()), "ConsistentRead": True}}
        rounds = 0
        while request:
            bucket.wait()
            response = call_with_retries(partial(dynamodb.batch_get_item, RequestItems=request,
                                                 ReturnConsumedCapacity="TOTAL"))
            bucket.charge(batch_consumed(response))
            for item in response.get("Responses", {}).get(table, []):
                found[rules.key_of(item)] = item
            request = response.get("UnprocessedKeys") or {}
            if request:
                rounds += 1
                if rounds > MAX_GET_ROUNDS:
                    raise BackupError(f"{table}: DynamoDB left keys unread after {rounds} rounds")
                sleep(unprocessed_delay(rounds))
        for key in chunk:
            yield key, found.get(key)


def differing(dynamodb: Any, table: str, expected: dict[Key, Item | None], rules: KeyRules, bucket: TokenBucket,
              sample: int = 20) -> tuple[int, list[dict[str, Any]]]:
    """How many of ``expected``'s keys hold something else in ``table`` (None: must be absent), and a sample."""
    keys = [dict(zip(rules.key_names, key, strict=True)) for key in expected]
    wrong, shown = 0, list[dict[str, Any]]()
    for key, item in read_items(dynamodb, table, _typed(keys, rules), rules, bucket):
        want = expected[key]
        if (item is None) != (want is None) or (item is not None and want is not None
                                                and item_digest(item) != item_digest(want)):
            wrong += 1
            if len(shown) < sample:
                shown.append(dict(zip(rules.key_names, key, strict=True)))
    return wrong, shown


def _typed(keys: list[dict[str, str]], rules: KeyRules) -> list[Item]:
    """Canonical key values back to typed key attributes."""
    typed = []
    for key in keys:
        item: Item = {}
        for name, kind in rules.keys:
            value = key[name]
            item[name] = {kind: base64.b64decode(value) if kind == "B" else value}
        typed.append(item)
    return typed


def log_keys(what: str, keys: list[dict[str, Any]]) -> None:
    log.info("%s: %d", what, len(keys))
    for key in keys[:MAX_LOGGED_KEYS]:
        log.info("  %s %s", what.split()[0], key)
    if len(keys) > MAX_LOGGED_KEYS:
        log.info("  ... and %d more", len(keys) - MAX_LOGGED_KEYS)


@dataclass
class ItemsOutcome:
    point: str
    """What the items were restored from: a folder, or a chain point."""
    written: list[dict[str, Any]]
    missing: list[dict[str, Any]]
    """Requested keys the backup did not hold (at its point): not written, not deleted."""
    differing: int | None = None
    """After writing, how many written keys read back as something else (None: not verified)."""
    sample: list[dict[str, Any]] = field(default_factory=list)


def restore_items(dynamodb: Any, s3: Any, table: str, source: BackupSource, links: list[list[SourceFile]],
                  selection: Selection, point: str, *, write_ratio: float = 0.5,
                  on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY, verify: bool = True,
                  stream: StreamPlan | None = None) -> ItemsOutcome:
    """Put the selected items, as ``source``, ``links`` and ``stream`` describe them, into the existing ``table``."""
    target = describe_table(dynamodb, table)
    if source.table is not None:
        check_same_keys(source.table, target, f"table {table!r}")
    log.info("restoring %s from %s into %s", selection.describe(), point, table)
    state = selected_state(s3, source, links, selection, stream)
    rules = selection.rules
    written = [dict(zip(rules.key_names, key, strict=True)) for key in sorted(state)]
    missing = [dict(zip(rules.key_names, key, strict=True)) for key in selection.keys if key not in state]
    writer = BatchWriter(dynamodb, table, rules.key_names, TokenBucket(write_rate(target, write_ratio,
                                                                                  on_demand_capacity)))
    for key, item in sorted(state.items()):
        writer.put(item, f"{point}: key {dict(zip(rules.key_names, key, strict=True))}")
    writer.flush()
    log_keys("written items", written)
    if missing:
        log_keys("missing keys (not in the backup at that point; left alone)", missing)
    outcome = ItemsOutcome(point, written, missing)
    if verify:
        reads = TokenBucket(default_read_rate(dynamodb, table, write_ratio, on_demand_capacity))
        expected: dict[Key, Item | None] = dict(state)
        outcome.differing, outcome.sample = differing(dynamodb, table, expected, rules, reads)
        log.info("verified %d written items: %s", len(state), "all read back as restored" if not outcome.differing
                 else f"{outcome.differing} DIFFER, e.g. {outcome.sample[:3]}")
    return outcome


def run_items(make_client: Any, table: str, *, folder: S3Location | None = None, base: S3Location | None = None,
              source_table: str | None = None, moment: datetime | None = None, keys_file: str | None = None,
              keys_text: str | None = None, partition_key: str | None = None, write_ratio: float = 0.5,
              on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY, verify: bool = True,
              force: bool = False) -> ItemsOutcome:
    """Restore chosen items into the existing ``table``: from ``folder`` (a full backup), or from the chain of
    ``source_table`` under ``base`` as it stood at ``moment``. Keys from a file, from text, or a partition key."""
    s3, dynamodb = make_client("s3"), make_client("dynamodb")
    rules = KeyRules.from_description(key_description(describe_table(dynamodb, table)))
    keys = None
    if keys_file:
        keys = read_keys_file(keys_file, rules)
    elif keys_text:
        keys = parse_keys(keys_text.splitlines(), "keys", rules)
    selection = Selection.of(rules, keys, partition_key)
    links: list[list[SourceFile]] = []
    stream: StreamPlan | None = None
    if moment is not None:
        if base is None or not source_table:
            raise ParameterError("as_of needs the backups' location and the source table")
        stream = plan_stream(s3, base, source_table, moment) if has_stream(s3, base, source_table) else None
        chain = stream.chain if stream else find_chain(s3, base, source_table, moment)
        source = inspect_folder(s3, chain.full.folder)
        links = [link_files(s3, link) for link in chain.links]
        point = (f"the stream of {source_table} at {at(stream.point)} inclusive" if stream else
                 f"the chain of {source_table} at {iso(chain.point)}")
        point += f" ({len(links)} links after {chain.full.folder})"
    else:
        if folder is None:
            raise ParameterError("give the backup folder (or as_of) to restore items from")
        refuse_incremental(s3, folder)
        source = inspect_folder(s3, folder, force=force)
        point = f"{folder}"
    return restore_items(dynamodb, s3, table, source, links, selection, point, write_ratio=write_ratio,
                         on_demand_capacity=on_demand_capacity, verify=verify, stream=stream)
