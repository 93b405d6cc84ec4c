"""A shift's report counts only the owner changes it made (review finding)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.shift import shift_tree

PAIR = IDMapPair.both(IDMap.single(0, 231072, 65536))


def _immutable(path: Path, on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True,
                   capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chattr") is None,
                    reason="chattr +i needs root and e2fsprogs")
@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_change_is_not_counted(tmp_path: Path, workers: int) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    for name in ("a", "b", "imm"):
        (tree / name).write_text(name)
    try:
        _immutable(tree / "imm", True)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"this filesystem takes no immutable flag: {exc.stderr!r}")
    try:
        report = shift_tree(tree, PAIR, on_error="continue", workers=workers)
    finally:
        _immutable(tree / "imm", False)
    assert not report.complete and [e.path for e in report.errors] == [str(tree / "imm")]
    changed_uids = sum(1 for p in tree.iterdir() if p.stat().st_uid == 231072)
    assert changed_uids == report.changed == 2
    assert os.stat(tree).st_uid == 0  # the root's own change comes last: not made
    counts = {(c.kind, c.old, c.new): c.count for c in report.owner_changes}
    assert counts == {("uid", 0, 231072): 2, ("gid", 0, 231072): 2}
