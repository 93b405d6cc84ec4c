"""OCI runtime-spec ID mappings: ``linux.uidMappings`` and ``linux.gidMappings`` JSON.

A mapping list is a JSON array of objects ``{"containerID": C, "hostID": H, "size": S}``
(each a ``uint32``); a whole ``config.json`` carries one list for users and one for
groups under ``"linux"``. runc, crun and youki read them with Go's ``encoding/json`` or
its equivalents, and userns reads them the way Go does where that is safe:

- keys match case-insensitively, the last of duplicate keys wins, unknown keys are
  ignored; ``null`` or a missing list is an empty map;

and refuses what Go would silently turn into something else:

- a missing or ``null`` field (Go uses 0: a forgotten ``"size"`` is a size-0 mapping the
  kernel refuses later, a forgotten ``"containerID"`` quietly maps container root):
  reason ``missing-field``;
- a number that is not a ``uint32`` (negative, fractional, ``1e3``, too large), a string,
  a boolean: reason ``not-uint32``; JSON syntax errors: reason ``json``.

Every error carries the line and column in the JSON text and a caret under the value.

>>> parse_oci_mappings('[{"containerID": 0, "hostID": 231072, "size": 65536}]')
IDMap([Extent(0, 231072, 65536)])
>>> format_oci_mappings(IDMap.single(0, 231072, 65536))
'[{"containerID": 0, "hostID": 231072, "size": 65536}]'
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from collections.abc import Callable
from typing import Any

from ..ids import ID_LIMIT
from ..maps import IDMap, IDMapPair
from ._text import Row, Token, build_map, check_extent, syntax

__all__ = [
    "format_oci_config",
    "format_oci_mappings",
    "idmap_from_oci",
    "idmap_to_oci",
    "parse_oci_config",
    "parse_oci_mappings",
]

_KEYS = ("containerID", "hostID", "size")
_FIELD_NAMES = dict(zip(_KEYS, ("container ID", "host ID", "count")))


# -- a JSON reader that remembers where every object, array and value was -------------


class _Obj(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs in order, with the span of each value."""

    span: tuple[int, int] = (0, 0)
    value_spans: list[tuple[int, int]]


class _Arr(list[Any]):
    """A JSON array, with the span of each item."""

    span: tuple[int, int] = (0, 0)
    item_spans: list[tuple[int, int]]


class _Big(str):
    """An integer literal too long to convert (Python limits int() on long digit strings)."""

    __slots__ = ()


class _BadConstant(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _parse_int(text: str) -> int | _Big:
    return int(text) if len(text) <= 40 else _Big(text)


def _bad_constant(name: str) -> Any:
    raise _BadConstant(name)


class _Context:
    """What ``json.scanner.py_make_scanner`` reads off a decoder, with recording hooks."""

    def __init__(self) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = _Obj
        self.parse_float = float
        self.parse_int = _parse_int
        self.parse_constant = _bad_constant
        self.memo: dict[str, str] = {}
        self.parse_string = json.decoder.scanstring  # type: ignore[attr-defined]
        self.parse_object = self._object
        self.parse_array = self._array
        self.scan_once: Callable[[str, int], tuple[Any, int]] = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]

    @staticmethod
    def _recording(
        scan_once: Callable[[str, int], tuple[Any, int]], spans: list[tuple[int, int]]
    ) -> Callable[[str, int], tuple[Any, int]]:
        def scan(s: str, idx: int) -> tuple[Any, int]:
            value, end = scan_once(s, idx)
            spans.append((idx, end))
            return value, end

        return scan

    def _object(self, s_and_end: tuple[str, int], strict: bool,
                scan_once: Callable[[str, int], tuple[Any, int]], object_hook: Any,
                object_pairs_hook: Any, memo: Any = None) -> tuple[Any, int]:
        spans: list[tuple[int, int]] = []
        result, end = json.decoder.JSONObject(  # type: ignore[attr-defined]
            s_and_end, strict, self._recording(scan_once, spans), object_hook,
            object_pairs_hook, memo)
        if not isinstance(result, _Obj):  # "{}" takes a shortcut past the hook
            result = _Obj(result.items() if isinstance(result, dict) else result)
        result.span = (s_and_end[1] - 1, end)
        result.value_spans = spans
        return result, end

    def _array(self, s_and_end: tuple[str, int],
               scan_once: Callable[[str, int], tuple[Any, int]]) -> tuple[Any, int]:
        spans: list[tuple[int, int]] = []
        values, end = json.decoder.JSONArray(  # type: ignore[attr-defined]
            s_and_end, self._recording(scan_once, spans))
        result = _Arr(values)
        result.span = (s_and_end[1] - 1, end)
        result.item_spans = spans
        return result, end


def _token(text: str, start: int, end: int) -> Token:
    """The span ``[start, end)`` of ``text`` as a token on its first line."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    if line_end < 0:
        line_end = len(text)
    end = max(min(end, line_end), start)
    return Token(text[start:end], text.count("\n", 0, start) + 1, start - line_start,
                 text[line_start:line_end])


def _decode(text: str, path: str | None) -> Any:
    if not isinstance(text, str):
        raise TypeError(f"JSON text must be a str, not {type(text).__name__}")
    ctx = _Context()
    ws = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]
    idx = ws(text, 0).end()
    try:
        try:
            value, end = ctx.scan_once(text, idx)
        except StopIteration as stop:
            raise json.JSONDecodeError("Expecting value", text, stop.value) from None
        end = ws(text, end).end()
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as err:
        tok = _token(text, err.pos, err.pos + 1)
        raise syntax(f"invalid JSON: {err.msg}", tok, path, reason="json") from None
    except _BadConstant as err:
        pos = max(text.find(err.name), 0)
        tok = _token(text, pos, pos + len(err.name))
        raise syntax(f"invalid JSON: {err.name} is not a JSON value", tok, path,
                     reason="json") from None
    except RecursionError:
        raise syntax("invalid JSON: nested too deeply", _token(text, idx, idx + 1), path,
                     reason="json") from None
    return value


def _lookup(obj: _Obj, key: str) -> tuple[Any, tuple[int, int]] | None:
    """The value of ``key`` as Go's encoding/json picks it: the last pair whose key is
    ``key`` or equal to it ignoring case."""
    want = key.casefold()
    found: tuple[Any, tuple[int, int]] | None = None
    for (k, v), span in zip(obj, obj.value_spans):
        if k == key or k.casefold() == want:
            found = (v, span)
    return found


def _describe(value: Any) -> str:
    if isinstance(value, _Obj):
        return "an object"
    if isinstance(value, _Arr):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str) and not isinstance(value, _Big):
        return "a string"
    if value is None:
        return "null"
    return "a number"


def _uint32(value: Any, key: str, span: tuple[int, int], text: str, path: str | None) -> int:
    tok = _token(text, *span)
    name = _FIELD_NAMES[key]
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


def _mappings(value: Any, span: tuple[int, int], text: str, path: str | None,
              where: str) -> IDMap:
    if value is None:
        return IDMap()
    if not isinstance(value, _Arr):
        raise syntax(f"{where} must be an array of mappings, found {_describe(value)}",
                     _token(text, *span), path, reason="not-a-list")
    rows: list[Row] = []
    for item, item_span in zip(value, value.item_spans):
        tok = _token(text, *item_span)
        if not isinstance(item, _Obj):
            raise syntax(f"a mapping must be an object with containerID, hostID and size, "
                         f"found {_describe(item)}", tok, path, reason="not-an-object")
        fields: list[int] = []
        spots: list[Token] = []
        for key in _KEYS:
            got = _lookup(item, key)
            if got is None or got[0] is None:
                raise syntax(f'the mapping has no "{key}" (Go would silently use 0)', tok,
                             path, reason="missing-field")
            fields.append(_uint32(got[0], key, got[1], text, path))
            spots.append(_token(text, *got[1]))
        extent = check_extent(fields[0], fields[1], fields[2], tok, path, spots)
        label = f"containerID {extent.container}, hostID {extent.host}, size {extent.size}"
        rows.append(Row(extent, tok, label))
    return build_map(rows, path)


def parse_oci_mappings(text: str, *, path: str | None = None) -> IDMap:
    """Read a ``uidMappings``/``gidMappings`` JSON array into an :class:`IDMap`.

    Grammar: ``[ {"containerID": uint32, "hostID": uint32, "size": uint32}, ... ]``
    (``null`` is the empty map). The order of the array is kept.

    >>> parse_oci_mappings('[{"containerID":0,"hostID":1000,"size":1}]').to_host(0)
    1000
    """
    value = _decode(text, path)
    span = value.span if isinstance(value, (_Obj, _Arr)) else (0, len(text))
    return _mappings(value, span, text, path, "the mapping list")


def parse_oci_config(text: str, *, path: str | None = None) -> IDMapPair:
    """Read a whole runtime-spec ``config.json`` into the uid and gid maps it asks for.

    Only ``linux.uidMappings`` and ``linux.gidMappings`` are read; a missing one is an
    empty map (no user namespace mapping of that kind).

    >>> text = '{"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}}'
    >>> parse_oci_config(text)
    IDMapPair(uid=IDMap([Extent(0, 1000, 1)]), gid=IDMap([]))
    """
    doc = _decode(text, path)
    if not isinstance(doc, _Obj):
        raise syntax(f"a config.json must be a JSON object, found {_describe(doc)}",
                     _token(text, 0, len(text)), path, reason="not-an-object")
    linux = _lookup(doc, "linux")
    if linux is None or linux[0] is None:
        return IDMapPair(IDMap(), IDMap())
    if not isinstance(linux[0], _Obj):
        raise syntax(f'"linux" must be an object, found {_describe(linux[0])}',
                     _token(text, *linux[1]), path, reason="not-an-object")
    maps: list[IDMap] = []
    for key in ("uidMappings", "gidMappings"):
        got = _lookup(linux[0], key)
        maps.append(IDMap() if got is None else
                    _mappings(got[0], got[1], text, path, f'"linux.{key}"'))
    return IDMapPair(maps[0], maps[1])


def idmap_to_oci(idmap: IDMap) -> list[dict[str, int]]:
    """The map as runtime-spec mapping objects, ready for ``json.dumps``.

    >>> idmap_to_oci(IDMap.single(0, 1000, 1))
    [{'containerID': 0, 'hostID': 1000, 'size': 1}]
    """
    return [{"containerID": e.container, "hostID": e.host, "size": e.size} for e in idmap]


def idmap_from_oci(mappings: object) -> IDMap:
    """The map of already-decoded runtime-spec mapping objects (``json.load`` output).

    >>> idmap_from_oci([{"containerID": 0, "hostID": 1000, "size": 1}])
    IDMap([Extent(0, 1000, 1)])
    """
    return parse_oci_mappings(json.dumps(mappings))


def format_oci_mappings(idmap: IDMap, *, indent: int | None = None) -> str:
    """The JSON array for ``uidMappings``/``gidMappings`` (one line unless ``indent``)."""
    return json.dumps(idmap_to_oci(idmap), indent=indent)


def format_oci_config(pair: IDMapPair, *, indent: int | None = 2) -> str:
    """A minimal ``config.json`` fragment holding both maps under ``"linux"``.

    >>> print(format_oci_config(IDMapPair.both(IDMap.single(0, 1000, 1)), indent=None))
    {"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}], \
"gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}}
    """
    doc = {"linux": {"uidMappings": idmap_to_oci(pair.uid),
                     "gidMappings": idmap_to_oci(pair.gid)}}
    return json.dumps(doc, indent=indent)
