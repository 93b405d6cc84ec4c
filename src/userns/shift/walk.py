"""The fd-relative tree walker that examines and changes inodes (the I/O half of a shift).

Every directory is opened with ``O_NOFOLLOW | O_DIRECTORY | O_NONBLOCK`` relative to an
already verified parent descriptor and checked against the ``(st_dev, st_ino)`` its
parent's listing gave (the ``shutil.rmtree`` stat/open/samestat pattern), so a name
swapped for a symlink or another directory mid-walk cannot lead outside the tree. Every
other operation is one name relative to a verified directory descriptor, never following
a symlink: ``fstatat(AT_SYMLINK_NOFOLLOW)``, ``listxattrat(AT_SYMLINK_NOFOLLOW)`` and
``fchownat(AT_SYMLINK_NOFOLLOW)``, three system calls for a plain file (a worker process,
which owns its working directory, moves it into each directory it lists and calls
``llistxattr`` on the bare name instead: the same lookup, one ``fchdir`` per directory,
and a third less CPU per file than ``listxattrat`` through ``ctypes``). Inodes with a
setuid/setgid mode, a capability or an ACL are changed through an ``O_PATH`` descriptor
verified the same way. The walk keeps an explicit stack and a bounded cache of directory
descriptors (re-opened and re-verified from the nearest open ancestor when evicted), so
neither depth nor width is limited by recursion or by the open-file limit.

Several walkers (processes) can shift one tree together, in one of two ways:

- by subtree (``share``, a :class:`WorkShare`): each directory is listed and its entries
  examined by exactly one walker; a walker with nothing left takes directories another
  one gives away (the bottom half of its stack, the largest subtrees). The names of the
  hard-linked inodes are pooled after the walk and each such inode is examined by one
  walker. Used when translating an ID twice is harmless.
- by inode number (``part``/``parts``): every walker lists every directory and examines
  the inodes whose number is its share, so that an inode is always examined by the same
  walker, which keeps every inode it has seen. Used when the maps' two sides overlap (a
  second translation would change an ID again).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     w = Walker.for_audit(d)
...     w.run_audit()
...     w.close()
>>> w.entries
1
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import resource
import stat as stat_mod
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

from .journal import (
    ACL_ACCESS_CODE,
    ACL_DEFAULT_CODE,
    CAPABILITY_CODE,
    NO_MODE,
    XATTR_NAMES,
    JournalWriter,
    Record,
)
from .report import PathError
from .translate import IDTranslator
from .xattrs import (
    ACL_ACCESS,
    ACL_DEFAULT,
    CAPABILITY,
    XattrFormatError,
    parse_acl,
    parse_capability,
    shift_acl,
    shift_capability,
)

__all__ = ["DIR_FLAGS", "INODE_MISMATCH", "AuditHeld", "Counted", "DirTable", "Held", "LinkShare",
           "MoreNames", "Node", "Pooled", "Sent", "SentPlan", "Tabler", "Walker", "WorkShare",
           "XattrIDs", "open_root", "own_cwd", "progress_marks", "resolve"]

DIR_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_AT_SYMLINK_NOFOLLOW = 0x100
_SETID = stat_mod.S_ISUID | stat_mod.S_ISGID
_S_IFMT = 0o170000
_S_IFDIR = stat_mod.S_IFDIR
_S_IFLNK = stat_mod.S_IFLNK
_S_IFREG = stat_mod.S_IFREG
#: Directory descriptors kept open at once (far below any open-file limit).
FD_CACHE = 48
#: Pending changes per journal frame in streaming mode.
BATCH = 4096
#: ``PathError.reason`` of an entry whose ``d_ino`` is not its ``st_ino``.
INODE_MISMATCH = "inode-mismatch"
#: Progress callback period, in inodes.
PROGRESS_EVERY = 4096

_CAP_B = CAPABILITY.encode() + b"\0"
_ACCESS_B = ACL_ACCESS.encode() + b"\0"
_DEFAULT_B = ACL_DEFAULT.encode() + b"\0"


def progress_marks(before: int, after: int) -> range:
    """The multiples of :data:`PROGRESS_EVERY` a count passes going from ``before`` to
    ``after`` (``after`` included): where a walk reports its progress.

    >>> list(progress_marks(4000, 8192)), list(progress_marks(4096, 5000))
    ([4096, 8192], [])
    """
    return range(before - before % PROGRESS_EVERY + PROGRESS_EVERY, after + 1, PROGRESS_EVERY)


def _translated(names: bytes) -> bool:
    """Whether extended attribute names (as ``listxattrat`` gives them) include one a
    shift translates: a capability or an ACL. (The per-file examine, the walk's hottest
    code, spells this test out inline.)"""
    return _CAP_B in names or _ACCESS_B in names or _DEFAULT_B in names


_UNSUPPORTED = (errno_mod.ENOTSUP, errno_mod.EOPNOTSUPP)


def _listed(target: int | str) -> bytes:
    """The extended attribute names of ``target`` (a descriptor, or a path whose last
    component, a symlink, is not followed) as ``listxattrat`` gives them: each ending in
    a NUL, ``b""`` when none or where the filesystem has none; other errors raise."""
    try:
        if isinstance(target, int):
            got = os.listxattr(target)
        else:
            got = os.listxattr(target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return b""
        raise
    return b"".join(os.fsencode(n) + b"\0" for n in got)


class _ListXattrAt:
    """``listxattrat(dirfd, name, AT_SYMLINK_NOFOLLOW)`` (Linux 6.13), else ``llistxattr``
    through ``/proc/self/fd/DIRFD/NAME``: one system call either way, no symlink followed.

    :attr:`at` takes the name as bytes and is the walk's hottest call: a closure over
    its buffers, so a call costs no attribute look-ups. It returns the names, each
    ending in a NUL, ``b""`` where the filesystem has no extended attributes, and raises
    ``OSError`` otherwise."""

    def __init__(self) -> None:
        # The kernel allocates a buffer of the size asked for on every call: ask for a
        # small one (enough for our three names and a security label), and only on
        # ERANGE for the largest list (XATTR_LIST_MAX).
        size = ctypes.c_size_t(256)
        buf = ctypes.create_string_buffer(256)
        big_size = ctypes.c_size_t(65536)
        big_buf = ctypes.create_string_buffer(65536)
        nr = ctypes.c_long(465)
        flags = ctypes.c_uint(_AT_SYMLINK_NOFOLLOW)
        get_errno = ctypes.get_errno
        unsupported = _UNSUPPORTED
        erange = errno_mod.ERANGE
        sc: Any = None
        if os.uname().machine in ("x86_64", "aarch64"):
            libc = ctypes.CDLL(None, use_errno=True)
            sc = libc.syscall
            sc.restype = ctypes.c_long
            fd = os.open("/", DIR_FLAGS)
            try:
                if sc(nr, ctypes.c_int(fd), b".", flags, buf, size) < 0:
                    sc = None
            finally:
                os.close(fd)

        def at(dirfd: int, name: bytes) -> bytes:
            n = sc(nr, dirfd, name, flags, buf, size)
            if n > 0:
                return buf.raw[:n]  # (the kernel ends every name with a NUL)
            if n == 0:
                return b""
            err = get_errno()
            if err == erange:
                n = sc(nr, dirfd, name, flags, big_buf, big_size)
                if n >= 0:
                    return big_buf.raw[:n] if n else b""
                err = get_errno()
            if err in unsupported:
                return b""
            raise OSError(err, os.strerror(err), os.fsdecode(name))

        def through_proc(dirfd: int, name: bytes) -> bytes:
            return _listed(f"/proc/self/fd/{dirfd}/{os.fsdecode(name)}")

        self.at: Callable[[int, bytes], bytes] = at if sc is not None else through_proc

    def __call__(self, dirfd: int, name: str) -> bytes:
        return self.at(dirfd, os.fsencode(name))


_listxattrat: _ListXattrAt | None = None


def _lister() -> _ListXattrAt:
    global _listxattrat
    if _listxattrat is None:
        _listxattrat = _ListXattrAt()
    return _listxattrat


#: Whether this process's walkers may move its working directory (see :func:`own_cwd`).
_own_cwd = False


def own_cwd() -> None:
    """Let the walkers of this process move its working directory into each directory
    they list, to list extended attributes by bare names (``os.listxattr``, no
    ``ctypes``). Only for a worker process: the working directory is the process's."""
    global _own_cwd
    _own_cwd = True


class _Names:
    """The extended attribute names of directory entries, for the hot loops.

    ``names(dirfd, name)`` returns them as ``listxattrat`` gives them (each ending in a
    NUL, ``b""`` when none), never following a symlink. In a process that owns its
    working directory (:func:`own_cwd`) the caller first calls :meth:`enter` with the
    descriptor of each directory whose entries it looks at, and the bare name is listed
    there (``llistxattr``); a descriptor other than the one entered last falls back to
    ``listxattrat``. Elsewhere (a walk in the caller's process) it is ``listxattrat``."""

    def __init__(self) -> None:
        at = _lister().at
        fsenc = sys.getfilesystemencoding()
        self.here = -1
        unsupported = _UNSUPPORTED
        listxattr = os.listxattr

        def by_at(dirfd: int, name: str) -> bytes:
            return at(dirfd, name.encode(fsenc, "surrogateescape"))

        def by_cwd(dirfd: int, name: str) -> bytes:
            if dirfd != self.here:
                return by_at(dirfd, name)
            try:
                got = listxattr(name, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in unsupported:
                    return b""
                raise
            if not got:
                return b""
            return "\0".join(got).encode(fsenc, "surrogateescape") + b"\0"

        self.cwd = _own_cwd
        self.names: Callable[[int, str], bytes] = by_cwd if self.cwd else by_at

    def forget(self, dirfd: int) -> None:
        """``dirfd`` is being closed: its number, once reused, names another directory
        than the working directory (until :meth:`enter` again)."""
        if dirfd == self.here:
            self.here = -1

    def scandir(self, dirfd: int) -> os._ScandirIterator[str]:
        """``os.scandir`` of the directory open as ``dirfd``: of ``"."`` when it is the
        working directory (entered last), which spares the three system calls of a
        listing through a descriptor (``dup``, its flags, the rewind before closing);
        the entries' ``stat`` then goes by their name in the working directory, the
        same directory, which the walk does not leave while it looks at them."""
        if dirfd == self.here:
            return os.scandir(".")
        return os.scandir(dirfd)

    def enter(self, dirfd: int) -> None:
        """The walk is about to look at the entries of the directory open as ``dirfd``.
        A directory that can be listed but not searched (no ``x`` for this process)
        cannot be moved into: its entries are then listed through ``listxattrat``,
        which reports their errors as any walk does."""
        if self.cwd:
            try:
                os.fchdir(dirfd)
            except OSError:
                self.here = -1
                return
            self.here = dirfd


def _reader(target: int | str) -> Callable[[str], bytes | None]:
    """``read(attr)``: the value of the extended attribute ``attr`` of ``target`` (a
    directory descriptor, or the ``/proc/self/fd/DIRFD/NAME`` path of an entry of a
    verified directory, a symlink not followed), ``None`` when it has none; an error
    names the attribute it was reading (the walk's error line then says which)."""
    def read(attr: str) -> bytes | None:
        try:
            if isinstance(target, int):
                return os.getxattr(target, attr)
            return os.getxattr(target, attr, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno_mod.ENODATA:
                return None
            raise OSError(exc.errno, f"{exc.strerror} (reading {attr})") from exc

    return read


class _Changed(Exception):
    """A directory is no longer the inode its parent's listing named."""


class Node:
    """A directory of the walk: its parent, its name there, its ``(st_dev, st_ino)``."""

    __slots__ = ("dev", "fd", "ino", "name", "parent", "rel")

    def __init__(self, parent: Node | None, name: str, dev: int, ino: int, fd: int = -1) -> None:
        self.parent = parent
        self.name = name
        self.dev = dev
        self.ino = ino
        self.fd = fd
        #: the path from the root of the walk ("" for the root), once asked for: kept, as
        #: the paths asked for are mostly of entries of a few directories
        self.rel: str | None = None if parent is not None else ""

    def relpath(self, name: str | None = None) -> str:
        """The path from the root of the walk (``.`` for the root itself)."""
        rel = self.rel
        if rel is None:
            up: list[Node] = []
            node: Node = self
            while node.rel is None:
                up.append(node)
                assert node.parent is not None  # (the root's is "")
                node = node.parent
            rel = node.rel
            for node in reversed(up):
                rel = node.rel = f"{rel}/{node.name}" if rel else node.name
        if name is None:
            return rel or "."
        return f"{rel}/{name}" if rel else name


#: Directories as the walkers that share a tree name them to each other: ``(parent's
#: index, name, st_dev, st_ino)`` each, every one after its parent; index 0 is the root
#: (its parent -1). One table serves a batch, so a common ancestor is named once.
DirTable = list[tuple[int, str, int, int]]
#: A directory handed to another walker: a table and the directory's index in it.
Sent = tuple[DirTable, int]
#: The names of one hard-linked inode a walker found: ``((st_dev, st_ino), link count,
#: [(index of the directory in its table, name), ...])``.
Held = tuple[tuple[int, int], int, list[tuple[int, str]]]
#: One hard-linked inode an audit found: ``((st_dev, st_ino), names found, link count,
#: uid, gid, path of the first name)``.
AuditHeld = tuple[tuple[int, int], int, int, int, int, str, "XattrIDs"]
#: An audit's example of an owner: a path, or the directory and the name (``None``: the
#: directory itself) it is made from when kept.
Example = str | tuple[Node, str | None]
#: The IDs one inode's ACLs and capability name: ``(kind, id)`` pairs, ``kind`` being
#: ``acl-uid``, ``acl-gid`` or ``cap-rootid``, each pair once.
XattrIDs = tuple[tuple[str, int], ...]
#: One hard-linked inode, pooled: ``((st_dev, st_ino), link count, [(walker, index of the
#: directory in that walker's table, name), ...])``.
Pooled = tuple[tuple[int, int], int, list[tuple[int, int, str]]]
#: A hard-linked inode a walker found right when first seen (nothing is written to it),
#: pooled by its count of names alone: ``((st_dev, st_ino), link count, names found)``.
Counted = tuple[tuple[int, int], int, int]
#: ``more(keys)``: a walker's pooled hard links again, with the settled inodes ``keys``
#: held by their names (another walker found them not right): ``(table, held, counted)``.
MoreNames = Callable[[list[tuple[int, int]]], tuple[DirTable, list[Held], list[Counted]]]


# A plan as walkers hand it to each other: its directory as a table and an index.
SentPlan = tuple[DirTable, int, Record | None, list[tuple[str, int, int]],
                 list[tuple[str, int, int, Record]]]


class Tabler:
    """Names directories to other walkers in one :data:`DirTable` (each directory once,
    however many times it is asked for: a tree 10,000 levels deep costs a table of 10,000
    entries, not 10,000 paths of 10,000 names)."""

    def __init__(self, root: Node) -> None:
        self.index: dict[Node, int] = {root: 0}
        self.nodes = [root]
        self.table: DirTable = [(-1, "", root.dev, root.ino)]

    def at(self, node: Node) -> int:
        """The index of ``node`` (and of its ancestors, added first)."""
        i = self.index.get(node)
        if i is not None:
            return i
        up = []
        n: Node | None = node
        while n is not None and n not in self.index:
            up.append(n)
            n = n.parent
        assert n is not None, "every node descends from the root"
        i = self.index[n]
        for n in reversed(up):
            assert n is not None
            self.table.append((i, n.name, n.dev, n.ino))
            self.nodes.append(n)
            i = self.index[n] = len(self.nodes) - 1
        return i


def resolve(table: DirTable | None, known: list[Node | None], i: int) -> Node:
    """The node of entry ``i`` of another walker's ``table``; ``known`` holds the nodes
    made so far by index (the root at 0), and gets the new ones."""
    up = []
    while (n := known[i]) is None:
        assert table is not None
        up.append(i)
        i = table[i][0]
    for k in reversed(up):
        assert table is not None
        _, name, dev, ino = table[k]
        n = known[k] = Node(n, name, dev, ino)
    return n


class WorkShare(Protocol):
    """How walkers that split a tree by subtree hand work to each other (a walker's side
    of it: the coordinator keeps the pool)."""

    def hungry(self) -> bool:
        """Whether another walker waits for directories (cheap: asked per directory)."""

    def give(self, dirs: list[Sent]) -> None:
        """Hand directories not yet entered to the pool."""

    def take(self) -> list[Sent] | None:
        """Block until the pool has directories for this walker (they are returned), or
        every walker waits and the pool is empty (``None``: the walk is over)."""

    def give_plans(self, plans: list[SentPlan]) -> None:
        """Hand planned changes not yet made to the pool (after the walk)."""

    def take_plans(self) -> list[SentPlan] | None:
        """As :meth:`take`, for planned changes."""

    def pool_links(self, table: DirTable, held: list[Held], counted: list[Counted],
                   walked: bool, more: MoreNames) -> LinkShare:
        """Pool the hard-linked inodes' names every walker found (``held``, and the
        settled ones by their count of names, ``counted``); block until all have;
        return this walker's share of them. A settled inode another walker found not
        right (it changed between their looks) is asked for by its names: ``more``
        gives them. ``walked``: this walker walked all it was
        given (when one did not, no inode is said to have fewer names than links: the
        others were not looked for)."""


class LinkShare(NamedTuple):
    """A walker's share of the pooled hard-linked inodes (see :meth:`WorkShare.pool_links`)."""

    #: every walker's table of directories (``None``: the receiver's own; an unneeded
    #: one holds the root alone)
    tables: list[DirTable | None]
    #: inodes several walkers found names of, all their names found
    full: list[Pooled]
    #: the same with fewer names found than links, each with the number found
    partial: list[tuple[Pooled, int]]
    #: inodes only the receiver found: by key, all names found / fewer than links
    mine_full: list[tuple[int, int]]
    mine_partial: list[tuple[int, int]]
    #: settled inodes (see :data:`Counted`) the receiver found a name of, with fewer
    #: names found by all than links, each with the number found: every walker that
    #: found one reports its smallest name, the smallest of all is kept
    settled_partial: list[tuple[tuple[int, int], int]]


def open_root(path: str) -> tuple[int, os.stat_result]:
    """Open the root of a walk (not following a final symlink) and ``fstat`` it."""
    fd = os.open(path, DIR_FLAGS)
    return fd, os.fstat(fd)


class _DirCache:
    """Open directory descriptors, least recently used closed first, re-opened on demand."""

    def __init__(self, limit: int = FD_CACHE,
                 on_close: Callable[[int], None] | None = None) -> None:
        #: told each descriptor the cache closes (before its number can be reused)
        self.on_close = on_close
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft // 4)  # leave most descriptors to the process
        self.limit = max(limit, 2)
        self.lru: OrderedDict[Node, None] = OrderedDict()

    def _put(self, node: Node, fd: int) -> None:
        node.fd = fd
        self.lru[node] = None
        while len(self.lru) > self.limit:
            old, _ = self.lru.popitem(last=False)
            self._close(old.fd)
            old.fd = -1

    def fd(self, node: Node) -> int:
        """An open descriptor of ``node``, verified to be the same directory."""
        if node.fd >= 0:
            if node in self.lru:
                self.lru.move_to_end(node)
            return node.fd
        chain = []
        n: Node | None = node
        while n is not None and n.fd < 0:
            chain.append(n)
            n = n.parent
        assert n is not None, "the root descriptor is never closed"
        pfd = n.fd
        for c in reversed(chain):
            fd, _ = self._open(pfd, c)
            pfd = fd
        return pfd

    def open_new(self, node: Node) -> tuple[int, os.stat_result]:
        """Open ``node`` for the first time and return its descriptor and ``fstat``."""
        assert node.parent is not None
        return self._open(self.fd(node.parent), node)

    def _open(self, pfd: int, node: Node) -> tuple[int, os.stat_result]:
        fd = os.open(node.name, DIR_FLAGS, dir_fd=pfd)
        st = os.fstat(fd)
        if st.st_dev != node.dev or st.st_ino != node.ino:
            self._close(fd)
            raise _Changed(node.name)
        self._put(node, fd)
        return fd, st

    def close(self) -> None:
        """Close every cached descriptor."""
        for node in self.lru:
            self._close(node.fd)
            node.fd = -1
        self.lru.clear()

    def _close(self, fd: int) -> None:
        if self.on_close is not None:
            self.on_close(fd)
        os.close(fd)


class _Stop(Exception):
    """The error policy says stop."""


# A plan for one directory: its node, its own change (or None), plain changes
# ``(name, uid, gid)`` and special changes ``(name, dev, ino, record)``.
_Plan = tuple[Node, "Record | None", list[tuple[str, int, int]], list[tuple[str, int, int, Record]]]
# The per-directory steps of a scan: a listed directory entered (Walker._enterer), a
# possibly hard-linked inode held (Walker._holder), and the inodes a directory's listing
# handed over examined (Walker._examiner).
_Enter = Callable[[Node, int, "os.DirEntry[str]"], None]
_Hold = Callable[[Node, "os.DirEntry[str]", os.stat_result], "os.stat_result | None"]
_Examine = Callable[[Node, int, list[tuple[str, os.stat_result]], list[tuple[str, int, int]],
                     list[tuple[str, int, int, Record]]], None]


class Walker:
    """Examines (and with :meth:`apply` changes) one share of a tree.

    Built by the shift coordinator; counts and findings accumulate in attributes that
    :meth:`summary` returns as plain data (it crosses a pipe from worker processes).
    """

    def __init__(
        self,
        root_fd: int,
        root_st: os.stat_result,
        root_path: str,
        *,
        uid: IDTranslator | None = None,
        gid: IDTranslator | None = None,
        records: dict[tuple[int, int], Record] | None = None,
        journal: JournalWriter | None = None,
        record_plain: bool = True,
        track_all: bool | None = None,
        exclude: frozenset[tuple[int, int]] = frozenset(),
        cross_mounts: bool = False,
        stop_on_error: bool = True,
        part: int = 0,
        parts: int = 1,
        progress: Callable[[str, int], None] | None = None,
        include_outside_links: bool = False,
        fd_cache: int = FD_CACHE,
        share: WorkShare | None = None,
        audit_xattrs: bool = True,
    ) -> None:
        self.root = Node(None, "", root_st.st_dev, root_st.st_ino, root_fd)
        self.root_path = root_path
        # (os.path.join(root_path, rel) for a relative rel, one concatenation)
        self._prefix = root_path if root_path.endswith("/") or not root_path \
            else root_path + "/"
        self.uid = uid
        self.gid = gid
        self.records = records or {}
        self.journal = journal
        self.record_plain = record_plain
        # Keep every inode seen (not only hard-linked ones) when translating an inode a
        # second time would change it again: by default, whenever plain inodes are
        # journalled (the maps' two sides overlap).
        self.track_all = record_plain if track_all is None else track_all
        self.exclude = exclude
        self.cross_mounts = cross_mounts
        self.stop_on_error = stop_on_error
        self.part = part
        self.parts = parts
        self.progress = progress
        self.include_outside_links = include_outside_links
        self.share = share
        self.audit_xattrs = audit_xattrs
        # the hard-linked inodes held by the walk (kept here to be pooled even when the
        # walk stops early)
        self._links: dict[tuple[int, int], list[Any]] = {}
        self._complete: list[tuple[tuple[int, int], list[tuple[Node, str]], int]] = []
        # the hard-linked inodes found right when first seen (see _holder)
        self._settled: set[tuple[int, int]] = set()
        # the nodes of the table of the hard links last pooled (see _to_pool)
        self._sent: list[Node] = []
        self._over = self._pooled = False
        #: the hard-linked inodes an audit with a share leaves to the coordinator
        self.held: list[AuditHeld] = []
        self._names = _Names()
        self.cache = _DirCache(fd_cache, self._names.forget)
        self.plans: list[_Plan] = []
        self.pending = 0
        self._scanned = 0
        self._applied = 0
        self.stopped = False
        # findings
        self.entries = 0
        self.changed = 0
        self.unchanged = 0
        self.hardlinks = 0
        self.modes_restored = 0
        self.capabilities = 0
        self.acls = 0
        self.planned = 0
        self.owner_changes: Counter[tuple[str, int, int]] = Counter()
        self.unmapped: dict[tuple[str, int], list[Any]] = {}
        self.skipped_mounts: list[str] = []
        self.errors: list[PathError] = []
        self.uids: Counter[int] = Counter()
        self.gids: Counter[int] = Counter()
        #: an audit's count of inodes per ``(kind, id)`` their ACLs or capability name
        self.xattr_ids: Counter[tuple[str, int]] = Counter()
        self.examples: dict[tuple[str, int], list[str]] = {}
        #: ``(path, link count, names inside)`` of inodes with a name outside the tree
        self.outside_links: list[tuple[str, int, int]] = []
        #: the same for settled hard-linked inodes whose names several walkers found:
        #: by key, with this walker's smallest name (see :meth:`_report_settled`)
        self.outside_settled: dict[tuple[int, int], tuple[str, int, int]] = {}

    @classmethod
    def for_audit(cls, path: str, *, cross_mounts: bool = False,
                  xattrs: bool = True) -> Walker:
        """A walker that only counts owners, and with ``xattrs`` the IDs named by ACLs and
        capabilities (see :meth:`run_audit`)."""
        fd, st = open_root(path)
        return cls(fd, st, path, cross_mounts=cross_mounts, stop_on_error=False,
                   audit_xattrs=xattrs)

    # -- helpers -------------------------------------------------------------------

    def _path(self, node: Node, name: str | None = None) -> str:
        rel = node.relpath(name)
        return self.root_path if rel == "." else self._prefix + rel

    def _send(self, nodes: list[Node]) -> list[Sent]:
        """``nodes`` as another walker is handed them (one table for all)."""
        tab = Tabler(self.root)
        return [(tab.table, tab.at(n)) for n in nodes]

    def _received(self, sent: list[Sent]) -> list[Node]:
        """The nodes of directories another walker handed over (one node per directory
        of a table, so that its descriptor is cached once)."""
        known: dict[int, list[Node | None]] = {}
        out = []
        for table, i in sent:
            k = known.get(id(table))
            if k is None:
                k = known[id(table)] = [self.root, *[None] * (len(table) - 1)]
            out.append(resolve(table, k, i))
        return out

    def _error(self, node: Node, name: str | None, op: str, exc: BaseException) -> None:
        self.record_error(node, name, op, exc)
        if self.stop_on_error:
            self.stopped = True
            raise _Stop

    def _first_path(self, names: list[tuple[Node, str]]) -> str:
        """The smallest path of an inode's names: the one reported, whichever walker (or
        walk order) found which."""
        return min(self._path(node, name) for node, name in names)

    def record_error(self, node: Node, name: str | None, op: str, exc: BaseException) -> None:
        """Add the error ``exc`` of ``op`` on ``name`` in ``node`` to :attr:`errors`."""
        path = self._path(node, name)
        if isinstance(exc, _Changed):
            err = PathError(path, op, 0, "changed",
                            "replaced by another inode during the walk; left alone")
        elif isinstance(exc, XattrFormatError):
            err = PathError(path, op, 0, exc.reason, exc.message)
        elif isinstance(exc, OSError):
            code = exc.errno or 0
            err = PathError(path, op, code, errno_mod.errorcode.get(code, str(code)),
                            exc.strerror or str(exc))
        else:  # pragma: no cover - defensive
            err = PathError(path, op, 0, type(exc).__name__, str(exc))
        self.errors.append(err)

    def _mismatch(self, node: Node, name: str) -> None:
        """This filesystem's directory entries do not carry the inode numbers (overlayfs
        can do that): the split by inode number could give one hard-linked inode to two
        workers. Stop before changing it; the coordinator resumes in one process."""
        self.errors.append(PathError(self._path(node, name), "stat", 0, INODE_MISMATCH,
                                     "the directory entry's inode number is not the "
                                     "inode's; the walk cannot be split"))
        self.stopped = True
        raise _Stop

    def _note_unmapped(self, kind: str, value: int, node: Node, name: str | None) -> None:
        slot = self.unmapped.get((kind, value))
        if slot is None:
            slot = self.unmapped[kind, value] = [0, []]
        slot[0] += 1
        if len(slot[1]) < 3:
            slot[1].append(self._path(node, name))

    def _report_scan(self, before: int) -> None:
        """Report the scan count at each multiple of :data:`PROGRESS_EVERY` it passed
        since it was ``before`` (the walk's reports come at those)."""
        if self.progress is not None:
            for at in progress_marks(before, self._scanned):
                self.progress("scan", at)

    def _tick(self, phase: str, count: int) -> None:
        if self.progress is not None and count % PROGRESS_EVERY == 0:
            self.progress(phase, count)

    # -- examining ----------------------------------------------------------------

    def _translate(self, kind: str, tr: IDTranslator, value: int, node: Node,
                   name: str | None) -> int:
        new = tr(value)
        if tr.unmapped and value in tr.unmapped:
            self._note_unmapped(kind, value, node, name)
        return new

    def _special(self, node: Node, name: str | None, st: os.stat_result, names: bytes,
                 read: Callable[[str], bytes | None], *,
                 owner_noted: bool = False) -> Record | None:
        """The final state of an inode with extended attributes or a setuid/setgid mode.

        ``owner_noted``: the caller already counted an untranslatable owner of this inode
        (the file loop does), so it is not counted twice.
        """
        assert self.uid is not None and self.gid is not None
        uid, gid = st.st_uid, st.st_gid
        if owner_noted:
            nu, ng = self.uid(uid), self.gid(gid)
        else:
            nu = self._translate("uid", self.uid, uid, node, name)
            ng = self._translate("gid", self.gid, gid, node, name)
        moved = nu != uid or ng != gid
        xattrs: list[tuple[int, bytes | None]] = []
        fmt = st.st_mode & _S_IFMT

        def u_acl(v: int) -> int:
            return self._translate("acl-uid", self.uid, v, node, name)  # type: ignore[arg-type]

        def g_acl(v: int) -> int:
            return self._translate("acl-gid", self.gid, v, node, name)  # type: ignore[arg-type]

        def u_cap(v: int) -> int:
            return self._translate("cap-rootid", self.uid, v, node, name)  # type: ignore[arg-type]

        before: list[tuple[int, bytes | None]] = []
        if fmt == _S_IFREG and _CAP_B in names:
            raw = read(CAPABILITY)
            if raw is not None:
                new = shift_capability(raw, u_cap)
                # chown drops the capability: write it back whenever the owner moves.
                if moved or new != raw:
                    xattrs.append((CAPABILITY_CODE, new))
                    before.append((CAPABILITY_CODE, raw))
        for code, key, attr in ((ACL_ACCESS_CODE, _ACCESS_B, ACL_ACCESS),
                                (ACL_DEFAULT_CODE, _DEFAULT_B, ACL_DEFAULT)):
            if key in names:
                raw = read(attr)
                if raw is not None:
                    new = shift_acl(raw, u_acl, g_acl)
                    if new != raw:
                        xattrs.append((code, new))
                        before.append((code, raw))
        mode = st.st_mode & 0o7777
        restore = mode if moved and mode & _SETID and fmt != _S_IFDIR else NO_MODE
        if not moved and not xattrs:
            return None
        return Record(uid, gid, nu, ng, restore, tuple(xattrs), tuple(before))

    def _count_change(self, rec: Record) -> None:
        if rec.old_uid != rec.new_uid:
            self.owner_changes["uid", rec.old_uid, rec.new_uid] += 1
        if rec.old_gid != rec.new_gid:
            self.owner_changes["gid", rec.old_gid, rec.new_gid] += 1

    def _resumed(self, rec: Record, st: os.stat_result) -> Record | None:
        """The change still needed for a journalled inode (``None`` when it is done)."""
        if (st.st_uid, st.st_gid) == (rec.new_uid, rec.new_gid) and not rec.xattrs \
                and (rec.mode == NO_MODE or st.st_mode & 0o7777 == rec.mode):
            return None
        return rec

    def examine_dir(self, node: Node, fd: int, st: os.stat_result) -> Record | None:
        """The change the directory ``node`` (open as ``fd``) itself needs, if any."""
        self.entries += 1
        rec = self.records.get((st.st_dev, st.st_ino)) if self.records else None
        if rec is not None:
            need = self._resumed(rec, st)
            if need is None:
                self.unchanged += 1
            else:
                self._count_change(need._replace(old_uid=st.st_uid, old_gid=st.st_gid))
            return need
        names = _listed(fd)
        new: Record | None
        if _ACCESS_B not in names and _DEFAULT_B not in names:
            # The common case, without _special: a directory's capability is not read
            # (it means nothing) and its setuid/setgid bits survive chown.
            assert self.uid is not None and self.gid is not None
            uid, gid = st.st_uid, st.st_gid
            nu = self._translate("uid", self.uid, uid, node, None)
            ng = self._translate("gid", self.gid, gid, node, None)
            new = None if nu == uid and ng == gid else Record(uid, gid, nu, ng, NO_MODE, ())
        else:
            new = self._special(node, None, st, names, _reader(fd))
        if new is None:
            self.unchanged += 1
            return None
        self._count_change(new)
        if self.journal is not None:
            self.journal.add(st.st_dev, st.st_ino, new)
        return new

    def scan(self, *, stream: bool) -> None:
        """Walk this walker's share; with ``stream`` apply changes in journalled batches,
        else keep every change in :attr:`plans` for :meth:`apply`."""
        try:
            self._scan(stream)
            if stream:
                self._flush_apply()
        except _Stop:
            self._leave_share()
        finally:
            if stream:
                self.cache.close()

    def _scan(self, stream: bool) -> None:
        pairs: dict[tuple[int, int, int, int], int] = {}
        try:
            self._scan_loop(stream, pairs)
            if self.progress is not None:
                self.progress("scan", self._scanned)
        finally:
            for (uid, gid, nu, ng), n in pairs.items():
                if nu != uid:
                    self.owner_changes["uid", uid, nu] += n
                if ng != gid:
                    self.owner_changes["gid", gid, ng] += n

    def _scan_loop(self, stream: bool, pairs: dict[tuple[int, int, int, int], int]) -> None:
        """The driver: every directory taken off the stack is entered, listed and its
        entries classified and examined (:meth:`_scan_dir`); the hard-linked inodes whose
        every name was found come after the walk (:meth:`_finish_links`)."""
        # The stack holds Node values, the directories still to enter: each names its
        # parent node, its name there and the (st_dev, st_ino) its parent's listing gave,
        # which the descriptor opened later must match. ``entered`` maps a directory's
        # (st_dev, st_ino) to its place in the walk (a directory renamed during the walk
        # can be listed twice: it is entered once).
        share = self.share
        stack: list[Node] = [self.root] if share is None else []
        entered: dict[tuple[int, int], int] = {}
        # (st_dev, st_ino) -> [names found, node, first name, link count, [(node, name),
        # ...]] of a hard-linked inode not all of whose names have been found yet; once
        # they all are: (key, names, link count) in ``complete``.
        links = self._links
        complete = self._complete
        enter = self._enterer(stack)
        hold = self._holder(links, complete)
        examine = self._examiner(pairs)
        for node in self._turns(stack):
            key = (node.dev, node.ino)
            if key not in entered:
                entered[key] = len(entered)
                self._scan_dir(node, enter, hold, examine, stream)
        if share is not None:
            complete, links = self._pool_links()
        self._finish_links(complete, entered, examine, stream)
        self._late_links(links)

    def _turns(self, stack: list[Node]) -> Iterator[Node]:
        """The directories this walker enters, taken off ``stack``; with a share, the
        bottom half of the stack (the directories nearest the root, the largest
        subtrees) is given away whenever another walker waits, and more is taken when
        the stack is empty, until the walk is over."""
        share = self.share
        while True:
            while stack:
                if share is not None and len(stack) > 1 and share.hungry():
                    half = len(stack) // 2
                    share.give(self._send(stack[:half]))
                    del stack[:half]
                yield stack.pop()
            if share is None:
                return
            more = share.take()
            if more is None:
                self._over = True
                return
            stack.extend(self._received(more))

    def _to_pool(self) -> tuple[DirTable, list[Held], list[Counted]]:
        """The hard-linked inodes held, as they are pooled: a table of their directories
        (its nodes kept in :attr:`_sent`) and their names by inode, and the settled ones
        (see :meth:`_righter`) by their count of names alone. Nothing is written to a
        settled inode, so its names need no check after the walk: the coordinator counts
        it (once, whichever walkers found its names), and only one with fewer names found
        than links needs a name, to be reported by (see :meth:`_report_settled`)."""
        tab = Tabler(self.root)
        at = tab.at
        settled = self._settled
        held: list[Held] = []
        counted: list[Counted] = []
        found_names = [(key, nlink, names) for key, names, nlink in self._complete]
        found_names += [(key, nlink, names)
                        for key, (_, _, _, nlink, names) in self._links.items()]
        for key, nlink, names in found_names:
            if key in settled:
                counted.append((key, nlink, len(names)))
            else:
                held.append((key, nlink, [(at(n), name) for n, name in names]))
        self._sent = tab.nodes
        return tab.table, held, counted

    def _pool_links(self) -> tuple[list[tuple[tuple[int, int], list[tuple[Node, str]], int]],
                                   dict[tuple[int, int], list[Any]]]:
        """Pool the hard-linked inodes' names with the other walkers; this walker's share
        in the shapes of ``complete`` and ``links`` (see :meth:`_scan_loop`)."""
        assert self.share is not None
        tables, full, partial, mine_full, mine_partial, settled_partial = \
            self.share.pool_links(*self._to_pool(), True, self._unsettle)
        mine = self._sent
        self._pooled = True
        self._report_settled(settled_partial)
        resolved: list[list[Node | None]] = [
            list(mine) if t is None else [self.root, *[None] * (len(t) - 1)] for t in tables]

        def node(j: int, i: int) -> Node:
            return resolve(tables[j], resolved[j], i)

        complete = [(key, [(node(j, i), name) for j, i, name in names], nlink)
                    for key, nlink, names in full]
        own = {key: (names, nlink) for key, names, nlink in self._complete}
        for key in mine_full:
            got = own.get(key)
            if got is None:  # (held with a smaller link count from an earlier name)
                held_ = self._links[key]
                got = (held_[4], held_[3])
            complete.append((key, *got))
        links = {key: self._links[key] for key in mine_partial}
        for (key, nlink, names), found in partial:
            nodes = [(node(j, i), name) for j, i, name in names]
            links[key] = [found, nodes[0][0], nodes[0][1], nlink, nodes]
        return complete, links

    def _unsettle(self, keys: list[tuple[int, int]]
                  ) -> tuple[DirTable, list[Held], list[Counted]]:
        """``more`` of :meth:`WorkShare.pool_links`: the settled inodes ``keys`` (another
        walker found them not right: they changed between the two looks) are held by
        their names from now on, examined after the walk as any other, and the hard
        links are pooled again (the nodes of the new table in :attr:`_sent`)."""
        self._settled.difference_update(keys)
        return self._to_pool()

    def _report_settled(self, partial: list[tuple[tuple[int, int], int]]) -> None:
        """Report the settled inodes with fewer names found (by all walkers) than links,
        by this walker's smallest name of each; the merge keeps the smallest of all.
        With :attr:`include_outside_links` they are counted as unchanged instead, once,
        by the coordinator: they are right, and nothing is written to them."""
        if not partial or self.include_outside_links:
            return
        names = {key: (names, nlink) for key, names, nlink in self._complete}
        for key, (_, _, _, nlink, found) in self._links.items():
            names[key] = (found, nlink)
        for key, total in partial:
            got = names.get(key)
            if got is not None:
                self.outside_settled[key] = (self._first_path(got[0]), got[1], total)

    def _leave_share(self) -> None:
        """A walker stopped by the error policy still takes part in the sharing until
        the walk is over (what it is given is left: the run is incomplete anyway), and
        pools the names it found, so that no other walker takes an inode whose names it
        holds for one with a name outside the tree."""
        if self.share is None:
            return
        while not self._over:
            self._over = self.share.take() is None
        if not self._pooled:
            self._pooled = True
            self.share.pool_links(*self._to_pool(), False, self._unsettle)

    def _scan_dir(self, node: Node, enter: _Enter, hold: _Hold, examine: _Examine,
                  stream: bool) -> None:
        """The per-directory step: open and list ``node`` (:meth:`_scan_list`), sort its
        entries (a directory to enter, another walker's share, another filesystem, a
        hard-linked inode held until all its names are found, an inode to examine now),
        examine those, and plan the changes."""
        listed = self._scan_list(node)
        if listed is None:
            return
        fd, own, entries = listed
        plain: list[tuple[str, int, int]] = []
        special: list[tuple[str, int, int, Record]] = []
        dev = node.dev
        part, parts = self.part, self.parts
        split = parts > 1  # (by inode number)
        cross, track_all = self.cross_mounts, self.track_all
        enoent = errno_mod.ENOENT
        progress = self.progress
        at, end = 0, len(entries)
        while at < end:
            # With progress reports, the listing is taken in slices no longer than the
            # inodes left to the next multiple of PROGRESS_EVERY: a slice keeps at most
            # as many, so the count reaches each multiple exactly, at the end of a slice.
            room = end if progress is None else \
                PROGRESS_EVERY - self._scanned % PROGRESS_EVERY
            some = entries if at == 0 and room >= end else entries[at:at + room]
            at += len(some)
            # The hottest loop of a walk, with the examine of what it keeps: an inode
            # examined now costs a stat and a tuple here, no call.
            found: list[tuple[str, os.stat_result]] = []
            keep = found.append
            for e in some:
                try:
                    if not split:  # (a stat first: a directory is told by its mode)
                        st = e.stat(follow_symlinks=False)
                        if st.st_mode & _S_IFMT == _S_IFDIR:
                            enter(node, dev, e)
                            continue
                    else:  # (every walker enters every directory, by its listed type)
                        if e.is_dir(follow_symlinks=False):
                            enter(node, dev, e)
                            continue
                        if e.inode() % parts != part:
                            continue
                        st = e.stat(follow_symlinks=False)
                except OSError as exc:
                    if exc.errno != enoent:  # (else removed since the listing)
                        self._error(node, e.name, "stat", exc)
                    continue
                if st.st_dev != dev and not cross:
                    self.skipped_mounts.append(self._path(node, e.name))
                    continue
                if st.st_nlink > 1 or track_all:
                    held = hold(node, e, st)
                    if held is None:
                        continue
                keep((e.name, st))
            before = self._scanned
            examine(node, fd, found, plain, special)
            self._report_scan(before)
        self._plan(node, own, plain, special, stream)

    def _scan_list(self, node: Node
                   ) -> tuple[int, Record | None, list[os.DirEntry[str]]] | None:
        """Open ``node`` (verified), examine its own inode when it is this walker's share,
        and list it: its descriptor, its own change and its entries, or ``None`` (the
        error recorded)."""
        own: Record | None = None
        if node is self.root:
            fd = node.fd
        else:
            try:
                fd, dst = self.cache.open_new(node)
            except (OSError, _Changed) as exc:
                self._error(node, None, "open", exc)
                return None
            if node.ino % self.parts == self.part:
                try:
                    own = self.examine_dir(node, fd, dst)
                except (OSError, XattrFormatError) as exc:
                    self._error(node, None, "examine", exc)
        self._names.enter(fd)
        try:
            with self._names.scandir(fd) as it:
                return fd, own, list(it)
        except OSError as exc:
            self._error(node, None, "list", exc)
            return None

    def _plan(self, node: Node, own: Record | None, plain: list[tuple[str, int, int]],
              special: list[tuple[str, int, int, Record]], stream: bool) -> None:
        if own is not None or plain or special:
            self.plans.append((node, own, plain, special))
            self.planned += len(plain) + len(special) + (own is not None)
            self.pending += len(plain) + len(special) + 1
            if stream and self.pending >= BATCH:
                self._flush_apply()

    def _enterer(self, stack: list[Node]) -> _Enter:
        """``enter(node, dev, entry)``: a listed directory pushed on ``stack`` with the
        ``(st_dev, st_ino)`` it must have when opened (unless it is on another filesystem,
        not entered, or the shift's own journal)."""
        part, parts = self.part, self.parts
        cross, exclude = self.cross_mounts, self.exclude
        push = stack.append
        skipped = self.skipped_mounts

        def enter(node: Node, dev: int, e: os.DirEntry[str]) -> None:
            st = e.stat(follow_symlinks=False)
            if st.st_mode & _S_IFMT != _S_IFDIR:
                return  # replaced since the listing: the next run gets it
            if st.st_dev != dev and not cross:
                if st.st_ino % parts == part:
                    skipped.append(self._path(node, e.name))
                return
            if (st.st_dev, st.st_ino) not in exclude:  # (the shift's journal)
                push(Node(node, e.name, st.st_dev, st.st_ino))

        return enter

    def _holder(self, links: dict[tuple[int, int], list[Any]],
                complete: list[tuple[tuple[int, int], list[tuple[Node, str]], int]]
                ) -> _Hold:
        """``hold(node, entry, st)``: an inode that may have been seen under another name
        (hard-linked, or every inode with ``track_all``): its ``st`` when it is examined
        now, else ``None`` (seen before, or held in ``links`` until all its names are
        found, then listed in ``complete``)."""
        parts = self.parts
        # Without a journal record per inode, a file moved into a directory not yet
        # walked would be seen twice; with one (track_all), keep every inode seen.
        seen: set[tuple[int, int]] = set()
        settled = self._settled
        is_right = self._righter()

        def hold(node: Node, e: os.DirEntry[str], st: os.stat_result) -> os.stat_result | None:
            nlink = st.st_nlink
            if parts > 1 and nlink > 1 and e.inode() != st.st_ino:
                self._mismatch(node, e.name)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                self.hardlinks += 1
                # A hard-linked inode is held back until as many names as its link
                # count are found: only then is it wholly inside the tree.
                held = links.get(key)
                if held is not None:
                    held[0] += 1
                    held[4].append((node, e.name))
                    if held[0] >= nlink:
                        del links[key]
                        complete.append((key, held[4], nlink))
                return None
            seen.add(key)
            # (a directory's link count counts its subdirectories: it can land here
            # when swapped in after the listing)
            if nlink > 1 and st.st_mode & _S_IFMT != _S_IFDIR:
                links[key] = [1, node, e.name, nlink, [(node, e.name)]]
                if is_right(node, e.name, st):
                    settled.add(key)
                return None
            return st

        return hold

    def _righter(self) -> Callable[[Node, str, os.stat_result], bool]:
        """``is_right(node, name, st)``: true when the inode needs no change at all (its
        owner translates to itself and is mapped, no capability or ACL, no journal
        record), read through the open descriptor of ``node`` while it is listed.

        A hard-linked inode found right when first seen is not looked at again after
        the walk (see :meth:`_finish_links`): a verifying re-run of a tree with many hard
        links then costs one ``stat`` and one ``listxattrat`` per inode, as for any
        other file, instead of a second ``stat`` of each of its names."""
        assert self.uid is not None and self.gid is not None
        records = self.records
        ucache, gcache = self.uid.cache, self.gid.cache
        uunm, gunm = self.uid.unmapped, self.gid.unmapped
        utr, gtr = self.uid, self.gid
        names_of = self._names.names

        def is_right(node: Node, name: str, st: os.stat_result) -> bool:
            if records and (st.st_dev, st.st_ino) in records:
                return False
            uid, gid = st.st_uid, st.st_gid
            nu = ucache.get(uid)
            if nu is None:
                nu = utr(uid)
            ng = gcache.get(gid)
            if ng is None:
                ng = gtr(gid)
            if nu != uid or ng != gid or (uunm and uid in uunm) or (gunm and gid in gunm):
                return False
            if st.st_mode & _S_IFMT == _S_IFLNK:
                return True
            try:
                names = names_of(node.fd, name)
            except OSError:
                return False  # (looked at again after the walk, as any other)
            return not _translated(names)

        return is_right

    def _examiner(self, pairs: dict[tuple[int, int, int, int], int]) -> _Examine:
        """The per-inode step, a directory's inodes at a time: ``examine(node, fd, found,
        plain, special)`` looks at each ``(name, st)`` of ``found`` (entries of ``node``,
        open as ``fd``, not directories) and appends the change it needs to ``plain``
        (``(name, uid, gid)``, one ``fchownat``) or ``special`` (a mode, capability or ACL
        to keep), journalled first; it counts the inodes it looked at in :attr:`entries`
        (up to an error that stops the walk) and those already right in
        :attr:`unchanged`. Owner pairs are counted in ``pairs``. Its aliases are bound
        once, as closure variables, and it loops itself: this is the walk's hottest code,
        with no call per inode."""
        assert self.uid is not None and self.gid is not None
        records = self.records
        journal = self.journal if self.record_plain else None
        ucache, gcache = self.uid.cache, self.gid.cache
        uunm, gunm = self.uid.unmapped, self.gid.unmapped
        utr, gtr = self.uid, self.gid
        names_of = self._names.names
        pairs_get = pairs.get
        note_unmapped = self._note_unmapped
        enoent = errno_mod.ENOENT

        resume = self._resumer(pairs)

        def examine(node: Node, fd: int, found: list[tuple[str, os.stat_result]],
                    plain: list[tuple[str, int, int]],
                    special: list[tuple[str, int, int, Record]]) -> None:
            same = done = 0
            try:
                for name, st in found:
                    done += 1
                    if records:
                        rec = records.get((st.st_dev, st.st_ino))
                        if rec is not None:
                            same += resume(rec, name, st, plain, special)
                            continue
                    mode = st.st_mode
                    uid = st.st_uid
                    gid = st.st_gid
                    nu = ucache.get(uid)
                    if nu is None:
                        nu = utr(uid)
                    if uunm and uid in uunm:
                        note_unmapped("uid", uid, node, name)
                    ng = gcache.get(gid)
                    if ng is None:
                        ng = gtr(gid)
                    if gunm and gid in gunm:
                        note_unmapped("gid", gid, node, name)
                    if mode & _S_IFMT == _S_IFLNK:
                        names = b""
                    else:
                        try:
                            names = names_of(fd, name)
                        except OSError as exc:
                            if exc.errno != enoent:  # (else removed since the listing)
                                self._error(node, name, "listxattr", exc)
                            continue
                    if (names and (_CAP_B in names or _ACCESS_B in names
                                   or _DEFAULT_B in names)) \
                            or (mode & _SETID and (nu != uid or ng != gid)):
                        # (it counts an unchanged one itself)
                        self._examine_special(node, fd, name, st, names, special)
                        continue
                    if nu == uid and ng == gid:
                        same += 1
                        continue
                    key4 = (uid, gid, nu, ng)
                    pairs[key4] = pairs_get(key4, 0) + 1
                    if journal is not None:
                        journal.add(st.st_dev, st.st_ino, Record(uid, gid, nu, ng, NO_MODE, ()))
                    plain.append((name, nu, ng))
            finally:
                self.entries += done
                self._scanned += done
                self.unchanged += same

        return examine

    def _resumer(self, pairs: dict[tuple[int, int, int, int], int]
                 ) -> Callable[[Record, str, os.stat_result, list[tuple[str, int, int]],
                                list[tuple[str, int, int, Record]]], bool]:
        """``resume(rec, name, st, plain, special)``: the change still needed by an inode
        the journal of an interrupted run has a record of (true when none is)."""
        resumed = self._resumed
        pairs_get = pairs.get

        def resume(rec: Record, name: str, st: os.stat_result,
                   plain: list[tuple[str, int, int]],
                   special: list[tuple[str, int, int, Record]]) -> bool:
            need = resumed(rec, st)
            if need is None:
                return True
            key4 = (st.st_uid, st.st_gid, need.new_uid, need.new_gid)
            pairs[key4] = pairs_get(key4, 0) + 1
            if need.xattrs or need.mode != NO_MODE:
                special.append((name, st.st_dev, st.st_ino, need))
            else:
                plain.append((name, need.new_uid, need.new_gid))
            return False

        return resume

    def _examine_special(self, node: Node, fd: int, name: str, st: os.stat_result,
                         names: bytes, special: list[tuple[str, int, int, Record]]) -> None:
        """Plan the change of an inode with a mode, capability or ACL to keep."""
        try:
            rec = self._special(node, name, st, names, _reader(f"/proc/self/fd/{fd}/{name}"),
                                owner_noted=True)
        except (OSError, XattrFormatError) as exc:
            self._error(node, name, "examine", exc)
            return
        if rec is None:
            self.unchanged += 1
            return
        self._count_change(rec)
        if self.journal is not None:
            self.journal.add(st.st_dev, st.st_ino, rec)
        special.append((name, st.st_dev, st.st_ino, rec))

    def _finish_links(self, complete: list[tuple[tuple[int, int], list[tuple[Node, str]], int]],
                      entered: dict[tuple[int, int], int], examine: _Examine,
                      stream: bool) -> None:
        """Examine the hard-linked inodes whose every name was found, once each, after
        checking that every name still names the inode: a name renamed during the walk
        into a directory not yet listed is counted twice, and could hide a name outside
        the tree. The names are checked directory by directory in walk order (each
        directory opened once, its ancestors from the descriptor cache); an inode is
        examined through the name checked last.

        An inode found right when first seen (see :meth:`_righter`) is counted as
        unchanged without this check: nothing is written to it, so no name outside the
        tree can be reached through it. (Under a rename race that counted a name twice,
        such an inode is then not reported as having a name outside the tree.)"""
        settled = self._settled
        if settled:
            right = sum(1 for key, _, _ in complete if key in settled)
            self.entries += right
            self._scanned += right
            self._report_scan(self._scanned - right)
            self.unchanged += right
            complete = [c for c in complete if c[0] not in settled]
        by_dir: dict[Node, list[tuple[str, int]]] = {}
        left = []
        for i, (_, names, _) in enumerate(complete):
            left.append(len(names))
            for node, name in names:
                by_dir.setdefault(node, []).append((name, i))
        holds = [True] * len(complete)
        for node in sorted(by_dir, key=lambda n: entered.get((n.dev, n.ino), -1)):
            try:
                fd = self.cache.fd(node)
                self._names.enter(fd)
            except (OSError, _Changed):
                fd = -1
            found: list[tuple[str, os.stat_result]] = []
            for name, i in by_dir[node]:
                key, names, nlink = complete[i]
                st = None
                if fd >= 0 and holds[i]:
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        st = None
                if st is None or (st.st_dev, st.st_ino) != key:
                    holds[i] = False
                left[i] -= 1
                if left[i]:
                    continue
                if not holds[i]:
                    self.outside_links.append((self._first_path(names), nlink,
                                               len(names) - 1))
                    continue
                assert st is not None
                found.append((name, st))
            plain: list[tuple[str, int, int]] = []
            special: list[tuple[str, int, int, Record]] = []
            before = self._scanned
            examine(node, fd, found, plain, special)
            self._report_scan(before)
            self._plan(node, None, plain, special, stream)

    def _late_links(self, links: dict[tuple[int, int], list[Any]]) -> None:
        """The hard-linked inodes with a name outside the tree (fewer names found than
        their link count): reported and left alone, unless the caller opted in or the
        journal already has their record (an interrupted run that had opted in)."""
        for key, (found, node, name, nlink, names) in links.items():
            if not self.include_outside_links and not (self.records and key in self.records):
                self.outside_links.append((self._first_path(names), nlink, found))
                continue
            try:
                fd = self.cache.fd(node)
                now = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except (OSError, _Changed) as exc:
                if not (isinstance(exc, OSError) and exc.errno == errno_mod.ENOENT):
                    self._error(node, name, "stat", exc)
                continue
            if (now.st_dev, now.st_ino) != key:
                continue  # replaced since the listing: the next run gets it
            self.entries += 1
            self._scanned += 1
            self._report_scan(self._scanned - 1)
            rec = self.records.get(key) if self.records else None
            if rec is not None:
                need = self._resumed(rec, now)
                if need is not None:
                    self._count_change(need._replace(old_uid=now.st_uid, old_gid=now.st_gid))
            else:
                read = _reader(f"/proc/self/fd/{fd}/{name}")
                try:
                    names = b"" if stat_mod.S_ISLNK(now.st_mode) else _lister()(fd, name)
                    need = self._special(node, name, now, names, read)
                except (OSError, XattrFormatError) as exc:
                    self._error(node, name, "examine", exc)
                    continue
                if need is not None:
                    self._count_change(need)
                    if self.journal is not None:
                        self.journal.add(key[0], key[1], need)
            if need is None:
                self.unchanged += 1
                continue
            if need.xattrs or need.mode != NO_MODE:
                self.plans.append((node, None, [], [(name, key[0], key[1], need)]))
            else:  # an owner alone (a symlink has nothing else): one fchownat
                self.plans.append((node, None, [(name, need.new_uid, need.new_gid)], []))
            self.planned += 1
            self.pending += 1

    # -- changing -----------------------------------------------------------------

    def _flush_apply(self) -> None:
        if self.journal is not None:
            self.journal.flush()
        self.apply()
        self.pending = 0
        if self.stopped:
            raise _Stop  # the error policy said stop while applying: no more scanning

    def apply(self, *, shared: bool = False) -> None:
        """Make every change in :attr:`plans` (their records already durable) and drop them.

        ``shared``: with a :attr:`share`, plans are given to and taken from the other
        walkers as directories are during the walk (their records are durable in the
        journal of the walker that planned them), until every walker has applied all."""
        todo, self.plans = self.plans, []
        share = self.share if shared else None
        done = self._applied
        had = bool(todo)
        try:
            while True:
                # Last planned first: the directories the scan opened last are still in
                # the descriptor cache (in scan order, each would evict the next one
                # needed). The first ones planned go to a walker that waits.
                while todo:
                    if share is not None and len(todo) > 1 and share.hungry():
                        half = len(todo) // 2
                        sent = self._send([p[0] for p in todo[:half]])
                        share.give_plans([(t, i, p[1], p[2], p[3])
                                          for (t, i), p in zip(sent, todo[:half])])
                        del todo[:half]
                    done = self._apply_plan(todo.pop(), done)
                if share is None:
                    break
                more = share.take_plans()
                if more is None:
                    break
                nodes = self._received([(t, i) for t, i, *_ in more])
                todo = [(n, own, plain, special)
                        for n, (_, _, own, plain, special) in zip(nodes, more)]
        except _Stop:
            if share is not None:  # (the others may be waiting for plans)
                while share.take_plans() is not None:
                    pass
        finally:
            self._applied = done
            if self.progress is not None and (had or done):
                self.progress("apply", done)

    def _apply_plan(self, plan: _Plan, done: int) -> int:
        """Make one directory's changes; the count of changes made so far."""
        node, own, plain, special = plan
        chown = os.chown
        try:
            fd = self.cache.fd(node)
        except (OSError, _Changed) as exc:
            self._error(node, None, "open", exc)
            return done
        for name, nu, ng in plain:
            try:
                chown(name, nu, ng, dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno_mod.ENOENT:
                    self._error(node, name, "chown", exc)
                    self._uncount_plain(fd, name, nu, ng)
                continue
            self.changed += 1
            done += 1
            if done % PROGRESS_EVERY == 0 and self.progress is not None:
                self.progress("apply", done)
        for name, dev, ino, rec in special:
            try:
                self._apply_special(fd, name, dev, ino, rec)
            except (OSError, _Changed) as exc:
                self.uncount_record(rec)
                self._error(node, name, "apply", exc)
                continue
            self.changed += 1
            done += 1
        if own is not None:
            try:
                self.set_state(fd, os.fstat(fd), own)
            except OSError as exc:
                self.uncount_record(own)
                self._error(node, None, "apply", exc)
                return done
            self.changed += 1
            done += 1
        return done

    def uncount_record(self, rec: Record) -> None:
        """A planned change that failed: its owner change did not happen."""
        if rec.old_uid != rec.new_uid:
            self.owner_changes["uid", rec.old_uid, rec.new_uid] -= 1
        if rec.old_gid != rec.new_gid:
            self.owner_changes["gid", rec.old_gid, rec.new_gid] -= 1

    def _uncount_plain(self, fd: int, name: str, nu: int, ng: int) -> None:
        """A plain chown that failed: the owner it still has is the one counted as old."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            return  # gone: what it had cannot be told (the error says so)
        self.uncount_record(Record(st.st_uid, st.st_gid, nu, ng, NO_MODE, ()))

    def _apply_special(self, dirfd: int, name: str, dev: int, ino: int, rec: Record) -> None:
        pfd = os.open(name, _PATH_FLAGS, dir_fd=dirfd)
        try:
            st = os.fstat(pfd)
            if st.st_dev != dev or st.st_ino != ino or stat_mod.S_ISLNK(st.st_mode):
                raise _Changed(name)
            # The magic link names exactly the verified inode.
            self.set_state(f"/proc/self/fd/{pfd}", st, rec)
        finally:
            os.close(pfd)

    def set_state(self, target: int | str, st: os.stat_result, rec: Record) -> None:
        """Give the inode ``target`` (a descriptor or a ``/proc/self/fd`` path) the state
        ``rec``: owner, then attributes (chown dropped the capability), then the mode
        (chown cleared setuid/setgid). Only what differs is written; what the record
        keeps is counted (:meth:`count_record`)."""
        if (st.st_uid, st.st_gid) != (rec.new_uid, rec.new_gid):
            os.chown(target, rec.new_uid, rec.new_gid)
        for code, value in rec.xattrs:
            attr = XATTR_NAMES[code]
            try:
                current: bytes | None = os.getxattr(target, attr)
            except OSError as exc:
                if exc.errno != errno_mod.ENODATA:
                    raise
                current = None
            if current == value:
                continue
            if value is None:
                os.removexattr(target, attr)
            else:
                os.setxattr(target, attr, value)
        if rec.mode != NO_MODE:
            now = os.stat(target).st_mode & 0o7777
            if now != rec.mode:
                os.chmod(target, rec.mode)
        self.count_record(rec)

    def count_record(self, rec: Record) -> None:
        """Count what the record keeps: its capability, its ACLs, its setuid/setgid mode.

        Counted from the record, so a dry run (:meth:`count_plans`) reports what the
        real run then reports."""
        for code, _ in rec.xattrs:
            if code == CAPABILITY_CODE:
                self.capabilities += 1
            else:
                self.acls += 1
        if rec.mode != NO_MODE:
            self.modes_restored += 1

    def count_plans(self) -> None:
        """Count the records of the planned changes as :meth:`set_state` would (a dry run)."""
        for _, own, _, special in self.plans:
            for *_, rec in special:
                self.count_record(rec)
            if own is not None:
                self.count_record(own)

    # -- audit --------------------------------------------------------------------

    def run_audit(self) -> None:
        """Count owners of every inode (hard links once), read-only; with
        :attr:`audit_xattrs`, also the IDs its ACLs and capability name.

        With a :attr:`share`, the root's own owner is left to the coordinator, and the
        hard-linked inodes are left in :attr:`held` (see :meth:`count_held`) for it to
        count once across all walkers."""
        # key -> [names found, nlink, uid, gid, node, first name, smallest path or None
        # while one name is found, xattr IDs]
        links: dict[tuple[int, int], list[Any]] = {}
        # (uid, gid) -> inodes: one dict update per inode; the counts per uid and per gid
        # and the examples are derived at the end (examples: the first names of each pair,
        # as (directory, name): only those kept as a uid's or a gid's become paths)
        owners: dict[tuple[int, int], int] = {}
        examples: dict[tuple[int, int], list[Example]] = {}
        share = self.share
        stack: list[Node] = [self.root] if share is None else []
        count = 0
        if share is None:
            root_st = os.fstat(self.root.fd)
            owners[root_st.st_uid, root_st.st_gid] = 1
            examples[root_st.st_uid, root_st.st_gid] = [(self.root, None)]
            count = 1
        try:
            for node in self._turns(stack):
                count += self._audit_dir(node, stack, links, owners, examples)
            self.held = [(key, found, nlink, uid, gid, best or self._path(node, name), ids)
                         for key, (found, nlink, uid, gid, node, name, best, ids)
                         in links.items()]
        finally:
            # (the directory descriptors stay open until close(): a worker process does
            # not close its thousands one by one before it reports, its exit does)
            self.entries += count
            self.count_owners(owners, examples)
        if share is None:
            self.count_held(self.held)
            self.held = []

    def _audit_ids(self, node: Node, name: str | None, names: bytes,
                   read: Callable[[str], bytes | None], regular: bool) -> XattrIDs:
        """The IDs an inode's ACLs (and, for a regular file, its revision 3 capability)
        name; an unreadable or malformed value is reported as an error."""
        found: set[tuple[str, int]] = set()
        try:
            if regular and _CAP_B in names:
                raw = read(CAPABILITY)
                if raw is not None:
                    rootid = parse_capability(raw).rootid
                    if rootid is not None:
                        found.add(("cap-rootid", rootid))
            for key, attr in ((_ACCESS_B, ACL_ACCESS), (_DEFAULT_B, ACL_DEFAULT)):
                if key in names:
                    raw = read(attr)
                    if raw is not None:
                        users, groups = parse_acl(raw).named_ids()
                        found.update(("acl-uid", u) for u in users)
                        found.update(("acl-gid", g) for g in groups)
        except (OSError, XattrFormatError) as exc:
            self._error(node, name, "examine", exc)
        return tuple(sorted(found))

    def _count_ids(self, ids: XattrIDs, path: str) -> None:
        for key in ids:
            self.xattr_ids[key] += 1
            ex = self.examples.setdefault(key, [])
            if len(ex) < 3:
                ex.append(path)

    def _audit_dir_ids(self, node: Node, fd: int) -> None:
        """Count the IDs the ACLs of the directory ``node`` (open as ``fd``) name."""
        try:
            names = _listed(fd)
        except OSError as exc:
            self._error(node, None, "listxattr", exc)
            return
        if _ACCESS_B not in names and _DEFAULT_B not in names:
            return
        self._count_ids(self._audit_ids(node, None, names, _reader(fd), False),
                        self._path(node))

    def _audit_file_ids(self, node: Node, fd: int, name: str, st: os.stat_result,
                        names: bytes) -> XattrIDs:
        """The IDs named by the ACLs and capability of the entry ``name`` of ``node``
        (open as ``fd``), whose extended attribute names are ``names``."""
        if not _translated(names):
            return ()
        return self._audit_ids(node, name, names, _reader(f"/proc/self/fd/{fd}/{name}"),
                               st.st_mode & _S_IFMT == _S_IFREG)

    def _found_again(self, held: list[Any], node: Node, name: str, nlink: int) -> None:
        """Count one more name of a hard-linked inode an audit holds."""
        held[0] += 1
        held[1] = nlink
        # the smallest path is the one reported, whatever the walk order
        path = self._path(node, name)
        if held[6] is None:
            held[6] = self._path(held[4], held[5])
        if path < held[6]:
            held[6] = path

    def _audit_list(self, node: Node) -> tuple[int, list[os.DirEntry[str]]] | None:
        """Open (verified) and list the directory ``node`` for an audit: its descriptor
        and entries, or ``None`` (the error recorded)."""
        fd = node.fd if node is self.root else -1
        if fd < 0:
            try:
                fd, _ = self.cache.open_new(node)
            except (OSError, _Changed) as exc:
                self._error(node, None, "open", exc)
                return None
        self._names.enter(fd)  # (in a worker: listed as ".", one fchdir for three calls)
        try:
            with self._names.scandir(fd) as it:
                return fd, list(it)
        except OSError as exc:
            self._error(node, None, "list", exc)
            return None

    def _audit_dir(  # noqa: C901 (the audit's per-entry loop, inlined: a call per entry costs)
            self, node: Node, stack: list[Node], links: dict[tuple[int, int], list[Any]],
            owners: dict[tuple[int, int], int],
            examples: dict[tuple[int, int], list[Example]]) -> int:
        """The audit's per-directory step: list ``node``, push its directories on
        ``stack``, hold its hard-linked inodes in ``links``, count the other inodes'
        owners (and with :attr:`audit_xattrs` the IDs their ACLs and capabilities name,
        and those of the directory's own ACLs); the number of inodes counted."""
        listed = self._audit_list(node)
        if listed is None:
            return 0
        fd, entries = listed
        xattrs = self.audit_xattrs
        if xattrs:
            self._audit_dir_ids(node, fd)
        # The hottest loop of an audit: a plain inode costs a stat, a dict update and,
        # with xattrs, one listxattr; its aliases are bound once.
        names_of = self._names.names if xattrs else None
        enoent = errno_mod.ENOENT
        dev = node.dev
        cross = self.cross_mounts
        owners_get = owners.get
        push = stack.append
        count = 0
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                if exc.errno != enoent:
                    self._error(node, e.name, "stat", exc)
                continue
            if st.st_dev != dev and not cross:
                self.skipped_mounts.append(self._path(node, e.name))
                continue
            fmt = st.st_mode & _S_IFMT
            ids: XattrIDs = ()
            linked = False
            if fmt == _S_IFDIR:
                push(Node(node, e.name, st.st_dev, st.st_ino))  # (its ACLs: when listed)
            else:
                linked = st.st_nlink > 1
                if linked:
                    key = (st.st_dev, st.st_ino)
                    held = links.get(key)
                    if held is not None:
                        self._found_again(held, node, e.name, st.st_nlink)
                        continue
                if names_of is not None and fmt != _S_IFLNK:
                    try:
                        names = names_of(fd, e.name)
                    except OSError as exc:
                        if exc.errno != enoent:  # (else removed since the listing)
                            self._error(node, e.name, "listxattr", exc)
                        names = b""
                    if names:
                        ids = self._audit_file_ids(node, fd, e.name, st, names)
            if linked:
                links[key] = [1, st.st_nlink, st.st_uid, st.st_gid, node, e.name, None, ids]
                continue
            count += 1
            pair = (st.st_uid, st.st_gid)
            n = owners_get(pair, 0)
            owners[pair] = n + 1
            if n < 3:
                examples.setdefault(pair, []).append((node, e.name))
            if ids:
                self._count_ids(ids, self._path(node, e.name))
        return count

    def count_owners(self, owners: dict[tuple[int, int], int],
                     examples: dict[tuple[int, int], list[Example]]) -> None:
        """Add inodes per ``(uid, gid)`` (and up to three examples each) to the counts
        per uid and per gid."""
        for (uid, gid), n in owners.items():
            self.uids[uid] += n
            self.gids[gid] += n
            for kind, value in (("uid", uid), ("gid", gid)):
                ex = self.examples.setdefault((kind, value), [])
                ex += [x if isinstance(x, str) else self._path(*x)
                       for x in examples.get((uid, gid), ())[:3 - len(ex)]]

    def count_held(self, held: list[AuditHeld]) -> None:
        """Count the hard-linked inodes an audit found, once each (the names of one
        inode may come from several walkers: merged here), and report those with fewer
        names found than links (a name outside the tree)."""
        merged: dict[tuple[int, int], list[Any]] = {}
        for key, found, nlink, uid, gid, path, ids in held:
            got = merged.get(key)
            if got is None:
                merged[key] = [found, nlink, uid, gid, path, ids]
            else:
                got[0] += found
                got[1] = max(got[1], nlink)
                got[4] = min(got[4], path)
                got[5] = got[5] or ids  # (one inode: any walker's reading of it)
        owners: dict[tuple[int, int], int] = {}
        examples: dict[tuple[int, int], list[Example]] = {}
        # (in path order, so that the examples do not depend on which walker found what)
        for found, nlink, uid, gid, path, ids in sorted(merged.values(), key=lambda v: v[4]):
            self.entries += 1
            self.hardlinks += found - 1
            n = owners.get((uid, gid), 0)
            owners[uid, gid] = n + 1
            if n < 3:
                examples.setdefault((uid, gid), []).append(path)
            if ids:
                self._count_ids(ids, path)
            if found < nlink:
                self.outside_links.append((path, nlink, found))
        self.outside_links.sort()
        self.count_owners(owners, examples)

    def close(self) -> None:
        """Close the directory descriptors, the root's included."""
        self.cache.close()
        if self.root.fd >= 0:
            self._names.forget(self.root.fd)
            os.close(self.root.fd)
            self.root.fd = -1

    def summary(self) -> dict[str, Any]:
        """The findings as plain data."""
        return {
            "entries": self.entries, "changed": self.changed, "unchanged": self.unchanged,
            "hardlinks": self.hardlinks, "modes_restored": self.modes_restored,
            "capabilities": self.capabilities, "acls": self.acls, "planned": self.planned,
            # (a walker that made another's planned changes can have uncounted some:
            # negative counts are kept for the sum)
            "owner_changes": {k: n for k, n in self.owner_changes.items() if n},
            "unmapped": self.unmapped,
            "skipped_mounts": self.skipped_mounts, "errors": self.errors,
            "stopped": self.stopped, "outside_links": self.outside_links,
            "outside_settled": self.outside_settled,
        }
