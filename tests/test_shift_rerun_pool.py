"""With two workers, a verifying re-run pools the hard-linked inodes it found right (the
settled ones) by their count of names alone: no names, no tables of directories. The
coordinator counts each once; one with fewer names found than links is still reported,
by its smallest name, whichever worker found which; an inode one worker found right and
another did not (it changed during the walk) is asked for by its names, and dealt with
all of them."""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.shift import audit_tree, core, shift_tree
from userns.shift.core import _Pool
from userns.shift.walk import LinkShare

from .test_shift_split import Sink, five_names, wide_tree
from .test_shift_trees import need_root

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

PAIR = IDMapPair.both(IDMap.single(0, 100000, 65536))


def linked(root: Path, dirs: int, inodes: int) -> None:
    """``dirs`` directories of files; ``inodes`` files of the first have a second name in
    each of the others' subtrees, so that two workers find names of the same inode."""
    wide_tree(root, [f"d{i}/s" for i in range(dirs)], 30)
    for i in range(inodes):
        for d in range(1, dirs):
            os.link(root / "d0" / "s" / f"f{i}", root / f"d{d}" / "s" / f"h{i}")


def pool_of(parts: int = 2) -> tuple[_Pool, list[tuple[int, Sink]]]:
    kids = [(0, Sink()) for _ in range(parts)]
    return _Pool(kids, mmap.mmap(-1, 1)), kids  # type: ignore[arg-type]


def replies(kids: list[tuple[int, Sink]]) -> list[LinkShare]:
    return [LinkShare(*sink.sent[-1][1:]) for _, sink in kids]


ROOT_TABLE = [(-1, "", 7, 1)]


def test_settled_inodes_are_counted_once_by_the_coordinator() -> None:
    pool, kids = pool_of()
    # (7, 70): two links, one name found by each worker: complete, counted once.
    # (7, 71): three links, one name each: a name outside the tree, reported by both.
    pool.handle(0, ("links", ROOT_TABLE, [], True, [((7, 70), 2, 1), ((7, 71), 3, 1)]))
    pool.handle(1, ("links", ROOT_TABLE, [], True, [((7, 70), 2, 1), ((7, 71), 3, 1)]))
    got = replies(kids)
    assert (pool.entries, pool.unchanged, pool.hardlinks) == (1, 1, 2)
    assert all(r.settled_partial == [((7, 71), 2)] for r in got)
    assert not any(r.full or r.partial or r.mine_full or r.mine_partial for r in got)


def test_a_walk_not_finished_reports_no_settled_inode_outside() -> None:
    pool, kids = pool_of()
    pool.handle(0, ("links", ROOT_TABLE, [], False, [((7, 71), 3, 1)]))
    pool.handle(1, ("links", ROOT_TABLE, [], True, [((7, 71), 3, 1)]))
    assert not any(r.settled_partial for r in replies(kids))
    assert pool.entries == 0


def test_with_include_outside_links_a_settled_inode_outside_is_counted_unchanged() -> None:
    pool, kids = pool_of()
    pool.include_outside_links = True
    for w in (0, 1):
        pool.handle(w, ("links", ROOT_TABLE, [], True, [((7, 71), 3, 1)]))
    assert not any(r.settled_partial for r in replies(kids))
    assert (pool.entries, pool.unchanged) == (1, 1)


def test_an_inode_one_worker_found_right_and_another_not_is_dealt_by_all_its_names() -> None:
    # Worker 0 found (7, 70) right when it first saw it; worker 1 did not (it changed in
    # between). Worker 0 is asked for its names, pools again with them, and the inode
    # is dealt by both workers' names: complete, to one worker, counted once.
    pool, kids = pool_of()
    pool.handle(0, ("links", ROOT_TABLE, [], True, [((7, 70), 2, 1)]))
    pool.handle(1, ("links", [*ROOT_TABLE, (0, "d", 7, 5)], [((7, 70), 2, [(1, "x")])],
                    True, []))
    assert kids[0][1].sent == [("names", [(7, 70)])] and kids[1][1].sent == []
    pool.handle(0, ("links", [*ROOT_TABLE, (0, "e", 7, 6)], [((7, 70), 2, [(1, "y")])],
                    True, []))
    got = replies(kids)
    assert pool.entries == 0 and not any(r.settled_partial for r in got)
    full = [f for r in got for f in r.full]
    assert len(full) == 1 and full[0][0] == (7, 70) and len(full[0][2]) == 2
    assert pool.hardlinks == 1


def record_pooling(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Make each worker (forked: it inherits the patch) append what it pools to ``log``."""
    real = core._WorkerShare.pool_links

    def pool_links(self: Any, table: Any, held: Any, counted: Any, walked: bool,
                   more: Any) -> Any:
        with open(log, "a") as f:
            f.write(json.dumps([len(held), len(counted)]) + "\n")
        return real(self, table, held, counted, walked, more)

    monkeypatch.setattr(core._WorkerShare, "pool_links", pool_links)


def test_a_rerun_pools_settled_inodes_without_their_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "t"
    linked(root, 6, 25)
    first = shift_tree(root, PAIR, workers=2)
    assert first.complete and first.hardlinks == 25 * 5
    log = tmp_path / "pooled"
    record_pooling(monkeypatch, log)
    again = shift_tree(root, PAIR, workers=2)
    monkeypatch.undo()
    pooled = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(pooled) == 2
    assert sum(h for h, _ in pooled) == 0  # no names: every inode was right
    assert sum(c for _, c in pooled) >= 25
    one = shift_tree(root, PAIR, workers=1)
    for report in (again, one):
        assert report.verified and report.changed == 0
        assert (report.entries, report.unchanged, report.hardlinks) == \
            (first.entries, first.entries, first.hardlinks)


def test_a_settled_inode_outside_is_reported_by_its_smallest_name(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    root = tmp_path / "t"
    smallest = five_names(root)
    assert shift_tree(root, PAIR, workers=2).complete
    # a sixth name, outside, once the inode is already right: the re-run finds it
    # right, and its names inside are five of six
    os.link(root / "m" / "n", tmp_path / "out" / "n")
    entries = None
    for _ in range(3):
        for w in (1, 2):
            report = shift_tree(root, PAIR, workers=w, policy="skip")
            assert report.verified and report.changed == 0
            assert [(o.path, o.links, o.inside) for o in report.outside_links] == \
                [(smallest, 6, 5)]
            entries = report.entries if entries is None else entries
            assert report.entries == entries
    assert [(o.path, o.links) for o in audit_tree(root, PAIR).outside_links] == \
        [(smallest, 6)]
    # opted in: counted (unchanged), not reported
    for w in (1, 2):
        report = shift_tree(root, PAIR, workers=w, policy="skip",
                            include_outside_links=True)
        assert report.changed == 0 and not report.outside_links
        assert entries is not None and report.entries == entries + 1
