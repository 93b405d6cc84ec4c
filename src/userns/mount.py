"""Idmapped mounts: give a tree to a remapped container without changing a byte on disk.

An idmapped mount shows an on-disk ID ``k`` as ``map.to_host(k)``, and a file created
through it by host ID ``h`` is stored as ``map.to_container(h)``. So a tree holding
container IDs (unshifted), mounted with the container's map, looks exactly as
:func:`userns.shift.shift_tree` would have left it, in constant time. The kernel's own
account is ``Documentation/filesystems/idmappings.rst``.

The steps, one small function each (as containerd's ``mount_idmapped_linux.go`` does):

1. a user namespace holding the maps: a child unshares and waits (util-linux
   ``unshare --user cat`` started by ``vfork``, else a forked child), both maps are
   written with :func:`userns.kernel.write_map`, its ``/proc/PID/ns/user`` is opened and
   the child is reaped (:class:`MapNamespace`; reuse one for repeated mounts);
2. ``open_tree(OPEN_TREE_CLONE)``: a detached copy of the source mount (``AT_RECURSIVE``:
   with the mounts below it);
3. ``mount_setattr(MOUNT_ATTR_IDMAP, userns_fd)`` on the copy;
4. ``move_mount`` attaches it at the destination.

Python has no wrappers for these calls: they go through ``ctypes`` and ``syscall(2)``
with the numbers of x86_64 and aarch64 (the same, from the generic table); another
architecture is refused (``unsupported-arch``). Every refusal is a
:class:`~userns.errors.MountError` with a ``reason`` and a sentence naming the likely
cause and the fix. :func:`probe` answers the same question without raising and without
attaching anything; :func:`prepare_volume` picks the idmapped mount where the probe says
yes and :func:`~userns.shift.shift_tree` otherwise.

>>> Probe(path="/proc", ok=False, reason="fs-unsupported", message="...").to_dict()["ok"]
False
>>> sorted(REASONS)[:3]
['already-idmapped', 'fs-unsupported', 'helper-failed']
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import os
import platform
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import attrs

from ._kernel_spawn import ChildFailure, NamespaceChild, Report
from .errors import MountError, UsernsError
from .formats.proc import parse_proc
from .kernel import write_map
from .maps import IDMap, IDMapPair

if TYPE_CHECKING:
    from .shift import ShiftReport

__all__ = [
    "REASONS",
    "SYSCALLS",
    "MapNamespace",
    "MountError",
    "MountInfo",
    "Probe",
    "Strategy",
    "VolumeResult",
    "clear_probe_cache",
    "idmap_in_place",
    "idmapped_mount",
    "is_idmapped",
    "mount_info",
    "prepare_volume",
    "probe",
    "probe_kernel",
    "read_idmap",
]

Strategy = Literal["auto", "idmap", "shift"]

#: Every ``reason`` a probe or a :class:`~userns.errors.MountError` of this module gives.
REASONS: frozenset[str] = frozenset({
    "ok", "unsupported-arch", "no-kernel-support", "not-found", "fs-unsupported",
    "already-idmapped", "not-permitted", "unmapped-namespace", "helper-failed",
    "target-failed", "maps-unavailable",
})

#: System call numbers per ``platform.machine()``: the mount API (open_tree 428,
#: move_mount 429, mount_setattr 442, statmount 457, open_tree_attr 467) comes from the
#: generic table, which x86_64 and aarch64 share; ``statx`` predates it and differs.
SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {"open_tree": 428, "move_mount": 429, "mount_setattr": 442,
               "statmount": 457, "open_tree_attr": 467, "statx": 332},
    "aarch64": {"open_tree": 428, "move_mount": 429, "mount_setattr": 442,
                "statmount": 457, "open_tree_attr": 467, "statx": 291},
}

# <linux/mount.h>, <fcntl.h>, <linux/stat.h>
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_IDMAP = 0x00100000
_MNT_DETACH = 2
_STATX_MNT_ID = 0x1000
_STATX_MNT_ID_UNIQUE = 0x4000
_STATMOUNT_MNT_UIDMAP = 0x2000
_STATMOUNT_MNT_GIDMAP = 0x4000

# Filesystems the kernel never idmaps (no FS_ALLOW_IDMAP), named in the refusal.
_NEVER = {
    "proc": "procfs", "sysfs": "sysfs", "nfs": "NFS", "nfs4": "NFS", "9p": "9p",
    "cifs": "SMB (cifs)", "smb3": "SMB", "devpts": "devpts", "cgroup2": "cgroup2",
}


class _MountAttr(ctypes.Structure):
    """``struct mount_attr``: four u64 (``MOUNT_ATTR_SIZE_VER0`` = 32 bytes)."""

    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _numbers() -> dict[str, int]:
    machine = platform.machine()
    nums = SYSCALLS.get(machine)
    if nums is None:
        raise MountError(
            f"idmapped mounts are driven through raw system calls, and userns knows their "
            f"numbers only for {', '.join(sorted(SYSCALLS))}, not {machine!r}: shift the "
            "tree instead ('userns volume --strategy shift', prepare_volume(strategy="
            "'shift')), or use util-linux mount -o X-mount.idmap=...",
            reason="unsupported-arch")
    return nums


def _syscall(name: str, *args: Any) -> int:
    """``syscall(NR_name, *args)``; an :class:`OSError` with the kernel's errno on -1."""
    libc = _lib()
    res = int(libc.syscall(ctypes.c_long(_numbers()[name]), *args))
    if res == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


def _path_arg(path: str | os.PathLike[str]) -> bytes:
    return os.fsencode(path)


# -- one function per step -------------------------------------------------------------


def _open_tree(path: str | os.PathLike[str], *, recursive: bool) -> int:
    flags = _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | (_AT_RECURSIVE if recursive else 0)
    return _syscall("open_tree", ctypes.c_int(_AT_FDCWD), ctypes.c_char_p(_path_arg(path)),
                    ctypes.c_uint(flags))


def _setattr_idmap(tree_fd: int, userns_fd: int, *, recursive: bool) -> None:
    attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    flags = _AT_EMPTY_PATH | (_AT_RECURSIVE if recursive else 0)
    _syscall("mount_setattr", ctypes.c_int(tree_fd), ctypes.c_char_p(b""), ctypes.c_uint(flags),
             ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))


def _open_tree_attr(path: str | os.PathLike[str], userns_fd: int, *, recursive: bool) -> int:
    """A copy of the mount at ``path`` with the idmap set in the same call (Linux 6.15):
    the one way to give a copy of an idmapped mount another map."""
    attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    flags = _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | (_AT_RECURSIVE if recursive else 0)
    return _syscall("open_tree_attr", ctypes.c_int(_AT_FDCWD),
                    ctypes.c_char_p(_path_arg(path)), ctypes.c_uint(flags),
                    ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))


def _move_mount(tree_fd: int, dst: str | os.PathLike[str]) -> None:
    _syscall("move_mount", ctypes.c_int(tree_fd), ctypes.c_char_p(b""),
             ctypes.c_int(_AT_FDCWD), ctypes.c_char_p(_path_arg(dst)),
             ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH))


def _umount_detach(path: str | os.PathLike[str]) -> None:
    if _lib().umount2(ctypes.c_char_p(_path_arg(path)), ctypes.c_int(_MNT_DETACH)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


# -- the user namespace holding the maps -----------------------------------------------


def _never_told_go(report: Report) -> NoReturn:  # pragma: no cover - never runs
    # The holder child is never told to go: closing the pipe makes it exit.
    os._exit(0)


class _Holder:
    """A child process alone in a new user namespace, waiting to be released.

    Where util-linux ``unshare`` is on PATH it is spawned (``unshare --user cat``, waiting
    on a pipe): ``subprocess`` starts it with ``vfork``, whose cost does not grow with this
    process's memory as a ``fork`` does (a Python process holding a large tree in memory
    takes tens of milliseconds to fork). Otherwise the child is forked
    (:class:`~userns._kernel_spawn.NamespaceChild`).
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._child: NamespaceChild | None = None
        exe = shutil.which("unshare")
        try:
            if exe is not None:
                self._proc = subprocess.Popen(
                    [exe, "--user", "--", "cat"], stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=True,
                    env={"PATH": os.defpath, "LC_ALL": "C"})
                self.pid = self._proc.pid
                self._wait_unshared()
            else:
                self._child = NamespaceChild(_never_told_go)
                self.pid = self._child.pid
        except (ChildFailure, OSError) as e:
            self.release()
            raise MountError(
                f"cannot create the user namespace that holds the mount's maps: {e}; user "
                "namespaces may be disabled (kernel.unprivileged_userns_clone, "
                "user.max_user_namespaces)",
                reason="helper-failed", errno=getattr(e, "errno", None),
                step="unshare") from e

    def _wait_unshared(self) -> None:
        assert self._proc is not None
        own = os.stat("/proc/self/ns/user").st_ino
        deadline = time.monotonic() + 5.0
        while True:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(f"/proc/{self.pid}/ns/user").st_ino != own:
                    return
            if self._proc.poll() is not None:
                said = (self._proc.stderr.read() if self._proc.stderr else b"").decode(
                    errors="replace").strip()
                raise OSError(_errno.EPERM, f"unshare --user failed: {said}")
            if time.monotonic() > deadline:
                raise OSError(_errno.ETIMEDOUT, "unshare --user did not start")
            time.sleep(0.0001)

    def release(self) -> None:
        """Let the child exit, and reap it."""
        if self._proc is not None:
            with contextlib.suppress(OSError):
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
            self._proc.wait()
            if self._proc.stderr is not None:
                self._proc.stderr.close()
            self._proc = None
        if self._child is not None:
            self._child.abort()
            self._child = None


class MapNamespace:
    """A user namespace that holds ``pair`` and nothing else: its descriptor for
    ``mount_setattr``. No process stays in it (the child that made it is reaped).

    Use it as a context manager, or call :meth:`close`; one namespace serves any number of
    mounts with the same maps. Both maps must be non-empty (Linux 6.9 and later refuse
    a namespace with an unwritten map: ``unmapped-namespace``).
    """

    def __init__(self, pair: IDMapPair) -> None:
        if not pair.uid or not pair.gid:
            kinds = " and ".join(k for k, m in (("uid", pair.uid), ("gid", pair.gid)) if not m)
            raise MountError(
                f"the {kinds} map is empty: an idmapped mount needs both maps (Linux 6.9 "
                "and later refuse a namespace with an unwritten map, EINVAL); give both, "
                "e.g. with IDMapPair.both(...)",
                reason="unmapped-namespace", step="map-namespace")
        self.pair = pair
        self.fd = self._create(pair)

    @staticmethod
    def _create(pair: IDMapPair) -> int:
        holder = _Holder()
        try:
            write_map(holder.pid, pair.uid, "uid")
            write_map(holder.pid, pair.gid, "gid")
            return os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except UsernsError as e:
            raise MountError(
                f"cannot write the maps of the mount's user namespace: {e.message}",
                reason="helper-failed", errno=getattr(e, "errno", None),
                step="write-map") from e
        except OSError as e:
            raise MountError(f"cannot open the mount's user namespace: {e.strerror}",
                             reason="helper-failed", errno=e.errno,
                             step="open-ns") from e
        finally:
            holder.release()  # the namespace lives on through the descriptor

    def close(self) -> None:
        """Close the descriptor (mounts made with it keep their maps)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> MapNamespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MapNamespace({self.pair!r})"


@contextlib.contextmanager
def _namespace(pair: IDMapPair, given: MapNamespace | None) -> Iterator[MapNamespace]:
    if given is not None:
        if given.pair != pair:
            raise ValueError(f"namespace holds {given.pair!r}, not {pair!r}")
        yield given
        return
    with MapNamespace(pair) as ns:
        yield ns


# -- reading a mount -------------------------------------------------------------------


@attrs.frozen
class MountInfo:
    """The mount a path is on, from ``/proc/self/mountinfo`` (found by the ``statx``
    mount ID): its ID, mount point, filesystem type, source and whether it is idmapped.
    """

    mount_id: int
    mount_point: str
    fs_type: str
    source: str
    idmapped: bool
    options: tuple[str, ...] = ()


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (``\\040`` for a space)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _statx_mount_id(path: str | os.PathLike[str], mask: int) -> int | None:
    """The mount ID ``statx`` gives for ``path`` with ``mask``; None if the kernel did not
    fill it in."""
    buf = ctypes.create_string_buffer(256)
    # AT_SYMLINK_NOFOLLOW is not set: a mount is reached the way mount(8) reaches it.
    _syscall("statx", ctypes.c_int(_AT_FDCWD), ctypes.c_char_p(_path_arg(path)),
             ctypes.c_int(0), ctypes.c_uint(mask), buf)
    got = struct.unpack_from("=I", buf, 0)[0]
    if not got & mask:
        return None
    return int(struct.unpack_from("=Q", buf, 144)[0])


def mount_info(path: str | os.PathLike[str]) -> MountInfo:
    """The mount ``path`` is on (``/proc/self/mountinfo``).

    >>> mount_info("/proc").fs_type
    'proc'
    """
    try:
        mnt_id = _statx_mount_id(path, _STATX_MNT_ID)
        st = os.stat(path)
    except OSError as e:
        raise _not_found(path, e) from e
    real = os.path.realpath(path)
    best: MountInfo | None = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            opts = tuple(fields[5].split(","))
            row = MountInfo(mount_id=int(fields[0]), mount_point=_unescape(fields[4]),
                            fs_type=fields[sep + 1], source=_unescape(fields[sep + 2]),
                            idmapped="idmapped" in opts, options=opts)
            if mnt_id is not None:
                if row.mount_id == mnt_id:
                    return row
                continue
            # No mount ID from statx (before Linux 5.8): the last mount of this device
            # whose mount point is the longest prefix of the path.
            major, minor = (int(x) for x in fields[2].split(":"))
            if os.makedev(major, minor) != st.st_dev:
                continue
            point = row.mount_point.rstrip("/") + "/"
            if (real + "/").startswith(point) and (
                    best is None or len(row.mount_point) >= len(best.mount_point)):
                best = row
    if best is not None:
        return best
    raise MountError(f"{os.fspath(path)!r} is on no mount of this mount namespace "
                     f"(mount ID {mnt_id})", reason="not-found", path=os.fspath(path))


def is_idmapped(path: str | os.PathLike[str]) -> bool:
    """Whether the mount ``path`` is on is idmapped (the ``idmapped`` flag in
    ``/proc/self/mountinfo``; any kernel).

    >>> is_idmapped("/proc")
    False
    """
    return mount_info(path).idmapped


def _statmount_maps(mnt_unique_id: int) -> tuple[IDMap, IDMap] | None:
    """The uid and gid maps ``statmount`` gives for a mount; None when the kernel does not
    report them (before Linux 6.15)."""
    req = struct.pack("=IIQQ", 24, 0, mnt_unique_id,
                      _STATMOUNT_MNT_UIDMAP | _STATMOUNT_MNT_GIDMAP)
    size = 4096
    while True:
        buf = ctypes.create_string_buffer(size)
        try:
            _syscall("statmount", ctypes.c_char_p(req), buf, ctypes.c_size_t(size),
                     ctypes.c_uint(0))
            break
        except OSError as e:
            if e.errno == _errno.EOVERFLOW and size < 1 << 20:
                size *= 4
                continue
            if e.errno in (_errno.ENOSYS, _errno.EINVAL):
                return None
            raise
    mask = struct.unpack_from("=Q", buf, 8)[0]
    if not (mask & _STATMOUNT_MNT_UIDMAP and mask & _STATMOUNT_MNT_GIDMAP):
        return None
    uid_n, uid_off, gid_n, gid_off = struct.unpack_from("=IIII", buf, 152)
    raw = buf.raw

    def entries(n: int, off: int) -> IDMap:
        lines, pos = [], 512 + off
        for _ in range(n):  # "first lower count", NUL-separated, as uid_map lines
            end = raw.index(b"\0", pos)
            lines.append(raw[pos:end])
            pos = end + 1
        return parse_proc(b"\n".join(lines) + b"\n", path="statmount") if lines else IDMap()

    return entries(uid_n, uid_off), entries(gid_n, gid_off)


def read_idmap(path: str | os.PathLike[str]) -> IDMapPair | None:
    """The maps of the idmapped mount ``path`` is on, or None when that mount is not
    idmapped.

    The maps are read with ``statmount`` (Linux 6.15 and later), the host side as the
    caller's user namespace sees it (extents it cannot see are left out, as the kernel
    does). On an older kernel an idmapped mount raises
    :class:`~userns.errors.MountError` (``maps-unavailable``); :func:`is_idmapped` still
    answers there.

    >>> read_idmap("/proc") is None
    True
    """
    info = mount_info(path)
    if not info.idmapped:
        return None
    where = os.fspath(path)
    try:
        uniq = _statx_mount_id(path, _STATX_MNT_ID_UNIQUE)
        maps = _statmount_maps(uniq) if uniq is not None else None
    except OSError as e:
        raise MountError(f"cannot read the maps of the mount at {info.mount_point!r}: "
                         f"{e.strerror}", reason="maps-unavailable", errno=e.errno,
                         path=where, step="statmount") from e
    if maps is None:
        raise MountError(
            f"the mount at {info.mount_point!r} is idmapped, but this kernel "
            f"({platform.release()}) does not report its maps (statmount gives them from "
            "Linux 6.15); the map given when it was mounted is the only record",
            reason="maps-unavailable", path=where, step="statmount")
    return IDMapPair(*maps)


# -- errors ----------------------------------------------------------------------------


def _not_found(path: str | os.PathLike[str], e: OSError) -> MountError:
    where = os.fspath(path)
    return MountError(f"cannot use {where!r}: {e.strerror}", reason="not-found",
                      errno=e.errno, path=where, step="stat")


def _fs_refusal(fs_type: str) -> str:
    if fs_type in _NEVER:
        return (f"{_NEVER[fs_type]} does not support idmapped mounts (the kernel never "
                "idmaps it)")
    if fs_type.startswith("fuse"):
        return (f"this FUSE filesystem ({fs_type}) does not allow idmapped mounts (FUSE "
                "needs Linux 6.12 and a server that opts in with FUSE_ALLOW_IDMAP)")
    if fs_type == "tmpfs":
        return "tmpfs takes idmapped mounts only from Linux 6.3"
    if fs_type == "overlay":
        return ("an overlayfs mount itself cannot be idmapped; idmap its layers instead "
                "(Linux 5.19 and later take idmapped lower and upper layers) and mount the "
                "overlay over them")
    return f"the {fs_type} filesystem does not support idmapped mounts on this kernel"


def _explain(e: OSError, step: str, path: str, info: MountInfo | None,
             recursive: bool = False) -> MountError:
    """The errno of one step as a :class:`MountError` with its cause and fix."""
    fs = info.fs_type if info is not None else "?"
    fallback = ("; shift the tree instead ('userns volume --strategy shift', or "
                "prepare_volume(strategy='shift') in Python)")
    if e.errno == _errno.ENOSYS:
        return MountError(
            f"{step} is not available (ENOSYS): idmapped mounts need Linux 5.12 or later "
            f"(this is {platform.release()}), or a seccomp filter blocks the mount API"
            + fallback, reason="no-kernel-support", errno=e.errno, path=path, step=step)
    if step == "open_tree" and e.errno in (_errno.ENOENT, _errno.ENOTDIR, _errno.ELOOP):
        return MountError(f"cannot open {path!r}: {e.strerror}", reason="not-found",
                          errno=e.errno, path=path, step=step)
    if step == "mount_setattr" and e.errno == _errno.EPERM and info is not None \
            and info.idmapped:
        return MountError(
            f"{path!r} is on a mount that is idmapped already (at {info.mount_point!r}); "
            "mount_setattr cannot idmap it again and this kernel has no open_tree_attr "
            "(Linux 6.15), which replaces the map of a copy: idmap the original, unmapped "
            "mount instead",
            reason="already-idmapped", errno=e.errno, path=path, step=step)
    if e.errno == _errno.EPERM:
        return MountError(
            f"not permitted to {step} {path!r} ({fs}): idmapping needs CAP_SYS_ADMIN in "
            "the user namespace that owns the filesystem's superblock and in the one "
            "owning this mount namespace (root on the host for a host filesystem; inside a "
            "container, only filesystems mounted there)" + fallback,
            reason="not-permitted", errno=e.errno, path=path, step=step)
    if step in ("mount_setattr", "open_tree_attr") and e.errno == _errno.EINVAL:
        why = _fs_refusal(fs)
        if recursive:
            why += " (or a mount below it does: a recursive idmap needs every one to take it)"
        return MountError(f"cannot idmap {path!r}: {why}" + fallback,
                          reason="fs-unsupported", errno=e.errno, path=path, step=step)
    if step == "move_mount":
        return MountError(f"cannot attach the idmapped mount at {path!r}: {e.strerror} "
                          "(the destination must exist, as a directory for a directory "
                          "and a file for a file)", reason="target-failed",
                          errno=e.errno, path=path, step=step)
    return MountError(f"{step} on {path!r} failed: {e.strerror}",
                      reason="fs-unsupported" if step in ("mount_setattr", "open_tree_attr")
                      else "target-failed",
                      errno=e.errno, path=path, step=step)


# -- the probe -------------------------------------------------------------------------


@attrs.frozen
class Probe:
    """Whether ``path`` can be idmapped here, and if not, why: ``reason`` is ``"ok"`` or
    one of :data:`REASONS`, ``message`` a sentence with the cause and the fix.

    >>> Probe(path="/srv/vol", ok=True, reason="ok", message="can be idmapped").ok
    True
    """

    path: str
    ok: bool
    reason: str
    message: str
    fs_type: str | None = None
    mount_point: str | None = None
    errno: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return attrs.asdict(self)

    @classmethod
    def from_error(cls, path: str, err: MountError, info: MountInfo | None = None) -> Probe:
        """The probe answer that ``err`` stands for."""
        return cls(path=path, ok=False, reason=err.reason, message=err.message,
                   fs_type=info.fs_type if info else None,
                   mount_point=info.mount_point if info else None, errno=err.errno)


_KERNEL: Probe | None = None
_CACHE: dict[tuple[int, int, str, bool, str], Probe] = {}


def probe_kernel() -> Probe:
    """Can this kernel idmap mounts at all (``mount_setattr`` exists: Linux 5.12+)?

    Asks the kernel with an invalid call (ENOSYS when the call is missing, EBADF or
    EINVAL when it is there) and remembers the answer.

    >>> probe_kernel().reason in ("ok", "no-kernel-support", "unsupported-arch")
    True
    """
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    try:
        _syscall("mount_setattr", ctypes.c_int(-1), ctypes.c_char_p(b""), ctypes.c_uint(0),
                 ctypes.c_void_p(None), ctypes.c_size_t(0))
        answer = None
    except MountError as e:
        answer = Probe.from_error("", e)
    except OSError as e:
        answer = None
        if e.errno == _errno.ENOSYS:
            answer = Probe.from_error("", _explain(e, "mount_setattr", "", None))
    _KERNEL = answer or Probe(path="", ok=True, reason="ok",
                              message=f"Linux {platform.release()} has mount_setattr")
    return _KERNEL


def clear_probe_cache() -> None:
    """Forget the probe answers (per mount) and the kernel's."""
    global _KERNEL
    _KERNEL = None
    _CACHE.clear()


def _probe_pair() -> IDMapPair:
    # Any valid map will do; the caller's own IDs are writable from any namespace.
    return IDMapPair(IDMap.single(0, os.geteuid(), 1), IDMap.single(0, os.getegid(), 1))


def probe(path: str | os.PathLike[str], *, cache: bool = True) -> Probe:
    """Can the mount ``path`` is on be idmapped, by this process, now? Never raises a
    :class:`~userns.errors.MountError`: a refusal is an answer, with its reason.

    The kernel is asked for real on a detached copy of the mount (``open_tree`` clone,
    ``mount_setattr`` with a one-ID map, then closed: nothing is ever attached), so the
    answer covers the filesystem type, the kernel version and the caller's privileges
    alike. Answers are cached per path and mount (``cache=False`` asks again).

    >>> probe("/proc").reason in ("fs-unsupported", "not-permitted", "no-kernel-support",
    ...                          "unsupported-arch")
    True
    """
    where = os.fspath(path)
    kernel = probe_kernel()
    if not kernel.ok:
        return attrs.evolve(kernel, path=where)
    try:
        st = os.stat(where)
        info = mount_info(where)
    except MountError as e:
        return Probe.from_error(where, e)
    except OSError as e:
        return Probe.from_error(where, _not_found(where, e))
    # Mount IDs are reused after an unmount: the type and the flag guard against a stale
    # answer for a new mount under an old ID.
    # The answer's message names the path: the cache holds one answer per path.
    key = (st.st_dev, info.mount_id, info.fs_type, info.idmapped, where)
    if cache and key in _CACHE:
        return _CACHE[key]
    answer = _probe_now(where, info)
    _CACHE[key] = answer
    return answer


def _probe_now(where: str, info: MountInfo) -> Probe:
    try:
        fd = _clone_idmapped(where, _probe_pair(), recursive=False, namespace=None,
                             info=info)
    except MountError as e:
        return Probe.from_error(where, e, info)
    os.close(fd)  # the detached copy goes with its last descriptor
    note = (" (it is idmapped already: a new idmapped mount of it replaces that map, "
            "relative to the IDs on disk)" if info.idmapped else "")
    return Probe(path=where, ok=True, reason="ok",
                 message=f"{where} ({info.fs_type}, mounted at {info.mount_point}) can be "
                         f"idmapped{note}", fs_type=info.fs_type,
                 mount_point=info.mount_point)


# -- making mounts ---------------------------------------------------------------------


def _clone_idmapped(src: str, pair: IDMapPair, *, recursive: bool,
                    namespace: MapNamespace | None, info: MountInfo | None = None) -> int:
    """A detached, idmapped copy of the mount at ``src``: its descriptor.

    The copy comes first: a caller without the privilege to mount learns it from
    ``open_tree`` (EPERM) before a namespace is made for nothing.
    """
    _numbers()
    if info is None:
        with contextlib.suppress(MountError):
            info = mount_info(src)
    if info is not None and info.idmapped:
        # mount_setattr refuses to idmap a copy of an idmapped mount; open_tree_attr
        # (Linux 6.15) replaces its map. Without it, the refusal below says why.
        with _namespace(pair, namespace) as ns:
            try:
                return _open_tree_attr(src, ns.fd, recursive=recursive)
            except OSError as e:
                if e.errno != _errno.ENOSYS:
                    raise _explain(e, "open_tree_attr", src, info, recursive) from e
    try:
        fd = _open_tree(src, recursive=recursive)
    except OSError as e:
        raise _explain(e, "open_tree", src, info) from e
    try:
        with _namespace(pair, namespace) as ns:
            _setattr_idmap(fd, ns.fd, recursive=recursive)
    except OSError as e:
        os.close(fd)
        raise _explain(e, "mount_setattr", src, info, recursive) from e
    except BaseException:
        os.close(fd)
        raise
    return fd


def idmapped_mount(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    pair: IDMapPair,
    *,
    recursive: bool = False,
    namespace: MapNamespace | None = None,
) -> MountInfo:
    """Bind-mount ``src`` at ``dst``, idmapped with ``pair``; the new mount's info.

    Through ``dst`` an on-disk ID ``k`` shows as ``pair.uid.to_host(k)`` (gids alike),
    an ID outside the map as the overflow ID, and a file created by host ID ``h`` is
    stored as ``to_container(h)``. Nothing on disk changes. ``recursive`` copies the
    mounts below ``src`` as well (every one must take an idmap). A ``src`` on an idmapped
    mount gets ``pair`` in place of that mount's map, still relative to the IDs on disk
    (``open_tree_attr``, Linux 6.15); an older kernel refuses it (``already-idmapped``).
    ``namespace``: a :class:`MapNamespace` of ``pair`` to reuse (else one is made and
    closed).

    Raises :class:`~userns.errors.MountError` with the reason (see :func:`probe`).
    """
    source, target = os.fspath(src), os.fspath(dst)
    fd = _clone_idmapped(source, pair, recursive=recursive, namespace=namespace)
    try:
        _move_mount(fd, target)
    except OSError as e:
        raise _explain(e, "move_mount", target, None) from e
    finally:
        os.close(fd)
    return mount_info(target)


def idmap_in_place(
    path: str | os.PathLike[str],
    pair: IDMapPair,
    *,
    recursive: bool = False,
    replace: bool = True,
    namespace: MapNamespace | None = None,
) -> MountInfo:
    """Make ``path`` show its tree idmapped with ``pair``, where it is.

    A mount that was ever attached cannot be idmapped, so this mounts an idmapped copy
    over ``path``. With ``replace`` (the default) and ``path`` the root of a mount, the
    mount underneath is detached first (lazily: open files keep working), so one mount
    stays at ``path``, as ``systemd-nspawn`` does it; otherwise the copy stacks on top.
    Mounts below ``path`` go with the detached original unless ``recursive`` copies them.
    """
    where = os.fspath(path)
    fd = _clone_idmapped(where, pair, recursive=recursive, namespace=namespace)
    try:
        if replace:
            info = mount_info(where)
            if os.path.realpath(where) == info.mount_point:
                with contextlib.suppress(OSError):
                    _umount_detach(where)
        _move_mount(fd, where)
    except OSError as e:
        raise _explain(e, "move_mount", where, None) from e
    finally:
        os.close(fd)
    return mount_info(where)


def _plain_bind(src: str, dst: str) -> None:
    try:
        fd = _open_tree(src, recursive=False)
    except OSError as e:
        raise _explain(e, "open_tree", src, None) from e
    try:
        _move_mount(fd, dst)
    except OSError as e:
        raise _explain(e, "move_mount", dst, None) from e
    finally:
        os.close(fd)


# -- the auto path ---------------------------------------------------------------------


#: Refusals after which ``prepare_volume(strategy="auto")`` shifts instead.
_FALL_BACK = frozenset({"fs-unsupported", "already-idmapped", "not-permitted"})


@attrs.frozen
class VolumeResult:
    """What :func:`prepare_volume` did: ``strategy`` (``idmap`` or ``shift``), ``why``
    (a sentence), where the container should mount the volume from (``served_at``), the
    probe's answer, and the shift's report when it shifted.
    """

    path: str
    strategy: Literal["idmap", "shift"]
    why: str
    served_at: str
    probe: Probe
    shift: ShiftReport | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"path": self.path, "strategy": self.strategy, "why": self.why,
                "served_at": self.served_at, "probe": self.probe.to_dict(),
                "shift": self.shift.to_dict() if self.shift is not None else None}


def prepare_volume(
    path: str | os.PathLike[str],
    pair: IDMapPair,
    *,
    strategy: Strategy = "auto",
    to: str | os.PathLike[str] | None = None,
    recursive: bool = False,
    probed: Probe | None = None,
    **shift_options: Any,
) -> VolumeResult:
    """Give the tree at ``path`` (container IDs on disk) to a container remapped by
    ``pair``: idmap it where the kernel can, otherwise shift it.

    ``auto`` asks :func:`probe` (or takes ``probed``, an answer already at hand) and
    idmaps when it says yes, else calls :func:`userns.shift.shift_tree` (its journal,
    ``policy`` and other ``shift_options`` apply). ``idmap`` raises the probe's
    :class:`~userns.errors.MountError` when it cannot; ``shift`` always shifts. With ``to``
    the idmapped mount goes there (a shifted tree is bind-mounted there); without, the
    volume is idmapped in place. Either way the container sees the same owners.
    """
    from .shift import shift_tree

    if strategy not in ("auto", "idmap", "shift"):
        raise ValueError(f"strategy must be 'auto', 'idmap' or 'shift': {strategy!r}")
    where = os.fspath(path)
    target = os.fspath(to) if to is not None else where
    answer = probed if probed is not None else probe(where)
    if strategy == "idmap" and not answer.ok:
        raise MountError(answer.message, reason=answer.reason, errno=answer.errno,
                         path=where, step="probe")
    if strategy != "shift" and answer.ok:
        try:
            if to is None:
                idmap_in_place(where, pair, recursive=recursive)
            else:
                idmapped_mount(where, target, pair, recursive=recursive)
        except MountError as e:
            # The probe looks at the top mount only: a mount below it (recursive) may
            # still refuse. Auto falls back; a destination problem is not the volume's.
            if strategy == "idmap" or e.reason not in _FALL_BACK:
                raise
            answer = Probe.from_error(where, e)
        else:
            why = (f"idmapped mount: {answer.message}; nothing on disk changed"
                   if strategy == "auto" else "idmapped mount, as asked")
            return VolumeResult(path=where, strategy="idmap", why=why, served_at=target,
                                probe=answer)
    report = shift_tree(where, pair, **shift_options)
    if to is not None and not report.dry_run:
        _plain_bind(where, target)
    why = ("shifted, as asked" if strategy == "shift" else
           f"shifted: cannot idmap ({answer.reason}): {answer.message}")
    return VolumeResult(path=where, strategy="shift", why=why, served_at=target,
                        probe=answer, shift=report)
