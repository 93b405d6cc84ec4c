"""A shift killed at each step of finishing (mark, root change, syncfs, journal removal)
never translates anything twice when it is run again.

The child process counts the steps of the end of a shift (the root's mark, the root's own
change, the final ``syncfs``, each ``unlink`` and the ``rmdir`` of the journal) and
SIGKILLs itself right before step N: deterministic, one run per step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.shift import Policy, default_journal_path, shift_tree

from .test_shift_trees import build_tree, need_root, snapshot

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

# Container and host ranges overlap: an inode translated twice shows (5 -> 1005 -> 2005).
OVERLAP = IDMapPair.both(IDMap.single(0, 1000, 65536))

CHILD = """
import os, signal, sys
import userns.shift.core as core
from userns import IDMap, IDMapPair
kill_at = int(sys.argv[4])
steps = []
armed = [False]

def step(name):
    steps.append(name)
    if len(steps) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

def wrap(name, fn, arm=False, when=lambda *a: True):
    def wrapper(*args, **kwargs):
        if arm:
            armed[0] = True
        if armed[0] and when(*args):
            step(name)
        return fn(*args, **kwargs)
    return wrapper

core._set_marker = wrap("mark", core._set_marker, arm=True)
core._syncfs = wrap("syncfs", core._syncfs)
# after the mark, the only chown of a descriptor is the root's own change
os.chown = wrap("root", os.chown, when=lambda target, *a: isinstance(target, int))
os.unlink = wrap("unlink", os.unlink)
os.rmdir = wrap("rmdir", os.rmdir)
pair = IDMapPair.both(IDMap.single(0, 1000, 65536))
r = core.shift_tree(sys.argv[1], pair, workers=int(sys.argv[2]), policy=sys.argv[3])
print(" ".join(steps), r.complete, flush=True)
"""


def child(tree: Path, workers: int, policy: Policy,
          kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, str(tree), str(workers), policy,
                           str(kill_at)], capture_output=True, text=True)


@pytest.mark.parametrize("policy", ["skip", "error"])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_kill_at_every_step_of_finishing_resumes_to_the_clean_result(
        tmp_path: Path, workers: int, policy: Policy) -> None:
    template = tmp_path / "template"
    build_tree(str(template))
    reference = tmp_path / "reference"
    subprocess.run(["cp", "-a", "--", str(template), str(reference)], check=True)
    shift_tree(reference, OVERLAP, workers=1, policy=policy)
    want = snapshot(str(reference))
    # a clean run names the steps of finishing
    first = tmp_path / "first"
    subprocess.run(["cp", "-a", "--", str(template), str(first)], check=True)
    done = child(first, workers, policy, 0)
    assert done.returncode == 0, done.stderr
    steps = done.stdout.split()[:-1]
    assert steps[0] == "mark" and "root" in steps and "syncfs" in steps and "rmdir" in steps
    assert steps.count("unlink") >= 3  # the header, a segment, the lock
    assert snapshot(str(first)) == want
    for n in range(1, len(steps) + 1):
        tree = tmp_path / f"kill{n}"
        subprocess.run(["cp", "-a", "--", str(template), str(tree)], check=True)
        killed = child(tree, workers, policy, n)
        assert killed.returncode == -9, (n, killed.stdout, killed.stderr)
        report = shift_tree(tree, OVERLAP, workers=workers, policy=policy)
        assert report.complete
        assert not os.path.exists(default_journal_path(tree))
        got = snapshot(str(tree))
        bad = {k: (got[k][1:3], want[k][1:3]) for k in want if got[k] != want[k]}
        assert not bad, f"killed before step {n} ({steps[n - 1]}): {bad}"


def test_a_journal_without_its_header_is_finished_and_its_segments_are_cleared(
        tmp_path: Path) -> None:
    from userns.shift.journal import NO_MODE, Journal, Record

    path = str(tmp_path / "j")
    header = {"root": [1, 2], "uid": [[0, 1000, 10]], "gid": [[0, 1000, 10]]}
    jr = Journal.open(path, header, durable=False)
    w = jr.writer("w0")
    w.add(1, 5, Record(5, 5, 1005, 1005, NO_MODE, ()))
    w.flush()
    w.close()
    jr.close()
    os.unlink(os.path.join(path, "header.json"))  # killed right after remove()'s first step
    assert Journal.peek(path, header) is None  # a dry run sees no interrupted shift
    again = Journal.open(path, header, durable=False)
    assert not again.resumed
    assert again.records() == {}  # the old records do not leak into the new shift
    assert sorted(os.listdir(path)) == ["header.json", "lock"]
    again.remove()
    assert not os.path.exists(path)
