"""CRI-O's pod annotation ``io.kubernetes.cri-o.userns-mode``: the maps it names, or why
it names none.

Grammar (CRI-O ``configureSandboxIDMappings``)::

    value   = mode [ ":" option *( ";" option ) ]
    mode    = "auto" | "private"
    option  = key "=" text         ; uidmapping, gidmapping, size, keep-id, map-to-root
    mapping = entry *( "," entry ), entry = [ triple *( ":" triple ) ]
    triple  = container ":" host ":" size

- ``private:uidmapping=…;gidmapping=…`` names the maps: read into an
  :class:`~userns.maps.IDMapPair` (one kind given: the other is the same, as CRI-O does).
- ``private`` alone takes the ``uid_mappings``/``gid_mappings`` of ``crio.conf``, and
  ``auto`` (``size=``, default 65536) has containers/storage allocate a range from the
  ``containers`` user's subordinate IDs when the sandbox is created: neither names a
  map, and both are refused with the reason (``crio-config-mappings``,
  ``auto-allocated``); the ``uidmapping``/``gidmapping`` of ``auto`` are only added to
  what is allocated.

CRI-O also adds the pod's ``runAsUser``/``runAsGroup`` and supplemental groups when a map
lacks them; a text does not carry those, so this reads the text alone. A leading
``io.kubernetes.cri-o.userns-mode:`` (or ``userns-mode.crio.io:``) and quotes are skipped.

>>> parse_crio("private:uidmapping=0:100000:65536").gid.to_host(0)
100000
>>> format_crio(parse_crio("private:uidmapping=0:100000:65536"))
'private:uidmapping=0:100000:65536;gidmapping=0:100000:65536'
"""

from __future__ import annotations

from ..errors import NotExpressibleError
from ..maps import IDMap, IDMapPair
from ._text import Row, Token, build_map, check_extent, invalid, number, split_token, syntax

__all__ = ["DEFAULT_AUTO_SIZE", "EXPRESSIBLE", "format_crio", "parse_crio"]

#: The size CRI-O gives an ``auto`` user namespace without ``size=``.
DEFAULT_AUTO_SIZE = 65536

_KEYS = ("io.kubernetes.cri-o.userns-mode", "userns-mode.crio.io")

#: What a ``private`` text can express, for the refusal of any other pair.
EXPRESSIBLE = "a uid map and a gid map, neither empty"


def _strip(line: str) -> int:
    """Where the value starts: past an annotation key and an opening quote."""
    start = 0
    for key in _KEYS:
        if line.startswith(key):
            rest = line[len(key):]
            sep = len(rest) - len(rest.lstrip(" :="))
            start = len(key) + sep
            break
    if line[start:start + 1] in ('"', "'"):
        start += 1
    return start


def _mappings(value: Token, what: str, path: str | None) -> IDMap | None:
    """The triples of one option, read as containers/storage's ``ParseIDMap`` reads them:
    an empty entry is skipped, an entry may hold several triples (``0:1:2:3:4:5``), and
    no triple at all is no map (``None``), as if the option were not given."""
    rows: list[Row] = []
    for tok in split_token(value, ","):
        if not tok.text:
            continue
        parts = split_token(tok, ":")
        if len(parts) % 3:
            raise syntax(f"{what} entry {tok.text!r} is not 'container:host:size'", tok, path)
        for i in range(0, len(parts), 3):
            triple = parts[i:i + 3]
            c, h, s = (number(p, name, path) for p, name in
                       zip(triple, ("container ID", "host ID", "count")))
            whole = tok.at(triple[0].start - tok.start, triple[2].end - triple[0].start)
            rows.append(Row(check_extent(c, h, s, whole, path, triple), whole))
    return build_map(rows, path) if rows else None


def parse_crio(text: str, *, path: str | None = None) -> IDMapPair:
    """Read a ``userns-mode`` annotation value into the maps it names.

    >>> parse_crio('io.kubernetes.cri-o.userns-mode: "private:gidmapping=0:5000:10"').uid
    IDMap([Extent(0, 5000, 10)])
    """
    line = text.strip("\n")
    if "\n" in line:
        at = line.index("\n")
        raise syntax("an annotation value is one line", Token("\n", 1, at, line[:at]), path)
    start = _strip(line)
    quote = line[start - 1] if start and line[start - 1] in "\"'" else ""
    end = len(line) - 1 if quote and len(line) > start and line.endswith(quote) else len(line)
    body = Token(line[start:end], 1, start, line)
    mode_text, colon, _ = body.text.partition(":")
    mode = body.at(0, len(mode_text))
    values: dict[str, Token] = {}
    if colon:
        for option in split_token(body.at(len(mode_text) + 1,
                                          len(body.text) - len(mode_text) - 1), ";"):
            key, eq, _ = option.text.partition("=")
            if not eq:
                raise syntax(f"invalid argument: {option.text!r} (expected key=value)",
                             option, path)
            values[key] = option.at(len(key) + 1, len(option.text) - len(key) - 1)
    if mode.text == "auto":
        size = values.get("size")
        n = DEFAULT_AUTO_SIZE if size is None else number(size, "size", path)
        extra = [k for k in ("uidmapping", "gidmapping") if k in values]
        more = f"; the {' and '.join(extra)} given are added to it" if extra else ""
        raise invalid(f"'auto' names no map: containers/storage allocates {n} IDs from the "
                      "subordinate ranges of the 'containers' user when the sandbox is "
                      f"created{more}; use 'private:uidmapping=…' for a fixed map", mode,
                      path, "auto-allocated")
    if mode.text != "private":
        raise syntax(f"invalid userns mode: {body.text!r} (CRI-O knows 'auto' and 'private')",
                     mode, path, reason="unknown-mode")
    unknown = [k for k in values if k not in ("uidmapping", "gidmapping")]
    if unknown:
        raise syntax(f"{unknown[0]!r} is not an option of 'private' (uidmapping, "
                     "gidmapping)", values[unknown[0]], path, reason="unknown-option")
    # An option whose value holds no triple (``uidmapping=``) is no map, as in CRI-O.
    uid = _mappings(values["uidmapping"], "uidmapping", path) if "uidmapping" in values else None
    gid = _mappings(values["gidmapping"], "gidmapping", path) if "gidmapping" in values else None
    if uid is None and gid is None:
        raise invalid("'private' without a uidmapping or gidmapping triple takes the "
                      "uid_mappings and gid_mappings of crio.conf: the text names no map",
                      mode, path, "crio-config-mappings")
    uid = gid if uid is None else uid
    gid = uid if gid is None else gid
    assert uid is not None and gid is not None
    return IDMapPair(uid, gid)


def _triples(m: IDMap) -> str:
    return ",".join(f"{e.container}:{e.host}:{e.size}" for e in m)


def format_crio(pair: IDMapPair) -> str:
    """``private:uidmapping=…;gidmapping=…``, both kinds always written.

    CRI-O reads a lone ``uidmapping`` (or ``gidmapping``) as the map of both kinds, and
    ``private`` with neither as crio.conf's maps, so a pair with an empty map has no text:
    :class:`~userns.errors.NotExpressibleError` (reason ``not-expressible``).

    >>> format_crio(IDMapPair(IDMap.single(0, 1000, 1), IDMap.single(0, 2000, 1)))
    'private:uidmapping=0:1000:1;gidmapping=0:2000:1'
    >>> try:
    ...     format_crio(IDMapPair(IDMap.single(0, 1000, 1), IDMap()))
    ... except NotExpressibleError as err:
    ...     print(err.reason, err.message.split("; ")[1])
    not-expressible this pair maps no group: CRI-O would map the groups as the users
    """
    if not pair.uid and not pair.gid:
        why = "both maps are empty: 'private' alone means crio.conf's maps"
    elif not pair.gid:
        why = "this pair maps no group: CRI-O would map the groups as the users"
    elif not pair.uid:
        why = "this pair maps no user: CRI-O would map the users as the groups"
    else:
        return f"private:uidmapping={_triples(pair.uid)};gidmapping={_triples(pair.gid)}"
    raise NotExpressibleError(f"CRI-O's userns-mode expresses {EXPRESSIBLE}; {why}",
                              format_name="crio")
