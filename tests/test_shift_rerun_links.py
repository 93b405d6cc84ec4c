"""A verifying re-run looks at a hard-linked inode once when it is already right: no
second ``stat`` of each of its names after the walk. An inode that is not right (its
owner, or an ACL or capability it carries) still gets the full check of its names and
is changed as before."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.shift import shift_tree
from userns.shift.xattrs import parse_acl

from .test_shift_trees import need_root, need_tool, run

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))


def linked_tree(root: Path, n: int) -> None:
    """``n`` files with a second name in another directory, plus plain files."""
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(n):
        (root / "a" / f"f{i}").write_text(str(i))
        os.link(root / "a" / f"f{i}", root / "b" / f"g{i}")
        (root / "a" / f"p{i}").write_text("")
        os.chown(root / "a" / f"f{i}", i % 7, i % 5)


def count_name_stats(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every ``os.stat(name, dir_fd=...)``: the after-walk check of a hard-linked
    inode's names (the walk itself stats through ``DirEntry.stat``)."""
    calls: list[Any] = []
    real = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if kwargs.get("dir_fd") is not None:
            calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    return calls


def test_a_rerun_does_not_stat_the_names_of_a_right_hard_linked_inode_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "t"
    linked_tree(root, 40)
    first = shift_tree(root, PAIR, workers=1)
    assert first.changed == 1 + 2 + 80 and first.hardlinks == 40
    calls = count_name_stats(monkeypatch)
    again = shift_tree(root, PAIR, workers=1)
    monkeypatch.undo()
    assert again.verified and again.changed == 0
    assert (again.entries, again.unchanged, again.hardlinks) == (83, 83, 40)
    assert [c for c in calls if str(c).startswith(("f", "g"))] == []


@pytest.mark.skipif(need_tool("setfacl") is not None, reason=str(need_tool("setfacl")))
@pytest.mark.parametrize("workers", [1, 2])
def test_a_hard_linked_inode_with_a_wrong_owner_or_acl_is_still_checked_and_fixed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    root = tmp_path / "t"
    linked_tree(root, 6)
    shift_tree(root, PAIR, workers=1)
    # after the shift: one inode's ACL names container IDs, another's owner is one
    run("setfacl", "-m", "u:1000:r,g:1001:r", str(root / "a" / "f1"))
    os.chown(root / "b" / "g2", 3, 4)
    calls = count_name_stats(monkeypatch) if workers == 1 else []
    again = shift_tree(root, PAIR, workers=workers)
    monkeypatch.undo()
    assert again.verified and again.changed == 2
    assert parse_acl(os.getxattr(root / "b" / "g1", "system.posix_acl_access")
                     ).named_ids() == ([101000], [301001])
    st = os.stat(root / "a" / "f2")
    assert (st.st_uid, st.st_gid) == (100003, 300004)
    if workers == 1:  # both names of each of the two inodes were checked after the walk
        assert sorted(str(c) for c in calls if str(c)[0] in "fg") == [
            "f1", "f2", "g1", "g2"]
    # the others were right: a third run changes nothing
    assert shift_tree(root, PAIR, workers=workers).changed == 0
