"""``shift_tree``, ``unshift_tree`` and ``audit_tree``: the coordinator of a shift.

It opens the root, builds the translation, takes the journal (resuming when one of the
same shift is there), runs the walk in one or more processes, and changes the root's own
inode last, so a root in its final state means a finished tree. See :mod:`.walk` for the
walk itself and :mod:`.journal` for resuming.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import json
import mmap
import os
import pickle
import selectors
import signal
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Literal

import attrs

from ..maps import IDMap, IDMapPair
from ..ranges import IDSet
from .journal import Journal, JournalError, JournalWriter, Record
from .report import (
    AuditReport,
    AuditState,
    OutsideLink,
    OutsideLinksError,
    OwnerChange,
    PathError,
    Progress,
    ShiftError,
    ShiftMark,
    ShiftReport,
    UnmappedID,
    UnmappedOwnersError,
)
from .translate import IDTranslator, Policy, check_policy, compose
from .walk import (
    DIR_FLAGS,
    FD_CACHE,
    INODE_MISMATCH,
    Counted,
    DirTable,
    Held,
    LinkShare,
    MoreNames,
    Pooled,
    Sent,
    SentPlan,
    Walker,
    WorkShare,
    open_root,
    own_cwd,
    progress_marks,
)

__all__ = [
    "MAX_WORKERS",
    "ShiftOptions",
    "audit_tree",
    "default_journal_path",
    "rollback_shift",
    "shift_tree",
    "unshift_tree",
]

OnError = Literal["stop", "continue"]


#: The most worker processes a walk takes: past the directories in flight at once, more
#: processes only contend (and a mistyped count must not fork thousands).
MAX_WORKERS = 64


def _check_workers(workers: int | None) -> None:
    """Refuse a worker count outside 1 to :data:`MAX_WORKERS` (``None``: the default).

    >>> _check_workers(65)
    Traceback (most recent call last):
    ...
    ValueError: workers must be from 1 to 64: 65
    """
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be from 1 to {MAX_WORKERS}: {workers}")


def _check_on_error(on_error: str) -> None:
    if on_error not in ("stop", "continue"):
        raise ValueError(f"on_error must be 'stop' or 'continue': {on_error!r}")


@attrs.frozen
class ShiftOptions:
    """How one shift runs: every keyword of :func:`shift_tree` but the maps and
    ``rollback`` (see there for each one's meaning), checked when built.

    >>> ShiftOptions(workers=1).policy
    'error'
    >>> ShiftOptions(workers=0)
    Traceback (most recent call last):
    ...
    ValueError: workers must be from 1 to 64: 0
    """

    policy: Policy = "error"
    overflow: tuple[int, int] | None = None
    dry_run: bool = False
    progress: Callable[[Progress], None] | None = None
    journal: str | os.PathLike[str] | None = None
    cross_mounts: bool = False
    on_error: OnError = "stop"
    workers: int | None = None
    durable: bool = True
    include_outside_links: bool = False
    trust_mark: bool = False

    def __attrs_post_init__(self) -> None:
        check_policy(self.policy)
        _check_on_error(self.on_error)
        _check_workers(self.workers)


class _SplitImpossible(Exception):
    """The tree cannot be split between workers (see ``Walker._mismatch``)."""


def _overflow_ids() -> tuple[int, int]:
    out = []
    for name in ("overflowuid", "overflowgid"):
        try:
            with open(f"/proc/sys/kernel/{name}", encoding="ascii") as f:
                out.append(int(f.read().strip()))
        except (OSError, ValueError):
            out.append(65534)
    return out[0], out[1]


def default_journal_path(root: str | os.PathLike[str]) -> str:
    """Where a shift of ``root`` keeps its journal: a hidden sibling of the tree.

    >>> default_journal_path("/var/lib/vols/web/")
    '/var/lib/vols/.web.userns-shift'
    """
    path = os.path.abspath(os.fspath(root))
    parent, name = os.path.split(path)
    if not name:
        raise JournalError("a shift of / has no sibling for its journal: give the journal's "
                           "path (journal=..., the CLI's --journal)",
                           reason="journal-required")
    return os.path.join(parent, f".{name}.userns-shift")


#: The root's mark of a finished shift: which shift, and the root's owner after it.
MARKER = "trusted.userns.shift"


def _sha256() -> Callable[[bytes], Any]:
    """SHA-256 without loading OpenSSL (``hashlib`` costs about 2.5 ms at start-up, and
    its teardown at exit): CPython's built-in module (``_sha2`` from 3.12, ``_sha256``
    before), else ``hashlib``. The digest is the same either way."""
    try:
        module = __import__("_sha2" if sys.version_info >= (3, 12) else "_sha256")
        sha256: Callable[[bytes], Any] = module.sha256
        return sha256
    except (ImportError, AttributeError):
        pass
    import hashlib  # (an interpreter built without its own SHA-256)

    return hashlib.sha256


def _marker_key(header: dict[str, Any]) -> str:
    data = json.dumps(header, sort_keys=True).encode()
    return str(_sha256()(data).hexdigest())[:32]


def _read_marker(fd: int) -> dict[str, Any] | None:
    """The root's mark as written by :func:`_set_marker`, or ``None``."""
    try:
        data = json.loads(os.getxattr(fd, MARKER))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _marker_done(fd: int, st: os.stat_result, key: str | None,
                 header: dict[str, Any] | None = None) -> bool:
    """True when the root says a shift by these very maps finished on it (and its owner
    agrees). The policy and overflow IDs it ran with do not matter: under any of them the
    IDs the maps produce are already there, and translating them again would shift them
    twice (``header``'s ``uid``/``gid`` are compared with the ones the mark records)."""
    if key is None:
        return False
    data = _read_marker(fd)
    if not data or data.get("owner") != [st.st_uid, st.st_gid]:
        return False
    if data.get("shift") == key:
        return True
    return (header is not None and "uid" in data
            and json.loads(json.dumps(header["uid"])) == data.get("uid")
            and json.loads(json.dumps(header["gid"])) == data.get("gid"))


def _set_marker(fd: int, key: str | None, owner: tuple[int, int],
                header: dict[str, Any] | None = None) -> bool:
    """Mark the root before its own change, the last step of a shift (best effort: a
    filesystem without ``trusted.*`` attributes gets no mark). The mark names the maps,
    so that ``audit`` can say which shift it is. True when it was written (not when the
    very same mark is there already)."""
    if key is None:
        return False
    mark: dict[str, Any] = {"shift": key, "owner": list(owner)}
    if header is not None:
        mark.update(uid=header["uid"], gid=header["gid"], policy=header["policy"],
                    overflow=header["overflow"])
    data = json.dumps(mark).encode()
    with contextlib.suppress(OSError):
        if os.getxattr(fd, MARKER) == data:
            return False
    try:
        os.setxattr(fd, MARKER, data)
    except OSError:
        return False
    return True


def _syncfs(fd: int) -> None:
    """Flush the filesystem holding ``fd`` (every chown of the shift) before the journal goes."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) == 0:
            return
    except (OSError, AttributeError):  # pragma: no cover - not Linux glibc
        pass
    os.sync()  # pragma: no cover


def _set_pdeathsig() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux glibc
        pass


class _Chan:
    """Length-prefixed pickles over a pipe."""

    def __init__(self, rfd: int = -1, wfd: int = -1) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.buf = b""
        self.queued: list[Any] = []

    def send(self, obj: object) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(struct.pack("<Q", len(data)) + data)
        while view:
            view = view[os.write(self.wfd, view):]

    def feed(self) -> list[Any] | None:
        """Read what is there; the complete messages, or ``None`` at end of file."""
        chunk = os.read(self.rfd, 1 << 20)
        if not chunk:
            return None
        self.buf += chunk
        out = []
        while len(self.buf) >= 8:
            (size,) = struct.unpack_from("<Q", self.buf)
            if len(self.buf) < 8 + size:
                break
            out.append(pickle.loads(self.buf[8:8 + size]))
            self.buf = self.buf[8 + size:]
        return out

    def recv(self) -> Any:
        """Block until one message arrives (the others that came with it wait their turn)."""
        while not self.queued:
            msgs = self.feed()
            if msgs is None:
                raise EOFError("the coordinator went away")
            self.queued += msgs
        return self.queued.pop(0)


class _WorkerShare:
    """A worker's side of the split by subtree (:class:`~userns.shift.walk.WorkShare`):
    requests over its channel to the coordinator, which keeps the pool of directories;
    ``hungry`` is one byte of memory shared by all, set while a worker waits."""

    def __init__(self, chan: _Chan, hungry: mmap.mmap) -> None:
        self.chan = chan
        self.flag = hungry

    def hungry(self) -> bool:
        return self.flag[0] != 0

    def give(self, dirs: list[Sent]) -> None:
        self.chan.send(("give", dirs))

    def take(self) -> list[Sent] | None:
        got: list[Sent] | None = self._take()
        return got

    def give_plans(self, plans: list[SentPlan]) -> None:
        self.chan.send(("give", plans))

    def take_plans(self) -> list[SentPlan] | None:
        got: list[SentPlan] | None = self._take()
        return got

    def _take(self) -> Any:
        self.chan.send(("take",))
        msg = self.chan.recv()
        return msg[1] if msg[0] == "work" else None

    def pool_links(self, table: DirTable, held: list[Held], counted: list[Counted],
                   walked: bool, more: MoreNames) -> LinkShare:
        self.chan.send(("links", table, held, walked, counted))
        msg = self.chan.recv()
        if msg[0] == "names":  # (inodes another worker found not right: their names)
            table, held, counted = more(msg[1])
            self.chan.send(("links", table, held, walked, counted))
            msg = self.chan.recv()
        return LinkShare(*msg[1:])


def _merge(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("entries", "changed", "unchanged", "hardlinks", "modes_restored",
            "capabilities", "acls", "planned")
    total: dict[str, Any] = dict.fromkeys(keys, 0)
    owner: Counter[tuple[str, int, int]] = Counter()
    unmapped: dict[tuple[str, int], list[Any]] = {}
    mounts: list[str] = []
    errors: list[PathError] = []
    outside: list[tuple[str, int, int]] = []
    # (a settled inode with a name outside the tree, as each worker that found a name
    # of it reports it: the smallest name is kept)
    settled: dict[tuple[int, int], tuple[str, int, int]] = {}
    stopped = False
    for s in summaries:
        for k in total:
            total[k] += s[k]
        owner.update(s["owner_changes"])
        for key, (count, examples) in s["unmapped"].items():
            slot = unmapped.setdefault(key, [0, []])
            slot[0] += count
            slot[1] = (slot[1] + examples)[:3]
        mounts += s["skipped_mounts"]
        errors += s["errors"]
        outside += s["outside_links"]
        for key, link in s.get("outside_settled", {}).items():
            settled[key] = min(settled.get(key, link), link)
        stopped = stopped or s["stopped"]
    total.update(owner_changes=owner, unmapped=unmapped, skipped_mounts=mounts,
                 errors=errors, stopped=stopped, outside_links=outside + list(settled.values()))
    return total


def _report(root: str, merged: dict[str, Any], **extra: Any) -> ShiftReport:
    owner = tuple(OwnerChange(k, o, n, c) for (k, o, n), c in sorted(merged["owner_changes"]
                                                                     .items()) if c > 0)
    unmapped = tuple(UnmappedID(k, i, c, tuple(ex))
                     for (k, i), (c, ex) in sorted(merged["unmapped"].items()))
    return ShiftReport(
        root=root,
        entries=merged["entries"],
        changed=merged["changed"],
        unchanged=merged["unchanged"],
        hardlinks=merged["hardlinks"],
        modes_restored=merged["modes_restored"],
        capabilities=merged["capabilities"],
        acls=merged["acls"],
        owner_changes=owner,
        unmapped=unmapped,
        outside_links=tuple(OutsideLink(*o) for o in sorted(merged["outside_links"])),
        skipped_mounts=tuple(sorted(merged["skipped_mounts"])),
        errors=tuple(merged["errors"]),
        **extra,
    )


class _Shift:
    """One run of :func:`shift_tree` (the state the helpers share)."""

    def __init__(self, root: str, uid_map: IDMap, gid_map: IDMap, policy: Policy,
                 overflow: tuple[int, int], cross_mounts: bool, stop: bool,
                 progress: Callable[[Progress], None] | None,
                 include_outside_links: bool = False) -> None:
        self.root = root
        self.uid_map, self.gid_map = uid_map, gid_map
        self.policy = policy
        self.overflow = overflow
        self.cross_mounts = cross_mounts
        self.stop = stop
        self.user_progress = progress
        self.include_outside_links = include_outside_links
        self.done_u: IDSet | None = None
        self.done_g: IDSet | None = None
        self.records: dict[tuple[int, int], Record] = {}
        self.record_plain = True
        self.track_all = True
        self.exclude: frozenset[tuple[int, int]] = frozenset()

    def translators(self) -> tuple[IDTranslator, IDTranslator]:
        return (IDTranslator(self.uid_map, self.policy, overflow=self.overflow[0],
                             done=self.done_u),
                IDTranslator(self.gid_map, self.policy, overflow=self.overflow[1],
                             done=self.done_g))

    def walker(self, fd: int, st: os.stat_result, journal: JournalWriter | None,
               part: int = 0, parts: int = 1,
               progress: Callable[[str, int], None] | None = None,
               fd_cache: int = FD_CACHE, share: WorkShare | None = None) -> Walker:
        u, g = self.translators()
        return Walker(fd, st, self.root, uid=u, gid=g, records=self.records,
                      journal=journal, record_plain=self.record_plain,
                      track_all=self.track_all,
                      cross_mounts=self.cross_mounts, stop_on_error=self.stop,
                      part=part, parts=parts, progress=progress, exclude=self.exclude,
                      include_outside_links=self.include_outside_links, fd_cache=fd_cache,
                      share=share)

    def progress(self, phase: str, done: int, total: int | None = None) -> None:
        if self.user_progress is not None:
            self.user_progress(Progress(phase, done, total))


def _verify(run: _Shift) -> None:
    """Make ``run`` a verifying walk of a tree this very shift finished once: every ID
    the shift produces (and the overflow ID it may write) is taken as right, so only
    what is wrong is changed: IDs the map translates that are not among its results
    (files added with container IDs since, a directory re-owned to 0). Idempotent, so
    an inode seen twice is harmless."""
    u, g = run.translators()
    done = []
    for side, ovf in ((u, run.overflow[0]), (g, run.overflow[1])):
        ids = side.map.host_ids()
        if run.policy == "overflow":
            ids = ids | IDSet.of(ovf)
        done.append(ids)
    run.done_u, run.done_g = done
    run.record_plain = True  # the fixes are few: each one journalled (for a rollback)
    run.track_all = False


def _reopen(fd: int, st: os.stat_result) -> int:
    """A new open file description of the root: a directory's read offset lives in its
    open file description, so walkers sharing one (after ``fork``) would split its listing."""
    new = os.open(".", DIR_FLAGS, dir_fd=fd)
    now = os.fstat(new)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):  # pragma: no cover - defensive
        os.close(new)
        raise OSError(errno.ESTALE, "the root changed under the shift")
    return new


def _run_inprocess(run: _Shift, fd: int, st: os.stat_result, journal: Journal | None,
                   preflight: bool, decide: Callable[[dict[str, Any]], bool],
                   dry_run: bool = False) -> dict[str, Any]:
    writer = journal.writer("w0") if journal is not None else None
    walker = run.walker(_reopen(fd, st), st, writer, progress=run.progress)
    try:
        if not preflight:
            walker.scan(stream=True)
        else:
            walker.scan(stream=False)
            if dry_run:
                walker.count_plans()
            elif decide(walker.summary()):
                total = walker.planned
                walker.progress = lambda phase, n: run.progress(phase, n, total)
                if writer is not None:
                    writer.flush()
                walker.apply()
        return walker.summary()
    finally:
        walker.close()
        if writer is not None:
            writer.close()


def _more_descriptors() -> int:
    """In a worker (a process of the shift's own): raise the soft open-file limit toward
    the hard one, and return how many directory descriptors the walk may keep open, so
    that the apply phase finds the directories the scan opened still open."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = WORKER_FILES if hard == resource.RLIM_INFINITY else min(hard, WORKER_FILES)
    if want > soft:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return WORKER_FILES // 4  # (the cache takes at most a quarter of the limit it finds)


#: The open-file limit a worker asks for (at most its hard limit).
WORKER_FILES = 1 << 16


def _worker_main(run: _Shift, fd: int, st: os.stat_result, journal: Journal, part: int,
                 parts: int, preflight: bool, chan: _Chan, hungry: mmap.mmap | None) -> None:
    writer = journal.writer(f"w{part}")
    share = _WorkerShare(chan, hungry) if hungry is not None else None
    walker = run.walker(_reopen(fd, st), st, writer,
                        *((0, 1) if share is not None else (part, parts)),
                        progress=lambda phase, n: chan.send(("progress", phase, n)),
                        fd_cache=_more_descriptors(), share=share)
    if not preflight:
        walker.scan(stream=True)
    else:
        walker.scan(stream=False)
        chan.send(("scanned", walker.summary()))
        if chan.recv() == "go":
            writer.flush()
            walker.apply(shared=share is not None)
    writer.flush()
    chan.send(("done", walker.summary()))


def _run_forked(run: _Shift, fd: int, st: os.stat_result, journal: Journal, parts: int,
                preflight: bool, decide: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Walk with ``parts`` worker processes: split by subtree (with work sharing) when a
    second translation of an ID is harmless, else by inode number (see
    :mod:`userns.shift.walk`)."""
    hungry = mmap.mmap(-1, 1) if not run.track_all else None

    def main(part: int, chan: _Chan) -> None:
        _worker_main(run, fd, st, journal, part, parts, preflight, chan, hungry)

    try:
        with _forked(parts, main) as kids:
            pool = _Pool(kids, hungry) if hungry is not None else None
            if pool is not None:
                pool.include_outside_links = run.include_outside_links
            return _collect(run, kids, decide, pool, journal.path)
    finally:
        if hungry is not None:
            hungry.close()


@contextlib.contextmanager
def _forked(parts: int, main: Callable[[int, _Chan], None]
            ) -> Iterator[list[tuple[int, _Chan]]]:
    """``parts`` worker processes, each running ``main(part, channel)`` and reporting an
    exception as a ``crash`` message; killed when the block raises, waited for always."""
    parent_pid = os.getpid()
    kids: list[tuple[int, _Chan]] = []
    try:
        for part in range(parts):
            up_r, up_w = os.pipe2(os.O_CLOEXEC)
            down_r, down_w = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child (coverage cannot see it)
                code = 1
                try:
                    os.close(up_r)
                    os.close(down_w)
                    for _, other in kids:
                        os.close(other.rfd)
                        os.close(other.wfd)
                    _set_pdeathsig()
                    if os.getppid() != parent_pid:
                        os._exit(1)
                    chan = _Chan(down_r, up_w)
                    # A worker makes no garbage cycles worth collecting and exits when
                    # done: without the collector's passes a walk takes about 5% less CPU.
                    gc.disable()
                    own_cwd()  # (the worker's own: its walkers list xattrs by bare names)
                    try:
                        main(part, chan)
                        code = 0
                    except BaseException as exc:
                        import traceback  # (only to report a crash)

                        chan.send(("crash", f"{type(exc).__name__}: {exc}",
                                   traceback.format_exc()))
                finally:
                    os._exit(code)
            os.close(up_w)
            os.close(down_r)
            kids.append((pid, _Chan(up_r, down_w)))
        yield kids
    except BaseException:
        for pid, _ in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise
    finally:
        for pid, chan in kids:
            os.close(chan.rfd)
            os.close(chan.wfd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


class _Pool:
    """The coordinator's side of the split by subtree: the directories given away and
    not yet taken, the workers waiting for some, and the hard-linked inodes' names."""

    def __init__(self, kids: list[tuple[int, _Chan]], hungry: mmap.mmap) -> None:
        self.kids = kids
        self.hungry = hungry
        # the root, for the first worker that asks (after the walk: planned changes)
        self.queue: list[Any] = [([(-1, "", 0, 0)], 0)]
        self.waiting: list[int] = []
        self.over = False
        self.held: dict[int, tuple[DirTable, list[Held]]] = {}
        self.counted: dict[int, list[Counted]] = {}
        #: the workers asked for the names of settled inodes another worker found not
        #: right, not answered yet (see _ask_names); whether they were asked
        self.asked: set[int] = set()
        self.names_asked = False
        self.walked = True  # every worker walked all it took
        #: names of hard-linked inodes found by more than one worker, less one per inode
        #: (each worker counted its own extra names)
        self.hardlinks = 0
        #: the settled hard-linked inodes counted here (see :data:`Counted`)
        self.entries = 0
        self.unchanged = 0
        #: whether the workers were told to change an inode with a name outside the tree
        self.include_outside_links = False

    def reset(self) -> None:
        """Empty again, for the planned changes after the walk's directories."""
        self.queue = []
        self.waiting = []
        self.over = False
        self.hungry[0] = 0

    def handle(self, i: int, msg: Any) -> bool:
        """Act on worker ``i``'s message if it is about the sharing."""
        if msg[0] == "give":
            self.queue += msg[1]
        elif msg[0] == "take":
            self.waiting.append(i)
        elif msg[0] == "links":
            self.held[i] = (msg[1], msg[2])
            self.walked = self.walked and msg[3]
            self.counted[i] = msg[4]
            self.asked.discard(i)
            if len(self.held) == len(self.kids) and not self.asked:
                if not self.names_asked:
                    self.names_asked = True
                    self.asked = self._ask_names()
                if not self.asked:
                    self._deal_links()
            return True
        else:
            return False
        self._dispatch()
        return True

    def _dispatch(self) -> None:
        while self.waiting and self.queue:
            i = self.waiting.pop()
            n = max(1, len(self.queue) // (len(self.waiting) + 1))
            chunk = self.queue[:n]
            del self.queue[:n]
            self.kids[i][1].send(("work", chunk))
        if self.waiting and len(self.waiting) == len(self.kids) and not self.over:
            self.over = True  # every worker waits, nothing is left: the walk is over
            for i in self.waiting:
                self.kids[i][1].send(("over",))
            self.waiting.clear()
        self.hungry[0] = 1 if self.waiting else 0

    def _deal_links(self) -> None:
        """Merge the names every worker found per inode and give each inode to the
        worker that found most of its names, as complete (all its names found) or not.
        An inode only one worker found is named to it by its key alone (it holds the
        names); the others come with their names and the tables of their directories."""
        # key -> [link count, [(worker, its names), ...]]: the names are tagged with
        # their worker only for the inodes several workers found
        found_by: dict[tuple[int, int], list[Any]] = {}
        for j in sorted(self.held):
            for key, nlink, theirs in self.held[j][1]:
                got = found_by.get(key)
                if got is None:
                    found_by[key] = [nlink, [(j, theirs)]]
                else:
                    got[0] = max(got[0], nlink)
                    got[1].append((j, theirs))
        parts = len(self.kids)
        replies = [_LinkReply() for _ in range(parts)]
        self._deal_counted(found_by, replies)
        for key, (nlink, by) in found_by.items():
            if len(by) == 1:
                j, theirs = by[0]
                complete = len(theirs) >= nlink
                if complete or self.walked:  # (else its other names were not looked for)
                    to = replies[j]
                    (to.mine_full if complete else to.mine_partial).append(key)
                continue
            # One name counts once: a directory renamed during the walk can be listed by
            # two workers, and its names must not make up for a name outside the tree.
            seen: set[tuple[int, int, str]] = set()
            found = []
            for j, theirs in by:
                table = self.held[j][0]
                for i, name in theirs:
                    ident = (table[i][2], table[i][3], name)
                    if ident not in seen:
                        seen.add(ident)
                        found.append((j, i, name))
            # (each worker counted its own names beyond its first)
            self.hardlinks += len(found) - 1 - sum(len(theirs) - 1 for _, theirs in by)
            complete = len(found) >= nlink
            if not complete and not self.walked:
                continue
            # most names wins; a tie goes by inode number, so that the inodes found by
            # several workers are dealt evenly
            most = max(len(theirs) for _, theirs in by)
            tied = [j for j, theirs in by if len(theirs) == most]
            to = replies[tied[key[1] % len(tied)]]
            to.need.update(j for j, _ in by)
            if complete:
                to.full.append((key, nlink, found))
            else:
                to.partial.append(((key, nlink, found), len(found)))
        for i, (_, chan) in enumerate(self.kids):
            r = replies[i]
            tables = [None if j == i else self.held[j][0] if j in r.need else [(-1, "", 0, 0)]
                      for j in range(parts)]
            chan.send(("links", tables, r.full, r.partial, r.mine_full, r.mine_partial,
                       r.settled_partial))

    def _ask_names(self) -> set[int]:
        """Ask each worker that counted a settled inode another worker holds by names
        (found not right: it changed between their looks) for that inode's names, so
        that it is dealt with all of them; the workers asked (they pool again)."""
        held_keys = {key for _, held in self.held.values() for key, _, _ in held}
        asked: set[int] = set()
        for j, counted in self.counted.items():
            mixed = [key for key, _, _ in counted if key in held_keys]
            if mixed:
                self.kids[j][1].send(("names", mixed))
                asked.add(j)
        return asked

    def _deal_counted(self, found_by: dict[tuple[int, int], list[Any]],
                      replies: list[_LinkReply]) -> None:
        """The settled hard-linked inodes (found right when first seen: nothing is
        written to them), pooled by their count of names: counted here, once each; one
        with fewer names found than links is reported by every worker that found a name
        of it (the smallest name is kept), unless such inodes are to be changed (they
        are right: counted unchanged). An inode also held by names (a worker found it
        not right: it changed during the walk) is not counted here: the workers that
        counted it were asked for its names (:meth:`_ask_names`)."""
        counts: dict[tuple[int, int], list[Any]] = {}
        for j in sorted(self.counted):
            for key, nlink, found in self.counted[j]:
                got = counts.get(key)
                if got is None:
                    counts[key] = [nlink, found, [j]]
                else:
                    got[0] = max(got[0], nlink)
                    got[1] += found
                    got[2].append(j)
        for key, (nlink, found, by) in counts.items():
            if key in found_by:  # (its names were asked for: dealt by them)
                continue
            self.hardlinks += len(by) - 1  # (each worker counted its own extra names)
            if found >= nlink or self.include_outside_links:
                self.entries += 1
                self.unchanged += 1
            elif self.walked:
                for j in by:
                    replies[j].settled_partial.append((key, found))


class _LinkReply:
    """What one worker is told after the hard-linked names are pooled."""

    def __init__(self) -> None:
        self.full: list[Pooled] = []
        self.partial: list[tuple[Pooled, int]] = []
        self.mine_full: list[tuple[int, int]] = []
        self.mine_partial: list[tuple[int, int]] = []
        self.settled_partial: list[tuple[tuple[int, int], int]] = []
        self.need: set[int] = set()  # the workers whose tables it needs


def _messages(kids: list[tuple[int, _Chan]], what: str, died: str,
              known: Callable[[], ShiftReport]) -> Iterator[tuple[int, Any]]:
    """Every message of the workers as ``(worker, message)``, until each has closed its
    channel. A worker that closes it before its ``done`` message died; one that sends
    ``crash`` failed: both raise :class:`ShiftError` with the report ``known()`` gives
    (``what`` names the walk, ``died`` ends the message of a death)."""
    sel = selectors.DefaultSelector()
    for i, (_, chan) in enumerate(kids):
        sel.register(chan.rfd, selectors.EVENT_READ, i)
    finished: set[int] = set()
    open_ = len(kids)
    try:
        while open_:
            for key, _ in sel.select():
                i = key.data
                msgs = kids[i][1].feed()
                if msgs is None:
                    sel.unregister(key.fd)
                    open_ -= 1
                    if i not in finished:
                        raise ShiftError(f"{what} worker {i} died{died}", known(),
                                         reason="worker-died")
                    continue
                for msg in msgs:
                    if msg[0] == "crash":
                        raise ShiftError(f"{what} worker {i} failed: {msg[1]}\n{msg[2]}",
                                         known(), reason="worker-failed")
                    if msg[0] == "done":
                        finished.add(i)
                    yield i, msg
    finally:
        sel.close()


def _collect(run: _Shift, kids: list[tuple[int, _Chan]],
             decide: Callable[[dict[str, Any]], bool], pool: _Pool | None,
             journal: str) -> dict[str, Any]:
    scanned: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    counts: dict[tuple[str, int], int] = {}
    total: int | None = None

    def known() -> ShiftReport:  # (what the workers that finished said: not the tree)
        return _report(run.root, _merge(list(done.values())), complete=False,
                       workers=len(kids), journal=journal)

    for i, msg in _messages(kids, "shift", "; the journal is kept, run the shift again to "
                            "resume", known):
        if pool is not None and pool.handle(i, msg):
            if pool.entries and ("scan", -1) not in counts:
                # the settled inodes the pool counted: scanned, by no worker; reported
                # at each multiple of PROGRESS_EVERY they take the count past
                before = sum(v for (p, _), v in counts.items() if p == "scan")
                counts["scan", -1] = pool.entries
                for at in progress_marks(before, before + pool.entries):
                    run.progress("scan", at)
            continue
        if msg[0] == "progress":
            counts[msg[1], i] = msg[2]
            phase = msg[1]
            run.progress(phase, sum(v for (p, _), v in counts.items() if p == phase),
                         total if phase == "apply" else None)
        elif msg[0] == "scanned":
            scanned[i] = msg[1]
            if len(scanned) == len(kids):
                merged = _merge(list(scanned.values()) + _counted(pool))
                go = decide(merged)
                total = merged["planned"]
                if pool is not None:
                    pool.reset()  # (the plans are shared next)
                for _, chan in kids:
                    chan.send("go" if go else "abort")
        elif msg[0] == "done":
            done[i] = msg[1]
    return _merge([done[i] for i in sorted(done)] + _counted(pool))


def _counted(pool: _Pool | None) -> list[dict[str, Any]]:
    """What the pool counted, as one more worker's summary (none without a pool)."""
    if pool is None:
        return []
    return [{**_merge([]), "hardlinks": pool.hardlinks, "entries": pool.entries,
             "unchanged": pool.unchanged}]


def shift_tree(
    root: str | os.PathLike[str],
    target: IDMapPair | None,
    *,
    source: IDMapPair | None = None,
    policy: Policy = "error",
    overflow: tuple[int, int] | None = None,
    dry_run: bool = False,
    progress: Callable[[Progress], None] | None = None,
    journal: str | os.PathLike[str] | None = None,
    cross_mounts: bool = False,
    on_error: OnError = "stop",
    workers: int | None = None,
    durable: bool = True,
    include_outside_links: bool = False,
    trust_mark: bool = False,
    rollback: bool = False,
) -> ShiftReport:
    """Re-own every inode under ``root`` from ``source`` host IDs to ``target`` host IDs.

    An inode owned by host ID ``h`` (uids and gids separately) gets
    ``target.to_host(source.to_container(h))``; with no ``source`` the tree holds
    container IDs, with no ``target`` the result is container IDs (an unshift, see
    :func:`unshift_tree`). Named ACL entries and v3 capability root uids are translated
    alike; setuid/setgid modes and capabilities survive the ``chown``; hard-linked inodes
    are changed once; symlinks are never followed; other filesystems are not entered
    unless ``cross_mounts``; an inode already right is not touched.

    ``policy`` decides IDs that cannot be translated: ``error`` (a preflight finds them
    all and :class:`UnmappedOwnersError` is raised before any change), ``skip`` or
    ``overflow`` (the IDs in ``overflow``, by default the kernel's overflowuid/gid).
    ``on_error`` decides per-path failures (``stop`` raises :class:`ShiftError` after
    the running batch, ``continue`` reports them); either way the journal is kept and
    the same call later resumes. ``dry_run`` changes nothing and reports the plan.
    ``progress`` gets :class:`Progress` values. ``workers`` processes share the walk
    (default: two when there are two CPUs).

    A run on a tree whose root carries the mark of this very shift (it finished once)
    verifies the tree: a walk that takes every ID the shift produces as right and
    changes only what is wrong (``verified`` is then true; ``changed`` counts the
    fixes). ``trust_mark=True`` skips the walk and reports ``already_complete`` (not
    verified). ``rollback=True`` undoes an interrupted run of this shift instead (see
    :func:`rollback_shift`).

    A hard-linked inode with a name outside the tree (its link count is larger than the
    names found under ``root``) is never changed by default: changing it would change
    the file outside. Policy ``error`` refuses the tree (:class:`OutsideLinksError`,
    nothing changed); ``skip``/``overflow`` leave such inodes and list them in
    ``outside_links``; ``include_outside_links=True`` re-owns them anyway.

    >>> import tempfile, os
    >>> from userns import IDMap, IDMapPair
    >>> with tempfile.TemporaryDirectory() as d:
    ...     os.mkdir(f"{d}/tree"); os.chown(f"{d}/tree", 0, 0)
    ...     r = shift_tree(f"{d}/tree", IDMapPair.both(IDMap.single(0, 100000, 65536)),
    ...                    workers=1)
    ...     os.stat(f"{d}/tree").st_uid, r.changed, r.complete
    (100000, 1, True)
    """
    options = ShiftOptions(policy=policy, overflow=overflow, dry_run=dry_run, progress=progress,
                           journal=journal, cross_mounts=cross_mounts, on_error=on_error,
                           workers=workers, durable=durable,
                           include_outside_links=include_outside_links, trust_mark=trust_mark)
    if rollback:
        return _rollback(root, target, source, options)
    return _shift(root, target, source, options)


def _shift(root: str | os.PathLike[str], target: IDMapPair | None, source: IDMapPair | None,
           options: ShiftOptions) -> ShiftReport:
    try:
        return _shift_once(root, target, source, options)
    except _SplitImpossible:
        # Nothing was changed twice: the workers stopped before the hard-linked inode
        # whose entry misled them. One process resumes from the journal.
        return _shift_once(root, target, source, attrs.evolve(options, workers=1))


def _change_root(coord: Walker, fd: int, rec: Record) -> bool:
    """Give the root its final state, the last change of a run; false when the kernel
    refuses it (an immutable root, say), the error then in ``coord.errors``."""
    try:
        coord.set_state(fd, os.fstat(fd), rec)
    except OSError as exc:
        coord.uncount_record(rec)
        coord.record_error(coord.root, None, "apply", exc)
        return False
    coord.changed += 1
    return True


def _shift_once(  # noqa: C901 (the coordinator's steps in their order: open, journal, mark, walk, finish)
    root: str | os.PathLike[str], target: IDMapPair | None, source: IDMapPair | None,
    options: ShiftOptions,
) -> ShiftReport:
    policy, dry_run, journal = options.policy, options.dry_run, options.journal
    on_error, durable, trust_mark = options.on_error, options.durable, options.trust_mark
    uid_map = compose(target.uid if target else None, source.uid if source else None)
    gid_map = compose(target.gid if target else None, source.gid if source else None)
    root_path = os.fspath(root)
    ovf = options.overflow if options.overflow is not None else _overflow_ids()
    run = _Shift(root_path, uid_map, gid_map, policy, ovf, options.cross_mounts,
                 on_error == "stop", options.progress, options.include_outside_links)
    u_done, g_done = (t.idempotent_set() for t in run.translators())
    # When the IDs translated and the IDs produced are disjoint, translating is
    # idempotent: a resume may take a produced ID as done, and an inode seen twice is
    # harmless; plain inodes are then journalled only under policy skip (whose untouched
    # IDs could be produced IDs too: a rollback must tell them apart).
    idempotent = u_done is not None and g_done is not None
    run.track_all = not idempotent
    run.record_plain = not idempotent or policy == "skip"
    nworkers = options.workers if options.workers is not None else min(2, os.cpu_count() or 1)
    preflight = policy == "error" or dry_run

    if not os.path.isdir("/proc/self/fd"):
        # Inodes with a mode, capability or ACL to restore are changed through
        # /proc/self/fd/N (the only race-free way to name a verified non-directory).
        raise ShiftError("/proc is not mounted: the shifter needs /proc/self/fd",
                         ShiftReport(root=root_path, complete=False), reason="no-proc")
    try:
        fd, st = open_root(root_path)
    except OSError as exc:
        raise ShiftError(f"cannot open the root {root_path!r}: {exc.strerror} (it must be a "
                         "directory, not a symlink)", ShiftReport(root=root_path,
                                                                 complete=False),
                         reason="bad-root") from exc
    jr: Journal | None = None
    root_writer: JournalWriter | None = None
    extra_resumed = False
    try:
        if journal is not None:
            jpath: str | None = os.fspath(journal)
        elif dry_run and not os.path.split(os.path.abspath(root_path))[1]:
            jpath = None  # a dry run of / needs no journal, and / has no sibling for one
        else:
            jpath = default_journal_path(root)
        header = {"root": [st.st_dev, st.st_ino], "uid": uid_map.to_triples(),
                  "gid": gid_map.to_triples(), "policy": policy, "overflow": list(ovf)}
        marker = _marker_key(header)
        # The root carries the mark of this very shift: it finished once. Unless told to
        # trust the mark, the run verifies the tree (see _verify), journalled as such.
        marked = _marker_done(fd, st, marker, header)
        jheader = {**header, "verify": marked}
        verify = marked
        if dry_run:
            interrupted = (Journal.peek(jpath, jheader, adopt=("verify",))
                           if jpath is not None else None)
            if interrupted is None and marked and trust_mark:
                return ShiftReport(root=root_path, dry_run=True, already_complete=True)
            if interrupted is not None:  # plan what a resume would still do
                assert jpath is not None
                found = Journal.read_header(jpath) or {}
                verify = bool(found.get("verify"))
                run.records = interrupted
                if idempotent:
                    run.done_u, run.done_g = u_done, g_done
                extra_resumed = True
        if not dry_run:
            assert jpath is not None
            jr = Journal.open(jpath, jheader, durable=durable, adopt=("verify",))
            if not jr.resumed and marked and trust_mark:
                # Told to trust the mark: nothing is checked, and the report says so.
                jr.remove()
                jr = None
                return ShiftReport(root=root_path, entries=0, already_complete=True,
                                   workers=nworkers)
            verify = bool(jr.header.get("verify"))
            jst = os.stat(jr.path)
            run.exclude = frozenset({(jst.st_dev, jst.st_ino)})  # a journal inside the tree
            if jr.resumed:
                run.records = jr.records()
                if idempotent:
                    run.done_u, run.done_g = u_done, g_done
        if verify:
            _verify(run)
        root_writer = jr.writer("root") if jr is not None else None
        coord = run.walker(fd, st, root_writer)
        root_rec = coord.examine_dir(coord.root, fd, st)
        coord.planned += root_rec is not None
        extra: dict[str, Any] = {"dry_run": dry_run,
                                 "resumed": bool(jr and jr.resumed) or extra_resumed,
                                 "journal": jr.path if jr else jpath if extra_resumed else None,
                                 "workers": nworkers, "verified": verify}

        def decide(merged: dict[str, Any]) -> bool:
            if dry_run:
                return False
            return not (merged["unmapped"] or coord.unmapped or merged["stopped"]
                        or (policy == "error" and merged["outside_links"]))

        if nworkers == 1 or dry_run:
            extra["workers"] = 1
            walked = _run_inprocess(run, fd, st, jr, preflight, decide, dry_run)
        else:
            assert jr is not None
            walked = _run_forked(run, fd, st, jr, nworkers, preflight, decide)
        merged = _merge([walked, coord.summary()])
        if any(e.reason == INODE_MISMATCH for e in merged["errors"]):
            raise _SplitImpossible
        if dry_run:
            if root_rec is not None:
                coord.count_record(root_rec)  # the root's own change, made last
                merged = _merge([walked, coord.summary()])
            return _report(root_path, merged, complete=False, **extra)
        assert jr is not None and root_writer is not None
        if policy == "error" and merged["unmapped"]:
            report = _report(root_path, merged, complete=False, **extra)
            if not jr.resumed:
                root_writer.close()
                jr.remove()
                jr = None
            raise UnmappedOwnersError(report)
        if policy == "error" and merged["outside_links"]:
            report = _report(root_path, merged, complete=False, **extra)
            if not jr.resumed:
                root_writer.close()
                jr.remove()
                jr = None
            raise OutsideLinksError(report)
        if merged["errors"] or merged["stopped"]:
            if root_rec is not None:  # the root's own change is made last: not now
                coord.uncount_record(root_rec)
                merged = _merge([walked, coord.summary()])
            report = _report(root_path, merged, complete=False, **extra)
            if on_error == "stop":
                first = merged["errors"][0] if merged["errors"] else None
                where = f": {first.path}: {first.message}" if first else ""
                raise ShiftError(f"shift stopped at an error{where}; the journal "
                                 f"{jr.path} is kept, run the same shift again to resume",
                                 report)
            return report
        # Everything below the root is done: the root's own change marks the tree done.
        final = (root_rec.new_uid, root_rec.new_gid) if root_rec else (st.st_uid, st.st_gid)
        if root_rec is not None:
            root_writer.flush()
        marked_now = _set_marker(fd, marker, final, header)
        if root_rec is not None and not _change_root(coord, fd, root_rec):
            # (the mark names an owner the root does not have: the next run resumes)
            root_writer.close()
            report = _report(root_path, _merge([walked, coord.summary()]), complete=False,
                             **extra)
            if on_error == "stop":
                raise ShiftError(f"shift stopped at an error: {root_path}: "
                                 f"{coord.errors[-1].message}; the journal {jr.path} is "
                                 "kept, run the same shift again to resume", report)
            return report
        root_writer.close()
        # syncfs flushes every dirty page of the filesystem, not only this shift's: a run
        # that wrote nothing (a verifying re-run that found the tree right, its mark
        # already there, no interrupted run resumed) has nothing of its own to flush.
        if durable and (root_rec is not None or merged["changed"] or marked_now
                        or jr.resumed):
            _syncfs(fd)
        jr.remove()
        jr = None
        merged = _merge([walked, coord.summary()])
        return _report(root_path, merged, complete=True, **extra)
    finally:
        if root_writer is not None:  # (every way out: a path error, a refusal, a crash)
            root_writer.close()
        if jr is not None:
            jr.close()
        os.close(fd)


def unshift_tree(
    root: str | os.PathLike[str],
    mapping: IDMapPair,
    *,
    policy: Policy = "error",
    overflow: tuple[int, int] | None = None,
    dry_run: bool = False,
    progress: Callable[[Progress], None] | None = None,
    journal: str | os.PathLike[str] | None = None,
    cross_mounts: bool = False,
    on_error: OnError = "stop",
    workers: int | None = None,
    durable: bool = True,
    include_outside_links: bool = False,
    trust_mark: bool = False,
) -> ShiftReport:
    """Undo :func:`shift_tree`: host IDs of ``mapping`` back to container IDs.

    The same as ``shift_tree(root, None, source=mapping, ...)`` with the same keywords,
    except on a tree whose shift by ``mapping`` (``shift_tree(root, mapping)``) was
    interrupted: its journal is pending, the tree is half shifted, and an unshift would
    translate back what the shift had not reached. That is a rollback
    (:func:`rollback_shift`): every inode the journal says was changed gets its original
    state back.
    """
    options = ShiftOptions(policy=policy, overflow=overflow, dry_run=dry_run, progress=progress,
                           journal=journal, cross_mounts=cross_mounts, on_error=on_error,
                           workers=workers, durable=durable,
                           include_outside_links=include_outside_links, trust_mark=trust_mark)
    pending = _pending_shift(root, mapping, None, journal)
    if pending is not None:
        jpath, found = pending
        if found.get("verify"):
            raise JournalError(f"a verifying re-run of the shift of {os.fspath(root)} by this "
                               f"map was interrupted (journal {jpath}): run that shift again "
                               "to finish it, then unshift", reason="journal-pending")
        if dry_run:
            raise JournalError(f"the shift of {os.fspath(root)} by this map was interrupted "
                               f"(journal {jpath}): an unshift rolls it back, and a rollback "
                               "has no dry run; run the unshift, or run the shift again to "
                               "finish it", reason="journal-pending")
        return _rollback(root, mapping, None, options)
    return _shift(root, None, mapping, options)


def _pending_shift(root: str | os.PathLike[str], target: IDMapPair | None,
                   source: IDMapPair | None,
                   journal: str | os.PathLike[str] | None) -> tuple[str, dict[str, Any]] | None:
    """The path and header of the pending journal of an interrupted shift of ``root``
    from ``source`` to ``target`` (any policy), or ``None``."""
    try:
        jpath = os.fspath(journal) if journal is not None else default_journal_path(root)
        st = os.stat(root, follow_symlinks=False)
    except (JournalError, OSError):
        return None
    found = Journal.read_header(jpath)
    if found is None:
        return None
    uid_map = compose(target.uid if target else None, source.uid if source else None)
    gid_map = compose(target.gid if target else None, source.gid if source else None)
    if (found.get("root") == [st.st_dev, st.st_ino] and found.get("uid") == uid_map.to_triples()
            and found.get("gid") == gid_map.to_triples()):
        return jpath, found
    return None


def rollback_shift(
    root: str | os.PathLike[str],
    target: IDMapPair | None,
    *,
    source: IDMapPair | None = None,
    journal: str | os.PathLike[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
    cross_mounts: bool = False,
    on_error: OnError = "stop",
    durable: bool = True,
) -> ShiftReport:
    """Undo an interrupted :func:`shift_tree` with the same ``target`` and ``source``.

    Every inode the shift's journal says was changed gets back its original owner,
    capability and ACL values and mode; when the shift journalled only inodes with a
    mode or attribute to restore (policy ``error`` and disjoint maps, where every owner
    it produces was translated by it), a produced owner without a record is translated
    back. Then the journal is removed. Killed, it can be run again: each step sets a
    state the journal fixes, so nothing is undone twice. Raises :class:`JournalError`
    (``no-journal``) when there is no interrupted shift to roll back, for instance when
    it finished: undo a finished shift with :func:`unshift_tree`.
    """
    return _rollback(root, target, source, ShiftOptions(
        journal=journal, progress=progress, cross_mounts=cross_mounts, on_error=on_error,
        durable=durable))


def _rollback(root: str | os.PathLike[str], target: IDMapPair | None,
              source: IDMapPair | None, options: ShiftOptions) -> ShiftReport:
    """:func:`rollback_shift`'s work; of ``options`` it takes ``journal``, ``progress``,
    ``cross_mounts``, ``on_error`` and ``durable``."""
    journal, progress, cross_mounts = options.journal, options.progress, options.cross_mounts
    on_error, durable = options.on_error, options.durable
    root_path = os.fspath(root)
    pending = _pending_shift(root_path, target, source, journal)
    if pending is None:
        where = os.fspath(journal) if journal is not None else default_journal_path(root_path)
        raise JournalError(f"there is no interrupted shift of {root_path} by these maps to "
                           f"roll back (no journal at {where}); a finished shift is undone "
                           "with unshift", reason="no-journal")
    jpath, found = pending
    header = {k: v for k, v in found.items() if k != "version"}
    jr = Journal.open(jpath, header, durable=durable)
    try:
        uid_map = compose(target.uid if target else None, source.uid if source else None)
        gid_map = compose(target.gid if target else None, source.gid if source else None)
        policy = check_policy(found.get("policy", "error"))
        ovf = tuple(found.get("overflow", (65534, 65534)))
        fwd = _Shift(root_path, uid_map, gid_map, policy, (ovf[0], ovf[1]), cross_mounts,
                     on_error == "stop", progress)
        u_done, g_done = (t.idempotent_set() for t in fwd.translators())
        recorded_all = (bool(found.get("verify")) or u_done is None or g_done is None
                        or policy == "skip")
        # The undoing walk: journalled inodes get their inverse record; the others keep
        # their owner, or (when plain inodes were not journalled) go back by the inverse map.
        back_u = IDMap([]) if recorded_all else uid_map.inverse()
        back_g = IDMap([]) if recorded_all else gid_map.inverse()
        run = _Shift(root_path, back_u, back_g, "skip", (0, 0), cross_mounts,
                     on_error == "stop", progress)
        run.records = {k: r.inverse() for k, r in jr.records().items()}
        run.record_plain = False
        run.track_all = False  # idempotent: records are absolute, the inverse map one-way
        try:
            fd, st = open_root(root_path)
        except OSError as exc:
            raise ShiftError(f"cannot open the root {root_path!r}: {exc.strerror}",
                             ShiftReport(root=root_path, complete=False),
                             reason="bad-root") from exc
        try:
            jst = os.stat(jr.path)
            run.exclude = frozenset({(jst.st_dev, jst.st_ino)})
            coord = run.walker(fd, st, None)
            root_rec = coord.examine_dir(coord.root, fd, st)
            walked = _run_inprocess(run, fd, st, None, False, lambda merged: True)
            merged = _merge([walked, coord.summary()])
            merged["unmapped"] = {}  # the undoing walk's "unmapped" are the untouched IDs
            extra: dict[str, Any] = {"resumed": True, "journal": jr.path, "workers": 1,
                                     "rolled_back": False}
            if merged["errors"] or merged["stopped"]:
                report = _report(root_path, merged, complete=False, **extra)
                if on_error == "stop":
                    first = merged["errors"][0] if merged["errors"] else None
                    where = f": {first.path}: {first.message}" if first else ""
                    raise ShiftError(f"rollback stopped at an error{where}; the journal "
                                     f"{jr.path} is kept, run the rollback again", report)
                return report
            if root_rec is not None and not _change_root(coord, fd, root_rec):
                report = _report(root_path, _merge([walked, coord.summary()]),
                                 complete=False, **extra)
                if on_error == "stop":
                    raise ShiftError(f"rollback stopped at an error: {root_path}: "
                                     f"{coord.errors[-1].message}; the journal {jr.path} is "
                                     "kept, run the rollback again", report)
                return report
            data = _read_marker(fd)
            if data is not None and data.get("shift") == _marker_key(
                    {k: v for k, v in header.items() if k != "verify"}):
                with contextlib.suppress(OSError):
                    os.removexattr(fd, MARKER)
            if durable:
                _syncfs(fd)
            jr.remove()
            merged = _merge([walked, coord.summary()])
            merged["unmapped"] = {}
            extra["rolled_back"] = True
            return _report(root_path, merged, complete=True, **extra)
        finally:
            os.close(fd)
    finally:
        jr.close()


def _mark_of(fd: int, mapping: IDMapPair) -> ShiftMark | None:
    data = _read_marker(fd)
    if data is None:
        return None
    st = os.fstat(fd)

    def triples(value: Any) -> tuple[tuple[int, int, int], ...]:
        try:
            return tuple((int(a), int(b), int(c)) for a, b, c in value or ())
        except (TypeError, ValueError):
            return ()

    uid, gid = triples(data.get("uid")), triples(data.get("gid"))
    try:
        owner = (int(data["owner"][0]), int(data["owner"][1]))
    except (KeyError, IndexError, TypeError, ValueError):
        owner = (-1, -1)
    policy = data.get("policy")
    try:
        ovf: tuple[int, int] | None = (int(data["overflow"][0]), int(data["overflow"][1]))
    except (KeyError, IndexError, TypeError, ValueError):
        ovf = None  # (a mark written before the overflow IDs were recorded)
    return ShiftMark(uid=uid, gid=gid, policy=policy if isinstance(policy, str) else None,
                     owner=owner, holds=owner == (st.st_uid, st.st_gid),
                     matches=bool(uid) and [list(t) for t in uid] == mapping.uid.to_triples()
                     and [list(t) for t in gid] == mapping.gid.to_triples(), overflow=ovf)


def _audit_forked(coord: Walker, parts: int) -> None:
    """The audit's walk split by subtree among ``parts`` worker processes; their counts
    (and the hard-linked inodes, counted once) are added to ``coord``, which counts the
    root itself."""
    root_st = os.fstat(coord.root.fd)
    hungry = mmap.mmap(-1, 1)

    def main(part: int, chan: _Chan) -> None:
        walker = Walker(_reopen(coord.root.fd, root_st), root_st, coord.root_path,
                        cross_mounts=coord.cross_mounts, stop_on_error=False,
                        fd_cache=_more_descriptors(), share=_WorkerShare(chan, hungry),
                        audit_xattrs=coord.audit_xattrs)
        walker.run_audit()
        chan.send(("done", {"entries": walker.entries, "uids": walker.uids,
                            "gids": walker.gids, "xattr_ids": walker.xattr_ids,
                            "examples": walker.examples,
                            "errors": walker.errors, "skipped": walker.skipped_mounts,
                            "held": walker.held}))

    coord.entries += 1  # (the root, counted here as run_audit counts it in one process)
    root_owner = (root_st.st_uid, root_st.st_gid)
    coord.count_owners({root_owner: 1}, {root_owner: [coord.root_path]})
    held: list[Any] = []
    try:
        with _forked(parts, main) as kids:
            pool = _Pool(kids, hungry)
            gone = ShiftReport(root=coord.root_path, complete=False)
            for i, msg in _messages(kids, "audit", "", lambda: gone):
                if pool.handle(i, msg) or msg[0] != "done":
                    continue
                found = msg[1]
                coord.entries += found["entries"]
                coord.uids.update(found["uids"])
                coord.gids.update(found["gids"])
                coord.xattr_ids.update(found["xattr_ids"])
                for k, paths in found["examples"].items():
                    ex = coord.examples.setdefault(k, [])
                    ex += paths[:3 - len(ex)]
                coord.errors += found["errors"]
                coord.skipped_mounts += found["skipped"]
                held += found["held"]
    finally:
        hungry.close()
    coord.count_held(held)


def audit_tree(root: str | os.PathLike[str], mapping: IDMapPair, *,
               cross_mounts: bool = False,
               journal: str | os.PathLike[str] | None = None,
               workers: int | None = None, xattrs: bool = True) -> AuditReport:
    """Count the owners under ``root`` and say whether the tree looks shifted by ``mapping``.

    Changes nothing. An owner that is a container ID of the map (and not a host ID)
    counts as unshifted, one that is a host ID (and not a container ID) as shifted;
    IDs that are neither are listed in ``outside`` with example paths. With ``xattrs``
    (the default) the IDs that POSIX ACLs name (``acl-uid``, ``acl-gid``) and the root
    ID of a revision 3 file capability (``cap-rootid``) count the same way, as a shift
    translates them: a tree whose owners were shifted by a tool that left its ACLs
    alone is ``mixed``, not ``shifted``. ``xattrs=False`` counts owners only (one
    system call less per file: as ``find -printf %U:%G`` sees a tree). The report also
    gives the root's mark of a finished shift (``mark``) and the path of a pending
    journal of an interrupted shift (``journal``: looked for at ``journal`` or, by
    default, where :func:`default_journal_path` puts it). ``workers`` processes share the
    walk by subtree (default: as many as CPUs, at most 2; 1 walks in this process).

    >>> import tempfile, os
    >>> from userns import IDMap, IDMapPair
    >>> with tempfile.TemporaryDirectory() as d:
    ...     os.chown(d, 100000, 100000)
    ...     audit_tree(d, IDMapPair.both(IDMap.single(0, 100000, 65536))).state
    'shifted'
    """
    try:
        walker = Walker.for_audit(os.fspath(root), cross_mounts=cross_mounts, xattrs=xattrs)
    except OSError as exc:
        raise ShiftError(f"cannot open the root {os.fspath(root)!r}: {exc.strerror} (it must "
                         "be a directory, not a symlink)", ShiftReport(root=os.fspath(root),
                                                                       complete=False),
                         reason="bad-root") from exc
    try:
        _check_workers(workers)
    except ValueError:
        walker.close()
        raise
    nworkers = workers if workers is not None else min(2, os.cpu_count() or 1)
    try:
        if nworkers == 1:
            walker.run_audit()
        else:
            _audit_forked(walker, nworkers)
        mark = _mark_of(walker.root.fd, mapping)
    finally:
        walker.close()
    if journal is not None:
        jpath: str | None = os.fspath(journal)
    else:
        try:
            jpath = default_journal_path(root)
        except JournalError:
            jpath = None  # / has no sibling for a journal
    pending = jpath if jpath is not None and Journal.read_header(jpath) is not None else None
    shifted_ids: dict[str, dict[int, int]] = {}
    unshifted_ids: dict[str, dict[int, int]] = {}
    outside: list[UnmappedID] = []
    # After a shift by this map with policy overflow (its mark says so, and still holds),
    # the overflow IDs it wrote for what it could not map are its results: shifted, as
    # its verifying re-run takes them.
    overflow = (None if mark is None or not (mark.matches and mark.holds
                                              and mark.policy == "overflow")
                else mark.overflow or _overflow_ids())
    by_kind: dict[str, dict[int, int]] = {"acl-uid": {}, "acl-gid": {}, "cap-rootid": {}}
    for (kind, value), count in walker.xattr_ids.items():
        by_kind[kind][value] = count
    for kind, counter, m in (("uid", walker.uids, mapping.uid), ("gid", walker.gids,
                                                                  mapping.gid),
                             ("acl-uid", by_kind["acl-uid"], mapping.uid),
                             ("acl-gid", by_kind["acl-gid"], mapping.gid),
                             ("cap-rootid", by_kind["cap-rootid"], mapping.uid)):
        host, cont = m.host_ids(), m.container_ids()
        written = None if overflow is None else overflow[kind in ("gid", "acl-gid")]
        for value, count in sorted(counter.items()):
            in_host, in_cont = value in host, value in cont
            if value == written:
                in_host, in_cont = True, False
            if in_host and not in_cont:
                shifted_ids.setdefault(kind, {})[value] = count
            elif in_cont and not in_host:
                unshifted_ids.setdefault(kind, {})[value] = count
            elif not in_host and not in_cont:
                outside.append(UnmappedID(kind, value, count,
                                          tuple(walker.examples.get((kind, value), ()))))
    # (every ID counted names at least one inode)
    state: AuditState = ("mixed" if shifted_ids and unshifted_ids else "shifted" if shifted_ids
                         else "unshifted" if unshifted_ids else "unknown")
    return AuditReport(
        root=os.fspath(root), entries=walker.entries, uids=dict(walker.uids),
        gids=dict(walker.gids), outside=tuple(outside), state=state,
        acl_uids=dict(sorted(by_kind["acl-uid"].items())),
        acl_gids=dict(sorted(by_kind["acl-gid"].items())),
        cap_rootids=dict(sorted(by_kind["cap-rootid"].items())), xattrs=xattrs,
        shifted_ids=shifted_ids, unshifted_ids=unshifted_ids,
        outside_links=tuple(OutsideLink(*o) for o in walker.outside_links),
        skipped_mounts=tuple(sorted(walker.skipped_mounts)), errors=tuple(walker.errors),
        mark=mark, journal=pending,
    )
