"""A synthetic container volume tree for the shifting benchmarks, and a checker.

:func:`build` makes ``n`` directory entries (names, the root included) holding plain
container IDs 0…65535 (60% owned by 0, 20% by 1000, the rest by 41 other IDs): regular
files (some with content), directories, symlinks, hard links, a FIFO, a few setuid/setgid
files, a few files with file capabilities (v2 and v3), and a few files and directories
with POSIX ACLs naming several users and groups (written as xattrs, the format
``setfacl`` writes).
:func:`check` then says how a shifted copy differs from "every ID + delta", the
contract of every shifter measured here.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp()) / "t"
>>> info = build(root, 300, random.Random(1))
>>> info.entries == 300, check(root, info, 0).owners_wrong
(True, 0)
"""

from __future__ import annotations

import os
import random
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Check", "TreeInfo", "build", "check", "read_acl_ids", "reset", "set_specials"]

CAP_XATTR = "security.capability"
ACL_ACCESS = "system.posix_acl_access"
ACL_DEFAULT = "system.posix_acl_default"
_ACL_USER, _ACL_GROUP = 0x02, 0x08
_CAP_NET_RAW = 1 << 13


@dataclass
class TreeInfo:
    """What :func:`build` made: counts, and the paths of the special entries."""

    entries: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    special_mode: dict[str, int] = field(default_factory=dict)  # relpath -> mode bits kept
    caps: list[str] = field(default_factory=list)
    acls: list[str] = field(default_factory=list)
    acl_dirs: list[str] = field(default_factory=list)
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)  # one name per inode

    def summary(self) -> str:
        """One line describing the tree."""
        return (f"{self.entries} entries: {self.files} files, {self.dirs} dirs, "
                f"{self.symlinks} symlinks, {self.hardlinks} extra hard links, "
                f"{len(self.special_mode)} setuid/setgid, {len(self.caps)} with caps, "
                f"{len(self.acls)} with ACLs")


#: Owners other than 0 and 1000 come from a few dozen IDs, as in real images (system
#: users, nobody 65534, a few application IDs), not from thousands of distinct ones.
_OTHER_OWNERS = (1, 2, 5, 8, 33, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110,
                 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 999, 1001, 1002, 1003,
                 2000, 3000, 5000, 10000, 10001, 20000, 30000, 40000, 50000, 60000, 65534)


def _owner(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.6:
        return 0
    if r < 0.8:
        return 1000
    return rng.choice(_OTHER_OWNERS)


def _cap(version: int, rootid: int) -> bytes:
    # struct vfs_cap_data / vfs_ns_cap_data: magic|effective, {permitted, inheritable} x 2.
    if version == 2:
        return struct.pack("<5I", 0x02000000 | 1, _CAP_NET_RAW, 0, 0, 0)
    return struct.pack("<6I", 0x03000000 | 1, _CAP_NET_RAW, 0, 0, 0, rootid)


def read_acl_ids(path: str, name: str) -> list[int]:
    """The uids and gids named in one ACL xattr (empty when there is none)."""
    try:
        raw = os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for off in range(4, len(raw), 8):
        tag, _perm, ident = struct.unpack_from("<HHI", raw, off)
        if tag in (_ACL_USER, _ACL_GROUP):
            out.append(ident)
    return out


def build(root: Path, n: int, rng: random.Random, *, specials: int = 8) -> TreeInfo:
    """Make a tree of ``n`` entries at ``root`` (which must not exist)."""
    info = TreeInfo()
    os.mkdir(root)
    dirs = [str(root)]
    files: list[str] = []
    info.dirs = 1
    made = 1
    info.owners[""] = (0, 0)
    os.lchown(root, 0, 0)
    rootlen = len(str(root)) + 1
    while made < n:
        parent = rng.choice(dirs)  # a random recursive tree: depth about ln(dirs)
        path = f"{parent}/e{made}"
        r = rng.random()
        uid, gid = _owner(rng), _owner(rng)
        if r < 0.08 or len(dirs) < 4:
            os.mkdir(path)
            dirs.append(path)
            info.dirs += 1
        elif r < 0.11:
            os.symlink(f"../e{rng.randrange(made)}", path)
            info.symlinks += 1
        elif r < 0.16 and files:
            os.link(rng.choice(files), path)
            info.hardlinks += 1
            made += 1
            continue  # same inode: keeps its owner
        elif r < 0.1601:
            os.mkfifo(path)
            info.files += 1
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            if rng.random() < 0.1:
                os.write(fd, b"x" * rng.randrange(1, 4096))
            os.close(fd)
            files.append(path)
            info.files += 1
        os.lchown(path, uid, gid)
        info.owners[path[rootlen:]] = (uid, gid)
        made += 1
    info.entries = made
    # The special entries: plain single-link files chosen at random, set after chown.
    linked = {os.lstat(p).st_ino for p in files if os.lstat(p).st_nlink > 1}
    plain = [p for p in files if os.lstat(p).st_ino not in linked]
    chosen = rng.sample(plain, min(len(plain), 3 * specials))
    for i, p in enumerate(chosen[:specials]):
        info.special_mode[p[rootlen:]] = (0o4000, 0o2000, 0o6000)[i % 3]
    for p in chosen[specials : 2 * specials]:
        os.chmod(p, 0o755)
        info.caps.append(p[rootlen:])
    acl_files = chosen[2 * specials :]
    acl_dirs = rng.sample(dirs[1:], min(len(dirs) - 1, max(1, specials // 2)))
    info.acls = [p[rootlen:] for p in acl_files + acl_dirs]
    info.acl_dirs = [p[rootlen:] for p in acl_dirs]
    set_specials(root, info, 0)
    return info


def _acl(offset: int) -> bytes:
    # posix_acl_xattr: version 2, then (tag, perm, id) sorted by tag then id.
    undefined = 0xFFFFFFFF
    entries = [(0x01, 7, undefined)]
    entries += [(_ACL_USER, p, i + offset) for i, p in ((1000, 7), (1001, 4), (2000, 6))]
    entries += [(0x04, 5, undefined)]
    entries += [(_ACL_GROUP, p, i + offset) for i, p in ((1000, 5), (3000, 4))]
    entries += [(0x10, 7, undefined), (0x20, 5, undefined)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def set_specials(root: Path, info: TreeInfo, offset: int) -> None:
    """(Re)apply the setuid bits, capabilities and ACLs as a correct shift by ``offset``
    would leave them (owners are not touched)."""
    base = str(root)
    for rel, bits in info.special_mode.items():
        os.chmod(f"{base}/{rel}", 0o755 | bits)
    for i, rel in enumerate(info.caps):
        # v3 carries the host uid of the namespace root; v2 has none.
        cap = _cap(3, offset) if i % 2 == 0 and offset else _cap(2, 0)
        os.setxattr(f"{base}/{rel}", CAP_XATTR, cap, follow_symlinks=False)
    acl = _acl(offset)
    for rel in info.acls:
        os.setxattr(f"{base}/{rel}", ACL_ACCESS, acl, follow_symlinks=False)
    for rel in info.acl_dirs:
        os.setxattr(f"{base}/{rel}", ACL_DEFAULT, acl, follow_symlinks=False)


def reset(root: Path, info: TreeInfo, offset: int) -> int:
    """Make the tree exactly what a correct shift by ``offset`` gives; return the fixes.

    Used between timed runs, so every shifter starts from the same state even when the
    one before it shifted a hard link twice or dropped a capability.
    """
    base = str(root)
    fixed = 0
    for rel, (uid, gid) in info.owners.items():
        path = f"{base}/{rel}" if rel else base
        st = os.lstat(path)
        if (st.st_uid, st.st_gid) != (uid + offset, gid + offset):
            os.lchown(path, uid + offset, gid + offset)
            fixed += 1
    set_specials(root, info, offset)
    return fixed


@dataclass
class Check:
    """How a shifted tree differs from "every ID + delta"."""

    owners_wrong: int = 0
    hardlinks_wrong: int = 0
    special_lost: int = 0
    caps_lost: int = 0
    acl_ids_wrong: int = 0
    acl_ids: int = 0

    def cells(self, info: TreeInfo) -> list[str]:
        """Table cells: owners, hard links, setuid, caps, ACL IDs (wrong / total)."""
        return [
            f"{self.owners_wrong}/{len(info.owners)}",
            str(self.hardlinks_wrong),
            f"{self.special_lost}/{len(info.special_mode)}",
            f"{self.caps_lost}/{len(info.caps)}",
            f"{self.acl_ids_wrong}/{self.acl_ids}",
        ]


def check(root: Path, info: TreeInfo, delta: int) -> Check:
    """Compare ``root`` with the tree :func:`build` made, every ID shifted by ``delta``."""
    out = Check()
    base = str(root)
    for rel, (uid, gid) in info.owners.items():
        st = os.lstat(f"{base}/{rel}" if rel else base)
        if (st.st_uid, st.st_gid) != (uid + delta, gid + delta):
            out.owners_wrong += 1
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                out.hardlinks_wrong += 1
    for rel, bits in info.special_mode.items():
        if os.lstat(f"{base}/{rel}").st_mode & 0o7000 != bits:
            out.special_lost += 1
    for rel in info.caps:
        try:
            os.getxattr(f"{base}/{rel}", CAP_XATTR, follow_symlinks=False)
        except OSError:
            out.caps_lost += 1
    for rel in info.acls:
        path = f"{base}/{rel}"
        ids = read_acl_ids(path, ACL_ACCESS) + read_acl_ids(path, ACL_DEFAULT)
        out.acl_ids += len(ids)
        out.acl_ids_wrong += sum(1 for i in ids if i < delta)
    return out
