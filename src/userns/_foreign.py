"""Numbers and white space as other programs read them (C, shadow, util-linux, Go).

The tools that read ``/etc/subuid``, ``login.defs`` and maps are written in C and Go, and
their number parsers decide what a file means: ``0100000`` is octal to C's ``strtoul``
with base 0 and decimal to Go, `` 5`` is 5 to C and an error to Go. This module is the
one place those readers are written down (a leaf: it imports nothing from the package):

- **C** (glibc 2.36, the "C" locale, 64-bit ``unsigned long``): :func:`c_strtoul`, with
  :data:`C_SPACE` and :data:`ULONG_MAX`;
- **shadow** 4.13's ``getulong`` (``strtoul(s, &end, 0)``, all of it, no ``ERANGE``):
  :func:`shadow_strtoul`;
- **util-linux** 2.38's ``strtoul_or_err`` (the same in base 10): :func:`util_linux_strtoul`;
- **Go**'s ``strconv.ParseInt(s, 10, bits)``: :func:`go_parse_int`, and
  ``strings.TrimSpace``/``bytes.TrimSpace``: :func:`go_trim_space` with :data:`GO_SPACE`.

The tests check each against the real thing (glibc through ``ctypes``, a Go program).

>>> shadow_strtoul("0100000").value, go_parse_int("0100000"), c_strtoul(" -1", 10).value
(32768, (100000, None), 18446744073709551615)
"""

from __future__ import annotations

from typing import NamedTuple

import attrs

__all__ = [
    "C_SPACE",
    "GO_RANGE",
    "GO_SPACE",
    "GO_SYNTAX",
    "ULONG_MAX",
    "NumberReading",
    "Strtoul",
    "c_strtoul",
    "go_fields",
    "go_parse_int",
    "go_parse_uint",
    "go_quote",
    "go_trim_space",
    "shadow_strtoul",
    "util_linux_strtoul",
]

#: ``unsigned long`` on 64-bit Linux (``strtoul``'s result on overflow).
ULONG_MAX = 2**64 - 1
#: C ``isspace()`` in the "C" locale: what ``strtoul`` skips and shadow trims.
C_SPACE = " \t\n\v\f\r"
#: Go's ``unicode.IsSpace``, what ``strings.TrimSpace`` and ``bytes.TrimSpace`` trim
#: (not the ASCII separators ``\x1c``-``\x1f`` that Python's ``str.isspace`` adds).
GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: The texts of Go's ``strconv.ErrSyntax`` and ``strconv.ErrRange``.
GO_SYNTAX = "invalid syntax"
GO_RANGE = "value out of range"

_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


# -- C ----------------------------------------------------------------------------------


class Strtoul(NamedTuple):
    """What ``value = strtoul(text, &end, base)`` leaves behind.

    ``value`` is the result (``ULONG_MAX`` on overflow, 0 when no digit was read, a
    negative number wrapped modulo 2**64); ``end`` the index ``end`` points at (0 when
    no digit was read: ``end == text``); ``erange`` whether ``errno`` is ``ERANGE``;
    ``base`` the base the digits were read in (base 0 picks 8, 10 or 16).
    """

    value: int
    end: int
    erange: bool
    base: int


def c_strtoul(text: str, base: int = 0) -> Strtoul:
    """C ``strtoul(text, &end, base)``, for ``base`` 0, 8, 10 or 16.

    Leading ``isspace`` characters, one optional sign (a minus negates modulo 2**64),
    then digits; with base 0 a ``0x`` prefix followed by a hex digit means 16 and a
    leading ``0`` means 8. Every digit is consumed even past an overflow.

    >>> c_strtoul("0x1g")
    Strtoul(value=1, end=3, erange=False, base=16)
    >>> c_strtoul("0x"), c_strtoul("08")  # "0" read in octal, stopped at "x" and "8"
    (Strtoul(value=0, end=1, erange=False, base=8), Strtoul(value=0, end=1, erange=False, base=8))
    >>> c_strtoul("-99999999999999999999", 10)
    Strtoul(value=18446744073709551615, end=21, erange=True, base=10)
    """
    if base not in (0, 8, 10, 16):
        raise ValueError(f"base must be 0, 8, 10 or 16: {base}")
    n = len(text)
    i = 0
    while i < n and text[i] in C_SPACE:
        i += 1
    negative = False
    if i < n and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    if (base in (0, 16) and text[i : i + 2] in ("0x", "0X") and i + 2 < n
            and text[i + 2] in _DIGITS[16]):
        base = 16
        i += 2
    elif base == 0:
        base = 8 if i < n and text[i] == "0" else 10
    digits = _DIGITS[base]
    j = i
    while j < n and text[j] in digits:
        j += 1
    if j == i:
        return Strtoul(0, 0, False, base)
    significant = text[i:j].lstrip("0")
    # More than 64 significant digits is past 2**64 in any base; int() never sees them.
    if len(significant) > 64 or int(significant or "0", base) > ULONG_MAX:
        return Strtoul(ULONG_MAX, j, True, base)
    value = int(significant or "0", base)
    return Strtoul(-value % (ULONG_MAX + 1) if negative else value, j, False, base)


@attrs.frozen
class NumberReading:
    """How ``strtoul(text, &end, 0)`` read a field: value, base, and where it stopped.

    ``ok`` is shadow's ``getulong`` verdict (non-empty, all consumed, no overflow).
    """

    value: int
    base: int
    ok: bool


def shadow_strtoul(text: str) -> NumberReading:
    """Read ``text`` as shadow 4.13's ``getulong`` does: ``strtoul(text, &end, 0)``.

    Leading C white space, an optional sign (a minus negates modulo 2**64), ``0x`` hex,
    a leading ``0`` octal; ``ok`` only if the whole text was consumed without overflow.

    >>> shadow_strtoul("0x186a0"), shadow_strtoul("0100000").value, shadow_strtoul("-1").value
    (NumberReading(value=100000, base=16, ok=True), 32768, 18446744073709551615)
    >>> shadow_strtoul("100000 ").ok, shadow_strtoul(" 100000").ok, shadow_strtoul("08").ok
    (False, True, False)
    """
    r = c_strtoul(text, 0)
    return NumberReading(r.value, r.base, r.end == len(text) and text != "" and not r.erange)


def util_linux_strtoul(text: str) -> int | None:
    """util-linux 2.38 ``strtoul_or_err``: all of ``text`` one ``strtoul(…, 10)`` number
    without ``ERANGE``, else ``None`` (where the tool prints its error and exits).

    >>> util_linux_strtoul(" 10"), util_linux_strtoul("-1"), util_linux_strtoul("10 ")
    (10, 18446744073709551615, None)
    """
    r = c_strtoul(text, 10)
    if text == "" or r.end != len(text) or r.erange:
        return None
    return r.value


# -- Go ---------------------------------------------------------------------------------


def go_trim_space(text: str) -> str:
    """Go's ``strings.TrimSpace``: ``text`` without :data:`GO_SPACE` at either end.

    >>> go_trim_space("\\u3000 a b\\x85\\n"), go_trim_space("\\x1ca")
    ('a b', '\\x1ca')
    """
    i, j = 0, len(text)
    while i < j and text[i] in GO_SPACE:
        i += 1
    while j > i and text[j - 1] in GO_SPACE:
        j -= 1
    return text[i:j]


def go_parse_uint(text: str, bit_size: int = 64) -> tuple[int, str | None]:
    """Go's ``strconv.ParseUint(text, 10, bit_size)``: ``(value, error)``.

    ``error`` is ``None``, :data:`GO_SYNTAX` (the value is then 0) or :data:`GO_RANGE`
    (the value is then the largest of ``bit_size`` bits). ASCII digits only, no sign,
    read left to right: the first digit that overflows stops the reading, so an overflow
    before a stray character is a range error, not a syntax error. ``bit_size`` 0 is
    Go's ``uint`` (64 bits).

    >>> go_parse_uint("4294967295", 32), go_parse_uint("4294967296x", 32)
    ((4294967295, None), (4294967295, 'value out of range'))
    >>> go_parse_uint("+1"), go_parse_uint("")
    ((0, 'invalid syntax'), (0, 'invalid syntax'))
    """
    bits = bit_size or 64
    if not 0 < bits <= 64:
        raise ValueError(f"bit_size must be 0 to 64: {bit_size}")
    if not text:
        return 0, GO_SYNTAX
    limit = 1 << bits
    value = 0
    for ch in text:
        if not "0" <= ch <= "9":
            return 0, GO_SYNTAX
        value = value * 10 + ord(ch) - 48
        if value >= limit:
            return limit - 1, GO_RANGE
    return value, None


def go_parse_int(text: str, bit_size: int = 64) -> tuple[int, str | None]:
    """Go's ``strconv.ParseInt(text, 10, bit_size)``: ``(value, error)``.

    ``error`` is ``None``, :data:`GO_SYNTAX` (the value is then 0) or :data:`GO_RANGE`
    (the value is then the limit of that sign). One optional sign, then what
    :func:`go_parse_uint` reads (as Go's ParseInt calls ParseUint), clamped to the
    signed range. ``bit_size`` 0 is Go's ``int`` (64 bits); ``strconv.Atoi`` gives the
    same results.

    >>> go_parse_int("+7"), go_parse_int(" 7"), go_parse_int("2147483648", 32)
    ((7, None), (0, 'invalid syntax'), (2147483647, 'value out of range'))
    >>> go_parse_int("99999999999999999999x")
    (9223372036854775807, 'value out of range')
    """
    bits = bit_size or 64
    if not 0 < bits <= 64:
        raise ValueError(f"bit_size must be 0 to 64: {bit_size}")
    negative = text[:1] == "-"
    body = text[1:] if text[:1] in ("+", "-") else text
    unsigned, err = go_parse_uint(body, bits)
    if err == GO_SYNTAX:
        return 0, GO_SYNTAX
    cutoff = 1 << (bits - 1)
    if not negative and unsigned >= cutoff:
        return cutoff - 1, GO_RANGE
    if negative and unsigned > cutoff:
        return -cutoff, GO_RANGE
    return (-unsigned if negative else unsigned), None


def go_fields(text: str) -> list[str]:
    """Go's ``strings.Fields``: the runs of ``text`` between :data:`GO_SPACE`.

    >>> go_fields("\u3000a  b\x85c\x1cd ")
    ['a', 'b', 'c\\x1cd']
    """
    out: list[str] = []
    cur: list[str] = []
    for ch in text:
        if ch in GO_SPACE:
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` (``strconv.Quote``) writes it.

    >>> print(go_quote('0: kubelet 65536 65536\\n0: x'))
    "0: kubelet 65536 65536\\n0: x"
    """
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", '"': '\\"', "\\": "\\\\"}
    out = []
    for ch in text:
        code = ord(ch)
        if ch in escapes:
            out.append(escapes[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif not ch.isprintable() and ch != " ":
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
