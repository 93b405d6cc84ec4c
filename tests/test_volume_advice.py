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
    expected = "an idmapped mount serves it" if answer.ok else "shift it"
    assert f"{path}: {expected}" in out


def test_explain_without_volume_reports_none(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "explain", "--example", "--json")
    assert json.loads(out)["volumes"] == []
