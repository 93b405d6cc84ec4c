"""``/proc/PID/uid_map`` and ``gid_map`` text, read and validated exactly as the kernel does.

The kernel (``kernel/user_namespace.c: map_write``) takes a map in ONE ``write()`` of fewer
than ``PAGE_SIZE`` bytes. Each line is ``container host count``: three base-10 unsigned
fields, optional leading whitespace, at least one whitespace character between fields,
optional trailing whitespace; whitespace is what the kernel's ``isspace()`` says (space,
``\\t``, ``\\v``, ``\\f``, ``\\r`` and the Latin-1 byte 0xA0); the last newline is optional;
blank lines, signs, hex and comments are refused. Neither start may be 4294967295, a range
may not wrap 2^32, no two lines may overlap on either side, and there are at most 340
lines (5 before Linux 4.15).

userns is stricter than the kernel in two places, on purpose, because the kernel
accepts these inputs silently and installs something else than what the text says:

- a field of 2^32 or more: the kernel truncates it to 32 bits (``0 4294967296 1`` installs
  ``0 0 1``, container root as host root); refused with reason ``field-too-large``;
- a NUL byte: the kernel stops reading at it and ignores the rest; refused with reason
  ``nul-byte``.

>>> validate_map_write("0 231072 65536\\n")
IDMap([Extent(0, 231072, 65536)])
>>> format_proc(IDMap.single(0, 231072, 65536))
'0 231072 65536\\n'
"""

from __future__ import annotations

from bisect import bisect_right

from ..errors import InvalidMapError, Location
from ..ids import ID_LIMIT, INVALID_ID, MAX_EXTENTS
from ..maps import Extent, IDMap, overlapping_pair

__all__ = ["format_proc", "format_proc_padded", "parse_proc", "validate_map_write"]

# The kernel's isspace(): lib/ctype.c marks 0x09-0x0D, 0x20 and 0xA0 as space.
_SPACE = frozenset(b"\t\n\v\f\r \xa0")
_FIELDS = ("container ID", "host ID", "count")
#: The kernel sorts maps of more than this many extents by container ID on install.
_BASE_EXTENTS = 5


def format_proc(idmap: IDMap) -> str:
    """The compact text to write to ``uid_map``: one ``container host size`` line each."""
    return "".join(f"{e.container} {e.host} {e.size}\n" for e in idmap)


def format_proc_padded(idmap: IDMap) -> str:
    """The text as the kernel reads it back: ``%10u %10u %10u`` per line."""
    return "".join(f"{e.container:>10} {e.host:>10} {e.size:>10}\n" for e in idmap)


def _error(
    reason: str, message: str, lineno: int, line: bytes, start: int, end: int, path: str | None
) -> InvalidMapError:
    text = line.decode("utf-8", "backslashreplace")
    loc = Location(line=lineno, column=start + 1, end_column=end + 1, text=text, path=path)
    return InvalidMapError(message, reason=reason, location=loc)


def _parse_line(  # noqa: C901 (the kernel's map_write field scan, kept in its order)
    line: bytes, lineno: int, path: str | None
) -> tuple[tuple[int, int, int], tuple[tuple[int, int], ...]]:
    """One line as the kernel scans it: the three values and each field's byte span."""
    n = len(line)
    p = 0
    values: list[int] = []
    spans: list[tuple[int, int]] = []
    for index, name in enumerate(_FIELDS):
        while p < n and line[p] in _SPACE:
            p += 1
        start = p
        while p < n and 48 <= line[p] <= 57:
            p += 1
        last = index == 2
        if p == start:
            # simple_strtoul() reads no digit as 0 and does not move; the kernel then
            # fails on the next check. Say what was expected instead.
            if p < n:
                end = p
                while end < n and line[end] not in _SPACE:
                    end += 1
                found = repr(line[p:end].decode("latin-1"))
            else:
                end, found = p, "end of line"
            raise _error("syntax", f"expected the {name} (a base-10 number), found {found}",
                         lineno, line, p, end, path)
        if not last and (p >= n or line[p] not in _SPACE):
            if p >= n:
                raise _error("syntax", f"missing field after the {name}: a line is "
                             "'container host count'", lineno, line, p, p, path)
            end = p
            while end < n and line[end] not in _SPACE:
                end += 1
            raise _error("syntax", f"the {name} must be followed by whitespace, found "
                         f"{line[p:end].decode('latin-1')!r}", lineno, line, p, end, path)
        if last and p < n and line[p] not in _SPACE:
            end = p
            while end < n and line[end] not in _SPACE:
                end += 1
            raise _error("syntax", f"junk after the count: {line[p:end].decode('latin-1')!r}",
                         lineno, line, p, end, path)
        digits = line[start:p].lstrip(b"0") or b"0"
        if len(digits) > 10 or int(digits) >= ID_LIMIT:
            # Past 2^32 (more than 10 significant digits always is); the kernel keeps
            # the low 32 bits. Computed digit by digit: int() refuses very long texts.
            low = 0
            for d in digits:
                low = (low * 10 + d - 48) % ID_LIMIT
            shown = digits.decode() if len(digits) <= 30 else f"{digits[:12].decode()}…"
            raise _error(
                "field-too-large",
                f"the {name} {shown} does not fit in 32 bits; the kernel would silently "
                f"install {low} instead",
                lineno, line, start, p, path,
            )
        value = int(digits)
        values.append(value)
        spans.append((start, p))
    while p < n and line[p] in _SPACE:
        p += 1
    if p < n:
        raise _error("syntax", f"junk after the count: {line[p:].decode('latin-1')!r}",
                     lineno, line, p, n, path)
    c, h, s = values
    for value, (a, b), name in zip((c, h), spans, _FIELDS):
        if value == INVALID_ID:
            raise _error("invalid-id", f"the {name} may not be 4294967295 ((uid_t)-1)",
                         lineno, line, a, b, path)
    if s == 0:
        a, b = spans[2]
        raise _error("zero-count", "the count must be at least 1", lineno, line, a, b, path)
    for value, name in zip((c, h), ("container", "host")):
        if value + s > INVALID_ID:
            a, b = spans[0][0], spans[2][1]
            raise _error(
                "wrap",
                f"the {name} range {value}+{s} ends past the largest ID 4294967294",
                lineno, line, a, b, path,
            )
    return (c, h, s), tuple(spans)


def _scan(
    data: str | bytes,
    *,
    path: str | None,
    page_size: int | None,
    max_extents: int | None,
) -> list[tuple[Extent, int, bytes]]:
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
    if page_size is not None and len(raw) >= page_size:
        raise InvalidMapError(
            f"the map text is {len(raw)} bytes; the kernel takes fewer than {page_size} "
            "(PAGE_SIZE) in its one write",
            reason="too-large",
            location=Location(path=path) if path else None,
        )
    nul = raw.find(b"\0")
    if nul >= 0:
        lineno = raw.count(b"\n", 0, nul) + 1
        line_start = raw.rfind(b"\n", 0, nul) + 1
        line_end = raw.find(b"\n", nul)
        line = raw[line_start:] if line_end < 0 else raw[line_start:line_end]
        col = nul - line_start
        raise _error("nul-byte", "a NUL byte: the kernel would ignore everything after it",
                     lineno, line, col, col + 1, path)
    if not raw:
        raise InvalidMapError("the map is empty: the kernel needs at least one line",
                              reason="empty", location=Location(path=path) if path else None)
    body = raw[:-1] if raw.endswith(b"\n") else raw
    lines = body.split(b"\n")
    if max_extents is not None and len(lines) > max_extents:
        raise InvalidMapError(
            f"{len(lines)} lines; the kernel takes at most {max_extents}",
            reason="too-many-extents",
            location=Location(line=max_extents + 1, column=1,
                              text=lines[max_extents].decode("utf-8", "backslashreplace"),
                              path=path),
        )
    out: list[tuple[Extent, int, bytes]] = []
    for lineno, line in enumerate(lines, 1):
        (c, h, s), _ = _parse_line(line, lineno, path)
        out.append((Extent(c, h, s), lineno, line))
    _check_overlaps(out, path)
    return out


def _check_overlaps(rows: list[tuple[Extent, int, bytes]], path: str | None) -> None:
    for side in ("container", "host"):
        pair = overlapping_pair([e for e, _, _ in rows], side)
        if pair is None:
            continue
        first, second = rows[pair[0]], rows[pair[1]]
        raise InvalidMapError(
            f"line {second[1]} ('{second[0]}') overlaps line {first[1]} "
            f"('{first[0]}') on the {side} side",
            reason=f"overlap-{side}",
            location=Location(line=second[1], column=1, end_column=len(second[2]) + 1,
                              text=second[2].decode("utf-8", "backslashreplace"), path=path),
        )


def parse_proc(data: str | bytes, *, path: str | None = None) -> IDMap:
    """Read ``uid_map``/``gid_map`` text (compact or the kernel's padded read-back).

    Grammar per line: ``ws* uint ws+ uint ws+ uint ws*``. The same rules as
    :func:`validate_map_write` except the size limits (a read-back is never refused);
    the extents keep their order.
    """
    return IDMap(e for e, _, _ in _scan(data, path=path, page_size=None, max_extents=None))


def validate_map_write(
    data: str | bytes,
    *,
    page_size: int = 4096,
    max_extents: int = MAX_EXTENTS,
    parent: IDMap | None = None,
    path: str | None = None,
) -> IDMap:
    """Check ``data`` as ``map_write`` in the kernel would, and return the installed map.

    Raises :class:`InvalidMapError` with the
    reason code and the line for anything the kernel refuses, and for the two inputs it
    would silently misread (see the module docs). ``parent`` is the map of the namespace
    the writer's target is nested in: each extent's host range must then lie inside ONE
    of its extents. As the kernel does, a map of more than 5 extents comes back sorted by
    container ID.

    >>> validate_map_write("0 1000 1\\n1 100000 65536")
    IDMap([Extent(0, 1000, 1), Extent(1, 100000, 65536)])
    >>> validate_map_write("0 0 4294967295").is_identity()
    True
    """
    if not isinstance(data, (str, bytes, bytearray)):
        raise TypeError(f"validate_map_write takes the map's text as str or bytes, not "
                        f"{type(data).__name__}: read the file first (or give parse_proc "
                        "an IDMap's text)")
    rows = _scan(data, path=path, page_size=page_size, max_extents=max_extents)
    if parent is not None:
        starts = sorted((e.container, e.container + e.size) for e in parent)
        firsts = [a for a, _ in starts]
        for e, lineno, line in rows:
            i = bisect_right(firsts, e.host) - 1
            if i < 0 or e.host + e.size > starts[i][1]:
                raise InvalidMapError(
                    f"host IDs [{e.host}, {e.host + e.size}) do not lie inside one extent "
                    "of the parent namespace's map",
                    reason="not-in-parent",
                    location=Location(line=lineno, column=1, end_column=len(line) + 1,
                                      text=line.decode("utf-8", "backslashreplace"), path=path),
                )
    extents = [e for e, _, _ in rows]
    if len(extents) > _BASE_EXTENTS:
        extents.sort(key=lambda e: e.container)
    return IDMap(extents)
