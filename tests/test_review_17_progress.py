"""Review of the shift's scan progress (``progress=``) in a directory of more than 8,192
files, with one and two workers, after the scan took a directory's entries 4,096 at a
time (0de307f) and the two workers' settled hard-linked inodes went to the coordinator
(314cf2e).

The tree: ``big`` holds 10,000 files, three subdirectories and second names of the 300
files of ``o``, so that a 4,096-entry slice of its listing keeps fewer than 4,096 inodes
to examine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.shift import Progress, ShiftReport, shift_tree
from userns.shift.walk import PROGRESS_EVERY

from .test_shift_split import wide_tree
from .test_shift_trees import need_root

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

PAIR = IDMapPair.both(IDMap.single(0, 100000, 65536))
FILES, LINKED = 10_000, 300


def big_tree(root: Path) -> int:
    """The tree; returns its number of non-directory inodes (what the scan examines
    besides directories)."""
    (root / "big").mkdir(parents=True)
    (root / "o").mkdir()
    for i in range(FILES):
        (root / "big" / f"f{i}").touch()
    for j in range(3):
        (root / "big" / f"sub{j}").mkdir()
    for i in range(LINKED):
        (root / "o" / f"g{i}").touch()
        os.link(root / "o" / f"g{i}", root / "big" / f"h{i}")
    return FILES + LINKED


def scans(root: Path, workers: int) -> tuple[ShiftReport, list[int]]:
    got: list[Progress] = []
    report = shift_tree(root, PAIR, workers=workers, progress=got.append)
    assert report.complete
    return report, [p.done for p in got if p.phase == "scan"]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_scan_is_reported_every_4096_inodes(tmp_path: Path, workers: int) -> None:
    root = tmp_path / "t"
    big_tree(root)
    _, done = scans(root, workers)
    gaps = [b - a for a, b in zip([0, *done], done)]
    assert max(gaps) <= PROGRESS_EVERY, done


def test_a_verifying_rerun_reports_every_inode_scanned_with_two_workers(
        tmp_path: Path) -> None:
    root = tmp_path / "t"
    inodes = big_tree(root)
    assert shift_tree(root, PAIR, workers=1).complete
    one, done_one = scans(root, 1)
    assert one.verified and done_one[-1] == inodes
    two, done_two = scans(root, 2)
    assert two.verified and two.entries == one.entries and two.unchanged == one.unchanged
    assert done_two[-1] == inodes, done_two


@pytest.mark.parametrize("workers", [1, 2])
def test_a_first_shift_reports_every_inode_scanned_and_applied(
        tmp_path: Path, workers: int) -> None:
    # what held: a first shift (nothing settled) ends its scan reports at the inodes
    # scanned, values never decrease, and the apply phase reaches the planned total
    root = tmp_path / "t"
    inodes = big_tree(root)
    got: list[Progress] = []
    report = shift_tree(root, PAIR, workers=workers, progress=got.append)
    assert report.complete and report.changed == report.entries == inodes + 6
    scan = [p.done for p in got if p.phase == "scan"]
    apply = [(p.done, p.total) for p in got if p.phase == "apply"]
    assert scan == sorted(scan) and scan[-1] == inodes
    assert apply and apply[-1] == (inodes + 5, inodes + 5)  # (the root is changed last)
    assert all(done <= total for done, total in apply if total is not None)


def outside_tree(base: Path, workers: int) -> tuple[Path, int]:
    """Three directories of 500 files and 50 files with a second name in another, one in
    five of them with a third name outside the tree; returns the root and its number of
    non-directory inodes."""
    root, out = base / f"t{workers}", base / f"out{workers}"
    out.mkdir()
    wide_tree(root, ["a", "b", "c"], 500)
    for k in range(50):
        (root / "a" / f"x{k}").touch()
        os.link(root / "a" / f"x{k}", root / "b" / f"x{k}")
        if k % 5 == 0:
            os.link(root / "a" / f"x{k}", out / f"x{k}")
    return root, 3 * 500 + 50


def test_inodes_taken_in_with_a_name_outside_are_in_the_scan_count(tmp_path: Path) -> None:
    last: dict[str, int] = {}
    want = None
    for workers in (1, 2):
        root, inodes = outside_tree(tmp_path, workers)
        want = inodes
        for run in ("first", "again"):
            got: list[Progress] = []
            report = shift_tree(root, PAIR, workers=workers, policy="skip",
                                include_outside_links=True, progress=got.append)
            assert report.complete and report.entries == inodes + 4 and not report.outside_links
            last[f"{run}, {workers} workers"] = [p.done for p in got if p.phase == "scan"][-1]
    assert last == dict.fromkeys(last, want)


@pytest.mark.parametrize("workers", [1, 2])
def test_hard_linked_inodes_are_reported_every_4096_too(tmp_path: Path, workers: int) -> None:
    root = tmp_path / "t"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(FILES):
        (root / "a" / f"f{i}").touch()
        os.link(root / "a" / f"f{i}", root / "b" / f"f{i}")
    for _ in ("first", "again"):
        report, done = scans(root, workers)
        assert report.hardlinks == FILES and done[-1] == FILES
        gaps = [b - a for a, b in zip([0, *done], done)]
        assert max(gaps) <= PROGRESS_EVERY, done
