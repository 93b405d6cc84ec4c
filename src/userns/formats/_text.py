"""Shared scanning helpers for the text formats: tokens with positions, numbers, maps.

Private to :mod:`userns.formats`. Every helper raises :class:`~userns.errors.ParseError`
or :class:`~userns.errors.InvalidMapError` carrying a :class:`~userns.errors.Location`
(line, column, the offending line), so each format module only states its grammar.

>>> [t.text for t in tokens("0:1:2  3:4:5")]
['0:1:2', '3:4:5']
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import attrs

from ..errors import (
    FormatSideError,
    InvalidMapError,
    Location,
    ParseError,
)
from ..ids import ID_LIMIT, INVALID_ID
from ..maps import Extent, IDMap, IDMapPair

__all__ = [
    "FIELDS",
    "FormatSideError",
    "Number",
    "Row",
    "Side",
    "Token",
    "build_map",
    "check_extent",
    "format_typed",
    "invalid",
    "number",
    "pick_side",
    "split_token",
    "syntax",
    "tokens",
    "typed_pair",
]

#: Which map(s) of a user namespace a text carries or a caller wants.
Side = Literal["uid", "gid", "both"]

#: What the three fields of an extent are called in messages.
FIELDS = ("container ID", "host ID", "count")

_WHITESPACE = " \t\r\n\v\f"


@attrs.frozen
class Token:
    """A piece of a text with where it starts: 1-based ``line``, 0-based ``start``.

    ``line_text`` is the whole line the token is on, for the caret.
    """

    text: str
    line: int
    start: int
    line_text: str

    @property
    def end(self) -> int:
        """Offset one past the token in its line."""
        return self.start + len(self.text)

    def at(self, offset: int, length: int) -> Token:
        """The part of this token from ``offset``, ``length`` characters long."""
        return Token(self.text[offset:offset + length], self.line, self.start + offset,
                     self.line_text)

    def location(self, path: str | None = None) -> Location:
        """Where the token is, underlining all of it."""
        return Location(line=self.line, column=self.start + 1, end_column=self.end + 1,
                        text=self.line_text, path=path)


def tokens(text: str, *, line: int = 1, line_text: str | None = None,
           separators: str = _WHITESPACE, offset: int = 0) -> Iterator[Token]:
    """The runs of ``text`` between ``separators`` (whitespace unless told), with positions.

    ``text`` must be one line when ``line_text`` is None; ``offset`` is where ``text``
    starts inside ``line_text``.
    """
    full = text if line_text is None else line_text
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in separators:
            i += 1
        start = i
        while i < n and text[i] not in separators:
            i += 1
        if i > start:
            yield Token(text[start:i], line, offset + start, full)


def split_token(token: Token, sep: str) -> list[Token]:
    """``token`` cut at every ``sep``, keeping empty parts (they are errors to report)."""
    parts: list[Token] = []
    pos = 0
    for piece in token.text.split(sep):
        parts.append(token.at(pos, len(piece)))
        pos += len(piece) + len(sep)
    return parts


def syntax(message: str, token: Token, path: str | None, reason: str = "syntax") -> ParseError:
    """A :class:`ParseError` pointing at ``token``."""
    return ParseError(message, reason=reason, location=token.location(path))


def invalid(message: str, token: Token, path: str | None, reason: str) -> InvalidMapError:
    """An :class:`InvalidMapError` pointing at ``token``."""
    return InvalidMapError(message, reason=reason, location=token.location(path))


Number = Literal["decimal", "strict"]


def number(token: Token, what: str, path: str | None, *, style: Number = "decimal",
           tool: str = "") -> int:
    """The unsigned base-10 integer ``token`` holds.

    ``style="decimal"``: leading zeros are plain decimal (``010`` is 10), as the tools
    reading with ``strtoul(…, 10)``/``sscanf("%u")``/Go's ``ParseUint`` do.
    ``style="strict"``: for tools that read with ``strtoul(…, 0)`` (``newuidmap``, LXC),
    where ``010`` is octal 8 and ``0x10`` is 16, a leading zero or ``0x`` is refused as
    ambiguous (reason ``ambiguous-number``) instead of being read in another base.
    """
    text = token.text
    if not text:
        raise syntax(f"expected the {what} (a base-10 number), found nothing", token, path)
    if style == "strict" and len(text) > 1 and text[0] == "0":
        hexa = text[1] in "xX"
        digits, charset, name = ((text[2:], "0123456789abcdefABCDEF", "hexadecimal") if hexa
                                 else (text[1:], "01234567", "octal"))
        if digits and all(ch in charset for ch in digits):
            clause = f"reads it as {name}, {int(digits, 16 if hexa else 8)}"
        else:
            clause = f"reads a leading 0 as {name} and refuses it"
        raise syntax(
            f"the {what} {text!r} is ambiguous: {tool} {clause}; write the number in decimal "
            "without a leading 0",
            token, path, reason="ambiguous-number")
    if not text.isascii() or not text.isdigit():
        if text[0] in "+-":
            raise syntax(f"the {what} must be a base-10 number without a sign, found {text!r}",
                         token, path)
        raise syntax(f"expected the {what} (a base-10 number), found {text!r}", token, path)
    # Python refuses int() on very long digit strings: judge those by their length.
    significant = text.lstrip("0") or "0"
    value = int(significant) if len(significant) <= 20 else ID_LIMIT
    if value >= ID_LIMIT:
        shown = text if len(text) <= 20 else f"{text[:12]}… ({len(text)} digits)"
        raise syntax(f"the {what} {shown} does not fit in 32 bits", token, path,
                     reason="field-too-large")
    return value


def check_extent(container: int, host: int, size: int, token: Token,
                 path: str | None, fields: Sequence[Token] | None = None) -> Extent:
    """The extent, or the kernel's refusal of it as an :class:`InvalidMapError`.

    ``fields`` are the tokens of the container ID, host ID and count, for a caret
    under the very field at fault; ``token`` is the whole entry.
    """
    spots = list(fields) if fields is not None else [token, token, token]
    for value, spot, name in zip((container, host), spots, FIELDS):
        if value == INVALID_ID:
            raise invalid(f"the {name} may not be 4294967295 ((uid_t)-1)", spot, path,
                          "invalid-id")
    if size == 0:
        raise invalid("the count must be at least 1", spots[2], path, "zero-count")
    for value, name in zip((container, host), ("container", "host")):
        if value + size > INVALID_ID:
            raise invalid(f"the {name} range {value}+{size} ends past the largest ID "
                          "4294967294", token, path, "wrap")
    return Extent(container, host, size)


@attrs.frozen
class Row:
    """One extent read from a text and the token it came from."""

    extent: Extent
    token: Token
    label: str | None = None

    @property
    def name(self) -> str:
        """How messages quote the entry: ``label``, else the token's text."""
        return repr(self.label if self.label is not None else self.token.text)


def build_map(rows: Sequence[Row], path: str | None) -> IDMap:
    """The map of ``rows`` in order; an overlap names the later entry and the earlier one."""
    for side in ("container", "host"):
        ordered = sorted(rows, key=lambda r: getattr(r.extent, side))
        for prev, cur in itertools.pairwise(ordered):
            a, b = prev.extent, cur.extent
            if getattr(a, side) + a.size > getattr(b, side):
                first, second = sorted((prev, cur), key=lambda r: (r.token.line, r.token.start))
                raise invalid(
                    f"{second.name} overlaps {first.name} on the {side} side",
                    second.token, path, f"overlap-{side}")
    return IDMap(r.extent for r in rows)


def pick_side(pair: IDMapPair, side: Side, what: str) -> IDMap:
    """The one map a one-map format writes: ``pair.uid``, ``pair.gid``, or, for
    ``side="both"``, the map both hold (:class:`FormatSideError` when they differ)."""
    if side == "uid":
        return pair.uid
    if side == "gid":
        return pair.gid
    if pair.uid != pair.gid:
        raise FormatSideError(f"{what} holds one map, and the uid and gid maps differ: "
                         "choose side='uid' or side='gid'")
    return pair.uid


def typed_pair(toks: Iterable[Token], path: str | None, *, type_required: bool,
               grammar: str) -> IDMapPair:
    """``[u|g|b:]container:host:count`` tokens (libmount's and lxc-usernsexec's form) as
    the uid and gid maps; ``b`` (or, unless ``type_required``, no type) means both."""
    rows: dict[str, list[Row]] = {"u": [], "g": []}
    for tok in toks:
        parts = split_token(tok, ":")
        kinds = "ug"
        if parts[0].text in ("u", "g", "b"):
            kinds = "ug" if parts[0].text == "b" else parts[0].text
            parts = parts[1:]
        elif len(parts) == 4 or (type_required and not parts[0].text[:1].isdigit()):
            raise syntax(f"the type must be 'u', 'g' or 'b', found {parts[0].text!r}",
                         parts[0], path, reason="unknown-type")
        elif type_required:
            raise syntax(f"{tok.text!r} has no type: expected '{grammar}'", tok, path,
                         reason="missing-type")
        if len(parts) != 3:
            raise syntax(f"{tok.text!r} is not '{grammar}'", tok, path)
        c, h, s = (number(t, name, path) for t, name in zip(parts, FIELDS))
        row = Row(check_extent(c, h, s, tok, path, parts), tok)
        for kind in kinds:
            rows[kind].append(row)
    return IDMapPair(build_map(rows["u"], path), build_map(rows["g"], path))


def format_typed(pair: IDMapPair) -> str:
    """``b:`` entries when both maps are equal, else every ``u:`` entry, then every
    ``g:`` entry, separated by spaces."""
    if pair.uid == pair.gid:
        return " ".join(f"b:{e.container}:{e.host}:{e.size}" for e in pair.uid)
    return " ".join([f"u:{e.container}:{e.host}:{e.size}" for e in pair.uid]
                    + [f"g:{e.container}:{e.host}:{e.size}" for e in pair.gid])
