"""The retention planner on its own: which folders go and why (no S3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dynamodb_backup.errors import ParameterError
from dynamodb_backup.retention.plan import DELETE, KEEP, FolderFacts, RetentionPolicy, plan_retention

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BASE = "s3://b/backups/T"


def folder(days_ago: float, *, complete: bool = True, ours: bool = True, mode: str = "scan",
           full: float | None = None, previous: float | None = None, modified_days_ago: float | None = None
           ) -> FolderFacts:
    named = NOW - timedelta(days=days_ago)
    return FolderFacts(
        uri=f"{BASE}/{named:%Y-%m-%d-%H-%M-%S}", named=named, complete=complete, ours=ours,
        why_ours="sidecar" if ours else "no sidecar", mode=mode,
        modified=None if modified_days_ago is None else NOW - timedelta(days=modified_days_ago),
        chain_full=None if full is None else f"{BASE}/{NOW - timedelta(days=full):%Y-%m-%d-%H-%M-%S}",
        chain_previous=None if previous is None else f"{BASE}/{NOW - timedelta(days=previous):%Y-%m-%d-%H-%M-%S}")


def actions(decisions):
    return [(round((NOW - d.folder.named).total_seconds() / 86400), d.action) for d in decisions]


def test_old_complete_backups_go_but_keep_min_newest_stay():
    folders = [folder(d) for d in range(0, 60, 5)]  # 12 nightly-ish backups, 0..55 days old
    decisions = plan_retention(folders, RetentionPolicy(keep_days=35, keep_min=3), NOW)
    gone = sorted(round((NOW - d.folder.named).days) for d in decisions if d.action == DELETE)
    assert gone == [40, 45, 50, 55]
    assert "past keep_days" in next(d for d in decisions if d.action == DELETE).why


def test_all_backups_old_keeps_exactly_keep_min_newest():
    folders = [folder(100 + d) for d in range(10)]
    decisions = plan_retention(folders, RetentionPolicy(keep_days=35, keep_min=7), NOW)
    kept = [d for d in decisions if d.action == KEEP]
    assert [round((NOW - d.folder.named).days) for d in kept] == [106, 105, 104, 103, 102, 101, 100]
    assert "newest complete backup" in kept[-1].why
    assert "one of the 7 newest" in kept[0].why


def test_the_newest_complete_backup_is_kept_even_with_keep_min_1_and_newer_partials():
    folders = [folder(90), folder(80), folder(1, complete=False, modified_days_ago=50)]
    decisions = plan_retention(folders, RetentionPolicy(keep_days=10, keep_min=1), NOW)
    assert actions(decisions) == [(90, DELETE), (80, KEEP), (1, KEEP)]


def test_partial_folders_go_when_abandoned_but_not_while_recently_written():
    folders = [folder(3), folder(50, complete=False, modified_days_ago=49),
               folder(60, complete=False, modified_days_ago=0.1)]  # a backfill writing into an old date
    decisions = plan_retention(folders, RetentionPolicy(keep_days=35, keep_min=1), NOW)
    assert actions(decisions) == [(60, KEEP), (50, DELETE), (3, KEEP)]
    assert "abandoned" in decisions[1].why and "may still be running" in decisions[0].why


def test_folders_that_are_not_ours_are_never_deleted():
    folders = [folder(300, ours=False), folder(200, complete=False, ours=False), folder(1)]
    decisions = plan_retention(folders, RetentionPolicy(keep_days=1, keep_min=1), NOW)
    assert actions(decisions) == [(300, KEEP), (200, KEEP), (1, KEEP)]
    assert "not written by dynamodb-backup" in decisions[0].why


def test_a_kept_link_keeps_its_chain_and_a_gap_starts_a_new_one():
    # Chain A: full 60 days ago, links 59..57. Night 56 failed (partial), so a new full at 55, links 54..50.
    chain_a = [folder(60, mode="pitr"), *[folder(d, mode="incremental", full=60, previous=d + 1) for d in (59, 58, 57)]]
    gap = folder(56, complete=False, mode=None, modified_days_ago=56)
    chain_b = [folder(55, mode="pitr"), *[folder(d, mode="incremental", full=55, previous=d + 1)
                                          for d in (54, 53, 52, 51, 50)]]
    decisions = plan_retention([*chain_a, gap, *chain_b], RetentionPolicy(keep_days=35, keep_min=2), NOW)
    by_age = dict(actions(decisions))
    # keep_min 2 keeps links 50 and 51; they build on 52..54 and the full at 55, however old.
    assert [by_age[d] for d in (50, 51, 52, 53, 54, 55)] == [KEEP] * 6
    assert [by_age[d] for d in (56, 57, 58, 59, 60)] == [DELETE] * 5
    full_b = next(d for d in decisions if round((NOW - d.folder.named).days) == 55)
    assert "builds on it" in full_b.why


def test_a_link_whose_full_is_gone_is_kept_by_the_rules_and_says_the_chain_is_broken():
    decisions = plan_retention([folder(3, mode="incremental", full=40, previous=4)],
                               RetentionPolicy(keep_days=35, keep_min=1), NOW)
    assert decisions[0].action == KEEP
    assert "chain broken" in decisions[0].why


def test_protected_folder_is_kept_whatever_its_age():
    old = folder(400)
    decisions = plan_retention([old, folder(1), folder(2)], RetentionPolicy(keep_days=35, keep_min=1), NOW,
                               protect=[old.uri + "/"])
    assert decisions[0].action == KEEP and decisions[0].why == "the folder this run wrote"


@pytest.mark.parametrize(("value", "named"), [
    ({"keep_days": 0}, "retention.keep_days"), ({"keep_days": "35"}, "retention.keep_days"),
    ({"keep_min": 0}, "retention.keep_min"), ({"keep_min": 2.5}, "retention.keep_min"),
    ({"keep": 3}, "unknown settings"), ([35, 7], "expected a mapping")])
def test_policy_refuses_bad_values_naming_the_key(value, named):
    with pytest.raises(ParameterError, match=named):
        RetentionPolicy.parse(value)


def test_policy_defaults_and_off():
    assert RetentionPolicy.parse({}) == RetentionPolicy(35, 7)
    assert RetentionPolicy.parse(None) is None
