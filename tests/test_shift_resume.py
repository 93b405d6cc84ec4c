"""A shift killed at random instants (SIGKILL) and resumed ends with exactly the clean tree.

Each case builds one template tree (setuid files, v2 and v3 capabilities, ACLs with
several named entries, hard links), shifts a copy cleanly for the reference, then for
each run copies the template, starts the shift in a child process, SIGKILLs its whole
process group at a random instant (sometimes the resumed run too), resumes, and compares
owners, modes, xattrs and content hashes of every path with the reference.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.shift import JournalError, Policy, default_journal_path, shift_tree
from userns.shift.xattrs import (
    ACLEntry,
    FileCapability,
    PosixACL,
    format_acl,
    format_capability,
)

from .test_shift_trees import build_tree, need_root, snapshot

pytestmark = [pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
              pytest.mark.slow]

MAPS = {
    # container and host ranges overlap: only the journal makes a resume exact
    "overlap": IDMapPair.both(IDMap.single(0, 1000, 65536)),
    # disjoint: an owner already in the target range is done, no record per plain file
    "disjoint": IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536)),
}

CHILD = """
import os, signal, sys
from userns import Extent, IDMap, IDMapPair  # noqa: F401 - the repr below needs them
from userns.shift import shift_tree
from userns.shift.journal import JournalError
pair = {pair!r}
kill_after = int(sys.argv[4])
ops = [0]

def counted(fn):
    def wrapper(*args, **kwargs):
        ops[0] += 1
        if ops[0] == kill_after:  # SIGKILL the whole group right before this change
            os.killpg(os.getpgrp(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapper

for name in ("chown", "chmod", "setxattr", "removexattr"):
    setattr(os, name, counted(getattr(os, name)))
print("ready", flush=True)
try:
    r = shift_tree(sys.argv[1], pair, workers=int(sys.argv[2]), policy=sys.argv[3])
except JournalError as exc:
    print(exc.reason, flush=True)
    sys.exit(3)
print("done", r.complete, ops[0], flush=True)
"""


def acl(users: list[int], groups: list[int]) -> bytes:
    entries = [ACLEntry(0x01, 6)]
    entries += [ACLEntry(0x02, 4, u) for u in users]
    entries.append(ACLEntry(0x04, 4))
    entries += [ACLEntry(0x08, 4, g) for g in groups]
    entries += [ACLEntry(0x10, 6), ACLEntry(0x20, 4)]
    return format_acl(PosixACL(tuple(entries)))


def build_template(root: Path) -> None:
    build_tree(str(root), scale=60)
    files = sorted(p for p in root.rglob("f*") if p.is_file() and not p.is_symlink())
    for i, f in enumerate(files):
        if i % 10 == 0:
            os.setxattr(f, "system.posix_acl_access", acl([i % 7, 20 + i % 5, 40], [3, 9]))
        if i % 25 == 0:
            os.chmod(f, 0o4750)
        if i % 15 == 0:
            cap = FileCapability(3 if i % 2 else 2, True, 1 << 13, 0,
                                 rootid=i % 30 if i % 2 else None)
            os.setxattr(f, "security.capability", format_capability(cap))
        if i % 40 == 0:
            os.link(f, root / f"link{i}")
    os.setxattr(root / "a", "system.posix_acl_default", acl([1, 2, 3], [4, 5]))


def copy(template: Path, dest: Path) -> None:
    subprocess.run(["cp", "-a", "--", str(template), str(dest)], check=True)


def start(tree: Path, pair: IDMapPair, workers: int, policy: Policy,
          kill_after: int = -1) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(pair=pair), str(tree), str(workers), policy,
         str(kill_after)],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def finish(proc: subprocess.Popen[str]) -> list[str]:
    out, _ = proc.communicate()
    return out.split()


def clean_run(template: Path, tmp: Path, pair: IDMapPair, workers: int,
              policy: Policy) -> tuple[float, int]:
    """How long a clean shift takes in the child, and how many changes the coordinator
    process makes (all of them with ``workers=1``)."""
    tree = tmp / f"timed{len(list(tmp.glob('timed*')))}"
    copy(template, tree)
    proc = start(tree, pair, workers, policy)
    t0 = time.monotonic()
    out = finish(proc)
    assert out[:2] == ["done", "True"]
    return time.monotonic() - t0, int(out[2])


def changed_fraction(template: dict[bytes, Any], tree: Path) -> float:
    now = snapshot(str(tree))
    moved = sum(1 for k, v in template.items() if now[k][1:5] != v[1:5])
    return moved / len(template)


@pytest.mark.parametrize(("maps", "workers", "policy"), [
    ("overlap", 2, "skip"),
    ("overlap", 1, "error"),
    ("disjoint", 2, "error"),
    ("disjoint", 1, "skip"),
])
def test_killed_shifts_resume_to_the_clean_result(tmp_path: Path, maps: str, workers: int,
                                                  policy: Policy) -> None:
    pair = MAPS[maps]
    template = tmp_path / "template"
    build_template(template)
    reference = tmp_path / "reference"
    copy(template, reference)
    shift_tree(reference, pair, workers=1, policy=policy)
    want = snapshot(str(reference))
    assert want != snapshot(str(template))
    rng = random.Random(f"{maps}-{workers}-{policy}")
    duration, _ = clean_run(template, tmp_path, pair, workers, policy)
    # Each process counts its own changes: with workers, each makes about its share
    # (kept below it, so that the N-th change of some worker always comes).
    ops = max(1, clean_run(template, tmp_path, pair, 1, policy)[1] * 9 // 10 // workers)
    before = snapshot(str(template))
    runs, kills = 12, 0
    points = {kind: {"none": 0, "partial": 0, "all": 0} for kind in ("timed", "counted")}
    for run in range(runs):
        tree = tmp_path / f"run{run}"
        copy(template, tree)
        journal = Path(default_journal_path(tree))
        # kill the first run, and sometimes the resumed runs too: on even runs at a random
        # instant, on odd runs right before a random change (the N-th chown/chmod/setxattr)
        for attempt in range(1 + rng.randrange(3)):
            kills += 1
            if run % 2:
                proc = start(tree, pair, workers, policy, kill_after=1 + rng.randrange(ops))
                finish(proc)
            else:
                proc = start(tree, pair, workers, policy)
                time.sleep(rng.uniform(0, duration * (1.0 if attempt == 0 else 0.6)))
                os.killpg(proc.pid, signal.SIGKILL)
                finish(proc)
            if attempt == 0:
                frac = changed_fraction(before, tree)
                kind = "counted" if run % 2 else "timed"
                points[kind]["none" if frac == 0 else "all" if frac == 1 else "partial"] += 1
            if not journal.exists():
                break  # it finished before the kill
        for _ in range(100):  # the killed workers may take a moment to go
            try:
                report = shift_tree(tree, pair, workers=workers, policy=policy)
                break
            except JournalError as exc:
                assert exc.reason == "busy"
                time.sleep(0.05)
        assert report.complete
        assert not journal.exists()
        got = snapshot(str(tree))
        assert got.keys() == want.keys()
        bad = [k for k in want if got[k] != want[k]]
        assert not bad, (run, bad[:5], [(got[k], want[k]) for k in bad[:2]])
    print(f"\n{maps}/{workers}/{policy}: {runs} runs, {kills} kills, first kills {points}, "
          f"clean run {duration:.2f}s, {ops} changes")
    # A kill right before change N (1 < N <= all) always lands mid-shift.
    assert points["counted"]["partial"] >= runs // 2 - 1
