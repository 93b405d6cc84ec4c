from __future__ import annotations

import itertools
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from userns import (
    ID_MAX,
    OVERFLOW_ID,
    Extent,
    IDMap,
    IDMapPair,
    IDRange,
    IDSet,
    InvalidIDError,
    InvalidMapError,
    InvalidRangeError,
    UnmappedIDError,
)

from .strategies import id_maps, small_sets


def as_dict(m: IDMap) -> dict[int, int]:
    out: dict[int, int] = {}
    for e in m:
        for i in range(e.size):
            assert e.container + i not in out  # no container ID hit twice
            out[e.container + i] = e.host + i
    assert len(set(out.values())) == len(out)  # no host ID hit twice
    return out


# -- the seed examples --------------------------------------------------------------


def test_seed_dockremap() -> None:
    m = IDMap.single(0, 231072, 65536)
    assert m.to_host(0) == 231072
    assert m.to_host(33) == 231105
    assert m.to_container(231105) == 33
    assert m.container_view(0) == OVERFLOW_ID == 65534
    assert IDMapPair.both(m).root_dir_name == "231072.231072"


def test_seed_multi_range() -> None:
    m = IDMap([Extent(0, 200000, 20), Extent(20, 250000, 65516)])
    assert [m.to_host(x) for x in (0, 19, 20)] == [200000, 200019, 250000]
    assert m.to_host(65535) == 250000 + 65515
    assert m.to_container(200019) == 19
    assert m.container_ids() == IDSet([IDRange(0, 65536)])
    assert m.host_ids() == IDSet([IDRange(200000, 20), IDRange(250000, 65516)])


# -- validation -----------------------------------------------------------------------


def test_overlap_container_names_both_extents() -> None:
    with pytest.raises(InvalidMapError) as info:
        IDMap([Extent(0, 100000, 65536), Extent(1000, 300000, 10)])
    assert str(info.value) == (
        "extents '0 100000 65536' and '1000 300000 10' overlap on the container side: "
        "container IDs [1000, 1010) [overlap-container]"
    )
    assert info.value.reason == "overlap-container"


def test_overlap_host_names_both_extents_in_given_order() -> None:
    with pytest.raises(InvalidMapError) as info:
        IDMap([Extent(100, 105, 10), Extent(0, 100, 10)])
    assert info.value.reason == "overlap-host"
    assert "'100 105 10' and '0 100 10'" in str(info.value)


def test_adjacent_extents_are_fine_and_order_is_kept() -> None:
    m = IDMap([Extent(10, 110, 10), Extent(0, 100, 10)])
    assert [e.container for e in m] == [10, 0]
    assert m.normalized() == IDMap.single(0, 100, 20)
    assert m.equivalent(IDMap.single(0, 100, 20))
    assert m != IDMap.single(0, 100, 20)


@pytest.mark.parametrize(
    ("args", "exc", "reason"),
    [
        ((0, 0, 0), InvalidRangeError, "empty-range"),
        ((-1, 0, 1), InvalidIDError, "invalid-id"),
        ((0, ID_MAX + 1, 1), InvalidIDError, "invalid-id"),
        ((0, ID_MAX, 2), InvalidRangeError, "range-past-max"),
        ((ID_MAX, 0, 2), InvalidRangeError, "range-past-max"),
    ],
)
def test_extent_rejects(args: tuple[int, int, int], exc: type[Exception], reason: str) -> None:
    with pytest.raises(exc) as info:
        Extent(*args)
    assert getattr(info.value, "reason", None) == reason


def test_identity_is_initial_namespace_map() -> None:
    m = IDMap.identity()
    assert str(m) == "0 0 4294967295"
    assert m.is_identity()
    assert m.to_host(ID_MAX) == ID_MAX
    assert not IDMap.single(0, 1, 1).is_identity()


def test_unmapped_errors() -> None:
    m = IDMap.single(0, 231072, 65536)
    with pytest.raises(UnmappedIDError) as info:
        m.to_host(65536)
    assert str(info.value) == "container ID 65536 has no host ID in this map [unmapped]"
    assert isinstance(info.value, LookupError)
    assert (info.value.id, info.value.direction) == (65536, "to_host")
    with pytest.raises(UnmappedIDError) as info:
        m.to_container(0)
    assert info.value.direction == "to_container"
    with pytest.raises(InvalidIDError):
        m.to_host(-1, default=None)
    with pytest.raises(InvalidIDError):
        m.to_host(-1)
    with pytest.raises(InvalidIDError):
        m.to_container(ID_MAX + 1)
    with pytest.raises(TypeError, match="an ID must be an int, not str: '0'"):
        m.to_host_many(["0"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="an ID must be an int, not str: '5'"):
        m.to_host("5")  # type: ignore[call-overload]
    # Not an ID at all is an error even with a default (it is not "unmapped").
    with pytest.raises(InvalidIDError):
        m.container_view(ID_MAX + 1)
    with pytest.raises(InvalidIDError):
        m.to_container_many([ID_MAX + 1], default=None)
    assert m.container_view(ID_MAX) == OVERFLOW_ID
    with pytest.raises(TypeError):
        IDMap([(0, 1, 2)])  # type: ignore[list-item]


def test_repr_is_python() -> None:
    m = IDMap([Extent(0, 1000, 1), Extent(1, 100000, 65536)])
    assert eval(repr(m)) == m
    assert pickle.loads(pickle.dumps(m)) == m
    assert hash(eval(repr(m))) == hash(m)
    assert m[1] == Extent(1, 100000, 65536)
    assert m.size == 65537
    with pytest.raises(AttributeError):
        m._extents = ()


# -- properties against a dict --------------------------------------------------------


@given(id_maps())
def test_map_agrees_with_dict(m: IDMap) -> None:
    d = as_dict(m)
    for c, h in d.items():
        assert m.to_host(c) == h
        assert m.to_container(h) == c
    for x in range(300):
        assert m.to_host(x, default=None) == d.get(x)
    inv = {h: c for c, h in d.items()}
    for x in range(300):
        assert m.to_container(x, default=None) == inv.get(x)
        assert m.container_view(x) == inv.get(x, OVERFLOW_ID)


@given(id_maps())
def test_bijective_round_trip(m: IDMap) -> None:
    for e in m:
        for c in (e.container, e.container + e.size - 1):
            assert m.to_container(m.to_host(c)) == c
    assert len(m.container_ids()) == len(m.host_ids()) == m.size


@given(id_maps())
def test_bulk_agrees(m: IDMap) -> None:
    ids = list(range(300))
    assert m.to_host_many(ids, default=-1) == [m.to_host(x, -1) for x in ids]
    assert m.to_container_many(ids, default=-1) == [m.to_container(x, -1) for x in ids]


@given(id_maps())
def test_inverse(m: IDMap) -> None:
    d = as_dict(m)
    assert as_dict(m.inverse()) == {h: c for c, h in d.items()}
    assert m.inverse().inverse() == m


@given(id_maps())
def test_normalized_same_mapping_and_minimal(m: IDMap) -> None:
    n = m.normalized()
    assert as_dict(n) == as_dict(m)
    for a, b in itertools.pairwise(n):
        assert a.container < b.container
        assert not (a.container + a.size == b.container and a.host + a.size == b.host)
    assert n.normalized() == n


@given(id_maps(), id_maps(universe=40))
def test_then_composes(child: IDMap, parent: IDMap) -> None:
    dc, dp = as_dict(child), as_dict(parent)
    expected = {c: dp[h] for c, h in dc.items() if h in dp}
    assert as_dict(child.then(parent)) == expected


@given(id_maps(), small_sets(200))
def test_restrict(m: IDMap, keep: IDSet) -> None:
    d = as_dict(m)
    assert as_dict(m.restrict(keep)) == {c: h for c, h in d.items() if c in keep}
    assert as_dict(m.restrict(keep, side="host")) == {c: h for c, h in d.items() if h in keep}


@given(id_maps(), st.lists(st.integers(0, 300), max_size=4, unique=True))
def test_passthrough(m: IDMap, ids: list[int]) -> None:
    d = as_dict(m)
    out = as_dict(m.passthrough(*ids))
    expected = {c: h for c, h in d.items() if c not in ids and h not in ids}
    expected.update({i: i for i in ids})
    assert out == expected


def test_incus_raw_idmap_both() -> None:
    base = IDMap.single(0, 1000000, 1000000000)
    m = base.passthrough(1000)
    assert m.to_host(1000) == 1000
    assert m.to_host(999) == 1000999
    assert m.to_host(1001) == 1001001
    assert m.to_container(1001000, default=None) is None


def test_pair() -> None:
    pair = IDMapPair(IDMap([Extent(0, 1000, 1), Extent(1, 100000, 65536)]),
                     IDMap([Extent(0, 982, 1), Extent(1, 100000, 65536)]))
    assert pair.root == (1000, 982)
    assert pair.root_dir_name == "1000.982"
    assert pair.to_host(33, 33) == (100032, 100032)
    assert pair.container_view(1000, 1000) == (0, OVERFLOW_ID)
    assert pair.inverse().to_host(1000, 982) == (0, 0)
    assert pair.then(IDMapPair.both(IDMap.identity())) == pair


# -- IDs that are not ints are refused on the hit path too (issue 12, item 4) -----------


@pytest.mark.parametrize("bad", [1.5, 2.0, True, False])
def test_translation_refuses_non_int_ids_even_inside_the_map(bad: Any) -> None:
    m = IDMap.single(0, 0, 65536)  # covers bad on both sides: a hit, not a miss
    for call in (lambda: m.to_host(bad), lambda: m.to_host(bad, None),
                 lambda: m.to_container(bad), lambda: m.to_container(bad, None),
                 lambda: m.to_host_many([0, bad]), lambda: m.to_host_many(iter([bad]), None),
                 lambda: m.to_container_many([bad]), lambda: m.container_view(bad)):
        with pytest.raises(TypeError, match="must be an int"):
            call()


def test_translation_of_ints_is_unchanged_by_the_type_check() -> None:
    m = IDMap([Extent(0, 100000, 10), Extent(10, 300000, 5)])
    assert m.to_host_many(range(16), None) == [*range(100000, 100010), *range(300000, 300005),
                                               None]
    assert m.to_container_many((100001, 300004, 5), None) == [1, 14, None]


def test_validate_map_write_refuses_what_is_not_text() -> None:
    from userns import validate_map_write

    with pytest.raises(TypeError, match="str or bytes, not NoneType"):
        validate_map_write(None)  # type: ignore[arg-type]
