"""Two workers that split the walk by subtree (with work sharing) report and leave what one
worker does: hard links whose names two workers found are shifted once, a name outside the
tree is still found, both workers really take part, and a worker stopped by the error
policy does not leave the other waiting."""

from __future__ import annotations

import mmap
import os
import pickle
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.shift import (
    MAX_WORKERS,
    AuditReport,
    ShiftReport,
    audit_tree,
    shift_tree,
    unshift_tree,
)
from userns.shift.core import _Pool, _Shift
from userns.shift.walk import LinkShare, Walker, open_root

from .test_shift_trees import need_root, need_tool, snapshot

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

PAIR = IDMapPair.both(IDMap.single(0, 100000, 65536))


def random_tree(root: Path, seed: int, *, outside: Path | None = None) -> None:
    """Nested directories of files with random owners, hard links whose names lie in
    different subtrees (three names at most), and, given ``outside``, a name outside."""
    rng = random.Random(seed)
    dirs = [root]
    root.mkdir()
    for i in range(rng.randrange(30, 60)):
        parent = rng.choice(dirs)
        d = parent / f"d{i}"
        d.mkdir()
        os.chown(d, rng.randrange(3), rng.randrange(3))
        dirs.append(d)
    files = []
    for i in range(rng.randrange(300, 600)):
        f = rng.choice(dirs) / f"f{i}"
        f.write_bytes(b"x")
        os.chown(f, rng.choice((0, 0, 1000, 33)), rng.choice((0, 5, 1000)))
        files.append(f)
    for i, f in enumerate(rng.sample(files, 60)):
        for k in range(rng.randrange(1, 3)):
            os.link(f, rng.choice(dirs) / f"l{i}.{k}")
    if outside is not None:
        os.link(files[0], outside)


def compare(one: ShiftReport, two: ShiftReport) -> None:
    def plain(r: ShiftReport) -> dict[str, Any]:
        d = r.to_dict()
        for key in ("root", "workers", "journal"):
            d.pop(key, None)
        d["outside_links"] = sorted((os.path.relpath(o["path"], r.root), o["links"])
                                    for o in d["outside_links"])
        return d

    assert plain(one) == plain(two)


def wide_tree(root: Path, dirs: list[str], files: int) -> None:
    """Directories ``dirs`` under ``root``, each with ``files`` empty files ``f0``…"""
    for d in dirs:
        (root / d).mkdir(parents=True)
        for i in range(files):
            (root / d / f"f{i}").touch()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_two_workers_report_and_leave_what_one_does(tmp_path: Path, seed: int) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    random_tree(a, seed)
    random_tree(b, seed)
    assert snapshot(str(a)) == snapshot(str(b))
    one = shift_tree(a, PAIR, workers=1)
    two = shift_tree(b, PAIR, workers=2)
    assert one.complete and two.complete and two.workers == 2
    assert one.hardlinks > 0
    compare(one, two)
    assert snapshot(str(a)) == snapshot(str(b))


@pytest.mark.parametrize("policy", ["skip", "overflow"])
def test_a_name_outside_is_found_by_two_workers_too(tmp_path: Path, policy: str) -> None:
    (tmp_path / "out").mkdir()
    a, b = tmp_path / "a", tmp_path / "b"
    random_tree(a, 7, outside=tmp_path / "out" / "a")
    random_tree(b, 7, outside=tmp_path / "out" / "b")
    one = shift_tree(a, PAIR, workers=1, policy=policy)  # type: ignore[arg-type]
    two = shift_tree(b, PAIR, workers=2, policy=policy)  # type: ignore[arg-type]
    assert len(two.outside_links) == 1 and two.outside_links[0].links == 2
    compare(one, two)
    assert os.lstat(tmp_path / "out" / "b").st_uid in (0, 33, 1000)  # left as it was
    assert snapshot(str(a)) == snapshot(str(b))


@pytest.mark.skipif(need_tool("strace") is not None, reason=str(need_tool("strace")))
def test_both_workers_take_part(tmp_path: Path) -> None:
    root = tmp_path / "t"
    wide_tree(root, [f"d{d}" for d in range(40)], 100)
    out = tmp_path / "strace"
    code = ("import sys\nfrom userns import IDMap, IDMapPair\nfrom userns.shift import shift_tree\n"
            "r = shift_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, 100000, 65536)), "
            "workers=2)\nassert r.complete and r.changed == 4041, r\n")
    # -ff: one file per process (no call split by another's); -y: descriptors' paths
    subprocess.run(["strace", "-ff", "-y", "-qq", "-e", "trace=fchownat,getdents64",
                    "-o", str(out), sys.executable, "-c", code, str(root)], check=True)
    chowns: Counter[str] = Counter()
    listed: dict[str, set[str]] = {}
    for trace in tmp_path.glob("strace.*"):
        pid = trace.suffix
        for line in trace.read_text().splitlines():
            if line.startswith("fchownat("):
                chowns[pid] += 1
            elif (m := re.match(r"getdents64\(\d+<(.*)>, .*\) = [1-9]", line)) \
                    and (m[1] == str(root) or m[1].startswith(f"{root}/")):
                listed.setdefault(pid, set()).add(m[1])
    assert len(chowns) == 2 and min(chowns.values()) > 0, chowns  # both workers changed
    # ... and each of the 41 directories (the root's included) was listed by one of them
    # (split by inode number, both listed every directory)
    assert set(listed) == set(chowns), (listed.keys(), chowns)
    lists = list(listed.values())
    assert len(lists[0] | lists[1]) == 41 and not lists[0] & lists[1]


@pytest.mark.skipif(need_tool("chattr") is not None, reason=str(need_tool("chattr")))
def test_a_stopped_worker_does_not_leave_the_other_waiting(tmp_path: Path) -> None:
    # One immutable file in the middle of the walk, and a journal batch of one change,
    # so that one worker stops there while the other one still walks: the stopped one
    # must still answer for the sharing (it takes part until the walk is over and pools
    # the hard-linked names it holds), else the other one waits for it for ever.
    root = tmp_path / "t"
    wide_tree(root, [f"d{d}" for d in range(60)], 50)
    for d in range(60):
        os.link(root / f"d{d}" / "f1", root / f"d{(d + 1) % 60}" / "l1")
    victim = root / "d30" / "f0"
    done = subprocess.run(["chattr", "+i", str(victim)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {done.stderr!r}")
    code = ("import sys\nfrom userns import IDMap, IDMapPair\n"
            "from userns.shift import ShiftError, shift_tree, walk\n"
            "walk.BATCH = 1\n"
            "try:\n"
            "    shift_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, 100000, 65536)),\n"
            "               workers=2, policy='skip', on_error='stop')\n"
            "except ShiftError as exc:\n"
            "    print(exc.reason, exc.report.complete, len(exc.report.outside_links))\n")
    try:
        # a hang would be the failure: the subprocess has a deadline
        proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                              text=True, timeout=60)
    finally:
        subprocess.run(["chattr", "-i", str(victim)], check=True)
    assert proc.returncode == 0, proc.stderr
    # stopped, and no hard link taken for one with a name outside
    assert proc.stdout.split() == ["path-error", "False", "0"], proc.stdout
    report = shift_tree(root, PAIR, workers=2, policy="skip")  # the journal resumes it
    assert report.resumed and report.complete and not report.outside_links
    assert all(os.lstat(p).st_uid == 100000 for p in root.rglob("*"))


def test_the_overlapping_maps_still_split_by_inode(tmp_path: Path) -> None:
    # 0 1000 65536 overlaps itself: a second translation would move an ID again, so the
    # workers split by inode number (each keeps every inode it saw); the result is one
    # worker's
    overlap = IDMapPair.both(IDMap.single(0, 1000, 65536))
    a, b = tmp_path / "a", tmp_path / "b"
    random_tree(a, 9)
    random_tree(b, 9)
    compare(shift_tree(a, overlap, workers=1), shift_tree(b, overlap, workers=2))
    assert snapshot(str(a)) == snapshot(str(b))
    shutil.rmtree(a)
    shutil.rmtree(b)



@pytest.mark.parametrize("seed", [11, 12, 13])
def test_an_audit_by_two_workers_counts_what_one_does(tmp_path: Path, seed: int) -> None:
    (tmp_path / "out").mkdir()
    root = tmp_path / "t"
    random_tree(root, seed, outside=tmp_path / "out" / "x")
    shift_tree(root / "d0", PAIR, workers=1, policy="skip")  # part of it shifted: mixed

    def plain(r: AuditReport) -> dict[str, Any]:
        d = r.to_dict()
        for u in d["outside"]:
            assert all(os.path.lexists(p) for p in u.pop("examples"))
        return d

    one, two = audit_tree(root, PAIR, workers=1), audit_tree(root, PAIR, workers=2)
    assert one.state == "mixed" and len(one.outside_links) == 1
    assert plain(one) == plain(two)
    # the inodes counted are the inodes of the tree, each once
    inodes = {(st.st_dev, st.st_ino) for st in map(os.lstat, [root, *root.rglob("*")])}
    assert two.entries == len(inodes) == sum(two.uids.values()) == sum(two.gids.values())


class HandOver:
    """A pool between two walkers of one process: the first gives away every plan it can
    (it is always told another waits), the second takes them; what crosses is pickled,
    as between worker processes."""

    def __init__(self, first: bool) -> None:
        self.first = first
        self.dirs: list[Any] = [([(-1, "", 0, 0)], 0)] if first else []
        self.plans: list[Any] = []

    def hungry(self) -> bool:
        return self.first

    def give(self, dirs: list[Any]) -> None:
        self.dirs += pickle.loads(pickle.dumps(dirs))

    def take(self) -> Any:
        got, self.dirs = self.dirs, []
        return got or None

    def give_plans(self, plans: list[Any]) -> None:
        self.plans += pickle.loads(pickle.dumps(plans))

    def take_plans(self) -> Any:
        if self.first:
            return None  # (the plans it gave are the other one's)
        got, self.plans = self.plans, []
        return got or None

    def pool_links(self, table: Any, held: Any, counted: Any, walked: bool,
                   more: Any) -> LinkShare:
        assert not held and not counted  # (the tree has no hard links)
        return LinkShare([None], [], [], [], [], [])


def test_planned_changes_are_handed_to_the_walker_that_waits(tmp_path: Path) -> None:
    root = tmp_path / "t"
    deep = root.joinpath(*[f"d{i}" for i in range(120)])  # (one table names it once)
    deep.mkdir(parents=True)
    for d in (root, deep, *[root / f"w{i}" for i in range(20)]):
        d.mkdir(exist_ok=True)
        for i in range(10):
            (d / f"f{i}").touch()
    run = _Shift(str(root), PAIR.uid, PAIR.gid, "error", (65534, 65534), False, False, None)
    run.track_all = run.record_plain = False
    fd, st = open_root(str(root))
    giver = run.walker(os.dup(fd), st, None, share=HandOver(first=True))
    giver.scan(stream=False)
    assert giver.entries == 120 + 20 + 10 * 22 and giver.planned == giver.entries
    pool = giver.share
    giver.apply(shared=True)  # gives half before each plan it makes
    assert isinstance(pool, HandOver) and pool.plans
    assert 0 < giver.changed < giver.planned / 2
    taker = run.walker(os.dup(fd), st, None, share=HandOver(first=False))
    taker.share.plans = pool.plans  # type: ignore[union-attr]
    taker.apply(shared=True)
    assert giver.changed + taker.changed == giver.planned
    assert all(os.lstat(p).st_uid == 100000 for p in root.rglob("*"))
    # the counts of the owners changed are the giver's (it planned them)
    assert sum(n for (kind, _, _), n in giver.owner_changes.items() if kind == "uid") == \
        giver.planned
    for w in (giver, taker):
        w.close()
    os.close(fd)


class Sink:
    """A worker's end of a channel, as the coordinator's pool sees it."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> None:
        self.sent.append(msg)


def test_a_directory_listed_by_both_workers_does_not_make_up_a_name() -> None:
    # The inode (7, 70) has 2 links; both workers found its name "x" in the directory
    # (7, 5) (renamed during the walk, so listed twice): one name, not two. The other
    # name is outside the tree: the inode is not complete, and its extra names are 0.
    kids = [(0, Sink()), (0, Sink())]
    hungry = mmap.mmap(-1, 1)
    pool = _Pool(kids, hungry)  # type: ignore[arg-type]
    for w, parent in ((0, "a"), (1, "b")):
        table = [(-1, "", 7, 1), (0, parent, 7, 2), (1, "d", 7, 5)]
        pool.handle(w, ("links", table, [((7, 70), 2, [(2, "x")])], True, []))
    replies = [LinkShare(*sink.sent[-1][1:]) for _, sink in kids]
    assert not any(r.full or r.mine_full for r in replies)
    partial = [p for r in replies for p in r.partial]
    assert len(partial) == 1 and partial[0][1] == 1 and len(partial[0][0][2]) == 1
    assert pool.hardlinks == 0
    # two different names (in two directories) do make it complete, counted once more
    pool = _Pool(kids, hungry)  # type: ignore[arg-type]
    for w, d in ((0, 5), (1, 6)):
        table = [(-1, "", 7, 1), (0, "d", 7, d)]
        pool.handle(w, ("links", table, [((7, 70), 2, [(1, "x")])], True, []))
    replies = [LinkShare(*sink.sent[-1][1:]) for _, sink in kids]
    assert sum(len(r.full) for r in replies) == 1 and pool.hardlinks == 1
    hungry.close()


def five_names(root: Path) -> str:
    """Four directories of 200 files under ``root``, and one inode with five names in
    them (two workers share the directories out); returns its smallest path."""
    wide_tree(root, ["m", "c", "x", "a/b"], 200)
    (root / "m" / "n").touch()
    for other in ("c/n", "x/n", "a/b/n", "a/n"):
        os.link(root / "m" / "n", root / other)
    return str(root / "a" / "b" / "n")


def test_an_outside_link_is_reported_by_its_smallest_path(tmp_path: Path) -> None:
    # five names inside, in directories two workers share out, and one name outside:
    # whichever worker finds which name, the report names the smallest path
    (tmp_path / "out").mkdir()
    root = tmp_path / "t"
    smallest = five_names(root)
    os.link(root / "m" / "n", tmp_path / "out" / "n")
    for _ in range(3):
        for w in (1, 2):
            audit = audit_tree(root, PAIR, workers=w)
            assert [(o.path, o.links) for o in audit.outside_links] == [(smallest, 6)]
    report = shift_tree(root, PAIR, workers=2, policy="skip")
    assert [(o.path, o.links) for o in report.outside_links] == [(smallest, 6)]
    assert os.lstat(tmp_path / "out" / "n").st_uid == 0


@pytest.mark.parametrize("call", ["shift", "audit"])
@pytest.mark.parametrize("how", ["raise", "exit"])
def test_a_worker_that_fails_or_dies_is_a_shift_error(tmp_path: Path, call: str,
                                                      how: str) -> None:
    # The worker's walk raises (a crash message) or the process ends without a word (no
    # done message): the caller gets a ShiftError with the reason, never a hang.
    root = tmp_path / "t"
    random_tree(root, 21)
    fail = "raise RuntimeError('boom')" if how == "raise" else "os._exit(3)"
    code = ("import os, sys\nfrom userns import IDMap, IDMapPair\n"
            "from userns.shift import ShiftError, audit_tree, shift_tree, walk\n"
            "def broken(self, *a, **k):\n"
            f"    {fail}\n"
            f"walk.Walker.{'scan' if call == 'shift' else 'run_audit'} = broken\n"
            "pair = IDMapPair.both(IDMap.single(0, 100000, 65536))\n"
            "try:\n"
            f"    {'shift_tree' if call == 'shift' else 'audit_tree'}(sys.argv[1], pair, "
            "workers=2)\n"
            "except ShiftError as exc:\n"
            "    print(exc.reason, 'boom' in str(exc))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    reason = "worker-failed" if how == "raise" else "worker-died"
    assert proc.stdout.split() == [reason, str(how == "raise")], proc.stdout


@pytest.mark.parametrize("workers", [0, -1, MAX_WORKERS + 1, 100000])
def test_workers_outside_one_to_the_most_are_refused(tmp_path: Path, workers: int) -> None:
    root = tmp_path / "t"
    root.mkdir()
    refused = f"workers must be from 1 to {MAX_WORKERS}: {workers}"
    with pytest.raises(ValueError, match=re.escape(refused)):
        audit_tree(root, PAIR, workers=workers)
    with pytest.raises(ValueError, match=re.escape(refused)):
        shift_tree(root, PAIR, workers=workers)
    with pytest.raises(ValueError, match=re.escape(refused)):
        unshift_tree(root, PAIR, workers=workers)
    assert os.listdir(tmp_path) == ["t"]  # (no journal beside the tree)


def test_an_audit_leaves_its_directories_open_to_close_and_close_shuts_them(
        tmp_path: Path) -> None:
    # A worker reports as soon as its walk is done: its thousands of directory
    # descriptors are closed by its exit, not one by one first; in this process,
    # close() (which audit_tree calls) shuts every one.
    root = tmp_path / "t"
    wide_tree(root, [f"d{i}" for i in range(30)], 3)
    before = set(os.listdir("/proc/self/fd"))
    walker = Walker.for_audit(str(root))
    walker.run_audit()
    held = [node.fd for node in walker.cache.lru]
    assert len(held) == 30 and all(os.fstat(fd) for fd in held)
    assert walker.entries == 1 + 30 * 4
    walker.close()
    assert set(os.listdir("/proc/self/fd")) == before
    audit_tree(root, PAIR, workers=1)
    assert set(os.listdir("/proc/self/fd")) == before
