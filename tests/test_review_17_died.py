"""Review: the report a :class:`ShiftError` carries when a worker process dies or fails
mid-shift must not say the tree is complete (``ShiftReport.complete``: "the whole tree is
done and the journal removed"); the journal is kept and the same shift resumes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.shift import ShiftError, shift_tree
from userns.shift import walk as walk_mod

from .test_shift_split import wide_tree
from .test_shift_trees import need_root

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

PAIR = IDMapPair.both(IDMap.single(0, 100000, 65536))


def broken_workers(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Make every worker process (forked: it inherits the patch) die (``exit``) or raise
    (``raise``) once its walk is over, before it reports; this process is left alone."""
    parent = os.getpid()
    real = walk_mod.Walker._late_links

    def late_links(self: walk_mod.Walker, links: Any) -> None:
        if os.getpid() != parent:
            if how == "exit":
                os._exit(3)
            raise RuntimeError("boom")
        real(self, links)

    monkeypatch.setattr(walk_mod.Walker, "_late_links", late_links)


@pytest.mark.parametrize("how", ["exit", "raise"])
def test_a_dead_worker_s_report_is_not_complete_and_its_shift_resumes(
        tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "t"
    wide_tree(root, [f"d{i}" for i in range(8)], 20)
    broken_workers(monkeypatch, how)
    with pytest.raises(ShiftError) as info:
        shift_tree(root, PAIR, workers=2, policy="skip")
    monkeypatch.undo()
    assert info.value.reason == ("worker-died" if how == "exit" else "worker-failed")
    assert os.path.exists(tmp_path / ".t.userns-shift")  # (kept: it resumes)
    assert info.value.report is not None
    assert not info.value.report.complete, info.value.report
    # the journal is kept, and the same shift resumes and finishes the tree
    report = shift_tree(root, PAIR, workers=2, policy="skip")
    assert report.resumed and report.complete and report.entries == 8 * 21 + 1
    assert all(os.lstat(p).st_uid == 100000 for p in [root, *root.rglob("*")])
