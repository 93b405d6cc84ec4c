"""Review of the batched examine (0de307f): a shift stopped by an error in the middle of
a directory must not report more inodes examined than it looked at.

The error is one the kernel itself gives: an ext4 image whose file carries a revision 1
capability (written raw with ``debugfs``, since ``setxattr`` refuses it), which the shift
cannot read (``examine``, ``EINVAL``). The file chosen is the first one the directory's
listing hands over, so that every other file of the directory comes after the stop."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.shift import ShiftError, ShiftReport, shift_tree

from .mountns import ext4_image, private_mountns
from .test_shift_trees import need_root

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

PAIR = IDMapPair.both(IDMap.single(0, 100000, 65536))
# magic 0x01000000 | effective, permitted = CAP_NET_RAW, inheritable 0: revision 1
V1_CAP = "010000010020000000000000"
FILES = 60


def _run(*args: str) -> None:
    subprocess.run(args, capture_output=True, text=True, check=True)


def _image(tmp_path: Path, linked: bool) -> tuple[Path, Path, str]:
    """An ext4 image mounted at ``mnt`` with ``mnt/t`` holding ``FILES`` files (with
    ``linked``, each with a second name ``l…`` in the same directory), the first inode
    the shift examines given an unreadable capability; returns (mount, root, its name)."""
    img, mnt = ext4_image(tmp_path)
    root = mnt / "t"
    root.mkdir()
    for i in range(FILES):
        (root / f"f{i:03d}").write_text("x")
        if linked:
            os.link(root / f"f{i:03d}", root / f"l{i:03d}")
    order = [e.name for e in os.scandir(root)]
    if linked:
        # an inode is examined once its second name is listed: the first to complete
        second: dict[int, int] = {}
        first: dict[int, str] = {}
        for pos, name in enumerate(order):
            ino = os.lstat(root / name).st_ino
            if ino in first:
                second[ino] = pos
            else:
                first[ino] = name
        victim = first[min(second, key=second.__getitem__)]
    else:
        victim = order[0]
    _run("umount", str(mnt))
    _run("debugfs", "-w", "-R", f"ea_set -r /t/{victim} security.capability {V1_CAP}",
         str(img))
    _run("mount", "-o", "loop", str(img), str(mnt))
    return mnt, root, victim


def _stopped(root: Path, workers: int) -> ShiftReport:
    with pytest.raises(ShiftError) as info:
        shift_tree(root, PAIR, workers=workers, policy="skip", on_error="stop")
    report = info.value.report
    assert isinstance(report, ShiftReport)
    return report


def _check(tmp_path: Path, linked: bool, workers: int) -> None:
    mnt, root, victim = _image(tmp_path, linked)
    try:
        report = _stopped(root, workers)
        names = {victim, "f" + victim[1:], "l" + victim[1:]} if linked else {victim}
        assert [e.operation for e in report.errors] == ["examine"]
        assert Path(report.errors[0].path).name in names
        assert not report.complete and report.changed == 0
        # Looked at: the root (by the coordinator) and the unreadable file, the first of
        # its directory; the other files come after the stop.
        assert report.entries <= 2, report
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("workers", [1, 2])
@private_mountns()
def test_a_stop_in_a_directory_counts_what_was_examined(tmp_path: Path,
                                                        workers: int) -> None:
    _check(tmp_path, False, workers)


@private_mountns()
def test_a_stop_among_hard_links_counts_what_was_examined(tmp_path: Path) -> None:
    _check(tmp_path, True, 1)


@private_mountns()
def test_a_stop_leaves_the_tree_and_a_resume_finishes_it(tmp_path: Path) -> None:
    # what held: nothing is changed by the stopped run (its directory's plan is dropped),
    # and once the capability is removed the same shift resumes and changes everything
    mnt, root, victim = _image(tmp_path, False)
    try:
        _stopped(root, 2)
        assert all(os.lstat(p).st_uid == 0 for p in root.iterdir())
        os.removexattr(root / victim, "security.capability")
        report = shift_tree(root, PAIR, workers=2, policy="skip")
        assert report.resumed and report.complete
        assert report.entries == report.changed == FILES + 1
        assert all(os.lstat(p).st_uid == 100000 for p in [root, *root.iterdir()])
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
