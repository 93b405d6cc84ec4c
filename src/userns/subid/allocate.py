"""Subordinate ID allocation exactly as shadow 4.13 does it; aligned blocks; free space.

shadow (``lib/subordinateio.c``) allocates with ``find_free_range(db, min, max, count)``:

1. ``commonio_sort`` sorts the entries BEFORE THE FIRST NIS (``+``/``-``) line by start,
   then count, then owner (``strcmp``); lines shadow cannot parse sort after them; the
   NIS line and everything after it stay unsorted, in file order;
2. it walks every parsed entry in that order with ``low = min``: the hole before an
   entry is ``[low, min(first, max + 1))``; the first hole of at least ``count`` IDs wins
   and its START is returned; otherwise ``low`` moves past the entry's last ID;
3. after the last entry, ``[low, max]`` is tried.

All arithmetic is ``unsigned long`` (64 bits, wrapping). Consequences this module
reproduces on purpose: a commented-out line ``# alice:100000:65536`` still reserves its
range; an entry after a NIS line is seen out of order, so shadow can hand out a range
that OVERLAPS it; a count-0 entry splits a hole in two. ``useradd`` then writes the
whole file back SORTED (:func:`shadow_useradd` predicts its exact bytes).

>>> f = SubidFile.parse("a:100000:65536\\nb:231072:65536\\n")
>>> allocate(f)
IDRange(165536, 65536)
>>> allocate(f, 70000)
IDRange(296608, 70000)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, compress, islice, repeat
from itertools import count as count_from
from operator import attrgetter, eq, ge, itemgetter, sub
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .._foreign import ULONG_MAX
from ..errors import AllocationError
from ..ids import ID_MAX
from ..logindefs import LoginDefs, SubidLimits
from ..ranges import IDRange, IDSet
from .model import (
    CanonicalColumns,
    RawRange,
    SubidFile,
    SubidLine,
    _canonical_before,
    _interleave,
    lazy_file,
)
from .owners import check_owner

if TYPE_CHECKING:  # annotations only
    from .accounts import Accounts

__all__ = [
    "AllocationError",
    "FreeSpace",
    "allocate",
    "allocate_aligned",
    "allocate_many",
    "free_space",
    "shadow_add_range",
    "shadow_find_free_range",
    "shadow_have_range",
    "shadow_list_owner_ranges",
    "shadow_order",
    "shadow_remove_range",
    "shadow_useradd",
    "shadow_userdel",
    "shadow_usermod",
]

_U64 = 2**64
_UID_T = 2**32

T = TypeVar("T")
_shadow_of = attrgetter("shadow")
_start_of = attrgetter("start")
_count_of = attrgetter("count")


def _limits(defs: LoginDefs | SubidLimits | None, kind: str) -> SubidLimits:
    if isinstance(defs, SubidLimits):
        return defs
    return (defs or LoginDefs()).subid_limits(kind)


# -- glibc's qsort, for the order useradd writes the file in ---------------------------


def _glibc_msort(items: list[T], cmp: Callable[[T, T], int]) -> list[T]:
    """glibc 2.36 ``qsort``: a top-down merge sort (``msort_with_tmp``), not a quicksort.

    The order matters only where shadow's comparator is inconsistent (two unparsed
    lines compare as "greater" both ways), which decides where comments end up.
    """
    n = len(items)
    if n <= 1:
        return list(items)
    n1 = n // 2
    b1 = _glibc_msort(items[:n1], cmp)
    b2 = _glibc_msort(items[n1:], cmp)
    out: list[T] = []
    i = j = 0
    while i < len(b1) and j < len(b2):
        if cmp(b1[i], b2[j]) <= 0:
            out.append(b1[i])
            i += 1
        else:
            out.append(b2[j])
            j += 1
    out.extend(b1[i:])
    out.extend(b2[j:])
    return out


def _owner_key(owner: str) -> bytes:
    return owner.encode("utf-8", "surrogateescape")


def _range_cmp(a: SubidLine, b: SubidLine) -> int:
    # subordinate_range_cmp: unparsed entries are "greater", whichever side they are on.
    if a.shadow is None:
        return 1
    if b.shadow is None:
        return -1
    ka = (a.shadow.start, a.shadow.count, _owner_key(a.shadow.owner))
    kb = (b.shadow.start, b.shadow.count, _owner_key(b.shadow.owner))
    return (ka > kb) - (ka < kb)


def _shadow_sort_order(records: Sequence[RawRange]) -> list[int]:
    """The positions of ``records`` sorted by shadow's key (start, count, owner's bytes),
    ties in file order; the owners are compared only when some (start, count) repeats."""
    keys: list[tuple[int, int] | tuple[int, int, bytes]]
    keys = list(zip(map(_start_of, records), map(_count_of, records)))
    if len(set(keys)) < len(keys):
        keys = [(r.start, r.count, _owner_key(r.owner)) for r in records]
    return sorted(range(len(keys)), key=keys.__getitem__)  # stable: ties keep file order


def _shadow_sort(head: list[SubidLine]) -> list[SubidLine]:
    """``_glibc_msort(head, _range_cmp)``, in O(n log n) without a Python comparator.

    With shadow's comparator the merge sort is stable on parsed lines, puts every
    parsed line before every unparsed one, and orders the unparsed ones as "those of
    the right half, then those of the left half", recursively over the same halves the
    merge sort splits the WHOLE list into.
    """
    readings = list(map(_shadow_of, head))
    if None in readings:
        parsed_lines = [line for line, r in zip(head, readings) if r is not None]
        records = [r for r in readings if r is not None]
    else:
        parsed_lines, records = head, readings
    parsed = [parsed_lines[i] for i in _shadow_sort_order(records)]
    if len(parsed_lines) == len(head):
        return parsed
    unparsed_at = [i for i, r in enumerate(readings) if r is None]
    return parsed + [head[i] for i in _unparsed_order(unparsed_at, len(head))]


def _unparsed_order(unparsed_at: list[int], size: int) -> list[int]:
    """Where glibc's merge sort with shadow's comparator puts the unparsed lines of a
    list of ``size`` lines: ``unparsed_at`` (their positions, ascending) reordered."""
    order: list[int] = []

    def visit(lo: int, hi: int, first: int, last: int) -> None:
        # unparsed_at[first:last] are the unparsed positions within [lo, hi).
        if first >= last:
            return
        if hi - lo <= 1:
            order.extend(unparsed_at[first:last])
            return
        mid = lo + (hi - lo) // 2
        split = bisect_left(unparsed_at, mid, first, last)
        visit(mid, hi, split, last)
        visit(lo, mid, first, split)

    visit(0, size, 0, len(unparsed_at))
    return order


def shadow_order(file: SubidFile) -> list[SubidLine]:
    """The lines in the order ``commonio_sort`` leaves them (what ``useradd`` writes back).

    >>> f = SubidFile.parse("# c\\nz:300000:1\\na:100000:1\\n+nis\\nb:1:1\\n")
    >>> [line.text for line in shadow_order(f)]
    ['a:100000:1', 'z:300000:1', '# c', '+nis', 'b:1:1']
    """
    lines = list(file.lines)
    cut = next((i for i, line in enumerate(lines) if line.text[:1] in ("+", "-")), len(lines))
    head = lines[:cut]
    if len(head) <= 1:
        return lines
    return _shadow_sort(head) + lines[cut:]


#: ``gather(column)``: the column's items in an order worked out once (a sequence).
_Gather = Callable[[Sequence[T]], Sequence[T]]


def _canonical_order(columns: CanonicalColumns
                     ) -> tuple[_Gather[Any], Sequence[int], Sequence[int]]:
    """The canonical lines in shadow's order (start, count, owner's bytes, ties in file
    order: ``commonio_sort``'s merge sort is stable) as a gather (``gather(column)``:
    the column in that order), and the starts and counts in that order."""
    return _records_order(columns.starts, columns.counts, lambda: columns.owners)


def _gather(order: list[int]) -> _Gather[Any]:
    """``column -> [column[i] for i in order]``, done by ``itemgetter`` in one C call per
    column (100k items: 9 ms for two columns instead of 16 through ``map``).

    >>> _gather([2, 0, 1])("abc"), _gather([1])("ab"), _gather([])("ab")
    (('c', 'a', 'b'), ['b'], [])
    """
    if len(order) < 2:  # itemgetter of one position returns the item, not a sequence
        return lambda column: [column[i] for i in order]
    pick: _Gather[Any] = itemgetter(*order)
    return pick


def _records_order(starts: list[int], counts: list[int], owners: Callable[[], list[str]]
                   ) -> tuple[_Gather[Any], Sequence[int], Sequence[int]]:
    """:func:`_canonical_order` on records given column by column (``owners`` is called
    only when a start repeats)."""
    if not starts:
        return _gather([]), [], []
    # Sorting positions by start alone (a key of plain ints) is the fast common case;
    # only a repeated start needs the count and the owner's bytes.
    gather = _gather(sorted(range(len(starts)), key=starts.__getitem__))  # stable
    in_order = gather(starts)
    if any(map(eq, in_order, islice(in_order, 1, None))):
        keys = zip(starts, counts, map(_owner_key, owners()), range(len(starts)))
        gather = _gather([key[-1] for key in sorted(keys)])
        in_order = gather(starts)
    if counts.count(counts[0]) == len(counts):  # one count for all
        return gather, in_order, [counts[0]] * len(counts)
    return gather, in_order, gather(counts)


class _Sorted:
    """Records of canonical lines (each range inside ``0 … ID_MAX``) in the walk's order,
    sorted by start, as two columns; iterated, the ``(start, count)`` pairs.

    :func:`_find_free` walks it without a Python step per record when every count is
    the same (:func:`_first_fit_sorted`).
    """

    __slots__ = ("counts", "starts")

    def __init__(self, starts: Sequence[int], counts: Sequence[int]) -> None:
        self.starts = starts
        self.counts = counts

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.starts, self.counts)


def _is_nis(line: SubidLine) -> bool:
    return line.text[:1] in ("+", "-")


def _split_plan(columns: CanonicalColumns, others: Sequence[SubidLine]
                ) -> tuple[list[str], Iterable[tuple[int, int]]]:
    """For a file kept as canonical columns and other lines (``canonical_split``): the
    texts of its lines in shadow's order (:func:`shadow_order`) and the ``(start,
    count)`` of the records in that order (the walk's order), without building the
    canonical lines."""
    before = _canonical_before(others)
    cut = next((i for i, line in enumerate(others) if _is_nis(line)), len(others))
    # The head (before the first NIS line) is sorted; ci of its lines are canonical.
    ci = before[cut] if cut < len(others) else len(columns.texts)
    head_size = ci + cut
    texts, starts, counts = columns.texts, columns.starts, columns.counts
    if ci < len(texts):
        texts, starts, counts = texts[:ci], starts[:ci], counts[:ci]
    owners: Callable[[], list[str]] = lambda: columns.owners[:ci]  # noqa: E731
    read = [(k, line.text, line.shadow) for k, line in zip(before[:cut], others[:cut])
            if line.shadow is not None]
    if read:  # other lines shadow reads as records (a commented-out entry, a hex number)
        texts = _interleave(texts, [(k, text) for k, text, _ in read])
        starts = _interleave(starts, [(k, r.start) for k, _, r in read])
        counts = _interleave(counts, [(k, r.count) for k, _, r in read])
        names = owners
        owners = lambda: _interleave(names(), [(k, r.owner) for k, _, r in read])  # noqa: E731
    gather, sorted_starts, sorted_counts = _records_order(starts, counts, owners)
    out = list(gather(texts))
    unparsed = {line.lineno - 1: line.text for line in others[:cut] if line.shadow is None}
    if unparsed:
        out += map(unparsed.__getitem__, _unparsed_order(list(unparsed), head_size))
    # Columns, as on the canonical path (100k tuples built at once wake the cyclic
    # garbage collector: 20 ms per 100k-line file); canonical records only unless
    # another line shadow reads was merged in.
    pairs: Iterable[tuple[int, int]] = (
        zip(sorted_starts, sorted_counts) if read else _Sorted(sorted_starts, sorted_counts))
    if cut < len(others):  # the NIS line and everything after it stay in file order
        tail = others[cut:]
        at = [k - ci for k in before[cut:]]
        out += _interleave(columns.texts[ci:], [(k, line.text) for k, line in zip(at, tail)])
        pairs = chain(pairs, _interleave(
            list(zip(columns.starts[ci:], columns.counts[ci:])),
            [(k, (line.shadow.start, line.shadow.count)) for k, line in zip(at, tail)
             if line.shadow is not None]))
    return out, pairs


def _pairs_in_shadow_order(file: SubidFile) -> Iterable[tuple[int, int]]:
    """``(start, count)`` of every record shadow's walk meets, in an order whose walk is
    the walk of shadow's order.

    Records tied on (start, count) differ only in their owner, which the walk never
    reads. For a file of canonical lines (every count at least 1, nothing wraps) the
    start alone is enough: records sharing a start leave ``low`` at the largest of
    their ends whatever their order, and none after the first has a hole before it.
    """
    split = file.canonical_split
    if split is not None and any(line.shadow is not None or _is_nis(line) for line in split[1]):
        return _split_plan(*split)[1]
    if split is not None:
        # The canonical lines are all the records; no NIS line: they are walked sorted.
        columns = split[0]
        starts, counts = columns.starts, columns.counts
        if counts.count(counts[0]) == len(counts):  # one count for all: sort the starts
            return _Sorted(sorted(starts), [counts[0]] * len(counts))
        order = sorted(range(len(starts)), key=starts.__getitem__)
        return _Sorted(list(map(starts.__getitem__, order)), list(map(counts.__getitem__, order)))
    lines = file.lines
    cut = next((i for i, line in enumerate(lines) if line.text[:1] in ("+", "-")), len(lines))
    head = [r for r in map(_shadow_of, lines[:cut]) if r is not None]
    tail = [r for r in map(_shadow_of, lines[cut:]) if r is not None]
    pairs = sorted(zip(map(_start_of, head), map(_count_of, head)))
    return pairs + list(zip(map(_start_of, tail), map(_count_of, tail)))


def shadow_find_free_range(
    records: Iterable[RawRange], min: int, max: int, count: int
) -> int | None:
    """shadow's ``find_free_range`` loop over ``records`` in the order given, or ``None``.

    Use :func:`allocate` for a file; this is the bare loop, with shadow's 64-bit
    wrapping arithmetic, for records already in shadow's order.

    >>> recs = [RawRange("a", 100000, 65536, 1), RawRange("b", 200000, 1, 2)]
    >>> shadow_find_free_range(recs, 100000, 600100000, 65536)
    200001
    """
    return _find_free(((r.start, r.count) for r in records), min, max, count)


def _holes(pairs: Iterable[tuple[int, int]], lowest: int, highest: int,
           at_least: int = 1) -> Iterator[tuple[int, int]]:
    """Every hole ``[lo, hi)`` of at least ``at_least`` (>= 1) IDs that shadow's
    ``find_free_range`` walk meets, in walk order.

    The walk (the one copy of it), over ``(start, count)`` records in shadow's order:
    ``low`` starts at ``lowest`` (MIN); the hole before a record is
    ``[low, min(start, highest + 1))``; then ``low`` moves to the record's last ID + 1
    (``unsigned long``: it wraps) if that is higher, and the walk ends once ``low``
    passes ``highest`` (MAX); after the last record the hole is ``[low, highest + 1)``.
    The holes do not depend on the count asked for: ``find_free_range`` returns the
    start of the first hole of at least ``count`` IDs.

    >>> list(_holes([(100, 10), (150, 5), (140, 2)], 100, 199))
    [(110, 150), (155, 200)]
    >>> next(_holes([(100, 10), (150, 5), (140, 2)], 100, 199, 41))
    (155, 200)
    """
    if highest < lowest:
        return
    low = lowest
    cap = highest + 1
    for first, size in pairs:
        high = first if first < cap else cap
        if high - low >= at_least:
            yield low, high
        end = (first + size) % _U64  # the last ID + 1, in unsigned long
        if end > low:
            low = end
            if low > highest:
                return
    if cap - low >= at_least:
        yield low, cap


def _find_free(pairs: Iterable[tuple[int, int]], lowest: int, highest: int,
               count: int) -> int | None:
    """:func:`shadow_find_free_range` on ``(start, count)`` pairs: the start of the first
    hole of at least ``count`` IDs."""
    if count == 0:
        return None
    if isinstance(pairs, _Sorted):
        counts = pairs.counts
        if counts and counts.count(counts[0]) == len(counts):
            return _first_fit_sorted(pairs.starts, counts[0], lowest, highest, count)
    hole = next(_holes(pairs, lowest, highest, count), None)
    return None if hole is None else hole[0]


def _first_fit_sorted(starts: Sequence[int], size: int, lowest: int, highest: int,
                      count: int) -> int | None:
    """:func:`_find_free` on records that all hand out ``size`` (>= 1) IDs, sorted by
    start, none past ``ID_MAX``: the walk's holes found by comparing neighbours in C.

    With one size and ascending starts, the ends ascend too, so ``low`` before a record
    is the end of the record before it (or ``lowest``): the hole before record ``i`` is
    ``[starts[i-1] + size, starts[i])``. Records that end by ``lowest`` leave ``low``
    where it is and have no hole; from the first start past ``highest`` on, the walk
    meets only the hole up to ``highest + 1`` (the one after the last record too).

    >>> _first_fit_sorted([100, 105, 130, 300], 10, 100, 399, 15)
    115
    >>> _first_fit_sorted([100, 105, 130, 300], 10, 100, 399, 200)
    >>> _first_fit_sorted([100], 10, 100, 399, 290), _first_fit_sorted([100], 10, 100, 399, 291)
    (110, None)
    """
    if count == 0 or highest < lowest:
        return None
    cap = highest + 1
    first = bisect_right(starts, lowest - size)  # the first record ending past lowest
    stop = bisect_left(starts, cap, first)  # the first record from the cap on
    low = lowest
    if first < stop:
        if starts[first] - lowest >= count:
            return lowest
        # neighbours (i, i + 1) for i in first … stop - 2: a hole of count IDs after i?
        gaps = map(sub, islice(starts, first + 1, stop), islice(starts, first, stop - 1))
        after = next(compress(count_from(first), map(ge, gaps, repeat(count + size))), None)
        if after is not None:
            return starts[after] + size
        low = starts[stop - 1] + size
    return low if cap - low >= count else None


def _check_limits(limits: SubidLimits) -> None:
    problem = limits.problem()
    if problem is not None:
        raise AllocationError(problem, reason="invalid-config")


def allocate(
    file: SubidFile,
    count: int | None = None,
    *,
    defs: LoginDefs | SubidLimits | None = None,
    kind: str = "uid",
) -> IDRange:
    """The range shadow's ``useradd`` would give a new owner in this file.

    ``count`` defaults to ``SUB_UID_COUNT`` (or ``SUB_GID_COUNT`` with ``kind="gid"``)
    from ``defs`` (a :class:`~userns.logindefs.LoginDefs`, explicit
    :class:`~userns.logindefs.SubidLimits`, or ``None`` for shadow's defaults).
    Raises :class:`AllocationError` (``no-room``, ``invalid-config``, ``past-id-max``).
    O(n log n) in the number of lines.

    >>> allocate(SubidFile.parse("x:100000:65536\\n"), defs=SubidLimits(100000, 200000, 65536))
    Traceback (most recent call last):
      ...
    userns.errors.AllocationError: no free range of 65536 IDs in 100000…200000 [no-room]
    """
    limits = _limits(defs, kind)
    if count is not None:
        limits = SubidLimits(limits.min, limits.max, count)
    return _first_fit(_pairs_in_shadow_order(file), limits)


def _first_fit(pairs: Iterable[tuple[int, int]], limits: SubidLimits) -> IDRange:
    """:func:`allocate` on ``(start, count)`` pairs already in shadow's order."""
    _check_limits(limits)
    start = _find_free(pairs, limits.min, limits.max, limits.count)
    if start is None:
        raise AllocationError(
            f"no free range of {limits.count} IDs in {limits.min}…{limits.max}",
            reason="no-room")
    return _checked(start, limits)


def _window(limits: SubidLimits) -> IDSet:
    """``min … max`` (inclusive) as a set of valid IDs; empty when ``max < min``."""
    top = min(limits.max, ID_MAX)
    if top < limits.min:
        return IDSet()
    return IDRange.from_bounds(limits.min, top).to_set()


def _has_nis(file: SubidFile) -> bool:
    """A NIS line: entries after it are walked unsorted, and so are new ones."""
    split = file.canonical_split
    return any(map(_is_nis, file.lines if split is None else split[1]))


def _checked(start: int, limits: SubidLimits, owner: str | None = None) -> IDRange:
    """shadow's 32-bit view of a start it found (``(uid_t) start``)."""
    who = f" for {owner!r}" if owner is not None else ""
    if start % _UID_T == _UID_T - 1:
        raise AllocationError(
            f"no free range of {limits.count} IDs in {limits.min}…{limits.max}{who}",
            reason="no-room")
    if start + limits.count - 1 > ID_MAX:
        raise AllocationError(
            f"shadow would pick start {start}, past the largest ID; it would write "
            f"{start % _UID_T} (truncated to 32 bits){who}", reason="past-id-max")
    return IDRange(start, limits.count)


def _used(file: SubidFile) -> IDSet:
    """Every ID a shadow-read line reserves (valid IDs only)."""
    spans = []
    for r in file.shadow_records:
        if r.count >= 1 and r.start <= ID_MAX:
            stop = min(r.start + r.count, ID_MAX + 1)
            spans.append(IDRange(r.start, stop - r.start))
    return IDSet(spans)


def allocate_many(
    file: SubidFile,
    owners: Sequence[str],
    count: int | None = None,
    *,
    defs: LoginDefs | SubidLimits | None = None,
    kind: str = "uid",
) -> tuple[SubidFile, list[IDRange]]:
    """Allocate for each owner in turn as successive ``useradd`` runs would; the new file.

    The result's text is the input with one ``owner:start:count`` line appended per
    owner (lossless, not re-sorted). O((n + k) log n) for n lines and k owners: one
    walk lists shadow's holes, and each allocation takes the start of the first hole
    big enough (the next ``useradd`` sorts the new entry into exactly that place). With
    a NIS line shadow walks new entries last, so each allocation replays the walk
    (and shadow hands out the same middle hole again and again). Raises
    :class:`AllocationError` on the first owner that does not fit.

    >>> f, got = allocate_many(SubidFile.parse(""), ["a", "b"])
    >>> got, f.text
    ([IDRange(100000, 65536), IDRange(165536, 65536)], 'a:100000:65536\\nb:165536:65536\\n')
    """
    limits = _limits(defs, kind)
    if count is not None:
        limits = SubidLimits(limits.min, limits.max, count)
    _check_limits(limits)
    got: list[IDRange] = []
    if not _has_nis(file):
        holes = list(_holes(_pairs_in_shadow_order(file), limits.min, limits.max))
        i = 0
        pos = holes[0][0] if holes else 0
        for owner in owners:
            while i < len(holes) and holes[i][1] - pos < limits.count:
                i += 1
                if i < len(holes):
                    # A wrapping entry leaves shadow's low where it was, so a later hole
                    # can start inside one already handed out: never go back.
                    pos = max(pos, holes[i][0])
            if i >= len(holes):
                raise AllocationError(
                    f"no free range of {limits.count} IDs in {limits.min}…{limits.max} "
                    f"for {owner!r}", reason="no-room")
            got.append(_checked(pos, limits, owner))
            pos += limits.count
        return file.add_ranges([(o, r) for o, r in zip(owners, got)]), got
    for owner in owners:
        r = allocate(file, defs=limits)
        file = file.add_ranges([(owner, r)])
        got.append(r)
    return file, got


def allocate_aligned(
    file: SubidFile,
    count: int = 65536,
    *,
    align: int = 65536,
    defs: LoginDefs | SubidLimits | None = None,
    kind: str = "uid",
) -> IDRange:
    """The lowest free block of ``count`` IDs whose start is a multiple of ``align``.

    Kubernetes-style: 65536-aligned blocks of 65536, between SUB_UID_MIN and MAX, clear
    of every range any line reserves (as shadow reads it). Not shadow's choice.

    >>> allocate_aligned(SubidFile.parse("a:100000:65536\\n"))
    IDRange(196608, 65536)
    """
    limits = _limits(defs, kind)
    found = _used(file).find_free(count, within=_window(limits), align=align)
    if found is None:
        raise AllocationError(
            f"no free {align}-aligned block of {count} IDs in {limits.min}…{limits.max}",
            reason="no-room")
    return found


@attrs.frozen
class FreeSpace:
    """How much room a subid file has left between MIN and MAX.

    ``free`` is the set of unreserved IDs there; ``fits`` how many more owners of
    ``count`` IDs shadow's first fit can place (counted on the holes its walk sees, so
    commented-out and count-0 lines weigh as they do for ``useradd``); ``fits_aligned``
    how many ``align``-aligned blocks fit; ``next`` the range :func:`allocate` gives now
    (``None``: no room); ``repeats`` is True when a NIS line makes shadow hand ``next``
    out again to the owner after (it walks new entries last).
    """

    limits: SubidLimits
    used: IDSet
    free: IDSet
    fits: int
    fits_aligned: int
    largest: IDRange | None
    next: IDRange | None
    repeats: bool = False

    def __str__(self) -> str:
        return (f"{len(self.free)} free IDs in {self.limits.min}…{self.limits.max}, "
                f"room for {self.fits} more owners of {self.limits.count} "
                f"({self.fits_aligned} aligned)")


def free_space(
    file: SubidFile,
    *,
    defs: LoginDefs | SubidLimits | None = None,
    kind: str = "uid",
    align: int = 65536,
) -> FreeSpace:
    """Report the free IDs and how many more owners fit (O(n log n)).

    >>> print(free_space(SubidFile.parse("a:100000:65536\\n"),
    ...                  defs=SubidLimits(100000, 362143, 65536)))
    196608 free IDs in 100000…362143, room for 3 more owners of 65536 (2 aligned)
    """
    limits = _limits(defs, kind)
    within = _window(limits)
    used = _used(file) & within
    free = within - used
    count = limits.count
    fits = 0
    pos = 0
    for lo, hi in _holes(_pairs_in_shadow_order(file), limits.min, min(limits.max, ID_MAX)):
        # First fit with one count fills each hole before the next (see allocate_many).
        start = max(lo, pos)
        if count and hi - start >= count:
            n = (hi - start) // count
            fits += n
            pos = start + n * count
    step = -(-count // align) * align if count else align
    aligned = 0
    for r in free.ranges:
        first = -(-r.start // align) * align
        if count and first + count <= r.stop:
            aligned += (r.stop - count - first) // step + 1
    largest = max(free.ranges, key=lambda r: (r.size, -r.start), default=None)
    try:
        nxt: IDRange | None = allocate(file, defs=limits)
    except AllocationError:
        nxt = None
    repeats = False
    if nxt is not None and _has_nis(file):
        try:
            repeats = allocate(file.add_ranges([("next", nxt)]), defs=limits) == nxt
        except AllocationError:
            repeats = False
    return FreeSpace(limits, used, free, fits, aligned, largest, nxt, repeats)


# -- what useradd and usermod write ---------------------------------------------------


def _shadow_text(lines: Iterable[SubidLine | str]) -> str:
    # commonio write_all: an unchanged line is written back with "\n", a changed or new
    # one through subordinate_put ("%s:%lu:%lu\n").
    return "".join((x if isinstance(x, str) else x.text) + "\n" for x in lines)


def shadow_useradd(
    file: SubidFile,
    owner: str,
    *,
    defs: LoginDefs | SubidLimits | None = None,
    kind: str = "uid",
) -> tuple[SubidFile, IDRange]:
    """The file ``useradd`` writes when it adds ``owner``, and the range it allocates.

    The lines before the first NIS line come back sorted (glibc merge sort with shadow's
    comparator), every line ends in a newline, and the new entry is appended LAST.

    >>> new, r = shadow_useradd(SubidFile.parse("z:300000:65536\\n# c\\na:100000:65536"), "n")
    >>> print(new.text, end="")
    a:100000:65536
    z:300000:65536
    # c
    n:165536:65536
    """
    check_owner(owner, badname=True)  # useradd checked the name: the hard rules only
    limits = _limits(defs, kind)
    split = file.canonical_split
    if split is not None and split[1]:
        # Canonical lines and a few others: shadow's order worked out on the columns.
        texts, pairs = _split_plan(*split)
        r = _first_fit(pairs, limits)
        texts.append(f"{owner}:{r.start}:{limits.count}\n")  # the last newline with it
        return lazy_file("\n".join(texts), path=file.path), r
    columns = None if split is None else split[0]
    if columns is None:
        ordered = shadow_order(file)  # the records in it are in the walk's order too
        records = [r for r in map(_shadow_of, ordered) if r is not None]
        r = _first_fit(zip(map(_start_of, records), map(_count_of, records)), limits)
        text = _shadow_text([*ordered, f"{owner}:{r.start}:{limits.count}"])
        return lazy_file(text, path=file.path), r
    # Canonical lines only: every line is a record, and shadow's order is the stable
    # sort by (start, count, owner's bytes); the new line goes last.
    gather, starts, counts = _canonical_order(columns)
    r = _first_fit(_Sorted(starts, counts), limits)
    text = "\n".join(gather(columns.texts))
    # Appended in place (the only reference to a fresh string: no copy of the file to
    # add one line). The new file is read only if someone asks for more than its text.
    text += f"\n{owner}:{r.start}:{limits.count}\n"
    return lazy_file(text, path=file.path), r


def _find_range(
    records: Sequence[RawRange], owner: str, val: int, accounts: Accounts | None
) -> RawRange | None:
    for r in records:
        if r.owner == owner and r.start <= val <= (r.start + r.count - 1) % _U64:
            return r
    if accounts is None:
        return None
    # Only for the real /etc/subuid and /etc/subgid (not under --prefix): match by uid.
    owner_uid = accounts.uid_of(owner)
    if owner_uid is None:
        return None
    for r in records:
        if not (r.start <= val <= (r.start + r.count - 1) % _U64):
            continue
        if r.owner == str(owner_uid) or accounts.uid_of(r.owner) == owner_uid:
            return r
    return None


def shadow_have_range(
    file: SubidFile, owner: str, start: int, count: int, *, accounts: Accounts | None = None
) -> bool:
    """shadow's ``have_range``: does ``owner`` hold every ID of ``[start, start+count)``?

    Adjacent entries of the owner may be chained. ``accounts`` turns on the second pass
    that matches by uid (shadow does it only for the files named exactly
    ``/etc/subuid``/``/etc/subgid``, i.e. not under ``--prefix``).

    >>> f = SubidFile.parse("a:100:10\\na:110:10\\n")
    >>> shadow_have_range(f, "a", 105, 10), shadow_have_range(f, "a", 105, 20)
    (True, False)
    """
    if count == 0:
        return False
    records = file.shadow_records
    end = (start + count - 1) % _U64
    r = _find_range(records, owner, start, accounts)
    while r is not None:
        last = (r.start + r.count - 1) % _U64
        if last >= (start + count - 1) % _U64:
            return True
        count = (end - last) % _U64
        start = (last + 1) % _U64
        r = _find_range(records, owner, start, accounts)
    return False


def _reparse(file: SubidFile, lines: list[SubidLine | str]) -> SubidFile:
    return SubidFile.parse(_shadow_text(lines), path=file.path)


def shadow_add_range(
    file: SubidFile, owner: str, start: int, count: int, *, accounts: Accounts | None = None
) -> SubidFile:
    """shadow's ``add_range`` and the file it writes (``usermod --add-subuids``).

    Unchanged when ``owner`` already holds the range (nothing is written); otherwise
    the entry is appended at the very end and every line ends in a newline.
    """
    check_owner(owner, badname=True)  # usermod checked the name: the hard rules only
    if shadow_have_range(file, owner, start, count, accounts=accounts):
        return file
    return _reparse(file, [*file.lines, f"{owner}:{start}:{count}"])


def shadow_remove_range(file: SubidFile, owner: str, start: int, count: int) -> SubidFile:
    """shadow's ``remove_range`` and the file it writes (``usermod --del-subuids``).

    Each entry of ``owner`` (exact text) that meets the range is deleted, trimmed, or
    split; a trimmed entry is rewritten as ``owner:start:count``, and the upper part of
    a split entry is appended at the end. Unchanged when nothing meets the range.
    """
    if count == 0:
        return file
    end = (start + count - 1) % _U64
    out: list[SubidLine | str] = []
    tails: list[SubidLine | str] = []
    changed = False
    for line in file.lines:
        r = line.shadow
        if r is None or r.owner != owner:
            out.append(line)
            continue
        first, last = r.start, (r.start + r.count - 1) % _U64
        if end < first or start > last:
            out.append(line)
            continue
        changed = True
        if start <= first:
            if end < last:
                out.append(f"{owner}:{end + 1}:{last - end}")
        elif end >= last:
            out.append(f"{owner}:{first}:{start - first}")
        else:
            tails.append(f"{owner}:{end + 1}:{last - end}")
            out.append(f"{owner}:{first}:{start - first}")
    if not changed:
        return file
    return _reparse(file, out + tails)


def shadow_userdel(file: SubidFile, owner: str) -> SubidFile:
    """The file ``userdel`` writes: ``remove_range(owner, 0, ULONG_MAX)``.

    Every entry of ``owner`` (exact text) goes, except one whose range wraps past
    2**64 (``alice:-1:3``), which that call's arithmetic cannot reach.

    >>> shadow_userdel(SubidFile.parse("a:1:1\\nb:2:2\\na:5:0"), "a").text
    'b:2:2\\n'
    """
    return shadow_remove_range(file, owner, 0, ULONG_MAX)


def shadow_usermod(
    file: SubidFile,
    owner: str,
    *,
    add: Sequence[IDRange] = (),
    remove: Sequence[IDRange] = (),
    accounts: Accounts | None = None,
) -> SubidFile:
    """The file ``usermod -v/-V`` writes: ``add``/``remove`` in command-line order.

    usermod keeps the options in a list it PREPENDS to, so it applies them in reverse
    order, and all removals before all additions.
    """
    for r in reversed(remove):
        file = shadow_remove_range(file, owner, r.start, r.size)
    for r in reversed(add):
        file = shadow_add_range(file, owner, r.start, r.size, accounts=accounts)
    return file


def shadow_list_owner_ranges(
    file: SubidFile, owner: str, *, accounts: Accounts | None = None, kind: str = "uid"
) -> list[tuple[int, int]]:
    """What ``getsubids OWNER`` (``kind="uid"``) or ``getsubids -g OWNER`` lists.

    libsubid's ``list_owner_ranges``: every line shadow reads whose owner is ``owner``
    or the decimal ID of ``owner``, in file order, as ``(start, count)`` (unsigned long
    values, so a ``-1`` start shows as 18446744073709551615). For ``-g`` the ID is the
    gid of the GROUP named ``owner`` (``getgrnam``), not the user's uid or primary gid.

    >>> from userns.subid import Accounts
    >>> acc = Accounts.parse("alice:x:1000:1000::/:/bin/sh\\n", "alice:x:2000:\\n")
    >>> f = SubidFile.parse("alice:1:1\\n1000:2:2\\n2000:3:3\\n")
    >>> shadow_list_owner_ranges(f, "alice", accounts=acc)
    [(1, 1), (2, 2)]
    >>> shadow_list_owner_ranges(f, "alice", accounts=acc, kind="gid")
    [(1, 1), (3, 3)]
    """
    ident: int | None = None
    if accounts is not None:
        ident = accounts.uid_of(owner) if kind == "uid" else accounts.gid_of(owner)
    id_text = None if ident is None else str(ident)
    out: list[tuple[int, int]] = []
    for r in file.shadow_records:
        # Both tests are made, so an owner "1000" that is also uid 1000 is listed twice.
        if r.owner == owner:
            out.append((r.start, r.count))
        if id_text is not None and r.owner == id_text:
            out.append((r.start, r.count))
    return out
