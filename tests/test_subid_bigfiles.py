"""Big subid files: the paths taken for speed read, allocate and write what the plain ones do.

Each test builds files around the sizes where a fast path changes its way (a run of
canonical lines longer than one bounded regex match, ...) and compares the result with
the general, line-by-line reading.
"""

from __future__ import annotations

import importlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from userns.logindefs import SubidLimits
from userns.subid import AllocationError, SubidFile, SubidLine, allocate, shadow_useradd
from userns.subid import model as subid_model

#: the module (the package's attribute ``allocate`` is the function)
subid_allocate = importlib.import_module("userns.subid.allocate")


def line_by_line(text: str) -> SubidFile:
    """``text`` read the general way: every physical line through the validated reader."""
    bodies = text.split("\n")
    last = bodies.pop()
    lines = [SubidLine._parse_slow(body, i, "\n") for i, body in enumerate(bodies, start=1)]
    if last:
        lines.append(SubidLine._parse_slow(last, len(bodies) + 1, ""))
    return SubidFile(tuple(lines))


def canonical(count: int, first: int = 0) -> list[str]:
    """``count`` canonical lines (with their newline), starts out of order."""
    return [f"u{i}:{100000 + ((i * 7919) % 50021) * 70000}:65536\n"
            for i in range(first, first + count)]


#: the repeat _run_end bounds, and the unbounded pattern it must agree with
BOUND = int(re.search(r"\{0,(\d+)\}\Z", subid_model._CANONICAL_RUN.pattern)[1])  # type: ignore[index]
UNBOUNDED = re.compile(subid_model._CANONICAL_RUN.pattern[: -len(f"{{0,{BOUND}}}")] + "*")


@pytest.mark.parametrize("size", [0, 1, BOUND - 1, BOUND, BOUND + 1, 2 * BOUND, 3 * BOUND + 7])
@pytest.mark.parametrize("odd", [None, "# comment\n", "\n", "x:0x10:5\n", "+nis\n"])
def test_a_run_longer_than_one_match_ends_where_the_unbounded_one_does(
        size: int, odd: str | None) -> None:
    lines = canonical(size)
    if odd is not None:
        lines.insert(size // 2 if size % 2 else size, odd)
    text = "".join(lines)
    for pos in (0, 1, len(text) // 3):
        m = UNBOUNDED.match(text, pos)
        assert m is not None
        assert subid_model._run_end(text, pos) == m.end()


@pytest.mark.parametrize("size", [BOUND - 1, BOUND, BOUND + 1, 4 * BOUND + 3])
@pytest.mark.parametrize("where", [0, 1, BOUND - 1, BOUND, BOUND + 1, -1])
def test_a_long_file_with_an_odd_line_reads_as_line_by_line(size: int, where: int) -> None:
    lines = canonical(size)
    lines.insert(where if where >= 0 else len(lines), "# kept\n")
    text = "".join(lines)
    fast = SubidFile.parse(text)
    split = fast.canonical_split
    assert split is not None and len(split[0].texts) == size and len(split[1]) == 1
    slow = line_by_line(text)
    assert fast.lines == slow.lines
    assert fast.to_bytes() == text.encode()
    new_fast, r_fast = shadow_useradd(fast, "new")
    new_slow, r_slow = shadow_useradd(slow, "new")
    assert (r_fast, new_fast.to_bytes()) == (r_slow, new_slow.to_bytes())


def test_a_file_of_canonical_lines_only_is_columns_whatever_its_length() -> None:
    text = "".join(canonical(5 * BOUND + 1))
    f = SubidFile.parse(text)
    assert f.canonical_columns is not None and len(f.canonical_columns.texts) == 5 * BOUND + 1
    assert f.lines == line_by_line(text).lines


def reference_columns(text: str) -> tuple[list[str], list[str], list[int], list[int]]:
    """Texts, owners, starts and counts of canonical lines, one line at a time."""
    texts = text.split("\n")[:-1]
    fields = [t.split(":") for t in texts]
    return texts, [f[0] for f in fields], [int(f[1]) for f in fields], [int(f[2]) for f in fields]


@pytest.mark.parametrize("piece", [1, 7, 40, 1 << 16])
@pytest.mark.parametrize("counts", ["one", "mixed", "last-differs"])
def test_columns_read_in_pieces_are_the_lines_fields(
        monkeypatch: pytest.MonkeyPatch, piece: int, counts: str) -> None:
    monkeypatch.setattr(subid_model, "_PIECE", piece)
    lines = canonical(3000)
    if counts == "mixed":
        lines = [line.replace(":65536\n", f":{1 + i % 5000}\n") for i, line in enumerate(lines)]
    elif counts == "last-differs":
        lines[-1] = lines[-1].replace(":65536\n", ":65535\n")
    text = "".join(lines)
    columns = subid_model._columns(text)
    assert columns is not None
    assert (columns.texts, columns.owners, columns.starts, columns.counts) == \
        reference_columns(text)


@pytest.mark.parametrize("piece", [1, 1 << 16])
def test_a_range_past_the_largest_id_in_any_piece_refuses_the_columns(
        monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    monkeypatch.setattr(subid_model, "_PIECE", piece)
    lines = canonical(2000)
    lines[1234] = "late:4294967290:65536\n"
    text = "".join(lines)
    assert subid_model._columns(text) is None
    assert SubidFile.parse(text).lines == line_by_line(text).lines


def test_one_piece_is_the_block_itself() -> None:
    block = "".join(canonical(10))
    assert list(subid_model._pieces(block)) == [block]
    assert "".join(subid_model._pieces("".join(canonical(20000)))) == "".join(canonical(20000))


# -- the walk on sorted columns of one count ------------------------------------------


def walked(starts: list[int], size: int, lowest: int, highest: int, count: int) -> int | None:
    """shadow's walk, record by record (the general loop)."""
    hole = next(subid_allocate._holes(zip(starts, [size] * len(starts)), lowest, highest,
                                      count), None) if count else None
    return None if hole is None else hole[0]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.integers(0, 400), max_size=12), st.integers(1, 60), st.integers(0, 500),
       st.integers(-5, 500), st.integers(0, 200))
def test_the_sorted_walk_finds_what_the_record_by_record_walk_finds(
        starts: list[int], size: int, lowest: int, span: int, count: int) -> None:
    starts = sorted(starts)
    highest = lowest + span
    assert subid_allocate._first_fit_sorted(starts, size, lowest, highest, count) == \
        walked(starts, size, lowest, highest, count)


@pytest.mark.parametrize("lowest, highest", [(100000, 4294000000), (100000, 600100000),
                                             (3_000_000_000, 3_100_000_000), (5, 4)])
def test_allocate_and_useradd_on_big_columns_agree_with_the_record_walk(
        lowest: int, highest: int) -> None:
    text = "".join(canonical(5000))
    f = SubidFile.parse(text)
    assert f.canonical_columns is not None
    limits = SubidLimits(lowest, highest, 65536)
    starts = sorted(f.canonical_columns.starts)
    expected = walked(starts, 65536, lowest, highest, 65536)
    commented = SubidFile.parse("# c\n" + text)

    def start(which: str) -> int | None:
        try:
            if which == "allocate":
                return allocate(f, defs=limits).start
            return shadow_useradd(commented if which == "#" else f, "n", defs=limits)[1].start
        except AllocationError:
            return None

    assert [start(w) for w in ("allocate", "useradd", "#")] == [expected] * 3


# -- shadow's order gathered column by column -------------------------------------------


@pytest.mark.parametrize("lines", [
    ["a:100000:65536\n"],
    ["b:300000:5\n", "a:100000:65536\n"],
    ["b:300000:5\n", "a:300000:5\n", "c:300000:4\n", "a:100000:1\n"],  # a repeated start
    ["z:4294000000:1\n", "y:0:1\n", "x:200000:70000\n"],  # mixed counts
])
@pytest.mark.parametrize("head", ["", "# c\n"])
def test_useradd_on_few_lines_writes_what_the_general_path_writes(
        lines: list[str], head: str) -> None:
    text = head + "".join(lines)
    fast = SubidFile.parse(text)
    assert fast.canonical_split is not None
    new_fast, r_fast = shadow_useradd(fast, "new")
    new_slow, r_slow = shadow_useradd(line_by_line(text), "new")
    assert (r_fast, new_fast.to_bytes()) == (r_slow, new_slow.to_bytes())
    assert new_fast.to_bytes().endswith(f"new:{r_fast.start}:{r_fast.size}\n".encode())
