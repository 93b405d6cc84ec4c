"""What every runtime model shares: the result type, notes, and the kernel's check."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeAlias

import attrs

from ..errors import (
    RuntimeConfigError,
    UsernsError,
)
from ..formats.proc import validate_map_write
from ..maps import IDMap, IDMapPair
from ..severity import Severity
from ..subid import SubidFile

__all__ = [
    "AUTO_USERNS_MAX_SIZE",
    "AUTO_USERNS_MIN_SIZE",
    "Note",
    "RuntimeConfigError",
    "RuntimeMaps",
]

SubidSource: TypeAlias = "SubidFile | str | bytes"

#: containers-storage's defaults for ``--userns=auto`` (``AutoUserNsMinSize``/``MaxSize``).
AUTO_USERNS_MIN_SIZE = 1024
AUTO_USERNS_MAX_SIZE = 65536
_UINT32 = 2**32
_INCUS_POSIX = 65536
_GO_INT = re.compile(r"[+-]?[0-9]+\Z")


def _severity(value: Severity | str) -> Severity:
    return Severity.of(value)


@attrs.frozen
class Note:
    """One thing a runtime does with the files that the user should know.

    ``reason`` is a stable code; ``severity`` a :class:`~userns.severity.Severity`
    (given as one or by its name: ``"info"``, ``"warning"``, ``"error"``,
    ``"security"``); ``file`` (``subuid``/``subgid``) and ``lineno`` say where, when known.
    """

    reason: str
    message: str
    severity: Severity = attrs.field(default=Severity.INFO, converter=_severity)
    file: str | None = None
    lineno: int | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"reason": self.reason, "message": self.message, "severity": str(self.severity),
                "file": self.file, "line": self.lineno}


@attrs.frozen
class RuntimeMaps:
    """The uid and gid maps one runtime would build, where they came from, and why not.

    ``uid``/``gid`` are ``None`` when the runtime would build no map (``error`` then says
    why, in the runtime's words, or Docker's remap is off for root). ``uid_lines`` and
    ``gid_lines`` are the subuid/subgid line numbers used, in the order used.
    ``data_root`` is Docker's ``<uid>.<gid>`` directory name; ``uid_argv`` and
    ``gid_argv`` the ``newuidmap``/``newgidmap`` arguments after the PID, for the tools
    that run them.
    """

    runtime: str
    uid: IDMap | None
    gid: IDMap | None
    uid_lines: tuple[int, ...] = ()
    gid_lines: tuple[int, ...] = ()
    notes: tuple[Note, ...] = ()
    error: Note | None = None
    data_root: str | None = None
    uid_argv: tuple[int, ...] | None = None
    gid_argv: tuple[int, ...] | None = None

    @property
    def ok(self) -> bool:
        """True when the runtime would start a container with these maps."""
        return self.error is None and self.uid is not None and self.gid is not None

    @property
    def pair(self) -> IDMapPair | None:
        """Both maps as an :class:`IDMapPair` (``None`` unless :attr:`ok`)."""
        if self.uid is None or self.gid is None or self.error is not None:
            return None
        return IDMapPair(self.uid, self.gid)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: maps as ``[container, host, size]`` triples."""
        return {
            "runtime": self.runtime,
            "ok": self.ok,
            "uid_map": None if self.uid is None else self.uid.to_triples(),
            "gid_map": None if self.gid is None else self.gid.to_triples(),
            "uid_lines": list(self.uid_lines),
            "gid_lines": list(self.gid_lines),
            "data_root": self.data_root,
            "error": None if self.error is None else self.error.to_dict(),
            "notes": [n.to_dict() for n in self.notes],
        }


def _file(source: SubidSource | None) -> SubidFile:
    if source is None:
        return SubidFile.parse("")
    return source if isinstance(source, SubidFile) else SubidFile.parse(source)


def _kernel_map(triples: Sequence[tuple[int, int, int]]) -> IDMap | str:
    """The map the kernel would install from ``triples``, or why it would refuse them."""
    for c, h, n in triples:
        if n < 1 or min(c, h) < 0 or max(c, h) + n > _UINT32 - 1 or max(c, h) >= _UINT32 - 1:
            return f"the kernel refuses the extent '{c} {h} {n}'"
    try:
        return validate_map_write("".join(f"{c} {h} {n}\n" for c, h, n in triples))
    except UsernsError as err:
        return err.message
