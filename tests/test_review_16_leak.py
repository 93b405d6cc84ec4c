"""Review finding (older than this session's commits, met while unmounting a test
filesystem): a shift that stops at a path error, or goes on past one
(``on_error="continue"``) and returns an incomplete report, leaves the segment of its
journal that the calling process writes open. A long-lived caller (a daemon that shifts
volumes) leaks a descriptor per failed shift, and the filesystem holding the journal
cannot be unmounted ("target is busy") until that process exits."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.errors import ShiftError
from userns.shift import shift_tree

from .test_shift_trees import need_root

pytestmark = [
    pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
    pytest.mark.skipif(shutil.which("chattr") is None, reason="chattr is not installed"),
]

PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))


def open_under(path: Path) -> list[str]:
    """What this process's descriptors name under ``path``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # (the listing's own descriptor, closed since)
        if target.startswith(str(path)):
            found.append(target)
    return found


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("on_error", ["stop", "continue"])
def test_a_failed_shift_leaves_no_descriptor_open(tmp_path: Path, workers: int,
                                                  on_error: str) -> None:
    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("x")
    (root / "g").write_text("y")
    if subprocess.run(["chattr", "+i", str(root / "d" / "f")], check=False).returncode:
        pytest.skip("this filesystem has no immutable flag")
    try:
        try:
            report = shift_tree(root, PAIR, workers=workers,
                                on_error=on_error)  # type: ignore[arg-type]
            assert not report.complete
        except ShiftError as exc:
            assert on_error == "stop" and exc.reason == "path-error"
        assert open_under(tmp_path) == []
    finally:
        subprocess.run(["chattr", "-i", str(root / "d" / "f")], check=False)
