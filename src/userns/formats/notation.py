"""The kernel documentation's idmapping notation: ``u0:k231072:r65536``.

From ``Documentation/filesystems/idmappings.rst``: ``u`` prefixes the first ID of the
upper (userspace, container) set, ``k`` the first of the lower (kernel, host) set, ``r``
the range; idmapped mounts write their lower set with ``v`` (VFS IDs):
``u0:v10000:r10000``. A text holds mappings separated by whitespace. The initial
namespace is ``u0:k0:r4294967295``.

Refused: missing or wrong letters (reason ``syntax``), the list numbering the document
puts in front (``1. u0:…``), and the kernel's rules on each mapping and between them.

>>> parse_notation("u0:k231072:r65536").to_host(33)
231105
>>> format_notation(IDMap.single(0, 10000, 10000), lower="v")
'u0:v10000:r10000'
"""

from __future__ import annotations

from typing import Literal

from ..maps import IDMap
from ._text import Row, build_map, check_extent, number, split_token, syntax
from ._text import tokens as _tokens

__all__ = ["format_notation", "parse_notation"]


def parse_notation(text: str, *, path: str | None = None) -> IDMap:
    """Read ``u<container>:k<host>:r<count>`` mappings (``v`` may stand for ``k``).

    >>> parse_notation("u0:k1000:r1 u1:k100000:r65536")
    IDMap([Extent(0, 1000, 1), Extent(1, 100000, 65536)])
    """
    rows: list[Row] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        for tok in _tokens(line, line=lineno):
            parts = split_token(tok, ":")
            if len(parts) != 3:
                raise syntax(f"{tok.text!r} is not 'u<id>:k<id>:r<count>'", tok, path)
            values: list[int] = []
            for part, letters, name in zip(parts, ("u", "kv", "r"),
                                           ("container ID", "host ID", "count")):
                if not part.text or part.text[0] not in letters:
                    want = " or ".join(repr(x) for x in letters)
                    raise syntax(f"the {name} must start with {want}, found {part.text!r}",
                                 part, path)
                values.append(number(part.at(1, len(part.text) - 1), name, path))
            c, h, s = values
            rows.append(Row(check_extent(c, h, s, tok, path, parts), tok))
    return build_map(rows, path)


def format_notation(idmap: IDMap, *, lower: Literal["k", "v"] = "k",
                    sep: str = " ") -> str:
    """Each extent as ``u<container>:k<host>:r<count>``, joined by ``sep``.

    >>> format_notation(IDMap.identity())
    'u0:k0:r4294967295'
    """
    return sep.join(f"u{e.container}:{lower}{e.host}:r{e.size}" for e in idmap)
