"""A shift never changes an inode outside the tree, even through a hard link.

A hard link inside the tree to a file outside it (same filesystem) must not re-own the
outside file: the walk counts the names it finds inside; an inode whose link count is
larger has a name outside. Tested with a real outside file (owner, mode, content), in
every policy, with one and two workers, after a kill and a resume, and in unshift, audit
and the dry run.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.shift import (
    OutsideLink,
    OutsideLinksError,
    Policy,
    audit_tree,
    default_journal_path,
    shift_tree,
    unshift_tree,
)

from .test_shift_trees import build_tree, need_root, snapshot

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

# Container and host ranges overlap: anything changed twice shows (5 -> 1005 -> 2005).
OVERLAP = IDMapPair.both(IDMap.single(0, 1000, 65536))


def outside_state(path: Path) -> tuple[int, int, int, str]:
    st = os.lstat(path)
    return (st.st_uid, st.st_gid, st.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())


def setup(tmp_path: Path) -> tuple[Path, Path, tuple[int, int, int, str]]:
    """A tree with inside-only hard links, plus two names of outside files."""
    vol = tmp_path / "vol"
    build_tree(str(vol))  # has a hard-linked inode with all three names inside
    secret = tmp_path / "etc-shadow"
    secret.write_bytes(b"root:*:19000:0:99999:7:::\n")
    os.chown(secret, 0, 42)
    os.chmod(secret, 0o640)
    os.link(secret, vol / "innocent")
    twice = tmp_path / "other"
    twice.write_bytes(b"two names inside, one outside\n")
    os.chown(twice, 7, 7)
    os.link(twice, vol / "a" / "x1")
    os.link(twice, vol / "deep" / "x2")
    return vol, secret, outside_state(secret)


@pytest.mark.parametrize("workers", [1, 2])
def test_policy_error_refuses_and_changes_nothing(tmp_path: Path, workers: int) -> None:
    vol, secret, before = setup(tmp_path)
    tree_before = snapshot(str(vol))
    with pytest.raises(OutsideLinksError) as info:
        shift_tree(vol, OVERLAP, workers=workers, policy="error")
    err = info.value
    assert err.reason == "outside-links"
    assert {(o.path, o.links, o.inside) for o in err.report.outside_links} == {
        (str(vol / "innocent"), 2, 1), (str(vol / "a" / "x1"), 3, 2)} or {
        (o.path, o.links, o.inside) for o in err.report.outside_links} == {
        (str(vol / "innocent"), 2, 1), (str(vol / "deep" / "x2"), 3, 2)}
    assert "innocent (2 links, 1 inside)" in str(err)
    assert outside_state(secret) == before
    assert snapshot(str(vol)) == tree_before
    assert not os.path.exists(default_journal_path(vol))


@pytest.mark.parametrize("policy", ["skip", "overflow"])
@pytest.mark.parametrize("workers", [1, 2])
def test_skip_and_overflow_leave_them_and_report_them(tmp_path: Path, workers: int,
                                                      policy: Policy) -> None:
    vol, secret, before = setup(tmp_path)
    other = os.lstat(tmp_path / "other")
    report = shift_tree(vol, OVERLAP, workers=workers, policy=policy)
    assert report.complete
    assert outside_state(secret) == before
    assert (os.lstat(tmp_path / "other").st_uid, os.lstat(tmp_path / "other").st_gid) == (
        other.st_uid, other.st_gid)
    assert [(Path(o.path).name, o.links, o.inside, o.outside)
            for o in report.outside_links] in (
        [("x1", 3, 2, 1), ("innocent", 2, 1, 1)], [("x2", 3, 2, 1), ("innocent", 2, 1, 1)])
    # hard links wholly inside the tree are shifted exactly once
    hl = os.lstat(vol / "shared" / "hl")
    assert (hl.st_uid, hl.st_gid, hl.st_nlink) == (1010, 1011, 3)
    assert os.lstat(vol / "plain").st_uid == 1001


@pytest.mark.parametrize("workers", [1, 2])
def test_include_outside_links_reowns_them(tmp_path: Path, workers: int) -> None:
    vol, secret, _ = setup(tmp_path)
    report = shift_tree(vol, OVERLAP, workers=workers, include_outside_links=True)
    assert report.complete and report.outside_links == ()
    st = os.lstat(secret)
    assert (st.st_uid, st.st_gid) == (1000, 1042)  # changed once, through the inside name
    assert os.lstat(tmp_path / "other").st_uid == 1007
    assert os.lstat(vol / "shared" / "hl").st_uid == 1010


def test_dry_run_unshift_and_audit_report_them(tmp_path: Path) -> None:
    vol, secret, before = setup(tmp_path)
    plan = shift_tree(vol, OVERLAP, dry_run=True)
    assert {Path(o.path).name for o in plan.outside_links} & {"innocent"}
    audit = audit_tree(vol, OVERLAP)
    assert OutsideLink(str(vol / "innocent"), 2, 1) in audit.outside_links
    assert len(audit.outside_links) == 2
    shift_tree(vol, OVERLAP, policy="skip")
    back = unshift_tree(vol, OVERLAP, policy="skip")
    assert back.complete
    assert OutsideLink(str(vol / "innocent"), 2, 1) in back.outside_links
    assert outside_state(secret) == before
    assert os.lstat(vol / "plain").st_uid == 1


KILLER = """
import os, signal, sys
from userns import IDMap, IDMapPair
from userns.shift import shift_tree
n = int(sys.argv[3])
calls = [0]
real = os.chown
def chown(*args, **kwargs):
    calls[0] += 1
    if calls[0] == n:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    return real(*args, **kwargs)
os.chown = chown
shift_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, 1000, 65536)), workers=int(sys.argv[2]),
           policy="skip", include_outside_links=False)
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_and_resumed_shift_leaves_them_alone(tmp_path: Path, workers: int) -> None:
    for kill_at in (1, 5, 12):
        case = tmp_path / f"k{kill_at}"
        case.mkdir()
        vol, secret, before = setup(case)
        proc = subprocess.run([sys.executable, "-c", KILLER, str(vol), str(workers),
                               str(kill_at)], start_new_session=True, capture_output=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert os.path.exists(default_journal_path(vol))
        report = shift_tree(vol, OVERLAP, workers=workers, policy="skip")
        assert report.complete and report.resumed
        assert outside_state(secret) == before
        assert os.lstat(vol / "shared" / "hl").st_uid == 1010
        assert os.lstat(vol / "plain").st_uid == 1001


def test_a_name_moved_during_the_walk_is_not_counted_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The inode has one name inside (and one outside); during the walk that name moves
    from a directory already listed into one not listed yet, so the walk meets it twice.
    Two names found for a link count of two must not pass for "wholly inside"."""
    vol = tmp_path / "vol"
    (vol / "a").mkdir(parents=True)
    (vol / "b").mkdir()
    secret = tmp_path / "secret"
    secret.write_text("keep")
    os.link(secret, vol / "a" / "x")
    dirs = {os.lstat(vol / d).st_ino: d for d in ("a", "b")}
    listed: list[str] = []
    real = os.scandir

    def scandir(fd: Any) -> Any:
        d = dirs.get(os.fstat(fd).st_ino) if isinstance(fd, int) else None
        if d is not None:
            if listed:  # the second of a and b: move the name there before listing it
                first = listed[0]
                if (vol / first / "x").exists():
                    os.rename(vol / first / "x", vol / d / "x")
            listed.append(d)
        return real(fd)

    monkeypatch.setattr(os, "scandir", scandir)
    report = shift_tree(vol, OVERLAP, workers=1, policy="skip")
    monkeypatch.undo()
    assert len(listed) == 2
    assert outside_state(secret)[:2] == (0, 0)
    assert [o.links for o in report.outside_links] == [2]
