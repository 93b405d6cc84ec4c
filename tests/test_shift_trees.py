"""Real trees for the shift tests: a builder of every kind of inode, and a snapshot to compare.

Used by the other ``tests/test_shift*.py`` modules (needs root: chown, mknod, setcap,
setfacl); the tests at the end check the builder and the snapshot themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import stat
import subprocess
from typing import Any

import pytest

__all__ = ["build_tree", "need_root", "need_tool", "snapshot"]

XATTRS = ("security.capability", "system.posix_acl_access", "system.posix_acl_default")


def need_root() -> str | None:
    """Why the shift tests cannot run here, or ``None``."""
    if os.geteuid() != 0:
        return "shifting real trees needs root (chown to arbitrary IDs, mknod)"
    return None


def need_tool(name: str) -> str | None:
    """Why a Debian tool test cannot run, or ``None``."""
    if shutil.which(name) is None:
        return f"{name} is not installed (Debian package: acl / libcap2-bin)"
    return None


def _file(path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def build_tree(root: str, *, scale: int = 1, base: int = 0) -> None:
    """A tree holding every kind of inode a container volume holds.

    Owners are container IDs ``base + small``; ``scale`` multiplies the plain files.
    """
    os.makedirs(root)
    os.chown(root, base, base)
    b = base
    _file(f"{root}/plain", b"hello\n", b + 1, b + 2, 0o644)
    _file(f"{root}/empty", b"", b + 3, b + 3, 0o600)
    with open(f"{root}/sparse", "wb") as f:
        f.seek(1 << 20)
        f.write(b"end")
    os.chown(f"{root}/sparse", b + 4, b + 4)
    _file(f"{root}/suid", b"#!/bin/sh\n", b, b, 0o4755)
    os.chmod(f"{root}/suid", 0o4755)
    _file(f"{root}/sgid", b"#!/bin/sh\n", b + 5, b + 6, 0o2755)
    os.chmod(f"{root}/sgid", 0o2755)
    _file(f"{root}/both", b"#!/bin/sh\n", b + 7, b + 7, 0o6755)
    os.chmod(f"{root}/both", 0o6755)
    os.mkdir(f"{root}/shared")
    os.chown(f"{root}/shared", b + 8, b + 9)
    os.chmod(f"{root}/shared", 0o2775)
    # hard links in three directories
    _file(f"{root}/shared/hl", b"linked\n", b + 10, b + 11, 0o644)
    os.mkdir(f"{root}/a")
    os.link(f"{root}/shared/hl", f"{root}/a/hl2")
    os.link(f"{root}/shared/hl", f"{root}/hl3")
    # symlinks: relative, absolute to the outside, dangling
    os.symlink("plain", f"{root}/link")
    os.lchown(f"{root}/link", b + 12, b + 12)
    os.symlink("/etc/passwd", f"{root}/abs-link")
    os.lchown(f"{root}/abs-link", b + 13, b + 13)
    os.symlink("nowhere/at/all", f"{root}/dangling")
    # special files: FIFO, socket, char/block devices, an overlay whiteout (0/0 char dev)
    os.mkfifo(f"{root}/fifo")
    os.chown(f"{root}/fifo", b + 14, b + 14)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(f"{root}/sock")
    finally:
        sock.close()
    os.chown(f"{root}/sock", b + 15, b + 15)
    os.mknod(f"{root}/whiteout", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.chown(f"{root}/whiteout", b + 16, b + 16)
    os.mknod(f"{root}/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(f"{root}/blk", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.chown(f"{root}/blk", b, b + 6)
    # a name that is not UTF-8
    bad = os.fsencode(root) + b"/caf\xe9-\xff"
    with open(bad, "wb") as f:
        f.write(b"latin-1 name\n")
    os.chown(bad, b + 17, b + 17)
    os.makedirs(f"{root}/deep/er/still", exist_ok=True)
    for i in range(20 * scale):
        d = f"{root}/deep/er/still" if i % 2 else f"{root}/a"
        _file(f"{d}/f{i}", f"file {i}\n".encode(), b + i % 50, b + (i * 7) % 50, 0o640)


def _xattrs(path: bytes) -> dict[str, str]:
    out = {}
    for name in XATTRS:
        with contextlib.suppress(OSError):
            out[name] = os.getxattr(path, name, follow_symlinks=False).hex()
    return out


def snapshot(root: str, *, inodes: bool = False) -> dict[bytes, tuple[Any, ...]]:
    """Relative path -> (type, uid, gid, mode, xattrs, content hash[, (dev, ino)])."""
    out: dict[bytes, tuple[Any, ...]] = {}
    broot = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(broot):
        for name in [b".", *dirnames, *filenames] if dirpath == broot else [*dirnames,
                                                                            *filenames]:
            path = dirpath if name == b"." else os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.fsdecode(os.readlink(path))
            rel = os.path.relpath(path, broot)
            row: tuple[Any, ...] = (stat.S_IFMT(st.st_mode), st.st_uid, st.st_gid,
                                    stat.S_IMODE(st.st_mode), _xattrs(path), digest)
            if inodes:
                row += ((st.st_dev, st.st_ino),)
            out[rel] = row
    return out


def run(*argv: str) -> str:
    """Run a tool, return its stdout (raise on failure)."""
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


# -- the helpers' own tests ---------------------------------------------------------------

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))


def test_build_tree_has_every_kind(tmp_path: Any) -> None:
    root = str(tmp_path / "t")
    build_tree(root)
    kinds = {row[0] for row in snapshot(root).values()}
    assert kinds == {stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK, stat.S_IFIFO, stat.S_IFSOCK,
                     stat.S_IFCHR, stat.S_IFBLK}
    snap = snapshot(root)
    assert snap[b"suid"][3] == 0o4755 and snap[b"both"][3] == 0o6755
    assert b"caf\xe9-\xff" in snap


def test_snapshot_sees_owner_and_content_changes(tmp_path: Any) -> None:
    root = str(tmp_path / "t")
    build_tree(root)
    before = snapshot(root)
    os.lchown(f"{root}/link", 4321, 4321)
    with open(f"{root}/plain", "ab") as f:
        f.write(b"!")
    after = snapshot(root)
    assert {k for k in before if before[k] != after[k]} == {b"link", b"plain"}
