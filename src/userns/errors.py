"""Every exception userns raises.

One root, :class:`UsernsError`; each concrete error also subclasses the builtin it
resembles, so ``except ValueError`` keeps working for callers who do not know userns.
Every error carries a short, stable ``reason`` code (``overlap-host``,
``too-many-extents``, ...) that tests and tools can match on instead of the message.

This module imports nothing else from the package.
"""

from __future__ import annotations

__all__ = [
    "InvalidIDError",
    "InvalidMapError",
    "InvalidRangeError",
    "Location",
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

    def render(self) -> str:
        """A multi-line report: the message, then the line with a caret when known."""
        text = str(self)
        if self.location is not None and self.location.text is not None:
            lines = self.location.render().splitlines()
            # The first rendered line repeats the prefix already in the message.
            text += "\n" + "\n".join(lines[1:] if self.location.prefix() else lines)
        return text


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
