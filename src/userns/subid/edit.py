"""Edit a subid file in place the way shadow does: locked, backed up, atomic.

:func:`edit_subid_file` takes shadow's lock (``<file>.lock``, made by hard-linking a
``<file>.<pid>`` file that holds the PID, so ``useradd``/``usermod`` and userns exclude
each other, and a lock left by a dead process is taken over), reads the file, applies a
pure change (a :class:`~userns.subid.SubidFile` method such as ``add_range``), and when
the text changed:

1. copies the current file to ``<file>-`` (same owner, mode ``& 0664``, times), fsync;
2. writes the new text to ``<file>+`` (same owner and mode), fsync;
3. renames ``<file>+`` over ``<file>`` and fsyncs the directory.

A crash at any point leaves the old file or the new one, never a mix: the file itself
is only ever replaced by ``rename``. Lines that the change did not touch are written
back byte for byte. A symlinked file is refused (shadow opens with ``O_NOFOLLOW``).
"""

from __future__ import annotations

import collections
import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterator

import attrs

from ..errors import (
    InvalidOwnerError,
    LockError,
    UsernsError,
)
from ..ranges import IDRange
from .accounts import Accounts
from .model import SubidFile, SubidParseError
from .owners import UnknownOwnerWarning, check_owner

__all__ = [
    "LockError",
    "UnknownOwnerWarning",
    "accounts_beside",
    "add_subid_range",
    "edit_subid_file",
    "lock_file",
    "remove_subid_range",
    "write_subid_file",
]

#: shadow's lock attempts (``LOCK_TRIES``) and the pause between them (``LOCK_SLEEP``).
LOCK_TRIES = 15
LOCK_SLEEP = 1.0


def _checkpoint(step: str) -> None:
    """A named point between two steps of a write; tests inject failures here."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _try_lock(path: str) -> bool:
    """One attempt of shadow's ``do_lock_file``; True when the lock is ours."""
    pid = os.getpid()
    mine = f"{path}.{pid}"
    lock = f"{path}.lock"
    fd = os.open(mine, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        os.write(fd, f"{pid}\0".encode())
        os.fdatasync(fd)
    finally:
        os.close(fd)
    try:
        for attempt in range(2):
            try:
                os.link(mine, lock)
            except FileExistsError:
                if attempt:
                    return False
                try:
                    with open(lock, "rb") as fh:
                        content = fh.read(31)
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                text = content.split(b"\0", 1)[0].strip()
                if not text.isdigit():
                    shown = (repr(content.decode("utf-8", "backslashreplace")) if content
                             else "(empty)")
                    raise LockError(f"existing lock file {lock} holds no process ID: {shown}; "
                                    "remove it if no tool is editing the file",
                                    reason="lock-failed") from None
                if _pid_alive(int(text)):
                    return False
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)  # stale: its process is gone
                continue
            # shadow's check_link_count: exactly our file and the lock share the inode.
            return os.stat(mine).st_nlink == 2
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(mine)


@contextlib.contextmanager
def lock_file(
    path: str | os.PathLike[str], *, tries: int = LOCK_TRIES, delay: float = LOCK_SLEEP
) -> Iterator[None]:
    """Hold shadow's lock on ``path`` (``<path>.lock``) for the ``with`` block.

    Retries ``tries`` times, ``delay`` seconds apart, like shadow; raises
    :class:`LockError` when a live process keeps it.
    """
    name = os.fspath(path)
    lock = f"{name}.lock"
    for attempt in range(max(tries, 1)):
        if attempt:
            time.sleep(delay)
        if _try_lock(name):
            break
    else:
        raise LockError(f"{lock} is held by another process", reason="locked")
    try:
        yield
    finally:
        _checkpoint("unlock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


def _write_copy(dest: str, data: bytes, st: os.stat_result, step: str) -> None:
    """Write ``data`` to ``dest`` with ``st``'s owner and mode (``& 0664``, as shadow)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)
    old = os.umask(0o777)
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    finally:
        os.umask(old)
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, st.st_mode & 0o664)
        _checkpoint(f"{step}-write")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        _checkpoint(f"{step}-fsync")
        os.fsync(fd)
    finally:
        os.close(fd)


def write_subid_file(path: str | os.PathLike[str], file: SubidFile, *,
                     backup: bool = True) -> None:
    """Replace ``path`` with ``file``'s bytes: backup, temp file, fsync, rename.

    The caller holds the lock (see :func:`lock_file`); :func:`edit_subid_file` does
    both. A missing ``path`` is created ``root:root 0644`` (shadow's default). ``file``
    is written as given, unchecked: :func:`edit_subid_file` and :func:`add_subid_range`
    are the checked way in (every owner they add passes
    :func:`~userns.subid.owners.check_owner` first).
    """
    name = os.fspath(path)
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UsernsError(f"{name} is not a regular file (shadow refuses symlinks too)",
                          reason="not-regular")
    if st is not None and backup:
        with open(name, "rb") as fh:
            current = fh.read()
        _checkpoint("backup")
        _write_copy(f"{name}-", current, st, "backup")
        os.utime(f"{name}-", ns=(st.st_atime_ns, st.st_mtime_ns))
    if st is None:
        st = os.stat_result((0o100644, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    _checkpoint("new")
    _write_copy(f"{name}+", file.to_bytes(), st, "new")
    _checkpoint("rename")
    os.rename(f"{name}+", name)
    _checkpoint("dir-fsync")
    dfd = os.open(os.path.dirname(os.path.abspath(name)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def accounts_beside(path: str | os.PathLike[str]) -> Accounts:
    """The passwd and group data that belong with the subid file at ``path``: the files
    ``passwd`` and ``group`` in the same directory (``/etc/subuid``: ``/etc/passwd``).
    A missing file is an empty database."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    texts = []
    for base in ("passwd", "group"):
        try:
            with open(os.path.join(directory, base), encoding="utf-8",
                      errors="surrogateescape") as fh:
                texts.append(fh.read())
        except FileNotFoundError:
            texts.append("")
    return Accounts.parse(texts[0], texts[1])


@attrs.frozen
class _OwnerPolicy:
    """How the owners of the lines an edit adds are checked (see ``owners.py``)."""

    accounts: Accounts
    passwd: str
    allow_unknown_owner: bool = False
    badname: bool = False
    checked: frozenset[str] = frozenset()

    def check(self, owner: str) -> None:
        try:
            check_owner(owner, accounts=self.accounts,
                        allow_unknown_owner=self.allow_unknown_owner, badname=self.badname)
        except InvalidOwnerError as err:
            if err.reason != "unknown-owner":
                raise
            raise InvalidOwnerError(
                f"owner {owner!r} refused: no user of that name or uid in {self.passwd} "
                "(allow_unknown_owner=True or --allow-unknown-owner writes it anyway); "
                "nothing was written", reason=err.reason, owner=owner, rule=err.rule,
            ) from None

    def check_new_lines(self, old: SubidFile, new: SubidFile) -> None:
        """Refuse ``new`` when a line it adds is not a valid entry, comment or blank
        line, or adds an owner (not in ``old`` already) that :meth:`check` refuses."""
        kept = collections.Counter(line.text for line in old.lines)
        owners = set(self.checked) | {e.owner for e in old.entries}
        owners |= {line.shadow.owner for line in old.lines if line.shadow is not None}
        for line in new.lines:
            if kept[line.text] > 0:
                kept[line.text] -= 1
                continue
            if line.problems:
                raise SubidParseError(line.problems)
            entry = line.entry
            if entry is not None and entry.owner not in owners:
                self.check(entry.owner)
                owners.add(entry.owner)


def _policy(name: str, accounts: Accounts | None, allow_unknown_owner: bool,
            badname: bool, checked: frozenset[str] = frozenset()) -> _OwnerPolicy:
    passwd = os.path.join(os.path.dirname(os.path.abspath(name)), "passwd")
    if accounts is not None:
        passwd = "the given accounts"
    return _OwnerPolicy(accounts if accounts is not None else accounts_beside(name), passwd,
                        allow_unknown_owner, badname, checked)


def edit_subid_file(
    path: str | os.PathLike[str],
    change: Callable[[SubidFile], SubidFile],
    *,
    backup: bool = True,
    missing_ok: bool = False,
    tries: int = LOCK_TRIES,
    delay: float = LOCK_SLEEP,
    accounts: Accounts | None = None,
    allow_unknown_owner: bool = False,
    badname: bool = False,
) -> SubidFile:
    """Lock ``path``, apply ``change`` to its model, write it back if the text changed.

    Returns the file as it now is. ``missing_ok`` treats a missing file as empty (and
    creates it when the change adds lines).

    Before anything is written, every line the change adds must read cleanly (an
    entry, a comment or a blank line: else :class:`~userns.subid.SubidParseError`),
    and every owner it adds that the file did not have must pass
    :func:`~userns.subid.owners.check_owner` against ``accounts`` (default: the
    ``passwd``/``group`` files beside ``path``, see :func:`accounts_beside`), else
    :class:`~userns.InvalidOwnerError`. A refusal leaves the file byte-identical, its
    mtime too.
    """
    name = os.fspath(path)
    return _edit(name, change, _policy(name, accounts, allow_unknown_owner, badname),
                 backup=backup, missing_ok=missing_ok, tries=tries, delay=delay)


def _require_directory(name: str) -> None:
    directory = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(directory):
        raise UsernsError(f"cannot write {name}: the directory {directory} does not exist",
                          reason="no-directory")


def _edit(name: str, change: Callable[[SubidFile], SubidFile], policy: _OwnerPolicy, *,
          backup: bool, missing_ok: bool, tries: int, delay: float) -> SubidFile:
    _require_directory(name)
    with lock_file(name, tries=tries, delay=delay):
        _checkpoint("read")
        old = SubidFile.read(name, missing_ok=missing_ok)
        new = change(old)
        if new.text == old.text:
            return old
        policy.check_new_lines(old, new)
        write_subid_file(name, new, backup=backup)
        return SubidFile.parse(new.text, path=name)


def add_subid_range(path: str | os.PathLike[str], owner: str, range: IDRange, *,
                    backup: bool = True, missing_ok: bool = False,
                    accounts: Accounts | None = None, allow_unknown_owner: bool = False,
                    badname: bool = False) -> SubidFile:
    """Give ``owner`` the IDs of ``range`` in the file at ``path`` (``SubidFile.add_range``).

    ``owner`` is checked before the file is locked or read
    (:func:`~userns.subid.owners.check_owner`; ``accounts`` default to the ``passwd``
    and ``group`` files beside ``path``): an owner with no passwd entry needs
    ``allow_unknown_owner=True`` and is then warned about (:class:`UnknownOwnerWarning`).
    """
    name = os.fspath(path)
    _require_directory(name)
    policy = _policy(name, accounts, allow_unknown_owner, badname, frozenset([owner]))
    policy.check(owner)
    return _edit(name, lambda f: f.add_range(owner, range, badname=badname), policy,
                 backup=backup, missing_ok=missing_ok, tries=LOCK_TRIES, delay=LOCK_SLEEP)


def remove_subid_range(path: str | os.PathLike[str], owner: str, range: IDRange, *,
                       backup: bool = True) -> SubidFile:
    """Take the IDs of ``range`` from ``owner`` in the file at ``path``."""
    return edit_subid_file(path, lambda f: f.remove_range(owner, range), backup=backup)

