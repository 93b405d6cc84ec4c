"""The lossless model of one ``/etc/subuid`` or ``/etc/subgid`` file.

A file is a list of :class:`SubidLine`: every physical line is kept with its exact text
and terminator, so ``SubidFile.parse(text).text == text`` for any input, and an edit
writes back the same bytes except the lines it changed. Each line is read three ways:

- **strictly** (:attr:`SubidLine.problems`): ``owner:start:count``, both numbers plain
  base-10, ``0 <= start``, ``1 <= count``, the range inside ``0 … 4294967294``; blank
  lines and ``#`` comments are allowed; anything else is a problem with a ``reason`` code,
  a column and a caret;
- **as shadow reads it** (:attr:`SubidLine.shadow`, ``lib/subordinateio.c``
  ``subordinate_parse`` in shadow 4.13): split at the first two colons (a fourth field
  is silently dropped), numbers through ``strtoul(..., 0)`` (so ``0x186a0`` is hex,
  ``0100000`` is OCTAL 32768, `` 5`` and ``-1`` are accepted), lines of 1024 bytes or
  more skipped, NIS ``+``/``-`` lines skipped, and a ``#`` comment that has two colons
  and numbers IS an entry (shadow knows no comments);
- **as Docker reads it** (:attr:`SubidLine.docker`, ``moby/sys/user`` ``ParseSubIDFilter``):
  the line trimmed of white space, split at every colon, numbers through Go's
  ``strconv.ParseInt(s, 10, 64)`` with the error IGNORED, so an unreadable number is 0.

:attr:`SubidFile.entries` are the valid entries in file order: in lenient mode (the
default) every line shadow reads whose range is a valid :class:`~userns.IDRange`; in
strict mode the parse raises :class:`SubidParseError` listing every problem instead.

>>> f = SubidFile.parse("# hosts\\nalice:100000:65536\\nbob:165536:65536\\n")
>>> [(e.owner, e.start, e.count, e.lineno) for e in f.entries]
[('alice', 100000, 65536, 2), ('bob', 165536, 65536, 3)]
>>> f.ranges_for("bob", 1001)
[IDRange(165536, 65536)]
>>> f.text == "# hosts\\nalice:100000:65536\\nbob:165536:65536\\n"
True
"""

from __future__ import annotations

import contextlib
import enum
import gc
import operator
import os
import re
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .._foreign import C_SPACE, NumberReading, go_parse_int, go_trim_space, shadow_strtoul
from ..errors import (
    Location,
    ParseError,
    SubidParseError,
)
from ..ids import ID_MAX
from ..ranges import IDRange
from .owners import check_owner

if TYPE_CHECKING:  # annotations only: reading a file needs no account data
    from .accounts import Accounts

__all__ = [
    "CanonicalColumns",
    "LineKind",
    "NumberReading",
    "RawRange",
    "SubidEntry",
    "SubidFile",
    "SubidLine",
    "SubidParseError",
    "docker_parse_int",
    "shadow_strtoul",
]

#: shadow's ``subordinate_parse`` refuses lines of this many bytes or more.
SHADOW_LINE_MAX = 1024
#: owner:start:count with no white space at the ends, no sign, no leading zero, not a
#: comment or NIS line: read the same by the strict syntax, shadow and Docker.
_CANONICAL = re.compile(
    r"([^:\s#+\-\x00][^:\x00]*(?<!\s))"  # owner: its last character is no white space
    r":(0|[1-9][0-9]{0,9}):([1-9][0-9]{0,9})\Z"  # start, count
)
#: up to 256 canonical lines, each with its newline (an owner holds no newline);
#: :func:`_run_end` finds a whole run with it.
_CANONICAL_RUN = re.compile(
    # The owner as in _CANONICAL, at most 233 characters so that the line is shorter
    # than _CANONICAL_LEN (233 + 2 colons + 2 x 10 digits = 255) without measuring it; a
    # longer owner's line is read alone. The look-behind, rather than a last character
    # class after the middle run, spares a backtrack on every line (3x faster).
    r"(?:[^:\s#+\-\x00][^:\x00\n]{0,232}(?<!\s)"
    r":(?:0|[1-9][0-9]{0,9}):[1-9][0-9]{0,9}\n){0,256}"
)
_entry_of = operator.attrgetter("entry")


def _run_end(text: str, pos: int = 0) -> int:
    """Where the run of canonical lines that starts at ``pos`` ends (``pos``: none).

    A bounded repeat, matched again until it matches nothing: an unbounded one makes the
    regex engine keep a mark for every line it has repeated over, a stack that grows
    with the run (30 MB of fresh memory for 100k lines, half the time of the match).
    Every line is matched whole (no line can end a match early), so the end is the
    unbounded repeat's.

    >>> _run_end("a:1:2\\nb:3:4\\n# c\\n"), _run_end("# c\\na:1:2\\n")
    (12, 0)
    """
    match = _CANONICAL_RUN.match
    while True:
        m = match(text, pos)  # {0,n}: always a match, maybe an empty one
        end = pos if m is None else m.end()
        if end == pos:
            return pos
        pos = end


class LineKind(enum.Enum):
    """What a line is, read strictly."""

    ENTRY = "entry"  #: a valid ``owner:start:count`` line
    BLANK = "blank"  #: empty, or white space only
    COMMENT = "comment"  #: first non-blank character is ``#``
    NIS = "nis"  #: starts with ``+`` or ``-`` (a NIS compat line; shadow skips it)
    INVALID = "invalid"  #: anything else


@attrs.frozen
class RawRange:
    """An entry as a tool really reads it, before any validation: owner, start, count.

    ``start`` and ``count`` are what the tool's number parser produced (shadow: an
    ``unsigned long`` that may exceed 32 bits; Docker: an ``int64`` that may be 0 or
    negative); ``lineno`` is 1-based.

    >>> RawRange("alice", 100000, 65536, 2).last
    165535
    """

    owner: str
    start: int
    count: int
    lineno: int

    @property
    def last(self) -> int:
        """``start + count - 1`` as plain integers (shadow wraps it modulo 2**64)."""
        return self.start + self.count - 1


@attrs.frozen(order=False)
class SubidEntry:
    """One valid entry: ``owner`` owns the host IDs of ``range``; ``lineno`` is 1-based.

    ``line`` is the line's exact text (without its newline).

    >>> e = SubidEntry("alice", IDRange(100000, 65536), 2)
    >>> e.start, e.count, e.stop, str(e)
    (100000, 65536, 165536, 'alice:100000:65536')
    """

    owner: str
    range: IDRange
    lineno: int
    line: str | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def start(self) -> int:
        """The first subordinate ID."""
        return self.range.start

    @property
    def count(self) -> int:
        """How many IDs the entry hands out."""
        return self.range.size

    @property
    def stop(self) -> int:
        """One past the last ID."""
        return self.range.stop

    @property
    def last(self) -> int:
        """The last ID (inclusive)."""
        return self.range.last

    def __str__(self) -> str:
        return f"{self.owner}:{self.start}:{self.count}"

    def matches(self, name: str | None, uid: int | None) -> bool:
        """True when the owner is ``name`` or the decimal ``uid`` (exact text, no zeros)."""
        return (name is not None and self.owner == name) or (
            uid is not None and self.owner == str(uid)
        )


# -- Docker's number reader (the C and Go rules are in userns._foreign) ----------------


def docker_parse_int(text: str) -> int:
    """Read ``text`` as moby's ``parseParts`` does: ``strconv.ParseInt(s, 10, 64)``, error ignored.

    Go scans the digits left to right: a non-digit is a syntax error (the value is
    then 0), unless the digits before it already overflowed 64 bits, which is a range
    error whose value is the int64 limit of that sign (checked against the real Go
    parser in the tests).

    >>> docker_parse_int("100000"), docker_parse_int("0x186a0"), docker_parse_int(" 5")
    (100000, 0, 0)
    >>> docker_parse_int("0100000"), docker_parse_int("+7"), docker_parse_int("-7")
    (100000, 7, -7)
    >>> docker_parse_int("99999999999999999999junk")
    9223372036854775807
    """
    return go_parse_int(text, 64)[0]


# -- one line -------------------------------------------------------------------------


def _shadow_reads(text: str, lineno: int) -> RawRange | None:
    """What ``subordinate_parse`` makes of a line (``None``: shadow skips it)."""
    if text[:1] in ("+", "-"):
        return None  # commonio: NIS lines are kept but never parsed
    if "\x00" in text:
        return None  # fgets/strrchr on a NUL byte: shadow's reading is not a line at all
    if len(text.encode("utf-8", "surrogateescape")) >= SHADOW_LINE_MAX:
        return None
    parts = text.split(":", 3)
    if len(parts) < 3 or not parts[0] or not parts[1] or not parts[2]:
        return None
    start = shadow_strtoul(parts[1])
    count = shadow_strtoul(parts[2])
    if not (start.ok and count.ok):
        return None
    return RawRange(parts[0], start.value, count.value, lineno)


def _docker_reads(text: str, lineno: int) -> RawRange | None:
    """What moby's ``ParseSubIDFilter`` makes of a line (``None``: it skips it)."""
    body = go_trim_space(text)
    if not body:
        return None
    parts = body.split(":")
    name = parts[0]
    start = docker_parse_int(parts[1]) if len(parts) > 1 else 0
    count = docker_parse_int(parts[2]) if len(parts) > 2 else 0
    return RawRange(name, start, count, lineno)


def _problem(
    reason: str, message: str, lineno: int, text: str, start: int, end: int, path: str | None
) -> ParseError:
    loc = Location(line=lineno, column=start + 1, end_column=end + 1, text=text, path=path)
    return ParseError(message, reason=reason, location=loc)


def _strict_number(
    field: str, name: str, offset: int, lineno: int, text: str, path: str | None
) -> tuple[int | None, list[ParseError]]:
    end = offset + len(field)
    if field == "":
        return None, [_problem("empty-field", f"the {name} is empty", lineno, text,
                               offset, offset, path)]
    if field != field.strip(C_SPACE + "\x85\xa0"):
        return None, [_problem("whitespace", f"white space around the {name} {field!r}: "
                               "shadow skips a trailing space, Docker reads a leading one as 0",
                               lineno, text, offset, end, path)]
    if all("0" <= c <= "9" for c in field):
        if len(field) > 1 and field[0] == "0":
            octal = shadow_strtoul(field)
            shown = f"octal {octal.value}" if octal.ok else "nothing (not valid octal)"
            return None, [_problem(
                "leading-zero",
                f"the {name} {field} has a leading zero: shadow reads it as {shown}, "
                f"Docker as decimal {int(field)}",
                lineno, text, offset, end, path,
            )]
        value = int(field)
        limit = ID_MAX if name == "start" else ID_MAX + 1  # a count may cover 0…ID_MAX
        if value > limit:
            return None, [_problem("id-too-large", f"the {name} {value} is past {limit}",
                                   lineno, text, offset, end, path)]
        return value, []
    reading = shadow_strtoul(field)
    if reading.ok and reading.base == 16:
        return None, [_problem(
            "hex-number",
            f"the {name} {field} is hexadecimal: shadow reads {reading.value}, "
            "Docker reads 0",
            lineno, text, offset, end, path,
        )]
    if field[0] in "+-":
        return None, [_problem("signed-number", f"the {name} {field} has a sign",
                               lineno, text, offset, end, path)]
    return None, [_problem("not-a-number", f"the {name} {field!r} is not a base-10 number",
                           lineno, text, offset, end, path)]


def _strict(text: str, lineno: int, path: str | None) -> tuple[  # noqa: C901 (one rule per branch, in shadow's order)
    LineKind, tuple[str, int, int] | None, list[ParseError]
]:
    """Classify a line and list what the strict syntax has against it."""
    stripped = text.strip(C_SPACE)
    if "\x00" in text:
        col = text.index("\x00")
        return LineKind.INVALID, None, [_problem("nul-byte", "a NUL byte in the line",
                                                  lineno, text, col, col + 1, path)]
    if not stripped:
        return LineKind.BLANK, None, []
    if text.endswith("\r"):
        return LineKind.INVALID, None, [_problem(
            "carriage-return", "the line ends in a carriage return (CRLF file): shadow "
            "skips the line, Docker reads it", lineno, text, len(text) - 1, len(text), path)]
    if stripped.startswith("#"):
        if _shadow_reads(text, lineno) is not None:
            return LineKind.COMMENT, None, [_problem(
                "comment-read-as-entry",
                "this comment has the shape owner:start:count, and shadow (which knows no "
                "comments) reads it as an entry that reserves the range",
                lineno, text, 0, len(text), path)]
        return LineKind.COMMENT, None, []
    if text[0] in "+-":
        return LineKind.NIS, None, [_problem(
            "nis-line", "a NIS +/- line: shadow skips it and walks the entries after it "
            "unsorted (useradd then hands out overlapping or repeated ranges); Docker reads "
            "it as an entry",
            lineno, text, 0, 1, path)]
    if len(text.encode("utf-8", "surrogateescape")) >= SHADOW_LINE_MAX:
        return LineKind.INVALID, None, [_problem(
            "line-too-long", f"the line is {SHADOW_LINE_MAX} bytes or longer: shadow skips it",
            lineno, text, SHADOW_LINE_MAX, len(text), path)]
    parts = text.split(":")
    if len(parts) != 3:
        if len(parts) < 3:
            return LineKind.INVALID, None, [_problem(
                "field-count", f"expected owner:start:count, found {len(parts)} field"
                f"{'s' if len(parts) != 1 else ''}", lineno, text, len(text), len(text), path)]
        extra = len(parts[0]) + len(parts[1]) + len(parts[2]) + 2
        return LineKind.INVALID, None, [_problem(
            "field-count", f"expected owner:start:count, found {len(parts)} fields "
            "(shadow silently drops the extra ones, Docker too)", lineno, text, extra,
            len(text), path)]
    owner, start_text, count_text = parts
    problems: list[ParseError] = []
    if not owner:
        problems.append(_problem("empty-owner", "the owner is empty", lineno, text, 0, 0, path))
    elif owner != owner.strip(C_SPACE + "\x85\xa0"):
        problems.append(_problem("owner-whitespace", f"white space around the owner {owner!r}",
                                 lineno, text, 0, len(owner), path))
    start_at = len(owner) + 1
    count_at = start_at + len(start_text) + 1
    start, p1 = _strict_number(start_text, "start", start_at, lineno, text, path)
    count, p2 = _strict_number(count_text, "count", count_at, lineno, text, path)
    problems += p1 + p2
    if start is not None and count is not None:
        if count == 0:
            problems.append(_problem("zero-count", "the count must be at least 1", lineno,
                                     text, count_at, len(text), path))
        elif start + count - 1 > ID_MAX:
            problems.append(_problem(
                "range-past-max",
                f"the range {start}+{count} ends at {start + count - 1}, past the largest "
                f"ID {ID_MAX}", lineno, text, start_at, len(text), path))
    if problems:
        return LineKind.INVALID, None, problems
    assert start is not None and count is not None
    return LineKind.ENTRY, (owner, start, count), []


@attrs.frozen
class SubidLine:
    """One physical line: its exact ``text`` (no terminator), ``newline`` and readings.

    ``kind`` and ``problems`` come from the strict syntax; ``shadow`` and ``docker`` are
    what those tools read (``None`` when they skip the line); ``entry`` is the valid
    entry the line contributes to :attr:`SubidFile.entries` (``None`` if none).

    >>> line = SubidFile.parse("alice:0x186a0:65536\\n").lines[0]
    >>> line.kind, [p.reason for p in line.problems]
    (<LineKind.INVALID: 'invalid'>, ['hex-number'])
    >>> line.shadow.start, line.docker.start
    (100000, 0)
    """

    text: str
    newline: str
    lineno: int
    kind: LineKind
    problems: tuple[ParseError, ...] = attrs.field(eq=False, repr=False)
    shadow: RawRange | None
    docker: RawRange | None
    entry: SubidEntry | None

    @classmethod
    def parse(cls, text: str, lineno: int, newline: str = "\n", *,
              path: str | None = None) -> SubidLine:
        """Read one line (``text`` without its terminator) the three ways."""
        m = _CANONICAL.match(text)
        if m is not None and len(text) < _CANONICAL_LEN:
            # The common case, read once: all three readers agree on a canonical line.
            owner, start_text, count_text = m.groups()
            start, count = int(start_text), int(count_text)
            if start + count - 1 <= ID_MAX:
                return _canonical_line(text, newline, lineno, owner, start, count)
        return cls._parse_slow(text, lineno, newline, path=path)

    @classmethod
    def _parse_slow(cls, text: str, lineno: int, newline: str = "\n", *,
                    path: str | None = None) -> SubidLine:
        """The three readers, each on its own (what the fast path must agree with)."""
        kind, fields, problems = _strict(text, lineno, path)
        shadow = _shadow_reads(text, lineno)
        docker = _docker_reads(text, lineno)
        entry: SubidEntry | None = None
        if fields is not None:
            entry = SubidEntry(fields[0], IDRange(fields[1], fields[2]), lineno, text)
        elif shadow is not None and shadow.count >= 1 and shadow.start + shadow.count - 1 <= ID_MAX:
            # Lenient: what shadow reads, when it is a valid range.
            entry = SubidEntry(shadow.owner, IDRange(shadow.start, shadow.count), lineno, text)
        return cls(text, newline, lineno, kind, tuple(problems), shadow, docker, entry)

    @property
    def raw(self) -> str:
        """The line exactly as in the file, terminator included."""
        return self.text + self.newline

    def _renumbered(self, lineno: int, newline: str, path: str | None) -> SubidLine:
        """``SubidLine.parse(self.text, lineno, newline, path=path)``, reusing the readings.

        Only ``lineno`` (and the problems' locations) depend on the position, so a line
        without problems is copied with the new number; one with problems is re-read.
        """
        if self.problems:
            return SubidLine.parse(self.text, lineno, newline, path=path)
        if self.lineno == lineno and self.newline == newline:
            return self
        shadow = self.shadow
        docker = self.docker
        new_shadow = None if shadow is None else _raw_range(
            shadow.owner, shadow.start, shadow.count, lineno)
        if docker is shadow:
            new_docker = new_shadow
        else:
            new_docker = None if docker is None else _raw_range(
                docker.owner, docker.start, docker.count, lineno)
        entry = self.entry
        new_entry = None if entry is None else _subid_entry(
            entry.owner, entry.range, lineno, entry.line)
        return _subid_line(self.text, newline, lineno, self.kind, self.problems,
                           new_shadow, new_docker, new_entry)


# -- the file -------------------------------------------------------------------------


# -- building the objects of a canonical line without re-running the validators ----------
#
# A canonical line (``_CANONICAL``, numbers checked to end by ID_MAX) already satisfies
# every validator of IDRange, and RawRange, SubidEntry and SubidLine have none, so the
# objects are filled in slot by slot: the same objects, equal to those ``__init__``
# builds (the tests check it on random lines), at a fraction of the cost.

#: canonical lines shorter than this are surely under shadow's 1024-byte limit
_CANONICAL_LEN = SHADOW_LINE_MAX // 4

_Setter = Callable[[object, object], None]


def _setter(cls: type, name: str) -> _Setter:
    slot = cls.__dict__.get(name)
    if isinstance(slot, types.MemberDescriptorType):
        return slot.__set__  # a slotted class: write the slot directly

    def set_attribute(obj: object, value: object) -> None:
        object.__setattr__(obj, name, value)

    return set_attribute


def _setters(cls: type) -> tuple[_Setter, ...]:
    return tuple(_setter(cls, a.name) for a in attrs.fields(cls))


_new = object.__new__
_T = TypeVar("_T")
_setters_of: dict[type, tuple[_Setter, ...]] = {
    cls: _setters(cls) for cls in (RawRange, IDRange, SubidEntry, SubidLine)}
_RAW_SET = _setters_of[RawRange]
_RANGE_SET = _setters_of[IDRange]
_ENTRY_SET = _setters_of[SubidEntry]
_LINE_SET = _setters_of[SubidLine]


def _raw_range(owner: str, start: int, count: int, lineno: int) -> RawRange:
    r: RawRange = _new(RawRange)
    s_owner, s_start, s_count, s_lineno = _RAW_SET
    s_owner(r, owner)
    s_start(r, start)
    s_count(r, count)
    s_lineno(r, lineno)
    return r


def _id_range(start: int, size: int) -> IDRange:
    """An IDRange the caller has checked: ``0 <= start``, ``1 <= size``, fits ID_MAX."""
    r: IDRange = _new(IDRange)
    s_start, s_size = _RANGE_SET
    s_start(r, start)
    s_size(r, size)
    return r


def _subid_entry(owner: str, range: IDRange, lineno: int, line: str | None) -> SubidEntry:
    e: SubidEntry = _new(SubidEntry)
    s_owner, s_range, s_lineno, s_line = _ENTRY_SET
    s_owner(e, owner)
    s_range(e, range)
    s_lineno(e, lineno)
    s_line(e, line)
    return e


def _subid_line(text: str, newline: str, lineno: int, kind: LineKind,
                problems: tuple[ParseError, ...], shadow: RawRange | None,
                docker: RawRange | None, entry: SubidEntry | None) -> SubidLine:
    line: SubidLine = _new(SubidLine)
    s_text, s_newline, s_lineno, s_kind, s_problems, s_shadow, s_docker, s_entry = _LINE_SET
    s_text(line, text)
    s_newline(line, newline)
    s_lineno(line, lineno)
    s_kind(line, kind)
    s_problems(line, problems)
    s_shadow(line, shadow)
    s_docker(line, docker)
    s_entry(line, entry)
    return line


def _canonical_line(text: str, newline: str, lineno: int, owner: str, start: int,
                    count: int) -> SubidLine:
    """The line ``SubidLine._parse_slow`` reads from a canonical ``text`` (checked)."""
    raw = _raw_range(owner, start, count, lineno)
    entry = _subid_entry(owner, _id_range(start, count), lineno, text)
    return _subid_line(text, newline, lineno, LineKind.ENTRY, (), raw, raw, entry)


def _build(cls: type[_T], count: int, *columns: Iterable[Any]) -> list[_T]:
    """``count`` instances of the attrs class ``cls``, field ``i`` taken from ``columns[i]``.

    Column by column, so the slots are written by ``map`` in C, not by a Python call per
    field (the columns must hold at least ``count`` values; ``repeat`` is fine).
    """
    objs: list[_T] = list(map(_new, repeat(cls, count)))
    for set_field, column in zip(_setters_of[cls], columns, strict=True):
        deque(map(set_field, objs, column), maxlen=0)
    return objs


def _canonical_lines(bodies: Sequence[str], linenos: Sequence[int], owners: Sequence[str],
                     starts: Sequence[int], counts: Sequence[int], newline: str
                     ) -> list[SubidLine]:
    """``_canonical_line`` for many lines at once (every column as long as ``bodies``)."""
    n = len(bodies)
    raws = _build(RawRange, n, owners, starts, counts, linenos)
    ranges = _build(IDRange, n, starts, counts)
    entries = _build(SubidEntry, n, owners, ranges, linenos, bodies)
    return _build(SubidLine, n, bodies, repeat(newline), linenos, repeat(LineKind.ENTRY),
                  repeat(()), raws, raws, entries)


class CanonicalColumns:
    """Canonical lines column by column: the form the fast paths work on.

    A canonical line is ``owner:start:count`` read alike by the strict syntax, shadow
    and Docker (no white space at the ends, no sign, no leading zero, not a comment
    or NIS line, shorter than shadow's limit, the range inside ``0 … ID_MAX``).
    ``texts[i]`` is the line's text without its newline; :attr:`owners` are taken
    from the texts when first asked for, unless given. Treat the lists as read-only.

    >>> CanonicalColumns(["a:1:2", "b:5:5"], None, [1, 5], [2, 5]).owners
    ['a', 'b']
    """

    __slots__ = ("_owners", "counts", "starts", "texts")
    texts: list[str]
    starts: list[int]
    counts: list[int]
    _owners: list[str] | None

    def __init__(self, texts: list[str], owners: list[str] | None, starts: list[int],
                 counts: list[int]) -> None:
        self.texts = texts
        self._owners = owners
        self.starts = starts
        self.counts = counts

    @property
    def owners(self) -> list[str]:
        """Each line's owner: its text up to the first colon."""
        owners = self._owners
        if owners is None:
            owners = self._owners = [text[: text.index(":")] for text in self.texts]
        return owners

    def __repr__(self) -> str:
        return (f"CanonicalColumns({self.texts!r}, {self._owners!r}, {self.starts!r}, "
                f"{self.counts!r})")


def lazy_file(text: str, *, path: str | None = None) -> SubidFile:
    """``SubidFile.parse(text, path=path)``, read only when its lines or columns are
    first asked for (its text is there at once).

    For the package's writers (``shadow_useradd``), whose callers often only write the
    file out.

    >>> f = lazy_file("a:1:2\\n# c\\n")
    >>> f.text, len(f), f.lines[1].kind, f.canonical_columns
    ('a:1:2\\n# c\\n', 2, <LineKind.COMMENT: 'comment'>, None)
    """
    f = SubidFile(None, path)
    object.__setattr__(f, "_text", text)
    return f


#: characters of a block split into fields at a time (whole lines): the fields of one
#: piece are read and dropped before the next is split, so the memory they take is used
#: again rather than a new page for each of them (split whole, the throw-away fields of
#: a 100k-line file took 13 MB of fresh pages, a fault each 4 KiB).
_PIECE = 1 << 16


def _pieces(block: str) -> Iterator[str]:
    """``block`` (lines, each ending in a newline) in pieces of about ``_PIECE``
    characters, each of whole lines."""
    pos = 0
    n = len(block)
    while pos < n:
        end = block.find("\n", pos + _PIECE) + 1 or n  # past a newline, or the end
        yield block[pos:end] if pos or end < n else block
        pos = end


def _columns(block: str) -> CanonicalColumns | None:
    """The columns of ``block``, canonical lines each ending in a newline and each shorter
    than ``_CANONICAL_LEN`` (``_CANONICAL_RUN``), or ``None`` when a range ends past
    ID_MAX."""
    bodies = block.split("\n")
    bodies.pop()  # the block ends in a newline
    count_text = bodies[-1][bodies[-1].rindex(":") + 1:]
    owners: list[str] | None
    starts: list[int] = []
    # ":COUNT\n" is found only at the end of a line whose count is COUNT (an owner holds
    # no colon), so as many finds as lines is one count for all.
    if block.count(f":{count_text}\n") == len(bodies):
        # The usual file: one count for all, read once; the owners when asked for.
        for piece in _pieces(block):
            starts += map(int, piece.split(":")[1::2])  # owner, start, "count\nowner", ...
        largest = int(count_text)
        counts = [largest] * len(starts)
        owners = None
    else:
        counts = []
        owners = []
        for piece in _pieces(block):
            fields = piece[:-1].replace("\n", ":").split(":")  # owner, start, count, ...
            starts += map(int, fields[1::3])
            counts += map(int, fields[2::3])
            owners += fields[0::3]
        largest = max(counts)
    # The pairwise sums only when the two maxima alone could pass ID_MAX.
    if (max(starts) + largest - 1 > ID_MAX
            and max(map(operator.add, starts, counts)) - 1 > ID_MAX):
        return None
    return CanonicalColumns(bodies, owners, starts, counts)


def _parse_block(block: str, first: int, path: str | None) -> list[SubidLine]:
    """The lines of ``block``: canonical lines, each ending in a newline (``_CANONICAL_RUN``)."""
    columns = _columns(block)
    if columns is None:
        return [SubidLine.parse(body, lineno, "\n", path=path)
                for lineno, body in enumerate(block[:-1].split("\n"), start=first)]
    bodies, owners, starts, counts = columns.texts, columns.owners, columns.starts, columns.counts
    return _canonical_lines(bodies, range(first, first + len(bodies)), owners,
                            starts, counts, "\n")


def _parse_lines(text: str, path: str | None) -> list[SubidLine]:
    """Every line of ``text``, each as ``SubidLine.parse`` reads it, canonical runs in bulk."""
    out: list[SubidLine] = []
    # Hundreds of thousands of small objects, none of them cyclic: the cyclic garbage
    # collector would walk them all again and again while they are built. Measured on
    # benchmarks/allocation.py's 100k-owner files (median of 15, interleaved): without
    # it, parsing the one with a comment line takes 320 ms instead of 216, and the lines
    # of the canonical one 296 ms instead of 192.
    with _collector_off():
        for run, piece in _segments(text):
            if run:
                out += _parse_block(piece, len(out) + 1, path)
            else:
                out.append(_other_line(piece, len(out) + 1, path))
    return out


def _segments(text: str) -> Iterator[tuple[bool, str]]:
    """``text`` cut into runs of canonical lines (``(True, run)``) and the other lines,
    one at a time (``(False, line)``, its newline included when it has one)."""
    pos = 0
    n = len(text)
    while pos < n:
        end = _run_end(text, pos)
        if end > pos:
            yield True, text[pos:end]
            pos = end
            continue
        stop = text.find("\n", pos)  # this line is not canonical: read it alone
        end = n if stop < 0 else stop + 1
        yield False, text[pos:end]
        pos = end


def _other_line(line: str, lineno: int, path: str | None) -> SubidLine:
    """A line that is not in a canonical run (``line`` with its newline, if any)."""
    if line.endswith("\n"):
        return SubidLine._parse_slow(line[:-1], lineno, "\n", path=path)
    return SubidLine.parse(line, lineno, "", path=path)


@contextlib.contextmanager
def _collector_off() -> Iterator[None]:
    """The cyclic garbage collector off for the block (as it was after)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _split(text: str, path: str | None
           ) -> tuple[CanonicalColumns | None, tuple[SubidLine, ...]] | None:
    """The canonical lines of ``text`` as columns and the other lines as objects, as
    :func:`_parse_lines` reads them. No canonical line: ``(None, lines)``, every line
    read. ``None`` when the canonical lines cannot be columns (a range past ID_MAX)."""
    blocks: list[str] = []
    others: list[SubidLine] = []
    with _collector_off():  # see _parse_lines (a file may be mostly comments)
        lineno = 1  # of the next line
        for run, piece in _segments(text):
            if run:
                blocks.append(piece)
                lineno += piece.count("\n")
            else:
                others.append(_other_line(piece, lineno, path))
                lineno += 1
    if not blocks:
        return None, tuple(others)
    columns = _columns(blocks[0] if len(blocks) == 1 else "".join(blocks))
    return None if columns is None else (columns, tuple(others))


def _canonical_before(others: Sequence[SubidLine]) -> list[int]:
    """For each of the other lines (in file order), how many canonical lines precede it."""
    return [line.lineno - 1 - i for i, line in enumerate(others)]


def _canonical_linenos(others: Sequence[SubidLine], count: int) -> list[int]:
    """The line numbers of ``count`` canonical lines around ``others`` (in file order)."""
    out: list[int] = []
    first = 1
    for line in others:
        out += range(first, line.lineno)
        first = line.lineno + 1
    out += range(first, first + count - len(out))
    return out


def _interleave(canonical: Sequence[_T], inserts: Iterable[tuple[int, _T]]) -> list[_T]:
    """``canonical`` with each ``(k, item)`` of ``inserts`` put after its first ``k``
    items (``k`` never decreasing; equal ``k`` keep their order).

    >>> _interleave(["a", "b", "c"], [(0, "#"), (2, "-"), (2, "=")])
    ['#', 'a', 'b', '-', '=', 'c']
    """
    out: list[_T] = []
    done = 0
    for k, item in inserts:
        if k > done:
            out += canonical[done:k]
            done = k
        out.append(item)
    out += canonical[done:]
    return out


@attrs.frozen(eq=False)
class SubidFile:
    """Every line of one subid file, in order, and the valid entries among them.

    Build it with :meth:`parse` (text) or :meth:`read` (a path). ``path`` only labels
    errors and findings. Equality is by text and path.

    >>> f = SubidFile.parse("jonas:100000:1000\\njonas:1000:1\\n1001:300000:65536\\n")
    >>> f.ranges_for("jonas", 1001)
    [IDRange(100000, 1000), IDRange(1000, 1), IDRange(300000, 65536)]
    >>> [e.lineno for e in f.entries_for(None, 1001)]
    [3]
    """

    _lines: tuple[SubidLine, ...] | None
    path: str | None = None
    _entries: tuple[SubidEntry, ...] | None = attrs.field(init=False, repr=False, default=None)
    # A file of canonical lines only is kept as columns (strings and ints, which the
    # garbage collector never walks) until its lines are asked for.
    _columns: CanonicalColumns | None = attrs.field(init=False, repr=False, default=None)
    # With _columns: every line that is not canonical (comments, blank lines, anything
    # else), each read as SubidLine.parse reads it and numbered where it stands; the
    # canonical lines fill the other numbers in order. Empty when every line is canonical.
    _others: tuple[SubidLine, ...] = attrs.field(init=False, repr=False, default=())
    _text: str | None = attrs.field(init=False, repr=False, default=None)

    # -- construction ---------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | bytes, *, path: str | None = None,
              strict: bool = False) -> SubidFile:
        """Read a whole file's text (``bytes`` are decoded UTF-8, undecodable bytes kept).

        ``strict=True`` raises :class:`SubidParseError` listing every problem; the
        default keeps every line and takes as entries what shadow reads.

        >>> SubidFile.parse("alice:100000:0\\n", path="subuid", strict=True)
        Traceback (most recent call last):
          ...
        userns.errors.SubidParseError: subuid:1:14: the count must be at least 1 [zero-count]
        """
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", "surrogateescape")
        split: tuple[CanonicalColumns | None, tuple[SubidLine, ...]] | None = None
        if text and _run_end(text) == len(text):
            columns = _columns(text)
            if columns is not None:
                split = columns, ()
        elif text:
            split = _split(text, path)
        if split is None:
            f = cls(tuple(_parse_lines(text, path)), path)
        elif split[0] is None:
            f = cls(split[1], path)  # no canonical line: every line is read already
        else:
            # The canonical lines have no problems and are built only when needed; the
            # others are few (comments, blank lines) and read line by line.
            f = cls(None, path)
            object.__setattr__(f, "_columns", split[0])
            object.__setattr__(f, "_others", split[1])
            object.__setattr__(f, "_text", text)
        if strict and any(line.problems for line in f._lines or f._others):
            raise SubidParseError(tuple(p for line in f._lines or f._others
                                        for p in line.problems))
        return f

    @classmethod
    def read(cls, path: str | os.PathLike[str], *, strict: bool = False,
             missing_ok: bool = False) -> SubidFile:
        """Read the file at ``path`` (``missing_ok``: a missing file reads as empty)."""
        name = os.fspath(path)
        try:
            with open(name, "rb") as fh:
                data = fh.read()
        except FileNotFoundError as exc:
            if not missing_ok:
                raise FileNotFoundError(
                    exc.errno, f"no subordinate ID file at {name} (pass missing_ok=True to "
                    "read a missing file as empty, as shadow does)", name) from None
            data = b""
        return cls.parse(data, path=name, strict=strict)

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, int, int]], *,
                     path: str | None = None) -> SubidFile:
        """A file with one canonical ``owner:start:count`` line per entry."""
        return cls.parse("".join(f"{o}:{s}:{c}\n" for o, s, c in entries), path=path)

    # -- views ------------------------------------------------------------------------

    @property
    def canonical_columns(self) -> CanonicalColumns | None:
        """The lines as :class:`CanonicalColumns` when every line is canonical, else ``None``.

        :meth:`parse` keeps such a file as columns (strings and ints) and builds its
        :attr:`lines` only when they are asked for; allocation and ``shadow_useradd``
        work on the columns directly. ``None`` for any other file (one with a comment
        or a blank line is kept as :attr:`canonical_split`), and for one built line by
        line.

        >>> SubidFile.parse("a:1:2\\nb:5:5\\n").canonical_columns.starts
        [1, 5]
        >>> SubidFile.parse("# c\\na:1:2\\n").canonical_columns is None
        True
        """
        split = self.canonical_split
        return split[0] if split is not None and not split[1] else None

    @property
    def canonical_split(self) -> tuple[CanonicalColumns, tuple[SubidLine, ...]] | None:
        """The canonical lines as :class:`CanonicalColumns` and the others as lines.

        :meth:`parse` keeps a file with at least one canonical line this way: comments,
        blank lines and every other line that is not canonical are read as
        :class:`SubidLine` objects, each with its ``lineno``; the canonical lines, in
        order, fill the line numbers left. Allocation and ``shadow_useradd`` work on
        this split; :attr:`lines` builds the rest only when asked for. ``None`` for a
        file built line by line, or one whose canonical lines cannot be kept as
        columns (a line of 256 characters or more, a range past the largest ID).

        >>> columns, others = SubidFile.parse("# c\\na:1:2\\n\\nb:5:5").canonical_split
        >>> columns.texts, [(line.lineno, line.kind.value) for line in others]
        (['a:1:2'], [(1, 'comment'), (3, 'blank'), (4, 'entry')])
        """
        if self._columns is None and self._lines is None:
            self._read_text()
        columns = self._columns
        return None if columns is None else (columns, self._others)

    def _read_text(self) -> None:
        """Read the text of a :func:`lazy_file`, as :meth:`parse` reads it."""
        parsed = SubidFile.parse(self._text or "", path=self.path)
        object.__setattr__(self, "_columns", parsed._columns)
        object.__setattr__(self, "_others", parsed._others)
        object.__setattr__(self, "_lines", parsed._lines)

    @property
    def lines(self) -> tuple[SubidLine, ...]:
        """Every line, in file order."""
        lines = self._lines
        if lines is None and self._columns is None:
            self._read_text()
            lines = self._lines
        if lines is None:
            columns = self._columns
            assert columns is not None
            bodies, owners = columns.texts, columns.owners
            starts, counts = columns.starts, columns.counts
            collecting = gc.isenabled()
            gc.disable()  # see _parse_lines
            try:
                others = self._others
                if not others:
                    lines = tuple(_canonical_lines(bodies, range(1, len(bodies) + 1), owners,
                                                   starts, counts, "\n"))
                else:
                    before = _canonical_before(others)
                    linenos = _canonical_linenos(others, len(bodies))
                    built = _canonical_lines(bodies, linenos, owners, starts, counts, "\n")
                    lines = tuple(_interleave(built, zip(before, others)))
            finally:
                if collecting:
                    gc.enable()
            object.__setattr__(self, "_lines", lines)
        return lines

    @property
    def entries(self) -> tuple[SubidEntry, ...]:
        """The valid entries, in file order."""
        entries = self._entries
        if entries is None:
            # an entry is never false
            entries = tuple(filter(None, map(_entry_of, self.lines)))
            object.__setattr__(self, "_entries", entries)
        return entries

    @property
    def problems(self) -> tuple[ParseError, ...]:
        """Every strict-syntax problem, in line order."""
        return tuple(p for line in self.lines for p in line.problems)

    @property
    def shadow_records(self) -> tuple[RawRange, ...]:
        """Every line shadow reads as an entry, as it reads it, in file order."""
        return tuple(line.shadow for line in self.lines if line.shadow is not None)

    @property
    def text(self) -> str:
        """The file's exact text."""
        if self._text is not None:
            return self._text
        return "".join(line.raw for line in self.lines)

    def to_bytes(self) -> bytes:
        """The file's exact bytes (undecodable input bytes come back unchanged)."""
        return self.text.encode("utf-8", "surrogateescape")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SubidFile):
            return NotImplemented
        return (self.text, self.path) == (other.text, other.path)

    def __hash__(self) -> int:
        return hash((self.text, self.path))

    def __len__(self) -> int:
        if self._columns is None and self._lines is None:
            self._read_text()
        if self._columns is not None:
            return len(self._columns.texts) + len(self._others)
        return len(self.lines)

    def __iter__(self) -> Iterator[SubidEntry]:
        return iter(self.entries)

    @property
    def owners(self) -> tuple[str, ...]:
        """Each owner once, in order of first appearance."""
        return tuple(dict.fromkeys(e.owner for e in self.entries))

    # -- lookups ----------------------------------------------------------------------

    def entries_for(self, name: str | None, uid: int | None = None) -> list[SubidEntry]:
        """The entries owned by ``name`` or by the decimal ``uid``, in FILE order.

        This is how shadow's ``list_owner_ranges``, Docker and Podman select lines: the
        owner text equals the name, or equals ``str(uid)`` exactly (``01000`` is not
        uid 1000). Each entry appears once even if it matches both ways.
        """
        uid_text = str(uid) if uid is not None else None
        return [e for e in self.entries if e.owner == name or e.owner == uid_text]

    def ranges_for(self, name: str | None, uid: int | None = None) -> list[IDRange]:
        """The ranges of :meth:`entries_for`, in FILE order."""
        return [e.range for e in self.entries_for(name, uid)]

    # -- lossless edits (pure: each returns a new file) --------------------------------

    def _rebuilt(self, pieces: Iterable[tuple[str, str] | SubidLine]) -> SubidFile:
        """A file from kept lines and new ``(text, newline)`` pieces, renumbered."""
        out: list[SubidLine] = []
        for piece in pieces:
            lineno = len(out) + 1
            if isinstance(piece, SubidLine):
                if piece.lineno != lineno:
                    piece = piece._renumbered(lineno, piece.newline, self.path)
                out.append(piece)
            else:
                out.append(SubidLine.parse(piece[0], lineno, piece[1], path=self.path))
        return SubidFile(tuple(out), self.path)

    def _kept_with_newline(self) -> list[tuple[str, str] | SubidLine]:
        kept: list[tuple[str, str] | SubidLine] = list(self.lines)
        if self.lines and self.lines[-1].newline == "":
            kept[-1] = (self.lines[-1].text, "\n")  # the one byte an append must add
        return kept

    def add_ranges(self, items: Iterable[tuple[str, IDRange]], *,
                   accounts: Accounts | None = None, allow_unknown_owner: bool = False,
                   badname: bool = False) -> SubidFile:
        """A copy with one ``owner:start:count`` line appended per item (as shadow appends).

        Every existing line stays byte for byte; only a missing final newline is added.
        Every owner is checked first (:func:`~userns.subid.owners.check_owner`, with
        ``accounts``, ``allow_unknown_owner`` and ``badname``): one bad owner raises
        :class:`~userns.InvalidOwnerError` and nothing is built.

        >>> SubidFile.parse("# x\\na:1:2").add_ranges([("b", IDRange(5, 5))]).text
        '# x\\na:1:2\\nb:5:5\\n'
        """
        items = list(items)
        for owner, _ in items:
            check_owner(owner, accounts=accounts, allow_unknown_owner=allow_unknown_owner,
                        badname=badname)
        new = [(f"{owner}:{r.start}:{r.size}", "\n") for owner, r in items]
        if not new:
            return self
        text = self._text
        if self._lines is None and text is not None:
            # Lines not built (columns, or not read yet): the same file from its text.
            if text and not text.endswith("\n"):
                text += "\n"
            return lazy_file(text + "".join(body + nl for body, nl in new), path=self.path)
        return self._rebuilt([*self._kept_with_newline(), *new])

    def add_range(self, owner: str, range: IDRange, *, accounts: Accounts | None = None,
                  allow_unknown_owner: bool = False, badname: bool = False) -> SubidFile:
        """A copy with ``owner:start:count`` appended, unless ``owner`` already holds
        every ID of ``range`` (through one entry or adjacent ones), as shadow's
        ``add_range`` decides; then the same file.

        ``owner`` is checked first, as :meth:`add_ranges` checks it (a refused owner
        raises :class:`~userns.InvalidOwnerError` even when nothing would be added).

        >>> f = SubidFile.parse("a:100:10\\na:110:10\\n")
        >>> f.add_range("a", IDRange(105, 10)) is f
        True
        """
        check_owner(owner, accounts=accounts, allow_unknown_owner=allow_unknown_owner,
                    badname=badname)
        covered = sorted(e.range for e in self.entries if e.owner == owner)
        need = range.start
        for r in covered:
            if r.start <= need < r.stop:
                need = r.stop
            if need >= range.stop:
                return self
        return self.add_ranges([(owner, range)], badname=badname)

    def remove_range(self, owner: str, range: IDRange) -> SubidFile:
        """A copy where ``owner`` (exact text) no longer holds any ID of ``range``.

        As shadow's ``remove_range``: an entry inside the range is deleted, one that
        sticks out is trimmed (rewritten canonically), one that contains the range is
        split and its upper part appended at the end. Other lines stay byte for byte.

        >>> f = SubidFile.parse("# keep\\na:100:100\\nb:0:5\\n")
        >>> f.remove_range("a", IDRange(120, 10)).text
        '# keep\\na:100:20\\nb:0:5\\na:130:70\\n'
        """
        out: list[tuple[str, str] | SubidLine] = []
        tails: list[tuple[str, str]] = []
        changed = False
        for line in self.lines:
            e = line.entry
            if e is None or e.owner != owner or not e.range.overlaps(range):
                out.append(line)
                continue
            changed = True
            if e.start < range.start:
                out.append((f"{owner}:{e.start}:{range.start - e.start}", line.newline or "\n"))
                if e.stop > range.stop:
                    tails.append((f"{owner}:{range.stop}:{e.stop - range.stop}", "\n"))
            elif e.stop > range.stop:
                out.append((f"{owner}:{range.stop}:{e.stop - range.stop}", line.newline or "\n"))
        if not changed:
            return self
        if tails and out:
            last = out[-1]
            text, nl = (last.text, last.newline) if isinstance(last, SubidLine) else last
            if nl == "":
                out[-1] = (text, "\n")
        return self._rebuilt([*out, *tails])

    def remove_owner(self, owner: str) -> SubidFile:
        """A copy without any entry of ``owner`` (exact text), as ``userdel`` does.

        >>> SubidFile.parse("a:1:2\\nb:3:4\\na:9:9\\n").remove_owner("a").text
        'b:3:4\\n'
        """
        kept = [line for line in self.lines if line.entry is None or line.entry.owner != owner]
        if len(kept) == len(self.lines):
            return self
        return self._rebuilt(kept)

    def __repr__(self) -> str:
        return f"SubidFile.parse({self.text!r}, path={self.path!r})"
