"""Notebook display: HTML for IDRange, IDSet, IDMap and IDMapPair (``_repr_html_``).

Pure functions from values to HTML strings; nothing here does I/O.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .maps import IDMap, IDMapPair
    from .ranges import IDRange, IDSet

__all__ = ["map_html", "pair_html", "range_html", "set_html"]


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def range_html(r: IDRange) -> str:
    """A one-row table: first, last, size."""
    return _table(["first", "last", "size"], [[str(r.start), str(r.last), str(r.size)]])


def set_html(s: IDSet) -> str:
    """A table of the set's ranges."""
    rows = [[str(r.start), str(r.last), str(r.size)] for r in s.ranges]
    return _table(["first", "last", "size"], rows)


def map_html(m: IDMap) -> str:
    """A table of the map's extents."""
    rows = [
        [str(e.container), str(e.container + e.size - 1), str(e.host),
         str(e.host + e.size - 1), str(e.size)]
        for e in m
    ]
    return _table(["container", "…", "host", "…", "size"], rows)


def pair_html(p: IDMapPair) -> str:
    """The uid map and the gid map, one after the other."""
    return f"<b>uid</b>{map_html(p.uid)}<b>gid</b>{map_html(p.gid)}"
