"""The ``X-mount.idmap=`` mount option of util-linux ``mount(8)`` (idmapped mounts).

Grammar (``libmount/src/hook_idmap.c``)::

    value   = mapping *( " " mapping )
    mapping = [ ("u" | "g" | "b") ":" ] id-mount ":" id-host ":" id-range
    (id-mount: the ID on disk; id-host: the ID seen through the mount)

``u`` makes a uid mapping, ``g`` a gid mapping, ``b`` or no prefix both. The names are
mount(8)'s; the meaning is the direction of the mount: the first ID is the one stored on
the filesystem (the container side of the map: :attr:`Extent.container`), the second the
ID seen through the mount (the host side: :attr:`Extent.host`). So ``u:1000:0:1`` shows
files that uid 1000 owns on disk as owned by 0, and a file made through the mount by 0
is stored as 1000 (``Documentation/filesystems/idmappings.rst``). libmount writes the uid
entries, in order, as the ``uid_map`` of a new user namespace and the gid entries as its
``gid_map``; a kind with no entry gets no map at all (every ID of that kind unmapped: an
empty :class:`IDMap` here, which Linux 6.9 and later refuse for a mount).

Accepted as well: a leading ``X-mount.idmap=``, and ``\\040`` between mappings (how
``/etc/fstab`` writes a space). Refused: the other form of the option, a path to a user
namespace file (``X-mount.idmap=/proc/PID/ns/user``; reason ``userns-path``), an empty
value (libmount fails with EINVAL), and what libmount lets through unchecked: junk after
a mapping (it uses ``sscanf`` without checking the end: ``0:0:1junk`` maps ``0:0:1``)
and signs (``sscanf("%u")`` reads ``-1`` as 4294967295).

>>> pair = parse_xmount("u:1000:0:1 g:1001:1:2 5000:1000:2")
>>> pair.uid
IDMap([Extent(1000, 0, 1), Extent(5000, 1000, 2)])
>>> pair.uid.to_host(1000)    # owned by 1000 on disk, seen as 0 through the mount
0
>>> format_xmount(IDMapPair.both(IDMap.single(0, 231072, 65536)))
'b:0:231072:65536'
"""

from __future__ import annotations

from ..maps import IDMap, IDMapPair  # noqa: F401  (IDMap: doctests)
from ._text import Token, format_typed, syntax, typed_pair
from ._text import tokens as _tokens

__all__ = ["format_xmount", "parse_xmount"]

_PREFIX = "X-mount.idmap="
_FSTAB_SPACE = "\\040"


def parse_xmount(text: str, *, path: str | None = None) -> IDMapPair:
    """Read an ``X-mount.idmap`` value into the uid and gid maps of the mount.

    >>> parse_xmount("X-mount.idmap=0:10000:1000").root
    (10000, 10000)
    """
    if "\n" in text.rstrip("\n"):
        line_end = text.index("\n")
        raise syntax("a mount option value is one line", Token(text[line_end:line_end + 1],
                     1, line_end, text[:line_end]), path)
    line = text.rstrip("\n").replace(_FSTAB_SPACE, "    ")  # same width: columns stay right
    shown = text.rstrip("\n")
    offset = len(_PREFIX) if line.startswith(_PREFIX) else 0
    body = line[offset:]
    stripped = body.lstrip(" \t")
    if stripped.startswith("/"):
        start = offset + len(body) - len(stripped)
        raise syntax("a user namespace file, not a mapping: this needs the namespace itself",
                     Token(stripped.rstrip(), 1, start, shown), path, reason="userns-path")
    toks = [Token(shown[t.start:t.end], t.line, t.start, shown)
            for t in _tokens(body, line=1, line_text=shown, separators=" ", offset=offset)]
    if not toks:
        raise syntax("the value is empty: mount fails with EINVAL",
                     Token("", 1, len(shown), shown), path, reason="empty")
    return typed_pair(toks, path, type_required=False,
                      grammar="[u|g|b:]id-mount:id-host:id-range")


def format_xmount(pair: IDMapPair) -> str:
    """The option value: ``b:`` entries when both maps are equal, else every ``u:``
    entry, then every ``g:`` entry, separated by spaces.

    >>> format_xmount(IDMapPair(IDMap.single(0, 1000, 1), IDMap.single(0, 2000, 1)))
    'u:0:1000:1 g:0:2000:1'
    """
    return format_typed(pair)
