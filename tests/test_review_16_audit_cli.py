"""Review of ``userns audit`` as a new user meets it: what the text and JSON say, the
exit status, ``--owners-only``, against the real tools (``chown -R``, ``setfacl``,
``setcap``, ``getcap -n``) rather than our own code; plus one older bug found on the way
(a hard-linked symlink with a name outside the tree and ``include_outside_links``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from userns.cli import main
from userns.shift import audit_tree, shift_tree

from . import test_shift_audit_xattrs as audit_tests
from .test_shift_trees import need_tool, run

# root, setfacl and setcap, the maps: as the audit's own tests
pytestmark = audit_tests.pytestmark
PAIR, MAPS = audit_tests.PAIR, audit_tests.MAPS


def image(root: Path) -> Path:
    """An unshifted image as a container runtime unpacks it: ping with a v2 capability
    (no root ID), a tool with a v3 one, a setuid binary, a directory whose default ACL
    names a group, a file whose ACL names a user, a hard link, a symlink."""
    (root / "bin").mkdir(parents=True)
    (root / "srv").mkdir()
    for name in ("ping", "tool", "su"):
        (root / "bin" / name).write_bytes(b"\x7fELF" + name.encode())
    run("setcap", "cap_net_raw+ep", str(root / "bin" / "ping"))
    run("setcap", "-n", "9", "cap_net_bind_service+ep", str(root / "bin" / "tool"))
    os.chmod(root / "bin" / "su", 0o4755)
    run("setfacl", "-d", "-m", "g:50:rwx", str(root / "srv"))
    (root / "srv" / "data").write_text("d")
    run("setfacl", "-m", "u:33:rw", str(root / "srv" / "data"))
    os.link(root / "srv" / "data", root / "data-again")
    os.symlink("bin/ping", root / "ping")
    return root


def userns_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """``userns audit ARGS`` as a process, its output as bytes."""
    return subprocess.run([sys.executable, "-m", "userns", "audit", *args],
                          capture_output=True, env={**os.environ, **env}, check=False)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["audit", *args])
    return code, capsys.readouterr().out


def test_getcap_is_the_oracle_for_capability_root_ids(tmp_path: Path) -> None:
    """What the kernel gives (getcap -n): ping has no root ID (v2), tool has 9; a v3
    value written with root ID 0 from the initial namespace reads back as v2."""
    root = image(tmp_path / "t")
    out = subprocess.run(["getcap", "-n", str(root / "bin" / "ping"),
                          str(root / "bin" / "tool")], capture_output=True, text=True,
                         check=True).stdout
    assert "rootid" not in out.splitlines()[0] and "[rootid=9]" in out.splitlines()[1]
    report = audit_tree(root, PAIR, workers=2)
    assert report.cap_rootids == {9: 1}
    assert report.acl_uids == {33: 1} and report.acl_gids == {50: 2}  # srv, srv/data
    assert report.state == "unshifted"


def test_text_json_and_exit_status_before_and_after_a_shift(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = image(tmp_path / "t")
    code, out = cli(capsys, str(root), *MAPS)
    assert code == 1
    assert out.splitlines()[0] == f"audit {root}: 8 entries, state: unshifted"
    assert "  ACL uids: 33 (1)" in out and "  ACL gids: 50 (2)" in out
    assert "  capability root IDs: 9 (1)" in out
    assert "not shifted by this map: exit status 1" in out
    code, out = cli(capsys, str(root), *MAPS, "--json")
    data = json.loads(out)
    assert code == 1
    assert (data["acl_uids"], data["acl_gids"], data["cap_rootids"]) == (
        {"33": 1}, {"50": 2}, {"9": 1})
    assert data["xattrs"] is True and data["state"] == "unshifted"
    assert main(["shift", str(root), *MAPS]) == 0
    capsys.readouterr()
    code, out = cli(capsys, str(root), *MAPS, "--json")
    data = json.loads(out)
    assert code == 0 and data["state"] == "shifted"
    assert (data["acl_uids"], data["acl_gids"], data["cap_rootids"]) == (
        {"100033": 1}, {"300050": 2}, {"100009": 1})
    out = subprocess.run(["getcap", "-n", str(root / "bin" / "tool")], capture_output=True,
                         text=True, check=True).stdout
    assert "[rootid=100009]" in out


@pytest.mark.skipif(need_tool("chown") is not None, reason="chown is not installed")
def test_chown_r_leaves_acls_behind_mixed_and_owners_only_says_shifted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``chown -R -h`` (coreutils) moves the owners only; the kernel drops the
    capabilities and setuid bit on the way. The default audit sees the ACLs' container
    IDs (mixed, exit 1); --owners-only sees owners only (shifted, exit 0, and says what
    it did not read); a shift with policy skip then repairs the ACLs."""
    root = image(tmp_path / "t")
    subprocess.run(["chown", "-R", "-h", "100000:300000", str(root)], check=True)
    assert os.stat(root / "bin" / "su").st_mode & 0o4000 == 0  # (the kernel's doing)
    code, out = cli(capsys, str(root), *MAPS)
    assert code == 1 and "state: mixed" in out
    assert "capability root IDs" not in out  # (chown dropped them all)
    code, out = cli(capsys, str(root), *MAPS, "--owners-only")
    assert code == 0 and "state: shifted" in out
    assert "ACLs and capabilities: not read (--owners-only)" in out
    assert "ACL uids" not in out
    shift_tree(root, PAIR, policy="skip")
    report = audit_tree(root, PAIR)
    assert report.state == "shifted"
    assert report.acl_uids == {100033: 1} and report.acl_gids == {300050: 2}


def test_an_acl_id_outside_the_map_on_a_non_utf8_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ACL naming an ID neither side of the map has, on a file whose name is not
    UTF-8: listed with its path in text and JSON, exit 1."""
    root = tmp_path / "t"
    root.mkdir()
    bad = root / os.fsdecode(b"caf\xe9")
    bad.write_text("x")
    run("setfacl", "-m", "u:70000:r", str(bad))
    os.chown(root, 100000, 300000)
    os.chown(bad, 100000, 300000)
    proc = userns_cli(str(root), *MAPS, env={"LC_ALL": "C.UTF-8"})
    assert proc.returncode == 1
    assert f"outside the map: acl-uid 70000: 1 entry (e.g. {bad})".encode(
        "utf-8", "surrogateescape") in proc.stdout
    assert b"ID is outside the map" in proc.stdout
    code, out = cli(capsys, str(root), *MAPS, "--json")
    data = json.loads(out)
    assert code == 1
    assert data["outside"] == [{"kind": "acl-uid", "id": 70000, "count": 1,
                                "examples": [str(bad)]}]
    assert data["state"] == "shifted"


def test_text_output_of_a_non_utf8_path_under_a_strict_utf8_stdout(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    bad = root / os.fsdecode(b"caf\xe9")
    bad.write_text("x")
    run("setfacl", "-m", "u:70000:r", str(bad))
    proc = userns_cli(str(root), *MAPS, env={"PYTHONIOENCODING": "utf-8:strict"})
    assert b"Traceback" not in proc.stderr
    assert proc.returncode == 1 and b"acl-uid 70000" in proc.stdout


def test_include_outside_links_re_owns_a_hard_linked_symlink(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    os.symlink("target", root / "s")
    os.link(root / "s", root / "s2", follow_symlinks=False)
    os.link(root / "s", tmp_path / "elsewhere", follow_symlinks=False)
    report = shift_tree(root, PAIR, include_outside_links=True)
    assert report.errors == () and report.complete
    assert os.lstat(root / "s").st_uid == 100000


@pytest.mark.parametrize("what", ["acl", "owner"])
def test_audit_after_an_overflow_shift_agrees_with_the_verifying_rerun(
        tmp_path: Path, what: str) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "f").write_text("x")
    (root / "g").write_text("y")
    if what == "acl":
        run("setfacl", "-m", "u:70000:r", str(root / "f"))
    else:
        os.chown(root / "f", 70000, 0)
    shift_tree(root, PAIR, policy="overflow")
    again = shift_tree(root, PAIR, policy="overflow")
    assert again.verified and again.changed == 0  # (the shift's own word: all right)
    report = audit_tree(root, PAIR)
    assert report.mark is not None and report.mark.policy == "overflow"
    assert report.state == "shifted"
