"""Review of 907042e (the fix of the review's settled-inode finding): a hard-linked inode
one worker found right and another did not (it changed between their looks) is asked for
by its names and dealt with all of them. Checked here with three workers, with names
outside the tree, and with a worker stopped by the error policy during the walk.

The change between the looks is made deterministic: the first worker to find an ``x…``
inode right re-owns it to container IDs (0:0) at once, so that every other worker that
finds a name of it finds it not right."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.shift import ShiftError, ShiftReport, shift_tree
from userns.shift import walk as walk_mod

from .test_review_17_settled import changing, spread
from .test_shift_trees import need_root, need_tool

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

PAIR = IDMapPair.both(IDMap.single(0, 100000, 65536))
DIRS, INODES = 40, 160


@pytest.fixture
def deadline() -> Iterator[None]:
    """A hang of the pooling (a worker never answered) fails the test instead."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError("the shift hung")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)




def looked_twice(log: Path) -> set[int]:
    """The inodes one worker found right and another not (two workers that looked at
    once can both find one right: it is then settled by both, as by one worker)."""
    by: dict[int, set[str]] = {}
    for line in log.read_text().splitlines():
        _, ino, right = line.split()
        by.setdefault(int(ino), set()).add(right)
    return {ino for ino, seen in by.items() if len(seen) > 1}


def x_inodes(root: Path) -> dict[int, Path]:
    return {os.lstat(p).st_ino: p for p in root.glob("d*/x*")}


@pytest.mark.parametrize("policy", ["skip", "error"])
def test_three_workers_deal_a_changed_inode_by_all_its_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str, deadline: None) -> None:
    root = tmp_path / "t"
    spread(root, DIRS, 60, INODES)
    assert shift_tree(root, PAIR, workers=1).complete
    changing(monkeypatch, tmp_path / "looks")
    report: ShiftReport = shift_tree(root, PAIR, workers=3, policy=policy)  # type: ignore[arg-type]
    monkeypatch.undo()
    twice = looked_twice(tmp_path / "looks")
    if not twice:
        pytest.skip("one worker walked every name this time: nothing to look at twice")
    assert report.verified and report.complete and not report.outside_links
    assert report.hardlinks == INODES
    # an inode one worker found right and another not was held by its names and fixed
    # after the walk
    xs = x_inodes(root)
    assert all(os.lstat(xs[ino]).st_uid == 100000 for ino in twice)
    assert report.changed >= len(twice)
    again = shift_tree(root, PAIR, workers=3, policy=policy)  # type: ignore[arg-type]
    assert again.entries == report.entries and not again.outside_links


def test_a_changed_inode_with_a_name_outside_is_still_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deadline: None) -> None:
    root = tmp_path / "t"
    out = tmp_path / "out"
    out.mkdir()
    spread(root, DIRS, 60, INODES)
    assert shift_tree(root, PAIR, workers=1).complete
    for k in range(0, INODES, 10):  # a third name, outside, of one in ten
        os.link(root / f"d{k % DIRS}" / f"x{k}", out / f"x{k}")
    changing(monkeypatch, tmp_path / "looks")
    report = shift_tree(root, PAIR, workers=2, policy="skip")
    monkeypatch.undo()
    if not looked_twice(tmp_path / "looks"):
        pytest.skip("one worker walked every name this time: nothing to look at twice")
    got = sorted((Path(o.path).name, o.links, o.inside) for o in report.outside_links)
    assert got == sorted((f"x{k}", 3, 2) for k in range(0, INODES, 10))
    assert report.hardlinks == INODES
    # left alone: the names outside keep the owner the inode had
    assert all(os.lstat(out / f"x{k}").st_uid in (0, 100000) for k in range(0, INODES, 10))


@pytest.mark.skipif(need_tool("chattr") is not None, reason=str(need_tool("chattr")))
def test_a_worker_stopped_during_the_walk_still_answers_for_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deadline: None) -> None:
    root = tmp_path / "t"
    spread(root, DIRS, 60, INODES)
    assert shift_tree(root, PAIR, workers=1).complete
    # wrong files, one of them immutable: with a batch of one change, a worker stops
    # during the walk there while the others go on
    for d in range(0, DIRS, 3):
        os.chown(root / f"d{d}" / "f5", 0, 0)
    victim = root / "d33" / "f5"
    done = subprocess.run(["chattr", "+i", str(victim)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {done.stderr!r}")
    changing(monkeypatch, tmp_path / "looks")
    monkeypatch.setattr(walk_mod, "BATCH", 1)
    try:
        with pytest.raises(ShiftError) as info:
            shift_tree(root, PAIR, workers=2, policy="skip", on_error="stop")
    finally:
        monkeypatch.undo()
        subprocess.run(["chattr", "-i", str(victim)], check=True)
    report = info.value.report
    assert isinstance(report, ShiftReport) and not report.complete
    assert [Path(e.path).name for e in report.errors] == ["f5"]
    assert not report.outside_links  # (a stopped walk says no inode has fewer names)
    assert report.changed + report.unchanged <= report.entries
    again = shift_tree(root, PAIR, workers=2, policy="skip")
    assert again.complete and not again.outside_links and again.hardlinks == INODES
    assert all(os.lstat(p).st_uid == 100000 for p in [root, *root.rglob("*")])
