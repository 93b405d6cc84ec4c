"""Incus's ``volatile.idmap.next``, ``volatile.idmap.current`` and
``volatile.last_state.idmap``: the map of an instance as Incus stores it, in JSON.

Incus keeps the map it gave an instance as its ``idmap.Set``, marshalled by Go::

    [{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},
     {"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]

Each entry maps ``Maprange`` IDs from ``Nsid`` (inside) to ``Hostid`` (on the host), for
users (``Isuid``), groups (``Isgid``) or both. The fields are ``int64`` to Go; userns
reads them the way Go's ``encoding/json`` does (keys ignoring case, the last duplicate
wins, unknown keys skipped) and refuses what would not be a valid map: a missing number
(Go: 0; reason ``missing-field``), a value that is no ID or count (``not-an-id``), an
entry that is neither for users nor groups (``no-kind``), overlaps (``overlap-…``).
``null`` is the empty set, as Incus writes for a privileged instance.

>>> pair = parse_incus_idmap('[{"Isuid":true,"Isgid":true,"Hostid":1000000,"Nsid":0,'
...                          '"Maprange":65536}]')
>>> pair.root
(1000000, 1000000)
>>> format_incus_idmap(pair)
'[{"Isuid":true,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":65536}]'
"""

from __future__ import annotations

import json
from typing import Any

from ..ids import ID_LIMIT
from ..maps import IDMapPair
from ._text import Row, Token, build_map, check_extent, syntax
from .oci import _Arr, _Big, _decode, _describe, _lookup, _Obj, _token

__all__ = ["format_incus_idmap", "parse_incus_idmap"]

_NUMBERS = ("Hostid", "Nsid", "Maprange")
_NAMES = {"Hostid": "host ID", "Nsid": "container ID", "Maprange": "count"}


def _number(value: Any, key: str, span: tuple[int, int], text: str, path: str | None) -> int:
    tok = _token(text, *span)
    name = _NAMES[key]
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < ID_LIMIT:
            return value
        raise syntax(f'"{key}" (the {name}) must be within 0…4294967295: {value}', tok, path,
                     reason="not-an-id")
    if isinstance(value, (_Big, float)):
        raise syntax(f'"{key}" (the {name}) must be an integer ID, found {tok.text}', tok,
                     path, reason="not-an-id")
    raise syntax(f'"{key}" (the {name}) must be a number, found {_describe(value)}', tok,
                 path, reason="not-an-id")


def _flag(item: _Obj, key: str, text: str, path: str | None) -> bool:
    got = _lookup(item, key)
    if got is None or got[0] is None:
        return False  # Go: false
    if not isinstance(got[0], bool):
        raise syntax(f'"{key}" must be true or false, found {_describe(got[0])}',
                     _token(text, *got[1]), path, reason="not-a-bool")
    return got[0]


def parse_incus_idmap(text: str, *, path: str | None = None) -> IDMapPair:
    """Read an Incus idmap set (``volatile.idmap.next`` and the like) into both maps.

    Grammar: ``[ {"Isuid": bool, "Isgid": bool, "Hostid": int, "Nsid": int,
    "Maprange": int}, ... ]`` or ``null``.

    >>> parse_incus_idmap('null')
    IDMapPair(uid=IDMap([]), gid=IDMap([]))
    """
    doc = _decode(text, path)
    rows: dict[str, list[Row]] = {"uid": [], "gid": []}
    if doc is None:
        return IDMapPair(build_map([], path), build_map([], path))
    if not isinstance(doc, _Arr):
        raise syntax(f"an Incus idmap is a JSON array of entries, found {_describe(doc)}",
                     _token(text, 0, len(text)), path, reason="not-a-list")
    for item, span in zip(doc, doc.item_spans):
        tok = _token(text, *span)
        if not isinstance(item, _Obj):
            raise syntax(f"an entry must be an object with Isuid, Isgid, Hostid, Nsid and "
                         f"Maprange, found {_describe(item)}", tok, path,
                         reason="not-an-object")
        values: list[int] = []
        spots: list[Token] = []
        for key in ("Nsid", "Hostid", "Maprange"):
            got = _lookup(item, key)
            if got is None or got[0] is None:
                raise syntax(f'the entry has no "{key}" (Go would silently use 0)', tok, path,
                             reason="missing-field")
            values.append(_number(got[0], key, got[1], text, path))
            spots.append(_token(text, *got[1]))
        is_uid, is_gid = _flag(item, "Isuid", text, path), _flag(item, "Isgid", text, path)
        if not (is_uid or is_gid):
            raise syntax("the entry maps neither users nor groups (Isuid and Isgid are both "
                         "false)", tok, path, reason="no-kind")
        extent = check_extent(values[0], values[1], values[2], tok, path, spots)
        label = f"Nsid {extent.container}, Hostid {extent.host}, Maprange {extent.size}"
        for kind, wanted in (("uid", is_uid), ("gid", is_gid)):
            if wanted:
                rows[kind].append(Row(extent, tok, label))
    return IDMapPair(build_map(rows["uid"], path), build_map(rows["gid"], path))


def _entry(uid: bool, gid: bool, container: int, host: int, size: int) -> dict[str, Any]:
    return {"Isuid": uid, "Isgid": gid, "Hostid": host, "Nsid": container, "Maprange": size}


def format_incus_idmap(pair: IDMapPair) -> str:
    """The set as Incus marshals it: entries for both kinds when the uid and gid maps are
    equal, else the uid entries then the gid entries; compact JSON, Go's key order.

    >>> from userns.maps import IDMap
    >>> format_incus_idmap(IDMapPair(IDMap.single(0, 1000, 1), IDMap()))
    '[{"Isuid":true,"Isgid":false,"Hostid":1000,"Nsid":0,"Maprange":1}]'
    """
    if pair.uid == pair.gid:
        entries = [_entry(True, True, e.container, e.host, e.size) for e in pair.uid]
    else:
        entries = [_entry(True, False, e.container, e.host, e.size) for e in pair.uid]
        entries += [_entry(False, True, e.container, e.host, e.size) for e in pair.gid]
    return json.dumps(entries, separators=(",", ":"))
