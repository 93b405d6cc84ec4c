"""The ``idmap`` mount option of crun and Podman: ``idmap=uids=0-1-10#10-11-10;gids=0-100-10``.

Grammar (crun ``parse_idmapped_mount_option``, Podman ``parseIDMapMountOption``)::

    option = "idmap" [ "=" part *( ";" part ) ]
    part   = ( "uids=" | "gids=" ) range *( "#" range )
    range  = [ "@" ] fs-id "-" host-id "-" size

Each range is one line ``fs-id host-id size`` of the ``uid_map`` (or ``gid_map``) of the
user namespace the mount is idmapped with: here, ``Extent(fs-id, host-id, size)``, the
mapping Podman hands the runtime in the mount's ``uidMappings``. ``@`` makes the host ID
relative to the container: it is a container ID, translated through the container's own
map (``parent=``, an :class:`~userns.maps.IDMapPair`). Plain ``idmap``, or a kind not
named, takes the container's map: ``parent`` again, and an empty map without it.

Refused where the tools differ or say nothing: junk after a range (Podman's ``Sscanf``
ignores it, crun refuses it), signs, a size of 0, an ``@`` range whose IDs run past the
container extent its first ID is in (both tools translate the first ID only, so the rest
lands on unrelated host IDs; reason ``relative-overruns``), and ``+``, which neither tool
reads here (it is a Podman ``--uidmap`` flag).

>>> pair = parse_idmap_option("idmap=uids=0-1-10#10-11-10;gids=0-100-10")
>>> pair.uid.to_host(10), pair.gid.to_host(0)
(11, 100)
>>> format_idmap_option(pair)
'idmap=uids=0-1-10#10-11-10;gids=0-100-10'
"""

from __future__ import annotations

from ..maps import Extent, IDMap, IDMapPair  # noqa: F401  (Extent: doctests)
from ._text import Row, Token, build_map, check_extent, invalid, number, split_token, syntax

__all__ = ["format_idmap_option", "parse_idmap_option"]

_PREFIX = "idmap"


def _range(tok: Token, parent: IDMap | None, kind: str, path: str | None) -> Row:
    relative = tok.text.startswith("@")
    body = tok.at(1, len(tok.text) - 1) if relative else tok
    if body.text.startswith("+"):
        raise syntax("'+' is not read in an idmap= option (it is a Podman --uidmap flag); "
                     "use '@' for an ID of the container", body.at(0, 1), path,
                     reason="unknown-flag")
    parts = split_token(body, "-")
    if len(parts) != 3:
        raise syntax(f"{tok.text!r} is not '[@]fs-id-host-id-size'", tok, path)
    fs_id, host, size = (number(p, name, path) for p, name in
                         zip(parts, ("file system ID", "host ID", "count")))
    if relative:
        if parent is None:
            raise invalid(f"{tok.text!r}: an '@' host ID is a container ID; its translation "
                          "needs the container's map (pass parent=)", tok, path,
                          "needs-parent")
        found = next((e for e in parent if e.container <= host < e.container + e.size), None)
        if found is None:
            raise invalid(f"{tok.text!r}: container {kind} {host} is not in the container's "
                          f"map (crun: could not find a user namespace mapping for the "
                          "relative mapping)", tok, path, "unmapped-parent")
        if host + size > found.container + found.size:
            raise invalid(f"{tok.text!r}: the range runs past the container extent "
                          f"'{found}'; crun and Podman translate its first ID only, so the "
                          "rest would land on unrelated host IDs", tok, path,
                          "relative-overruns")
        host += found.host - found.container
    return Row(check_extent(fs_id, host, size, tok, path, parts), tok)


def parse_idmap_option(text: str, *, path: str | None = None,
                       parent: IDMapPair | None = None) -> IDMapPair:
    """Read an ``idmap`` mount option into the uid and gid maps of the mount.

    ``text`` is ``idmap``, ``idmap=…`` or the part after ``idmap=``; ``parent`` is the
    container's maps, for ``@`` ranges and kinds the option does not name.

    >>> parse_idmap_option("uids=@0-0-1", parent=IDMapPair.both(IDMap.single(0, 1000, 10)))
    IDMapPair(uid=IDMap([Extent(0, 1000, 1)]), gid=IDMap([Extent(0, 1000, 10)]))
    """
    line = text.rstrip("\n")
    if "\n" in line:
        at = line.index("\n")
        raise syntax("a mount option is one line", Token("\n", 1, at, line[:at]), path)
    whole = Token(line, 1, 0, line)
    body = whole
    if line == _PREFIX:
        if parent is None:
            raise invalid("plain 'idmap' uses the container's own maps (pass parent=)", whole,
                          path, "needs-parent")
        return parent
    if line.startswith(_PREFIX + "="):
        body = whole.at(len(_PREFIX) + 1, len(line) - len(_PREFIX) - 1)
    if not body.text:
        raise syntax("the idmap option is empty: expected uids=… and/or gids=…", body, path,
                     reason="empty")
    maps: dict[str, IDMap | None] = {"uids": None, "gids": None}
    for part in split_token(body, ";"):
        key, eq, _ = part.text.partition("=")
        if not eq or key not in maps:
            raise syntax(f"unknown option {part.text!r}: expected uids=… or gids=…", part,
                         path, reason="unknown-option")
        value = part.at(len(key) + 1, len(part.text) - len(key) - 1)
        if not value.text:
            raise syntax(f"{key}= has no range", part, path, reason="empty")
        parent_map = None if parent is None else (parent.uid if key == "uids" else parent.gid)
        kind = "uid" if key == "uids" else "gid"
        rows = [_range(tok, parent_map, kind, path) for tok in split_token(value, "#")]
        maps[key] = build_map(rows, path)  # a later uids= replaces, as in both tools
    uid, gid = maps["uids"], maps["gids"]
    if uid is None:
        uid = parent.uid if parent is not None else IDMap()
    if gid is None:
        gid = parent.gid if parent is not None else IDMap()
    return IDMapPair(uid, gid)


def _ranges(m: IDMap) -> str:
    return "#".join(f"{e.container}-{e.host}-{e.size}" for e in m)


def format_idmap_option(pair: IDMapPair) -> str:
    """``idmap=uids=…;gids=…`` (a kind whose map is empty is left out).

    >>> format_idmap_option(IDMapPair(IDMap([Extent(0, 1, 10)]), IDMap()))
    'idmap=uids=0-1-10'
    """
    parts = [f"{k}={_ranges(m)}" for k, m in (("uids", pair.uid), ("gids", pair.gid)) if m]
    return f"{_PREFIX}=" + ";".join(parts) if parts else _PREFIX
