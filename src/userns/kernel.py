"""The kernel side: read and write ``/proc/PID/{uid,gid}_map``, run a command remapped.

Everything here does I/O against the running kernel; the rules themselves live in the pure
core (:func:`userns.formats.proc.validate_map_write`), which :func:`write_map` asks first.

- :func:`read_map`, :func:`read_maps`, :func:`own_maps`: a process's maps as the kernel
  reads them back (padded, and sorted by container ID for more than five extents).
- :func:`overflow_ids`: the IDs unmapped owners show as (``/proc/sys/kernel/overflow{u,g}id``).
- :func:`in_initial_userns`: compares the namespace inode with the initial one; a map
  ``0 0 4294967295`` alone does not prove it (any namespace may be given that map).
- :func:`write_map`: validate, then ONE ``write()`` of the whole text (a second write is
  refused, EPERM on a new descriptor and EINVAL on the same one, so a map written line
  by line keeps only its first line).
- :func:`run_in_userns`: fork, ``unshare(CLONE_NEWUSER)``, write the maps from outside
  (directly as root, through ``newuidmap``/``newgidmap`` otherwise), become the requested
  IDs and exec. The return value is the command's exit status.

>>> PROC_USER_INIT_INO == 0xEFFFFFFD
True
>>> sorted(MAP_KINDS)
['gid', 'uid']
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Literal, NoReturn

from ._kernel_spawn import ChildFailure, NamespaceChild, Report
from .errors import HelperMissingError, KernelError, MapWriteError, NamespaceSetupError, UsernsError  # noqa: F401 (re-exported)
from .formats.proc import format_proc, parse_proc, validate_map_write
from .ids import LEGACY_MAX_EXTENTS
from .maps import IDMap, IDMapPair

__all__ = [
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETUID",
    "MAP_KINDS",
    "PROC_USER_INIT_INO",
    "HelperMissingError",
    "KernelError",
    "MapKind",
    "MapWriteError",
    "NamespaceSetupError",
    "effective_capabilities",
    "in_initial_userns",
    "overflow_ids",
    "own_maps",
    "read_map",
    "read_maps",
    "read_setgroups",
    "run_in_userns",
    "userns_inode",
    "write_map",
    "write_setgroups",
]

MapKind = Literal["uid", "gid"]
#: The two map files a user namespace has.
MAP_KINDS: frozenset[str] = frozenset({"uid", "gid"})
#: ``include/linux/proc_ns.h``: the inode number of the initial user namespace.
PROC_USER_INIT_INO = 0xEFFFFFFD
#: Capability numbers (``<linux/capability.h>``).
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SETFCAP = 31

_PROC = "/proc"


# -- errors -----------------------------------------------------------------------------


# -- reading ------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in MAP_KINDS:
        raise ValueError(f"kind must be 'uid' or 'gid': {kind!r}")


def _map_path(pid: int | str, kind: str, proc: str) -> str:
    _check_kind(kind)
    return f"{proc}/{pid}/{kind}_map"


def _gone(e: OSError, pid: int | str, path: str) -> MapWriteError:
    return MapWriteError(f"cannot open {path}: {e.strerror} (no such process?)",
                         reason="no-such-process", errno=e.errno, pid=pid, path=path)


def read_map(pid: int | str = "self", kind: MapKind = "uid", *, proc: str = _PROC) -> IDMap:
    """The ``uid_map`` or ``gid_map`` of process ``pid`` as the reader sees it.

    The host side is shown in the READER's namespace (for a process in a child namespace
    read from its parent, the parent's IDs). A namespace whose map is not written yet
    gives an empty map. More than five extents come back sorted by container ID. A
    process that does not exist raises :class:`KernelError` (``no-such-process``).

    >>> read_map("self", "uid").size > 0
    True
    """
    path = _map_path(pid, kind, proc)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError) as e:
        raise KernelError(f"cannot read {path}: {e.strerror} (no such process?)",
                          reason="no-such-process", errno=e.errno, pid=pid, path=path) from e
    return parse_proc(data, path=path) if data else IDMap()


def read_maps(pid: int | str = "self", *, proc: str = _PROC) -> IDMapPair:
    """Both maps of process ``pid``.

    >>> read_maps().uid == read_map("self", "uid")
    True
    """
    return IDMapPair(read_map(pid, "uid", proc=proc), read_map(pid, "gid", proc=proc))


def own_maps(*, proc: str = _PROC) -> IDMapPair:
    """The calling process's own uid and gid maps (relative to its parent namespace).

    >>> own_maps().uid.to_host(os.getuid()) is not None
    True
    """
    return read_maps("self", proc=proc)


def overflow_ids(*, proc: str = _PROC) -> tuple[int, int]:
    """``(overflowuid, overflowgid)``: what an unmapped owner looks like from inside.

    Read from ``/proc/sys/kernel/overflowuid`` and ``overflowgid``; the files end in a
    newline, stripped here (Podman's reader once choked on it).

    >>> overflow_ids()[0] >= 0
    True
    """
    out = []
    for name in ("overflowuid", "overflowgid"):
        with open(f"{proc}/sys/kernel/{name}", encoding="utf-8") as f:
            out.append(int(f.read().strip()))
    return out[0], out[1]


def userns_inode(pid: int | str = "self", *, proc: str = _PROC) -> tuple[int, int]:
    """``(st_dev, st_ino)`` of ``/proc/PID/ns/user``: equal for processes in one namespace.

    >>> userns_inode() == userns_inode(os.getpid())
    True
    """
    st = os.stat(f"{proc}/{pid}/ns/user")
    return st.st_dev, st.st_ino


def in_initial_userns(pid: int | str = "self", *, proc: str = _PROC) -> bool:
    """True when process ``pid`` is in the initial user namespace.

    Compares the namespace inode with :data:`PROC_USER_INIT_INO`: the map text
    ``0 0 4294967295`` proves nothing, since any namespace may be given that map.

    >>> isinstance(in_initial_userns(), bool)
    True
    """
    return userns_inode(pid, proc=proc)[1] == PROC_USER_INIT_INO


def effective_capabilities(pid: int | str = "self", *, proc: str = _PROC) -> int:
    """The ``CapEff`` bit mask of process ``pid`` (in its own user namespace).

    >>> effective_capabilities() >= 0
    True
    """
    with open(f"{proc}/{pid}/status", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0  # pragma: no cover - every Linux since 2.6.x has CapEff


def _has_caps(*caps: int) -> bool:
    eff = effective_capabilities()
    return all(eff >> c & 1 for c in caps)


def read_setgroups(pid: int | str = "self", *, proc: str = _PROC) -> str:
    """``allow`` or ``deny``: the ``/proc/PID/setgroups`` policy.

    >>> read_setgroups() in ("allow", "deny")
    True
    """
    with open(f"{proc}/{pid}/setgroups", encoding="utf-8") as f:
        return f.read().strip()


# -- writing ------------------------------------------------------------------------------


def write_setgroups(
    pid: int | str, policy: Literal["allow", "deny"], *, proc: str = _PROC
) -> None:
    """Write ``policy`` to ``/proc/PID/setgroups`` (before gid_map, or the kernel says EPERM).

    An unprivileged writer must write ``deny`` before it may write a gid_map; after that
    nobody in the namespace can call ``setgroups()``.
    """
    if policy not in ("allow", "deny"):
        raise ValueError(f"policy must be 'allow' or 'deny': {policy!r}")
    path = f"{proc}/{pid}/setgroups"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError) as e:
        raise _gone(e, pid, path) from e
    try:
        os.write(fd, policy.encode())
    except OSError as e:
        if e.errno == _errno.EPERM:
            gid_written = bool(read_map(pid, "gid", proc=proc))
            raise MapWriteError(
                f"cannot write {policy!r} to {path}: "
                + ("the gid_map is already written; setgroups must come first"
                   if gid_written else "not permitted (the writer needs CAP_SYS_ADMIN over "
                   "the namespace, and 'allow' is refused once any ancestor denies)"),
                reason="setgroups-after-gid-map" if gid_written else "not-permitted",
                errno=e.errno, pid=pid, path=path,
            ) from e
        raise MapWriteError(f"cannot write {policy!r} to {path}: {e.strerror}",
                            reason="kernel-refused", errno=e.errno, pid=pid, path=path) from e
    finally:
        os.close(fd)


_AUTO: Literal["auto"] = "auto"


def write_map(
    pid: int | str,
    idmap: IDMap | str | bytes,
    kind: MapKind = "uid",
    *,
    parent: IDMap | Literal["auto"] | None = _AUTO,
    setgroups: Literal["allow", "deny"] | None = None,
    proc: str = _PROC,
) -> IDMap:
    """Install ``idmap`` as the ``uid_map`` or ``gid_map`` of process ``pid``; the map installed.

    ``idmap`` is an :class:`IDMap` (written as :func:`~userns.formats.proc.format_proc`
    text) or the exact text to write. The text is first checked by
    :func:`~userns.formats.proc.validate_map_write` with ``parent`` as the parent
    namespace's map (``"auto"``: the writer's own map when the target is in another
    namespace, which is then the target's parent; ``None``: no parent check), so a broken
    rule raises :class:`~userns.errors.InvalidMapError` with its reason and line and
    nothing is written. Then the whole text goes out in ONE ``write()``.

    For a gid map, ``setgroups`` is written to ``/proc/PID/setgroups`` first when given;
    by default ``deny`` is written when the writer lacks ``CAP_SETGID`` (the kernel
    requires it then). Kernel refusals raise :class:`MapWriteError`.

    A text that breaks a rule never reaches the kernel:

    >>> try:
    ...     write_map("self", "0 100 10\\n5 200 10\\n", "uid", parent=None)
    ... except UsernsError as err:
    ...     print(err.reason, err.location.line)
    overlap-container 2
    """
    path = _map_path(pid, kind, proc)
    if isinstance(idmap, IDMap):
        data: bytes = format_proc(idmap).encode()
    elif isinstance(idmap, str):
        data = idmap.encode("utf-8", "surrogateescape")
    else:
        data = bytes(idmap)
    if parent == _AUTO:
        try:
            nested = userns_inode(pid, proc=proc) != userns_inode(proc=proc)
        except OSError:
            nested = False  # not allowed to look: leave the parent rule to the kernel
        parent = read_map("self", kind, proc=proc) if nested else None
    installed = validate_map_write(data, parent=parent, path=path)
    if kind == "gid":
        if setgroups is None and not _has_caps(CAP_SETGID):
            setgroups = "deny"
        if setgroups is not None:
            write_setgroups(pid, setgroups, proc=proc)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError) as e:
        raise _gone(e, pid, path) from e
    try:
        # One write: the kernel parses a map from a single write() only.
        written = os.write(fd, data)
    except OSError as e:
        raise _explain_write_error(e, pid, kind, path, proc, data) from e
    finally:
        os.close(fd)
    if written != len(data):  # pragma: no cover - map_write takes all or nothing
        raise MapWriteError(f"short write to {path}: {written} of {len(data)} bytes",
                            reason="kernel-refused", errno=_errno.EIO, pid=pid, path=path)
    return installed


def _explain_write_error(
    e: OSError, pid: int | str, kind: str, path: str, proc: str, data: bytes
) -> MapWriteError:
    if e.errno in (_errno.EPERM, _errno.EINVAL):
        try:
            current = read_map(pid, kind, proc=proc)  # type: ignore[arg-type]
        except OSError:
            current = IDMap()
        # A second write says EPERM on a new descriptor, EINVAL on the same one.
        if current:
            return MapWriteError(
                f"{path} is already written ({format_proc(current).strip()!r}); "
                "a map can be written only once",
                reason="already-written", errno=e.errno, pid=pid, path=path)
    if e.errno == _errno.EPERM:
        if kind == "gid" and not _has_caps(CAP_SETGID):
            try:
                policy = read_setgroups(pid, proc=proc)
            except OSError:
                policy = "deny"
            if policy == "allow":
                return MapWriteError(
                    f"not permitted to write {path}: without CAP_SETGID, 'deny' must be "
                    f"written to {proc}/{pid}/setgroups first (setgroups is 'allow')",
                    reason="not-permitted", errno=e.errno, pid=pid, path=path)
        cap = "CAP_SETUID" if kind == "uid" else "CAP_SETGID"
        hint = (f"the writer needs {cap} over the parent namespace (or may map only its own "
                f"e{kind} as one line of count 1"
                + (", after writing 'deny' to setgroups" if kind == "gid" else "")
                + "), must be in the target's namespace or its parent, every host ID must "
                "be mapped in the writer's namespace, and mapping host root needs CAP_SETFCAP")
        return MapWriteError(f"not permitted to write {path}: {hint}",
                             reason="not-permitted", errno=e.errno, pid=pid, path=path)
    if e.errno == _errno.EINVAL:
        why = "this kernel's rules differ from Linux 4.15 and later"
        if len(data.rstrip(b"\n").split(b"\n")) > LEGACY_MAX_EXTENTS:
            why = (f"kernels before Linux 4.15 take at most {LEGACY_MAX_EXTENTS} lines "
                   "(validate with max_extents=5 for them)")
        return MapWriteError(
            f"the kernel refused {path} (EINVAL) although the validator accepted it: {why}",
            reason="kernel-refused", errno=e.errno, pid=pid, path=path)
    if e.errno in (_errno.ESRCH, _errno.ENOENT):
        return _gone(e, pid, path)
    return MapWriteError(f"cannot write {path}: {e.strerror}", reason="kernel-refused",
                         errno=e.errno, pid=pid, path=path)


# -- running a command --------------------------------------------------------------------


def _helper_argv(kind: str, idmap: IDMap, pid: int, subid_path: str) -> list[str]:
    """The ``newuidmap``/``newgidmap`` command installing ``idmap``, after checking that the
    helper exists and that ``subid_path`` lets the caller map every host ID it needs (as
    shadow decides it: :mod:`userns.authorize`)."""
    from .authorize import newgidmap_decision, newuidmap_decision
    from .subid import Accounts

    tool = f"new{kind}map"
    exe = shutil.which(tool)
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    if exe is None:
        raise HelperMissingError(
            f"running as uid {uid} without CAP_SET{kind.upper()}: installing this {kind} map "
            f"needs {tool} (Debian/Ubuntu package 'uidmap', Fedora 'shadow-utils'), which "
            "is not on PATH",
            reason=f"no-{tool}")
    try:
        with open(subid_path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    accounts = Accounts.read("/")
    decision = (
        newuidmap_decision(text, idmap, user=name, uid=uid, accounts=accounts)
        if kind == "uid"
        else newgidmap_decision(text, idmap, user=name, uid=uid, gid=os.getgid(),
                                accounts=accounts)
    )
    if not decision.allowed:
        denied = next((v for v in decision.verdicts if not v.allowed), None)
        if denied is None:  # refused for another reason than a missing range
            raise HelperMissingError(f"{tool} would refuse this map: {decision.message}",
                                     reason="helper-failed", path=subid_path)
        raise HelperMissingError(
            f"{decision.message}: {subid_path} does not give host {kind}s "
            f"{denied.host}-{denied.host + denied.count - 1} to user {name!r} (uid {uid}); "
            f"add them with 'usermod --add-sub{kind}s {denied.host}-"
            f"{denied.host + denied.count - 1} {name}' (a line "
            f"'{name}:{denied.host}:{denied.count}')",
            reason=f"no-sub{kind}-range", path=subid_path)
    return [exe, str(pid), *(str(x) for e in idmap for x in (e.container, e.host, e.size))]


def _run_helper(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()
        raise HelperMissingError(
            f"{os.path.basename(argv[0])} refused {' '.join(argv[2:])!r}: {said}",
            reason="helper-failed")


def _owns_only_self(idmap: IDMap, own: int) -> bool:
    return len(idmap) == 1 and idmap[0].size == 1 and idmap[0].host == own


def _install(child_pid: int, maps: IDMapPair, *, proc: str) -> None:
    """Write both maps of ``child_pid``, directly or through the helpers."""
    if _has_caps(CAP_SETUID, CAP_SETGID, CAP_SETFCAP):
        write_map(child_pid, maps.uid, "uid", proc=proc)
        write_map(child_pid, maps.gid, "gid", proc=proc)
        return
    # Unprivileged: the kernel alone lets a user map just their own IDs (gid only after
    # 'deny'); anything more goes through the setuid helpers and /etc/sub[ug]id.
    uid_self = _owns_only_self(maps.uid, os.geteuid())
    gid_self = _owns_only_self(maps.gid, os.getegid())
    argvs = []
    if not uid_self:
        argvs.append(_helper_argv("uid", maps.uid, child_pid, "/etc/subuid"))
    if not gid_self:
        argvs.append(_helper_argv("gid", maps.gid, child_pid, "/etc/subgid"))
    if uid_self:
        write_map(child_pid, maps.uid, "uid", proc=proc)
    if gid_self:
        write_map(child_pid, maps.gid, "gid", setgroups="deny", proc=proc)
    for argv in argvs:
        _run_helper(argv)


_STAGE_REASONS = {
    "unshare": "unshare-failed",
    "setid": "setid-failed",
    "chdir": "chdir-failed",
    "exec": "exec-failed",
    "stdio": "exec-failed",
}


def run_in_userns(  # noqa: C901 (the namespace set-up steps in the order the kernel needs them)
    argv: Sequence[str],
    maps: IDMapPair,
    *,
    uid: int = 0,
    gid: int = 0,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    pass_fds: Sequence[int] = (),
    proc: str = _PROC,
) -> int:
    """Run ``argv`` in a new user namespace with ``maps``, as ``uid``/``gid`` inside; its exit
    status.

    Like ``unshare --user`` plus ``newuidmap``/``newgidmap``, but taking :class:`IDMapPair`
    values: the child unshares and waits; the parent installs the maps (directly when
    it holds ``CAP_SETUID``, ``CAP_SETGID`` and ``CAP_SETFCAP``, else through the
    ``newuidmap``/``newgidmap`` helpers and ``/etc/subuid``/``/etc/subgid``, or the
    kernel's own-ID rule); the child drops its supplementary groups (when setgroups is
    allowed), becomes ``uid``/``gid`` and execs ``argv`` (searched on ``PATH`` of ``env``).
    Standard streams are inherited unless file descriptors are given; no other descriptor
    is, except ``pass_fds``; SIGPIPE and SIGXFSZ are reset to their defaults. The result is the
    command's exit code, or 128 + the signal number if a signal killed it, as a shell
    reports it.

    Raises :class:`~userns.errors.UnmappedIDError` if ``uid``/``gid`` is not mapped,
    :class:`~userns.errors.InvalidMapError` for a map the kernel would refuse (more than
    340 extents, say), :class:`HelperMissingError` when an unprivileged caller lacks what
    the maps need, :class:`MapWriteError` when the kernel refuses a map, and
    :class:`NamespaceSetupError` when unshare, ``setresuid``, ``chdir`` or exec fails.

    >>> remap = IDMapPair.both(IDMap.single(0, 231072, 65536))
    >>> try:
    ...     run_in_userns(["id"], remap, uid=70000)
    ... except UsernsError as err:
    ...     print(err.reason, err.id)
    unmapped 70000
    """
    args = [os.fsdecode(a) for a in argv]
    if not args:
        raise ValueError("argv is empty: nothing to run")
    # Refuse what cannot work before anything is started.
    maps.uid.to_host(uid)
    maps.gid.to_host(gid)
    for kind, idmap in (("uid", maps.uid), ("gid", maps.gid)):
        validate_map_write(format_proc(idmap), path=f"{kind}_map")
    environ = dict(os.environ if env is None else env)
    streams = [(fd, target) for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2))
               if fd is not None]

    def then(report: Report) -> NoReturn:  # pragma: no cover - runs in the child
        try:
            # Copies first, so that stdout=2, stderr=1 (say) does not clobber itself.
            copies = [(os.dup(fd), target) for fd, target in streams]
            for fd, target in copies:
                os.dup2(fd, target)
            # Like subprocess: no other descriptor of ours leaks into the command.
            keep = {0, 1, 2, *pass_fds}
            for name in os.listdir(f"{proc}/self/fd"):
                fd = int(name)
                if fd not in keep:
                    with contextlib.suppress(OSError):
                        os.set_inheritable(fd, False)
            for fd in pass_fds:
                os.set_inheritable(fd, True)
        except OSError as e:
            report("stdio", e)
        # Python ignores SIGPIPE (and SIGXFSZ); an exec'd command expects the default.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        try:
            # Drop the inherited supplementary groups, unless setgroups() is denied here.
            if read_setgroups(proc=proc) == "allow":
                os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        except OSError as e:
            report("setid", e)
        if cwd is not None:
            try:
                os.chdir(cwd)
            except OSError as e:
                report("chdir", e)
        try:
            os.execvpe(args[0], args, environ)
        except OSError as e:
            if e.filename is None:
                e.filename = args[0]
            report("exec", e)
        os._exit(127)

    try:
        child = NamespaceChild(then)
    except ChildFailure as f:
        raise _setup_error(f, args) from None
    try:
        _install(child.pid, maps, proc=proc)
    except BaseException:
        child.abort()
        raise
    try:
        child.go()
    except ChildFailure as f:
        raise _setup_error(f, args) from None
    status = child.wait()
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _setup_error(f: ChildFailure, argv: list[str]) -> NamespaceSetupError:
    reason = _STAGE_REASONS.get(f.stage, "namespace-setup")
    what = {
        "unshare": "cannot create a user namespace (unshare(CLONE_NEWUSER))",
        "setid": "cannot become the requested uid/gid inside the namespace",
        "chdir": f"cannot change to directory {f.detail!r} inside the namespace",
        "exec": f"cannot run {argv[0]!r}",
        "stdio": "cannot set up the standard streams",
    }.get(f.stage, f.stage)
    why = os.strerror(f.errno or 0)
    if f.stage == "exec" and f.errno == _errno.EACCES and "/" not in argv[0]:
        # execvp reports EACCES from any PATH directory the new IDs cannot search, even
        # when the command is simply not there.
        why += (" (not found on PATH, or a PATH directory or the file is not accessible to "
                "the IDs inside)")
    return NamespaceSetupError(f"{what}: {why}", reason=reason, errno=f.errno,
                               path=f.detail or None)
