"""``userns.access`` against its seeds and against the kernel.

The seeds (the issue's own cases) are checked on values and on a real tree. The
differential builds random trees (owners inside and outside each map, every mode class,
sticky directories, directories without search permission on the way, named-user and
named-group ACL entries with and without a restrictive mask, immutable and append-only
entries, symlinks), reads them once with :func:`userns.access.walk`, and asks the kernel
the same questions from inside a real user namespace (``run_in_userns``): ``faccessat``
with ``AT_EACCESS`` for read/write/exec, a real ``mkdir`` for create, a real
``unlink``/``rmdir`` for removing the path (``ENOTEMPTY`` means the permission check
passed). The child starts as namespace root, calls ``setgroups``/``setresgid``/
``setresuid`` itself, and so keeps the full capability set as uid 0 and none as any other
uid: what a runtime gives, and :class:`~userns.access.Identity`'s default. Every answer
must agree, errno included. A second differential runs on a read-only, noexec bind mount
and a third through an idmapped mount (read automatically), each in a private mount
namespace.

``USERNS_ACCESS_TREES`` (default 2) scales the number of random trees of the first
differential; the counts are printed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from userns.access import (
    ALL_CAPS,
    CAP_DAC_OVERRIDE,
    MAY_READ,
    MAY_WRITE,
    AccessResult,
    Identity,
    Inode,
    analyze,
    decide,
    decide_walk,
    permission,
    walk,
)
from userns.errors import AccessError, UnmappedIDError
from userns.kernel import run_in_userns
from userns.maps import IDMap, IDMapPair
from userns.shift.xattrs import ACL_ACCESS, ACLEntry, PosixACL, format_acl

from .mountns import kernel_at_least, private_mountns
from .test_kernel import needs_root, needs_userns

REMAP = IDMapPair.both(IDMap.single(0, 231072, 65536))
IDENTITY = IDMapPair.both(IDMap.identity())
SPLIT = IDMapPair.both(IDMap.from_triples([(0, 1000, 1), (1, 100000, 65536)]))
MAPS = {"remap": REMAP, "identity": IDENTITY, "split": SPLIT}
#: (uid, gid, groups) inside: container root, www-data, a user, mixed gids.
IDENTITIES = [(0, 0, ()), (33, 33, ()), (1000, 1000, ()), (1000, 33, (0, 100)),
              (33, 1000, (100,)), (0, 1000, (33,))]
#: Host owners: mapped and unmapped under each map, and the identities' own host IDs.
OWNERS = [0, 33, 100, 1000, 5000, 65534, 100000, 100032, 100099, 100999, 231072, 231105,
          231172, 232072, 296608]

PYTHON = "/usr/bin/python3"  # the venv's python lives under a 0700 directory
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS = 0x80086601, 0x40086602
_IMMUTABLE, _APPEND = 0x10, 0x20


def _root(pair: IDMapPair = REMAP) -> Identity:
    return Identity(pair)


def _f(path: str, mode: int, uid: int = 0, gid: int = 0, **kw: Any) -> Inode:
    return Inode(path, "file", mode, uid, gid, **kw)


def _d(path: str, mode: int, uid: int = 0, gid: int = 0, **kw: Any) -> Inode:
    return Inode(path, "directory", mode, uid, gid, **kw)


SLASH = _d("/", 0o755)


# -- the seeds, on values ----------------------------------------------------------------


def test_seed_remapped_root_reads_but_cannot_write_host_etc() -> None:
    r = decide([SLASH, _d("/etc", 0o755), _f("/etc/hosts", 0o644)], _root())
    assert (r.read.allowed, r.write.allowed) == (True, False)
    assert r.read.rule == "other" and r.write.rule == "other"
    assert "outside the map (inside it looks like 65534, nobody)" in r.write.detail
    assert "CAP_DAC_OVERRIDE does not count" in r.write.detail
    d = decide([SLASH, _d("/etc", 0o755)], _root())
    assert d.create is not None and d.delete is not None
    assert not d.create.allowed and not d.delete.allowed
    assert d.components[-1].view_uid == 65534 and not d.components[-1].uid_mapped


def test_seed_identity_root_may_write_create_delete() -> None:
    who = _root(IDENTITY)
    r = decide([SLASH, _d("/etc", 0o755), _f("/etc/hosts", 0o644)], who)
    assert r.read.allowed and r.write.allowed and r.write.rule == "owner"
    d = decide([SLASH, _d("/etc", 0o755)], who)
    assert d.create is not None and d.create.allowed
    assert d.delete is not None and d.delete.allowed
    # host root's file owned by someone else still falls to the capabilities
    other = decide([SLASH, _d("/etc", 0o755, 5), _f("/etc/x", 0o000, 5, 5)], who)
    assert other.write.rule == CAP_DAC_OVERRIDE and other.read.rule == "CAP_DAC_READ_SEARCH"


def test_seed_caps_over_a_mapped_inode_even_mode_000() -> None:
    mine = _f("/srv/x", 0o000, 231105, 231105)  # container uid 33's file
    r = decide([SLASH, _d("/srv", 0o755), mine], _root())
    assert r.write.allowed and r.write.rule == CAP_DAC_OVERRIDE
    assert r.read.allowed and r.read.rule == "CAP_DAC_READ_SEARCH"
    # exec needs an x bit even for root
    assert not r.exec.allowed and r.exec.rule == "no-exec-bit"
    # uid mapped but gid not: privileged_wrt_inode_uidgid wants both
    half = decide([SLASH, _d("/srv", 0o755), _f("/srv/y", 0o000, 231105, 0)], _root())
    assert not half.write.allowed and "gid 0" in half.write.detail
    # no capabilities for a non-root uid
    www = decide([SLASH, _d("/srv", 0o755), mine], Identity(REMAP, 1000))
    assert not www.write.allowed and www.write.rule == "other"


def test_the_why_sentence() -> None:
    r = decide([SLASH, _d("/etc", 0o755), _f("/etc/hosts", 0o644)], _root())
    assert r.why.startswith("container uid 0 may read but not write or execute /etc/hosts: "
                            "the owner, host uid 0, is outside the map")
    blocked = decide([SLASH, _d("/root", 0o700), _f("/root/x", 0o644)], Identity(REMAP, 33))
    assert blocked.why.startswith("container uid 33 cannot reach /root/x: /root cannot be "
                                  "searched")
    assert blocked.read.rule == blocked.write.rule == "search"


def _acl(*entries: tuple[int, int, int | None]) -> PosixACL:
    return PosixACL(tuple(ACLEntry(t, p, i) for t, p, i in entries))


def test_acl_named_user_mask_and_group_rules() -> None:
    who = Identity(REMAP, 1000)  # host 232072
    acl = _acl((1, 6, None), (2, 6, 232072), (4, 4, None), (0x10, 4, None), (0x20, 0, None))
    f = _f("/x", 0o640, 0, 0, acl=acl)
    assert permission(f, who, MAY_READ).rule == "acl-user"
    w = permission(f, who, MAY_WRITE)
    assert not w.allowed and w.rule == "acl-mask"
    # a matching group that refuses means refused, not "other"
    g = _acl((1, 6, None), (4, 0, None), (8, 0, 232072), (0x10, 7, None), (0x20, 4, None))
    v = permission(_f("/y", 0o674, 0, 0, acl=g), who, MAY_READ)
    assert not v.allowed and v.rule == "acl-group"
    # group bits all clear: the kernel skips the ACL and uses the mode
    skip = _acl((1, 6, None), (2, 6, 232072), (4, 0, None), (0x10, 0, None), (0x20, 4, None))
    assert permission(_f("/z", 0o604, 0, 0, acl=skip), who, MAY_READ).rule == "other"


def test_flags_mounts_and_sticky() -> None:
    who = _root(IDENTITY)
    assert permission(_f("/i", 0o666, immutable=True), who, MAY_WRITE).rule == "immutable"
    t = decide([SLASH, _d("/tmp", 0o1777)], Identity(REMAP, 33))
    assert t.delete is not None and t.delete.rule == "sticky" and t.create is not None
    assert t.create.allowed
    ro = decide([SLASH, _f("/r", 0o666, 232072, 232072, readonly="mount")],
                Identity(REMAP, 1000))
    assert ro.write.rule == "read-only" and ro.write.errno == errno.EROFS
    nx = decide([SLASH, _f("/n", 0o755, noexec=True)], who)
    assert nx.exec.rule == "noexec-mount"


def test_identity_defaults_and_errors() -> None:
    assert Identity(REMAP).caps == ALL_CAPS
    assert Identity(REMAP, 5).caps == frozenset() and Identity(REMAP, 5).gid == 5
    assert Identity(REMAP, 0, caps=()).caps == frozenset()
    with pytest.raises(UnmappedIDError):
        Identity(REMAP, 70000)
    with pytest.raises(UnmappedIDError):
        Identity(REMAP, 0, 0, (70000,))
    with pytest.raises(ValueError, match="caps"):
        Identity(REMAP, caps=("CAP_SYS_ADMIN",))
    with pytest.raises(AccessError) as err:
        analyze("/nonexistent-userns-access/x", _root())
    assert err.value.reason == "io" and err.value.errno == errno.ENOENT


def test_to_dict_is_json() -> None:
    r = decide([SLASH, _d("/etc", 0o755)], _root())
    data = json.loads(json.dumps(r.to_dict()))
    assert data["may"] == {"read": True, "write": False, "exec": True}
    assert data["create"] is False and data["delete"] is False
    assert data["components"][-1]["container_uid"] == 65534
    assert data["verdicts"]["write"]["errno"] == "EACCES"


# -- building real trees -----------------------------------------------------------------


def _getflags(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        return int(struct.unpack("<I", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))[:4])[0])
    finally:
        os.close(fd)


def _setflags(path: str, flags: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("<Q", flags))
    finally:
        os.close(fd)


class Tree:
    """A random tree as a list of entries (parents first); build, tear down, rebuild."""

    def __init__(self, base: str, seed: int, size: int = 110, *, acls: bool = True,
                 flags: bool = True) -> None:
        self.base = base
        self.rng = random.Random(seed)
        self.acls, self.flags = acls, flags
        self.entries: list[dict[str, Any]] = []
        self._plan(size)

    def _mode(self, kind: str) -> int:
        rng = self.rng
        if kind == "dir":
            if rng.random() < 0.65:  # searchable by others: keeps most of the tree reachable
                return rng.choice([0o755, 0o751, 0o711, 0o775, 0o777, 0o1777, 0o1733,
                                   0o701, 0o705, 0o1755, 0o717, 0o773, 0o2775, 0o703, 0o007,
                                   0o1713, 0o733])
            if rng.random() < 0.4:
                return rng.randrange(0o1000) | (0o1000 if rng.random() < 0.2 else 0)
            return rng.choice([0o700, 0o750, 0o770, 0o730, 0o070, 0o000, 0o644, 0o1770,
                               0o710, 0o570])
        return rng.randrange(0o1000) | rng.choice([0, 0, 0, 0o4000, 0o2000])

    def _acl(self, mode: int) -> bytes | None:
        rng = self.rng
        if rng.random() > 0.35 or not self.acls:
            return None
        users = sorted(rng.sample(OWNERS, rng.randrange(3)))
        groups = sorted(rng.sample(OWNERS, rng.randrange(3)))
        entries = [ACLEntry(0x01, mode >> 6 & 7)]
        entries += [ACLEntry(0x02, rng.randrange(8), u) for u in users]
        entries.append(ACLEntry(0x04, rng.randrange(8)))
        entries += [ACLEntry(0x08, rng.randrange(8), g) for g in groups]
        if users or groups or rng.random() < 0.5:
            entries.append(ACLEntry(0x10, rng.choice([7, rng.randrange(8)])))
        entries.append(ACLEntry(0x20, mode & 7))
        return format_acl(PosixACL(tuple(entries)))

    def _plan(self, size: int) -> None:
        rng = self.rng
        dirs = [""]
        files: list[str] = []
        self.entries.append(self._entry("", "dir", 0o755, 0, 0, None, 0))
        n = 0
        while len(self.entries) < size:
            parent = rng.choice(dirs)
            if parent.count("/") >= 4:
                continue
            n += 1
            rel = f"{parent}/{'d' if rng.random() < 0.4 else 'f'}{n}"
            kind = "dir" if rel.rsplit("/", 1)[1].startswith("d") else "file"
            if rng.random() < 0.05 and len(dirs) + len(files) > 3:
                kind = "link"
            mode = self._mode(kind)
            flags = rng.choice([_IMMUTABLE, _APPEND]) if rng.random() < 0.08 else 0
            flags = flags if self.flags else 0
            target = None
            if kind == "link":
                target = os.path.relpath("/R" + rng.choice(dirs[1:] + files), "/R" + parent)
                flags = 0
            self.entries.append(self._entry(rel, kind, mode, rng.choice(OWNERS),
                                             rng.choice(OWNERS),
                                             None if kind == "link" else self._acl(mode),
                                             flags, target))
            (dirs if kind == "dir" else files).append(rel)

    @staticmethod
    def _entry(rel: str, kind: str, mode: int, uid: int, gid: int, acl: bytes | None,
               flags: int, target: str | None = None) -> dict[str, Any]:
        return {"rel": rel, "kind": kind, "mode": mode, "uid": uid, "gid": gid, "acl": acl,
                "flags": flags, "target": target}

    def path(self, e: dict[str, Any]) -> str:
        return f"{self.base}{e['rel']}"

    def build(self, *, keep_root: bool = False) -> None:
        if not keep_root:
            os.mkdir(self.base, 0o700)
        for e in self.entries:
            p = self.path(e)
            if e["kind"] == "dir" and e["rel"]:
                os.mkdir(p, 0o700)
            elif e["kind"] == "file":
                with open(p, "w") as f:
                    f.write("#!/bin/sh\n")
            elif e["kind"] == "link":
                os.symlink(e["target"], p)
            os.lchown(p, e["uid"], e["gid"])
            if e["kind"] != "link":
                os.chmod(p, e["mode"])
                if e["acl"] is not None:
                    os.setxattr(p, ACL_ACCESS, e["acl"])
        for e in reversed(self.entries):  # flags last: an immutable directory takes no child
            if e["flags"]:
                _setflags(self.path(e), _getflags(self.path(e)) | e["flags"])

    def teardown(self) -> None:
        self.teardown_flags()
        shutil.rmtree(self.base)

    def rebuild_inside(self) -> None:
        """Rebuild everything but the root directory (a mount's source stays mounted)."""
        self.teardown_flags()
        for name in os.listdir(self.base):
            p = os.path.join(self.base, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
        self.build(keep_root=True)

    def teardown_flags(self) -> None:
        for dirpath, dirnames, filenames in os.walk(self.base):
            for name in [*dirnames, *filenames, None]:
                p = dirpath if name is None else os.path.join(dirpath, name)
                if os.path.islink(p):
                    continue
                with contextlib.suppress(OSError):
                    flags = _getflags(p)
                    if flags & (_IMMUTABLE | _APPEND):
                        _setflags(p, flags & ~(_IMMUTABLE | _APPEND))

    def snapshot(self) -> list[tuple[Any, ...]]:
        out = []
        for e in self.entries:
            st = os.lstat(self.path(e))
            try:
                acl = os.getxattr(self.path(e), ACL_ACCESS, follow_symlinks=False)
            except OSError:
                acl = b""
            out.append((e["rel"], st.st_mode, st.st_uid, st.st_gid, acl))
        return out


# -- asking the kernel -------------------------------------------------------------------

PROBE = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
spec = json.load(open(sys.argv[1]))
os.setgroups(spec["groups"])
os.setresgid(spec["gid"], spec["gid"], spec["gid"])
os.setresuid(spec["uid"], spec["uid"], spec["uid"])
def acc(p, m):
    return 0 if libc.faccessat(-100, p.encode(), m, 0x200) == 0 else ctypes.get_errno()
def call(f, p):
    try:
        f(p)
        return 0
    except OSError as e:
        return e.errno
out = {}
for p, isdir in spec["paths"]:
    r = [acc(p, 4), acc(p, 2), acc(p, 1), None, None]
    if isdir:
        q = os.path.join(p, ".probe")
        r[3] = call(os.mkdir, q)
        if r[3] == 0:
            call(os.rmdir, q)
    out[p] = r
for p, isdir in spec["victims"]:
    e = call(os.rmdir if isdir else os.unlink, p)
    out[p][4] = 0 if e in (39, 17) else e   # ENOTEMPTY/EEXIST: permission passed
json.dump(out, sys.stdout)
"""


def kernel_answers(work: str, pair: IDMapPair, ident: tuple[int, int, tuple[int, ...]],
                   paths: list[str], victims: list[str],
                   same: dict[str, str] | None = None) -> dict[str, list[int | None]]:
    """Ask the kernel, from inside a user namespace with ``pair``, as ``ident``.

    ``same`` maps a path to the one to look at for its type (its on-disk source)."""
    uid, gid, groups = ident
    src = same or {}
    spec_path = os.path.join(work, "spec.json")
    spec = {"uid": uid, "gid": gid, "groups": list(groups),
            "paths": [[p, os.path.isdir(src.get(p, p))] for p in paths],
            "victims": [[p, os.path.isdir(src.get(p, p)) and not os.path.islink(src.get(p, p))]
                        for p in sorted(victims, key=lambda p: -p.count("/"))]}
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    os.chmod(spec_path, 0o644)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code = run_in_userns([PYTHON, "-c", PROBE, spec_path], pair, uid=0, gid=0,
                             stdout=out.fileno(), stderr=err.fileno(), cwd="/")
        out.seek(0)
        err.seek(0)
        assert code == 0, err.read().decode()
        result: dict[str, list[int | None]] = json.load(out)
        return result


def _errno_of(v: Any) -> int:
    return 0 if v.allowed else v.errno


class Tally:
    def __init__(self) -> None:
        self.triples = 0
        self.checks = 0
        self.allowed = 0
        self.rules: dict[str, int] = {}
        self.disagreements: list[str] = []

    def compare(self, res: AccessResult, kern: list[int | None], where: str) -> None:
        self.triples += 1
        pairs: list[tuple[str, Any, int | None]] = [
            ("read", res.read, kern[0]), ("write", res.write, kern[1]),
            ("exec", res.exec, kern[2])]
        if kern[3] is not None:
            pairs.append(("create", res.create, kern[3]))
        if kern[4] is not None:
            pairs.append(("unlink", res.unlink, kern[4]))
        for what, v, k in pairs:
            self.checks += 1
            if v is None:
                self.disagreements.append(f"{where} {what}: model has no verdict, kernel {k}")
                continue
            self.allowed += v.allowed
            self.rules[v.rule] = self.rules.get(v.rule, 0) + 1
            if _errno_of(v) != k:
                self.disagreements.append(
                    f"{where} {what}: model {v.allowed} {v.rule} "
                    f"{errno.errorcode.get(_errno_of(v), 0)} ({v.detail}); kernel "
                    f"{errno.errorcode.get(k or 0, k)}")

    def report(self, name: str) -> str:
        return (f"{name}: {self.triples} (path, map, identity) triples, {self.checks} "
                f"checks ({self.allowed} allowed), {len(self.disagreements)} disagreements; "
                f"rules {dict(sorted(self.rules.items()))}")


def run_differential(tree: Tree, tally: Tally, maps: dict[str, IDMapPair],
                     idents: list[tuple[int, int, tuple[int, ...]]],
                     *, rebuild: Callable[[], None] | None = None,
                     model: Tree | None = None, **walk_kw: Any) -> None:
    """The kernel asked about ``tree``'s paths; the model reads ``model``'s (the on-disk
    source of an idmapped ``tree``, say), entry for entry."""
    paths = [tree.path(e) for e in tree.entries]
    read_from = model or tree
    walks = {tree.path(e): walk(read_from.path(e), **walk_kw) for e in tree.entries}
    same = {tree.path(e): read_from.path(e) for e in tree.entries}
    before = read_from.snapshot()
    for mname, pair in maps.items():
        for ident in idents:
            kern = kernel_answers(os.path.dirname(tree.base), pair, ident, paths, paths, same)
            who = Identity(pair, ident[0], ident[1], ident[2])
            for p in paths:
                tally.compare(decide_walk(walks[p], who), kern[p], f"[{mname} {ident}] {p}")
            # put back what the kernel was allowed to remove
            if rebuild is not None:
                rebuild()
            else:
                tree.teardown()
                tree.build()
            assert read_from.snapshot() == before


@contextlib.contextmanager
def shared_base() -> Iterator[str]:
    """A 0755 directory under /tmp every mapped user can reach."""
    d = tempfile.mkdtemp(prefix="userns-access-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        for sub in os.listdir(d):
            p = os.path.join(d, sub)
            if os.path.isdir(p) and not os.path.islink(p):
                _teardown_any(p)
        shutil.rmtree(d, ignore_errors=True)


def _teardown_any(p: str) -> None:
    t = Tree.__new__(Tree)
    t.base = p
    with contextlib.suppress(OSError):
        t.teardown()


def _support(where: str) -> tuple[bool, bool]:
    """Whether the filesystem under ``where`` takes access ACLs and FS_IOC_SETFLAGS."""
    probe = os.path.join(where, "probe")
    with open(probe, "w"):
        pass
    try:
        try:
            os.setxattr(probe, ACL_ACCESS, format_acl(PosixACL((
                ACLEntry(0x01, 6), ACLEntry(0x02, 4, 33), ACLEntry(0x04, 4),
                ACLEntry(0x10, 4), ACLEntry(0x20, 4)))))
            acls = True
        except OSError:
            acls = False
        try:
            _setflags(probe, _getflags(probe) | _APPEND)
            _setflags(probe, _getflags(probe) & ~_APPEND)
            flags = True
        except OSError:
            flags = False
    finally:
        os.unlink(probe)
    return acls, flags


# -- the seeds and the differential against the kernel -----------------------------------


@pytest.mark.kernel
@needs_userns
@needs_root
def test_seeds_on_a_real_tree_agree_with_the_kernel() -> None:
    with shared_base() as base:
        etc = os.path.join(base, "etc")
        os.mkdir(etc, 0o755)
        hosts = os.path.join(etc, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n")
        os.chmod(hosts, 0o644)
        mine = os.path.join(base, "mine")
        with open(mine, "w") as f:
            f.write("")
        os.chown(mine, 231105, 231105)
        os.chmod(mine, 0o000)
        paths = [etc, hosts, mine]
        for pair, expect in ((REMAP, False), (IDENTITY, True)):
            got = {p: analyze(p, Identity(pair)) for p in paths}
            assert got[hosts].read.allowed
            assert got[hosts].write.allowed is expect
            create, delete = got[etc].create, got[etc].delete
            assert create is not None and create.allowed is expect
            assert delete is not None and delete.allowed is expect
            assert got[mine].write.allowed and got[mine].write.rule == CAP_DAC_OVERRIDE
            kern = kernel_answers(base, pair, (0, 0, ()), paths, [])
            tally = Tally()
            for p in paths:
                tally.compare(got[p], kern[p], p)
            assert not tally.disagreements, "\n".join(tally.disagreements)


@pytest.mark.kernel
@pytest.mark.slow
@needs_userns
@needs_root
def test_random_trees_agree_with_the_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    trees = int(os.environ.get("USERNS_ACCESS_TREES", "2"))
    tally = Tally()
    with shared_base() as base:
        acls, flags = _support(base)
        for seed in range(trees):
            tree = Tree(os.path.join(base, f"t{seed}"), seed, acls=acls, flags=flags)
            tree.build()
            try:
                run_differential(tree, tally, MAPS, IDENTITIES)
            finally:
                tree.teardown()
    with capsys.disabled():
        print("\n" + tally.report("access differential"))
    assert tally.triples >= 1000 * trees
    assert not tally.disagreements, "\n".join(tally.disagreements[:40])
    # the trees exercise the rules that matter (else the test proves little); where /tmp
    # takes no ACL or flags (tmpfs built without them) those rules are not asked for
    expected = ["owner", "group", "other", CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH",
                "search", "sticky", "no-exec-bit"]
    expected += ["acl-user", "acl-group", "acl-mask"] if acls else []
    expected += ["immutable", "append-only"] if flags else []
    for rule in expected:
        assert tally.rules.get(rule, 0) > 0, rule
    print(f"(ACLs {'on' if acls else 'OFF'}, flags {'on' if flags else 'OFF'})")


# -- in a private mount namespace: read-only/noexec, idmapped ---------------------------


in_private_mountns = private_mountns()


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, capture_output=True)


@in_private_mountns
def _readonly_body() -> None:
    tally = Tally()
    with shared_base() as base:
        acls, flags = _support(base)
        src = Tree(os.path.join(base, "src"), 7, size=60, acls=acls, flags=flags)
        src.build()
        view = os.path.join(base, "view")
        os.mkdir(view, 0o755)
        _mount("--bind", src.base, view)
        _mount("-o", "remount,bind,ro,noexec", view)
        shown = Tree.__new__(Tree)
        shown.__dict__.update(base=view, entries=src.entries)
        try:
            run_differential(shown, tally, MAPS, [(0, 0, ()), (1000, 33, (0, 100))],
                             rebuild=lambda: None)
        finally:
            subprocess.run(["umount", "-l", view], check=False)
            src.teardown()
    assert tally.rules.get("read-only", 0) > 0 and tally.rules.get("noexec-mount", 0) > 0
    assert not tally.disagreements, "\n".join(tally.disagreements[:40])
    os.write(1, (tally.report("read-only noexec bind mount") + "\n").encode())


@pytest.mark.kernel
@needs_userns
@needs_root
def test_readonly_noexec_mount_agrees_with_the_kernel() -> None:
    _readonly_body()


@in_private_mountns
def _idmapped_body() -> None:
    from userns.errors import MountError
    from userns.mount import idmapped_mount

    on_mount = IDMapPair.both(IDMap.single(0, 231072, 65536))
    tally = Tally()
    with shared_base() as base:
        acls, flags = _support(base)
        src = Tree(os.path.join(base, "src"), 11, size=70, acls=acls, flags=flags)
        src.build()
        view = os.path.join(base, "view")
        os.mkdir(view, 0o755)
        try:
            idmapped_mount(src.base, view, on_mount)
        except MountError as e:
            src.teardown()
            pytest.skip(f"no idmapped mount of {src.base}: {e}")
        shown = Tree.__new__(Tree)
        shown.__dict__.update(base=view, entries=src.entries)
        try:
            # read through the mount: on-disk IDs come back with the mount's maps
            if kernel_at_least(6, 15):  # statmount reports a mount's maps from 6.15
                top = walk(view).components[-1]
                assert top.mount_map == on_mount and top.mount_point
                assert (top.uid, top.seen_uid) == (0, 231072)
            # the model reads the on-disk source with the map; the kernel goes through it
            run_differential(shown, tally, MAPS, [(0, 0, ()), (33, 33, ()),
                                                  (1000, 33, (0, 100))],
                             rebuild=src.rebuild_inside, model=src, mount_map=on_mount,
                             mount_at=src.base)
        finally:
            subprocess.run(["umount", "-l", view], check=False)
            src.teardown()
    for rule in ("unmapped-owner", "unmapped-caller"):
        assert tally.rules.get(rule, 0) > 0, rule
    assert not tally.disagreements, "\n".join(tally.disagreements[:40])
    os.write(1, (tally.report("idmapped mount") + "\n").encode())


@pytest.mark.kernel
@needs_userns
@needs_root
def test_idmapped_mount_agrees_with_the_kernel() -> None:
    _idmapped_body()


# -- the CLI -----------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from userns.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "access", "/etc", "/", "-m", "0 231072 65536", "--json")
    assert code == 0
    doc = json.loads(out)
    assert [r["path"] for r in doc["results"]] == ["/etc", "/"]
    etc = doc["results"][0]
    assert set(etc["may"]) == {"read", "write", "exec"}
    assert isinstance(etc["create"], bool) and isinstance(etc["delete"], bool)
    assert [c["path"] for c in etc["components"]] == ["/", "/etc"]
    assert etc["why"].startswith("container uid 0 may ")
    assert doc["identity"]["host_uid"] == 231072


def test_cli_text_and_file_verdicts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o640)
    code, out, _ = _cli(capsys, "access", str(f), "-m", "0 0 4294967295", "--uid", "33",
                        "--gid", "33", "--groups", "0,100")
    assert code == 0
    assert "container uid 33 (gid 33, groups 0,100) = host uid 33" in out
    assert "capabilities: none" in out
    row = next(line for line in out.splitlines() if line.startswith("  " + str(f)))
    assert "0640" in row and "read" in row
    code, out, _ = _cli(capsys, "access", str(f), "-m", "0 0 4294967295", "--json")
    r = json.loads(out)["results"][0]
    assert r["create"] is None and r["delete"] is None


def test_cli_user_from_a_root(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "subuid").write_text("dockremap:231072:65536\n")
    (etc / "subgid").write_text("dockremap:231072:65536\n")
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\ndockremap:x:999:999::/:/bin/false\n")
    (etc / "group").write_text("root:x:0:\ndockremap:x:999:\n")
    code, out, _ = _cli(capsys, "access", "/", "--user", "dockremap", "--root", str(tmp_path),
                        "--json")
    assert code == 0
    assert json.loads(out)["uid_map"] == [[0, 231072, 65536]]


@pytest.mark.parametrize("argv", [
    ["access", "/", "--json"],                                          # no map
    ["access", "/", "-m", "0 0 1", "--user", "x", "--json"],            # both
    ["access", "/", "-m", "0 0 1", "--groups", "a", "--json"],          # bad group
])
def test_cli_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = _cli(capsys, *argv)
    assert code == 2 and json.loads(out)["error"]["reason"] == "usage"


def test_cli_errors_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "access", "/nonexistent-userns/x", "-m", "0 0 1", "--json")
    assert code == 1 and json.loads(out)["error"]["reason"] == "io"
    code, out, _ = _cli(capsys, "access", "/", "-m", "0 231072 65536", "--uid", "70000",
                        "--json")
    assert code == 1 and json.loads(out)["error"]["reason"] == "unmapped"


# -- the docs ----------------------------------------------------------------------------


def test_howto_examples_run() -> None:
    """docs/howto/why-nobody.md: its pycon examples run as written."""
    import doctest
    import re

    page = Path(__file__).resolve().parent.parent / "docs" / "howto" / "why-nobody.md"
    blocks = re.findall(r"^```pycon\n(.*?)^```$", page.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 4
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner()
    globs: dict[str, object] = {}
    for i, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, globs, f"why-nobody.md[{i}]", str(page), 0)
        report: list[str] = []
        result = runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs
        assert result.failed == 0, "".join(report)


@in_private_mountns
def _howto_output_body() -> None:
    import io
    import re

    from userns.cli import main

    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/srv")
    os.mkdir("/srv/data", 0o755)
    os.chown("/srv/data", 1000, 1000)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["access", "/srv/data", "-m", "0 231072 65536"]) == 0
    page = Path(__file__).resolve().parent.parent / "docs" / "howto" / "why-nobody.md"
    shown = re.search(r"^```text\n(.*?)^```$", page.read_text(), re.MULTILINE | re.DOTALL)
    assert shown is not None
    assert buf.getvalue() == shown[1]


@needs_root
@pytest.mark.skipif(not os.path.isdir("/srv"), reason="no /srv to mount a tmpfs over")
def test_howto_output_is_the_real_output() -> None:
    """The how-to's text block is what ``userns access`` prints (on a private tmpfs /srv)."""
    _howto_output_body()
