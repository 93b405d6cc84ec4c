"""The write-ahead journal that makes an interrupted shift resume exactly.

Before the shifter changes an inode it appends a record of the inode's whole final
state (owner, mode to restore, extended attributes to write) to the journal and makes it
durable; a resumed run sets every journalled inode to its recorded state and translates
only the inodes without a record, so no inode is ever translated twice whatever the maps.
Records are written in CRC-checked frames; a frame torn by a crash is ignored, and none of
its changes had been made, since changes follow the frame's ``fsync``.

The journal is a directory: ``header.json`` (what shift it belongs to), ``lock`` (held
with ``flock`` for the run) and one ``*.log`` segment per writer. It is removed when the
shift completes, the header first: a journal directory without ``header.json`` is the
remains of a finished shift, never resumed (see :meth:`Journal.remove`).

>>> rec = Record(0, 0, 100000, 100000, 0o104755, ((CAPABILITY_CODE, b"\\x01"),))
>>> decode_records(encode_records([(1, 2, rec)])) == {(1, 2): rec}
True
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import struct
import zlib
from collections.abc import Iterable
from typing import Any, NamedTuple

from ..errors import (
    JournalError,
)
from .xattrs import ACL_ACCESS, ACL_DEFAULT, CAPABILITY

__all__ = [
    "ACL_ACCESS_CODE",
    "ACL_DEFAULT_CODE",
    "CAPABILITY_CODE",
    "NO_MODE",
    "XATTR_NAMES",
    "Journal",
    "JournalError",
    "JournalWriter",
    "Record",
    "decode_records",
    "encode_records",
    "same_shift",
]

CAPABILITY_CODE = 0
ACL_ACCESS_CODE = 1
ACL_DEFAULT_CODE = 2
#: Attribute names by their code in a record.
XATTR_NAMES = (CAPABILITY, ACL_ACCESS, ACL_DEFAULT)
#: ``Record.mode`` when no mode needs restoring.
NO_MODE = 0xFFFFFFFF

_VERSION = 2  # 2: records carry the attribute values before the change (for a rollback)
_REC = struct.Struct("<QQIIIIIHH")
_XATTR = struct.Struct("<BI")
_FRAME = struct.Struct("<II")
_ABSENT = 0xFFFFFFFF
_HEADER = "header.json"


class Record(NamedTuple):
    """The final state of one inode: owner before and after, the mode to restore
    (:data:`NO_MODE` for none; it is the mode before the change too) and ``(code,
    value)`` attributes to write (value ``None`` to remove); ``before`` holds the values
    those attributes had, so that a rollback can put them back."""

    old_uid: int
    old_gid: int
    new_uid: int
    new_gid: int
    mode: int
    xattrs: tuple[tuple[int, bytes | None], ...]
    before: tuple[tuple[int, bytes | None], ...] = ()

    def inverse(self) -> Record:
        """The record that undoes this one: the old owner, the attributes as they were.

        >>> r = Record(5, 5, 1005, 1005, NO_MODE, ((1, b"new"),), ((1, b"old"),)).inverse()
        >>> r.new_uid, r.xattrs, r.before
        (5, ((1, b'old'),), ((1, b'new'),))
        """
        return Record(self.new_uid, self.new_gid, self.old_uid, self.old_gid, self.mode,
                      self.before, self.xattrs)


def encode_records(items: Iterable[tuple[int, int, Record]]) -> bytes:
    """One CRC-checked frame holding ``(st_dev, st_ino, record)`` items."""
    parts: list[bytes] = []
    for dev, ino, rec in items:
        parts.append(_REC.pack(dev, ino, rec.old_uid, rec.old_gid, rec.new_uid,
                               rec.new_gid, rec.mode, len(rec.xattrs), len(rec.before)))
        for code, value in (*rec.xattrs, *rec.before):
            parts.append(_XATTR.pack(code, _ABSENT if value is None else len(value)))
            if value is not None:
                parts.append(value)
    payload = b"".join(parts)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes) -> dict[tuple[int, int], Record]:
    """Every record of the complete frames in ``data`` (a torn last frame is ignored)."""
    out: dict[tuple[int, int], Record] = {}
    pos = 0
    while pos + _FRAME.size <= len(data):
        size, crc = _FRAME.unpack_from(data, pos)
        payload = data[pos + _FRAME.size: pos + _FRAME.size + size]
        if len(payload) != size or zlib.crc32(payload) != crc:
            break
        pos += _FRAME.size + size
        off = 0
        while off < size:
            dev, ino, ou, og, nu, ng, mode, n, nb = _REC.unpack_from(payload, off)
            off += _REC.size
            xattrs: list[tuple[int, bytes | None]] = []
            for _ in range(n + nb):
                code, length = _XATTR.unpack_from(payload, off)
                off += _XATTR.size
                if length == _ABSENT:
                    xattrs.append((code, None))
                else:
                    xattrs.append((code, payload[off:off + length]))
                    off += length
            out[dev, ino] = Record(ou, og, nu, ng, mode, tuple(xattrs[:n]), tuple(xattrs[n:]))
    return out


def _read_segments(path: str) -> dict[tuple[int, int], Record]:
    out: dict[tuple[int, int], Record] = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".log"):
            with open(os.path.join(path, name), "rb") as f:
                out.update(decode_records(f.read()))
    return out


def same_shift(found: dict[str, Any], header: dict[str, Any], adopt: tuple[str, ...] = ()
               ) -> bool:
    """True when a journal's header ``found`` is that of the shift ``header`` (the keys in
    ``adopt`` may differ).

    >>> same_shift({"uid": [[0, 1, 2]], "verify": True}, {"uid": ((0, 1, 2),), "verify": False},
    ...            ("verify",))
    True
    """
    plain = json.loads(json.dumps(header))
    return {k: v for k, v in found.items() if k not in adopt} == {
        k: v for k, v in plain.items() if k not in adopt}


_SEGMENT = re.compile(r"[A-Za-z0-9]+-[0-9]+-[0-9]+\.log\Z")


def _journal_name(name: str) -> bool:
    """Whether ``name`` is one a journal directory holds: its lock, header (or the header's
    temporary file) and ``TAG-PID-N.log`` segments."""
    return name in ("lock", _HEADER, _HEADER + ".tmp") or bool(_SEGMENT.match(name))


def _foreign(path: str) -> list[str]:
    """The entries of the directory ``path`` that no journal makes (sorted)."""
    return sorted(n for n in os.listdir(path) if not _journal_name(n))


def _check_existing(path: str) -> None:
    """Refuse an existing journal path that is not a journal directory: userns never
    deletes what it did not make."""
    if not os.path.isdir(path) or os.path.islink(path):
        raise JournalError(f"the journal path {path} exists and is not a directory: give a "
                           "new path (a directory userns creates and removes)",
                           reason="not-a-journal")
    foreign = _foreign(path)
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise JournalError(f"the journal path {path} is a directory that holds files no "
                           f"journal makes ({shown}): userns would not touch it; give a new "
                           "path (a directory userns creates and removes)",
                           reason="not-a-journal")


def _clear(path: str) -> None:
    """Unlink the segments (and a torn header's temporary file) of a journal directory,
    keeping the lock and the header (whose removal is the step that finishes a shift).
    Only names a journal makes are removed: anything else stays."""
    for name in os.listdir(path):
        if name not in ("lock", _HEADER) and _journal_name(name):
            os.unlink(os.path.join(path, name))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JournalWriter:
    """Appends frames to one segment; :meth:`flush` makes the pending records durable."""

    def __init__(self, path: str, *, durable: bool) -> None:
        self.path = path
        self.durable = durable
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.pending: list[tuple[int, int, Record]] = []
        if durable:  # the new segment's name must survive a power loss with its frames
            _fsync_dir(os.path.dirname(path))

    def add(self, dev: int, ino: int, rec: Record) -> None:
        """Queue a record; it is written by the next :meth:`flush`."""
        self.pending.append((dev, ino, rec))

    def flush(self) -> None:
        """Write the queued records as one frame and (if durable) ``fdatasync`` it."""
        if not self.pending:
            return
        data = encode_records(self.pending)
        self.pending = []
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        if self.durable:
            os.fdatasync(self.fd)

    def close(self) -> None:
        """Close the segment (queued records are dropped: flush first); again: nothing."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class Journal:
    """The journal directory of one shift, locked for the life of this object.

    :meth:`open` creates it or, when a journal of the same shift is there, takes it over
    for a resume (:attr:`resumed` is then true and :meth:`records` has its records).
    """

    def __init__(self, path: str, lock_fd: int, resumed: bool, durable: bool,
                 header: dict[str, Any] | None = None) -> None:
        self.path = path
        self.lock_fd = lock_fd
        self.resumed = resumed
        self.durable = durable
        #: The header in force: the one found when resuming (see ``adopt``), else the new one.
        self.header: dict[str, Any] = header or {}
        self._segments = 0

    @classmethod
    def open(cls, path: str, header: dict[str, Any], *, durable: bool = True,
             adopt: tuple[str, ...] = ()) -> Journal:
        """Create or resume the journal at ``path`` for the shift described by ``header``.

        A journal whose header differs only in the keys ``adopt`` names is the same shift:
        it is resumed with its own values (read them in :attr:`header`).
        """
        try:
            try:
                os.mkdir(path, 0o700)
                created = True
            except FileExistsError:
                created = False
                _check_existing(path)
            if created and durable:
                _fsync_dir(os.path.dirname(os.path.abspath(path)))
            lock_fd = os.open(os.path.join(path, "lock"),
                              os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except JournalError:
            raise  # not-a-journal: said precisely above
        except OSError as exc:
            raise JournalError(f"cannot create the journal {path}: {exc.strerror}; give a "
                               "writable place (--journal DIR, journal=...)",
                               reason="journal-unwritable") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(lock_fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise JournalError(f"another shift is running with the journal {path}",
                                   reason="busy") from None
            raise
        header = {"version": _VERSION, **header}
        hpath = os.path.join(path, _HEADER)
        try:
            with open(hpath, encoding="utf-8") as f:
                found = json.load(f)
        except FileNotFoundError:
            found = None
        except (OSError, ValueError) as exc:
            os.close(lock_fd)
            raise JournalError(f"cannot read {hpath}: {exc}", reason="bad-journal") from None
        if found is None:
            # No header: a new journal, or the remains of a finished one whose removal
            # was cut short. Its segments belong to no shift: clear them first.
            try:
                _clear(path)
            except OSError as exc:
                os.close(lock_fd)
                raise JournalError(f"cannot clear the remains of a finished journal in {path}: "
                                   f"{exc.strerror}; remove the directory",
                                   reason="journal-unwritable") from exc
            tmp = hpath + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(header, f, sort_keys=True)
                f.flush()
                if durable:
                    os.fsync(f.fileno())
            os.replace(tmp, hpath)
            if durable:
                _fsync_dir(path)
            return cls(path, lock_fd, False, durable, header)
        if not same_shift(found, header, adopt):
            os.close(lock_fd)
            raise JournalError(
                f"the journal {path} belongs to a different shift (other maps, policy or "
                "tree); finish that shift first or remove the journal",
                reason="journal-mismatch")
        return cls(path, lock_fd, True, durable, found)

    def records(self) -> dict[tuple[int, int], Record]:
        """Every record of every segment."""
        return _read_segments(self.path)

    @staticmethod
    def peek(path: str, header: dict[str, Any], *, adopt: tuple[str, ...] = ()
             ) -> dict[tuple[int, int], Record] | None:
        """The records of an interrupted shift described by ``header`` at ``path``, read
        without taking the journal (for a dry run), or ``None`` when there is none."""
        found = Journal.read_header(path)
        if found is None or not same_shift(found, {"version": _VERSION, **header}, adopt):
            return None
        return _read_segments(path)

    @staticmethod
    def read_header(path: str) -> dict[str, Any] | None:
        """The header of the journal at ``path`` (an interrupted shift), or ``None`` when
        there is no journal or it is finished (no header) or unreadable."""
        try:
            with open(os.path.join(path, _HEADER), encoding="utf-8") as f:
                found = json.load(f)
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def writer(self, tag: str) -> JournalWriter:
        """A new segment for one writer (a worker process or the coordinator)."""
        self._segments += 1
        name = f"{tag}-{os.getpid()}-{self._segments}.log"
        return JournalWriter(os.path.join(self.path, name), durable=self.durable)

    def remove(self) -> None:
        """Delete the journal (the shift is complete) and release the lock.

        The header goes first, in one ``unlink`` made durable before anything else: a
        journal without its header is a finished one (:meth:`open` and :meth:`peek` take
        it so), so a kill between the later steps cannot leave a journal that resumes
        with some of its records gone.
        """
        hpath = os.path.join(self.path, _HEADER)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(hpath)
        if self.durable:
            _fsync_dir(self.path)
        _clear(self.path)
        os.unlink(os.path.join(self.path, "lock"))
        os.rmdir(self.path)
        if self.durable:
            _fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self.close()

    def close(self) -> None:
        """Release the lock, keeping the journal for a later resume."""
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1
