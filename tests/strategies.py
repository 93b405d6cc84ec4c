"""Hypothesis strategies shared by the test modules."""

from __future__ import annotations

from hypothesis import strategies as st

from userns import ID_MAX, Extent, IDMap, IDRange, IDSet

#: A small universe so that sets can be compared with plain Python sets.
SMALL = 64


@st.composite
def small_ranges(draw: st.DrawFn, universe: int = SMALL) -> IDRange:
    start = draw(st.integers(0, universe - 1))
    size = draw(st.integers(1, universe - start))
    return IDRange(start, size)


def small_sets(universe: int = SMALL) -> st.SearchStrategy[IDSet]:
    return st.lists(small_ranges(universe), max_size=6).map(IDSet)


def small_ids(universe: int = SMALL) -> st.SearchStrategy[int]:
    return st.integers(0, universe - 1)


@st.composite
def big_ranges(draw: st.DrawFn) -> IDRange:
    """Ranges anywhere in the ID space, the edges drawn often."""
    start = draw(st.one_of(st.integers(0, ID_MAX), st.sampled_from([0, 1, ID_MAX - 1, ID_MAX])))
    size = draw(st.integers(1, ID_MAX - start + 1))
    return IDRange(start, size)


def big_sets() -> st.SearchStrategy[IDSet]:
    return st.lists(big_ranges(), max_size=5).map(IDSet)


@st.composite
def id_maps(draw: st.DrawFn, universe: int = 200, max_extents: int = 8) -> IDMap:
    """Valid maps by construction: container blocks laid out in one order, host blocks in
    another (a permutation), gaps anywhere, extents listed in a shuffled order."""
    n = draw(st.integers(0, max_extents))
    sizes = draw(st.lists(st.integers(1, 12), min_size=n, max_size=n))
    cs: list[int] = []
    c = draw(st.integers(0, 5))
    for size in sizes:
        cs.append(c)
        c += size + draw(st.integers(0, 5))
    hs = [0] * n
    h = draw(st.integers(0, universe))
    for i in draw(st.permutations(range(n))):
        hs[i] = h
        h += sizes[i] + draw(st.integers(0, 5))
    extents = [Extent(cs[i], hs[i], sizes[i]) for i in range(n)]
    return IDMap(draw(st.permutations(extents)))
