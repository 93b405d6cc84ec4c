"""Review of the audit's reading of ACLs and capabilities (and of the walks' listing of
extended attribute names) on names that are not UTF-8 and on long lists of names,
checked against the kernel through ``getfacl -n`` and ``getcap -n``.

An extended attribute's name is bytes, as a file name is: ``user.\\xff`` is a valid
name. ``os.listxattr`` gives it back with a surrogate escape; encoding it as strict
UTF-8 raises ``UnicodeEncodeError``, which no walk catches.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.errors import ShiftError
from userns.shift import audit_tree, shift_tree
from userns.shift import walk as walk_mod

from .test_shift_trees import need_root, need_tool, run

pytestmark = [
    pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
    pytest.mark.skipif(need_tool("setfacl") is not None, reason=str(need_tool("setfacl"))),
    pytest.mark.skipif(need_tool("setcap") is not None, reason=str(need_tool("setcap"))),
]

PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))
ODD = b"user.\xff\xfe"  # an extended attribute name that is not UTF-8


def acl_ids(path: Path) -> tuple[set[int], set[int]]:
    """The uids and gids the ACLs of ``path`` name, as ``getfacl -n`` prints them."""
    out = subprocess.run([b"getfacl", b"-n", b"-c", b"-P", b"--", os.fsencode(path)],
                         capture_output=True, check=True).stdout.decode("utf-8", "replace")
    users: set[int] = set()
    groups: set[int] = set()
    for line in out.splitlines():
        m = re.match(r"(?:default:)?(user|group):(\d+):", line)
        if m:
            (users if m.group(1) == "user" else groups).add(int(m.group(2)))
    return users, groups


def oracle(root: Path) -> dict[str, dict[int, int]]:
    """Inodes per ID named by ACLs, and files per capability root ID, by the real tools."""
    au: collections.Counter[int] = collections.Counter()
    ag: collections.Counter[int] = collections.Counter()
    cr: collections.Counter[int] = collections.Counter()
    seen = set()
    for p in [root, *root.rglob("*")]:
        st = os.lstat(p)
        if (st.st_dev, st.st_ino) in seen or os.path.islink(p):
            continue
        seen.add((st.st_dev, st.st_ino))
        users, groups = acl_ids(p)
        au.update(users)
        ag.update(groups)
        if p.is_file():
            out = subprocess.run([b"getcap", b"-n", os.fsencode(p)], capture_output=True,
                                 check=True).stdout.decode("utf-8", "replace")
            m = re.search(r"\[rootid=(\d+)\]", out)
            if m:
                cr[int(m.group(1))] += 1
    return {"acl_uids": dict(au), "acl_gids": dict(ag), "cap_rootids": dict(cr)}


def got(report: Any) -> dict[str, dict[int, int]]:
    return {"acl_uids": report.acl_uids, "acl_gids": report.acl_gids,
            "cap_rootids": report.cap_rootids}


def odd_names_tree(root: Path) -> None:
    """Files and directories whose own names are not UTF-8, with ACLs and capabilities,
    and a file whose extended attribute names run far past 256 bytes."""
    bad = os.fsdecode(b"\xe9t\xe9")
    (root / bad / "sub").mkdir(parents=True)
    (root / bad / "f").write_text("x")
    (root / "cap").write_bytes(b"\x7fELF")
    (root / "many").write_text("m")
    run("setfacl", "-m", "u:1000:r,g:1001:r", str(root / bad / "f"))
    run("setfacl", "-d", "-m", "u:1002:rwx", str(root / bad))
    run("setcap", "-n", "7", "cap_net_raw+ep", str(root / "cap"))
    os.link(root / bad / "f", root / bad / "sub" / os.fsdecode(b"l\xff"))
    for i in range(30):  # about 1.7 kB of names (ext4 keeps them in one block): the
        # 256-byte buffer's ERANGE path
        os.setxattr(root / "many", f"user.{'x' * 50}{i}", b"v")
    run("setfacl", "-m", "u:1003:r", str(root / "many"))


@pytest.mark.parametrize("workers", [1, 2])
def test_audit_of_non_utf8_file_names_and_long_xattr_lists_matches_getfacl_getcap(
        tmp_path: Path, workers: int) -> None:
    root = tmp_path / "t"
    odd_names_tree(root)
    want = oracle(root)
    assert want["acl_uids"] == {1000: 1, 1002: 1, 1003: 1}  # (the oracle itself)
    report = audit_tree(root, PAIR, workers=workers)
    assert report.errors == ()
    assert got(report) == want
    assert report.state == "unshifted"
    shift_tree(root, PAIR, workers=workers)
    after = audit_tree(root, PAIR, workers=3 - workers)
    assert got(after) == oracle(root)
    assert after.state == "shifted" and after.acl_uids == {101000: 1, 101002: 1, 101003: 1}


def dir_with_acl_and_odd_xattr(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    run("setfacl", "-m", "u:1000:r", str(root / "d"))
    os.setxattr(root / "d", ODD, b"v")
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_audit_of_a_directory_with_an_acl_and_a_non_utf8_xattr_name(
        tmp_path: Path, workers: int) -> None:
    root = dir_with_acl_and_odd_xattr(tmp_path / "t")
    report = audit_tree(root, PAIR, workers=workers)
    assert report.acl_uids == {1000: 1}
    assert report.errors == ()


@pytest.mark.parametrize("workers", [1, 2])
def test_shift_of_a_directory_with_an_acl_and_a_non_utf8_xattr_name(
        tmp_path: Path, workers: int) -> None:
    root = dir_with_acl_and_odd_xattr(tmp_path / "t")
    try:
        shift_tree(root, PAIR, workers=workers)
    except (ShiftError, UnicodeEncodeError) as exc:
        pytest.fail(f"the shift failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    assert acl_ids(root / "d") == ({101000}, set())
    assert os.getxattr(root / "d", ODD) == b"v"


@pytest.fixture
def without_listxattrat(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walks' listing as on a kernel without ``listxattrat`` (before 6.13, e.g.
    Debian 12's 6.1) or on another architecture: ``llistxattr`` through
    ``/proc/self/fd``."""
    real = os.uname
    fake = collections.namedtuple("fake", "sysname nodename release version machine")
    monkeypatch.setattr(os, "uname", lambda: fake("Linux", "x", "6.1.0", "", "other"))
    lister = walk_mod._ListXattrAt()
    monkeypatch.setattr(os, "uname", real)
    assert lister.at.__name__ == "through_proc"
    monkeypatch.setattr(walk_mod, "_listxattrat", lister)


@pytest.mark.usefixtures("without_listxattrat")
def test_fallback_listing_agrees_on_utf8_names(tmp_path: Path) -> None:
    """The fallback itself works (the reference for the test below)."""
    root = tmp_path / "t"
    odd_names_tree(root)
    report = audit_tree(root, PAIR, workers=1)
    assert got(report) == oracle(root) and report.errors == ()


@pytest.mark.usefixtures("without_listxattrat")
@pytest.mark.parametrize("what", ["audit", "shift"])
def test_fallback_listing_of_a_non_utf8_xattr_name(tmp_path: Path, what: str) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "f").write_text("x")
    os.setxattr(root / "f", ODD, b"v")
    run("setfacl", "-m", "u:1000:r", str(root / "f"))
    if what == "audit":
        assert audit_tree(root, PAIR, workers=1).acl_uids == {1000: 1}
    else:
        shift_tree(root, PAIR, workers=1)
        assert acl_ids(root / "f") == ({101000}, set())
