"""The pure parts of userns.shift: capability and ACL codecs, the translator, the journal
encoding. No root needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from userns import ID_MAX, Extent, IDMap, IDRange, IDSet
from userns.shift.journal import (
    NO_MODE,
    Journal,
    JournalError,
    Record,
    decode_records,
    encode_records,
)
from userns.shift.translate import IDTranslator, check_policy, compose
from userns.shift.xattrs import (
    ACLEntry,
    FileCapability,
    PosixACL,
    XattrFormatError,
    format_acl,
    format_capability,
    parse_acl,
    parse_capability,
    shift_acl,
    shift_capability,
)

ids = st.integers(0, ID_MAX)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, (1 << 64) - 1)


@st.composite
def capabilities(draw: st.DrawFn) -> FileCapability:
    revision = draw(st.sampled_from([1, 2, 3]))
    wide = u32 if revision == 1 else u64
    return FileCapability(revision, draw(st.booleans()), draw(wide), draw(wide),
                          draw(u32) if revision == 3 else None)


@st.composite
def acls(draw: st.DrawFn) -> PosixACL:
    entries = [ACLEntry(0x01, draw(st.integers(0, 7)))]
    entries += [ACLEntry(0x02, draw(st.integers(0, 7)), draw(ids))
                for _ in range(draw(st.integers(0, 6)))]
    entries.append(ACLEntry(0x04, draw(st.integers(0, 7))))
    entries += [ACLEntry(0x08, draw(st.integers(0, 7)), draw(ids))
                for _ in range(draw(st.integers(0, 6)))]
    entries += [ACLEntry(0x10, 7), ACLEntry(0x20, draw(st.integers(0, 7)))]
    return PosixACL(tuple(entries))


# -- capabilities ---------------------------------------------------------------------


def test_capability_seed_values_from_setcap() -> None:
    # setcap cap_net_raw+ep (v2) and setcap -n 100000 cap_net_raw,cap_sys_admin+eip (v3)
    v2 = parse_capability(bytes.fromhex("0100000200200000000000000000000000000000"))
    assert v2 == FileCapability(2, True, 1 << 13, 0)
    v3 = parse_capability(bytes.fromhex("0100000300202000002020000000000000000000a0860100"))
    assert v3 == FileCapability(3, True, 1 << 13 | 1 << 21, 1 << 13 | 1 << 21, 100000)


@given(capabilities())
def test_capability_round_trip(cap: FileCapability) -> None:
    assert parse_capability(format_capability(cap)) == cap


@given(capabilities(), st.integers(-100000, 100000))
@example(FileCapability(3, True, 5, 0, rootid=100000), -100000)
def test_shift_capability_moves_only_the_rootid(cap: FileCapability, delta: int) -> None:
    raw = format_capability(cap)
    out = parse_capability(shift_capability(raw, lambda u: (u + delta) % (1 << 32)))
    assert (out.effective, out.permitted, out.inheritable) == (
        cap.effective, cap.permitted, cap.inheritable)
    if cap.rootid is None:
        assert out == cap and shift_capability(raw, lambda u: 0) == raw
    elif (cap.rootid + delta) % (1 << 32) == 0:  # stored as v2 by the kernel: made so
        assert (out.revision, out.rootid) == (2, None)
    else:
        assert (out.revision, out.rootid) == (3, (cap.rootid + delta) % (1 << 32))


@pytest.mark.parametrize("raw", [b"", b"\x01\x00\x00", bytes(20),
                                 bytes.fromhex("01000003") + bytes(16),   # v3 too short
                                 bytes.fromhex("01000002") + bytes(20)])  # v2 too long
def test_bad_capability(raw: bytes) -> None:
    with pytest.raises(XattrFormatError) as info:
        parse_capability(raw)
    assert info.value.reason == "bad-capability"
    assert isinstance(info.value, ValueError)


# -- ACLs -----------------------------------------------------------------------------


def test_acl_seed_value_from_setfacl() -> None:
    # setfacl -m u:1000:rw,u:1001:r,g:2000:r,g:2001:rw f
    raw = bytes.fromhex(
        "02000000" "01000600ffffffff" "02000600e8030000" "02000400e9030000"
        "04000400ffffffff" "08000400d0070000" "08000600d1070000" "10000600ffffffff"
        "20000400ffffffff")
    acl = parse_acl(raw)
    assert acl.named_ids() == ([1000, 1001], [2000, 2001])
    assert format_acl(acl) == raw
    shifted = parse_acl(shift_acl(raw, lambda u: u + 100000, lambda g: g + 300000))
    assert shifted.named_ids() == ([101000, 101001], [302000, 302001])
    assert [e.perm for e in shifted.entries] == [e.perm for e in acl.entries]


@given(acls())
def test_acl_round_trip(acl: PosixACL) -> None:
    assert parse_acl(format_acl(acl)) == acl


@given(acls(), st.integers(0, 1000), st.integers(0, 1000))
def test_shift_acl_shifts_every_named_entry(acl: PosixACL, du: int, dg: int) -> None:
    out = parse_acl(shift_acl(format_acl(acl), lambda u: (u + du) % (ID_MAX + 1),
                              lambda g: (g + dg) % (ID_MAX + 1)))
    users, groups = acl.named_ids()
    assert out.named_ids() == ([(u + du) % (ID_MAX + 1) for u in users],
                               [(g + dg) % (ID_MAX + 1) for g in groups])
    assert [(e.tag, e.perm) for e in out.entries] == [(e.tag, e.perm) for e in acl.entries]


@pytest.mark.parametrize("raw", [b"", bytes.fromhex("01000000"),
                                 bytes.fromhex("02000000") + bytes(7),
                                 bytes.fromhex("02000000" "40000700ffffffff")])
def test_bad_acl(raw: bytes) -> None:
    with pytest.raises(XattrFormatError) as info:
        parse_acl(raw)
    assert info.value.reason == "bad-acl"


# -- translation ----------------------------------------------------------------------


@given(st.lists(st.integers(0, 200), max_size=30))
@example([0, 9, 10, 99, 100, 109, 110])
def test_translator_against_a_dict(values: list[int]) -> None:
    source = IDMap([Extent(0, 100, 10), Extent(10, 150, 5)])
    target = IDMap.single(0, 10, 12)
    table = {source.to_host(c): target.to_host(c) for c in range(12)}
    for policy in ("error", "skip", "overflow"):
        t = IDTranslator(compose(target, source), check_policy(policy), overflow=7)
        for v in values:
            want = table.get(v, 7 if policy == "overflow" else v)
            assert t(v) == want
        assert t.unmapped == {v for v in values if v not in table}


def test_idempotent_set_is_the_image_only_when_disjoint() -> None:
    disjoint = IDTranslator(IDMap.single(0, 100000, 65536), "skip")
    assert disjoint.idempotent_set() == IDSet([IDRange(100000, 65536)])
    assert IDTranslator(IDMap.single(0, 1000, 65536), "skip").idempotent_set() is None
    assert IDTranslator(IDMap.single(0, 100000, 10), "overflow").idempotent_set() is None


def test_compose_needs_a_map_and_a_known_policy() -> None:
    with pytest.raises(ValueError, match="target map, a source map"):
        compose(None, None)
    with pytest.raises(ValueError, match="policy must be one of error, skip, overflow"):
        check_policy("ignore")


# -- journal --------------------------------------------------------------------------

_xattrs = st.lists(st.tuples(st.integers(0, 2), st.one_of(st.none(), st.binary(max_size=40))),
                  max_size=3).map(tuple)
records = st.builds(
    Record, u32, u32, u32, u32, st.one_of(st.just(NO_MODE), st.integers(0, 0o7777)),
    _xattrs, _xattrs)


@given(st.lists(st.tuples(u64, u64, records), max_size=20))
def test_journal_frames_round_trip(items: list[tuple[int, int, Record]]) -> None:
    assert decode_records(encode_records(items)) == {(d, i): r for d, i, r in items}


@given(st.lists(st.tuples(u64, u64, records), min_size=1, max_size=5), st.data())
def test_a_torn_last_frame_is_ignored(items: list[tuple[int, int, Record]],
                                      data: st.DataObject) -> None:
    first = encode_records(items[:1])
    second = encode_records(items[1:] or items[:1])
    cut = data.draw(st.integers(0, len(second) - 1))
    assert decode_records(first + second[:cut]) == decode_records(first)
    flipped = bytearray(first + second)
    flipped[len(first) + 8] ^= 0xFF  # a payload byte of the second frame: bad CRC
    assert decode_records(bytes(flipped)) == decode_records(first)


def test_journal_lifecycle(tmp_path: Path) -> None:
    path = str(tmp_path / "j")
    jr = Journal.open(path, {"root": [1, 2]}, durable=False)
    assert not jr.resumed
    w = jr.writer("w0")
    rec = Record(0, 0, 5, 5, NO_MODE, ())
    w.add(1, 2, rec)
    w.flush()
    w.close()
    with pytest.raises(JournalError) as info:
        Journal.open(path, {"root": [1, 2]}, durable=False)
    assert info.value.reason == "busy"
    jr.close()
    with pytest.raises(JournalError) as info:
        Journal.open(path, {"root": [1, 3]}, durable=False)
    assert info.value.reason == "journal-mismatch"
    again = Journal.open(path, {"root": [1, 2]}, durable=False)
    assert again.resumed and again.records() == {(1, 2): rec}
    again.remove()
    assert not os.path.exists(path)


def test_journal_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(JournalError) as info:
        Journal.open(str(tmp_path / "no" / "such" / "j"), {}, durable=False)
    assert info.value.reason == "journal-unwritable"
    assert isinstance(info.value, OSError)
