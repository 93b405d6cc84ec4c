"""Allocation: shadow's first fit, its quirks, batch, aligned, free space, scale."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from userns import IDRange, IDSet
from userns.logindefs import LoginDefs, SubidLimits
from userns.subid import (
    AllocationError,
    RawRange,
    SubidFile,
    allocate,
    allocate_aligned,
    allocate_many,
    free_space,
    shadow_add_range,
    shadow_find_free_range,
    shadow_have_range,
    shadow_order,
    shadow_remove_range,
    shadow_useradd,
)

UNIVERSE = 200

small_entries = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, UNIVERSE - 1),
              st.integers(1, 40)), max_size=8)
small_limits = st.tuples(st.integers(0, UNIVERSE), st.integers(0, UNIVERSE + 50),
                         st.integers(1, 60)).map(lambda t: SubidLimits(*t))


def brute_first_fit(entries: list[tuple[str, int, int]], limits: SubidLimits) -> int | None:
    used: set[int] = set()
    for _, s, c in entries:
        used.update(range(s, s + c))
    for start in range(limits.min, limits.max - limits.count + 2):
        if not used.intersection(range(start, start + limits.count)):
            return start
    return None


@given(small_entries, small_limits)
@example([("a", 10, 5)], SubidLimits(10, 30, 5))
@example([("a", 0, 10), ("b", 15, 10)], SubidLimits(0, 100, 5))  # exact gap
@example([], SubidLimits(5, 9, 5))  # MAX inclusive: 5…9 holds exactly 5 IDs
@settings(deadline=None)
def test_allocate_is_first_fit_on_plain_files(
    entries: list[tuple[str, int, int]], limits: SubidLimits
) -> None:
    f = SubidFile.from_entries(entries)
    want = brute_first_fit(entries, limits) if limits.problem() is None else None
    if limits.problem() is not None:
        with pytest.raises(AllocationError) as info:
            allocate(f, defs=limits)
        assert info.value.reason == "invalid-config"
    elif want is None:
        with pytest.raises(AllocationError) as info:
            allocate(f, defs=limits)
        assert info.value.reason == "no-room" and isinstance(info.value, LookupError)
    else:
        assert allocate(f, defs=limits) == IDRange(want, limits.count)


def test_quirks_shadow_really_has() -> None:
    limits = SubidLimits(100000, 600100000, 65536)
    # A commented-out entry still reserves its range.
    assert allocate(SubidFile.parse("# a:100000:65536\n"), defs=limits).start == 165536
    # Lines shadow cannot read do not.
    assert allocate(SubidFile.parse("a:100000:65536 \n"), defs=limits).start == 100000
    # Hex and octal are read by strtoul: 0x186a0 == 100000; 0303240 == 100000.
    assert allocate(SubidFile.parse("a:0x186a0:0x10000\n"), defs=limits).start == 165536
    assert allocate(SubidFile.parse("a:0303240:65536\n"), defs=limits).start == 165536
    # A count-0 entry splits a hole: 100000…150000 is too small, so 150000 is chosen.
    assert allocate(SubidFile.parse("z:150000:0\n"), defs=limits).start == 150000
    # An entry after a NIS line is seen out of order: shadow allocates over it.
    nis = SubidFile.parse("zed:300000:65536\n+nis\nbob:165536:10\n")
    got = allocate(nis, defs=limits)
    assert got == IDRange(100000, 65536)
    nis2 = SubidFile.parse("a:100000:65536\nzed:300000:65536\n+nis\nbob:165536:10\n")
    assert allocate(nis2, defs=limits).overlaps(IDRange(165536, 10))


def test_useradd_writes_the_file_sorted() -> None:
    f = SubidFile.parse("z:300000:65536\n# note\n\nb:100000:65536\n+nis\na:1:1")
    new, r = shadow_useradd(f, "new")
    assert r == IDRange(165536, 65536)
    assert new.text == "b:100000:65536\nz:300000:65536\n\n# note\n+nis\na:1:1\nnew:165536:65536\n"
    assert [line.text for line in shadow_order(f)][:2] == ["b:100000:65536", "z:300000:65536"]


def test_find_free_range_wraps_like_unsigned_long() -> None:
    # "-1" is ULONG_MAX; its last ID wraps to ULONG_MAX - 1 + count.
    recs = [RawRange("a", 2**64 - 1, 2, 1)]
    assert shadow_find_free_range(recs, 100, 1000, 10) == 100
    assert shadow_find_free_range([], 5, 4, 1) is None
    assert shadow_find_free_range([], 5, 10, 0) is None


def test_invalid_configuration_is_shadows_check() -> None:
    f = SubidFile.parse("")
    for limits in (SubidLimits(10, 5, 1), SubidLimits(0, 100, 100), SubidLimits(50, 100, 52)):
        with pytest.raises(AllocationError) as info:
            allocate(f, defs=limits)
        assert info.value.reason == "invalid-config"
    assert allocate(f, defs=SubidLimits(50, 100, 51)) == IDRange(50, 51)


def test_defaults_come_from_login_defs() -> None:
    defs = LoginDefs.parse("SUB_GID_MIN 200000\nSUB_GID_COUNT 1000\n")
    assert allocate(SubidFile.parse(""), defs=defs, kind="gid") == IDRange(200000, 1000)
    assert allocate(SubidFile.parse(""), defs=defs) == IDRange(100000, 65536)
    assert allocate(SubidFile.parse(""), 10) == IDRange(100000, 10)


weird_lines = st.lists(st.one_of(
    st.integers(0, UNIVERSE).map(lambda s: f"z:{s}:0"),  # splits a hole
    st.integers(1, 30).map(lambda c: f"w:-1:{c}"),  # ULONG_MAX start, wraps
    st.tuples(st.integers(0, UNIVERSE), st.integers(1, 30)).map(
        lambda t: f"# c:{t[0]}:{t[1]}"),  # a comment shadow reads
    st.just("+nis"),
), max_size=3)


@given(small_entries, small_limits, st.integers(1, 6), weird_lines)
@settings(max_examples=80, deadline=None)
def test_allocate_many_is_repeated_allocate(
    entries: list[tuple[str, int, int]], limits: SubidLimits, k: int, weird: list[str]
) -> None:
    if limits.problem() is not None:
        return
    f = SubidFile.parse(SubidFile.from_entries(entries).text + "".join(w + "\n" for w in weird))
    owners = [f"n{i}" for i in range(k)]
    want: list[IDRange] = []
    probe = f
    failed = False
    for o in owners:
        try:
            r = allocate(probe, defs=limits)
        except AllocationError:
            failed = True
            break
        want.append(r)
        probe = probe.add_ranges([(o, r)])
    if failed:
        with pytest.raises(AllocationError):
            allocate_many(f, owners, defs=limits)
    else:
        new, got = allocate_many(f, owners, defs=limits)
        assert got == want
        assert new.text == probe.text


@given(small_entries, st.sampled_from([1, 4, 16, 64]), st.integers(1, 40))
@settings(deadline=None)
def test_allocate_aligned_is_lowest_aligned_free_block(
    entries: list[tuple[str, int, int]], align: int, count: int
) -> None:
    limits = SubidLimits(0, UNIVERSE + 100, count)
    f = SubidFile.from_entries(entries)
    used: set[int] = set()
    for _, s, c in entries:
        used.update(range(s, s + c))
    want = next((s for s in range(0, limits.max - count + 2, align)
                 if not used.intersection(range(s, s + count))), None)
    if want is None:
        with pytest.raises(AllocationError):
            allocate_aligned(f, count, align=align, defs=limits)
    else:
        assert allocate_aligned(f, count, align=align, defs=limits) == IDRange(want, count)


@given(small_entries, small_limits, weird_lines)
@settings(max_examples=80, deadline=None)
def test_free_space_counts_what_repeated_allocation_places(
    entries: list[tuple[str, int, int]], limits: SubidLimits, weird: list[str]
) -> None:
    text = "".join(w + "\n" for w in weird if w != "+nis")
    f = SubidFile.parse(SubidFile.from_entries(entries).text + text)
    report = free_space(f, defs=limits, align=8)
    n = 0
    probe = f
    while limits.problem() is None:
        try:
            r = allocate(probe, defs=limits)
        except AllocationError:
            break
        probe = probe.add_ranges([("x", r)])
        n += 1
    if limits.problem() is None:
        assert report.fits == n
        assert report.next == (None if n == 0 else allocate(f, defs=limits))
    aligned = 0
    probe = f
    while True:
        try:
            r = allocate_aligned(probe, limits.count, align=8, defs=limits)
        except AllocationError:
            break
        probe = probe.add_ranges([("x", r)])
        aligned += 1
    assert report.fits_aligned == aligned
    within = IDSet([IDRange.from_bounds(limits.min, limits.max)]) if limits.max >= limits.min \
        else IDSet()
    assert report.free | report.used == within
    assert report.free.is_disjoint(report.used)


def test_nis_line_makes_shadow_repeat_itself() -> None:
    f = SubidFile.parse("a:100000:65536\nz:300000:65536\n+nis\n")
    _, got = allocate_many(f, ["u1", "u2", "u3"])
    assert got == [IDRange(165536, 65536)] * 3
    assert free_space(f).repeats
    assert not free_space(SubidFile.parse("a:100000:65536\nz:300000:65536\n")).repeats


def test_free_space_report_text() -> None:
    f = SubidFile.parse("a:100000:65536\n")
    report = free_space(f, defs=SubidLimits(100000, 600100000, 65536))
    assert report.fits == 9154 and report.next == IDRange(165536, 65536)
    assert report.largest == IDRange(165536, 600100000 - 165536 + 1)
    assert str(report).startswith("599934465 free IDs in 100000…600100000, room for 9154")


valid_entries = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 100), st.integers(1, 30)),
    max_size=6)


@given(valid_entries, st.integers(0, 120), st.integers(1, 40))
@settings(deadline=None)
def test_lossless_edits_agree_with_shadow_on_ids(
    entries: list[tuple[str, int, int]], start: int, count: int
) -> None:
    f = SubidFile.from_entries(entries)
    r = IDRange(start, count)

    def ids(file: SubidFile, owner: str) -> IDSet:
        return IDSet(file.ranges_for(owner))

    mine, theirs = f.remove_range("a", r), shadow_remove_range(f, "a", start, count)
    assert ids(mine, "a") == ids(theirs, "a") == ids(f, "a") - r
    assert ids(mine, "b") == ids(f, "b")
    mine, theirs = f.add_range("a", r), shadow_add_range(f, "a", start, count)
    assert ids(mine, "a") == ids(theirs, "a") == ids(f, "a") | r
    assert (mine is f) == (theirs is f) == shadow_have_range(f, "a", start, count)
    # Lines the edit did not touch keep their exact text, in order.
    untouched = [line.text for line in f.lines if line.entry and line.entry.owner == "b"]
    assert [line.text for line in mine.lines if line.entry and line.entry.owner == "b"] \
        == untouched


def test_scale_100k_lines() -> None:
    """100k owners: parse, allocate, batch-allocate, report, lint in linearithmic time."""
    n = 100_000
    text = "".join(f"user{i}:{100000 + i * 40000}:40000\n" for i in range(n))
    f = SubidFile.parse(text)
    assert len(f.entries) == n
    limits = SubidLimits(100000, 4294967294, 40000)
    first = allocate(f, defs=limits)
    assert first == IDRange(100000 + n * 40000, 40000)
    new, got = allocate_many(f, [f"n{i}" for i in range(3000)], defs=limits)
    assert got[0] == first and got[-1] == IDRange(first.start + 2999 * 40000, 40000)
    assert len(new.entries) == n + 3000
    assert free_space(f, defs=limits).fits == (4294967294 - first.start + 1) // 40000
    assert f.ranges_for("user99999") == [IDRange(100000 + 99999 * 40000, 40000)]


sort_lines = st.lists(st.one_of(
    st.tuples(st.sampled_from(["a", "b", "é"]), st.integers(0, 5), st.integers(0, 3)).map(
        lambda t: f"{t[0]}:{t[1]}:{t[2]}"),
    st.sampled_from(["# x", "", "junk", "a: 1:1", "a:0x1:1", "b:1:1 "]),
), max_size=40)


@given(sort_lines)
@settings(deadline=None)
def test_fast_shadow_sort_is_glibc_merge_sort(texts: list[str]) -> None:
    from userns.subid.allocate import _glibc_msort, _range_cmp, _shadow_sort

    lines = list(SubidFile.parse("".join(t + "\n" for t in texts)).lines)
    assert [x.lineno for x in _shadow_sort(lines)] == \
        [x.lineno for x in _glibc_msort(lines, _range_cmp)]


walk_lines = st.lists(st.one_of(
    st.tuples(st.sampled_from(["a", "b", "é"]), st.integers(0, 400), st.integers(0, 60)).map(
        lambda t: f"{t[0]}:{t[1]}:{t[2]}"),
    st.sampled_from(["# a:5:5", "+nis", "junk", "a:0x10:5", "b:-1:3", "a:18446744073709551615:2",
                     "c:7:7 ", "a:1:2\r"]),
), max_size=10)


@given(walk_lines, st.integers(1, 80))
@settings(deadline=None)
def test_allocation_walks_the_records_in_shadow_order(lines: list[str], count: int) -> None:
    # allocate walks sorted (start, count) pairs; shadow walks whole records sorted by
    # (start, count, owner bytes) before the first NIS line, the rest in file order.
    f = SubidFile.parse("\n".join(lines))
    cut = next((i for i, line in enumerate(f.lines) if line.text[:1] in "+-"), len(f.lines))
    head = sorted((line.shadow for line in f.lines[:cut] if line.shadow is not None),
                  key=lambda r: (r.start, r.count, r.owner.encode("utf-8", "surrogateescape")))
    tail = [line.shadow for line in f.lines[cut:] if line.shadow is not None]
    want = shadow_find_free_range(head + tail, 100, 500, count)
    limits = SubidLimits(100, 500, count)
    try:
        got: int | None = allocate(f, defs=limits).start
    except AllocationError:
        got = None
    assert got == want
    new, r = shadow_useradd(f, "n", defs=limits) if got is not None else (None, None)
    if new is not None:
        assert r is not None and r.start == got
        assert new == SubidFile.parse("".join(line.text + "\n" for line in shadow_order(f))
                                      + f"n:{got}:{count}\n")


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "é", "1000"]), st.integers(0, 300),
                          st.integers(1, 40)), max_size=12),
       st.integers(1, 60), st.sampled_from(["n", "n m", " n", "n:x"]))
@settings(deadline=None)
def test_canonical_files_take_the_short_way_to_the_same_result(
    entries: list[tuple[str, int, int]], count: int, owner: str
) -> None:
    import pickle

    from userns.errors import InvalidOwnerError
    from userns.subid.model import SubidLine

    text = "".join(f"{o}:{s}:{c}\n" for o, s, c in entries)
    short = SubidFile.parse(text)  # kept as columns until its lines are asked for
    # The same file built line by line through the validated reader.
    long = SubidFile(tuple(SubidLine._parse_slow(body, i, "\n")
                           for i, body in enumerate(text.splitlines(), start=1)))
    limits = SubidLimits(100, 500, count)
    try:
        want = shadow_useradd(long, owner, defs=limits)
    except (AllocationError, InvalidOwnerError) as e:  # " n", "n:x": refused owners
        with pytest.raises(type(e)) as info:
            shadow_useradd(short, owner, defs=limits)
        assert (info.value.reason, str(info.value)) == (e.reason, str(e))
        return
    got = shadow_useradd(short, owner, defs=limits)
    assert got[1] == want[1] == allocate(short, defs=limits) == allocate(long, defs=limits)
    assert got[0].text == want[0].text
    assert got[0].lines == want[0].lines
    assert got[0].entries == want[0].entries and len(got[0]) == len(want[0])
    assert pickle.loads(pickle.dumps(got[0])).lines == want[0].lines
    assert short.lines == long.lines and short.text == long.text


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "é", "1000"]), st.integers(0, 60)),
                min_size=1, max_size=14),
       st.sampled_from([1, 7, 40]), st.integers(1, 30), st.integers(0, 40), st.integers(40, 120))
@example([("a", 0), ("b", 0), ("a", 7)], 7, 7, 0, 60)  # a repeated start
@settings(deadline=None)
def test_one_count_for_all_takes_the_short_way_to_the_same_result(
    entries: list[tuple[str, int]], size: int, count: int, low: int, high: int
) -> None:
    # Every line with the same count (the usual file): the columns are read and sorted
    # another way; everything must come out as for the same file read line by line.
    from userns.subid.model import SubidLine

    text = "".join(f"{o}:{s}:{size}\n" for o, s in entries)
    short = SubidFile.parse(text)
    columns = short.canonical_columns
    assert columns is not None and columns.counts == [size] * len(entries)
    assert columns.owners == [o for o, _ in entries]
    long = SubidFile(tuple(SubidLine._parse_slow(body, i, "\n")
                           for i, body in enumerate(text.splitlines(), start=1)))
    limits = SubidLimits(low, high, count)

    def outcome(f: SubidFile) -> object:
        try:
            new, r = shadow_useradd(f, "n", defs=limits)
        except AllocationError as e:
            return e.reason, str(e)
        try:
            many, got = allocate_many(f, ["x", "y"], defs=limits)
        except AllocationError as e:
            return r, new.text, new.lines, e.reason, str(e)
        return r, allocate(f, defs=limits), new.text, new.lines, len(new), got, many.text

    assert outcome(short) == outcome(long)
    assert free_space(short, defs=limits) == free_space(long, defs=limits)
    assert short.lines == long.lines
