from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from userns import (
    MAX_EXTENTS,
    Extent,
    IDMap,
    InvalidMapError,
    UsernsError,
    format_proc,
    parse_proc,
    validate_map_write,
)
from userns.formats.proc import format_proc_padded

from .strategies import id_maps


def reason(data: str | bytes, **kw: object) -> str:
    with pytest.raises(InvalidMapError) as info:
        validate_map_write(data, **kw)  # type: ignore[arg-type]
    return info.value.reason


@pytest.mark.parametrize(
    "text",
    [
        "0 231072 65536",
        "0 231072 65536\n",
        "   0 231072 65536",
        "0\t231072\t65536\r\n",
        "0 \v\f 231072 65536  \t",
        b"0\xa0231072\xa065536",  # the kernel's isspace() includes Latin-1 NBSP
        "000 0231072 065536",
        "0 0 4294967295",
        "4294967294 0 1",
        "0 4294967294 1",
        "0 1000 1\n1 100000 65536",
        "0 10 10\n10 0 10",  # touching on both sides is fine
    ],
)
def test_accepts(text: str | bytes) -> None:
    m = validate_map_write(text)
    assert len(m) >= 1


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty"),
        ("\n", "syntax"),
        ("0 0 1\n\n", "syntax"),
        ("0 0 1\n\n1 1 1", "syntax"),
        ("0 0 0", "zero-count"),
        ("0 0", "syntax"),
        ("0 0 ", "syntax"),
        ("-1 0 1", "syntax"),
        ("+1 0 1", "syntax"),
        ("0x10 0 1", "syntax"),
        ("0 0 1 # root", "syntax"),
        ("0 0 1 2", "syntax"),
        ("0,0,1", "syntax"),
        ("0 0 1x", "syntax"),
        ("4294967295 0 1", "invalid-id"),
        ("0 4294967295 1", "invalid-id"),
        ("0 0 4294967296", "field-too-large"),
        ("0 4294967296 1", "field-too-large"),
        ("1 0 4294967295", "wrap"),
        ("0 1 4294967295", "wrap"),
        ("0 100 10\n5 200 10", "overlap-container"),
        ("0 100 10\n50 105 10", "overlap-host"),
        ("0 100 10\n0 100 10", "overlap-container"),
        ("0 0 1\x00junk", "nul-byte"),
    ],
)
def test_refuses(text: str, code: str) -> None:
    assert reason(text) == code


def test_error_has_line_column_and_caret() -> None:
    with pytest.raises(InvalidMapError) as info:
        validate_map_write("0 231072 65536\n1 0x10 1\n", path="uid_map")
    err = info.value
    assert err.location is not None
    assert (err.location.line, err.location.column) == (2, 4)
    assert err.render() == (
        "uid_map:2:4: the host ID must be followed by whitespace, found 'x10' [syntax]\n"
        "    1 0x10 1\n"
        "       ^~~"
    )


def test_overlap_names_lines() -> None:
    with pytest.raises(InvalidMapError) as info:
        validate_map_write("0 100 10\n50 105 10")
    assert str(info.value) == (
        "<input>:2:1: line 2 ('50 105 10') overlaps line 1 ('0 100 10') on the host side "
        "[overlap-host]"
    )


def lines(n: int) -> str:
    return "".join(f"{i} {i + 1000} 1\n" for i in range(n))


@given(st.integers(1, MAX_EXTENTS + 5))
@example(MAX_EXTENTS)
@example(MAX_EXTENTS + 1)
def test_extent_count_limit(n: int) -> None:
    text = lines(n)
    if n <= MAX_EXTENTS:
        assert len(validate_map_write(text, page_size=1 << 20)) == n
    else:
        assert reason(text, page_size=1 << 20) == "too-many-extents"


def test_legacy_limit() -> None:
    assert len(validate_map_write(lines(5), max_extents=5)) == 5
    assert reason(lines(6), max_extents=5) == "too-many-extents"


@given(st.integers(4080, 4100))
@example(4095)
@example(4096)
def test_page_size_limit(size: int) -> None:
    body = "0 0 1"
    text = body + " " * (size - len(body))
    assert len(text.encode()) == size
    if size < 4096:
        assert validate_map_write(text) == IDMap.single(0, 0, 1)
    else:
        assert reason(text) == "too-large"


def test_more_than_five_extents_come_back_sorted() -> None:
    text = "".join(f"{10 - i} {i * 10} 1\n" for i in range(6))
    m = validate_map_write(text)
    assert [e.container for e in m] == sorted(e.container for e in m)
    five = validate_map_write("".join(f"{10 - i} {i * 10} 1\n" for i in range(5)))
    assert [e.container for e in five] == [10, 9, 8, 7, 6]
    assert parse_proc(text)[0].container == 10  # parse keeps order


def test_parent_rule() -> None:
    parent = IDMap([Extent(0, 100000, 1000), Extent(1000, 500000, 1000)])
    assert validate_map_write("0 0 1000", parent=parent) == IDMap.single(0, 0, 1000)
    # Spans two parent extents, even though they are contiguous on the container side.
    assert reason("0 500 1000", parent=parent) == "not-in-parent"
    assert reason("0 2000 1", parent=parent) == "not-in-parent"


@given(id_maps())
def test_round_trip_compact_and_padded(m: IDMap) -> None:
    if not m:
        return
    assert parse_proc(format_proc(m)) == m
    assert parse_proc(format_proc_padded(m)) == m


def test_padded_read_back() -> None:
    text = "         0     231072      65536\n"
    assert format_proc_padded(IDMap.single(0, 231072, 65536)) == text
    assert parse_proc(text) == IDMap.single(0, 231072, 65536)


@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_fuzz_only_userns_errors(data: str | bytes) -> None:
    with contextlib.suppress(UsernsError):
        validate_map_write(data)


@given(st.lists(st.sampled_from(["0", "1", " ", "\t", "\n", "4294967295", "x", "-", "\r"]),
                max_size=30))
def test_fuzz_tokens(parts: list[str]) -> None:
    text = "".join(parts)
    try:
        m = validate_map_write(text)
    except UsernsError:
        return
    assert parse_proc(format_proc(m)).equivalent(m)


def test_huge_fields_are_userns_errors() -> None:
    # Longer than Python's int() digit limit: still a located userns error.
    with pytest.raises(InvalidMapError) as info:
        parse_proc("0 " + "9" * 5000 + " 1")
    assert info.value.reason == "field-too-large"
    assert "the host ID 999999999999… does not fit in 32 bits" in str(info.value)
    assert "install 4294967295 instead" in str(info.value)
    assert validate_map_write("0 " + "0" * 4000 + "7 1") == IDMap.single(0, 7, 1)
    assert reason("0 18446744073709551616 1") == "field-too-large"  # 2^64: low bits 0
