"""util-linux ``unshare --map-users`` / ``--map-groups`` values.

Since util-linux 2.39 a value is ``inner:outer:count`` (container ID, host ID, count: the
order of ``/proc/PID/uid_map`` and ``X-mount.idmap``); the older ``outer,inner,count``
(host ID first!) is deprecated and still read (``get_map_range`` in
``sys-utils/unshare.c`` tries the colon form, then the comma form). A text holds one or
more values separated by whitespace, one per ``--map-users`` option, each in either form.

The special values ``auto``, ``subids`` and ``all`` read ``/etc/subuid`` or
``/proc/self/uid_map`` at run time; they are refused here (reason ``needs-system``):
``userns.runtimes`` computes what they give.

What differs from unshare itself: it reads numbers with ``sscanf("%u")``, which skips
blanks and takes a sign (``-1`` is 4294967295); userns takes plain digits only. Up to
2.39 only the last ``--map-users`` counts; since 2.40 unshare *prepends* each range to its
list, so the map it writes lists the ranges in the reverse of the command-line order;
:func:`parse_unshare` keeps the order written (the two maps translate every ID alike).

>>> parse_unshare("0:100000:65536")
IDMap([Extent(0, 100000, 65536)])
>>> parse_unshare("100000,0,65536")            # util-linux < 2.39
IDMap([Extent(0, 100000, 65536)])
>>> format_unshare(IDMap.single(0, 100000, 65536), legacy=True)
'100000,0,65536'
"""

from __future__ import annotations

from ..maps import IDMap
from ._text import Row, build_map, check_extent, number, split_token, syntax
from ._text import tokens as _tokens

__all__ = ["format_unshare", "parse_unshare"]

_SPECIAL = ("auto", "subids", "all")


def parse_unshare(text: str, *, path: str | None = None) -> IDMap:
    """Read ``--map-users``/``--map-groups`` values (``inner:outer:count`` or the
    deprecated ``outer,inner,count``) into a map, in the order written.

    An empty text is no mapping.

    >>> parse_unshare("0:1000:1 1:100000:65536").to_host(1)
    100000
    """
    rows: list[Row] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        for tok in _tokens(line, line=lineno):
            if tok.text in _SPECIAL:
                raise syntax(f"{tok.text!r} reads the system's files when unshare runs; "
                             "compute it with userns.runtimes", tok, path,
                             reason="needs-system")
            colon, comma = ":" in tok.text, "," in tok.text
            if colon == comma:
                raise syntax(f"{tok.text!r} is neither 'inner:outer:count' nor the "
                             "deprecated 'outer,inner,count'", tok, path)
            parts = split_token(tok, ":" if colon else ",")
            if len(parts) != 3:
                form = "inner:outer:count" if colon else "outer,inner,count"
                raise syntax(f"{tok.text!r} has {len(parts)} fields; expected '{form}'", tok,
                             path)
            if colon:
                c_tok, h_tok, s_tok = parts
            else:
                h_tok, c_tok, s_tok = parts
            c = number(c_tok, "container ID (inner)", path)
            h = number(h_tok, "host ID (outer)", path)
            s = number(s_tok, "count", path)
            rows.append(Row(check_extent(c, h, s, tok, path, (c_tok, h_tok, s_tok)), tok))
    return build_map(rows, path)


def format_unshare(idmap: IDMap, *, legacy: bool = False) -> str:
    """One value per extent, separated by spaces: ``inner:outer:count``, or with
    ``legacy=True`` the ``outer,inner,count`` that util-linux before 2.39 needs.

    >>> format_unshare(IDMap.single(0, 1000, 1))
    '0:1000:1'
    """
    if legacy:
        return " ".join(f"{e.host},{e.container},{e.size}" for e in idmap)
    return " ".join(f"{e.container}:{e.host}:{e.size}" for e in idmap)
