"""login.defs read as shadow's getdef.c reads it."""

from __future__ import annotations

import pathlib

import pytest

from userns.logindefs import DEFAULTS, LoginDefs, SubidLimits


def test_absent_names_give_shadows_defaults() -> None:
    d = LoginDefs.parse("")
    assert d.subid_limits("uid") == SubidLimits(100000, 600100000, 65536)
    assert d.subid_limits("gid") == SubidLimits(100000, 600100000, 65536)
    assert d.ulong("UID_MIN") == 1000 and d.ulong("SUB_UID_MIN", 7) == 7


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("SUB_UID_MIN 200000", 200000),
        ("SUB_UID_MIN\t\t200000", 200000),
        ("   SUB_UID_MIN 200000   ", 200000),  # leading blanks, trailing white space
        ('SUB_UID_MIN "200000"', 200000),  # quotes stripped
        ('SUB_UID_MIN "200000" trailing', 200000),  # value stops at the quote
        ("SUB_UID_MIN 0x30d40", 200000),  # strtoul base 0: hex
        ("SUB_UID_MIN 0606500", 200000),  # and octal
        ("SUB_UID_MIN 200000 # comment", 100000),  # unreadable: the default
        ("SUB_UID_MIN", 100000),  # a single field is skipped
        ("# SUB_UID_MIN 200000", 100000),
        ("SUB_UID_MIN 1\nSUB_UID_MIN 200000", 200000),  # the last line wins
        ("SUB_UID_MIN=200000", 100000),  # no '=' syntax
        ("SUB_UID_MIN 200000\r", 200000),  # \r is trailing white space
    ],
)
def test_values_as_shadow_reads_them(line: str, value: int) -> None:
    assert LoginDefs.parse(line + "\n").ulong("SUB_UID_MIN") == value


def test_unreadable_value_is_a_problem_with_location() -> None:
    d = LoginDefs.parse("# x\nSUB_UID_COUNT   64k\n", path="login.defs")
    assert d.ulong("SUB_UID_COUNT") == DEFAULTS["SUB_UID_COUNT"]
    [p] = d.problems
    assert p.reason == "not-a-number" and p.location is not None
    assert (p.location.line, p.location.column) == (2, 17)
    assert p.render().splitlines()[-1].endswith("^~~")


def test_long_lines_are_read_in_1023_byte_pieces() -> None:
    # getdef.c reads with fgets(buf, 1024): the tail of a long line is a line of its own.
    text = "X " + "y" * 1021 + "SUB_UID_MIN 300000\n"
    assert LoginDefs.parse(text).ulong("SUB_UID_MIN") == 300000


def test_read_from_root(tmp_path: pathlib.Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "login.defs").write_text("SUB_GID_COUNT 1000\n")
    assert LoginDefs.read(root=tmp_path).subid_limits("gid").count == 1000
    assert LoginDefs.read(tmp_path / "missing").subid_limits("gid").count == 65536
    with pytest.raises(ValueError):
        LoginDefs.parse("").subid_limits("xid")


def test_limits_problem_is_shadows_check() -> None:
    assert SubidLimits(100000, 600100000, 65536).problem() is None
    assert SubidLimits(100000, 99999, 1).problem() is not None
    assert SubidLimits(0, 65536, 65536).problem() is not None  # count >= max
    assert SubidLimits(100000, 165534, 65536).problem() is not None
    assert SubidLimits(100000, 165535, 65536).problem() is None  # MAX is inclusive
