"""The canonical-columns path with other lines: comments, blank lines and odd lines.

A file read by ``SubidFile.parse`` keeps its canonical lines as columns and every other
line as an object (``canonical_split``). Each test compares it with the same text read
line by line through the validated reader (the general path): same lines, same bytes,
same allocation, same file written; and checks that the split path really is taken
(no canonical line is built as an object).
"""

from __future__ import annotations

import pickle

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from userns.errors import SubidParseError
from userns.logindefs import SubidLimits
from userns.subid import (
    AllocationError,
    SubidFile,
    SubidLine,
    allocate,
    allocate_many,
    free_space,
    shadow_order,
    shadow_useradd,
)
from userns.subid import model as subid_model


def line_by_line(text: str, path: str | None = None) -> SubidFile:
    """``text`` read the general way: every physical line through the validated reader."""
    bodies = text.split("\n")
    last = bodies.pop()
    lines = [SubidLine._parse_slow(body, i, "\n", path=path)
             for i, body in enumerate(bodies, start=1)]
    if last:
        lines.append(SubidLine._parse_slow(last, len(bodies) + 1, "", path=path))
    return SubidFile(tuple(lines), path)


@pytest.fixture
def no_canonical_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a canonical line is built as an object."""
    def refuse(*args: object) -> object:
        raise AssertionError("a canonical line was built as an object: the general path")

    monkeypatch.setattr(subid_model, "_canonical_lines", refuse)
    monkeypatch.setattr(subid_model, "_canonical_line", refuse)


def commented(owners: int) -> str:
    """The benchmark's shape: a comment first, then canonical lines in no order."""
    starts = [100000 + ((i * 7919) % owners) * 5000 for i in range(owners)]
    return "# subordinate IDs\n" + "".join(
        f"u{i:06d}:{s}:4096\n" for i, s in enumerate(starts))


# -- the split is what parse keeps, and it is lossless ---------------------------------


def test_a_comment_and_a_blank_line_keep_the_columns() -> None:
    text = "# subordinate IDs\nalice:100000:65536\n\nbob:165536:65536\n   \n"
    f = SubidFile.parse(text)
    split = f.canonical_split
    assert split is not None
    columns, others = split
    assert columns.texts == ["alice:100000:65536", "bob:165536:65536"]
    assert columns.starts == [100000, 165536] and columns.counts == [65536, 65536]
    assert [(line.lineno, line.kind.value, line.text) for line in others] == [
        (1, "comment", "# subordinate IDs"), (3, "blank", ""), (5, "blank", "   ")]
    assert f.canonical_columns is None  # not every line is canonical
    assert len(f) == 5
    assert f.text == text
    assert f.lines == line_by_line(text).lines


def test_a_file_of_canonical_lines_only_has_no_other_lines() -> None:
    f = SubidFile.parse("a:1:2\nb:5:5\n")
    assert f.canonical_split is not None and f.canonical_split[1] == ()
    assert f.canonical_columns is f.canonical_split[0]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n", "junk\n+nis\n",
                                  "a:1:2",  # one canonical line, without its newline
                                  "a:4294967295:1\n# c\nb:1:1\n"])  # past the largest ID
def test_files_the_split_cannot_hold_are_read_line_by_line(text: str) -> None:
    f = SubidFile.parse(text)
    assert f.canonical_split is None
    assert f.lines == line_by_line(text).lines and f.text == text


@pytest.mark.parametrize("size", [232, 233, 234, 300])
def test_an_owner_too_long_for_a_column_is_an_other_line(size: int) -> None:
    # A column line is shorter than 256 characters whatever its numbers: its owner has
    # at most 233; a longer owner's line is read alone, and is still an entry.
    long = "x" * size + ":4294967200:95"
    text = f"a:1:1\n{long}\nb:2:2\n"
    f = SubidFile.parse(text)
    split = f.canonical_split
    assert split is not None
    columns, others = split
    assert (long in columns.texts) == (size <= 233)
    assert [line.text for line in others] == ([] if size <= 233 else [long])
    assert f.lines == line_by_line(text).lines
    assert f.entries[1].owner == "x" * size


def test_a_file_without_a_canonical_line_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "alice:100000:65536\r\n# CRLF\r\n\r\nbob:165536:65536\r\n"
    reads: list[str] = []
    slow = SubidLine._parse_slow

    def counted(text: str, lineno: int, newline: str = "\n", *,
                path: str | None = None) -> SubidLine:
        reads.append(text)
        return slow(text, lineno, newline, path=path)

    monkeypatch.setattr(SubidLine, "_parse_slow", staticmethod(counted))
    f = SubidFile.parse(text)
    assert len(reads) == 4  # each line read once, not once more by the general path
    assert f.canonical_split is None and f.to_bytes() == text.encode()
    assert [e.owner for e in f.entries] == []  # shadow skips a line ending in \r


def test_undecodable_bytes_and_crlf_lines_come_back_byte_for_byte() -> None:
    data = b"# caf\xe9 \xff\r\nalice:100000:65536\n\xfe:1:1\nbob:165536:65536\r\n\n  # x\n"
    f = SubidFile.parse(data)
    assert f.canonical_split is not None
    assert f.to_bytes() == data
    assert f.lines == line_by_line(data.decode("utf-8", "surrogateescape")).lines


def test_strict_reading_sees_the_problems_of_the_other_lines() -> None:
    text = "# ok\nalice:100000:65536\nbob:0x10:5\n\ncarol:1:0\n"
    with pytest.raises(SubidParseError) as fast:
        SubidFile.parse(text, path="subuid", strict=True)
    want = line_by_line(text, path="subuid").problems
    assert [p.render() for p in fast.value.problems] == [p.render() for p in want]
    assert [p.reason for p in want] == ["hex-number", "zero-count"]
    # comments and blank lines are no problem
    assert SubidFile.parse("# ok\n\nalice:100000:65536\n", strict=True).canonical_split


# -- the same answers as the general path, on generated files ---------------------------


canonical = st.tuples(st.sampled_from(["a", "b", "é", "1000"]), st.integers(0, 400),
                      st.integers(1, 60)).map(lambda t: f"{t[0]}:{t[1]}:{t[2]}")
others = st.sampled_from([
    "# subordinate IDs", "#", "", "   ", "\t",  # what real files carry
    "# a:5:5", "a:0x10:5", "c:7:7 ", " c:7:7", "a:010:3", "b:-1:3", "a:5:0",  # shadow reads
    "a:18446744073709551615:2", "a:1:2:3", "junk", "a:1:2\r", "é:5:x",  # odd lines
    "+nis", "-", "+a:1:1",  # NIS lines
    "x" * 300 + ":1:1",  # too long to be kept as a canonical column
])
files = st.tuples(st.lists(st.one_of(canonical, canonical, others), max_size=14),
                  st.booleans()).map(
    lambda t: "\n".join(t[0]) + ("\n" if t[1] and t[0] else ""))


def outcome(f: SubidFile, limits: SubidLimits) -> object:
    """Everything the allocator says about ``f``, errors included."""
    try:
        new, r = shadow_useradd(f, "n", defs=limits)
    except AllocationError as e:
        return e.reason, str(e)
    try:
        many, got = allocate_many(f, ["x", "y"], defs=limits)
    except AllocationError as e:
        return r, new.to_bytes(), e.reason, str(e)
    return r, allocate(f, defs=limits), new.to_bytes(), new.lines, got, many.to_bytes()


@given(files, st.integers(1, 80), st.integers(0, 150), st.integers(150, 500))
@example("# subordinate IDs\na:100:10\nb:300:10", 50, 100, 500)
@example("a:100:10\n# a:110:10\nb:300:10\n", 50, 100, 500)  # a comment shadow reads
@example("b:300:10\n+nis\na:100:10\n# c\n", 5, 100, 500)  # entries after a NIS line
@example("+nis\na:100:10\n", 5, 100, 500)  # the NIS line first: nothing is sorted
@example("a:100:10\na:100:10\n# c\nb:100:10\n", 5, 100, 500)  # a repeated start
@settings(deadline=None, max_examples=300)
def test_the_split_path_gives_what_the_general_path_gives(
    text: str, count: int, low: int, high: int
) -> None:
    fast = SubidFile.parse(text)
    slow = line_by_line(text)
    limits = SubidLimits(low, high, count)
    # lossless: same bytes, lines, entries and problems
    assert fast.text == slow.text == text
    assert fast.to_bytes() == slow.to_bytes()
    assert outcome(fast, limits) == outcome(line_by_line(text), limits)
    assert free_space(fast, defs=limits) == free_space(slow, defs=limits)
    assert [line.lineno for line in shadow_order(fast)] == \
        [line.lineno for line in shadow_order(slow)]
    assert fast.lines == slow.lines and len(fast) == len(slow)
    assert pickle.loads(pickle.dumps(SubidFile.parse(text))).lines == slow.lines
    assert fast.entries == slow.entries
    assert [p.render() for p in fast.problems] == [p.render() for p in slow.problems]


# -- the split path is really taken ----------------------------------------------------


@pytest.mark.usefixtures("no_canonical_objects")
@pytest.mark.parametrize("head", ["# subordinate IDs\n", "\n", "# a\n\n  \n# b\n"])
def test_allocation_on_a_commented_file_builds_no_canonical_line(head: str) -> None:
    text = head + commented(500)[len("# subordinate IDs\n"):] + "# the end\n"
    f = SubidFile.parse(text)
    new, r = shadow_useradd(f, "newowner")
    assert allocate(f) == r
    assert new.to_bytes()  # written without reading it
    many, got = allocate_many(f, ["x", "y"])
    assert got[0] == r and many.text.endswith(f"x:{r.start}:65536\ny:{r.stop}:65536\n")
    assert f._lines is None and new._lines is None and many._lines is None  # no line objects


def test_the_split_path_writes_what_the_general_path_writes_at_scale() -> None:
    text = commented(5000).replace("\nu000100:", "\n\n# a gap\nu000100:")
    fast = SubidFile.parse(text)
    slow = line_by_line(text)
    assert fast.canonical_split is not None and len(fast.canonical_split[1]) == 3
    new_fast, r_fast = shadow_useradd(fast, "newowner")
    new_slow, r_slow = shadow_useradd(slow, "newowner")
    assert r_fast == r_slow
    assert new_fast.to_bytes() == new_slow.to_bytes()
    # useradd sorts the entries, puts the unparsed lines after them, the new one last
    written = new_fast.text.splitlines()
    assert sorted(written[-4:-1]) == ["", "# a gap", "# subordinate IDs"]
    assert written[-1] == f"newowner:{r_fast.start}:65536"
    assert fast._lines is None
