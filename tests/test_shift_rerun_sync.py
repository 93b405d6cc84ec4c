"""A verifying re-run that finds the tree right writes nothing of its own: it leaves the
root's mark as it is and makes no ``syncfs`` (which flushes every dirty page of the
filesystem, not only the shift's). A re-run that fixes something, a first shift and a
resumed one still flush before the journal goes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_shift_trees import need_root, need_tool

pytestmark = [
    pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
    pytest.mark.skipif(need_tool("strace") is not None, reason=str(need_tool("strace"))),
]

SHIFT = ("import sys\nfrom userns import IDMap, IDMapPair\nfrom userns.shift import shift_tree\n"
         "r = shift_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, 100000, 65536)), "
         "workers=int(sys.argv[2]))\nassert r.complete, r\nprint(r.changed, r.verified)\n")


def traced(root: Path, workers: int, tmp_path: Path) -> tuple[str, dict[str, int]]:
    """Run the shift under ``strace -f``; its output and its count of the calls that
    write the mark or flush."""
    log = tmp_path / f"strace-{len(list(tmp_path.glob('strace-*')))}"
    proc = subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e",
                           "trace=syncfs,setxattr,fsetxattr", sys.executable, "-c", SHIFT,
                           str(root), str(workers)], capture_output=True, text=True,
                          check=True)
    lines = log.read_text().splitlines()
    calls = {"syncfs": sum(" syncfs(" in line for line in lines),
             "setxattr": sum("setxattr(" in line and "trusted.userns.shift" in line
                             for line in lines)}
    return proc.stdout.strip(), calls


@pytest.mark.parametrize("workers", [1, 2])
def test_a_rerun_that_changes_nothing_neither_marks_nor_flushes(tmp_path: Path,
                                                                workers: int) -> None:
    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("x")
    out, calls = traced(root, workers, tmp_path)
    assert out == "3 False" and calls == {"syncfs": 1, "setxattr": 1}  # the first shift
    out, calls = traced(root, workers, tmp_path)
    assert out == "0 True" and calls == {"syncfs": 0, "setxattr": 0}  # right already
    os.chown(root / "d" / "f", 5, 5)  # a file with container IDs again
    out, calls = traced(root, workers, tmp_path)
    assert out == "1 True" and calls == {"syncfs": 1, "setxattr": 0}  # fixed: flushed
    st = os.lstat(root / "d" / "f")
    assert (st.st_uid, st.st_gid) == (100005, 100005)
