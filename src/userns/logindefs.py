"""``/etc/login.defs``, read exactly as shadow 4.13 reads it (``lib/getdef.c``).

Each line is read with a 1024-byte ``fgets`` (a longer line is read as several),
trailing white space trimmed; a line whose first non-blank character is ``#`` or that
has a single field is skipped; the name is the first field, the value starts after the
following blanks and double quotes and stops at the next double quote. A later line
for the same name wins. A number is read with ``strtoul(value, &end, 0)`` (so ``0x``
hex and leading-zero octal), and a value that is not entirely a number falls back to
the default (shadow prints ``configuration error - cannot parse``); here that is
recorded in :attr:`LoginDefs.problems`.

>>> d = LoginDefs.parse("SUB_UID_MIN   200000\\nSUB_UID_COUNT \\"65536\\"\\nSUB_UID_MAX 1e6\\n")
>>> d.subid_limits("uid")
SubidLimits(min=200000, max=600100000, count=65536)
>>> [p.reason for p in d.problems]
['not-a-number']
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import attrs

from ._foreign import C_SPACE, ULONG_MAX, NumberReading, shadow_strtoul
from .errors import Location, ParseError

__all__ = [
    "DEFAULTS",
    "ULONG_MAX",
    "LoginDefs",
    "NumberReading",
    "SubidLimits",
    "shadow_strtoul",
]

#: shadow's built-in defaults (``find_new_sub_uids.c``, ``useradd.c``) when a name is absent.
DEFAULTS: dict[str, int] = {
    "SUB_UID_MIN": 100000,
    "SUB_UID_MAX": 600100000,
    "SUB_UID_COUNT": 65536,
    "SUB_GID_MIN": 100000,
    "SUB_GID_MAX": 600100000,
    "SUB_GID_COUNT": 65536,
    "UID_MIN": 1000,
    "UID_MAX": 60000,
    "GID_MIN": 1000,
    "GID_MAX": 60000,
    "SYS_UID_MIN": 101,
    "SYS_UID_MAX": 999,
    "SYS_GID_MIN": 101,
    "SYS_GID_MAX": 999,
}

_BUF = 1024  # getdef.c: char buf[1024]; fgets reads at most 1023 bytes at a time


@attrs.frozen
class SubidLimits:
    """Where shadow allocates subordinate IDs: ``min`` … ``max`` (INCLUSIVE), ``count`` each.

    >>> SubidLimits(100000, 600100000, 65536).blocks
    9155
    """

    min: int
    max: int
    count: int

    @property
    def blocks(self) -> int:
        """How many ``count``-sized blocks fit in an empty ``min … max``."""
        return (self.max - self.min + 1) // self.count if self.count else 0

    def problem(self) -> str | None:
        """shadow's ``Invalid configuration`` check, or ``None`` when the limits are usable.

        ``find_new_sub_uids`` refuses ``min > max``, ``count >= max`` and
        ``min + count - 1 > max``.
        """
        if self.min > self.max or self.count >= self.max or self.min + self.count - 1 > self.max:
            return (f"Invalid configuration: MIN ({self.min}), MAX ({self.max}), "
                    f"COUNT ({self.count})")
        return None


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """The pieces ``fgets(buf, 1024, fp)`` returns, each with its 1-based line number."""
    physical_lines = text.split("\n")
    if physical_lines and physical_lines[-1] == "":
        physical_lines.pop()
    for lineno, physical in enumerate(physical_lines, start=1):
        raw = (physical + "\n").encode("utf-8", "surrogateescape")
        for at in range(0, len(raw), _BUF - 1):
            yield lineno, raw[at : at + _BUF - 1].decode("utf-8", "surrogateescape")


@attrs.frozen
class LoginDefs:
    """The name/value pairs of a ``login.defs`` text, as shadow reads them.

    ``values`` maps each name to its last raw value; ``lines`` to the line it came from.
    """

    values: dict[str, str] = attrs.field(factory=dict)
    lines: dict[str, int] = attrs.field(factory=dict, eq=False, repr=False)
    path: str | None = attrs.field(default=None, eq=False)
    texts: dict[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def parse(cls, text: str, *, path: str | None = None) -> LoginDefs:
        """Read a ``login.defs`` text."""
        values: dict[str, str] = {}
        lines: dict[str, int] = {}
        texts: dict[str, str] = {}
        for lineno, chunk in _chunks(text):
            body = chunk.rstrip(C_SPACE)
            name_at = len(body) - len(body.lstrip(" \t"))
            rest = body[name_at:]
            if not rest or rest.startswith("#"):
                continue
            cut = min((i for i in (rest.find(" "), rest.find("\t")) if i >= 0), default=-1)
            if cut < 0:
                continue  # a single field
            name = rest[:cut]
            value = rest[cut + 1 :].lstrip(" \"\t")
            quote = value.find('"')
            if quote >= 0:
                value = value[:quote]
            values[name] = value
            lines[name] = lineno
            texts[name] = chunk.rstrip("\n")
        return cls(values, lines, path, texts)

    @classmethod
    def read(cls, path: str | os.PathLike[str] = "/etc/login.defs", *,
             root: str | os.PathLike[str] | None = None) -> LoginDefs:
        """Read ``path``, or ``<root>/etc/login.defs``; a missing file gives all defaults."""
        name = (os.path.join(os.fspath(root), "etc", "login.defs") if root is not None
                else os.fspath(path))
        try:
            with open(name, encoding="utf-8", errors="surrogateescape") as fh:
                text = fh.read()
        except FileNotFoundError:
            text = ""
        return cls.parse(text, path=name)

    def get(self, name: str) -> str | None:
        """The raw value of ``name``, or ``None`` when absent."""
        return self.values.get(name)

    def ulong(self, name: str, default: int | None = None) -> int:
        """``getdef_ulong(name, default)``: the number, or the default if absent or unreadable."""
        fallback = DEFAULTS[name] if default is None else default
        raw = self.values.get(name)
        if raw is None:
            return fallback
        reading = shadow_strtoul(raw)
        return reading.value if reading.ok else fallback

    @property
    def problems(self) -> tuple[ParseError, ...]:
        """Values shadow cannot read as numbers (it then uses the default)."""
        out = []
        for name in DEFAULTS:
            raw = self.values.get(name)
            if raw is None or shadow_strtoul(raw).ok:
                continue
            text = self.texts.get(name, raw)
            col = text.find(raw) if raw else len(text)
            loc = Location(line=self.lines.get(name), column=col + 1,
                           end_column=col + 1 + max(len(raw), 1), text=text, path=self.path)
            out.append(ParseError(
                f"configuration error - cannot parse {name} value: {raw!r}; shadow uses "
                f"the default {DEFAULTS[name]}", reason="not-a-number", location=loc))
        return tuple(out)

    def subid_limits(self, kind: str = "uid") -> SubidLimits:
        """``SUB_UID_MIN``/``MAX``/``COUNT`` (``kind="uid"``) or the ``SUB_GID_`` ones."""
        if kind not in ("uid", "gid"):
            raise ValueError(f"kind must be 'uid' or 'gid': {kind!r}")
        p = f"SUB_{kind.upper()}_"
        return SubidLimits(self.ulong(p + "MIN"), self.ulong(p + "MAX"), self.ulong(p + "COUNT"))
