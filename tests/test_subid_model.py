"""The subid file model: lossless lines, strict syntax, shadow's and Docker's readings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from userns import IDRange, ParseError
from userns.subid import (
    Accounts,
    LineKind,
    SubidFile,
    SubidLine,
    SubidParseError,
    docker_parse_int,
    shadow_strtoul,
)

MESSY = (
    "# subordinate ids\n"
    "\n"
    "alice:100000:65536\n"
    "bob:165536:65536   \n"
    "+nisuser:1:2\n"
    "garbage line\n"
    "1001:231072:65536\n"
    "alice:300000:10"
)


@given(st.text(alphabet=st.sampled_from("ab01:\n\r #+-x \t\x00é"), max_size=80))
@example(MESSY)
@example("")
@example("\n\n")
@example("no newline at end")
@settings(deadline=None)
def test_any_text_round_trips(text: str) -> None:
    f = SubidFile.parse(text)
    assert f.text == text
    assert [line.lineno for line in f.lines] == list(range(1, len(f.lines) + 1))


@given(st.binary(max_size=60))
@settings(deadline=None)
def test_any_bytes_round_trip(data: bytes) -> None:
    assert SubidFile.parse(data).to_bytes() == data


def test_lines_are_classified() -> None:
    f = SubidFile.parse(MESSY)
    kinds = [line.kind for line in f.lines]
    assert kinds == [
        LineKind.COMMENT, LineKind.BLANK, LineKind.ENTRY, LineKind.INVALID,
        LineKind.NIS, LineKind.INVALID, LineKind.ENTRY, LineKind.ENTRY,
    ]
    assert f.lines[-1].newline == ""


def test_entries_in_file_order_and_lookup_by_name_or_uid() -> None:
    f = SubidFile.parse(MESSY)
    assert [(e.owner, e.lineno) for e in f.entries] == [
        ("alice", 3), ("1001", 7), ("alice", 8)]
    assert f.ranges_for("alice", None) == [IDRange(100000, 65536), IDRange(300000, 10)]
    assert f.ranges_for("alice", 1001) == [
        IDRange(100000, 65536), IDRange(231072, 65536), IDRange(300000, 10)]
    assert f.ranges_for(None, 1001) == [IDRange(231072, 65536)]
    assert f.ranges_for("carol", 1002) == []


def test_uid_match_is_exact_text() -> None:
    f = SubidFile.parse("01000:100000:65536\n1000:200000:65536\n")
    assert [e.lineno for e in f.entries_for(None, 1000)] == [2]


def test_entry_matching_both_ways_is_listed_once() -> None:
    f = SubidFile.parse("1000:100000:65536\n")
    assert len(f.entries_for("1000", 1000)) == 1


def test_strict_reports_every_problem_with_location() -> None:
    text = "ok:1:2\nbad:0x10:5\nz:5:0\nw: 7:1\n"
    with pytest.raises(SubidParseError) as info:
        SubidFile.parse(text, path="subuid", strict=True)
    err = info.value
    assert isinstance(err, ParseError) and isinstance(err, ValueError)
    got = [(p.reason, p.location.line, p.location.column) for p in err.problems
           if p.location is not None]
    assert got == [("hex-number", 2, 5), ("zero-count", 3, 5), ("whitespace", 4, 3)]
    assert err.render().splitlines()[:3] == [
        "subuid:2:5: the start 0x10 is hexadecimal: shadow reads 16, Docker reads 0 "
        "[hex-number]",
        "    bad:0x10:5",
        "        ^~~~",
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("alice:100000", "field-count"),
        ("alice:1:2:3", "field-count"),
        (":1:2", "empty-owner"),
        ("alice :1:2", "owner-whitespace"),
        ("alice::2", "empty-field"),
        ("alice:0100000:5", "leading-zero"),
        ("alice:+5:5", "signed-number"),
        ("alice:five:5", "not-a-number"),
        ("alice:4294967295:1", "id-too-large"),
        ("alice:4294967294:2", "range-past-max"),
        ("alice:0:4294967296", "id-too-large"),
        ("alice:1:2\r", "carriage-return"),
        ("-alice:1:2", "nis-line"),
        ("#alice:1:2", "comment-read-as-entry"),
        ("alice:1\x00:2", "nul-byte"),
        ("a" * 1030 + ":1:2", "line-too-long"),
    ],
)
def test_strict_rules(line: str, reason: str) -> None:
    f = SubidFile.parse(line + "\n")
    assert [p.reason for p in f.problems] == [reason]
    with pytest.raises(SubidParseError):
        SubidFile.parse(line + "\n", strict=True)


@pytest.mark.parametrize(
    "line",
    ["alice:0:1", "alice:4294967294:1", "0:0:4294967295", "dockremap:231072:65536",
     "# plain comment", "   ", "user name with spaces inside:1:1"],
)
def test_strict_accepts(line: str) -> None:
    assert SubidFile.parse(line + "\n", strict=True).problems == ()


@pytest.mark.parametrize(
    ("line", "owner", "start", "count"),
    [
        ("alice:0x186a0:65536", "alice", 100000, 65536),  # strtoul base 0: hex
        ("alice:0100000:65536", "alice", 32768, 65536),  # leading zero: octal
        ("alice: 100000:65536", "alice", 100000, 65536),  # leading space skipped
        ("alice:-1:1", "alice", 2**64 - 1, 1),  # minus wraps modulo 2**64
        ("alice:1:2:extra", "alice", 1, 2),  # a fourth field is dropped
        ("# alice:100000:65536", "# alice", 100000, 65536),  # shadow has no comments
        ("alice:5000000000:0", "alice", 5000000000, 0),
    ],
)
def test_shadow_reading(line: str, owner: str, start: int, count: int) -> None:
    shadow = SubidFile.parse(line + "\n").lines[0].shadow
    assert shadow is not None
    assert (shadow.owner, shadow.start, shadow.count) == (owner, start, count)


@pytest.mark.parametrize(
    "line",
    ["alice:100000:65536 ", "alice:1:2\r", "+alice:1:2", "-alice:1:2", "alice:08:1",
     "alice:1", ":1:2", "alice::2", "alice:0x:1", "a" * 1020 + ":1:2", "",
     "alice:18446744073709551616:1"],
)
def test_shadow_skips(line: str) -> None:
    assert SubidFile.parse(line + "\n").lines[0].shadow is None


def test_lenient_entries_are_what_shadow_reads_when_valid() -> None:
    f = SubidFile.parse("a:0x10:5\nb:5:0\nc:4294967295:1\nd:07:1\n")
    assert [(e.owner, e.start, e.count) for e in f.entries] == [("a", 16, 5), ("d", 7, 1)]
    assert [r.owner for r in f.shadow_records] == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("line", "owner", "start", "count"),
    [
        ("alice:0x186a0:65536", "alice", 0, 65536),  # Docker: parse error ignored -> 0
        ("  alice:100000:65536  ", "alice", 100000, 65536),  # whole line trimmed
        ("alice:0100000:65536", "alice", 100000, 65536),  # decimal, not octal
        ("alice:100000", "alice", 100000, 0),  # missing field -> 0
        ("# alice:1:2", "# alice", 1, 2),  # no comment handling
        ("+alice:1:2", "+alice", 1, 2),
        ("alice:1:2\r", "alice", 1, 2),
        ("alice:99999999999999999999:1", "alice", 2**63 - 1, 1),
    ],
)
def test_docker_reading(line: str, owner: str, start: int, count: int) -> None:
    docker = SubidFile.parse(line + "\n").lines[0].docker
    assert docker is not None
    assert (docker.owner, docker.start, docker.count) == (owner, start, count)


@given(st.integers(0, 2**64 - 1))
@settings(deadline=None)
def test_strtoul_reads_every_spelling_of_a_value(value: int) -> None:
    assert shadow_strtoul(str(value)).value == value
    assert shadow_strtoul(hex(value)).value == value
    assert shadow_strtoul("0" + format(value, "o")).value == value
    assert shadow_strtoul(" \t" + str(value)).ok


@given(st.integers(-(2**63), 2**63 - 1))
@settings(deadline=None)
def test_docker_parse_int_reads_decimal(value: int) -> None:
    assert docker_parse_int(str(value)) == value


def test_accounts_from_root(tmp_path: pytest.TempPathFactory) -> None:
    root = tmp_path
    etc = root / "etc"  # type: ignore[operator]
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n# comment\nseb:x:1000:1000::/home/seb:/bin/sh\n"
        "broken line\nnobody:x:65534:65534::/:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nseb:x:1000:\nwheel:x:10:seb,alice\n")
    acc = Accounts.read(root)  # type: ignore[arg-type]
    assert [u.name for u in acc.users] == ["root", "seb", "nobody"]
    assert acc.uid_of("seb") == 1000 and acc.uid_of("alice") is None
    assert acc.group("wheel") is not None and acc.group("wheel").members == ("seb", "alice")  # type: ignore[union-attr]
    assert acc.owner_uid("seb") == 1000 and acc.owner_uid("1234") == 1234
    assert acc.owner_uid("ghost") is None
    assert 65534 in acc.uids and 10 in acc.gids


def test_accounts_missing_files_are_empty(tmp_path: object) -> None:
    acc = Accounts.read(str(tmp_path))
    assert acc.users == () and acc.groups == ()


def test_read_file(tmp_path: object) -> None:
    import pathlib

    p = pathlib.Path(str(tmp_path)) / "subuid"
    p.write_bytes(b"alice:100000:65536\n\xff\xfe:1:1\n")
    f = SubidFile.read(p)
    assert f.path == str(p)
    assert f.to_bytes() == p.read_bytes()
    assert SubidFile.read(p.with_name("none"), missing_ok=True).lines == ()
    with pytest.raises(FileNotFoundError):
        SubidFile.read(p.with_name("none"))


line_parts = st.sampled_from(
    ["alice", "bob", "1000", "# a", "+n", "-n", " a", "a ", "a b", ":", "0", "1", "65536",
     "100000", "4294967294", "4294967295", "0x10", "010", "-1", " 5", "5 ", "", "\t", "é"])


@given(st.lists(line_parts, max_size=7).map("".join))
@example("alice:100000:65536")
@example("a:0:4294967295")
@example("a:1:4294967294")
@settings(deadline=None)
def test_fast_path_agrees_with_the_three_readers(text: str) -> None:
    fast = SubidLine.parse(text, 3, "\n", path="p")
    slow = SubidLine._parse_slow(text, 3, "\n", path="p")
    assert fast == slow
    assert [p.reason for p in fast.problems] == [p.reason for p in slow.problems]


messy_lines = st.lists(st.one_of(
    st.tuples(st.sampled_from(["a", "b", "1000"]), st.integers(0, 300),
              st.integers(1, 80)).map(lambda t: f"{t[0]}:{t[1]}:{t[2]}"),
    st.sampled_from(["# c", "", "  ", "+nis", "junk", "a:0x10:5", "b:7:7 ", "a:1:2\r"]),
), max_size=10)


@given(messy_lines, st.booleans(), st.integers(0, 320), st.integers(1, 60), st.booleans())
@settings(deadline=None)
def test_edits_touch_only_the_owners_lines(
    lines: list[str], final_newline: bool, start: int, size: int, add: bool
) -> None:
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    f = SubidFile.parse(text)
    r = IDRange(start, size)
    new = f.add_range("a", r) if add else f.remove_range("a", r)

    def others(file: SubidFile) -> list[str]:
        return [line.text for line in file.lines
                if line.entry is None or line.entry.owner != "a"]

    assert others(new) == others(f)
    owned = {i for i in range(320 + 60) if any(i in x for x in f.ranges_for("a"))}
    now = {i for i in range(320 + 60) if any(i in x for x in new.ranges_for("a"))}
    assert now == (owned | set(r) if add else owned - set(r))
    # The other lines keep their bytes too; only a missing final newline may appear.
    def other_raws(file: SubidFile) -> list[str]:
        return [line.raw for line in file.lines
                if line.entry is None or line.entry.owner != "a"]

    before, after = other_raws(f), other_raws(new)
    assert before[:-1] == after[:-1]
    if before:
        assert after[-1] in (before[-1], before[-1] + "\n")


def test_strict_error_pickles_with_its_problems() -> None:
    import pickle

    with pytest.raises(SubidParseError) as info:
        SubidFile.parse("a:1:0\nb:x:1\n", path="subuid", strict=True)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)
    assert [p.reason for p in again.problems] == ["zero-count", "not-a-number"]


owner_text = st.text(st.characters(blacklist_characters=":\n", blacklist_categories=["Cs"]),
                     min_size=1, max_size=6)
canonical_lines = st.tuples(owner_text, st.integers(0, 2**32 + 5),
                            st.integers(0, 2**32 + 5)).map(lambda t: f"{t[0]}:{t[1]}:{t[2]}")
odd_lines = st.lists(line_parts, max_size=6).map("".join)


@given(st.lists(st.one_of(canonical_lines, odd_lines, st.sampled_from(
    ["a:1:1", "a:01:1", "a:1:1 ", "#a:1:1", "+a:1:1", "a:1:1\r", "a:4294967294:1",
     "a:4294967295:1", "a:1:1:1", "x" * 300 + ":1:1", "é:5:5"])), max_size=12),
       st.booleans())
@example(["a:1:1", "b:2:2"], True)
@example(["a:1:1", "# c", "b:2:2", "bad"], False)
@settings(deadline=None)
def test_bulk_parse_builds_the_objects_the_validated_path_builds(
    lines: list[str], final_newline: bool
) -> None:
    import attrs

    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    f = SubidFile.parse(text, path="p")
    assert f.text == text
    slow = [SubidLine._parse_slow(line.text, line.lineno, line.newline, path="p")
            for line in f.lines]
    assert list(f.lines) == slow
    assert [[p.render() for p in a.problems] for a in f.lines] == [
        [p.render() for p in b.problems] for b in slow]
    for line in f.lines:
        assert SubidLine.parse(line.text, line.lineno, line.newline, path="p") == line
        if line.entry is not None:
            # The objects built without __init__ pass every validator.
            attrs.validate(line.entry.range)
            assert line.entry.range == IDRange(line.entry.start, line.entry.count)
            assert line.entry.line == line.text
    assert f.entries == tuple(line.entry for line in slow if line.entry is not None)


def test_reading_a_missing_file_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "subuid"
    with pytest.raises(FileNotFoundError, match="missing_ok=True") as info:
        SubidFile.read(missing)
    assert info.value.filename == str(missing)
    assert SubidFile.read(missing, missing_ok=True).entries == ()
