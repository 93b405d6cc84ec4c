"""explain and audit say, for a path, whether an idmapped mount serves it or a shift must."""

from __future__ import annotations

import json
import os

import pytest

from userns.cli import main
from userns.mount import probe


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_explain_volume_on_procfs_says_shift(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "explain", "--example", "--volume", "/proc", "--json")
    assert code == 0
    (row,) = json.loads(out)["volumes"]
    assert row["path"] == "/proc" and row["strategy"] == "shift"
    assert row["probe"]["ok"] is False and row["probe"]["reason"] == probe("/proc").reason
    code, out = run(capsys, "explain", "--example", "--volume", "/proc")
    assert "/proc: shift it (userns shift /proc -m '0:231072:65536')" in out


def test_explain_volume_follows_the_probe(capsys: pytest.CaptureFixture[str]) -> None:
    path = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
    answer = probe(path)
    code, out = run(capsys, "explain", "--example", "--volume", path, "--json")
    (row,) = json.loads(out)["volumes"]
    assert row["strategy"] == ("idmap" if answer.ok else "shift"), answer
    assert row["probe"] == answer.to_dict()
    code, out = run(capsys, "explain", "--example", "--volume", path)
    assert code == 0
    expected = "an idmapped mount serves it" if answer.ok else "shift it"
    assert f"{path}: {expected}" in out


def test_explain_without_volume_reports_none(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "explain", "--example", "--json")
    assert code == 0 and json.loads(out)["volumes"] == []


def _tree(root: os.PathLike[str] | str) -> str:
    path = os.path.join(root, "vol")
    os.makedirs(os.path.join(path, "d"))
    with open(os.path.join(path, "d", "f"), "w") as f:
        f.write("x")
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to container IDs needs root")
def test_audit_exits_1_unless_the_tree_is_shifted_and_names_the_idmap_answer(
    tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]
) -> None:
    vol = _tree(tmp_path)
    for p in (vol, os.path.join(vol, "d"), os.path.join(vol, "d", "f")):
        os.chown(p, 0, 0)
    code, out = run(capsys, "audit", vol, "-m", "0 231072 65536", "--json")
    doc = json.loads(out)
    assert (code, doc["state"]) == (1, "unshifted")
    assert doc["idmap"] == probe(vol).to_dict()
    code, out = run(capsys, "audit", vol, "-m", "0 231072 65536")
    assert "the tree is unshifted, not shifted by this map: exit status 1" in out
    expected = "possible here" if probe(vol).ok else "not possible here"
    assert f"idmapped mount: {expected}" in out
    os.chown(os.path.join(vol, "d", "f"), 231072, 231072)  # half shifted
    code, out = run(capsys, "audit", vol, "-m", "0 231072 65536", "--json")
    assert (code, json.loads(out)["state"]) == (1, "mixed")
    for p in (vol, os.path.join(vol, "d")):
        os.chown(p, 231072, 231072)
    code, out = run(capsys, "audit", vol, "-m", "0 231072 65536", "--json")
    assert (code, json.loads(out)["state"]) == (0, "shifted")


def test_explain_volume_that_does_not_exist_suggests_nothing(
    capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "explain", "--example", "--volume", "/nonexistent/vol", "--json")
    (row,) = json.loads(out)["volumes"]
    assert (code, row["strategy"], row["probe"]["reason"]) == (0, None, "not-found")
    code, out = run(capsys, "explain", "--example", "--volume", "/nonexistent/vol")
    flat = " ".join(out.split())
    assert "neither a mount nor a shift applies" in flat and "userns shift" not in flat


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to IDs outside the map needs root")
def test_audit_says_why_it_exits_1_for_ids_outside_the_map(
    tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]
) -> None:
    vol = _tree(tmp_path)
    for p in (vol, os.path.join(vol, "d")):
        os.chown(p, 231072, 231072)
    os.chown(os.path.join(vol, "d", "f"), 70000, 70000)  # neither side of the map
    code, out = run(capsys, "audit", vol, "-m", "0 231072 65536")
    assert code == 1
    assert "2 IDs are outside the map" in out and "exit status 1" in out


def test_probe_answers_name_the_path_asked_about(tmp_path: os.PathLike[str]) -> None:
    # Two paths on one mount: each answer's message names its own path (the cache is per
    # path; it returned the first path's message for the second).
    from userns.mount import clear_probe_cache

    first, second = os.path.join(tmp_path, "aaa"), os.path.join(tmp_path, "bbb")
    os.mkdir(first)
    os.mkdir(second)
    assert os.stat(first).st_dev == os.stat(second).st_dev
    clear_probe_cache()
    assert first in probe(first).message
    answer = probe(second)
    assert second in answer.message and first not in answer.message
