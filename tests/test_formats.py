"""The documented examples of every format other than /proc, and pinned error messages."""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import pytest

from userns import Extent, IDMap, IDMapPair, InvalidMapError, ParseError, UsernsError
from userns.formats import (
    FORMATS,
    FormatSideError,
    NotExpressibleError,
    PodmanMapping,
    UnknownFormatError,
    apply_raw_idmap,
    convert,
    detect_format,
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
    parse_lxc,
    parse_newuidmap,
    parse_newuidmap_command,
    parse_notation,
    parse_oci_config,
    parse_oci_mappings,
    parse_podman,
    parse_podman_mappings,
    parse_podman_pair,
    parse_raw_idmap,
    parse_unshare,
    parse_usernsexec,
    parse_xmount,
    podman_idmap,
)

SEED = IDMap.single(0, 231072, 65536)  # /etc/subuid: dockremap:231072:65536
MULTI = IDMap([Extent(0, 200000, 20), Extent(20, 250000, 65516)])


def reason_of(call: object, *args: object, **kw: object) -> str:
    with pytest.raises(UsernsError) as info:
        call(*args, **kw)  # type: ignore[operator]
    return info.value.reason


def seed_checks(m: IDMap) -> None:
    assert m.to_host(0) == 231072
    assert m.to_host(33) == 231105
    assert m.container_view(0) == 65534


# -- OCI --------------------------------------------------------------------------------

CONFIG = """{
  "ociVersion": "1.0.2",
  "linux": {
    "namespaces": [{"type": "user"}],
    "uidMappings": [
      {"containerID": 0, "hostID": 200000, "size": 20},
      {"containerID": 20, "hostID": 250000, "size": 65516}
    ],
    "gidMappings": [{"containerID": 0, "hostID": 231072, "size": 65536}]
  }
}"""


def test_oci_config_example() -> None:
    pair = parse_oci_config(CONFIG, path="config.json")
    assert pair.uid == MULTI
    assert [pair.uid.to_host(i) for i in (0, 19, 20)] == [200000, 200019, 250000]
    seed_checks(pair.gid)
    assert pair.root == (200000, 231072)


def test_oci_mappings_seed() -> None:
    text = '[{"containerID": 0, "hostID": 231072, "size": 65536}]'
    seed_checks(parse_oci_mappings(text))
    assert format_oci_mappings(SEED) == text
    assert json.loads(format_oci_mappings(MULTI, indent=2)) == idmap_to_oci(MULTI)
    assert idmap_from_oci(idmap_to_oci(MULTI)) == MULTI


def test_oci_go_leniencies() -> None:
    # Go's encoding/json: keys match case-insensitively, the last duplicate wins,
    # unknown keys are ignored, null is an empty list.
    text = '[{"containerid": 0, "HOSTID": 5, "hostID": 1000, "size": 1, "extra": true}]'
    assert parse_oci_mappings(text) == IDMap.single(0, 1000, 1)
    assert parse_oci_mappings("null") == IDMap()
    assert parse_oci_config('{"linux": {"uidMappings": null}}') == IDMapPair(IDMap(), IDMap())
    assert parse_oci_config("{}") == IDMapPair(IDMap(), IDMap())


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('[{"hostID": 1000, "size": 1}]', "missing-field"),
        ('[{"containerID": null, "hostID": 1000, "size": 1}]', "missing-field"),
        ('[{"containerID": -1, "hostID": 1000, "size": 1}]', "not-uint32"),
        ('[{"containerID": 0, "hostID": 1000, "size": 1.0}]', "not-uint32"),
        ('[{"containerID": 0, "hostID": 1e3, "size": 1}]', "not-uint32"),
        ('[{"containerID": 0, "hostID": "1000", "size": 1}]', "not-uint32"),
        ('[{"containerID": 0, "hostID": true, "size": 1}]', "not-uint32"),
        ('[{"containerID": 0, "hostID": 4294967296, "size": 1}]', "not-uint32"),
        ('[{"containerID": 0, "hostID": 4294967295, "size": 1}]', "invalid-id"),
        ('[{"containerID": 0, "hostID": 1, "size": 0}]', "zero-count"),
        ('[{"containerID": 1, "hostID": 0, "size": 4294967295}]', "wrap"),
        ('[{"containerID": 0, "hostID": 0, "size": 9}, {"containerID": 5, "hostID": 99, '
         '"size": 1}]', "overlap-container"),
        ("[1]", "not-an-object"),
        ("{}", "not-a-list"),
        ("[", "json"),
        ("[NaN]", "json"),
        ("[] []", "json"),
        ("[" * 5000, "json"),
        ('[{"containerID": 0, "hostID": 1, "size": ' + "9" * 5000 + "}]", "not-uint32"),
    ],
)
def test_oci_refuses(text: str, code: str) -> None:
    assert reason_of(parse_oci_mappings, text) == code


def test_oci_error_points_at_the_value() -> None:
    text = '[\n  {"containerID": 0,\n   "hostID": -5, "size": 1}\n]'
    with pytest.raises(ParseError) as info:
        parse_oci_mappings(text, path="config.json")
    assert info.value.render() == (
        'config.json:3:14: "hostID" (the host ID) must be a uint32 (0…4294967295): -5 '
        "[not-uint32]\n"
        '       "hostID": -5, "size": 1}\n'
        "                 ^~"
    )


def test_oci_json_error_has_line_and_column() -> None:
    with pytest.raises(ParseError) as info:
        parse_oci_config('{\n  "linux": {,}\n}', path="config.json")
    loc = info.value.location
    assert loc is not None
    assert (loc.line, loc.column) == (2, 13)
    assert info.value.reason == "json"


def test_oci_config_format() -> None:
    pair = IDMapPair(MULTI, SEED)
    assert parse_oci_config(format_oci_config(pair)) == pair
    doc = json.loads(format_oci_config(pair))
    assert doc["linux"]["gidMappings"] == idmap_to_oci(SEED)


# -- Podman -------------------------------------------------------------------------------


def test_podman_examples() -> None:
    seed_checks(parse_podman("0:231072:65536"))
    assert parse_podman("0:200000:20 20:250000:65516") == MULTI
    # Several triples in one value, and the two-field form (size 1).
    assert parse_podman("0:1:1000:1000:0:1") == IDMap([Extent(0, 1, 1000), Extent(1000, 0, 1)])
    assert parse_podman("1000:0") == IDMap.single(1000, 0, 1)
    assert parse_podman("") == IDMap()
    assert format_podman(MULTI) == "0:200000:20 20:250000:65516"


def test_podman_flags() -> None:
    ms = parse_podman_mappings("0:100000:65536 u1000:@1000:1 +g5:50:1")
    assert ms[1] == PodmanMapping(1000, 1000, 1, only="uid", host_in_parent=True)
    assert [str(m) for m in ms] == ["0:100000:65536", "u1000:@1000:1", "+g5:50:1"]
    pair = parse_podman_pair("u0:1000:1 g0:2000:1 ug1:100000:10")
    assert pair.root == (1000, 2000)
    assert pair.uid.to_host(5) == pair.gid.to_host(5) == 100004


def test_podman_at_and_plus_against_a_rootless_parent() -> None:
    # The rootless namespace Podman runs in: user 1000 is 0, subuids 100000+ are 1+.
    parent = IDMap([Extent(0, 1000, 1), Extent(1, 100000, 65536)])
    # keep-id by hand: container 1000 is host 1000 (parent ID 0), the rest around it.
    m = parse_podman("0:1:65536 +1000:@1000:1", parent=parent)
    assert m.to_host(1000) == 0
    assert m.then(parent).to_host(1000) == 1000
    assert m.then(parent).to_host(0) == 100000
    assert m.then(parent).to_host(1001) == 101001
    # Podman sorts and merges before handing the map over: normalized() is that map.
    assert m.normalized() == m
    # An @ range that crosses two parent extents is cut where they are.
    split = parse_podman("0:@1000:2", parent=IDMap([Extent(0, 1000, 1), Extent(7, 1001, 1)]))
    assert split == IDMap([Extent(0, 0, 1), Extent(1, 7, 1)])


def test_podman_options() -> None:
    pair = parse_podman_pair("--uidmap=0:100000:65536 --gidmap 0:200000:65536")
    assert pair.root == (100000, 200000)
    # A kind with no option of its own takes the other kind's values, as in Podman.
    assert parse_podman_pair("--gidmap=0:200000:65536").root == (200000, 200000)
    assert parse_podman_pair("--uidmap 0:1:1 --uidmap=u1:2:1 --uidmap g1:3:1") == IDMapPair(
        IDMap([Extent(0, 1, 1), Extent(1, 2, 1)]), IDMap([Extent(0, 1, 1), Extent(1, 3, 1)]))
    assert reason_of(parse_podman_pair, "--uidmap=0:1:1 --userns=auto") == "unknown-option"
    assert reason_of(parse_podman_pair, "--uidmap") == "syntax"
    with pytest.raises(ParseError) as info:
        parse_podman_pair("--uidmap=0:1:1 --gidmap=0:x:1", path="argv")
    assert info.value.render() == (
        "argv:1:27: expected the host ID (a base-10 number), found 'x' [syntax]\n"
        "    --uidmap=0:1:1 --gidmap=0:x:1\n"
        "                              ^"
    )


def test_podman_flag_filtering() -> None:
    ms = parse_podman_mappings("u0:1:1 g0:2:1")
    assert podman_idmap(ms, "uid") == IDMap.single(0, 1, 1)
    assert podman_idmap(ms, "gid") == IDMap.single(0, 2, 1)
    assert format_podman_pair(IDMapPair(IDMap.single(0, 1, 1), IDMap.single(0, 2, 1))) == (
        "u0:1:1 g0:2:1")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("0:1:2:3", "syntax"),
        ("x0:1:1", "unknown-flag"),
        ("0:@5:2", "needs-parent"),
        ("0:1:0", "zero-count"),
        ("0:-1:1", "syntax"),
        (":1:1", "syntax"),
        ("0:4294967295:1", "invalid-id"),
        ("0:4294967296:1", "field-too-large"),
        ("0:1:10 5:100:1", "overlap-container"),
        ("0:1:10 20:5:1", "overlap-host"),
    ],
)
def test_podman_refuses(text: str, code: str) -> None:
    assert reason_of(parse_podman, text) == code


def test_podman_at_outside_the_parent() -> None:
    parent = IDMap([Extent(0, 1000, 1)])
    assert reason_of(parse_podman, "0:@1000:2", parent=parent) == "unmapped-parent"


def test_podman_error_rendered() -> None:
    with pytest.raises(InvalidMapError) as info:
        parse_podman("0:100000:65536 100:100000:1", path="--uidmap")
    assert info.value.render() == (
        "--uidmap:1:16: '100:100000:1' overlaps '0:100000:65536' on the container side "
        "[overlap-container]\n"
        "    0:100000:65536 100:100000:1\n"
        "                   ^~~~~~~~~~~~"
    )


# -- LXC and Incus ------------------------------------------------------------------------

LXC_CONF = """\
# Distribution configuration
lxc.include = /usr/share/lxc/config/common.conf
lxc.idmap = u 0 200000 20
lxc.idmap = u 20 250000 65516
lxc.idmap = g 0 231072 65536
lxc.rootfs.path = dir:/var/lib/lxc/c1/rootfs
"""


def test_lxc_example() -> None:
    pair = parse_lxc(LXC_CONF, path="config")
    assert pair.uid == MULTI
    seed_checks(pair.gid)
    assert parse_lxc(format_lxc(pair)) == pair
    assert format_lxc(IDMapPair.both(SEED)) == (
        "lxc.idmap = u 0 231072 65536\nlxc.idmap = g 0 231072 65536\n")


def test_lxc_whitespace_and_clearing() -> None:
    assert parse_lxc("lxc.idmap=u\t0\t1\t2\r\n").uid == IDMap.single(0, 1, 2)
    text = "lxc.idmap = u 0 1 2\nlxc.idmap =\nlxc.idmap = g 5 6 7\n"
    assert parse_lxc(text) == IDMapPair(IDMap(), IDMap.single(5, 6, 7))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("lxc.idmap = b 0 1 2", "unknown-type"),
        ("lxc.idmap = u 0 0100000 65536", "ambiguous-number"),
        ("lxc.idmap = u 0 0x186a0 65536", "ambiguous-number"),
        ("lxc.idmap = u 0 1", "syntax"),
        ("lxc.idmap = u 0 1 2 3", "syntax"),
        ("lxc.idmap = u0 1 2", "unknown-type"),
        ("lxc.id_map = u 0 1 2", "legacy-key"),
        ("not a config line", "syntax"),
        ("lxc.idmap = u 0 0 0", "zero-count"),
        ("lxc.idmap = u 0 1 10\nlxc.idmap = u 5 100 1", "overlap-container"),
    ],
)
def test_lxc_refuses(text: str, code: str) -> None:
    assert reason_of(parse_lxc, text) == code


def test_lxc_octal_error_rendered() -> None:
    with pytest.raises(ParseError) as info:
        parse_lxc("lxc.idmap = u 0 0100000 65536\n", path="config")
    assert info.value.render() == (
        "config:1:17: the host ID '0100000' is ambiguous: LXC reads it as octal, 32768; "
        "write the number in decimal without a leading 0 [ambiguous-number]\n"
        "    lxc.idmap = u 0 0100000 65536\n"
        "                    ^~~~~~~"
    )


def test_usernsexec_examples() -> None:
    pair = parse_usernsexec("-m b:0:200000:20 -m b:20:250000:65516")
    assert pair == IDMapPair.both(MULTI)
    assert parse_usernsexec("-mu:0:231072:65536 g:0:231072:65536") == IDMapPair.both(SEED)
    assert format_usernsexec(IDMapPair.both(SEED)) == "b:0:231072:65536"
    assert format_usernsexec(IDMapPair(SEED, IDMap())) == "u:0:231072:65536"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("0:1:2", "missing-type"),
        ("x:0:1:2", "unknown-type"),
        ("b:0:1", "syntax"),
        ("b:0:-1:1", "syntax"),
        ("b:0:1:2junk", "syntax"),
        ("u:0:1:10 b:5:100:1", "overlap-container"),
    ],
)
def test_usernsexec_refuses(text: str, code: str) -> None:
    assert reason_of(parse_usernsexec, text) == code


def test_raw_idmap_examples() -> None:
    pair = parse_raw_idmap("both 1000 1000")
    assert pair == IDMapPair.both(IDMap.single(1000, 1000, 1))
    pair = parse_raw_idmap("uid 1000-1002 0-2\ngid 50 50")
    assert pair.uid == IDMap.single(0, 1000, 3)  # the HOST range comes first
    assert pair.gid == IDMap.single(50, 50, 1)
    assert parse_raw_idmap("") == IDMapPair(IDMap(), IDMap())
    assert format_raw_idmap(pair) == "uid 1000-1002 0-2\ngid 50 50"


def test_raw_idmap_later_line_takes_container_ids() -> None:
    pair = parse_raw_idmap("uid 0-9 0-9\nuid 100 5")
    assert pair.uid == IDMap([Extent(0, 0, 5), Extent(5, 100, 1), Extent(6, 6, 4)])


def test_apply_raw_idmap_matches_override() -> None:
    base = IDMapPair.both(IDMap.single(0, 1000000, 65536))
    raw = parse_raw_idmap("both 1000 1000\ngid 50 50")
    out = apply_raw_idmap(base, raw)
    assert out.uid == base.uid.passthrough(1000)
    assert out.gid == base.gid.passthrough(1000, 50)
    assert out.uid.to_host(999) == 1000999
    assert out.uid.to_host(1001) == 1001001
    assert out.uid.size == 65536
    with pytest.raises(InvalidMapError) as info:
        apply_raw_idmap(base, parse_raw_idmap("uid 1000005 0"))
    assert info.value.reason == "host-in-base"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("both  1 2", "syntax"),
        ("both 1 2 ", "syntax"),
        ("both\t1\t2", "syntax"),
        ("bot 1 1", "unknown-type"),
        ("uid 5-3 0-2", "reversed-range"),
        ("uid 1-3 0-1", "size-mismatch"),
        ("uid 1-2-3 0-1", "syntax"),
        ("uid +1 1", "syntax"),
        ("uid 1 2\nuid 1 3", "overlap-host"),
        ("uid 4294967295 0", "invalid-id"),
    ],
)
def test_raw_idmap_refuses(text: str, code: str) -> None:
    assert reason_of(parse_raw_idmap, text) == code


def test_raw_idmap_error_rendered() -> None:
    with pytest.raises(InvalidMapError) as info:
        parse_raw_idmap("both 1000 1000\nuid 1000 5", path="raw.idmap")
    assert info.value.render() == (
        "raw.idmap:2:1: 'uid 1000 5' maps host IDs that 'both 1000 1000' already maps "
        "[overlap-host]\n"
        "    uid 1000 5\n"
        "    ^~~~~~~~~~"
    )


# -- unshare ------------------------------------------------------------------------------


def test_unshare_examples() -> None:
    seed_checks(parse_unshare("0:231072:65536"))
    seed_checks(parse_unshare("231072,0,65536"))  # deprecated: outer,inner,count
    assert parse_unshare("0:200000:20 250000,20,65516") == MULTI
    assert parse_unshare("010:0:1") == IDMap.single(10, 0, 1)  # sscanf("%u"): decimal
    assert format_unshare(MULTI) == "0:200000:20 20:250000:65516"
    assert format_unshare(MULTI, legacy=True) == "200000,0,20 250000,20,65516"
    assert parse_unshare(format_unshare(MULTI, legacy=True)) == MULTI


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("auto", "needs-system"),
        ("subids", "needs-system"),
        ("all", "needs-system"),
        ("0:1", "syntax"),
        ("0,1:2", "syntax"),
        ("0:-1:1", "syntax"),
        ("0:1:0", "zero-count"),
    ],
)
def test_unshare_refuses(text: str, code: str) -> None:
    assert reason_of(parse_unshare, text) == code


# -- newuidmap ------------------------------------------------------------------------------


def test_newuidmap_examples() -> None:
    cmd = parse_newuidmap_command("newuidmap 4242 0 200000 20 20 250000 65516")
    assert (cmd.program, cmd.target, cmd.idmap, cmd.kind) == ("newuidmap", "4242", MULTI, "uid")
    assert parse_newuidmap_command("/usr/bin/newgidmap fd:3 0 1 1").kind == "gid"
    seed_checks(parse_newuidmap(["newuidmap", "1", "0", "231072", "65536"]))
    assert parse_newuidmap("0 231072 65536") == SEED
    assert format_newuidmap(SEED, target=4242) == "newuidmap 4242 0 231072 65536"
    assert format_newuidmap(SEED, target=7, program="newgidmap") == "newgidmap 7 0 231072 65536"
    assert parse_newuidmap_command(format_newuidmap(MULTI, target=1)).idmap == MULTI


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("newuidmap 42 0 010 1", "ambiguous-number"),
        ("0 0x10 1", "ambiguous-number"),
        ("newuidmap x 0 1 1", "bad-target"),
        ("newuidmap", "syntax"),
        ("newuidmap 42 0 1", "incomplete-triple"),
        ("0 1 1 2", "incomplete-triple"),
        ("0 1 0", "zero-count"),
    ],
)
def test_newuidmap_refuses(text: str, code: str) -> None:
    assert reason_of(parse_newuidmap, text) == code


def test_newuidmap_hex_error_rendered() -> None:
    with pytest.raises(ParseError) as info:
        parse_newuidmap("newuidmap 4242 0 0x186a0 65536", path="argv")
    assert info.value.render() == (
        "argv:1:18: the host ID '0x186a0' is ambiguous: newuidmap reads it as hexadecimal, "
        "100000; write the number in decimal without a leading 0 [ambiguous-number]\n"
        "    newuidmap 4242 0 0x186a0 65536\n"
        "                     ^~~~~~~"
    )


# -- kernel notation ---------------------------------------------------------------------------


def test_notation_examples() -> None:
    seed_checks(parse_notation("u0:k231072:r65536"))
    m = parse_notation("u22:k10000:r3")
    assert [m.to_host(i) for i in (22, 23, 24)] == [10000, 10001, 10002]
    assert parse_notation("u0:v10000:r10000") == IDMap.single(0, 10000, 10000)
    assert parse_notation("u0:k0:r4294967295").is_identity()
    assert format_notation(MULTI) == "u0:k200000:r20 u20:k250000:r65516"
    assert format_notation(MULTI, sep="\n", lower="v") == "u0:v200000:r20\nu20:v250000:r65516"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1. u0:k1:r1", "syntax"),
        ("u0:x1:r1", "syntax"),
        ("0:1:1", "syntax"),
        ("u1:k0:r4294967295", "wrap"),
        ("u0:k1:r0", "zero-count"),
    ],
)
def test_notation_refuses(text: str, code: str) -> None:
    assert reason_of(parse_notation, text) == code


# -- X-mount.idmap -------------------------------------------------------------------------------


def test_xmount_man_page_example() -> None:
    # mount(8): UID 0 is mapped to UID 1000, GID 1 to 1001, GID 2 to 1002, UID and GID
    # 1000 to 5000 and 1001 to 5001 in the mount.
    pair = parse_xmount("u:1000:0:1 g:1001:1:2 5000:1000:2")
    assert pair.uid.to_container(0) == 1000
    assert (pair.gid.to_container(1), pair.gid.to_container(2)) == (1001, 1002)
    assert pair.uid.to_container(1001) == pair.gid.to_container(1001) == 5001
    assert pair.uid.to_container(1, default=None) is None


def test_xmount_forms() -> None:
    assert parse_xmount("X-mount.idmap=0:0:1\\040500:1000:1") == parse_xmount("0:0:1 500:1000:1")
    assert parse_xmount("b:0:231072:65536") == IDMapPair.both(SEED)
    only_users = parse_xmount("u:0:231072:65536")
    assert only_users.gid == IDMap()  # libmount writes no gid_map at all
    assert format_xmount(IDMapPair.both(SEED)) == "b:0:231072:65536"
    assert format_xmount(only_users) == "u:0:231072:65536"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("/proc/1/ns/user", "userns-path"),
        ("", "empty"),
        ("0:0:1junk", "syntax"),
        ("x:0:1:2", "unknown-type"),
        ("u:0:1", "syntax"),
        ("u:0:0:1 u:0:5:1", "overlap-container"),
        ("0:0:1\n1:1:1", "syntax"),
    ],
)
def test_xmount_refuses(text: str, code: str) -> None:
    assert reason_of(parse_xmount, text) == code


def test_xmount_error_rendered() -> None:
    with pytest.raises(ParseError) as info:
        parse_xmount("u:0:231072:65536 g:0:-1:1", path="fstab")
    assert info.value.render() == (
        "fstab:1:22: the host ID must be a base-10 number without a sign, found '-1' [syntax]\n"
        "    u:0:231072:65536 g:0:-1:1\n"
        "                         ^~"
    )


# -- registry ----------------------------------------------------------------------------------


def test_registry_names_and_aliases() -> None:
    assert set(FORMATS) == {"proc", "oci", "oci-config", "podman", "lxc", "usernsexec",
                            "incus", "unshare", "newuidmap", "kernel", "xmount", "kubelet",
                            "incus-idmap", "idmap-option", "crio", "nspawn"}
    assert {n for n, f in FORMATS.items() if not f.writes_any} == {"crio", "nspawn"}
    for name, f in FORMATS.items():
        assert get_format(name) is f
        assert get_format(name.upper()) is f
        for alias in f.aliases:
            assert get_format(alias) is f
    with pytest.raises(UnknownFormatError) as info:
        get_format("docker")
    assert isinstance(info.value, LookupError)
    assert "known: crio, idmap-option, incus, incus-idmap, kernel" in str(info.value)


def test_registry_sides() -> None:
    pair = IDMapPair(MULTI, SEED)
    with pytest.raises(FormatSideError):
        get_format("proc").format(pair)
    assert get_format("proc").format(pair, side="gid") == "0 231072 65536\n"
    assert get_format("kernel").parse("u0:k1:r1", side="gid") == IDMapPair(
        IDMap(), IDMap.single(0, 1, 1))
    assert get_format("lxc").format(pair, side="uid") == format_lxc(IDMapPair(MULTI, IDMap()))
    assert get_format("lxc").parse(format_lxc(pair), side="gid") == IDMapPair(IDMap(), SEED)
    with pytest.raises(ValueError):
        get_format("lxc").parse("", side="users")  # type: ignore[arg-type]


def test_convert_examples() -> None:
    assert convert("0:231072:65536", "podman", "oci") == (
        '[{"containerID": 0, "hostID": 231072, "size": 65536}]')
    assert convert("lxc.idmap = u 0 231072 65536\nlxc.idmap = g 0 231072 65536",
                   "lxc", "xmount") == "b:0:231072:65536"
    assert convert("u0:k231072:r65536", "kernel", "incus") == "both 231072-296607 0-65535"
    assert convert("231072,0,65536", "unshare", "newuidmap") == "0 231072 65536"
    assert convert(LXC_CONF, "lxc", "proc", side="uid") == "0 200000 20\n20 250000 65516\n"
    with pytest.raises(FormatSideError):
        convert(LXC_CONF, "lxc", "proc")


def test_restricted_formats_refuse_what_they_cannot_express() -> None:
    # Each refusal names the format, what it can express and what this pair lacks.
    cases = [
        ("nspawn", IDMapPair(SEED, MULTI), "the uid and gid maps differ"),
        ("nspawn", IDMapPair.both(MULTI), "this map has 2 extents"),
        ("nspawn", IDMapPair.both(IDMap()), "this map has 0 extents"),
        ("nspawn", IDMapPair.both(IDMap.single(1, 231072, 10)),
         "this map starts at container ID 1"),
        ("nspawn", IDMapPair.both(IDMap.single(0, 65535, 10)),
         "systemd refuses the base 65535"),
        ("crio", IDMapPair(SEED, IDMap()),
         "this pair maps no group: CRI-O would map the groups as the users"),
        ("crio", IDMapPair(IDMap(), SEED),
         "this pair maps no user: CRI-O would map the users as the groups"),
        ("crio", IDMapPair(IDMap(), IDMap()),
         "both maps are empty: 'private' alone means crio.conf's maps"),
    ]
    lead = {
        "nspawn": "nspawn's --private-users= expresses one range from container ID 0, the "
                  "same for users and groups, at a host base other than 65535",
        "crio": "CRI-O's userns-mode expresses a uid map and a gid map, neither empty",
    }
    for name, pair, why in cases:
        with pytest.raises(NotExpressibleError) as info:
            get_format(name).format(pair)
        assert str(info.value) == f"{lead[name]}; {why} [not-expressible]"
        assert info.value.format_name == name
        assert isinstance(info.value, ValueError)
        assert not isinstance(info.value, InvalidMapError)  # the map itself is fine
    # side="uid" leaves the gid map empty: neither can write that.
    for name in ("nspawn", "crio"):
        with pytest.raises(NotExpressibleError):
            get_format(name).format(IDMapPair.both(SEED), side="uid")
    assert format_nspawn(IDMapPair.both(SEED)) == "--private-users=231072:65536"
    assert format_crio(IDMapPair(SEED, MULTI)) == (
        "private:uidmapping=0:231072:65536;gidmapping=0:200000:20,20:250000:65516")


def test_restricted_formats_convert_and_are_detected() -> None:
    assert convert("0 231072 65536", "proc", "nspawn") == "--private-users=231072:65536"
    assert convert("PrivateUsers=231072", "nspawn", "lxc") == (
        "lxc.idmap = u 0 231072 65536\nlxc.idmap = g 0 231072 65536\n")
    assert convert("userns-mode.crio.io: private:gidmapping=0:1000:1", "cri-o", "kernel",
                   side="gid") == "u0:k1000:r1"
    assert convert("b:0:231072:65536", "xmount", "userns-mode") == (
        "private:uidmapping=0:231072:65536;gidmapping=0:231072:65536")
    with pytest.raises(NotExpressibleError):
        convert("0 200000 20\n20 250000 65516", "proc", "nspawn")
    for text, name in [
        ("--private-users=1879048192:65536", "nspawn"),
        ("PrivateUsers=identity", "nspawn"),
        ("private:uidmapping=0:1:2", "crio"),
        ("auto:size=65536", "crio"),
        ("auto", "crio"),
        ("private", "crio"),
        ('io.kubernetes.cri-o.userns-mode: "private:uidmapping=0:1:2"', "crio"),
        ("userns-mode.crio.io=private:gidmapping=0:7:1", "crio"),
    ]:
        assert detect_format(text) == name, text
    # Bare nspawn values ("identity", "65536:1000") say nothing of their tool: not guessed.
    for text in ("identity", "65536:1000"):
        with pytest.raises(UnknownFormatError):
            detect_format(text)


# -- the reference page ---------------------------------------------------------------------------


def test_reference_page_examples_run() -> None:
    page = Path(__file__).resolve().parent.parent / "docs" / "reference" / "formats.md"
    blocks = re.findall(r"^```pycon\n(.*?)^```$", page.read_text(encoding="utf-8"),
                        re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 10
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner()
    globs: dict[str, object] = {}
    for i, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, globs, f"formats.md[{i}]", str(page), 0)
        report: list[str] = []
        result = runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs
        assert result.attempted > 0
        assert result.failed == 0, f"example block {i} failed\n" + "".join(report)
