"""kubelet's per-pod ``userns`` file: the user namespace it gave a pod (KEP-127).

kubelet writes ``<kubelet-dir>/pods/<pod-uid>/userns`` when it creates a pod with
``hostUsers: false``, with Go's ``json.Marshal`` (keys in this order, no spaces)::

    {"uidMappings":[{"hostId":H,"containerId":C,"length":L}],"gidMappings":[...]}

and reads it back with ``json.Unmarshal`` when it starts. Go's decoder matches keys
ignoring case, keeps the last of duplicate keys, ignores unknown keys, and turns a
missing or ``null`` field into 0 and a missing list into an empty one: that is how
:func:`read_kubelet_userns` reads (kubelet's own view of the file, used by
:mod:`userns.kubelet`). It refuses what Go refuses: invalid JSON (reason ``json``) and a
value that does not fit a ``uint32`` (reason ``not-uint32``), with a caret under it.

As a map format (:func:`parse_kubelet_userns`, registry name ``kubelet``), a missing
field is refused instead (reason ``missing-field``): Go would silently read 0, which
maps container root to host root for a forgotten ``hostId``.

>>> pair = parse_kubelet_userns('{"uidMappings":[{"hostId":65536,"containerId":0,'
...                             '"length":65536}],"gidMappings":[{"hostId":65536,'
...                             '"containerId":0,"length":65536}]}')
>>> pair.root
(65536, 65536)
>>> format_kubelet_userns(pair) == ('{"uidMappings":[{"hostId":65536,"containerId":0,'
...                                 '"length":65536}],"gidMappings":[{"hostId":65536,'
...                                 '"containerId":0,"length":65536}]}')
True
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ..ids import ID_LIMIT
from ..maps import IDMap, IDMapPair
from ._text import Row, Token, build_map, check_extent, syntax
from .oci import _Arr, _Big, _decode, _describe, _lookup, _Obj, _token

__all__ = [
    "KubeletMapping",
    "KubeletUsernsFile",
    "format_kubelet_userns",
    "parse_kubelet_userns",
    "read_kubelet_userns",
]

_KEYS = ("hostId", "containerId", "length")
_NAMES = {"hostId": "host ID", "containerId": "container ID", "length": "count"}
_LISTS = ("uidMappings", "gidMappings")


@attrs.frozen
class KubeletMapping:
    """One ``{"hostId", "containerId", "length"}`` object as Go decodes it.

    ``missing`` names the fields the object did not have (Go read them as 0);
    ``token`` is the object's text, for a caret.
    """

    host_id: int
    container_id: int
    length: int
    missing: tuple[str, ...] = ()
    token: Token | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class KubeletUsernsFile:
    """A pod's ``userns`` file as kubelet's ``json.Unmarshal`` leaves it.

    >>> f = read_kubelet_userns('{"uidMappings": [{"hostId": 65536, "length": 65536}]}')
    >>> f.uid[0].container_id, f.uid[0].missing, f.gid
    (0, ('containerId',), ())
    """

    uid: tuple[KubeletMapping, ...]
    gid: tuple[KubeletMapping, ...]


def _uint32(value: Any, key: str, span: tuple[int, int], text: str, path: str | None) -> int:
    tok = _token(text, *span)
    name = _NAMES[key]
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < ID_LIMIT:
            return value
        raise syntax(f'"{key}" (the {name}) must be a uint32 (0…4294967295): {value}', tok,
                     path, reason="not-uint32")
    if isinstance(value, (_Big, float)):
        raise syntax(f'"{key}" (the {name}) must be a uint32 (0…4294967295), '
                     f"found {tok.text}", tok, path, reason="not-uint32")
    raise syntax(f'"{key}" (the {name}) must be a uint32, found {_describe(value)}', tok,
                 path, reason="not-uint32")


def _mapping_list(got: tuple[Any, tuple[int, int]] | None, key: str, text: str,
                  path: str | None) -> tuple[KubeletMapping, ...]:
    if got is None or got[0] is None:
        return ()
    value, span = got
    if not isinstance(value, _Arr):
        raise syntax(f'"{key}" must be an array of mappings, found {_describe(value)}',
                     _token(text, *span), path, reason="not-a-list")
    out: list[KubeletMapping] = []
    for item, item_span in zip(value, value.item_spans):
        tok = _token(text, *item_span)
        if item is None:
            out.append(KubeletMapping(0, 0, 0, _KEYS, tok))  # Go: a zero struct
            continue
        if not isinstance(item, _Obj):
            raise syntax(f"a mapping must be an object with hostId, containerId and length, "
                         f"found {_describe(item)}", tok, path, reason="not-an-object")
        fields: dict[str, int] = {}
        missing: list[str] = []
        for k in _KEYS:
            found = _lookup(item, k)
            if found is None or found[0] is None:
                fields[k] = 0
                missing.append(k)
            else:
                fields[k] = _uint32(found[0], k, found[1], text, path)
        out.append(KubeletMapping(fields["hostId"], fields["containerId"], fields["length"],
                                  tuple(missing), tok))
    return tuple(out)


def read_kubelet_userns(text: str, *, path: str | None = None) -> KubeletUsernsFile:
    """Read a pod's ``userns`` file as kubelet's ``json.Unmarshal`` does.

    Grammar: ``{"uidMappings": [mapping...], "gidMappings": [mapping...]}`` with
    ``mapping = {"hostId": uint32, "containerId": uint32, "length": uint32}``; keys match
    ignoring case, missing fields are 0, ``null`` is the zero value.

    >>> read_kubelet_userns('null')
    KubeletUsernsFile(uid=(), gid=())
    """
    doc = _decode(text, path)
    if doc is None:
        return KubeletUsernsFile((), ())
    if not isinstance(doc, _Obj):
        raise syntax(f"a userns file must be a JSON object, found {_describe(doc)}",
                     _token(text, 0, len(text)), path, reason="not-an-object")
    uid, gid = (_mapping_list(_lookup(doc, key), key, text, path) for key in _LISTS)
    return KubeletUsernsFile(uid, gid)


def _strict_map(mappings: tuple[KubeletMapping, ...], path: str | None) -> IDMap:
    rows: list[Row] = []
    for m in mappings:
        tok = m.token or Token("", 1, 0, "")
        if m.missing:
            raise syntax(f'the mapping has no "{m.missing[0]}" (Go would silently use 0)', tok,
                         path, reason="missing-field")
        extent = check_extent(m.container_id, m.host_id, m.length, tok, path)
        label = f"hostId {m.host_id}, containerId {m.container_id}, length {m.length}"
        rows.append(Row(extent, tok, label))
    return build_map(rows, path)


def parse_kubelet_userns(text: str, *, path: str | None = None) -> IDMapPair:
    """Read a ``userns`` file into the uid and gid maps it gives the pod.

    Every field must be present (reason ``missing-field`` otherwise) and every mapping a
    valid extent; a missing list is an empty map.

    >>> parse_kubelet_userns('{"uidMappings": [{"hostId": 1, "containerId": 0, '
    ...                      '"length": 1}]}').gid
    IDMap([])
    """
    f = read_kubelet_userns(text, path=path)
    return IDMapPair(_strict_map(f.uid, path), _strict_map(f.gid, path))


def _objects(idmap: IDMap) -> list[dict[str, int]]:
    return [{"hostId": e.host, "containerId": e.container, "length": e.size} for e in idmap]


def format_kubelet_userns(pair: IDMapPair) -> str:
    """The file as kubelet writes it: Go's ``json.Marshal``, keys in kubelet's order.

    >>> format_kubelet_userns(IDMapPair.both(IDMap.single(0, 131072, 65536)))[:46]
    '{"uidMappings":[{"hostId":131072,"containerId"'
    """
    doc = {"uidMappings": _objects(pair.uid), "gidMappings": _objects(pair.gid)}
    return json.dumps(doc, separators=(",", ":"))
