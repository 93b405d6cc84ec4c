"""Every exception userns raises.

One root, :class:`UsernsError`; each concrete error also subclasses the builtin it
resembles, so ``except ValueError`` keeps working for callers who do not know userns.
Every error carries a short, stable ``reason`` code (``overlap-host``,
``too-many-extents``, ...) that tests and tools can match on instead of the message.

This module imports nothing else from the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import strerror as _strerror  # a table of messages; the one use of os here
from typing import Any

__all__ = [
    "SystemCallError",
    "ShiftError",
    "UnmappedOwnersError",
    "OutsideLinksError",
    "XattrFormatError",
    "JournalError",
    "RuntimeConfigError",
    "UnknownFormatError",
    "FormatSideError",
    "CommandError",
    "UsageError",
    "SubidParseError",
    "LockError",
    "AllocationError",
    "NotAllowedError",
    "KernelError",
    "MapWriteError",
    "NamespaceSetupError",
    "HelperMissingError",
    "ChildFailure",
    "AccessError",
    "InvalidIDError",
    "InvalidMapError",
    "InvalidOwnerError",
    "InvalidRangeError",
    "Location",
    "MountError",
    "NotExpressibleError",
    "ParseError",
    "UnmappedIDError",
    "UsernsError",
]


class Location:
    """Where in a text something went wrong: path, 1-based line and column, and the line.

    ``end_column`` is exclusive; the caret line underlines ``column`` up to it.

    >>> print(Location(line=2, column=3, end_column=6, text="0 x 1", path="uid_map").render())
      uid_map:2:3
        0 x 1
          ^~~
    """

    __slots__ = ("column", "end_column", "line", "path", "text")

    def __init__(
        self,
        *,
        line: int | None = None,
        column: int | None = None,
        end_column: int | None = None,
        text: str | None = None,
        path: str | None = None,
    ) -> None:
        self.line = line
        self.column = column
        self.end_column = end_column
        self.text = text
        self.path = path

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("line", "column", "end_column", "text", "path")
            if getattr(self, name) is not None
        )
        return f"Location({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Location):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[object, ...]:
        return (self.line, self.column, self.end_column, self.text, self.path)

    def __reduce__(self) -> tuple[object, ...]:
        line, column, end_column, text, path = self._key()
        return (_location, (line, column, end_column, text, path))

    def prefix(self) -> str:
        """``path:line:column`` with whatever parts are known (``""`` when none)."""
        parts = [self.path or ("<input>" if self.line is not None else "")]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(p for p in parts if p)

    def render(self) -> str:
        """The location, the offending line and a caret under the offending text."""
        out = [f"  {self.prefix()}"] if self.prefix() else []
        if self.text is not None:
            shown = self.text.rstrip("\n")
            out.append(f"    {shown}")
            if self.column is not None:
                start = max(self.column - 1, 0)
                end = self.end_column - 1 if self.end_column is not None else start + 1
                width = max(end - start, 1)
                # Keep tabs so the caret lines up under tabbed text in a terminal.
                pad = "".join("\t" if ch == "\t" else " " for ch in shown[:start])
                out.append(f"    {pad}^{'~' * (width - 1)}")
        return "\n".join(out)


def _location(line: int | None, column: int | None, end_column: int | None, text: str | None,
              path: str | None) -> Location:
    """Unpickle a :class:`Location`."""
    return Location(line=line, column=column, end_column=end_column, text=text, path=path)


class UsernsError(Exception):
    """Root of every error raised by userns.

    ``reason`` is a short stable code naming the broken rule; ``location`` says where in
    a text the problem is, when the error comes from parsing.
    """

    reason: str = "error"

    def __init__(
        self, message: str, *, reason: str | None = None, location: Location | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.location = location

    def __str__(self) -> str:
        head = self.message
        if self.location is not None and self.location.prefix():
            head = f"{self.location.prefix()}: {head}"
        return f"{head} [{self.reason}]"

    def __reduce__(self) -> tuple[object, ...]:
        # One rule for every subclass, whatever its __init__ takes: rebuild the exception
        # from its args without calling __init__, then restore its attributes (for an
        # OSError also errno, strerror and filename, which live outside __dict__).
        state = dict(self.__dict__)
        if isinstance(self, OSError):
            state.update(errno=self.errno, strerror=self.strerror, filename=self.filename,
                         filename2=self.filename2)
        return (_rebuild, (type(self), self.args, state))

    def render(self) -> str:
        """A multi-line report: the message, then the line with a caret when known."""
        text = str(self)
        if self.location is not None and self.location.text is not None:
            lines = self.location.render().splitlines()
            # The first rendered line repeats the prefix already in the message.
            text += "\n" + "\n".join(lines[1:] if self.location.prefix() else lines)
        return text


def _rebuild(cls: type[UsernsError], args: tuple[object, ...],
             state: dict[str, object]) -> UsernsError:
    """Unpickle a :class:`UsernsError` of any subclass (see ``UsernsError.__reduce__``)."""
    err = cls.__new__(cls, *args)
    err.args = args
    for name, value in state.items():
        setattr(err, name, value)
    return err


class InvalidIDError(UsernsError, ValueError):
    """An integer is not a valid user or group ID (outside ``0 … 4294967294``).

    Raised where an ID is an input (``IDRange(-1, 5)``, ``Extent(0, 4294967295, 1)``);
    a valid ID that a map does not cover raises :class:`UnmappedIDError` instead.
    """

    reason = "invalid-id"


class InvalidRangeError(UsernsError, ValueError):
    """An ID range is malformed: size below 1, or it runs past ``ID_MAX``."""

    reason = "invalid-range"


class InvalidMapError(UsernsError, ValueError):
    """A set of extents is not a valid ID map, or a map text breaks a kernel rule.

    Raised by ``IDMap(...)`` (overlap on either side) and by ``validate_map_write``
    (every rule of the kernel's ``map_write``); ``reason`` names the rule and
    ``location`` the line when the map came from text.
    """

    reason = "invalid-map"


class ParseError(UsernsError, ValueError):
    """A text in one of the supported formats could not be read.

    Always has a ``location`` with the line, the column and the offending text.
    """

    reason = "syntax"


class UnmappedIDError(UsernsError, LookupError):
    """A valid ID has no counterpart on the other side of a map.

    ``id`` is the ID looked up and ``direction`` is ``"to_host"`` or ``"to_container"``.
    """

    reason = "unmapped"

    def __init__(self, id: int, direction: str, message: str | None = None) -> None:
        if message is None:
            message = (f"container ID {id} has no host ID in this map" if direction == "to_host"
                       else f"host ID {id} is not mapped into the container")
        super().__init__(message)
        self.id = id
        self.direction = direction


class InvalidOwnerError(UsernsError, ValueError):
    """An owner name may not be written into ``/etc/subuid`` or ``/etc/subgid``.

    Raised by every writer (``SubidFile.add_range``, the ``shadow_*`` writers,
    ``add_subid_range``/``edit_subid_file``, ``userns allocate --write``) BEFORE anything
    is written, so the files stay byte-identical. ``reason`` is ``invalid-owner`` when
    the text breaks a rule (``rule`` names it: ``colon``, ``control-character``,
    ``not-portable``, ...) and ``unknown-owner`` when the name is well formed but has no
    passwd entry and unknown owners were not allowed. ``owner`` is the offending text.
    Unlike :class:`ParseError` it concerns text about to be written, not text read.
    """

    reason = "invalid-owner"

    def __init__(self, message: str, *, reason: str | None = None, owner: str = "",
                 rule: str = "") -> None:
        super().__init__(message, reason=reason)
        self.owner = owner
        self.rule = rule


class SystemCallError(UsernsError, OSError):
    """A system call on a path failed in a way userns explains: the base of the errors of
    the I/O modules that carry the kernel's ``errno`` and the ``path`` involved.

    Not raised itself; its subclasses are (:class:`MountError`, :class:`AccessError`,
    :class:`KernelError` and its own).
    Unlike the ``ValueError`` family, the input was valid: the system said no. As an
    ``OSError``, ``errno`` and ``filename`` are set; ``strerror`` is the explanation.
    """

    reason = "os-error"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        errno: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.errno = errno
        self.strerror = message
        self.filename = path
        self.path = path


class MountError(SystemCallError):
    """An idmapped mount could not be made, probed or read (:mod:`userns.mount`).

    Raised by ``idmapped_mount``, ``idmap_in_place``, ``read_idmap`` and by
    ``prepare_volume(strategy="idmap")`` when the kernel or the filesystem refuses; a probe
    (``userns.mount.probe``) never raises it but returns the same ``reason`` in its answer.
    Unlike ``KernelError`` (a map written to ``/proc``), this is about the mount API
    (``open_tree``, ``mount_setattr``, ``move_mount``, ``statmount``). ``errno`` is the
    kernel's, ``path`` the path involved and ``step`` the system call that failed.

    Reasons: ``unsupported-arch`` (no syscall numbers known for this CPU),
    ``no-kernel-support`` (ENOSYS: Linux before 5.12, or a seccomp filter),
    ``not-found`` (the path does not exist), ``fs-unsupported`` (the filesystem cannot be
    idmapped: procfs, NFS, 9p, FUSE without the server's opt-in, tmpfs before 6.3),
    ``already-idmapped`` (the mount is idmapped already and the kernel cannot replace its
    map: before Linux 6.15), ``not-permitted`` (no
    ``CAP_SYS_ADMIN`` over the superblock's or the mount namespace's user namespace),
    ``unmapped-namespace`` (a map is empty: Linux 6.9+ refuses it), ``helper-failed``
    (the user namespace holding the maps could not be made), ``target-failed`` (attaching
    the mount at the destination failed), ``maps-unavailable`` (the kernel cannot say
    what an idmapped mount's maps are: ``statmount`` before Linux 6.15).

    >>> err = MountError("no idmap", reason="fs-unsupported", errno=22, path="/proc")
    >>> isinstance(err, OSError), err.errno, str(err)
    (True, 22, 'no idmap [fs-unsupported]')
    >>> import pickle; pickle.loads(pickle.dumps(err)).reason
    'fs-unsupported'
    """

    reason = "mount"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        errno: int | None = None,
        path: str | None = None,
        step: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason, errno=errno, path=path)
        self.step = step


class AccessError(SystemCallError):
    """An access analysis (:mod:`userns.access`) could not read the path it was asked about.

    Raised by ``userns.access.walk``/``analyze``/``read_inode`` when a component cannot be
    read from the host (``io``: it does not exist, or the caller may not ``lstat`` it),
    when a component on the way is not a directory (``not-a-directory``), when symlinks
    loop (``loop``), when the path is not under the walk's start (``outside-start``), or
    when an access ACL is not in the kernel's format (``bad-acl``). A refusal the
    analysed identity would meet is never an error: it is a verdict. Unlike
    :class:`MountError` it concerns reading a tree, not making mounts. ``errno`` is the
    host's, ``path`` the component involved.

    >>> err = AccessError("cannot read /x: No such file", reason="io", path="/x", errno=2)
    >>> isinstance(err, OSError), err.errno, str(err)
    (True, 2, 'cannot read /x: No such file [io]')
    """

    reason = "access"


class NotExpressibleError(UsernsError, ValueError):
    """A valid map that the format asked to write cannot express.

    Raised by the writer of a restricted format (``format_nspawn``: one range from
    container ID 0, the same for users and groups; ``format_crio``: a uid map and a gid
    map, neither empty) instead of writing a text that a tool would read as another map.
    The map itself is fine: unlike :class:`InvalidMapError` nothing is wrong with it, and
    unlike ``FormatSideError`` (a one-map format given two different maps) choosing a
    side does not help. ``format_name`` names the format; the message says what it can
    express. ``Format.writes_any`` in :mod:`userns.formats.registry` says beforehand
    which formats may raise it.

    >>> err = NotExpressibleError("nspawn maps one range", format_name="nspawn")
    >>> str(err), isinstance(err, ValueError)
    ('nspawn maps one range [not-expressible]', True)
    """

    reason = "not-expressible"

    def __init__(self, message: str, *, reason: str | None = None,
                 format_name: str = "") -> None:
        super().__init__(message, reason=reason)
        self.format_name = format_name


class ShiftError(UsernsError, OSError):
    """A shift stopped part-way: a path could not be changed (``reason`` ``path-error``)
    or the walk found the tree changing under it. ``report`` says what was done; the
    journal is kept, so running the same shift again resumes it.
    """

    reason = "path-error"

    def __init__(self, message: str, report: Any, *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.report = report


class UnmappedOwnersError(UsernsError, LookupError):
    """The preflight found IDs the maps cannot translate (policy ``error``); nothing was
    changed. ``report`` lists them in ``unmapped``.
    """

    reason = "unmapped"

    def __init__(self, report: Any) -> None:
        ids = ", ".join(f"{u.kind} {u.id}" for u in report.unmapped[:5])
        more = "" if len(report.unmapped) <= 5 else f" and {len(report.unmapped) - 5} more"
        super().__init__(f"{len(report.unmapped)} IDs cannot be translated: {ids}{more}; "
                         "nothing was changed (use policy 'skip' or 'overflow')")
        self.report = report


class OutsideLinksError(UsernsError, LookupError):
    """The preflight (policy ``error``) found hard-linked inodes with a name outside the
    tree: changing them would change files outside it. Nothing was changed. Unlike
    :class:`UnmappedOwnersError` the maps are fine; the tree is not self-contained.
    ``report.outside_links`` lists them; ``include_outside_links=True`` (the CLI's
    ``--include-outside-links``) re-owns them anyway, policy ``skip`` leaves them.
    """

    reason = "outside-links"

    def __init__(self, report: Any) -> None:
        links = report.outside_links
        shown = ", ".join(f"{o.path} ({o.links} links, {o.inside} inside)" for o in links[:5])
        more = "" if len(links) <= 5 else f" and {len(links) - 5} more"
        one = len(links) == 1
        super().__init__(f"{len(links)} hard-linked {'inode has' if one else 'inodes have'} "
                         f"a name outside the tree: {shown}{more}; changing "
                         f"{'it' if one else 'them'} would change files outside "
                         "it; nothing was changed (remove the links, use policy 'skip' to "
                         "leave them, or include_outside_links to re-own them anyway)")
        self.report = report


class XattrFormatError(UsernsError, ValueError):
    """A ``security.capability`` or POSIX ACL value is not in the kernel's format.

    ``reason`` is ``bad-capability`` or ``bad-acl``.
    """

    reason = "bad-xattr"


class JournalError(UsernsError, OSError):
    """The journal cannot be used: another shift holds it (``busy``), it belongs to a
    different shift (``journal-mismatch``), it is unreadable (``bad-journal``) or it
    cannot be created (``journal-unwritable``); or a rollback finds none (``no-journal``),
    or an unshift finds an interrupted shift it cannot roll back here
    (``journal-pending``)."""

    reason = "journal"


class RuntimeConfigError(UsernsError, ValueError):
    """A runtime would refuse its configuration; the message is the runtime's own.

    Raised by :func:`docker_remapped_root` (``reason`` ``docker-config``) and
    :func:`podman_auto_size` / :func:`podman_auto` (``auto-too-big``,
    ``no-available-ids``). Functions that return a :class:`RuntimeMaps` report the same
    failures in its ``error`` instead of raising.
    """

    reason = "runtime-config"


class UnknownFormatError(UsernsError, LookupError):
    """:func:`get_format` was given a name that is neither a format nor an alias."""

    reason = "unknown-format"


class FormatSideError(UsernsError, ValueError):
    """A one-map format was asked to write a uid+gid pair whose two maps differ.

    Pass ``side="uid"`` or ``side="gid"`` to say which map to write.
    """

    reason = "sides-differ"


class CommandError(UsernsError, ValueError):
    """A command was given something it cannot use (a missing file, an unreadable map)."""

    reason = "input"


class UsageError(CommandError):
    """The command line itself is wrong (exit status 2, like argparse's own errors)."""

    reason = "usage"


class SubidParseError(ParseError):
    """A subid file broke one or more rules of the strict syntax.

    ``location`` and ``reason`` are those of the first problem; :attr:`problems` holds
    every problem in line order, each a :class:`~userns.ParseError` with its own
    location and reason. :meth:`render` shows them all, each with its caret.
    """

    def __init__(self, problems: Sequence[ParseError]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first.message + more, reason=first.reason, location=first.location)
        self.problems = tuple(problems)

    def render(self) -> str:
        """Every problem, one block each: ``path:line:col: message [reason]`` and a caret."""
        return "\n".join(p.render() for p in self.problems)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


class LockError(UsernsError, OSError):
    """The file's ``.lock`` is held by a live process (``locked``), or the lock could not
    be made (``lock-failed``: no permission, a lock without a PID, …)."""

    reason = "locked"


class AllocationError(UsernsError, LookupError):
    """No range can be allocated: ``no-room`` (the file is full between MIN and MAX),
    ``invalid-config`` (shadow's MIN/MAX/COUNT check fails), or ``past-id-max`` (shadow
    would pick a start that does not fit a 32-bit ID).
    """

    reason = "no-room"


class NotAllowedError(UsernsError, PermissionError):
    """``newuidmap``/``newgidmap`` would refuse the map (raised by :meth:`Decision.check`).

    ``reason`` is ``not-allowed`` (an extent outside the caller's subordinate IDs),
    ``overflow`` (an argument past 32 bits), ``unknown-user`` (no passwd entry for the
    caller's uid) or ``kernel-refused`` (authorized, but the kernel then refuses the
    write: overlapping extents, or none at all); the message is what the tool prints.
    """

    reason = "not-allowed"


class KernelError(SystemCallError):
    """The kernel, or a process around it, refused something: an :class:`OSError` with an
    ``errno``, a ``reason`` code and, where one is involved, the ``pid`` and ``path``.

    >>> err = KernelError("no such process", reason="no-such-process", errno=3, pid=9)
    >>> isinstance(err, OSError), err.errno, str(err)
    (True, 3, 'no such process [no-such-process]')
    """

    reason = "kernel"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        errno: int | None = None,
        pid: int | str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason, errno=errno, path=path)
        # The errno's own words, as OSError gives them; the message when there is none.
        self.strerror = _strerror(errno) if errno else message
        self.pid = pid


class MapWriteError(KernelError):
    """Writing ``uid_map``/``gid_map``/``setgroups`` failed in the kernel; ``reason`` says why.

    - ``already-written``: the map was written before (a map is written once; EPERM);
    - ``not-permitted``: the writer may not install this map (EPERM): it lacks
      ``CAP_SETUID``/``CAP_SETGID`` over the parent namespace, or it is not in the target's
      namespace or its parent, or a host ID is not mapped in the writer's namespace, or
      mapping host root lacks ``CAP_SETFCAP``, or (gid_map, unprivileged) setgroups is
      not ``deny``;
    - ``kernel-refused``: EINVAL for a text the validator accepted (an older kernel's
      limits, such as 5 extents before Linux 4.15);
    - ``setgroups-after-gid-map``: ``deny`` written after gid_map (EPERM);
    - ``no-such-process``: the process is gone.

    A text the kernel's rules refuse never gets here: :func:`write_map` raises the
    validator's :class:`~userns.errors.InvalidMapError` before writing.
    """

    reason = "map-write"


class NamespaceSetupError(KernelError):
    """Starting a process in a new user namespace failed; ``reason`` names the step.

    ``unshare-failed`` (user namespaces disabled or their limit reached), ``setid-failed``
    (``setresuid``/``setresgid`` inside), ``chdir-failed``, ``exec-failed`` (the command
    was not found or is not executable: ``errno`` says which).
    """

    reason = "namespace-setup"


class HelperMissingError(KernelError):
    """An unprivileged caller cannot install the maps; the message says exactly what is missing.

    ``no-newuidmap`` / ``no-newgidmap`` (install the ``uidmap`` package),
    ``no-subuid-range`` / ``no-subgid-range`` (``/etc/subuid`` or ``/etc/subgid`` does
    not delegate these host IDs to the caller), ``helper-failed`` (the helper refused;
    its own message is quoted).
    """

    reason = "helper-missing"


class ChildFailure(UsernsError, OSError):
    """What the child reported before it could do its work: ``stage``, ``errno``, ``detail``.

    :func:`userns.kernel.run_in_userns` turns it into a ``NamespaceSetupError``.

    >>> str(ChildFailure("exec", 2, "nosuchcommand"))
    'exec: No such file or directory (nosuchcommand) [child-failed]'
    """

    reason = "child-failed"

    def __init__(self, stage: str, errno: int, detail: str) -> None:
        super().__init__(f"{stage}: {_strerror(errno)}{f' ({detail})' if detail else ''}")
        self.stage = stage
        self.errno = errno
        self.detail = detail
