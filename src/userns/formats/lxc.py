"""LXC's ``lxc.idmap`` configuration lines and Incus's ``raw.idmap`` overrides.

**LXC** (``lxc.container.conf(5)``, parsed by ``parse_idmaps`` in LXC's
``confile_utils.c``)::

    lxc.idmap = u 0 100000 65536
    lxc.idmap = g 0 100000 65536

The value is ``type container host count``, fields separated by spaces, tabs or ``\\r``;
``type`` is ``u`` or ``g`` (there is no ``b`` in ``lxc.idmap``: that is
``lxc-usernsexec -m b:…``). Other keys, blank lines and ``#`` comments are skipped, and
an empty ``lxc.idmap =`` clears the entries before it, as in LXC. LXC reads numbers with
``strtoul(…, 0)``, so ``0100000`` is octal (32768) and ``0x186a0`` hexadecimal: userns
refuses a leading zero (reason ``ambiguous-number``) rather than guess.

**lxc-usernsexec** ``-m`` values (and the kernel selftests' ``mount-idmapped
--map-mount``) are ``TYPE:CONTAINER:HOST:COUNT`` with ``TYPE`` ``u``, ``g`` or ``b`` (both):
that is where the ``b`` lives. See :func:`parse_usernsexec`.

**Incus** ``raw.idmap`` (``shared/idmap``: ``NewSetFromIncusIDMap``)::

    both 1000 1000
    uid 1000-1002 0-2
    gid 50 50

``type host-range container-range`` (note: the HOST range comes first), ``type`` one of
``both``, ``uid``, ``gid``; a range is ``N`` or ``first-last`` (both included); fields
are separated by exactly one space, as Incus splits on ``" "``. A later line that maps
container IDs an earlier one maps takes them over (Incus's ``AddSafe``); two lines
mapping the same host IDs are refused, as Incus does. :func:`apply_raw_idmap` lays the
overrides over a container's base maps with :meth:`IDMap.override`.

>>> parse_lxc("lxc.idmap = u 0 100000 65536\\nlxc.idmap = g 0 100000 65536\\n").root
(100000, 100000)
>>> base = IDMapPair.both(IDMap.single(0, 1000000, 65536))
>>> apply_raw_idmap(base, parse_raw_idmap("both 1000 1000")).uid.to_host(1000)
1000
"""

from __future__ import annotations

from typing import Literal

from ..errors import InvalidMapError
from ..maps import Extent, IDMap, IDMapPair
from ._text import (
    Row,
    Token,
    build_map,
    check_extent,
    format_typed,
    invalid,
    number,
    split_token,
    syntax,
    typed_pair,
)
from ._text import tokens as _tokens

__all__ = [
    "apply_raw_idmap",
    "format_lxc",
    "format_raw_idmap",
    "format_usernsexec",
    "parse_lxc",
    "parse_raw_idmap",
    "parse_usernsexec",
]

_LXC_SPACE = " \t\r"
_KEY = "lxc.idmap"
_LEGACY_KEY = "lxc.id_map"


def _lxc_value(value: Token, path: str | None) -> tuple[str, Row]:
    fields = list(_tokens(value.text, line=value.line, line_text=value.line_text,
                          separators=_LXC_SPACE, offset=value.start))
    if not fields:
        raise syntax("expected 'u|g container host count'", value, path)
    kind = fields[0]
    if kind.text not in ("u", "g"):
        hint = (" (lxc.idmap has no 'b': write a 'u' line and a 'g' line)"
                if kind.text[:1] == "b" else "")
        raise syntax(f"the type must be 'u' or 'g', found {kind.text!r}{hint}", kind, path,
                     reason="unknown-type")
    if len(fields) != 4:
        spot = fields[4] if len(fields) > 4 else value
        what = "junk after the count" if len(fields) > 4 else "expected 4 fields"
        raise syntax(f"{what}: an idmap is 'u|g container host count'", spot, path)
    c, h, s = (number(t, name, path, style="strict", tool="LXC")
               for t, name in zip(fields[1:], ("container ID", "host ID", "count")))
    entry = Token(value.line_text[kind.start:fields[3].end], value.line, kind.start,
                  value.line_text)
    return kind.text, Row(check_extent(c, h, s, entry, path, fields[1:]), entry)


def parse_lxc(text: str, *, path: str | None = None) -> IDMapPair:
    """Read the ``lxc.idmap`` lines of an LXC container config into the uid and gid maps.

    Grammar: ``lxc.idmap = (u|g) container host count`` per line; other lines are
    ``key = value`` or comments and are skipped. The order of the lines is kept.

    >>> parse_lxc("# a comment\\nlxc.idmap = u 0 100000 65536")
    IDMapPair(uid=IDMap([Extent(0, 100000, 65536)]), gid=IDMap([]))
    """
    rows: dict[str, list[Row]] = {"u": [], "g": []}
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.lstrip(" \t")
        if not stripped.strip() or stripped.startswith("#"):
            continue
        start = len(line) - len(stripped)
        eq = line.find("=")
        if eq < 0:
            raise syntax("expected 'key = value'", Token(stripped.rstrip(), lineno, start, line),
                         path)
        key = line[start:eq].strip()
        key_tok = Token(key, lineno, start, line)
        if key == _LEGACY_KEY:
            raise syntax("lxc.id_map was renamed lxc.idmap in LXC 3.0", key_tok, path,
                         reason="legacy-key")
        if key != _KEY:
            continue
        raw = line[eq + 1:]
        body = raw.strip(" \t\r")
        if not body:
            rows = {"u": [], "g": []}  # LXC: an empty lxc.idmap clears the list
            continue
        vstart = eq + 1 + (len(raw) - len(raw.lstrip(" \t\r")))
        kind, row = _lxc_value(Token(body, lineno, vstart, line), path)
        rows[kind].append(row)
    return IDMapPair(build_map(rows["u"], path), build_map(rows["g"], path))


def format_lxc(pair: IDMapPair) -> str:
    """``lxc.idmap`` lines: every ``u`` line, then every ``g`` line.

    >>> print(format_lxc(IDMapPair.both(IDMap.single(0, 100000, 65536))), end="")
    lxc.idmap = u 0 100000 65536
    lxc.idmap = g 0 100000 65536
    """
    return "".join(
        [f"{_KEY} = u {e.container} {e.host} {e.size}\n" for e in pair.uid]
        + [f"{_KEY} = g {e.container} {e.host} {e.size}\n" for e in pair.gid]
    )


# -- lxc-usernsexec -m ------------------------------------------------------------------


def parse_usernsexec(text: str, *, path: str | None = None) -> IDMapPair:
    """Read ``lxc-usernsexec -m`` values ``u|g|b:container:host:count`` into both maps.

    Values are separated by whitespace; a ``-m`` before a value (``-m b:0:1:2`` or
    ``-mb:0:1:2``) is skipped. lxc-usernsexec reads the numbers with ``sscanf("%ld")``
    and does not look past the count; userns takes plain digits and nothing after.

    >>> pair = parse_usernsexec("-m u:0:1000:1 -m b:1:100000:65536")
    >>> pair.uid.to_host(0), pair.gid.to_host(0, default=None), pair.gid.to_host(1)
    (1000, None, 100000)
    """
    toks: list[Token] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        for tok in _tokens(line, line=lineno):
            if tok.text == "-m":
                continue
            toks.append(tok.at(2, len(tok.text) - 2) if tok.text.startswith("-m") else tok)
    return typed_pair(toks, path, type_required=True, grammar="u|g|b:container:host:count")


def format_usernsexec(pair: IDMapPair) -> str:
    """``-m`` values: ``b:`` when both maps are equal, else ``u:`` values then ``g:``.

    >>> format_usernsexec(IDMapPair.both(IDMap.single(0, 100000, 65536)))
    'b:0:100000:65536'
    """
    return format_typed(pair)


# -- Incus raw.idmap ---------------------------------------------------------------

RawKind = Literal["both", "uid", "gid"]


def _raw_range(tok: Token, what: str, path: str | None) -> tuple[int, int]:
    """``N`` or ``first-last`` as ``(start, size)``."""
    parts = split_token(tok, "-")
    if len(parts) > 2:
        raise syntax(f"the {what} range {tok.text!r} is not 'N' or 'first-last'", tok, path)
    first = number(parts[0], f"first {what}" if len(parts) == 2 else what, path)
    if len(parts) == 1:
        return first, 1
    last = number(parts[1], f"last {what}", path)
    if last < first:
        raise invalid(f"the {what} range {tok.text!r} ends before it starts", tok, path,
                      "reversed-range")
    return first, last - first + 1


def _add_safe(rows: list[Row], new: Row, path: str | None) -> list[Row]:
    """Incus's ``AddSafe``: ``new`` takes over the container IDs of the rows it overlaps,
    which are split around it in place; overlapping host IDs are an error."""
    e = new.extent
    touched = False
    out: list[Row] = []
    for row in rows:
        old = row.extent
        if old.host_range.overlaps(e.host_range):
            raise invalid(
                f"{new.token.text!r} maps host IDs that {row.token.text!r} already maps",
                new.token, path, "overlap-host")
        if not old.container_range.overlaps(e.container_range):
            out.append(row)
            continue
        if old.container < e.container:
            out.append(Row(Extent(old.container, old.host, e.container - old.container),
                           row.token))
        if not touched:
            out.append(new)
            touched = True
        end, old_end = e.container + e.size, old.container + old.size
        if old_end > end:
            delta = end - old.container
            out.append(Row(Extent(end, old.host + delta, old_end - end), row.token))
    if not touched:
        out.append(new)
    return out


def parse_raw_idmap(text: str, *, path: str | None = None) -> IDMapPair:
    """Read an Incus ``raw.idmap`` value into the override extents for users and groups.

    Grammar per line: ``(both|uid|gid) SP host-range SP container-range`` with a range
    ``N`` or ``first-last``; empty lines are skipped.

    >>> parse_raw_idmap("uid 1000-1002 0-2\\ngid 50 50")
    IDMapPair(uid=IDMap([Extent(0, 1000, 3)]), gid=IDMap([Extent(50, 50, 1)]))
    """
    rows: dict[str, list[Row]] = {"uid": [], "gid": []}
    for lineno, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        whole = Token(line, lineno, 0, line)
        parts = split_token(whole, " ")
        if len(parts) != 3:
            raise syntax("expected 'both|uid|gid HOST CONTAINER', fields separated by one "
                         "space", whole, path)
        kind, host_tok, cont_tok = parts
        if kind.text not in ("both", "uid", "gid"):
            raise syntax(f"the type must be 'both', 'uid' or 'gid', found {kind.text!r}", kind,
                         path, reason="unknown-type")
        host, hsize = _raw_range(host_tok, "host ID", path)
        cont, csize = _raw_range(cont_tok, "container ID", path)
        if hsize != csize:
            raise invalid(f"the host range has {hsize} IDs and the container range {csize}",
                          whole, path, "size-mismatch")
        extent = check_extent(cont, host, hsize, whole, path, (cont_tok, host_tok, whole))
        for side in ("uid", "gid"):
            if kind.text in (side, "both"):
                rows[side] = _add_safe(rows[side], Row(extent, whole), path)
    return IDMapPair(build_map(rows["uid"], path), build_map(rows["gid"], path))


def _raw_line(kind: str, e: Extent) -> str:
    if e.size == 1:
        return f"{kind} {e.host} {e.container}"
    return f"{kind} {e.host}-{e.host + e.size - 1} {e.container}-{e.container + e.size - 1}"


def format_raw_idmap(pair: IDMapPair) -> str:
    """A ``raw.idmap`` value: ``both`` lines when the two maps are equal, else ``uid``
    lines then ``gid`` lines; no final newline (Incus config values have none).

    >>> format_raw_idmap(IDMapPair.both(IDMap([Extent(0, 1000, 3), Extent(50, 50, 1)])))
    'both 1000-1002 0-2\\nboth 50 50'
    """
    if pair.uid == pair.gid:
        return "\n".join(_raw_line("both", e) for e in pair.uid)
    return "\n".join([_raw_line("uid", e) for e in pair.uid]
                     + [_raw_line("gid", e) for e in pair.gid])


def apply_raw_idmap(base: IDMapPair, overrides: IDMapPair) -> IDMapPair:
    """``base`` with the ``raw.idmap`` ``overrides`` laid over it, as Incus does.

    Each map becomes ``base.override(*overrides)`` (sorted by container ID). Incus
    refuses an override whose host IDs the base map already hands out ("Host ID is in
    the range of subids"); so does this, with reason ``host-in-base``.

    >>> base = IDMapPair.both(IDMap.single(0, 1000000, 65536))
    >>> apply_raw_idmap(base, parse_raw_idmap("both 1000 1000")).uid
    IDMap([Extent(0, 1000000, 1000), Extent(1000, 1000, 1), Extent(1001, 1001001, 64535)])
    """
    maps: list[IDMap] = []
    for name, b, extra in (("uid", base.uid, overrides.uid), ("gid", base.gid, overrides.gid)):
        for e in extra:
            taken = b.host_ids() & e.host_range.to_set()
            if taken:
                raise InvalidMapError(
                    f"raw.idmap {name} extent '{e}' maps host IDs {taken.ranges[0]} that the "
                    "base map already hands out (Incus: Host ID is in the range of subids)",
                    reason="host-in-base")
        maps.append(b.override(*extra))
    return IDMapPair(maps[0], maps[1])
