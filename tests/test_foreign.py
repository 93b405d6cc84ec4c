"""The foreign readers against the real ones: glibc's ``strtoul`` (through ctypes) and Go's
``strconv``/``strings`` (a small program built with Debian's ``golang-go``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import locale
import pathlib
import random
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from userns import _foreign as foreign
from userns._foreign import (
    C_SPACE,
    GO_RANGE,
    GO_SPACE,
    GO_SYNTAX,
    ULONG_MAX,
    NumberReading,
    Strtoul,
    c_strtoul,
    go_parse_int,
    go_trim_space,
    shadow_strtoul,
    util_linux_strtoul,
)

from .goprog import GO, build_go

ERANGE = 34

# -- C: glibc strtoul through ctypes ------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_strtoul = _libc.strtoul
_strtoul.restype = ctypes.c_ulong
_strtoul.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]


@pytest.fixture(autouse=True, scope="module")
def c_locale() -> Iterator[None]:
    """strtoul's white space is ``isspace`` of the current locale: pin the "C" one."""
    saved = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    yield
    locale.setlocale(locale.LC_CTYPE, saved)


def glibc_strtoul(text: str, base: int) -> Strtoul:
    """The real ``strtoul(text, &end, base)``: value, end index, ERANGE."""
    raw = text.encode()
    buf = ctypes.create_string_buffer(raw)
    end = ctypes.c_char_p()
    ctypes.set_errno(0)
    value = _strtoul(ctypes.cast(buf, ctypes.c_char_p), ctypes.byref(end), base)
    errno = ctypes.get_errno()
    assert end.value is not None
    consumed = len(raw) - len(end.value)  # ASCII before the end: bytes are characters
    return Strtoul(value, consumed, errno == ERANGE, -1)


C_TEXTS = st.text(alphabet=st.sampled_from("0123456789abcdefxX+- \t\n\v\f\r\xa0\x1cz8_"),
                  max_size=30)
EDGES = ["", " ", "+", "-", "0", "00", "08", "0x", "0X", "0x1g", "0xg", " 0x10", "-0x10",
         "+-1", "-1", "- 1", " -1", "\t\n\v\f\r7", "\xa07", "1_000", "18446744073709551615",
         "18446744073709551616", "-18446744073709551615", "-18446744073709551616",
         "0xffffffffffffffff", "0x10000000000000000", "01777777777777777777777",
         "02000000000000000000000", "99999999999999999999junk", "0" * 80 + "12",
         "9" * 5000, "4294967296", "0100000", "0x186a0"]


@pytest.mark.parametrize("base", [0, 10, 16, 8])
@pytest.mark.parametrize("text", EDGES)
def test_c_strtoul_edges_are_glibcs(text: str, base: int) -> None:
    real = glibc_strtoul(text, base)
    ours = c_strtoul(text, base)
    assert (ours.value, ours.end, ours.erange) == (real.value, real.end, real.erange)


@given(C_TEXTS, st.sampled_from([0, 10]))
@example("0x", 0)
@example(" -0", 0)
@settings(deadline=None, max_examples=400)
def test_c_strtoul_is_glibcs(text: str, base: int) -> None:
    real = glibc_strtoul(text, base)
    ours = c_strtoul(text, base)
    assert (ours.value, ours.end, ours.erange) == (real.value, real.end, real.erange)


@given(C_TEXTS)
@settings(deadline=None, max_examples=300)
def test_shadow_strtoul_is_getulong(text: str) -> None:
    # lib/getulong.c: fail on an empty string, on anything after the number, on ERANGE.
    real = glibc_strtoul(text, 0)
    ok = text != "" and real.end == len(text.encode()) and not real.erange
    reading = shadow_strtoul(text)
    assert (reading.value, reading.ok) == (real.value, ok)


@given(C_TEXTS)
@settings(deadline=None, max_examples=300)
def test_util_linux_strtoul_is_strtoul_or_err(text: str) -> None:
    # lib/strutils.c: errno, no digit (end == str) or a character left are errors.
    real = glibc_strtoul(text, 10)
    fails = text == "" or real.erange or real.end == 0 or real.end != len(text.encode())
    assert util_linux_strtoul(text) == (None if fails else real.value)


def test_strtoul_pinned_cases() -> None:
    # The cases the subid and login.defs readers depend on, spelled out.
    assert shadow_strtoul(" 100000") == NumberReading(100000, 10, True)  # leading space
    assert shadow_strtoul("100000 ").ok is False  # trailing space
    assert shadow_strtoul("+5") == NumberReading(5, 10, True)
    assert shadow_strtoul("-1") == NumberReading(ULONG_MAX, 10, True)  # wraps
    assert shadow_strtoul("0x186a0") == NumberReading(100000, 16, True)
    assert shadow_strtoul("0100000") == NumberReading(32768, 8, True)  # octal
    assert shadow_strtoul("08") == NumberReading(0, 8, False)  # not octal
    assert shadow_strtoul("18446744073709551616") == NumberReading(ULONG_MAX, 10, False)
    assert c_strtoul("-18446744073709551616", 10) == Strtoul(ULONG_MAX, 21, True, 10)
    assert c_strtoul("junk", 10) == Strtoul(0, 0, False, 10)
    assert util_linux_strtoul("-1") == ULONG_MAX
    assert util_linux_strtoul("") is None
    # Past Python's 4300-digit int() limit: read as C reads it, out of range, no ValueError.
    assert util_linux_strtoul("9" * 5000) is None
    assert shadow_strtoul("9" * 5000) == NumberReading(ULONG_MAX, 10, False)
    assert go_parse_int("9" * 5000) == (2**63 - 1, GO_RANGE)


def test_c_strtoul_refuses_other_bases() -> None:
    with pytest.raises(ValueError, match="base must be 0, 8, 10 or 16: 2"):
        c_strtoul("101", 2)


def test_c_space_is_isspace_in_the_c_locale() -> None:
    isspace = _libc.isspace
    assert {chr(c) for c in range(128) if isspace(c)} == set(C_SPACE)
    assert 2 ** (8 * ctypes.sizeof(ctypes.c_ulong)) - 1 == ULONG_MAX


# -- Go: strconv.ParseInt, strconv.Atoi, strings.TrimSpace -------------------------------


GO_PROGRAM = """\
package main

import (
\t"bufio"
\t"encoding/hex"
\t"errors"
\t"fmt"
\t"os"
\t"strconv"
\t"strings"
)

func kind(err error) string {
\tswitch {
\tcase err == nil:
\t\treturn "ok"
\tcase errors.Is(err, strconv.ErrSyntax):
\t\treturn "syntax"
\tcase errors.Is(err, strconv.ErrRange):
\t\treturn "range"
\t}
\treturn err.Error()
}

func main() {
\tin := bufio.NewScanner(os.Stdin)
\tin.Buffer(make([]byte, 1<<20), 1<<20)
\tfor in.Scan() {
\t\traw, _ := hex.DecodeString(in.Text())
\t\ts := string(raw)
\t\tfor _, bits := range []int{64, 32, 0} {
\t\t\tv, err := strconv.ParseInt(s, 10, bits)
\t\t\tfmt.Printf("%d %s ", v, kind(err))
\t\t}
\t\tv, err := strconv.Atoi(s)
\t\tfmt.Printf("%d %s %s\\n", v, kind(err), hex.EncodeToString([]byte(strings.TrimSpace(s))))
\t}
}
"""

GO_TOKENS = ["0", "1", "7", "9", "12345", "2147483647", "2147483648", "4294967296",
             "9223372036854775807", "9223372036854775808", "18446744073709551616",
             "99999999999999999999", "+", "-", " ", "\t", "\n", "\v", "\x85", "\xa0",
             "\u2003", "\u3000", "\x1c", "\u200b", "_", "x", "a", "é", "00"]
GO_EDGES = ["", "+", "-", "+-1", "-0", "+0", " 5", "5 ", "0x10", "1_000", "0100000",
            "-9223372036854775808", "-9223372036854775809", "9223372036854775807",
            "9223372036854775808", "-2147483648", "-2147483649", "99999999999999999999x",
            "x99999999999999999999", "0" * 40 + "1", "\u3000a\u3000", "\x1ca\x1c", "\x85\xa0"]


@pytest.fixture(scope="module")
def go_strconv(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    if GO is None:
        pytest.skip("needs Go (Debian package golang-go)")
    return build_go(tmp_path_factory, "strconv", GO_PROGRAM)


def _ours(text: str) -> list[str]:
    kinds = {None: "ok", GO_SYNTAX: "syntax", GO_RANGE: "range"}
    out = []
    for bits in (64, 32, 0):
        value, error = go_parse_int(text, bits)
        out += [str(value), kinds[error]]
    value, error = go_parse_int(text, 0)  # Atoi: ParseInt(s, 10, 0) in results
    out += [str(value), kinds[error], go_trim_space(text).encode().hex()]
    return out


def test_go_readers_are_gos(go_strconv: pathlib.Path) -> None:
    rng = random.Random(17)
    texts = GO_EDGES + ["".join(rng.choice(GO_TOKENS) for _ in range(rng.randint(0, 5)))
                        for _ in range(2000)]
    out = subprocess.run([str(go_strconv)], input="".join(t.encode().hex() + "\n" for t in texts),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == len(texts)
    for text, line in zip(texts, out):
        theirs = line.split(" ")
        assert _ours(text) == theirs, text


def test_go_parse_int_pinned_errors() -> None:
    assert go_parse_int("") == (0, GO_SYNTAX)
    assert go_parse_int("-") == (0, GO_SYNTAX)
    assert go_parse_int(" 5") == (0, GO_SYNTAX)  # no white space
    assert go_parse_int("0x10") == (0, GO_SYNTAX)  # base 10 only
    assert go_parse_int("1_000") == (0, GO_SYNTAX)  # underscores only in base 0
    assert go_parse_int("0100000") == (100000, None)  # a leading zero is decimal
    assert go_parse_int("9223372036854775808") == (2**63 - 1, GO_RANGE)
    assert go_parse_int("-9223372036854775809") == (-(2**63), GO_RANGE)
    assert go_parse_int("-2147483649", 32) == (-(2**31), GO_RANGE)
    # The overflow is seen before the stray character: a range error, not a syntax one.
    assert go_parse_int("99999999999999999999junk") == (2**63 - 1, GO_RANGE)
    assert go_parse_int("99999999999x", 32) == (2**31 - 1, GO_RANGE)
    assert go_parse_int("9999999999x", 64) == (0, GO_SYNTAX)


def test_go_parse_int_refuses_other_sizes() -> None:
    with pytest.raises(ValueError, match="bit_size must be 0 to 64: 65"):
        go_parse_int("1", 65)


@given(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 64]))
@settings(deadline=None)
def test_go_parse_int_reads_every_int64(value: int, bits: int) -> None:
    assert go_parse_int(str(value), bits) == (value, None)
    assert go_parse_int(f"+{value}" if value >= 0 else str(value), bits) == (value, None)


def test_go_space_is_not_pythons() -> None:
    # Python's isspace adds the ASCII separators \x1c-\x1f; Go's unicode.IsSpace does not.
    assert {c for c in map(chr, range(0x3001)) if c.isspace()} - GO_SPACE == set("\x1c\x1d\x1e\x1f")
    assert go_trim_space("\x1c a \x1c") == "\x1c a \x1c"


def test_public_names_stay_where_they_were() -> None:
    from userns import logindefs, subid
    from userns.subid import model

    assert logindefs.shadow_strtoul is subid.shadow_strtoul is foreign.shadow_strtoul
    assert logindefs.NumberReading is model.NumberReading is foreign.NumberReading
    assert logindefs.ULONG_MAX == foreign.ULONG_MAX
