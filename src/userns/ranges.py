"""ID ranges and sets of IDs, with interval arithmetic.

An :class:`IDRange` is a run of consecutive IDs, ``start`` and ``size``. An
:class:`IDSet` is any set of IDs, stored as sorted, disjoint, non-adjacent runs, so that
equal sets compare and hash equal and a set of four billion IDs costs as little as a set
of two. Every set operation is a linear sweep over the runs, never a loop over IDs.

>>> a = IDSet([IDRange(100000, 65536)])
>>> b = IDSet([IDRange(165536, 10)])
>>> a | b
IDSet([IDRange(100000, 65546)])
>>> len(a - IDSet.of(100000))
65535
>>> a.find_free(10, within=IDRange(100000, 100000))
IDRange(165536, 10)
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex, TypeAlias

import attrs

from .errors import InvalidIDError, InvalidRangeError
from .ids import ID_MAX, check_id

__all__ = ["IDRange", "IDSet"]

_END = ID_MAX + 1  # exclusive end of the ID space

Span: TypeAlias = tuple[int, int]  # (start, stop), stop exclusive


def _check_start(instance: object, attribute: Any, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"'{attribute.name}' must be an int: {value!r}")
    if value < 0:
        raise InvalidIDError(f"'{attribute.name}' must be >= 0: {value}")
    if value > ID_MAX:
        raise InvalidIDError(f"'{attribute.name}' must be <= {ID_MAX}: {value}")


def _check_size(instance: Any, attribute: Any, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"'size' must be an int: {value!r}")
    if value < 1:
        raise InvalidRangeError(f"'size' must be >= 1: {value}", reason="empty-range")
    if instance.start + value - 1 > ID_MAX:
        raise InvalidRangeError(
            f"range {instance.start}+{value} ends at {instance.start + value - 1}, "
            f"past the largest ID {ID_MAX}",
            reason="range-past-max",
        )


@attrs.frozen(repr=False, order=True)
class IDRange:
    """``size`` consecutive IDs from ``start``: ``[start, start + size)``.

    >>> r = IDRange(231072, 65536)
    >>> r.stop, r.last
    (296608, 296607)
    >>> 231105 in r, IDRange.from_bounds(231072, 231073) in r
    (True, True)
    >>> r & IDRange(296600, 100)
    IDRange(296600, 8)
    """

    start: int = attrs.field(validator=_check_start)
    size: int = attrs.field(validator=_check_size)

    @classmethod
    def from_bounds(cls, first: int, last: int) -> IDRange:
        """The range from ``first`` to ``last``, both included."""
        if last < first:
            raise InvalidRangeError(
                f"last ({last}) must not be below first ({first})", reason="empty-range"
            )
        return cls(first, last - first + 1)

    @property
    def stop(self) -> int:
        """One past the last ID (exclusive end)."""
        return self.start + self.size

    @property
    def last(self) -> int:
        """The last ID (inclusive end)."""
        return self.start + self.size - 1

    def __repr__(self) -> str:
        return f"IDRange({self.start}, {self.size})"

    def __str__(self) -> str:
        return f"[{self.start}, {self.stop})"

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __contains__(self, item: object) -> bool:
        if isinstance(item, IDRange):
            return self.start <= item.start and item.stop <= self.stop
        if isinstance(item, int):
            return self.start <= item < self.start + self.size
        return False

    def overlaps(self, other: IDRange) -> bool:
        """True when the two ranges share at least one ID."""
        return self.start < other.stop and other.start < self.stop

    def adjacent(self, other: IDRange) -> bool:
        """True when one range ends exactly where the other starts (no gap, no overlap)."""
        return self.stop == other.start or other.stop == self.start

    def intersection(self, other: IDRange) -> IDRange | None:
        """The IDs in both ranges, or ``None`` when they do not overlap."""
        start = max(self.start, other.start)
        stop = min(self.stop, other.stop)
        return IDRange(start, stop - start) if start < stop else None

    def __and__(self, other: object) -> IDRange | None:
        if not isinstance(other, IDRange):
            return NotImplemented
        return self.intersection(other)

    def to_set(self) -> IDSet:
        """This range as an :class:`IDSet`."""
        return IDSet._from_spans(((self.start, self.stop),))

    def _repr_html_(self) -> str:
        from .display import range_html

        return range_html(self)


# -- span algorithms: sorted, disjoint, non-adjacent (start, stop) tuples -----------


def _merge_sorted(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Merge spans already sorted by start, joining overlapping and touching ones."""
    out: list[list[int]] = []
    for start, stop in spans:
        if out and start <= out[-1][1]:
            if stop > out[-1][1]:
                out[-1][1] = stop
        else:
            out.append([start, stop])
    return tuple((a, b) for a, b in out)


def _union(a: tuple[Span, ...], b: tuple[Span, ...]) -> tuple[Span, ...]:
    if not a:
        return b
    if not b:
        return a
    return _merge_sorted(heapq.merge(a, b))


def _intersection(a: tuple[Span, ...], b: tuple[Span, ...]) -> tuple[Span, ...]:
    # Two pointers; whichever span ends first cannot meet anything further on the other side.
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        a0, a1 = a[i]
        b0, b1 = b[j]
        lo = a0 if a0 > b0 else b0
        hi = a1 if a1 < b1 else b1
        if lo < hi:
            out.append((lo, hi))
        if a1 < b1:
            i += 1
        else:
            j += 1
    return tuple(out)


def _difference(a: tuple[Span, ...], b: tuple[Span, ...]) -> tuple[Span, ...]:
    # Walk a; for each span cut away every b span that overlaps it, left to right.
    out: list[Span] = []
    j = 0
    for start, stop in a:
        while j < len(b) and b[j][1] <= start:
            j += 1
        k = j
        cur = start
        while k < len(b) and b[k][0] < stop:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            k += 1
        if cur < stop:
            out.append((cur, stop))
    return tuple(out)


def _complement(a: tuple[Span, ...]) -> tuple[Span, ...]:
    out: list[Span] = []
    cur = 0
    for start, stop in a:
        if start > cur:
            out.append((cur, start))
        cur = stop
    if cur < _END:
        out.append((cur, _END))
    return tuple(out)


def _as_spans(item: IDRange | IDSet | int) -> tuple[Span, ...]:
    if isinstance(item, IDSet):
        return item._spans
    if isinstance(item, IDRange):
        return ((item.start, item.stop),)
    if isinstance(item, int) and not isinstance(item, bool):
        check_id(item)
        return ((item, item + 1),)
    raise TypeError(f"expected an IDRange, IDSet or int, not {type(item).__name__}: {item!r}")


class IDSet:
    """An immutable set of IDs, stored as sorted, disjoint, non-adjacent ranges.

    Iterating yields IDs (like any set); ``len()`` counts IDs; :attr:`ranges` gives the
    runs. Operators ``| & - ^ ~`` and the named methods return new sets; ``~`` is the
    complement within ``0 … ID_MAX``.

    >>> s = IDSet([IDRange(10, 5), IDRange(15, 5), IDRange(0, 2)])
    >>> s
    IDSet([IDRange(0, 2), IDRange(10, 10)])
    >>> len(s), 12 in s, 5 in s
    (12, True, False)
    >>> s.find_free(4)
    IDRange(2, 4)
    """

    __slots__ = ("_hash", "_spans", "_starts")

    _spans: tuple[Span, ...]
    _starts: tuple[int, ...]
    _hash: int | None

    def __init__(self, ranges: Iterable[IDRange | IDSet | int] = ()) -> None:
        spans: list[Span] = []
        for item in ranges:
            spans.extend(_as_spans(item))
        spans.sort()
        self._set(_merge_sorted(spans))

    def _set(self, spans: tuple[Span, ...]) -> None:
        object.__setattr__(self, "_spans", spans)
        object.__setattr__(self, "_starts", tuple(s for s, _ in spans))
        object.__setattr__(self, "_hash", None)

    @classmethod
    def _from_spans(cls, spans: tuple[Span, ...]) -> IDSet:
        """Wrap spans that are already canonical (internal: no checks)."""
        new = cls.__new__(cls)
        new._set(spans)
        return new

    # -- constructors -------------------------------------------------------------

    @classmethod
    def empty(cls) -> IDSet:
        """The set with no IDs."""
        return cls._from_spans(())

    @classmethod
    def full(cls) -> IDSet:
        """Every valid ID, ``0 … ID_MAX``."""
        return cls._from_spans(((0, _END),))

    @classmethod
    def of(cls, *ids: int) -> IDSet:
        """The set of the given IDs: ``IDSet.of(0, 33, 65534)``."""
        return cls(ids)

    @classmethod
    def from_bounds(cls, first: int, last: int) -> IDSet:
        """The IDs from ``first`` to ``last``, both included."""
        return IDRange.from_bounds(first, last).to_set()

    # -- the set protocol ---------------------------------------------------------

    @property
    def ranges(self) -> tuple[IDRange, ...]:
        """The runs, sorted, disjoint and non-adjacent."""
        return tuple(IDRange(a, b - a) for a, b in self._spans)

    def __len__(self) -> int:
        return sum(b - a for a, b in self._spans)

    def __bool__(self) -> bool:
        return bool(self._spans)

    def __iter__(self) -> Iterator[int]:
        for a, b in self._spans:
            yield from range(a, b)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, IDRange):
            i = bisect_right(self._starts, item.start) - 1
            return i >= 0 and item.stop <= self._spans[i][1]
        if isinstance(item, int):
            i = bisect_right(self._starts, item) - 1
            return i >= 0 and item < self._spans[i][1]
        return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IDSet):
            return NotImplemented
        return self._spans == other._spans

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", hash(self._spans))
        return hash(self._spans) if self._hash is None else self._hash

    def __repr__(self) -> str:
        return f"IDSet([{', '.join(repr(r) for r in self.ranges)}])"

    def __str__(self) -> str:
        if not self._spans:
            return "{}"
        parts = [str(a) if b - a == 1 else f"{a}-{b - 1}" for a, b in self._spans]
        return "{" + ", ".join(parts) + "}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (IDSet, (self.ranges,))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"IDSet is immutable: cannot set {name!r}")

    # -- set algebra --------------------------------------------------------------

    def union(self, *others: IDSet | IDRange | int) -> IDSet:
        """IDs in this set or any of ``others``."""
        spans = self._spans
        for other in others:
            spans = _union(spans, _as_spans(other))
        return IDSet._from_spans(spans)

    def intersection(self, *others: IDSet | IDRange | int) -> IDSet:
        """IDs in this set and in every one of ``others``."""
        spans = self._spans
        for other in others:
            spans = _intersection(spans, _as_spans(other))
        return IDSet._from_spans(spans)

    def difference(self, *others: IDSet | IDRange | int) -> IDSet:
        """IDs in this set and in none of ``others``."""
        spans = self._spans
        for other in others:
            spans = _difference(spans, _as_spans(other))
        return IDSet._from_spans(spans)

    def symmetric_difference(self, other: IDSet | IDRange | int) -> IDSet:
        """IDs in exactly one of the two sets."""
        b = _as_spans(other)
        return IDSet._from_spans(_union(_difference(self._spans, b), _difference(b, self._spans)))

    def complement(self) -> IDSet:
        """Every valid ID not in this set."""
        return IDSet._from_spans(_complement(self._spans))

    def __or__(self, other: object) -> IDSet:
        if not isinstance(other, (IDSet, IDRange)):
            return NotImplemented
        return self.union(other)

    __ror__ = __or__

    def __and__(self, other: object) -> IDSet:
        if not isinstance(other, (IDSet, IDRange)):
            return NotImplemented
        return self.intersection(other)

    __rand__ = __and__

    def __sub__(self, other: object) -> IDSet:
        if not isinstance(other, (IDSet, IDRange)):
            return NotImplemented
        return self.difference(other)

    def __rsub__(self, other: object) -> IDSet:
        if not isinstance(other, IDRange):
            return NotImplemented
        return other.to_set().difference(self)

    def __xor__(self, other: object) -> IDSet:
        if not isinstance(other, (IDSet, IDRange)):
            return NotImplemented
        return self.symmetric_difference(other)

    __rxor__ = __xor__

    def __invert__(self) -> IDSet:
        return self.complement()

    def is_subset(self, other: IDSet | IDRange) -> bool:
        """True when every ID of this set is in ``other``."""
        return not _difference(self._spans, _as_spans(other))

    def is_superset(self, other: IDSet | IDRange) -> bool:
        """True when every ID of ``other`` is in this set."""
        return not _difference(_as_spans(other), self._spans)

    def is_disjoint(self, other: IDSet | IDRange) -> bool:
        """True when the two sets share no ID."""
        return not _intersection(self._spans, _as_spans(other))

    def __le__(self, other: object) -> bool:
        if not isinstance(other, IDSet):
            return NotImplemented
        return self.is_subset(other)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, IDSet):
            return NotImplemented
        return self.is_superset(other)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, IDSet):
            return NotImplemented
        return self != other and self.is_subset(other)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, IDSet):
            return NotImplemented
        return self != other and self.is_superset(other)

    # -- queries ------------------------------------------------------------------

    @property
    def min(self) -> int:
        """The smallest ID (``ValueError`` when empty)."""
        if not self._spans:
            raise ValueError("min() of an empty IDSet")
        return self._spans[0][0]

    @property
    def max(self) -> int:
        """The largest ID (``ValueError`` when empty)."""
        if not self._spans:
            raise ValueError("max() of an empty IDSet")
        return self._spans[-1][1] - 1

    def find_free(
        self,
        size: SupportsIndex,
        *,
        within: IDRange | IDSet | None = None,
        align: SupportsIndex = 1,
    ) -> IDRange | None:
        """The lowest block of ``size`` consecutive IDs that are NOT in this set.

        ``within`` limits where the block may lie (default: all IDs); ``align`` makes its
        start a multiple of ``align`` (65536 for Kubernetes-style blocks). ``None`` when
        no block fits.

        >>> used = IDSet([IDRange(100000, 65536), IDRange(200000, 65536)])
        >>> used.find_free(65536, within=IDRange(100000, 1000000))
        IDRange(265536, 65536)
        >>> used.find_free(65536, within=IDRange(100000, 1000000), align=65536)
        IDRange(327680, 65536)
        """
        size = size.__index__()
        align = align.__index__()
        if size < 1:
            raise InvalidRangeError(f"'size' must be >= 1: {size}", reason="empty-range")
        if align < 1:
            raise InvalidRangeError(f"'align' must be >= 1: {align}", reason="bad-align")
        room = _complement(self._spans)
        if within is not None:
            room = _intersection(room, _as_spans(within))
        for start, stop in room:
            first = -(-start // align) * align
            if first + size <= stop:
                return IDRange(first, size)
        return None

    def _repr_html_(self) -> str:
        from .display import set_html

        return set_html(self)
