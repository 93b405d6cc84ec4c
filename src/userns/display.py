"""Notebook display: HTML and SVG for IDRange, IDSet, IDMap and IDMapPair.

Jupyter calls ``_repr_html_`` on a value; the four classes delegate to
:func:`range_html`, :func:`set_html`, :func:`map_html` and :func:`pair_html`. Each
returns a small table and an inline SVG drawing:

- a map is two axes, container IDs on top and host IDs below, with a coloured band
  from each container extent to its host extent; IDs the map does not cover are grey
  dashed holes, and the container axis marks the overflow ID (65534), which is what
  every unmapped host ID (host root included) looks like from inside;
- a set or a range is one axis with its runs coloured and the holes grey.

The ID space is four billion IDs wide, so the axes are piecewise: each run and each
hole gets a width that grows with the logarithm of its size, and positions are linear
inside a piece. A 65536-ID range next to a four-billion-ID hole stays visible, and a
zig-zag on a hole says that it is drawn shorter than it is. Labels are the first and
last ID of each run, in full, so they can be copied.

Everything here is a pure function from values to text: no I/O, no external assets,
every text escaped. Drawings show at most :data:`MAX_DRAWN` extents or runs; the
tables list at most :data:`MAX_ROWS` rows and say how many were left out.

>>> from userns import IDMap
>>> svg = map_svg(IDMap.single(0, 231072, 65536))
>>> svg.startswith("<svg") and "231072" in svg and "overflow" in svg
True
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING

import attrs

from .ids import ID_MAX, OVERFLOW_ID
from .ranges import IDRange, IDSet

if TYPE_CHECKING:
    from .maps import IDMap, IDMapPair

__all__ = [
    "MAX_DRAWN",
    "MAX_ROWS",
    "map_html",
    "map_svg",
    "pair_html",
    "range_html",
    "set_html",
    "set_svg",
]

#: Extents (or runs of a set) drawn at most; the rest are summarised in a caption.
MAX_DRAWN = 12
#: Rows a table shows at most; a last row says how many more there are.
MAX_ROWS = 32

_END = ID_MAX + 1

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
_HOLE_FILL = "#eeeeee"
_HOLE_STROKE = "#999999"
_HIDDEN_FILL = "#dde8f3"
_OVERFLOW = "#c0392b"
_TEXT = "#222222"
_MUTED = "#666666"

_FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
_CHAR = 0.61  # width of a monospace character, in ems
_LABEL_PX = 11
_SMALL_PX = 10

_LEFT = 92  # room for the axis names
_RIGHT = 16
_MIN_AXIS = 640  # axes are stretched to at least this many pixels
_MAX_AXIS = 1100  # and squeezed to at most this many (labels then stack in rows)
_BAR = 16  # height of an axis bar
_ROW = 14  # height of a row of labels
_BAND = 110  # vertical room for the bands between the two axes of a map


# -- the piecewise axis -----------------------------------------------------------------


@attrs.frozen
class _Piece:
    start: int
    stop: int
    kind: str  # "run" (covered), "hole" (not covered) or "hidden" (covered, not drawn)
    x0: float = 0.0
    x1: float = 0.0


def _weight(size: int, kind: str) -> float:
    # Runs get more room than holes: the runs are what the reader came to see.
    if kind == "run":
        return 60 + 13 * math.log2(size)
    return 30 + 5 * math.log2(size)


@attrs.frozen
class _Axis:
    """A line from ID 0 to ``ID_MAX`` cut into pieces, each with its own linear scale."""

    pieces: tuple[_Piece, ...]

    @classmethod
    def build(cls, runs: Iterable[tuple[int, int]], hidden: IDSet) -> _Axis:
        """Pieces for ``runs`` (sorted, disjoint ``(start, stop)``) and the holes between.

        A hole that meets ``hidden`` (covered by something not drawn) is marked so, not
        shown as unmapped.
        """
        pieces: list[_Piece] = []
        cur = 0
        for start, stop in runs:
            if start > cur:
                pieces.append(_hole(cur, start, hidden))
            pieces.append(_Piece(start, stop, "run"))
            cur = stop
        if cur < _END:
            pieces.append(_hole(cur, _END, hidden))
        return cls(tuple(pieces))

    @property
    def natural_width(self) -> float:
        return sum(_weight(p.stop - p.start, p.kind) for p in self.pieces)

    def laid_out(self, x: float, width: float) -> _Axis:
        """The same pieces placed from ``x`` over ``width`` pixels."""
        scale = width / self.natural_width
        out = []
        for p in self.pieces:
            w = _weight(p.stop - p.start, p.kind) * scale
            out.append(attrs.evolve(p, x0=x, x1=x + w))
            x += w
        return _Axis(tuple(out))

    def x(self, id_: int) -> float:
        """Where an ID (or the end of a run, ``stop``) falls on the laid-out axis."""
        i = max(bisect_right([p.start for p in self.pieces], id_) - 1, 0)
        p = self.pieces[i]
        if id_ >= p.stop:
            return p.x1
        return p.x0 + (p.x1 - p.x0) * (id_ - p.start) / (p.stop - p.start)


def _hole(start: int, stop: int, hidden: IDSet) -> _Piece:
    kind = "hidden" if hidden and not hidden.is_disjoint(IDRange(start, stop - start)) else "hole"
    return _Piece(start, stop, kind)


# -- SVG pieces ---------------------------------------------------------------------------


def _ids(n: int) -> str:
    return f"{n} ID" if n == 1 else f"{n} IDs"


def _text_width(text: str, px: float) -> float:
    return len(text) * _CHAR * px


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(
    x: float, y: float, text: str, *, anchor: str = "start", px: int = _LABEL_PX,
    fill: str = _TEXT, weight: str = "normal",
) -> str:
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{px}" '
        f'fill="{fill}" font-weight="{weight}">{escape(text)}</text>'
    )


@attrs.frozen
class _Label:
    x: float  # anchor point
    anchor: str  # "start", "middle" or "end"
    text: str

    def span(self) -> tuple[float, float]:
        w = _text_width(self.text, _LABEL_PX)
        left = {"start": self.x, "middle": self.x - w / 2, "end": self.x - w}[self.anchor]
        return left, left + w


def _stack(labels: Sequence[_Label], max_rows: int = 4) -> list[tuple[_Label, int]]:
    """Give each label the first row where it does not touch its left neighbour."""
    ends: list[float] = []
    out: list[tuple[_Label, int]] = []
    for label in sorted(labels, key=lambda lb: lb.span()[0]):
        left, right = label.span()
        for row, end in enumerate(ends):
            if left >= end + 6:
                ends[row] = right
                break
        else:
            if len(ends) >= max_rows:
                continue  # no room anywhere: better a missing label than an unreadable one
            row = len(ends)
            ends.append(right)
        out.append((label, row))
    return out


def _axis_labels(axis: _Axis) -> list[_Label]:
    """First and last ID of every run, and the ends of the axis."""
    labels: list[_Label] = []
    for p in axis.pieces:
        if p.kind != "run":
            continue
        if p.stop - p.start == 1:
            labels.append(_Label((p.x0 + p.x1) / 2, "middle", str(p.start)))
        else:
            labels.append(_Label(p.x0, "start", str(p.start)))
            labels.append(_Label(p.x1, "end", str(p.stop - 1)))
    first, last = axis.pieces[0], axis.pieces[-1]
    if first.kind != "run":
        labels.append(_Label(first.x0, "start", "0"))
    if last.kind != "run":
        labels.append(_Label(last.x1, "end", str(ID_MAX)))
    return labels


def _draw_axis(axis: _Axis, y: float, name: str, colours: dict[int, str]) -> list[str]:
    """The bar of an axis at ``y``: coloured runs, grey holes, zig-zags on long holes."""
    out = [_text(_LEFT - 10, y + _BAR - 4, name, anchor="end", weight="bold")]
    for p in axis.pieces:
        w = p.x1 - p.x0
        size = p.stop - p.start
        if p.kind == "run":
            fill = colours.get(p.start, _PALETTE[0])
            tip = f"{name} IDs {p.start}…{p.stop - 1} ({size} IDs)"
            out.append(
                f'<rect x="{_num(p.x0)}" y="{_num(y)}" width="{_num(w)}" height="{_BAR}" '
                f'fill="{fill}" stroke="#ffffff" stroke-width="1">'
                f"<title>{escape(tip)}</title></rect>"
            )
            continue
        hidden = p.kind == "hidden"
        fill = _HIDDEN_FILL if hidden else _HOLE_FILL
        what = "including IDs of extents not drawn" if hidden else "not mapped"
        tip = f"{name} IDs {p.start}…{p.stop - 1}: {size} IDs {what}"
        out.append(
            f'<rect x="{_num(p.x0)}" y="{_num(y)}" width="{_num(w)}" height="{_BAR}" '
            f'fill="{fill}" stroke="{_HOLE_STROKE}" stroke-dasharray="4 3">'
            f"<title>{escape(tip)}</title></rect>"
        )
        caption = f"… {_ids(size)}" if hidden else _ids(size)
        if _text_width(caption, _SMALL_PX) + 30 < w:
            out.append(_text(p.x0 + 6, y + _BAR - 4, caption, px=_SMALL_PX, fill=_MUTED))
        if size >= 1 << 20 and w > 24:
            # A zig-zag: this hole is drawn much shorter than its size.
            zx = p.x1 - 12
            out.append(
                f'<path d="M{_num(zx - 4)} {_num(y - 3)} l4 {_BAR / 2 + 3:g} l-4 {_BAR / 2 + 3:g} '
                f'M{_num(zx + 1)} {_num(y - 3)} l4 {_BAR / 2 + 3:g} l-4 {_BAR / 2 + 3:g}" '
                f'fill="none" stroke="{_MUTED}" stroke-width="1.2"/>'
            )
    return out


def _draw_labels(labels: Sequence[_Label], y: float, direction: int) -> tuple[list[str], int]:
    """Labels in rows from baseline ``y``, stacking up (-1) or down (+1); rows used."""
    out: list[str] = []
    rows = 0
    for label, row in _stack(labels):
        rows = max(rows, row + 1)
        base = y + direction * row * _ROW
        left, right = label.span()
        # A white plate, so a marker line passing behind does not cut through the digits.
        out.append(f'<rect x="{_num(left - 1)}" y="{_num(base - _LABEL_PX + 1)}" '
                   f'width="{_num(right - left + 2)}" height="{_LABEL_PX + 2}" fill="#ffffff"/>')
        out.append(_text(label.x, base, label.text, anchor=label.anchor))
    return out, rows


def _svg(width: float, height: float, body: Sequence[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" height="{_num(height)}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" font-family="{_FONT}" '
        f'style="max-width:100%" role="img">'
        f"<title>{escape(title)}</title>"
        f'<rect width="100%" height="100%" fill="#ffffff"/>'
        + "".join(body)
        + "</svg>"
    )


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    """Swatches and words in one line; ``items`` are (kind or colour, text)."""
    out: list[str] = []
    for kind, words in items:
        if kind == "hole":
            out.append(
                f'<rect x="{_num(x)}" y="{_num(y - 9)}" width="18" height="10" '
                f'fill="{_HOLE_FILL}" stroke="{_HOLE_STROKE}" stroke-dasharray="4 3"/>'
            )
        elif kind == "overflow":
            out.append(
                f'<path d="M{_num(x + 4)} {_num(y - 10)} h10 l-5 9 z" fill="{_OVERFLOW}"/>'
            )
        else:
            out.append(
                f'<rect x="{_num(x)}" y="{_num(y - 9)}" width="18" height="10" fill="{kind}"/>'
            )
        out.append(_text(x + 24, y, words, px=_SMALL_PX, fill=_MUTED))
        x += 24 + _text_width(words, _SMALL_PX) + 18
    return out


# -- public drawings ----------------------------------------------------------------------


def set_svg(ids: IDSet | IDRange, *, name: str = "IDs") -> str:
    """One axis: the runs of ``ids`` coloured, the holes grey, first and last ID labelled.

    >>> svg = set_svg(IDSet([IDRange(100000, 65536), IDRange(300000, 10)]))
    >>> "165535" in svg and "300009" in svg
    True
    """
    s = ids.to_set() if isinstance(ids, IDRange) else ids
    runs = s.ranges
    drawn = runs[:MAX_DRAWN]
    hidden = IDSet(runs[MAX_DRAWN:])
    axis = _Axis.build(((r.start, r.stop) for r in drawn), hidden)
    width = min(max(_MIN_AXIS, axis.natural_width), _MAX_AXIS)
    axis = axis.laid_out(_LEFT, width)
    labels = _axis_labels(axis)
    _, rows = _draw_labels(labels, 0, -1)  # first to count the rows of labels
    top = 10 + rows * _ROW
    body, _ = _draw_labels(labels, top, -1)
    colours = {r.start: _PALETTE[0] for r in drawn}
    bar_y = top + 6
    body += _draw_axis(axis, bar_y, name, colours)
    y = bar_y + _BAR + 20
    summary = f"{len(s)} IDs in {len(runs)} run{'s' if len(runs) != 1 else ''}"
    if len(runs) > MAX_DRAWN:
        summary += f"; the first {MAX_DRAWN} drawn"
    legend = [(_PALETTE[0], "in the set"), ("hole", "not in the set")]
    if hidden:
        legend.append((_HIDDEN_FILL, "… runs not drawn"))
    body += _legend(_LEFT, y, legend)
    body.append(_text(_LEFT + width, y, summary, anchor="end", px=_SMALL_PX, fill=_MUTED))
    return _svg(_LEFT + width + _RIGHT, y + 10, body, f"{name}: {summary}")


def map_svg(idmap: IDMap, *, overflow: int = OVERFLOW_ID) -> str:
    """Container IDs above, host IDs below, a band from each extent to its host range.

    Holes on either axis are IDs the map does not cover; the red marker is the
    ``overflow`` ID on the container axis, which every unmapped host ID shows as.

    >>> from userns import Extent, IDMap
    >>> svg = map_svg(IDMap([Extent(0, 200000, 20), Extent(20, 250000, 65516)]))
    >>> "200019" in svg and "250000" in svg and "315515" in svg
    True
    """
    extents = sorted(idmap, key=lambda e: e.container)
    drawn = extents[:MAX_DRAWN]
    rest = extents[MAX_DRAWN:]
    c_axis = _Axis.build(((e.container, e.container + e.size) for e in drawn),
                         IDSet(e.container_range for e in rest))
    h_axis = _Axis.build(sorted((e.host, e.host + e.size) for e in drawn),
                         IDSet(e.host_range for e in rest))
    width = min(max(_MIN_AXIS, c_axis.natural_width, h_axis.natural_width), _MAX_AXIS)
    c_axis = c_axis.laid_out(_LEFT, width)
    h_axis = h_axis.laid_out(_LEFT, width)
    colours_c = {e.container: _PALETTE[i % len(_PALETTE)] for i, e in enumerate(drawn)}
    colours_h = {e.host: _PALETTE[i % len(_PALETTE)] for i, e in enumerate(drawn)}

    body: list[str] = []
    c_labels = _axis_labels(c_axis)
    _, c_rows = _draw_labels(c_labels, 0, -1)
    # Rows from the top: the overflow note, its marker, then the container labels.
    note_y, marker_y = 12, 16
    c_base = marker_y + 12 + c_rows * _ROW
    c_texts, _ = _draw_labels(c_labels, c_base, -1)
    c_y = c_base + 6
    ox = c_axis.x(overflow)
    mapped = idmap.to_host(overflow, None) is not None
    note = f"{overflow} = overflow ID: host IDs outside the map show as this"
    if not idmap.host_ids().complement():
        note = f"{overflow} = overflow ID (unused: every host ID is mapped)"
    elif mapped:
        note += " (it is also mapped)"
    # Centred over the marker, moved sideways as far as needed to stay in the picture.
    note_w = _text_width(note, _SMALL_PX)
    total = _LEFT + width + _RIGHT
    note_x = max(4.0, min(ox - note_w / 2, total - 4 - note_w))
    body.append(_text(note_x, note_y, note, px=_SMALL_PX, fill=_OVERFLOW))
    body.append(
        f'<line x1="{_num(ox)}" y1="{_num(marker_y + 2)}" x2="{_num(ox)}" y2="{_num(c_y + _BAR)}" '
        f'stroke="{_OVERFLOW}" stroke-width="1.5" stroke-dasharray="3 2"/>'
    )
    body.append(f'<path d="M{_num(ox - 5)} {_num(marker_y)} h10 l-5 9 z" fill="{_OVERFLOW}"/>')
    body += c_texts  # over the marker line

    h_y = c_y + _BAR + _BAND
    # Bands first, so the axes are drawn over their ends.
    band: list[str] = []
    for i, e in enumerate(drawn):
        cx0, cx1 = c_axis.x(e.container), c_axis.x(e.container + e.size)
        hx0, hx1 = h_axis.x(e.host), h_axis.x(e.host + e.size)
        top, bottom, mid = c_y + _BAR, h_y, (c_y + _BAR + h_y) / 2
        colour = _PALETTE[i % len(_PALETTE)]
        tip = (f"container {e.container}…{e.container + e.size - 1} → host "
               f"{e.host}…{e.host + e.size - 1} ({e.size} IDs)")
        band.append(
            f'<path d="M{_num(cx0)} {_num(top)} C{_num(cx0)} {_num(mid)} {_num(hx0)} {_num(mid)} '
            f'{_num(hx0)} {_num(bottom)} L{_num(hx1)} {_num(bottom)} C{_num(hx1)} {_num(mid)} '
            f'{_num(cx1)} {_num(mid)} {_num(cx1)} {_num(top)} Z" fill="{colour}" '
            f'fill-opacity="0.35" stroke="{colour}" stroke-width="1">'
            f"<title>{escape(tip)}</title></path>"
        )
        # The size, just under the container run: runs are disjoint, so these never collide
        # (crossing bands would put two labels on one spot at mid-height).
        words = _ids(e.size)
        if _text_width(words, _SMALL_PX) + 8 < cx1 - cx0:
            band.append(_text((cx0 + cx1) / 2, top + 14, words, anchor="middle", px=_SMALL_PX))
    body += band
    body += _draw_axis(c_axis, c_y, "container", colours_c)
    body += _draw_axis(h_axis, h_y, "host", colours_h)
    body.append(f'<path d="M{_num(ox - 5)} {_num(c_y - 1)} h10 l-5 7 z" fill="{_OVERFLOW}"/>')

    h_labels = _axis_labels(h_axis)
    texts, h_rows = _draw_labels(h_labels, h_y + _BAR + 14, 1)
    body += texts
    y = h_y + _BAR + 14 + h_rows * _ROW + 12
    n = len(extents)
    summary = f"{n} extent{'s' if n != 1 else ''}, {idmap.size} IDs"
    if rest:
        summary += f"; the first {MAX_DRAWN} drawn"
    legend = [(_PALETTE[0], "container extent → host range"), ("hole", "not mapped")]
    if rest:
        legend.append((_HIDDEN_FILL, "… extents not drawn"))
    body += _legend(_LEFT, y, legend)
    body.append(_text(_LEFT + width, y, summary, anchor="end", px=_SMALL_PX, fill=_MUTED))
    return _svg(_LEFT + width + _RIGHT, y + 10, body, f"ID map: {summary}")


# -- HTML -------------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], caption: str) -> str:
    th = "".join(f'<th style="text-align:right">{escape(h)}</th>' for h in head)
    shown = rows[:MAX_ROWS]
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align:right">{escape(str(c))}</td>' for c in row)
        + "</tr>"
        for row in shown
    )
    if len(rows) > MAX_ROWS:
        more = len(rows) - MAX_ROWS
        body += (f'<tr><td colspan="{len(head)}" style="text-align:left">… {more} more '
                 f"row{'s' if more != 1 else ''}</td></tr>")
    if not rows:
        body = f'<tr><td colspan="{len(head)}" style="text-align:left">(empty)</td></tr>'
    return (
        f'<table class="userns-table"><caption style="text-align:left">{escape(caption)}'
        f"</caption><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    )


def _figure(*parts: str) -> str:
    return '<div class="userns-display">' + "".join(parts) + "</div>"


def range_html(r: IDRange) -> str:
    """A one-row table (first, last, size) and the range drawn on the ID axis.

    >>> html = range_html(IDRange(231072, 65536))
    >>> "<td style=\\"text-align:right\\">296607</td>" in html and "<svg" in html
    True
    """
    table = _table(["first", "last", "size"], [[r.start, r.last, r.size]], f"IDRange {r}")
    return _figure(table, set_svg(r))


def set_html(s: IDSet) -> str:
    """A table of the set's runs (first, last, size) and the set drawn on the ID axis.

    >>> "not in the set" in set_html(IDSet.of(0, 33, 65534))
    True
    """
    rows = [[r.start, r.last, r.size] for r in s.ranges]
    n = len(rows)
    caption = f"IDSet: {len(s)} IDs in {n} run{'s' if n != 1 else ''}"
    return _figure(_table(["first", "last", "size"], rows, caption), set_svg(s))


def map_html(m: IDMap) -> str:
    """A table of the extents (in the map's order) and the bands drawing.

    >>> from userns import IDMap
    >>> html = map_html(IDMap.single(0, 231072, 65536))
    >>> html.count("<tr>"), "296607" in html
    (2, True)
    """
    rows = [[e.container, e.container + e.size - 1, e.host, e.host + e.size - 1, e.size]
            for e in m]
    n = len(rows)
    caption = f"IDMap: {n} extent{'s' if n != 1 else ''}, {m.size} IDs"
    head = ["container first", "container last", "host first", "host last", "size"]
    return _figure(_table(head, rows, caption), map_svg(m))


def pair_html(p: IDMapPair) -> str:
    """The uid map and the gid map; drawn once when they are the same map.

    >>> from userns import IDMap, IDMapPair
    >>> html = pair_html(IDMapPair.both(IDMap.single(0, 231072, 65536)))
    >>> html.count("<svg"), "uid map = gid map" in html
    (1, True)
    """
    if p.uid == p.gid:
        return _figure("<p><b>uid map = gid map</b></p>", map_html(p.uid))
    return _figure("<p><b>uid map</b></p>", map_html(p.uid),
                   "<p><b>gid map</b></p>", map_html(p.gid))
