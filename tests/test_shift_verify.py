"""A re-run never claims "complete" for what it did not check.

After a shift, a file added with container IDs (or a directory re-owned to 0) makes the
tree mixed; running the same shift again must find and fix them (a verifying walk), not
trust the root's mark. Trusting the mark is an explicit option whose report says so.
``audit`` reports the mark and a pending journal.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.shift import (
    ShiftError,
    UnmappedOwnersError,
    audit_tree,
    default_journal_path,
    shift_tree,
)

from .test_shift_trees import build_tree, need_root, need_tool, snapshot

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

OVERLAP = IDMapPair.both(IDMap.single(0, 1000, 65536))
PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))


def spoil(vol: Path) -> None:
    """What happens to a shifted volume: a file written with container IDs, a directory
    re-owned to 0, a setuid file added with container IDs."""
    (vol / "added").write_bytes(b"new\n")
    os.chown(vol / "added", 5, 6)
    os.chown(vol / "a", 0, 0)
    (vol / "tool").write_bytes(b"#!/bin/sh\n")
    os.chown(vol / "tool", 0, 0)
    os.chmod(vol / "tool", 0o4755)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("pair", [OVERLAP, PAIR], ids=["overlap", "disjoint"])
def test_a_rerun_verifies_and_fixes_only_what_is_wrong(tmp_path: Path, workers: int,
                                                       pair: IDMapPair) -> None:
    vol = tmp_path / "vol"
    build_tree(str(vol))
    shift_tree(vol, pair, workers=workers)
    good = snapshot(str(vol))
    spoil(vol)
    if pair is PAIR:  # (with overlapping sides most IDs tell nothing to audit)
        assert audit_tree(vol, pair).state == "mixed"
    plan = shift_tree(vol, pair, dry_run=True)
    assert plan.verified and not plan.already_complete
    report = shift_tree(vol, pair, workers=workers)
    assert report.verified and report.complete and not report.already_complete
    assert report.changed == 3 and report.entries == len(good) - 2 + 2  # two extra hard links
    assert report.owner_changes == plan.owner_changes
    assert {(c.kind, c.old, c.new) for c in report.owner_changes} == {
        ("uid", 5, pair.uid.to_host(5)), ("gid", 6, pair.gid.to_host(6)),
        ("uid", 0, pair.uid.to_host(0)), ("gid", 0, pair.gid.to_host(0))}
    assert report.modes_restored == 1 and os.stat(vol / "tool").st_mode & 0o7777 == 0o4755
    if pair is PAIR:
        assert audit_tree(vol, pair).state == "shifted"
    now = snapshot(str(vol))
    assert {k: v for k, v in now.items() if k in good} == good  # nothing else moved
    # and again: nothing left to fix
    assert shift_tree(vol, pair, workers=workers).changed == 0


def test_trusting_the_mark_checks_nothing_and_says_so(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    build_tree(str(vol))
    shift_tree(vol, OVERLAP)
    spoil(vol)
    before = snapshot(str(vol))
    report = shift_tree(vol, OVERLAP, trust_mark=True)
    assert report.already_complete and not report.verified and report.entries == 0
    assert snapshot(str(vol)) == before
    assert not os.path.exists(default_journal_path(vol))


def test_verify_under_policy_error_refuses_foreign_owners(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    build_tree(str(vol))
    shift_tree(vol, PAIR)
    (vol / "foreign").write_bytes(b"")
    os.chown(vol / "foreign", 70000, 70000)  # neither a container ID nor a result
    with pytest.raises(UnmappedOwnersError):
        shift_tree(vol, PAIR)
    assert os.stat(vol / "foreign").st_uid == 70000  # refused: nothing changed
    report = shift_tree(vol, PAIR, policy="skip")  # another shift (its policy differs)
    assert report.changed == 0 and os.stat(vol / "foreign").st_uid == 70000


def test_audit_reports_the_mark_and_a_pending_journal(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    build_tree(str(vol))
    fresh = audit_tree(vol, OVERLAP)
    assert fresh.mark is None and fresh.journal is None
    shift_tree(vol, OVERLAP)
    done = audit_tree(vol, OVERLAP)
    assert done.mark is not None
    assert done.mark.matches and done.mark.holds
    assert done.mark.uid == ((0, 1000, 65536),) and done.mark.policy == "error"
    assert done.journal is None
    other = audit_tree(vol, PAIR)
    assert other.mark is not None and not other.mark.matches
    assert done.to_dict()["mark"]["matches"] is True


@pytest.mark.skipif(need_tool("chattr") is not None, reason=str(need_tool("chattr")))
def test_audit_names_the_journal_of_an_interrupted_shift(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    build_tree(str(vol))
    stuck = vol / "plain"
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode:
        pytest.skip("this filesystem has no immutable flag")
    try:
        with pytest.raises(ShiftError):
            shift_tree(vol, OVERLAP, workers=1)
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    report = audit_tree(vol, OVERLAP)
    assert report.journal == default_journal_path(vol)
    assert report.mark is None
    plan = shift_tree(vol, OVERLAP, dry_run=True)
    assert plan.resumed and plan.journal == default_journal_path(vol)
    assert shift_tree(vol, OVERLAP).complete
    assert audit_tree(vol, OVERLAP).journal is None
