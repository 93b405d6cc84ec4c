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

import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterator

from ..errors import UsernsError
from ..ranges import IDRange
from .model import SubidFile

__all__ = [
    "LockError",
    "add_subid_range",
    "edit_subid_file",
    "lock_file",
    "remove_subid_range",
    "write_subid_file",
]

#: shadow's lock attempts (``LOCK_TRIES``) and the pause between them (``LOCK_SLEEP``).
LOCK_TRIES = 15
LOCK_SLEEP = 1.0


class LockError(UsernsError, OSError):
    """The file's ``.lock`` is held by a live process (``locked``), or the lock could not
    be made (``lock-failed``: no permission, a lock without a PID, …)."""

    reason = "locked"


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
    both. A missing ``path`` is created ``root:root 0644`` (shadow's default).
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


def edit_subid_file(
    path: str | os.PathLike[str],
    change: Callable[[SubidFile], SubidFile],
    *,
    backup: bool = True,
    missing_ok: bool = False,
    tries: int = LOCK_TRIES,
    delay: float = LOCK_SLEEP,
) -> SubidFile:
    """Lock ``path``, apply ``change`` to its model, write it back if the text changed.

    Returns the file as it now is. ``missing_ok`` treats a missing file as empty (and
    creates it when the change adds lines).
    """
    name = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(directory):
        raise UsernsError(f"cannot write {name}: the directory {directory} does not exist",
                          reason="no-directory")
    with lock_file(name, tries=tries, delay=delay):
        _checkpoint("read")
        old = SubidFile.read(name, missing_ok=missing_ok)
        new = change(old)
        if new.text == old.text:
            return old
        write_subid_file(name, new, backup=backup)
        return SubidFile.parse(new.text, path=name)


def add_subid_range(path: str | os.PathLike[str], owner: str, range: IDRange, *,
                    backup: bool = True, missing_ok: bool = False) -> SubidFile:
    """Give ``owner`` the IDs of ``range`` in the file at ``path`` (``SubidFile.add_range``)."""
    return edit_subid_file(path, lambda f: f.add_range(owner, range), backup=backup,
                           missing_ok=missing_ok)


def remove_subid_range(path: str | os.PathLike[str], owner: str, range: IDRange, *,
                       backup: bool = True) -> SubidFile:
    """Take the IDs of ``range`` from ``owner`` in the file at ``path``."""
    return edit_subid_file(path, lambda f: f.remove_range(owner, range), backup=backup)

