"""The notebook display: HTML tables and the SVG drawings, checked by parsing them."""

from __future__ import annotations

import io
import itertools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from userns import ID_MAX, OVERFLOW_ID, Extent, IDMap, IDMapPair, IDRange, IDSet
from userns.display import (
    MAX_DRAWN,
    MAX_ROWS,
    map_html,
    map_svg,
    pair_html,
    range_html,
    set_html,
    set_svg,
)

from .strategies import big_ranges, id_maps, small_sets

NS = "{http://www.w3.org/2000/svg}"
SEED = IDMap.single(0, 231072, 65536)
MULTI = IDMap([Extent(0, 200000, 20), Extent(20, 250000, 65516)])
BAR_TITLE = re.compile(r"^(\S+) IDs (\d+)…(\d+)")


@dataclass
class Bar:
    """One piece of an axis bar, read back from the SVG."""

    axis: str
    first: int
    last: int
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # fails on anything that is not well-formed XML
    assert root.tag == f"{NS}svg"
    return root


def bars(root: ET.Element) -> list[Bar]:
    out = []
    for rect in root.iter(f"{NS}rect"):
        title = rect.find(f"{NS}title")
        if title is None or title.text is None:
            continue
        m = BAR_TITLE.match(title.text)
        assert m, title.text
        out.append(Bar(m[1], int(m[2]), int(m[3]), float(rect.get("x", "")),
                       float(rect.get("y", "")), float(rect.get("width", "")),
                       float(rect.get("height", "")), rect.get("fill", ""), title.text))
    return out


def bands(root: ET.Element) -> list[tuple[str, list[float]]]:
    """(title, numbers of the path) for each band between the axes."""
    out = []
    for path in root.iter(f"{NS}path"):
        title = path.find(f"{NS}title")
        if title is not None and title.text:
            numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path.get("d", ""))]
            out.append((title.text, numbers))
    return out


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


def check_tiling(axis_bars: list[Bar]) -> None:
    """The pieces of one axis cover 0…ID_MAX in order, left to right, without gaps."""
    axis_bars = sorted(axis_bars, key=lambda b: b.x)
    assert axis_bars[0].first == 0
    assert axis_bars[-1].last == ID_MAX
    for prev, cur in itertools.pairwise(axis_bars):
        assert cur.first == prev.last + 1
        assert cur.x == pytest.approx(prev.x + prev.width, abs=0.15)
    assert all(b.width > 0 for b in axis_bars)


# -- maps ---------------------------------------------------------------------------------


@st.composite
def drawable_maps(draw: st.DrawFn) -> IDMap:
    """Small maps anywhere in the ID space: small ones near 0, or one big extent."""
    big = draw(big_ranges())
    host = draw(st.integers(0, ID_MAX - big.size + 1))
    return draw(st.one_of(id_maps(max_extents=16), st.just(IDMap.single(big.start, host,
                                                                          big.size))))


@settings(max_examples=60, deadline=None)
@given(drawable_maps())
def test_map_svg_axes_tile_the_id_space(m: IDMap) -> None:
    root = parse(map_svg(m))
    found = bars(root)
    for axis in ("container", "host"):
        check_tiling([b for b in found if b.axis == axis])
    drawn = sorted(m, key=lambda e: e.container)[:MAX_DRAWN]
    runs = {(b.axis, b.first, b.last) for b in found if "not mapped" not in b.title
            and "not drawn" not in b.title}
    expected = {("container", e.container, e.container + e.size - 1) for e in drawn}
    expected |= {("host", e.host, e.host + e.size - 1) for e in drawn}
    assert runs == expected
    # Every hole really is unmapped on its side.
    for b in found:
        if "not mapped" in b.title:
            ids = m.container_ids() if b.axis == "container" else m.host_ids()
            assert ids.is_disjoint(IDRange.from_bounds(b.first, b.last))


@settings(max_examples=60, deadline=None)
@given(drawable_maps())
def test_each_band_joins_its_container_run_to_its_host_run(m: IDMap) -> None:
    root = parse(map_svg(m))
    found = bars(root)
    left = {(b.axis, b.first): b.x for b in found}
    right = {(b.axis, b.first): b.x + b.width for b in found}
    drawn = sorted(m, key=lambda e: e.container)[:MAX_DRAWN]
    got = bands(root)
    assert len(got) == len(drawn)
    for e, (title, d) in zip(drawn, got):
        assert title == (f"container {e.container}…{e.container + e.size - 1} → host "
                         f"{e.host}…{e.host + e.size - 1} ({e.size} IDs)")
        # M cx0 top C cx0 mid hx0 mid hx0 bottom L hx1 bottom C hx1 mid cx1 mid cx1 top Z
        cx0, hx0, hx1, cx1 = d[0], d[6], d[8], d[14]
        assert cx0 == pytest.approx(left["container", e.container], abs=0.15)
        assert cx1 == pytest.approx(right["container", e.container], abs=0.15)
        assert hx0 == pytest.approx(left["host", e.host], abs=0.15)
        assert hx1 == pytest.approx(right["host", e.host], abs=0.15)


def check_texts_inside(root: ET.Element) -> None:
    """Every text fits in the picture (monospace: about 0.61 em a character)."""
    width, height = float(root.get("width", "")), float(root.get("height", ""))
    for t in root.iter(f"{NS}text"):
        w = len(t.text or "") * 0.61 * float(t.get("font-size", ""))
        x, y = float(t.get("x", "")), float(t.get("y", ""))
        left = {"start": x, "middle": x - w / 2, "end": x - w}[t.get("text-anchor", "start")]
        assert left >= 0 and left + w <= width, (t.text, left, left + w, width)
        assert 8 <= y <= height, (t.text, y, height)


@settings(max_examples=40, deadline=None)
@given(drawable_maps())
def test_map_texts_stay_inside_the_picture(m: IDMap) -> None:
    check_texts_inside(parse(map_svg(m)))


def test_seed_map_drawing() -> None:
    root = parse(map_svg(SEED))
    found = bars(root)
    words = texts(root)
    # Labels: first and last ID of each run, and the ends of the ID space.
    for label in ("0", "65535", "231072", "296607", str(ID_MAX)):
        assert label in words
    # The hole before the host range says how many IDs it hides.
    assert "231072 IDs" in words
    # Piecewise log scale: 65536 IDs out of four billion still take a good part of the axis.
    width = sum(b.width for b in found if b.axis == "host")
    (run,) = [b for b in found if b.axis == "host" and b.first == 231072]
    assert run.width > width / 4
    # The overflow ID is mapped here (container 65534 = host 296606) and says so.
    assert any(w.startswith("65534 = overflow ID") and "also mapped" in w for w in words)


def test_overflow_marker_sits_on_the_overflow_id() -> None:
    for m in (SEED, IDMap.single(0, 100000, 1000), IDMap.single(70000, 100000, 10)):
        root = parse(map_svg(m))
        container = [b for b in bars(root) if b.axis == "container"]
        (home,) = [b for b in container if b.first <= OVERFLOW_ID <= b.last]
        marker = list(root.iter(f"{NS}line"))
        assert len(marker) == 1
        x = float(marker[0].get("x1", ""))
        assert home.x <= x <= home.x + home.width
        mapped = m.to_host(OVERFLOW_ID, None) is not None
        assert any("also mapped" in w for w in texts(root)) == mapped


def test_identity_map_has_no_unmapped_host_ids() -> None:
    words = texts(parse(map_svg(IDMap.identity())))
    assert "65534 = overflow ID (unused: every host ID is mapped)" in words


def test_many_extents_are_summarised_not_drawn() -> None:
    m = IDMap([Extent(i * 10, 1_000_000 + i * 100, 10) for i in range(40)])
    root = parse(map_svg(m))
    assert len(bands(root)) == MAX_DRAWN
    hidden = [b for b in bars(root) if "not drawn" in b.title]
    assert {b.axis for b in hidden} == {"container", "host"}
    words = texts(root)
    assert f"40 extents, 400 IDs; the first {MAX_DRAWN} drawn" in words
    assert "… extents not drawn" in words


def test_text_is_escaped() -> None:
    svg = set_svg(IDSet.of(1), name="<b>&'\"")
    assert "<b>&" not in svg
    root = parse(svg)
    assert "<b>&'\"" in texts(root)


# -- sets and ranges --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.one_of(small_sets(), st.lists(big_ranges(), max_size=4).map(IDSet)))
def test_set_svg_tiles_and_colours_exactly_the_set(s: IDSet) -> None:
    found = bars(parse(set_svg(s)))
    check_tiling(found)
    check_texts_inside(parse(set_svg(s)))
    runs = {(b.first, b.last) for b in found if "not mapped" not in b.title}
    assert runs == {(r.start, r.last) for r in s.ranges}


def test_set_and_range_html() -> None:
    html = set_html(IDSet.of(0, 33, 65534))
    assert "IDSet: 3 IDs in 3 runs" in html
    assert html.count("<svg") == 1
    cells = re.findall(r"<td[^>]*>(\d+)</td>", range_html(IDRange(231072, 65536)))
    assert cells == ["231072", "296607", "65536"]
    assert "(empty)" in set_html(IDSet.empty())
    parse(set_svg(IDSet.empty()))


# -- HTML -------------------------------------------------------------------------------------


def rows(html: str) -> list[list[str]]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in body.split("<tr>")[1:]]


def test_map_html_lists_extents_in_map_order() -> None:
    m = IDMap([Extent(20, 250000, 65516), Extent(0, 200000, 20)])
    assert rows(map_html(m)) == [
        ["20", "65535", "250000", "315515", "65516"],
        ["0", "19", "200000", "200019", "20"],
    ]
    assert "IDMap: 2 extents, 65536 IDs" in map_html(m)


def test_long_tables_are_cut() -> None:
    m = IDMap([Extent(i, 1000 + 2 * i, 1) for i in range(MAX_ROWS + 5)])
    got = rows(map_html(m))
    assert len(got) == MAX_ROWS + 1
    assert got[-1] == ["… 5 more rows"]
    assert got[MAX_ROWS - 1][0] == str(MAX_ROWS - 1)


def test_pair_html_draws_once_when_uid_and_gid_agree() -> None:
    same = pair_html(IDMapPair.both(SEED))
    assert same.count("<svg") == 1 and "uid map = gid map" in same
    different = pair_html(IDMapPair(SEED, MULTI))
    assert different.count("<svg") == 2
    assert different.index("uid map") < different.index("gid map")


def test_repr_html_delegates() -> None:
    assert IDRange(5, 3)._repr_html_() == range_html(IDRange(5, 3))
    assert IDSet.of(1, 2)._repr_html_() == set_html(IDSet.of(1, 2))
    assert MULTI._repr_html_() == map_html(MULTI)
    pair = IDMapPair(SEED, MULTI)
    assert pair._repr_html_() == pair_html(pair)


# -- the picture, rendered --------------------------------------------------------------------


def test_rendered_png_is_readable() -> None:
    cairosvg = pytest.importorskip("cairosvg", reason="cairosvg (the test extra) is needed "
                                   "to render the SVG to PNG")
    import cairocffi  # installed with cairosvg

    svg = map_svg(SEED)
    root = parse(svg)
    scale = 2
    png = cairosvg.svg2png(bytestring=svg.encode(), scale=scale)
    surface = cairocffi.ImageSurface.create_from_png(io.BytesIO(png))
    width, height = surface.get_width(), surface.get_height()
    assert width == round(float(root.get("width", "")) * scale)
    assert height == round(float(root.get("height", "")) * scale)
    data, stride = bytes(surface.get_data()), surface.get_stride()

    def pixel(x: float, y: float) -> tuple[int, int, int]:
        off = int(y * scale) * stride + int(x * scale) * 4
        b, g, r = data[off], data[off + 1], data[off + 2]  # ARGB32, little-endian
        return r, g, b

    # Not blank: a good share of the pixels is not the white background.
    inked = sum(1 for y in range(0, height, 3) for x in range(0, width, 3)
                if pixel(x / scale, y / scale) != (255, 255, 255))
    total = len(range(0, height, 3)) * len(range(0, width, 3))
    assert 0.15 < inked / total < 0.9
    # The host run is drawn in its colour where the SVG says it is; the hole is light grey.
    found = bars(root)
    (run,) = [b for b in found if b.axis == "host" and b.first == 231072]
    assert pixel(run.x + run.width / 2, run.y + run.height / 2) == (0x00, 0x72, 0xB2)
    hole = next(b for b in found if b.axis == "host" and b.first == 0)
    assert pixel(hole.x + hole.width - 8, hole.y + hole.height / 2) == (0xEE, 0xEE, 0xEE)
