"""Review: a shift killed (SIGKILL of the calling process, its workers following) part
way through a tree with hard links across subtrees, ACLs, capabilities, setuid files,
symlinks and FIFOs, then resumed with one, two or three workers, leaves the tree a shift
without the kill leaves, and its report counts the tree (what held in the review of
0de307f and 314cf2e: the resumed run's settled hard-linked inodes are the ones the
killed run changed without a journal record)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.errors import JournalError
from userns.shift import ShiftReport, shift_tree

from .test_review_17_settled import oracle, rich_tree, state
from .test_shift_trees import need_root, need_tool

pytestmark = [
    pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
    pytest.mark.skipif(need_tool("setfacl") is not None, reason=str(need_tool("setfacl"))),
    pytest.mark.skipif(need_tool("setcap") is not None, reason=str(need_tool("setcap"))),
]

PAIR = IDMapPair.both(IDMap.single(0, 100000, 65536))
CODE = ("import sys\nfrom userns import IDMap, IDMapPair\nfrom userns.shift import shift_tree\n"
        "shift_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, 100000, 65536)), "
        "workers=int(sys.argv[2]), policy=sys.argv[3])\n")


def resume(root: Path, workers: int, policy: str) -> ShiftReport:
    """The same shift again; the killed run's workers may still hold the journal for a
    moment after their parent died (busy): retried then."""
    for _ in range(500):
        try:
            return shift_tree(root, PAIR, workers=workers, policy=policy)  # type: ignore[arg-type]
        except JournalError as exc:
            if exc.reason != "busy":
                raise
            time.sleep(0.01)
    raise AssertionError("the journal stayed busy")


def bulk(root: Path) -> None:
    """30 directories of 1,000 empty files, for a walk long enough to be killed in."""
    for d in range(30):
        (root / f"bulk{d}").mkdir()
        for i in range(1000):
            (root / f"bulk{d}" / f"b{i}").touch()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_a_killed_shift_resumed_by_one_two_or_three_workers(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    policy = ("skip", "error")[seed % 2]
    ref = tmp_path / "ref" / "t"
    ref.parent.mkdir()
    rich_tree(ref, seed, None, scale=8)
    bulk(ref)
    assert shift_tree(ref, PAIR, workers=1, policy=policy).complete  # type: ignore[arg-type]
    want = state(ref)
    interrupted = 0
    for workers in (1, 2, 3):
        root = tmp_path / f"w{workers}" / "t"
        root.parent.mkdir()
        rich_tree(root, seed, None, scale=8)
        bulk(root)
        proc = subprocess.Popen([sys.executable, "-c", CODE, str(root),
                                 str(rng.choice((1, 2, 3))), policy])
        journal = root.parent / ".t.userns-shift"
        while proc.poll() is None and not journal.exists():
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.2))  # (the walk takes about half a second)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        interrupted += os.path.exists(root.parent / ".t.userns-shift")
        report = resume(root, workers, policy)
        entries, extra, _ = oracle(root, False)
        assert report.complete and (report.entries, report.hardlinks) == (entries, extra)
        assert report.changed + report.unchanged == report.entries
        assert state(root) == want
        again = shift_tree(root, PAIR, workers=workers, policy=policy)  # type: ignore[arg-type]
        assert again.verified and again.changed == 0 and again.unchanged == entries
    if not interrupted:
        pytest.skip("every kill came before the journal or after the end: nothing resumed")
