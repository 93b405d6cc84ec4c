"""A finished shift run again with another policy verifies; it never shifts a second time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.shift import shift_tree

PAIR = IDMapPair.both(IDMap.single(0, 231072, 65536))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to host IDs needs root")
@pytest.mark.parametrize("first, second", [("skip", "overflow"), ("skip", "error"),
                                           ("overflow", "skip"), ("error", "overflow")])
def test_a_rerun_with_another_policy_does_not_shift_twice(
    tmp_path: Path, first: str, second: str
) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("x")
    os.chown(tree / "f", 5, 5)
    assert shift_tree(tree, PAIR, policy=first).complete  # type: ignore[arg-type]
    assert os.stat(tree / "f").st_uid == 231077
    report = shift_tree(tree, PAIR, policy=second)  # type: ignore[arg-type]
    assert report.complete and report.verified and report.changed == 0
    st = os.stat(tree / "f")
    assert (st.st_uid, st.st_gid) == (231077, 231077)  # not 65534, not shifted again
    assert os.stat(tree).st_uid == 231072
