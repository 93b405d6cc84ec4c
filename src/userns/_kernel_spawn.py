"""Private machinery of :mod:`userns.kernel`: forking a child into a new user namespace.

The child calls ``unshare(CLONE_NEWUSER)``, tells the parent it is ready, and waits on a
pipe; the parent writes the maps from outside, then says go (or gives up, and the child
exits). Errors the child meets before its real work (unshare, setresuid, chdir, exec) come
back to the parent through a close-on-exec pipe, as :mod:`subprocess` does it.

>>> CLONE_NEWUSER == 0x10000000
True
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import NoReturn

from .errors import (
    ChildFailure,
)

__all__ = ["CLONE_NEWUSER", "ChildFailure", "NamespaceChild", "Report", "unshare_user"]

#: ``<sched.h>``: a new user namespace.
CLONE_NEWUSER = 0x10000000

_libc: ctypes.CDLL | None = None

#: How the child reports a failure before its real work: ``report(stage, error)`` exits.
Report = Callable[[str, OSError], NoReturn]


def _load_libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        # The running process's own symbols include libc's: no library search (which may
        # run ldconfig or gcc) and nothing to load after a fork.
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def unshare_user() -> None:
    """``unshare(CLONE_NEWUSER)`` for the calling process (``os.unshare`` where it exists).

    Raises :class:`OSError` with the kernel's errno on failure.
    """
    native = getattr(os, "unshare", None)
    if native is not None:  # Python >= 3.12
        native(CLONE_NEWUSER)
        return
    if _load_libc().unshare(ctypes.c_int(CLONE_NEWUSER)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWUSER): {os.strerror(err)}")


def _report(fd: int, stage: str, err: OSError) -> NoReturn:
    detail = str(err.filename) if err.filename is not None else ""
    try:
        os.write(fd, f"{stage}\0{err.errno or 0}\0{detail}".encode("utf-8", "surrogateescape"))
    finally:
        os._exit(127)


class NamespaceChild:
    """A forked child in a new user namespace of its own, waiting for :meth:`go`.

    ``then`` runs in the child after :meth:`go`; it must not return (it execs or calls
    ``os._exit``). It receives a report function taking ``(stage, OSError)`` that sends the
    failure to the parent and exits; :meth:`go` raises it as :class:`ChildFailure`. If
    ``then`` raises an :class:`OSError`, it is reported under the stage ``"then"``.
    """

    def __init__(self, then: Callable[[Report], NoReturn]) -> None:
        if getattr(os, "unshare", None) is None:
            _load_libc()  # before the fork, once
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.close(ready_r)
                os.close(go_w)
                os.close(err_r)

                def report(stage: str, err: OSError) -> NoReturn:
                    _report(err_w, stage, err)

                try:
                    unshare_user()
                except OSError as e:
                    report("unshare", e)
                os.write(ready_w, b"r")
                os.close(ready_w)
                if os.read(go_r, 1) != b"g":
                    os._exit(0)  # the parent gave up
                os.close(go_r)
                try:
                    then(report)
                except OSError as e:
                    report("then", e)
            finally:
                os._exit(127)
        os.close(ready_w)
        os.close(go_r)
        os.close(err_w)
        self.pid = pid
        self._go_w: int | None = go_w
        self._err_r = err_r
        self._status: int | None = None
        try:
            ok = os.read(ready_r, 1) == b"r"
        finally:
            os.close(ready_r)
        if not ok:
            failure = self._read_failure()
            self.wait()
            raise failure or ChildFailure("unshare", 0, "the child exited early")

    def _read_failure(self) -> ChildFailure | None:
        chunks = []
        while chunk := os.read(self._err_r, 4096):
            chunks.append(chunk)
        os.close(self._err_r)
        self._err_r = -1
        if not chunks:
            return None
        stage, errno, detail = b"".join(chunks).decode("utf-8", "surrogateescape").split("\0", 2)
        return ChildFailure(stage, int(errno), detail)

    def go(self, *, until_exec: bool = True) -> None:
        """Let the child run ``then``; raise :class:`ChildFailure` if it fails before exec.

        With ``until_exec`` (the default) this returns once the child has exec'ed or
        exited; without, at once (a ``then`` that neither execs nor exits soon talks to
        the parent its own way).
        """
        assert self._go_w is not None
        try:
            os.write(self._go_w, b"g")
        except BrokenPipeError as e:  # the child died while the parent wrote its maps
            self.abort()
            raise ChildFailure("wait", e.errno or 0, "the child exited before it was "
                               f"told to go (wait status {self._status})") from None
        os.close(self._go_w)
        self._go_w = None
        if not until_exec:
            return
        failure = self._read_failure()
        if failure is not None:
            self.wait()
            raise failure

    def abort(self) -> None:
        """Make a child still waiting for :meth:`go` exit, and reap it."""
        if self._go_w is not None:
            os.close(self._go_w)
            self._go_w = None
        if self._err_r >= 0:
            os.close(self._err_r)
            self._err_r = -1
        self.wait()

    def wait(self) -> int:
        """Reap the child; its wait status (``os.waitpid``)."""
        if self._err_r >= 0:
            os.close(self._err_r)
            self._err_r = -1
        if self._status is None:
            try:
                _, self._status = os.waitpid(self.pid, 0)
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the child too: reap it, then give up.
                _, self._status = os.waitpid(self.pid, 0)
                raise
        return self._status
