"""Review of the split by subtree: cases found while comparing two workers with one.

A root whose owner cannot be changed (an immutable flag) was the one failure found (with
one worker and two alike, and before the split): a raw PermissionError naming a
descriptor. It is now an error of the report naming the root, or with ``on_error="stop"``
a ShiftError, and the journal is kept for the run that resumes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.shift import ShiftError, shift_tree

from .test_shift_trees import need_root, need_tool

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

DISJOINT = IDMapPair.both(IDMap.single(0, 100000, 65536))


@pytest.fixture
def stuck_root(tmp_path: Path) -> Iterator[Path]:
    """A small tree whose root carries the immutable flag (removed afterwards)."""
    if need_tool("chattr") is not None:
        pytest.skip(str(need_tool("chattr")))
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    for i in range(3):
        (root / "d" / f"f{i}").write_bytes(b"")
    done = subprocess.run(["chattr", "+i", str(root)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {done.stderr!r}")
    try:
        yield root
    finally:
        subprocess.run(["chattr", "-i", str(root)], check=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_root_that_cannot_be_reowned_is_a_reported_path_error(stuck_root: Path,
                                                                 workers: int) -> None:
    try:
        report = shift_tree(stuck_root, DISJOINT, workers=workers, on_error="continue")
    except ShiftError as exc:  # acceptable too: a ShiftError naming the root
        assert str(stuck_root) in str(exc)
        return
    assert not report.complete
    assert [(e.path, e.reason) for e in report.errors] == [(str(stuck_root), "EPERM")]
    assert os.lstat(stuck_root / "d" / "f0").st_uid == 100000


def test_a_root_that_cannot_be_reowned_stops_and_resumes(stuck_root: Path) -> None:
    with pytest.raises(ShiftError) as info:
        shift_tree(stuck_root, DISJOINT, workers=2)
    assert str(stuck_root) in str(info.value) and "kept" in str(info.value)
    assert not info.value.report.complete
    subprocess.run(["chattr", "-i", str(stuck_root)], check=True)
    report = shift_tree(stuck_root, DISJOINT, workers=2)
    assert report.resumed and report.complete
    assert os.lstat(stuck_root).st_uid == 100000
