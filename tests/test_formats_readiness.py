"""The formats users have for hosts and nodes: kubelet's userns file, Incus's volatile
idmap, crun/Podman's idmap= mount option, CRI-O's userns-mode annotation,
systemd-nspawn's --private-users.

Each: the grammar case by case, whole rendered errors with their caret, round trips
(hypothesis over maps each format can express), and the registry/CLI where registered.
The crun option is also checked against the kernel: the map it names is written to a
real user namespace.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from userns.cli import main
from userns.errors import InvalidMapError, NotExpressibleError, ParseError, UsernsError
from userns.formats.crio import format_crio, parse_crio
from userns.formats.idmap_option import format_idmap_option, parse_idmap_option
from userns.formats.incus_idmap import format_incus_idmap, parse_incus_idmap
from userns.formats.kubelet import (
    format_kubelet_userns,
    parse_kubelet_userns,
    read_kubelet_userns,
)
from userns.formats.nspawn import format_nspawn, parse_nspawn
from userns.formats.registry import convert, detect_format, get_format
from userns.maps import Extent, IDMap, IDMapPair

SEED = IDMap.single(0, 231072, 65536)


def maps() -> st.SearchStrategy[IDMap]:
    """Valid maps of 1 to 4 extents, disjoint on both sides."""
    @st.composite
    def build(draw: st.DrawFn) -> IDMap:
        n = draw(st.integers(1, 4))
        sizes = [draw(st.integers(1, 70000)) for _ in range(n)]
        gaps = [draw(st.integers(0, 1 << 20)) for _ in range(n)]
        hosts = draw(st.permutations(list(range(n))))
        containers, hs, c, h = [], [0] * n, 0, 0
        for i in range(n):
            c += gaps[i]
            containers.append(c)
            c += sizes[i]
        for slot in hosts:
            h += draw(st.integers(0, 1 << 20))
            hs[slot] = h
            h += sizes[slot]
        return IDMap(Extent(containers[i], hs[i], sizes[i]) for i in range(n))
    return build()


pairs = st.one_of(maps().map(IDMapPair.both), st.builds(IDMapPair, maps(), maps()))


def render(fn: object, text: str) -> str:
    with pytest.raises(UsernsError) as info:
        fn(text)  # type: ignore[operator]
    return info.value.render()


# -- kubelet -----------------------------------------------------------------------------


def test_kubelet_file_as_kubelet_writes_it() -> None:
    pair = IDMapPair.both(IDMap.single(0, 131072, 65536))
    text = format_kubelet_userns(pair)
    assert text == ('{"uidMappings":[{"hostId":131072,"containerId":0,"length":65536}],'
                    '"gidMappings":[{"hostId":131072,"containerId":0,"length":65536}]}')
    assert parse_kubelet_userns(text) == pair
    assert detect_format(text) == "kubelet"
    assert convert(text, "kubelet", "proc", side="uid") == "0 131072 65536\n"


def test_kubelet_errors_point_at_the_value() -> None:
    assert render(parse_kubelet_userns, '{"uidMappings":[{"hostId":"1","containerId":0,'
                  '"length":1}]}') == (
        '<input>:1:27: "hostId" (the host ID) must be a uint32, found a string '
        "[not-uint32]\n"
        '    {"uidMappings":[{"hostId":"1","containerId":0,"length":1}]}\n'
        "                              ^~~")
    assert render(parse_kubelet_userns, '{"uidMappings": [') .startswith(
        "<input>:1:18: invalid JSON")
    # Go reads a missing field as 0; the map format refuses, kubelet's reading keeps it.
    text = '{"uidMappings":[{"containerId":0,"length":65536}]}'
    with pytest.raises(ParseError) as info:
        parse_kubelet_userns(text)
    assert info.value.reason == "missing-field"
    assert read_kubelet_userns(text).uid[0].host_id == 0


@settings(max_examples=60)
@given(pair=pairs)
def test_kubelet_round_trip(pair: IDMapPair) -> None:
    text = format_kubelet_userns(pair)
    assert parse_kubelet_userns(text) == pair
    assert format_kubelet_userns(parse_kubelet_userns(text)) == text


# -- Incus volatile idmap ---------------------------------------------------------------


INCUS = ('[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},'
         '{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]')


def test_incus_volatile_idmap_as_incus_stores_it() -> None:
    pair = parse_incus_idmap(INCUS)
    assert pair.uid == pair.gid == IDMap.single(0, 1000000, 1000000000)
    assert detect_format(INCUS) == "incus-idmap"
    # Equal maps are written as entries for both kinds, and read back the same.
    both = format_incus_idmap(pair)
    assert both == '[{"Isuid":true,"Isgid":true,"Hostid":1000000,"Nsid":0,' \
                   '"Maprange":1000000000}]'
    assert parse_incus_idmap(both) == pair
    assert convert(INCUS, "volatile.last_state.idmap", "lxc") == (
        "lxc.idmap = u 0 1000000 1000000000\nlxc.idmap = g 0 1000000 1000000000\n")


@pytest.mark.parametrize(("text", "reason"), [
    ('[{"Isuid":false,"Isgid":false,"Hostid":1,"Nsid":0,"Maprange":1}]', "no-kind"),
    ('[{"Isuid":true,"Hostid":1,"Nsid":0}]', "missing-field"),
    ('[{"Isuid":true,"Hostid":-1,"Nsid":0,"Maprange":1}]', "not-an-id"),
    ('[{"Isuid":"yes","Hostid":1,"Nsid":0,"Maprange":1}]', "not-a-bool"),
    ('[{"Isuid":true,"Hostid":1,"Nsid":0,"Maprange":0}]', "zero-count"),
    ('[{"Isuid":true,"Hostid":1,"Nsid":0,"Maprange":5},'
     '{"Isuid":true,"Hostid":3,"Nsid":10,"Maprange":5}]', "overlap-host"),
    ('{"Isuid":true}', "not-a-list"),
])
def test_incus_refusals(text: str, reason: str) -> None:
    with pytest.raises(UsernsError) as info:
        parse_incus_idmap(text)
    assert info.value.reason == reason
    assert info.value.location is not None and info.value.location.column is not None


def test_incus_overlap_names_both_entries() -> None:
    text = ('[{"Isuid":true,"Hostid":1,"Nsid":0,"Maprange":5},'
            '{"Isuid":true,"Hostid":3,"Nsid":10,"Maprange":5}]')
    assert render(parse_incus_idmap, text).splitlines()[0] == (
        "<input>:1:50: 'Nsid 10, Hostid 3, Maprange 5' overlaps 'Nsid 0, Hostid 1, "
        "Maprange 5' on the host side [overlap-host]")


@settings(max_examples=60)
@given(pair=pairs)
def test_incus_round_trip(pair: IDMapPair) -> None:
    text = format_incus_idmap(pair)
    assert parse_incus_idmap(text) == pair
    assert format_incus_idmap(parse_incus_idmap(text)) == text


# -- crun / Podman idmap= ------------------------------------------------------------------


def test_idmap_option_documented_example() -> None:
    pair = parse_idmap_option("idmap=uids=0-1-10#10-11-10;gids=0-100-10")
    assert pair.uid == IDMap([Extent(0, 1, 10), Extent(10, 11, 10)])
    assert pair.gid == IDMap.single(0, 100, 10)
    assert format_idmap_option(pair) == "idmap=uids=0-1-10#10-11-10;gids=0-100-10"


def test_idmap_option_relative_ranges_go_through_the_container_map() -> None:
    container = IDMapPair(IDMap([Extent(0, 100000, 1000), Extent(1000, 500000, 1000)]),
                          IDMap.single(0, 200000, 65536))
    pair = parse_idmap_option("idmap=uids=@0-1000-10#20-5-5;gids=@0-0-1", parent=container)
    # @0-1000-10: host 1000 is container uid 1000 → host 500000.
    assert pair.uid.to_host(0) == 500000 and pair.uid.to_host(20) == 5
    assert pair.gid == IDMap.single(0, 200000, 1)
    # A kind not named takes the container's own map.
    assert parse_idmap_option("uids=0-1-1", parent=container).gid == container.gid
    assert parse_idmap_option("idmap", parent=container) == container


@pytest.mark.parametrize(("text", "reason", "parent"), [
    ("idmap=uids=0-1", "syntax", False),
    ("idmap=uids=0-1-10x", "syntax", False),
    ("idmap=uids=0-1-0", "zero-count", False),
    ("idmap=uids=+0-1-10", "unknown-flag", False),
    ("idmap=foo=1", "unknown-option", False),
    ("idmap=uids=", "empty", False),
    ("idmap=uids=@0-0-1", "needs-parent", False),
    ("idmap", "needs-parent", False),
    ("idmap=uids=@0-5000-1", "unmapped-parent", True),
    ("idmap=uids=@0-990-20", "relative-overruns", True),
    ("idmap=uids=0-1-10#5-100-10", "overlap-container", False),
])
def test_idmap_option_refusals(text: str, reason: str, parent: bool) -> None:
    container = IDMapPair.both(IDMap([Extent(0, 100000, 1000), Extent(1000, 500000, 1000)]))
    with pytest.raises(UsernsError) as info:
        parse_idmap_option(text, parent=container if parent else None)
    assert info.value.reason == reason


def test_idmap_option_caret_under_the_bad_range() -> None:
    assert render(parse_idmap_option, "idmap=uids=0-1-10#5-x-10") == (
        "<input>:1:21: expected the host ID (a base-10 number), found 'x' [syntax]\n"
        "    idmap=uids=0-1-10#5-x-10\n"
        "                        ^")


@settings(max_examples=60)
@given(pair=pairs)
def test_idmap_option_round_trip(pair: IDMapPair) -> None:
    text = format_idmap_option(pair)
    assert parse_idmap_option(text) == pair
    assert format_idmap_option(parse_idmap_option(text)) == text


@pytest.mark.skipif(os.geteuid() != 0, reason="writing arbitrary maps needs root")
def test_idmap_option_map_is_accepted_by_the_kernel(tmp_path: pathlib.Path) -> None:
    from userns.kernel import run_in_userns

    pair = parse_idmap_option("idmap=uids=0-100000-10#10-200000-10;gids=0-300000-20")
    out = tmp_path / "maps"
    with open(out, "wb") as fh:
        code = run_in_userns(["/bin/cat", "/proc/self/uid_map", "/proc/self/gid_map"], pair,
                             stdout=fh.fileno())
    assert code == 0
    text = out.read_text()
    rows = [tuple(int(x) for x in line.split()) for line in text.splitlines() if line.strip()]
    assert rows == [(0, 100000, 10), (10, 200000, 10), (0, 300000, 20)]


# -- CRI-O userns-mode ------------------------------------------------------------------


def test_crio_private_mappings() -> None:
    pair = parse_crio("private:uidmapping=0:100000:65536,65536:300000:10;"
                      "gidmapping=0:200000:65536")
    assert pair.uid.to_host(65536) == 300000 and pair.gid.to_host(0) == 200000
    assert parse_crio('io.kubernetes.cri-o.userns-mode: "private:uidmapping=0:1:2"') == \
        IDMapPair.both(IDMap.single(0, 1, 2))
    assert parse_crio("userns-mode.crio.io=private:gidmapping=0:7:1").uid == \
        IDMap.single(0, 7, 1)


@pytest.mark.parametrize(("text", "reason", "words"), [
    ("auto", "auto-allocated", "allocates 65536 IDs"),
    ("auto:size=131072;map-to-root=true", "auto-allocated", "allocates 131072 IDs"),
    ("auto:uidmapping=0:1000:1", "auto-allocated", "uidmapping given are added"),
    ("private", "crio-config-mappings", "crio.conf"),
    ("host", "unknown-mode", "invalid userns mode"),
    ("private:uidmapping", "syntax", "invalid argument"),
    ("private:size=1", "unknown-option", "'size'"),
    ("private:uidmapping=0:1", "syntax", "container:host:size"),
])
def test_crio_says_why_no_map(text: str, reason: str, words: str) -> None:
    with pytest.raises(UsernsError) as info:
        parse_crio(text)
    assert info.value.reason == reason
    assert words in info.value.message


@settings(max_examples=60)
@given(pair=pairs)
def test_crio_round_trip(pair: IDMapPair) -> None:
    text = format_crio(pair)
    assert parse_crio(text) == pair
    assert format_crio(parse_crio(text)) == text


def test_crio_one_kind_means_both() -> None:
    # CRI-O copies a lone uidmapping to the gids: a pair with no gid map would read back
    # as both maps equal, so the writer refuses it (the format's limit) rather than
    # write a text CRI-O reads as another pair.
    assert parse_crio("private:uidmapping=0:231072:65536") == IDMapPair.both(SEED)
    for pair in (IDMapPair(SEED, IDMap()), IDMapPair(IDMap(), SEED), IDMapPair(IDMap(), IDMap())):
        with pytest.raises(NotExpressibleError) as info:
            format_crio(pair)
        assert info.value.reason == "not-expressible"


@pytest.mark.parametrize(("text", "pair"), [
    # containers/storage's ParseIDMap: an entry may hold several triples, empty entries are
    # skipped, and an option with no triple at all is as if it were not given.
    ("private:uidmapping=0:1:2:5:10:3", IDMapPair.both(IDMap([Extent(0, 1, 2),
                                                              Extent(5, 10, 3)]))),
    ("private:uidmapping=0:1:2,,;gidmapping=", IDMapPair.both(IDMap.single(0, 1, 2))),
    ("private:uidmapping=;gidmapping=0:7:1", IDMapPair.both(IDMap.single(0, 7, 1))),
])
def test_crio_entries_as_containers_storage_reads_them(text: str, pair: IDMapPair) -> None:
    assert parse_crio(text) == pair


def test_crio_no_triple_at_all_is_crio_conf() -> None:
    with pytest.raises(InvalidMapError) as info:
        parse_crio("private:uidmapping=;gidmapping=,")
    assert info.value.reason == "crio-config-mappings"


# -- systemd-nspawn --private-users -------------------------------------------------------


@pytest.mark.parametrize(("text", "host", "size"), [
    ("--private-users=1879048192:65536", 1879048192, 65536),
    ("1879048192", 1879048192, 65536),
    ("PrivateUsers=524288:1000", 524288, 1000),
    ("identity", 0, 65536),
])
def test_nspawn_values(text: str, host: int, size: int) -> None:
    assert parse_nspawn(text) == IDMapPair.both(IDMap.single(0, host, size))


@pytest.mark.parametrize(("text", "reason"), [
    ("yes", "chosen-at-start"), ("pick", "chosen-at-start"), ("managed", "chosen-at-start"),
    ("no", "no-userns"), ("--private-users=", "empty"), ("1:2:3", "syntax"),
    ("65536:0", "zero-count"), ("4294967290:65536", "wrap"), ("0x10000", "syntax"),
    ("65535:1000", "invalid-id"),
])
def test_nspawn_refusals(text: str, reason: str) -> None:
    with pytest.raises(UsernsError) as info:
        parse_nspawn(text)
    assert info.value.reason == reason


def test_nspawn_writes_only_what_it_can_express() -> None:
    assert format_nspawn(IDMapPair.both(IDMap.single(0, 65536, 65536))) == \
        "--private-users=65536:65536"
    for pair in (IDMapPair(SEED, IDMap.single(0, 1, 1)),
                 IDMapPair.both(IDMap([Extent(0, 1, 1), Extent(1, 5, 1)])),
                 IDMapPair.both(IDMap.single(1, 65536, 10)),
                 IDMapPair.both(IDMap.single(0, 65535, 10)),
                 IDMapPair(SEED, IDMap())):
        with pytest.raises(NotExpressibleError) as info:
            format_nspawn(pair)
        assert info.value.reason == "not-expressible"


@settings(max_examples=60)
@given(base=st.integers(0, 4294967294 - 1), size=st.integers(1, 1 << 24))
def test_nspawn_round_trip(base: int, size: int) -> None:
    if base + size > 4294967294:
        return
    pair = IDMapPair.both(IDMap.single(0, base, size))
    text = format_nspawn(pair)
    assert parse_nspawn(text) == pair
    assert format_nspawn(parse_nspawn(text)) == text


# -- the registry and the CLI -------------------------------------------------------------


@pytest.mark.parametrize("name", ["kubelet", "incus-idmap", "idmap-option", "crio", "nspawn"])
def test_registered_and_converted_by_the_cli(name: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert get_format(name).name == name
    assert main(["convert", "--from", "proc", "--to", name, "0 231072 65536\n"]) == 0
    text = capsys.readouterr().out
    # "--" ends the options: nspawn's text itself starts with "--private-users=".
    assert main(["convert", "--from", name, "--to", "proc", "--", text]) == 0
    assert capsys.readouterr().out == "0 231072 65536\n"


def test_pod_file_from_a_kubelet_dir_converts() -> None:
    text = json.dumps({"uidMappings": [{"hostId": 65536, "containerId": 0, "length": 65536}],
                       "gidMappings": [{"hostId": 65536, "containerId": 0, "length": 65536}]})
    assert convert(text, "kubelet", "kernel", side="uid") == \
        "u0:k65536:r65536"
