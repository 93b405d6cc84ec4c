"""``userns shift``/``unshift``/``audit`` on the command line: maps from subuid like
``explain``, ``--gid-map``, outside links, verifying re-runs, rollback, and text lists
that say what they leave out."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from userns.cli import main

from .test_shift_trees import need_root, need_tool

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def make_root(tmp_path: Path, subuid: str, subgid: str | None = None) -> Path:
    etc = tmp_path / "sys" / "etc"
    etc.mkdir(parents=True)
    (etc / "subuid").write_text(subuid)
    (etc / "subgid").write_text(subgid if subgid is not None else subuid)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                "testuser:x:1500:1500::/home/testuser:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ntestuser:x:1500:\n")
    return tmp_path / "sys"


def tree(tmp_path: Path, owners: list[tuple[str, int, int]]) -> Path:
    vol = tmp_path / "vol"
    vol.mkdir()
    for name, uid, gid in owners:
        (vol / name).write_text(name)
        os.chown(vol / name, uid, gid)
    return vol


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def test_user_takes_the_maps_dockerd_builds_from_subuid(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    # two ranges in file order: container 0..19 -> 200000.., 20.. -> 250000..
    root = make_root(tmp_path, "testuser:200000:20\ntestuser:250000:65516\n",
                     "testuser:300000:65536\n")
    vol = tree(tmp_path, [("a", 5, 5), ("b", 33, 33)])
    common = ("--user", "testuser", "--root", str(root), "--docker-version", "main")
    code, out, err = run(capsys, "shift", str(vol), *common)
    assert code == 0, err
    assert owner(vol / "a") == (200005, 300005)
    assert owner(vol / "b") == (250013, 300033)
    assert owner(vol) == (200000, 300000)
    code, out, _ = run(capsys, "audit", str(vol), *common, "--json")
    assert code == 0 and json.loads(out)["state"] == "shifted"
    code, out, err = run(capsys, "unshift", str(vol), *common)
    assert code == 0, err
    assert owner(vol / "b") == (33, 33) and owner(vol) == (0, 0)
    # --subuid/--subgid name the files directly, as explain takes them
    code, _, err = run(capsys, "shift", str(vol), "--user", "testuser", "--subuid",
                       str(root / "etc" / "subuid"), "--subgid", str(root / "etc" / "subgid"),
                       "--passwd", str(root / "etc" / "passwd"), "--group",
                       str(root / "etc" / "group"), "--docker-version", "main")
    assert code == 0, err
    assert owner(vol / "b") == (250013, 300033)


def test_user_follows_the_docker_version_rules(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # dockerd 20.10 takes the uid's lines when there are any; main takes name and uid
    root = make_root(tmp_path, "testuser:9000000:20\n1500:20000000:65536\n")
    for version, host in (("20.10", 20000000), ("main", 9000000)):
        sub = tmp_path / version
        sub.mkdir()
        vol = tree(sub, [("f", 0, 0)])
        code, _, err = run(capsys, "shift", str(vol), "--user", "testuser", "--root", str(root),
                           "--docker-version", version)
        assert code == 0, err
        assert owner(vol / "f") == (host, host)


def test_gid_map_gives_groups_their_own_map(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    vol = tree(tmp_path, [("f", 7, 8)])
    code, _, err = run(capsys, "shift", str(vol), "--map", "0 100000 65536",
                       "--gid-map", "0 300000 65536")
    assert code == 0, err
    assert owner(vol / "f") == (100007, 300008)
    code, out, _ = run(capsys, "audit", str(vol), "--map", "0 100000 65536",
                       "--gid-map", "0 300000 65536", "--json")
    assert json.loads(out)["state"] == "shifted"
    root = make_root(tmp_path, "testuser:200000:65536\n")
    code, _, err = run(capsys, "unshift", str(vol), "--user", "testuser", "--root", str(root),
                       "--docker-version", "main", "--gid-map", "0 300000 65536",
                       "--policy", "skip")
    assert code == 0, err
    assert owner(vol / "f") == (100007, 8)  # uids are not in testuser's map: left


def test_map_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vol = tree(tmp_path, [("f", 1, 1)])
    code, _, err = run(capsys, "shift", str(vol))
    assert code == 2 and "exactly one of --map MAP and --user NAME" in err
    code, _, err = run(capsys, "audit", str(vol), "--map", "0 1 2", "--user", "x")
    assert code == 2
    code, _, err = run(capsys, "shift", str(vol), "--map", "0 100000 65536", "--root", "/")
    assert code == 2 and "--root goes with --user" in err
    root = make_root(tmp_path, "testuser:200000:65536\n")
    code, _, err = run(capsys, "shift", str(vol), "--user", "nobody-here", "--root", str(root),
                       "--docker-version", "main")
    assert code == 1 and "builds no map" in err and "Traceback" not in err
    assert owner(vol / "f") == (1, 1)


def test_outside_links_on_the_command_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    vol = tree(tmp_path, [("f", 1, 1)])
    secret = tmp_path / "secret"
    secret.write_text("keep")
    os.link(secret, vol / "innocent")
    code, out, err = run(capsys, "shift", str(vol), "--map", "0 100000 65536")
    assert code == 1 and "[outside-links]" in err
    assert f"{vol}/innocent: 2 links, 1 inside the tree, 1 outside" in out
    assert owner(secret) == (0, 0) and owner(vol / "f") == (1, 1)
    code, out, _ = run(capsys, "shift", str(vol), "--map", "0 100000 65536", "--dry-run")
    assert code == 1 and "a real run would refuse the tree" in out
    code, out, _ = run(capsys, "shift", str(vol), "--map", "0 100000 65536", "--policy", "skip")
    assert code == 0 and "1 hard-linked inode has a name outside the tree (left alone" in out
    assert owner(secret) == (0, 0) and owner(vol / "f") == (100001, 100001)
    code, out, _ = run(capsys, "audit", str(vol), "--map", "0 100000 65536")
    assert f"{vol}/innocent: 2 links, 1 inside the tree, 1 outside" in out
    code, out, _ = run(capsys, "shift", str(vol), "--map", "0 100000 65536", "--policy", "skip",
                       "--include-outside-links")
    assert code == 0 and owner(secret) == (100000, 100000)


def test_rerun_verifies_and_trust_mark_says_not_verified(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    vol = tree(tmp_path, [("f", 1, 1)])
    m = ("--map", "0 100000 65536")
    assert run(capsys, "shift", str(vol), *m)[0] == 0
    (vol / "added").write_text("")  # written with container IDs after the shift
    code, out, _ = run(capsys, "audit", str(vol), *m)
    assert "state: mixed" in out and "mark: a shift of container IDs by this map" in out
    code, out, _ = run(capsys, "shift", str(vol), *m, "--trust-mark")
    assert code == 0 and "not verified (--trust-mark)" in out
    assert owner(vol / "added") == (0, 0)
    code, out, _ = run(capsys, "shift", str(vol), *m)
    assert code == 0 and "verified (the root carries the mark" in out and "fixed 1" in out
    assert owner(vol / "added") == (100000, 100000)
    code, out, _ = run(capsys, "shift", str(vol), *m, "--json")
    data = json.loads(out)
    assert data["verified"] and data["changed"] == 0 and not data["already_complete"]


@pytest.mark.skipif(need_tool("chattr") is not None, reason=str(need_tool("chattr")))
def test_rollback_and_a_dry_run_of_an_interrupted_shift(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    vol = tree(tmp_path, [(f"f{i}", i, i) for i in range(10)])
    stuck = vol / "f5"
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode:
        pytest.skip("this filesystem has no immutable flag")
    m = ("--map", "0 1000 65536")  # overlapping: a second translation would show
    try:
        code, _, err = run(capsys, "shift", str(vol), *m, "--on-error", "continue")
        assert code == 1
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    journal = tmp_path / ".vol.userns-shift"
    assert journal.exists() and owner(vol / "f1") == (1001, 1001)
    code, out, _ = run(capsys, "shift", str(vol), *m, "--dry-run")
    assert f"journal {journal})" in out and "None" not in out
    code, out, _ = run(capsys, "audit", str(vol), *m)
    assert f"pending journal: {journal}" in out
    code, out, err = run(capsys, "shift", str(vol), *m, "--rollback")
    assert code == 0, err
    assert "rolled back the interrupted shift" in out
    assert [owner(vol / f"f{i}") for i in range(10)] == [(i, i) for i in range(10)]
    assert owner(vol) == (0, 0) and not journal.exists()
    code, _, err = run(capsys, "shift", str(vol), *m, "--rollback")
    assert code == 1 and "[no-journal]" in err


def test_text_lists_say_what_they_leave_out_and_json_has_all(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vol = tree(tmp_path, [(f"f{i}", 70000 + i, 0) for i in range(25)])
    m = ("--map", "0 100000 65536")
    code, out, _ = run(capsys, "shift", str(vol), *m)  # refused: 25 cannot be translated
    assert code == 1
    assert out.count("cannot translate uid") == 20 and "… and 5 more" in out
    code, out, _ = run(capsys, "shift", str(vol), *m, "--dry-run")
    assert out.count("cannot translate: uid") == 20 and "… and 5 more" in out
    code, out, _ = run(capsys, "shift", str(vol), *m, "--dry-run", "--json")
    assert len(json.loads(out)["unmapped"]) == 25
    code, out, _ = run(capsys, "shift", str(vol), *m, "--policy", "skip")
    assert out.count("left as is, not in the map: uid") == 20 and "… and 5 more" in out
    code, out, _ = run(capsys, "audit", str(vol), *m)
    assert out.count("outside the map: uid") == 20 and "… and 5 more" in out
    assert "… and 16 more" in out  # the uid counts line shows 10 of 26
    code, out, _ = run(capsys, "audit", str(vol), *m, "--json")
    assert len(json.loads(out)["outside"]) == 25


@pytest.mark.parametrize("workers", ["1", "3"])
def test_workers_option_reaches_shift_unshift_and_audit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str) -> None:
    vol = tree(tmp_path, [("a", 0, 0), ("b", 33, 33)])
    maps = ("--map", "0 100000 65536")
    code, out, _ = run(capsys, "shift", str(vol), *maps, "--workers", workers,
                       "--no-progress", "--json")
    assert code == 0 and json.loads(out)["workers"] == int(workers)
    assert owner(vol / "b") == (100033, 100033)
    code, out, _ = run(capsys, "audit", str(vol), *maps, "--workers", workers, "--json")
    assert code == 0 and json.loads(out)["state"] == "shifted"
    code, out, _ = run(capsys, "unshift", str(vol), *maps, "--workers", workers,
                       "--no-progress", "--json")
    assert code == 0 and json.loads(out)["workers"] == int(workers)
    assert owner(vol / "b") == (33, 33)


@pytest.mark.parametrize("command", ["shift", "unshift", "audit"])
def test_workers_below_one_or_above_the_most_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    vol = tree(tmp_path, [("a", 0, 0)])
    code, _, err = run(capsys, command, str(vol), "--map", "0 100000 65536", "--workers", "0")
    assert code == 2 and "must be at least 1" in err
    assert owner(vol / "a") == (0, 0)
    code, _, err = run(capsys, command, str(vol), "--map", "0 100000 65536", "--workers", "65")
    assert code == 2 and "must be at most 64: '65'" in err and "Traceback" not in err
    assert owner(vol / "a") == (0, 0)
