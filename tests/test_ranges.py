from __future__ import annotations

import itertools
import pickle

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from userns import ID_MAX, IDRange, IDSet, InvalidIDError, InvalidRangeError, UsernsError

from .strategies import SMALL, big_sets, small_ids, small_ranges, small_sets


def as_set(s: IDSet) -> set[int]:
    return set(s)


def canonical(s: IDSet) -> bool:
    rs = s.ranges
    return all(a.stop < b.start for a, b in itertools.pairwise(rs))


# -- IDRange ------------------------------------------------------------------------


def test_range_bounds() -> None:
    r = IDRange(231072, 65536)
    assert (r.start, r.size, r.stop, r.last) == (231072, 65536, 296608, 296607)
    assert IDRange.from_bounds(231072, 296607) == r
    assert repr(r) == "IDRange(231072, 65536)"
    assert eval(repr(r)) == r
    assert str(r) == "[231072, 296608)"
    assert len(r) == 65536


@pytest.mark.parametrize(
    ("args", "exc", "message"),
    [
        ((0, 0), InvalidRangeError, "'size' must be >= 1: 0 [empty-range]"),
        ((-1, 5), InvalidIDError, "'start' must be >= 0: -1 [invalid-id]"),
        ((ID_MAX, 2), InvalidRangeError,
         "range 4294967294+2 ends at 4294967295, past the largest ID 4294967294 [range-past-max]"),
        ((ID_MAX + 1, 1), InvalidIDError, "'start' must be <= 4294967294: 4294967295 [invalid-id]"),
    ],
)
def test_range_rejects(args: tuple[int, int], exc: type[Exception], message: str) -> None:
    with pytest.raises(exc) as info:
        IDRange(*args)
    assert str(info.value) == message
    assert isinstance(info.value, (UsernsError, ValueError))


def test_range_edges() -> None:
    assert IDRange(ID_MAX, 1).last == ID_MAX
    assert IDRange(0, ID_MAX + 1).stop == ID_MAX + 1
    with pytest.raises(InvalidRangeError):
        IDRange.from_bounds(5, 4)
    with pytest.raises(TypeError):
        IDRange(1.5, 2)  # type: ignore[arg-type]


@given(small_ranges(), small_ranges())
@example(IDRange(0, 5), IDRange(5, 5))
def test_range_relations_match_python_sets(a: IDRange, b: IDRange) -> None:
    sa, sb = set(a), set(b)
    assert a.overlaps(b) == bool(sa & sb)
    assert a.adjacent(b) == (a.stop == b.start or b.stop == a.start)
    inter = a & b
    assert (set(inter) if inter else set()) == sa & sb
    assert (b in a) == (sb <= sa)


@given(small_ranges(), small_ids())
def test_range_membership(r: IDRange, x: int) -> None:
    assert (x in r) == (r.start <= x <= r.last)


# -- IDSet against a plain set -------------------------------------------------------


@given(small_sets(), small_sets())
def test_union(a: IDSet, b: IDSet) -> None:
    assert as_set(a | b) == as_set(a) | as_set(b)
    assert canonical(a | b)


@given(small_sets(), small_sets())
def test_intersection(a: IDSet, b: IDSet) -> None:
    assert as_set(a & b) == as_set(a) & as_set(b)
    assert canonical(a & b)


@given(small_sets(), small_sets())
def test_difference(a: IDSet, b: IDSet) -> None:
    assert as_set(a - b) == as_set(a) - as_set(b)
    assert canonical(a - b)


@given(small_sets(), small_sets())
def test_symmetric_difference(a: IDSet, b: IDSet) -> None:
    assert as_set(a ^ b) == as_set(a) ^ as_set(b)
    assert canonical(a ^ b)


@given(small_sets())
def test_complement_within_small_universe(a: IDSet) -> None:
    universe = IDRange(0, SMALL)
    assert as_set(~a & universe) == set(range(SMALL)) - as_set(a)
    assert len(~a) == ID_MAX + 1 - len(a)


@given(small_sets(), small_ids())
def test_membership_and_len(a: IDSet, x: int) -> None:
    assert (x in a) == (x in as_set(a))
    assert len(a) == len(as_set(a))
    assert bool(a) == bool(as_set(a))


@given(small_sets(), small_sets())
def test_relations(a: IDSet, b: IDSet) -> None:
    assert a.is_subset(b) == (as_set(a) <= as_set(b))
    assert a.is_superset(b) == (as_set(a) >= as_set(b))
    assert a.is_disjoint(b) == as_set(a).isdisjoint(as_set(b))
    assert (a < b) == (as_set(a) < as_set(b))


@given(small_sets())
def test_canonical_equal_and_hash(a: IDSet) -> None:
    rebuilt = IDSet(sorted(as_set(a), reverse=True))
    assert rebuilt == a
    assert hash(rebuilt) == hash(a)
    assert canonical(a)
    assert eval(repr(a)) == a
    assert pickle.loads(pickle.dumps(a)) == a


# -- algebraic laws, one per test, on the whole ID space ----------------------------


@given(big_sets())
def test_law_identity(a: IDSet) -> None:
    assert a | IDSet.empty() == a
    assert a & IDSet.full() == a


@given(big_sets())
def test_law_idempotence(a: IDSet) -> None:
    assert a | a == a
    assert a & a == a


@given(big_sets(), big_sets())
def test_law_commutativity(a: IDSet, b: IDSet) -> None:
    assert a | b == b | a
    assert a & b == b & a
    assert a ^ b == b ^ a


@given(big_sets(), big_sets(), big_sets())
def test_law_associativity(a: IDSet, b: IDSet, c: IDSet) -> None:
    assert (a | b) | c == a | (b | c)
    assert (a & b) & c == a & (b & c)


@given(big_sets(), big_sets(), big_sets())
def test_law_distributivity(a: IDSet, b: IDSet, c: IDSet) -> None:
    assert a & (b | c) == (a & b) | (a & c)
    assert a | (b & c) == (a | b) & (a | c)


@given(big_sets(), big_sets())
def test_law_de_morgan(a: IDSet, b: IDSet) -> None:
    assert ~(a | b) == ~a & ~b
    assert ~(a & b) == ~a | ~b


@given(big_sets(), big_sets())
def test_law_difference_is_and_not(a: IDSet, b: IDSet) -> None:
    assert a - b == a & ~b


@given(big_sets())
def test_law_double_complement(a: IDSet) -> None:
    assert ~~a == a
    assert len(a) + len(~a) == ID_MAX + 1


@given(big_sets(), big_sets())
def test_law_xor_is_union_minus_intersection(a: IDSet, b: IDSet) -> None:
    assert a ^ b == (a | b) - (a & b)


def test_huge_sets_are_cheap() -> None:
    a = IDSet([IDRange(0, 2_000_000_000), IDRange(3_000_000_000, 1_000_000_000)])
    assert len(a) == 3_000_000_000
    assert len(~a) == ID_MAX + 1 - 3_000_000_000
    assert (~a).ranges == (IDRange(2_000_000_000, 1_000_000_000), IDRange(4_000_000_000, 294967295))
    assert 2_999_999_999 not in a and 3_000_000_000 in a


def test_set_str_and_edges() -> None:
    s = IDSet.of(0, 1, 2, 10, ID_MAX)
    assert str(s) == "{0-2, 10, 4294967294}"
    assert s.min == 0 and s.max == ID_MAX
    assert IDSet.full() == ~IDSet.empty()
    assert str(IDSet.empty()) == "{}"
    with pytest.raises(InvalidIDError):
        IDSet.of(ID_MAX + 1)
    with pytest.raises(AttributeError):
        s._spans = ()


# -- find_free ----------------------------------------------------------------------


def naive_find_free(used: set[int], size: int, lo: int, hi: int, align: int) -> IDRange | None:
    start = -(-lo // align) * align
    while start + size <= hi:
        if not any(x in used for x in range(start, start + size)):
            return IDRange(start, size)
        start += align
    return None


@given(small_sets(), st.integers(1, 10), small_ranges(), st.integers(1, 8))
def test_find_free_matches_naive(a: IDSet, size: int, within: IDRange, align: int) -> None:
    got = a.find_free(size, within=within, align=align)
    assert got == naive_find_free(as_set(a), size, within.start, within.stop, align)


def test_find_free_aligned_kubernetes() -> None:
    used = IDSet([IDRange(65536, 100000), IDRange(200000, 10)])
    assert used.find_free(65536, align=65536, within=IDRange(65536, 10 * 65536)) == IDRange(
        262144, 65536
    )
    assert used.find_free(65536, within=IDRange(65536, 65536)) is None
    assert IDSet.empty().find_free(1, within=IDRange(ID_MAX, 1)) == IDRange(ID_MAX, 1)
    with pytest.raises(InvalidRangeError):
        used.find_free(0)


# -- state machine --------------------------------------------------------------------


class IDSetMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.value = IDSet.empty()
        self.model: set[int] = set()

    @rule(r=small_ranges())
    def add(self, r: IDRange) -> None:
        self.value = self.value | r
        self.model |= set(r)

    @rule(r=small_ranges())
    def remove(self, r: IDRange) -> None:
        self.value = self.value - r
        self.model -= set(r)

    @rule(r=small_ranges())
    def toggle(self, r: IDRange) -> None:
        self.value = self.value ^ r
        self.model ^= set(r)

    @rule(r=small_ranges())
    def keep(self, r: IDRange) -> None:
        self.value = self.value & r
        self.model &= set(r)

    @invariant()
    def agrees(self) -> None:
        assert set(self.value) == self.model
        assert len(self.value) == len(self.model)
        assert canonical(self.value)


TestIDSetMachine = IDSetMachine.TestCase
