"""kubelet's per-pod ``userns`` file: the user namespace it gave a pod (KEP-127).

kubelet writes ``<kubelet-dir>/pods/<pod-uid>/userns`` when it creates a pod with
``hostUsers: false``, with Go's ``json.Marshal`` (keys in this order, no spaces)::

    {"uidMappings":[{"hostId":H,"containerId":C,"length":L}],"gidMappings":[...]}

and reads it back with ``json.Unmarshal`` when it starts. Go's decoder matches keys
ignoring case, ignores unknown keys, reads a missing field as 0 and a missing list as
empty, lets ``null`` change nothing in a number, and decodes a repeated list INTO the
elements the first one left: that is how :func:`read_kubelet_userns` reads (kubelet's
own view of the file, used by :mod:`userns.kubelet`; checked against Go's own
``encoding/json`` on random texts in the tests). It refuses what Go refuses, anywhere in
the file: invalid JSON (reason ``json``), a value that does not fit a ``uint32``
(``not-uint32``, ``-0`` included), a list or mapping of another type, with a caret.

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

from ..errors import ParseError
from ..ids import ID_LIMIT
from ..maps import IDMap, IDMapPair
from ._text import Row, Token, build_map, check_extent, syntax
from .oci import _Arr, _Big, _decode, _describe, _Obj, _token

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


def _fold(name: str) -> str:
    """A key as Go's ``encoding/json`` compares it with an ASCII field name: ASCII case
    ignored, and the long s and the Kelvin sign taken as ``s`` and ``k``."""
    return "".join("s" if ch == "\u017f" else "k" if ch == "\u212a" else
                   ch.lower() if ch.isascii() else ch for ch in name)


_FIELD_OF = {_fold(k): k for k in _KEYS}
_LIST_OF = {_fold(k): k for k in _LISTS}


class _Decoder:
    """Go's ``json.Unmarshal`` into kubelet's ``userNamespace`` struct, step by step.

    Go keeps decoding after a value of the wrong type and returns the first such error at
    the end; ``null`` leaves a number as it was and empties a list; a second list under
    the same key is decoded INTO the first one's elements (Go reuses the slice), so a
    field the second object lacks keeps the first object's value.
    """

    def __init__(self, text: str, path: str | None) -> None:
        self.text = text
        self.path = path
        self.error: ParseError | None = None

    def fail(self, message: str, span: tuple[int, int], reason: str) -> None:
        if self.error is None:  # Go reports the first
            self.error = syntax(message, _token(self.text, *span), self.path, reason=reason)

    def number(self, value: Any, key: str, span: tuple[int, int]) -> int | None:
        name = _NAMES[key]
        raw = self.text[span[0]:span[1]]
        if isinstance(value, bool) or not isinstance(value, (int, float, _Big)):
            self.fail(f'"{key}" (the {name}) must be a uint32, found {_describe(value)}',
                      span, "not-uint32")
            return None
        if isinstance(value, int) and not raw.startswith("-") and 0 <= value < ID_LIMIT:
            return value
        self.fail(f'"{key}" (the {name}) must be a uint32 (0…4294967295), found {raw}',
                  span, "not-uint32")
        return None

    def element(self, item: Any, span: tuple[int, int], into: list[Any]) -> None:
        """Decode one array item into ``into`` = [host, container, length, present]."""
        if item is None:
            return  # Go: null leaves the struct as it is
        if not isinstance(item, _Obj):
            self.fail(f"a mapping must be an object with hostId, containerId and length, "
                      f"found {_describe(item)}", span, "not-an-object")
            return
        present: set[str] = set()
        for (key, value), vspan in zip(item, item.value_spans):
            field = _FIELD_OF.get(_fold(key))
            if field is None or value is None:
                continue
            got = self.number(value, field, vspan)
            if got is not None:
                into[_KEYS.index(field)] = got
                present.add(field)
        into[3] = present

    def array(self, value: Any, key: str, span: tuple[int, int],
              state: tuple[list[list[Any]], int]) -> tuple[list[list[Any]], int]:
        """Decode a list into the slice ``state`` = (backing array, length), as Go does."""
        backing, length = state
        if value is None:
            return [], 0
        if not isinstance(value, _Arr):
            self.fail(f'"{key}" must be an array of mappings, found {_describe(value)}',
                      span, "not-a-list")
            return backing, length
        i = 0
        for item, item_span in zip(value, value.item_spans):
            if i >= len(backing):  # grow: keep the first `length` elements, zero the rest
                cap = max(len(backing) + len(backing) // 2, 4)
                backing = [backing[j] if j < length else [0, 0, 0, set()]
                           for j in range(cap)]
            if i >= length:
                length = i + 1
            self.element(item, item_span, backing[i])
            i += 1
        if i == 0:
            return [], 0
        return backing, min(length, i)


def _mappings(state: tuple[list[list[Any]], int], spans: dict[int, Token],
              ) -> tuple[KubeletMapping, ...]:
    backing, length = state
    return tuple(KubeletMapping(e[0], e[1], e[2],
                                tuple(k for k in _KEYS if k not in e[3]), spans.get(i))
                 for i, e in enumerate(backing[:length]))


def read_kubelet_userns(text: str, *, path: str | None = None) -> KubeletUsernsFile:
    """Read a pod's ``userns`` file as kubelet's ``json.Unmarshal`` does.

    Grammar: ``{"uidMappings": [mapping...], "gidMappings": [mapping...]}`` with
    ``mapping = {"hostId": uint32, "containerId": uint32, "length": uint32}``; keys match
    ignoring case, missing fields are 0, ``null`` changes nothing in a number and empties
    a list, a repeated key decodes into what the first one left. Any value Go refuses
    (and Go refuses the whole file for one) is a :class:`ParseError` at that value.

    >>> read_kubelet_userns('null')
    KubeletUsernsFile(uid=(), gid=())
    """
    doc = _decode(text, path)
    if doc is None:
        return KubeletUsernsFile((), ())
    if not isinstance(doc, _Obj):
        raise syntax(f"a userns file must be a JSON object, found {_describe(doc)}",
                     _token(text, 0, len(text)), path, reason="not-an-object")
    dec = _Decoder(text, path)
    states: dict[str, tuple[list[list[Any]], int]] = {k: ([], 0) for k in _LISTS}
    spans: dict[str, dict[int, Token]] = {k: {} for k in _LISTS}
    for (key, value), vspan in zip(doc, doc.value_spans):
        field = _LIST_OF.get(_fold(key))
        if field is None:
            continue
        states[field] = dec.array(value, field, vspan, states[field])
        if isinstance(value, _Arr):
            for i, item_span in enumerate(value.item_spans):
                spans[field][i] = _token(text, *item_span)
    if dec.error is not None:
        raise dec.error
    return KubeletUsernsFile(_mappings(states["uidMappings"], spans["uidMappings"]),
                             _mappings(states["gidMappings"], spans["gidMappings"]))


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
