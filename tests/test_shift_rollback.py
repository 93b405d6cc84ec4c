"""Rolling back an interrupted shift gives back exactly the tree before it.

Each case kills a shift (SIGKILL, right before its N-th change, N drawn from a seeded
generator: deterministic) of a tree with setuid files, capabilities, ACLs and hard
links, then rolls it back, killing the rollback too at drawn points, and runs the
rollback again until it finishes: the tree must equal the one before the shift (owners,
modes, capabilities, ACLs, content), the journal and the root's mark must be gone.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.shift import (
    JournalError,
    default_journal_path,
    rollback_shift,
    shift_tree,
    unshift_tree,
)

from .test_shift_resume import MAPS, build_template, copy
from .test_shift_trees import need_root, snapshot

pytestmark = [pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
              pytest.mark.slow]

CHILD = """
import os, signal, sys
from userns import Extent, IDMap, IDMapPair  # noqa: F401 - the repr below needs them
from userns.shift import shift_tree
from userns.shift.core import MARKER
pair = {pair!r}
tree, mode, workers, policy, kill_after = sys.argv[1:6]
ops = [0]

def counted(fn):
    def wrapper(*args, **kwargs):
        if args and args[-1:] != (MARKER,) and not (args[1:2] == (MARKER,)):
            ops[0] += 1
            if ops[0] == int(kill_after):  # SIGKILL the whole group right before this change
                os.killpg(os.getpgrp(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapper

for name in ("chown", "chmod", "setxattr", "removexattr"):
    setattr(os, name, counted(getattr(os, name)))
r = shift_tree(tree, pair, workers=int(workers), policy=policy, rollback=mode == "rollback")
print("done", r.complete, ops[0], flush=True)
"""


def child(tree: Path, pair: IDMapPair, mode: str, workers: int, policy: str,
          kill_after: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD.format(pair=pair), str(tree), mode,
                           str(workers), policy, str(kill_after)],
                          capture_output=True, text=True, start_new_session=True)


@pytest.mark.parametrize(("maps", "policy"), [
    ("overlap", "skip"), ("overlap", "error"), ("disjoint", "error"), ("disjoint", "skip")])
def test_killed_shifts_roll_back_to_the_tree_before(tmp_path: Path, maps: str,
                                                    policy: str) -> None:
    pair = MAPS[maps]
    template = tmp_path / "template"
    build_template(template)
    before = snapshot(str(template))
    probe = tmp_path / "probe"
    copy(template, probe)
    done = child(probe, pair, "shift", 1, policy, -1)
    assert done.stdout.split()[:2] == ["done", "True"], done.stderr
    ops = int(done.stdout.split()[2])
    rng = random.Random(f"rollback-{maps}-{policy}")
    rolled = back_kills = 0
    for run in range(6):
        tree = tmp_path / f"run{run}"
        copy(template, tree)
        journal = Path(default_journal_path(tree))
        workers = 1 + run % 2
        # each worker process counts its own changes: stay below its share
        kill_at = 1 + rng.randrange(ops * 9 // 10 // workers)
        killed = child(tree, pair, "shift", workers, policy, kill_at)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert journal.exists() and snapshot(str(tree)) != before
        for _ in range(1 + rng.randrange(2)):  # kill the rollback too, at drawn points
            back = child(tree, pair, "rollback", 1, policy, 1 + rng.randrange(kill_at))
            if back.returncode == 0:
                break
            assert back.returncode == -signal.SIGKILL, back.stderr
            back_kills += 1
        if journal.exists():
            report = rollback_shift(tree, pair)
            assert report.rolled_back and report.complete
            rolled += 1
        assert not journal.exists()
        got = snapshot(str(tree))
        bad = [k for k in before if got[k] != before[k]]
        assert not bad, (run, bad[:5], [(got[k], before[k]) for k in bad[:2]])
        assert got.keys() == before.keys()
        with pytest.raises(OSError):
            os.getxattr(tree, "trusted.userns.shift")
    print(f"\n{maps}/{policy}: {rolled} rollbacks finished in process, "
          f"{back_kills} rollbacks killed")
    assert rolled >= 1 and back_kills >= 1


def test_unshift_of_an_interrupted_shift_rolls_it_back(tmp_path: Path) -> None:
    pair = MAPS["overlap"]
    tree = tmp_path / "vol"
    build_template(tree)
    before = snapshot(str(tree))
    killed = child(tree, pair, "shift", 2, "skip", 40)
    assert killed.returncode == -signal.SIGKILL
    report = unshift_tree(tree, pair)  # not a translation of a half-shifted tree
    assert report.rolled_back and report.complete
    assert snapshot(str(tree)) == before
    assert not os.path.exists(default_journal_path(tree))


def test_nothing_to_roll_back(tmp_path: Path) -> None:
    tree = tmp_path / "vol"
    tree.mkdir()
    pair = IDMapPair.both(IDMap.single(0, 100000, 65536))
    with pytest.raises(JournalError) as info:
        rollback_shift(tree, pair)
    assert info.value.reason == "no-journal"
    shift_tree(tree, pair)
    with pytest.raises(JournalError) as info:
        shift_tree(tree, pair, rollback=True)
    assert "finished shift is undone with unshift" in str(info.value)
    assert os.stat(tree).st_uid == 100000


def test_a_dry_run_unshift_of_an_interrupted_shift_refuses(tmp_path: Path) -> None:
    pair = MAPS["overlap"]
    tree = tmp_path / "vol"
    build_template(tree)
    killed = child(tree, pair, "shift", 1, "skip", 40)
    assert killed.returncode == -signal.SIGKILL
    half = snapshot(str(tree))
    with pytest.raises(JournalError) as info:
        unshift_tree(tree, pair, dry_run=True)
    assert info.value.reason == "journal-pending" and "rolls it back" in str(info.value)
    assert snapshot(str(tree)) == half
