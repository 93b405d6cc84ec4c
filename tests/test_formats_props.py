"""Property tests for every format: exact round trips, the kernel's acceptance rule at the
ID boundaries, and fuzzed text into every parser.

The registry's formats come in two kinds (``Format.writes_any``): the general ones write
every valid pair, and their round trip is checked over every pair; the restricted ones
(``crio``, ``nspawn``) write some pairs and refuse the rest with ``not-expressible``: over
every pair, each either refuses or round-trips, and it refuses exactly the pairs an
independent statement of the format's limit says it cannot express."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from userns import ID_MAX, Extent, IDMap, IDMapPair, InvalidMapError, UsernsError
from userns.formats import (
    FORMATS,
    NewIDMapCommand,
    NotExpressibleError,
    Side,
    format_crio,
    format_lxc,
    format_newuidmap,
    format_notation,
    format_nspawn,
    format_oci_config,
    format_oci_mappings,
    format_podman,
    format_podman_pair,
    format_raw_idmap,
    format_unshare,
    format_usernsexec,
    format_xmount,
    get_format,
    idmap_from_oci,
    idmap_to_oci,
    parse_crio,
    parse_lxc,
    parse_newuidmap,
    parse_newuidmap_command,
    parse_notation,
    parse_nspawn,
    parse_oci_config,
    parse_oci_mappings,
    parse_podman,
    parse_podman_mappings,
    parse_podman_pair,
    parse_raw_idmap,
    parse_unshare,
    parse_usernsexec,
    parse_xmount,
    validate_map_write,
)

from .strategies import id_maps

# -- strategies ----------------------------------------------------------------------------


@st.composite
def spread_maps(draw: st.DrawFn) -> IDMap:
    """Maps from ``id_maps`` moved anywhere in the ID space, the top edge drawn often."""
    m = draw(id_maps())
    if not m:
        return m
    c_top = max(e.container + e.size for e in m)
    h_top = max(e.host + e.size for e in m)
    room_c, room_h = ID_MAX + 1 - c_top, ID_MAX + 1 - h_top
    dc = draw(st.one_of(st.integers(0, room_c), st.sampled_from([0, room_c])))
    dh = draw(st.one_of(st.integers(0, room_h), st.sampled_from([0, room_h])))
    return IDMap(Extent(e.container + dc, e.host + dh, e.size) for e in m)


def pairs() -> st.SearchStrategy[IDMapPair]:
    same = spread_maps().map(IDMapPair.both)
    different = st.builds(IDMapPair, spread_maps(), spread_maps())
    return st.one_of(same, different)


@st.composite
def nspawn_shaped(draw: st.DrawFn) -> IDMapPair:
    """One extent from container ID 0, the same for users and groups (65535 drawn often)."""
    host = draw(st.one_of(st.integers(0, ID_MAX), st.sampled_from([0, 65535, 65536, ID_MAX])))
    size = draw(st.one_of(st.integers(1, ID_MAX + 1 - host), st.just(ID_MAX + 1 - host)))
    return IDMapPair.both(IDMap.single(0, host, size))


def restricted_pairs() -> st.SearchStrategy[IDMapPair]:
    """Any pair, with those a restricted format can express drawn often enough to matter:
    one-extent maps from 0, and pairs with an empty half."""
    halves = st.builds(IDMapPair, st.just(IDMap()), spread_maps()) | st.builds(
        IDMapPair, spread_maps(), st.just(IDMap()))
    kinds = (nspawn_shaped(), halves, pairs())
    return st.integers(0, len(kinds) - 1).flatmap(lambda i: kinds[i])  # each a third


#: Each restricted format's limit, stated apart from its writer: True when it can write it.
EXPRESSIBLE: dict[str, Callable[[IDMapPair], bool]] = {
    "nspawn": lambda p: (p.uid == p.gid and len(p.uid) == 1 and p.uid[0].container == 0
                         and p.uid[0].host != 65535),
    "crio": lambda p: bool(p.uid) and bool(p.gid),
}

RESTRICTED = sorted(name for name, f in FORMATS.items() if not f.writes_any)
GENERAL = sorted(name for name, f in FORMATS.items() if f.writes_any)


EDGE_TOP = IDMap([Extent(ID_MAX, 0, 1), Extent(0, ID_MAX, 1)])  # both largest IDs
EDGE_ALL = IDMap.identity()  # 0 0 4294967295
EDGE_TOUCH = IDMap([Extent(0, 10, 10), Extent(10, 0, 10)])  # touching on both sides


# -- round trips of the one-map formats ------------------------------------------------------

ONE_MAP: dict[str, tuple[Callable[[IDMap], str], Callable[[str], IDMap]]] = {
    "oci": (format_oci_mappings, parse_oci_mappings),
    "oci-indented": (lambda m: format_oci_mappings(m, indent=2), parse_oci_mappings),
    "oci-objects": (idmap_to_oci, idmap_from_oci),  # type: ignore[dict-item]
    "podman": (format_podman, parse_podman),
    "unshare": (format_unshare, parse_unshare),
    "unshare-legacy": (lambda m: format_unshare(m, legacy=True), parse_unshare),
    "newuidmap": (format_newuidmap, parse_newuidmap),
    "newuidmap-cmd": (lambda m: format_newuidmap(m, target=4242), parse_newuidmap),
    "kernel": (format_notation, parse_notation),
    "kernel-v": (lambda m: format_notation(m, lower="v", sep="\n"), parse_notation),
}


@pytest.mark.parametrize("name", sorted(ONE_MAP))
@settings(max_examples=50)
@given(m=spread_maps())
@example(m=EDGE_TOP)
@example(m=EDGE_ALL)
@example(m=EDGE_TOUCH)
def test_one_map_round_trip(name: str, m: IDMap) -> None:
    fmt, parse = ONE_MAP[name]
    text = fmt(m)
    assert parse(text) == m
    assert fmt(parse(text)) == text  # the formatted text is canonical: a fixed point


# -- round trips of the pair formats -----------------------------------------------------------

PAIR: dict[str, tuple[Callable[[IDMapPair], str], Callable[[str], IDMapPair]]] = {
    "oci-config": (format_oci_config, parse_oci_config),
    "podman": (format_podman_pair, parse_podman_pair),
    "lxc": (format_lxc, parse_lxc),
    "usernsexec": (format_usernsexec, parse_usernsexec),
    "incus": (format_raw_idmap, parse_raw_idmap),
    "xmount": (format_xmount, parse_xmount),
}


@pytest.mark.parametrize("name", sorted(PAIR))
@settings(max_examples=50)
@given(pair=pairs())
@example(pair=IDMapPair(EDGE_TOP, EDGE_ALL))
@example(pair=IDMapPair.both(EDGE_TOUCH))
@example(pair=IDMapPair(IDMap(), EDGE_TOP))
def test_pair_round_trip(name: str, pair: IDMapPair) -> None:
    fmt, parse = PAIR[name]
    if name == "xmount" and not pair.uid and not pair.gid:
        return  # an empty X-mount.idmap value is refused by mount itself
    text = fmt(pair)
    assert parse(text) == pair
    assert fmt(parse(text)) == text


def _kept(pair: IDMapPair, side: str) -> IDMapPair:
    return pair if side == "both" else (
        IDMapPair(pair.uid, IDMap()) if side == "uid" else IDMapPair(IDMap(), pair.gid))


def test_the_registry_knows_which_formats_write_any_map() -> None:
    assert sorted(EXPRESSIBLE) == RESTRICTED  # a new restricted format states its limit here
    assert len(GENERAL) + len(RESTRICTED) == len(FORMATS) and len(GENERAL) >= 14


@pytest.mark.parametrize("name", GENERAL)
@settings(max_examples=40)
@given(pair=pairs(), side=st.sampled_from(["uid", "gid", "both"]))
def test_registry_round_trip(name: str, pair: IDMapPair, side: str) -> None:
    f = get_format(name)
    if f.carries == "one" and side == "both":
        pair = IDMapPair.both(pair.uid)
    kept = _kept(pair, side)
    if not f.accepts_empty and not kept.uid and not kept.gid:
        return
    text = f.format(pair, side=side)  # type: ignore[arg-type]
    assert f.parse(text, side=side) == kept  # type: ignore[arg-type]


@pytest.mark.parametrize("name", RESTRICTED)
@settings(max_examples=80)
@given(pair=restricted_pairs(), side=st.sampled_from(["uid", "gid", "both"]))
@example(pair=IDMapPair.both(IDMap.single(0, 65535, 1)), side="both")
@example(pair=IDMapPair.both(IDMap.single(0, ID_MAX, 1)), side="both")
@example(pair=IDMapPair.both(IDMap.single(0, 0, ID_MAX + 1)), side="both")
@example(pair=IDMapPair(IDMap(), IDMap()), side="both")
def test_restricted_registry_refuses_or_round_trips(name: str, pair: IDMapPair,
                                                    side: str) -> None:
    f = get_format(name)
    kept = _kept(pair, side)
    try:
        text = f.format(pair, side=side)  # type: ignore[arg-type]
    except NotExpressibleError as err:
        assert err.reason == "not-expressible" and err.format_name == name
        assert not EXPRESSIBLE[name](kept)
        return
    assert EXPRESSIBLE[name](kept)
    assert f.parse(text, side=side) == kept  # type: ignore[arg-type]
    assert f.parse(text) == kept
    assert f.format(f.parse(text)) == text  # canonical: a fixed point


EXPRESSIBLE_PAIRS: dict[str, st.SearchStrategy[IDMapPair]] = {
    "nspawn": nspawn_shaped().filter(lambda p: p.uid[0].host != 65535),
    "crio": pairs().filter(lambda p: bool(p.uid) and bool(p.gid)),
}


@pytest.mark.parametrize("name", RESTRICTED)
@settings(max_examples=60)
@given(data=st.data())
def test_restricted_registry_round_trips_what_it_can_express(name: str,
                                                             data: st.DataObject) -> None:
    pair = data.draw(EXPRESSIBLE_PAIRS[name])
    f = get_format(name)
    text = f.format(pair)
    assert f.parse(text) == pair
    assert f.format(f.parse(text)) == text


RESTRICTED_WRITERS: dict[str, tuple[Callable[[IDMapPair], str], Callable[[str], IDMapPair]]] = {
    "crio": (format_crio, parse_crio),
    "nspawn": (format_nspawn, parse_nspawn),
}


@pytest.mark.parametrize("name", sorted(RESTRICTED_WRITERS))
@settings(max_examples=60)
@given(pair=restricted_pairs())
def test_restricted_writer_functions_agree_with_the_registry(name: str,
                                                             pair: IDMapPair) -> None:
    fmt, parse = RESTRICTED_WRITERS[name]
    try:
        text = fmt(pair)
    except NotExpressibleError:
        with pytest.raises(NotExpressibleError):
            get_format(name).format(pair)
        return
    assert text == get_format(name).format(pair)
    assert parse(text) == pair


# -- canonical texts are fixed points ------------------------------------------------------------

CANONICAL = [
    ("proc", "0 231072 65536\n"),
    ("oci", '[{"containerID": 0, "hostID": 231072, "size": 65536}]'),
    ("oci-config", format_oci_config(IDMapPair.both(IDMap.single(0, 231072, 65536)))),
    ("podman", "0:200000:20 20:250000:65516"),
    ("podman", "u0:1000:1 g0:2000:1"),
    ("lxc", "lxc.idmap = u 0 231072 65536\nlxc.idmap = g 0 231072 65536\n"),
    ("incus", "both 1000 1000"),
    ("incus", "uid 1000-1002 0-2\ngid 50 50"),
    ("unshare", "0:231072:65536"),
    ("newuidmap", "0 200000 20 20 250000 65516"),
    ("kernel", "u0:k231072:r65536"),
    ("kernel", "u0:k0:r4294967295"),
    ("xmount", "b:0:231072:65536"),
    ("usernsexec", "u:0:1000:1 u:1:100000:65536 g:0:1000:1"),
    ("xmount", "u:1000:0:1 u:5000:1000:2 g:1001:1:2 g:5000:1000:2"),
    ("crio", "private:uidmapping=0:231072:65536;gidmapping=0:231072:65536"),
    ("crio", "private:uidmapping=0:200000:20,20:250000:65516;gidmapping=0:1000:1"),
    ("nspawn", "--private-users=231072:65536"),
    ("nspawn", "--private-users=0:4294967295"),
]


@pytest.mark.parametrize(("name", "text"), CANONICAL)
def test_canonical_text_is_a_fixed_point(name: str, text: str) -> None:
    f = get_format(name)
    assert f.format(f.parse(text)) == text


# -- the kernel's acceptance rule, at the boundaries, in every format ------------------------------

TEMPLATES: dict[str, Callable[[int, int, int], str]] = {
    "proc": lambda c, h, s: f"{c} {h} {s}",
    "oci": lambda c, h, s: f'[{{"containerID": {c}, "hostID": {h}, "size": {s}}}]',
    "oci-config": lambda c, h, s: (
        f'{{"linux": {{"uidMappings": [{{"containerID": {c}, "hostID": {h}, "size": {s}}}]}}}}'),
    "podman": lambda c, h, s: f"{c}:{h}:{s}",
    "lxc": lambda c, h, s: f"lxc.idmap = u {c} {h} {s}",
    "incus": lambda c, h, s: f"uid {h}-{h + s - 1} {c}-{c + s - 1}",
    "unshare": lambda c, h, s: f"{c}:{h}:{s}",
    "unshare-legacy": lambda c, h, s: f"{h},{c},{s}",
    "newuidmap": lambda c, h, s: f"newuidmap 1 {c} {h} {s}",
    "kernel": lambda c, h, s: f"u{c}:k{h}:r{s}",
    "xmount": lambda c, h, s: f"u:{c}:{h}:{s}",
    "usernsexec": lambda c, h, s: f"-m u:{c}:{h}:{s}",
    "crio": lambda c, h, s: f"private:uidmapping={c}:{h}:{s}",
}

BIG = 2**32 + 3


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@settings(max_examples=60)
@given(c=st.integers(0, BIG), h=st.integers(0, BIG), s=st.integers(0, BIG))
@example(c=0, h=0, s=1)
@example(c=ID_MAX, h=0, s=1)
@example(c=0, h=ID_MAX, s=1)
@example(c=ID_MAX + 1, h=0, s=1)
@example(c=0, h=ID_MAX + 1, s=1)
@example(c=0, h=0, s=ID_MAX + 1)
@example(c=1, h=0, s=ID_MAX + 1)
@example(c=0, h=1, s=ID_MAX)
@example(c=0, h=0, s=0)
@example(c=0, h=2**32, s=1)
def test_accepts_exactly_what_the_kernel_accepts(name: str, c: int, h: int, s: int) -> None:
    try:
        expected: IDMap | None = validate_map_write(f"{c} {h} {s}")
    except InvalidMapError:
        expected = None
    reader = get_format(name.removesuffix("-legacy"))
    text = TEMPLATES[name](c, h, s)
    if expected is None:
        with pytest.raises(UsernsError):
            reader.parse(text)
    else:
        assert reader.parse(text).uid == expected


@settings(max_examples=100)
@given(h=st.integers(0, BIG), s=st.integers(0, BIG))
@example(h=65535, s=1)
@example(h=65534, s=1)
@example(h=0, s=ID_MAX + 1)
@example(h=1, s=ID_MAX + 1)
@example(h=ID_MAX, s=1)
@example(h=ID_MAX + 1, s=1)
@example(h=0, s=0)
def test_nspawn_accepts_what_the_kernel_and_systemd_accept(h: int, s: int) -> None:
    # nspawn writes "0 BASE RANGE" for both maps; systemd also refuses the base 65535.
    try:
        expected: IDMap | None = validate_map_write(f"0 {h} {s}")
    except InvalidMapError:
        expected = None
    if h == 65535:
        expected = None
    for text in (f"--private-users={h}:{s}", f"PrivateUsers={h}:{s}"):
        if expected is None:
            with pytest.raises(UsernsError):
                parse_nspawn(text)
        else:
            assert parse_nspawn(text) == IDMapPair.both(expected)


# -- fuzzing: only userns errors escape ----------------------------------------------------------

PARSERS: dict[str, Callable[[str], object]] = {
    **{name: f.parse for name, f in FORMATS.items()},
    "podman-mappings": parse_podman_mappings,
    "newuidmap-command": parse_newuidmap_command,
}

ALPHABET = "0123456789 :,-+@\n\t\r{}[]\"ugbkvr=.x/\\#é"
WORDS = ["0", "1", "65536", "4294967294", "4294967295", "4294967296", "010", "0x1", ":", ",",
         "-", " ", "\n", "u", "g", "b", "both", "uid", "gid", "lxc.idmap", "=", "@", "+",
         "u0", "k1", "r1", '{"containerID": 0, "hostID": 1, "size": 1}', "[", "]", "{", "}",
         '"linux"', '"uidMappings"', "null", "newuidmap", "X-mount.idmap=", "\\040", "/",
         "--uidmap", "--gidmap=", "private", "auto", ";", "uidmapping=", "gidmapping=",
         "size=", "io.kubernetes.cri-o.userns-mode", '"', "--private-users=",
         "PrivateUsers=", "identity", "pick", "65535"]


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=60)
@given(text=st.one_of(st.text(max_size=80), st.text(ALPHABET, max_size=60),
                      st.lists(st.sampled_from(WORDS), max_size=25).map("".join)))
def test_fuzz_only_userns_errors(name: str, text: str) -> None:
    try:
        result = PARSERS[name](text)
    except UsernsError as err:
        assert err.reason  # every refusal names its rule
        return
    assert isinstance(result, (IDMap, IDMapPair, NewIDMapCommand, tuple))


@pytest.mark.parametrize("name", sorted(FORMATS))
@settings(max_examples=60)
@given(words=st.lists(st.sampled_from(WORDS), max_size=25))
def test_fuzz_accepted_text_round_trips(name: str, words: list[str]) -> None:
    f = get_format(name)
    try:
        pair = f.parse("".join(words))
    except UsernsError:
        return
    if not f.writes_any:
        # What a restricted format reads, it can write back; one side alone it may refuse.
        assert f.parse(f.format(pair)) == pair
    sides: tuple[Side, Side] = ("uid", "gid")
    for side in sides:
        try:
            text = f.format(pair, side=side)
        except NotExpressibleError:
            assert not f.writes_any
            continue
        kept = f.parse(text, side=side)
        assert getattr(kept, side) == getattr(pair, side)


def json_values() -> st.SearchStrategy[object]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**33), st.floats(),
                        st.text(max_size=8), st.sampled_from(["containerID", "hostID", "size"]))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(["containerID", "hostid", "HostID", "size",
                                             "linux", "uidMappings", "gidMappings", "x"]),
                            inner, max_size=5),
        ),
        max_leaves=12,
    )


@settings(max_examples=100)
@given(value=json_values(), indent=st.sampled_from([None, 1]))
def test_fuzz_oci_structures(value: object, indent: int | None) -> None:
    text = json.dumps(value, indent=indent)
    for parse in (parse_oci_mappings, parse_oci_config):
        try:
            result = parse(text)
        except UsernsError as err:
            assert err.location is not None and err.location.line is not None
            continue
        assert isinstance(result, (IDMap, IDMapPair))


@pytest.mark.parametrize("name", sorted(set(TEMPLATES) - {"proc", "oci", "oci-config"}))
@pytest.mark.parametrize("digits", ["9" * 5000, "0" * 5000 + "7"])
def test_very_long_numbers(name: str, digits: str) -> None:
    # Python's int() refuses digit strings past 4300 digits; the parsers must not.
    reader = get_format(name.removesuffix("-legacy"))
    template = "uid 0 0" if name == "incus" else TEMPLATES[name](0, 0, 1)
    text = template.replace("0", digits, 1)  # the first ID field
    try:
        pair = reader.parse(text)
    except UsernsError as err:
        assert err.reason in ("field-too-large", "ambiguous-number")
        assert digits[0] == "9" or err.reason == "ambiguous-number"
        return
    assert digits[0] == "0"
    (extent,) = pair.uid
    assert 7 in (extent.container, extent.host)  # "000…07" is decimal 7
