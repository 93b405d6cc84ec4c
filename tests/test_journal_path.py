"""A --journal path that is not a journal is refused and left exactly as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.errors import JournalError
from userns.shift import shift_tree

PAIR = IDMapPair.both(IDMap.single(0, 231072, 65536))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="shifting to host IDs needs root")


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("x")
    return tree


@needs_root
def test_a_directory_with_other_files_is_not_taken_for_a_journal(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    jdir = tmp_path / "j"
    jdir.mkdir()
    (jdir / "precious").write_text("keep me")
    (jdir / "w0-1-1.log").write_text("looks like a segment")
    with pytest.raises(JournalError) as info:
        shift_tree(tree, PAIR, journal=jdir)
    assert info.value.reason == "not-a-journal" and "precious" in info.value.message
    assert sorted(os.listdir(jdir)) == ["precious", "w0-1-1.log"]
    assert (jdir / "precious").read_text() == "keep me"
    assert os.stat(tree / "f").st_uid == 0  # nothing shifted


@needs_root
def test_a_file_is_not_a_journal(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    jfile = tmp_path / "j"
    jfile.write_text("data")
    with pytest.raises(JournalError) as info:
        shift_tree(tree, PAIR, journal=jfile)
    assert info.value.reason == "not-a-journal"
    assert jfile.read_text() == "data"


@needs_root
def test_a_new_or_empty_path_is_used_and_removed(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert shift_tree(tree, PAIR, journal=empty).complete
    assert not empty.exists()  # a finished shift removes its journal
    assert os.stat(tree / "f").st_uid == 231072
