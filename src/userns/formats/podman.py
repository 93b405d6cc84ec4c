"""Podman's ``--uidmap`` / ``--gidmap`` values: ``0:100000:65536``, with its extensions.

Grammar of one value, as Podman 5 reads it (``pkg/util.ParseIDMap``)::

    value   = triple *( ":" triple ) | flags cid ":" host        ; size 1
    triple  = flags cid ":" host ":" size
    flags   = *( "+" | "u" | "g" )
    host    = [ "@" ] uint32

A text holds one or more values separated by whitespace, as if each was given to its own
``--uidmap``. Numbers are base 10 (leading zeros are decimal, as Go's ``ParseUint``).

- ``u`` / ``g``: the triple applies to the uid map only / the gid map only (Podman uses
  the ``--uidmap`` values for groups too when no ``--gidmap`` is given, which is when
  these flags matter). No flag, or both, means both maps.
- ``@``: the host ID is an ID of the *host*, not of the rootless user namespace Podman
  runs in; it is translated through that namespace's map (``parent=``).
- ``+``: the triple takes precedence: what it maps is cut out of the triples before it
  on both sides (Podman's ``breakInsert``), then it is added.

The flags, ``@`` and the two-field form came with Podman 4.7; older Podman (4.3 in
Debian 12) reads plain triples only, which this reads the same way.

Not supported, on purpose: a size of 0 (Podman skips the triple silently; refused here,
reason ``zero-count``), and the rootless "fill the rest" Podman does after a ``+`` when
no other mapping is given (it needs the user's ``/etc/subuid`` ranges: see
``userns.runtimes``). Podman sorts the final map by container ID and merges contiguous
extents; :func:`podman_idmap` keeps the order written, and ``.normalized()`` gives what
Podman passes to the runtime.

>>> parse_podman("0:100000:65536")
IDMap([Extent(0, 100000, 65536)])
>>> pair = parse_podman_pair("u0:1000:1 g0:2000:1")
>>> pair.root
(1000, 2000)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

from ..errors import InvalidMapError
from ..maps import Extent, IDMap, IDMapPair
from ..ranges import IDRange
from ._text import Row, Token, build_map, check_extent, invalid, number, split_token, syntax
from ._text import tokens as _tokens

__all__ = [
    "PodmanMapping",
    "format_podman",
    "format_podman_pair",
    "parse_podman",
    "parse_podman_mappings",
    "parse_podman_pair",
    "podman_idmap",
]

Kind = Literal["uid", "gid"]


@attrs.frozen
class PodmanMapping:
    """One Podman triple with its flags, as written.

    ``only`` is ``"uid"`` or ``"gid"`` for a ``u``/``g`` flag, ``None`` for both maps;
    ``host_in_parent`` is the ``@`` prefix; ``extends`` the ``+`` flag.

    >>> str(PodmanMapping(0, 1000, 1, only="uid", extends=True))
    '+u0:1000:1'
    """

    container: int
    host: int
    size: int
    only: Kind | None = None
    host_in_parent: bool = False
    extends: bool = False
    token: Token | None = attrs.field(default=None, eq=False, repr=False)

    def __str__(self) -> str:
        flags = ("+" if self.extends else "") + ("u" if self.only == "uid" else
                                                 "g" if self.only == "gid" else "")
        at = "@" if self.host_in_parent else ""
        return f"{flags}{self.container}:{at}{self.host}:{self.size}"

    def applies_to(self, kind: Kind) -> bool:
        """True when this triple is part of the ``kind`` map."""
        return self.only is None or self.only == kind


def _flags(tok: Token, path: str | None) -> tuple[int, Kind | None, bool]:
    """How many flag characters start ``tok``, the u/g restriction and the ``+`` flag."""
    user = group = extends = False
    i = 0
    for i, ch in enumerate(tok.text):
        if ch.isdigit():
            break
        if ch == "+":
            extends = True
        elif ch == "u":
            user = True
        elif ch == "g":
            group = True
        else:
            raise syntax(f"unknown flag {ch!r} before the container ID (Podman knows "
                         "'+', 'u' and 'g')", tok.at(i, 1), path, reason="unknown-flag")
    else:
        i = len(tok.text)
    only: Kind | None = "uid" if user and not group else "gid" if group and not user else None
    return i, only, extends


def _triple(parts: Sequence[Token], whole: Token, path: str | None) -> PodmanMapping:
    cid_tok, host_tok, size_tok = parts
    skip, only, extends = _flags(cid_tok, path)
    container = number(cid_tok.at(skip, len(cid_tok.text) - skip), "container ID", path)
    in_parent = host_tok.text.startswith("@")
    host = number(host_tok.at(1, len(host_tok.text) - 1) if in_parent else host_tok,
                  "host ID", path)
    size = number(size_tok, "count", path)
    span = Token(whole.line_text[cid_tok.start:size_tok.end], whole.line, cid_tok.start,
                 whole.line_text)
    check_extent(container, host, size, span, path, parts)
    return PodmanMapping(container, host, size, only, in_parent, extends, span)


def parse_podman_mappings(text: str, *, path: str | None = None) -> tuple[PodmanMapping, ...]:
    """Read ``--uidmap`` values into their triples, flags kept, nothing resolved yet.

    An empty text is no mapping at all, as an empty ``--uidmap`` is to Podman.

    >>> parse_podman_mappings("0:1:1000:1000:0:1 +u5:@2000")
    (PodmanMapping(container=0, host=1, size=1000, only=None, host_in_parent=False, \
extends=False), PodmanMapping(container=1000, host=0, size=1, only=None, \
host_in_parent=False, extends=False), PodmanMapping(container=5, host=2000, size=1, \
only='uid', host_in_parent=True, extends=True))
    """
    return _mappings(_all_tokens(text), path)


def _all_tokens(text: str) -> list[Token]:
    return [tok for lineno, line in enumerate(text.split("\n"), 1)
            for tok in _tokens(line, line=lineno)]


def _mappings(toks: Iterable[Token], path: str | None) -> tuple[PodmanMapping, ...]:
    out: list[PodmanMapping] = []
    for tok in toks:
        parts = split_token(tok, ":")
        if len(parts) == 2:
            # Podman: "container:host" maps one ID.
            parts.append(Token("1", tok.line, tok.end, tok.line_text))
            implicit = True
        else:
            implicit = False
        if len(parts) % 3:
            raise syntax(f"{tok.text!r} is not 'container:host:size' (or several of "
                         "them joined by ':')", tok, path)
        for i in range(0, len(parts), 3):
            m = _triple(parts[i:i + 3], tok, path)
            if implicit:
                m = attrs.evolve(m, token=tok)
            out.append(m)
    return tuple(out)


def _through_parent(m: PodmanMapping, parent: IDMap | None, path: str | None) -> list[Extent]:
    """``m`` with its ``@`` host IDs translated into the parent namespace's IDs."""
    tok = m.token or Token(str(m), 1, 0, str(m))
    if parent is None:
        raise invalid(f"'{m}': an '@' host ID needs the map of the namespace Podman runs in "
                      "(pass parent=)", tok, path, "needs-parent")
    wanted = IDRange(m.host, m.size)
    pieces = parent.restrict(wanted, side="host")
    if pieces.size != m.size:
        missing = wanted.to_set() - pieces.host_ids()
        raise invalid(f"'{m}': host ID {missing.ranges[0].start} is not mapped into the "
                      "namespace Podman runs in", tok, path, "unmapped-parent")
    return sorted((Extent(m.container + (e.host - m.host), e.container, e.size)
                   for e in pieces), key=lambda e: e.container)


def podman_idmap(mappings: Iterable[PodmanMapping], kind: Kind = "uid", *,
                 parent: IDMap | None = None, path: str | None = None) -> IDMap:
    """The ``kind`` map Podman builds from ``mappings``, in the order written.

    ``parent`` is the map of the rootless user namespace Podman runs in (container side:
    its IDs; host side: the host's), needed only for ``@`` host IDs.

    >>> ms = parse_podman_mappings("0:100000:65536 +1000:@1000:1")
    >>> podman_idmap(ms, parent=IDMap([Extent(0, 1000, 1), Extent(1, 100000, 65536)]))
    IDMap([Extent(0, 100000, 1000), Extent(1000, 0, 1), Extent(1001, 101001, 64535)])
    """
    rows: list[Row] = []
    for m in mappings:
        if not m.applies_to(kind):
            continue
        tok = m.token or Token(str(m), 1, 0, str(m))
        extents = (_through_parent(m, parent, path) if m.host_in_parent
                   else [Extent(m.container, m.host, m.size)])
        if m.extends:
            try:
                base = IDMap(r.extent for r in rows)
                merged = base.override(*extents)
            except InvalidMapError as err:
                raise invalid(f"'{m}': {err.message}", tok, path, err.reason) from None
            rows = [Row(e, tok) for e in merged]
        else:
            rows.extend(Row(e, tok) for e in extents)
    return build_map(rows, path)


def parse_podman(text: str, *, path: str | None = None, kind: Kind = "uid",
                 parent: IDMap | None = None) -> IDMap:
    """Read ``--uidmap`` (``kind="uid"``) or ``--gidmap`` values into the map Podman uses.

    >>> parse_podman("0:1:1000 1000:0:1 1001:1001:64535").to_host(1000)
    0
    """
    return podman_idmap(parse_podman_mappings(text, path=path), kind, parent=parent, path=path)


def _options(toks: list[Token], path: str | None) -> tuple[list[Token], list[Token]]:
    """The values of ``--uidmap``/``--gidmap`` options (``--uidmap=V`` or ``--uidmap V``)."""
    values: dict[str, list[Token]] = {"--uidmap": [], "--gidmap": []}
    i = 0
    while i < len(toks):
        tok = toks[i]
        name, eq, _ = tok.text.partition("=")
        if name not in values:
            raise syntax(f"expected --uidmap or --gidmap, found {tok.text!r}", tok, path,
                         reason="unknown-option")
        if eq:
            values[name].append(tok.at(len(name) + 1, len(tok.text) - len(name) - 1))
        elif i + 1 < len(toks):
            i += 1
            values[name].append(toks[i])
        else:
            raise syntax(f"{name} needs a value", tok, path)
        i += 1
    return values["--uidmap"], values["--gidmap"]


def parse_podman_pair(text: str, *, path: str | None = None,
                      parent: IDMapPair | None = None) -> IDMapPair:
    """Both maps Podman builds from ``--uidmap``/``--gidmap`` values.

    ``text`` is either bare values, read as ``--uidmap`` values alone (groups follow
    users, except for triples flagged ``u`` or ``g``), or options
    ``--uidmap=V`` / ``--uidmap V`` / ``--gidmap …``. As in Podman, a kind with no option
    of its own takes the other kind's values.

    >>> parse_podman_pair("--uidmap=0:100000:65536 --gidmap 0:200000:65536").root
    (100000, 200000)
    >>> parse_podman_pair("--gidmap=0:200000:65536").root
    (200000, 200000)
    """
    toks = _all_tokens(text)
    if any(t.text.startswith("--") for t in toks):
        uid_toks, gid_toks = _options(toks, path)
        uid_ms, gid_ms = _mappings(uid_toks or gid_toks, path), _mappings(gid_toks or uid_toks,
                                                                           path)
    else:
        uid_ms = gid_ms = _mappings(toks, path)
    return IDMapPair(
        podman_idmap(uid_ms, "uid", parent=parent.uid if parent else None, path=path),
        podman_idmap(gid_ms, "gid", parent=parent.gid if parent else None, path=path),
    )


def format_podman(idmap: IDMap) -> str:
    """One ``container:host:size`` value per extent, separated by spaces.

    >>> format_podman(IDMap([Extent(0, 1, 1000), Extent(1000, 0, 1)]))
    '0:1:1000 1000:0:1'
    """
    return " ".join(f"{e.container}:{e.host}:{e.size}" for e in idmap)


def format_podman_pair(pair: IDMapPair) -> str:
    """Values for ``--uidmap`` describing both maps: plain triples when the maps are
    equal, else ``u``-flagged triples for users, then ``g``-flagged ones for groups.

    >>> format_podman_pair(IDMapPair(IDMap.single(0, 1000, 1), IDMap.single(0, 2000, 1)))
    'u0:1000:1 g0:2000:1'
    """
    if pair.uid == pair.gid:
        return format_podman(pair.uid)
    return " ".join([f"u{e.container}:{e.host}:{e.size}" for e in pair.uid]
                    + [f"g{e.container}:{e.host}:{e.size}" for e in pair.gid])

