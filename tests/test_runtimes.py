"""userns.runtimes: what Docker, Podman, unshare and Incus build from subuid/subgid files.

The expected maps below are worked out by hand from the runtimes' sources (cited in
docs/differences.md); the unshare model is also checked against the real util-linux
``unshare`` run as an unprivileged user (see tests/test_newuidmap.py for the set-up).
"""

from __future__ import annotations

import doctest
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from userns import Extent, IDMap, IDRange, IDSet, parse_proc
from userns.runtimes import (
    AUTO_USERNS_MAX_SIZE,
    AUTO_USERNS_MIN_SIZE,
    RuntimeConfigError,
    compare_runtimes,
    docker_remap,
    docker_remapped_root,
    incus_maps,
    podman_auto,
    podman_auto_available,
    podman_auto_size,
    podman_maps,
    podman_rootless_map,
    unshare_maps,
)
from userns.severity import Severity
from userns.subid import Accounts, SubidFile

from .test_newuidmap import GID, UID, USER, run_as_user, tools_available

ACC = Accounts.parse(
    "root:x:0:0::/root:/bin/sh\nseb:x:1000:1000::/:/bin/sh\njonas:x:1001:1001::/:/bin/sh\n"
    "dockremap:x:999:999::/:/bin/false\nalice:x:1002:1002::/:/bin/sh\n"
    "containers:x:998:998::/:/bin/false\n",
    "root:x:0:\nseb:x:1000:\njonas:x:1001:\ndockremap:x:999:\nalice:x:1002:\nstaff:x:50:\n"
    "containers:x:998:\n",
)


def t(m: IDMap | None) -> list[tuple[int, int, int]]:
    assert m is not None
    return [(e.container, e.host, e.size) for e in m]


# -- Docker -----------------------------------------------------------------------------


def test_docker_seed_seb() -> None:
    r = docker_remap("seb:1000:1\nseb:100000:65536\n", "seb:982:1\nseb:100000:65536\n", "seb",
                     accounts=ACC)
    assert r.ok and r.error is None
    assert r.uid is not None and r.gid is not None and r.pair is not None
    assert (r.uid.to_host(0), r.uid.to_host(33), r.gid.to_host(0)) == (1000, 100032, 982)
    assert r.pair.container_view(1000, 1000) == (0, 65534)
    assert r.data_root == "1000.982"
    assert (r.uid_lines, r.gid_lines) == ((1, 2), (1, 2))


def test_docker_seed_dockremap_default() -> None:
    r = docker_remap("dockremap:231072:65536\n", "dockremap:231072:65536\n", accounts=ACC)
    assert t(r.uid) == t(r.gid) == [(0, 231072, 65536)]
    assert r.uid is not None and r.uid.to_host(33) == 231105
    assert r.data_root == "231072.231072"


def test_docker_file_order_not_sorted() -> None:
    text = "jonas:100000:1000\njonas:1000:1\n"
    r = docker_remap(text, text, "jonas", accounts=ACC)
    assert t(r.uid) == [(0, 100000, 1000), (1000, 1000, 1)]


def test_docker_matches_name_or_decimal_uid_only() -> None:
    text = "1001:300000:10\njonas:100000:10\n01001:500000:10\nJONAS:600000:10\n"
    r = docker_remap(text, text, "jonas", accounts=ACC)
    assert t(r.uid) == [(0, 300000, 10), (10, 100000, 10)]
    assert r.uid_lines == (1, 2)


def test_docker_value_forms() -> None:
    assert docker_remapped_root("default", ACC) == ("dockremap", "dockremap")
    assert docker_remapped_root("seb", ACC) == ("seb", "seb")
    assert docker_remapped_root("seb:staff", ACC) == ("seb", "staff")
    assert docker_remapped_root("1000", ACC) == ("seb", "seb")
    assert docker_remapped_root("1000:50", ACC) == ("seb", "staff")
    assert docker_remapped_root("seb:50", ACC) == ("seb", "staff")
    # Not a signed 32-bit number: looked up as a name.
    with pytest.raises(RuntimeConfigError, match='uid lookup for "4294967296"'):
        docker_remapped_root("4294967296", ACC)


@pytest.mark.parametrize(("value", "message"), [
    ("a:b:c", 'Invalid user/group specification in --userns-remap: "a:b:c"'),
    ("nobody", 'Error during uid lookup for "nobody": getent unable to find entry "nobody" '
               "in passwd database"),
    ("4000", 'Uid 4000 has no entry in /etc/passwd: getent unable to find entry "4000" in '
             "passwd database"),
    ("999:4000", 'Gid 4000 has no entry in /etc/passwd: getent unable to find entry "4000" '
                 "in group database"),
    ("seb:wheel", 'Error during groupname lookup for "wheel": getent unable to find entry '
                  '"wheel" in group database'),
])
def test_docker_value_errors(value: str, message: str) -> None:
    with pytest.raises(RuntimeConfigError) as info:
        docker_remapped_root(value, ACC)
    assert info.value.message == message and info.value.reason == "docker-config"
    r = docker_remap("", "", value, accounts=ACC)
    assert r.error is not None and r.error.message == message and not r.ok


def test_docker_subgid_is_looked_up_by_the_user_not_the_group() -> None:
    subgid = "staff:700000:65536\nseb:100000:65536\n"
    r = docker_remap("seb:100000:65536\n", subgid, "seb:staff", accounts=ACC)
    assert t(r.gid) == [(0, 100000, 65536)]
    assert "docker-group-unused" in [n.reason for n in r.notes]


def test_docker_root_gets_no_map() -> None:
    for value in ("root", "0", "root:staff"):
        r = docker_remap("root:100000:65536\n", "root:100000:65536\n", value, accounts=ACC)
        assert r.uid is None and r.gid is None and r.error is None
        assert [n.reason for n in r.notes] == ["docker-root-no-remap"]


def test_docker_no_ranges_says_subuid_for_both_files() -> None:
    r = docker_remap("seb:100000:65536\n", "", "seb", accounts=ACC)
    assert r.error is not None and r.error.file == "subgid"
    assert r.error.message == 'error creating ID mappings: no subuid ranges found for user "seb"'


def test_docker_misread_start_makes_container_root_host_root() -> None:
    r = docker_remap("seb: 100000:65536\n", "seb:100000:65536\n", "seb", accounts=ACC)
    assert t(r.uid) == [(0, 0, 65536)]  # container root IS host root
    assert r.uid is not None and r.uid.to_host(0) == 0
    sec = [n for n in r.notes if n.severity == Severity.SECURITY]
    assert [(n.reason, n.file, n.lineno) for n in sec] == [("docker-misread", "subuid", 1)]


def test_docker_misread_count_fails_at_container_start() -> None:
    r = docker_remap("seb:100000:65536x\n", "seb:100000:65536\n", "seb", accounts=ACC)
    assert r.uid is None and r.error is not None and r.error.reason == "kernel-refused"
    assert [n.severity for n in r.notes] == [Severity.WARNING]


def test_docker_creates_dockremap_after_roots_ranges_only() -> None:
    acc = Accounts.parse("root:x:0:0::/:/bin/sh\nalice:x:1002:1002::/:/bin/sh\n",
                         "root:x:0:\n")
    subuid = "root:100000:65536\nalice:165536:65536\n"
    r = docker_remap(subuid, subuid, accounts=acc)
    # After root's range: 165536, which is alice's.
    assert t(r.uid) == [(0, 165536, 65536)] and r.data_root == "165536.165536"
    reasons = [n.reason for n in r.notes]
    assert reasons[0] == "docker-creates-dockremap"
    assert reasons.count("docker-new-range-overlaps") == 2  # subuid and subgid
    assert "usermod -v 165536-231071 -w 165536-231071 dockremap" in r.notes[0].message


# -- Podman -----------------------------------------------------------------------------


def test_podman_sorts_by_host_start() -> None:
    text = "jonas:100000:1000\njonas:1000:1\n"
    r = podman_maps(text, text, "jonas", accounts=ACC, rootless=False)
    assert t(r.uid) == [(0, 1000, 1), (1, 100000, 1000)]
    assert r.uid_lines == (2, 1)


def test_podman_rootless_intermediate_namespace() -> None:
    text = "jonas:300000:10\njonas:100000:65536\n"
    r = podman_maps(text, text, "jonas", accounts=ACC)
    assert t(r.uid) == [(0, 1001, 1), (1, 100000, 65536), (65537, 300000, 10)]
    assert r.uid_argv == (0, 1001, 1, 1, 100000, 65536, 65537, 300000, 10)
    assert r.ok


def test_podman_rootless_refuses_a_range_with_the_users_own_uid() -> None:
    text = "jonas:1000:2000\n"
    r = podman_maps(text, text, "jonas", accounts=ACC)
    assert r.error is not None and r.error.reason == "podman-range-includes-user"
    assert r.error.message == ('invalid configuration: the specified mapping 1000:2000 in '
                               '"/etc/subuid" includes the user UID')


def test_podman_rootless_without_ranges_maps_only_the_user() -> None:
    r = podman_maps("", "jonas:100000:65536\n", "jonas", accounts=ACC)
    assert t(r.uid) == [(0, 1001, 1)] and t(r.gid) == [(0, 1001, 1)]
    assert [n.reason for n in r.notes] == ["podman-no-ranges", "podman-single-mapping"]
    assert "no subuid ranges found for user \"jonas\" in /etc/subuid" in r.notes[0].message


def test_podman_one_bad_line_of_anyone_fails_the_whole_file() -> None:
    text = "# comments are fine\n  \njonas:100000:65536\nalice:200000\n"
    r = podman_maps(text, text, "jonas", accounts=ACC, rootless=False)
    assert r.error is not None and r.error.message == (
        "cannot parse subuid/gid information: Format not correct for /etc/subuid file")
    bad = "jonas:100000:0x10\n"
    r = podman_maps(bad, bad, "jonas", accounts=ACC, rootless=False)
    assert r.error is not None and r.error.message == (
        "string to int conversion failed during subuid/gid parsing of /etc/subuid: "
        'strconv.Atoi: parsing "0x10": invalid syntax')
    # Docker reads the same file (count 0): a map the kernel refuses.
    assert docker_remap(bad, bad, "jonas", accounts=ACC).error is not None


def test_podman_rootless_uidmap_is_relative_to_the_intermediate_namespace() -> None:
    inter = IDMap([Extent(0, 1001, 1), Extent(1, 100000, 65536)])
    m = podman_rootless_map(inter, IDMap([Extent(0, 1, 1000), Extent(1000, 0, 1)]))
    assert t(m) == [(0, 100000, 1000), (1000, 1001, 1)]
    with pytest.raises(RuntimeConfigError, match="ID 65537") as info:
        podman_rootless_map(inter, IDMap.single(0, 1, 65537))
    assert info.value.reason == "not-in-parent"


def test_podman_auto_size_rules() -> None:
    assert (AUTO_USERNS_MIN_SIZE, AUTO_USERNS_MAX_SIZE) == (1024, 65536)
    assert podman_auto_size() == 1024
    assert podman_auto_size(initial=2000) == 2000
    assert podman_auto_size(image_max=65536) == 65536
    assert podman_auto_size(100000) == 100000  # an explicit size is not capped
    with pytest.raises(RuntimeConfigError) as info:
        podman_auto_size(image_max=65537)
    assert info.value.reason == "auto-too-big"


def test_podman_auto_picks_the_lowest_free_ids() -> None:
    subuid = "containers:100000:10000\ncontainers:300000:10000\n"
    avail_u, avail_g = podman_auto_available(subuid, subuid, accounts=ACC)
    assert avail_u == IDSet([IDRange(100000, 10000), IDRange(300000, 10000)]) == avail_g
    used = [IDMap.single(0, 100000, 1024), IDMap.single(0, 102048, 7000)]
    m = podman_auto(avail_u, 2048, used=used)
    # 1024 free between the two used blocks, then 952 at the end of the first range,
    # then the rest from the second range.
    assert t(m) == [(0, 101024, 1024), (1024, 109048, 952), (1976, 300000, 72)]
    with pytest.raises(RuntimeConfigError) as info:
        podman_auto(avail_u, 20000, used=used)
    assert info.value.message == "not enough unused IDs in user namespace"
    rootless = podman_auto_available(subuid, subuid, accounts=ACC, rootless=True)
    assert rootless[0] == IDSet([IDRange(1, 20000)])
    assert podman_auto_available("", "", accounts=ACC) == (IDSet(), IDSet())


def test_podman_auto_additional_mappings_are_kept_out() -> None:
    avail = IDSet([IDRange(100000, 65536)])
    extra = IDMap.single(0, 100000, 1)  # auto:uidmapping=0:100000:1
    m = podman_auto(avail, 1024, additional=extra)
    assert t(m) == [(1, 100001, 1023), (0, 100000, 1)]


@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(1, 40)), max_size=5),
    st.lists(st.tuples(st.integers(0, 300), st.integers(1, 40)), max_size=5),
    st.integers(1, 120),
)
def test_podman_auto_property(avail: list[tuple[int, int]], used: list[tuple[int, int]],
                              size: int) -> None:
    available = IDSet(IDRange(s, n) for s, n in avail)
    used_maps = [IDMap.single(0, s, n) for s, n in used]
    free = available - IDSet(IDRange(s, n) for s, n in used)
    if len(free) < size:
        with pytest.raises(RuntimeConfigError):
            podman_auto(available, size, used=used_maps)
        return
    m = podman_auto(available, size, used=used_maps)
    assert m.container_ids() == IDSet([IDRange(0, size)])
    assert m.host_ids() == IDSet(sorted(free)[:size])  # the lowest free IDs, in order
    assert [m.to_host(c) for c in range(size)] == sorted(free)[:size]


# -- unshare ----------------------------------------------------------------------------

TWO = ("seb:100000:65536\nseb:300000:65536\n", "seb:100000:65536\n")


def test_unshare_map_auto_first_line_only() -> None:
    r = unshare_maps(*TWO, "seb", accounts=ACC)
    assert t(r.uid) == [(0, 100000, 65536)] and r.uid_lines == (1,)
    assert r.uid_argv == (0, 100000, 65536)


def test_unshare_map_root_user_and_current_user() -> None:
    r = unshare_maps(*TWO, "seb", accounts=ACC, map_root_user=True)
    assert t(r.uid) == [(0, 1000, 1), (1, 100000, 65535)]
    r = unshare_maps(*TWO, "seb", accounts=ACC, map_current_user=True)
    assert t(r.uid) == [(1000, 1000, 1), (0, 100000, 1000), (1001, 101000, 64535)]
    r = unshare_maps(*TWO, "seb", accounts=ACC, map_auto=False, map_root_user=True)
    assert t(r.uid) == [(0, 1000, 1)] and t(r.gid) == [(0, 1000, 1)]
    assert "unshare-setgroups-deny" in [n.reason for n in r.notes]
    r = unshare_maps(*TWO, "seb", accounts=ACC, map_auto=False)
    assert r.uid is None and r.gid is None


def test_unshare_explicit_map_users() -> None:
    r = unshare_maps(*TWO, "seb", accounts=ACC, map_auto=False, map_users=(300000, 0, 10),
                     map_groups=(100000, 0, 10))
    assert t(r.uid) == [(0, 300000, 10)] and t(r.gid) == [(0, 100000, 10)]


def test_unshare_owner_field_read_by_strtoul() -> None:
    # For root (uid 0), a NAME reads as 0 with strtoul: alice's line is "root's" first line.
    text = "alice:200000:65536\nroot:100000:65536\n"
    r = unshare_maps(text, text, "root", accounts=ACC)
    assert r.uid_argv == (0, 200000, 65536) and r.uid_lines == (1,)
    # newuidmap, even run by root, then refuses alice's IDs.
    assert r.error is not None and r.error.message == (
        "newuidmap: uid range [0-65536) -> [200000-265536) not allowed")
    # ... and a uid with trailing junk is still that uid (shadow disagrees).
    text = "1000junk:400000:10\nseb:100000:10\n"
    r = unshare_maps(text, text, "seb", accounts=ACC)
    assert r.uid_argv == (0, 400000, 10) and r.error is not None
    assert r.error.reason == "newuidmap-refused"


def test_unshare_errors() -> None:
    r = unshare_maps("seb:100000:65536 \n", "seb:100000:65536\n", "seb", accounts=ACC)
    assert r.error is not None and r.error.message == (
        "unshare: failed to parse subid map: '65536 '")
    r = unshare_maps("alice:1:1\n", "seb:100000:65536\n", "seb", accounts=ACC)
    assert r.error is not None and r.error.message == (
        'unshare: no line matching user "seb" in /etc/subuid')
    # Cut to 32 bits: 4294967296 becomes 0, and newuidmap refuses host root.
    r = unshare_maps("seb:4294967296:65536\n", "seb:100000:65536\n", "seb", accounts=ACC)
    assert r.uid_argv == (0, 0, 65536)
    assert r.error is not None and r.error.message == (
        "newuidmap: uid range [0-65536) -> [0-65536) not allowed")


# -- Incus ------------------------------------------------------------------------------


def test_incus_takes_roots_big_ranges_only() -> None:
    text = "root:100000:1000\nRoot:1000000:1000000000\nseb:100000:65536\n"
    r = incus_maps(text, text, accounts=ACC)
    assert t(r.uid) == [(0, 1000000, 1000000000)] and r.uid_lines == (2,)
    assert [n.reason for n in r.notes] == ["incus-small-range", "incus-small-range"]
    capped = incus_maps(text, text, accounts=ACC, idmap_size=65536)
    assert t(capped.uid) == [(0, 1000000, 65536)]


def test_incus_comments_uid_fallback_and_errors() -> None:
    text = "0:1000000:65536# root by uid\n"
    assert t(incus_maps(text, text, accounts=ACC).uid) == [(0, 1000000, 65536)]
    # The comment is cut at '#', the space before it is not: "65536 " is no uint32.
    spaced = "root:1000000:65536 # root\n"
    r = incus_maps(spaced, spaced, accounts=ACC)
    assert r.error is not None and "No map found for user" in r.error.message
    r = incus_maps("root:1000000\n", "root:1000000:65536\n", accounts=ACC)
    assert r.error is not None and 'Unexpected values in "/etc/subuid": ["root" "1000000"]' in (
        r.error.message)
    r = incus_maps("seb:1000000:65536\n", "seb:1000000:65536\n", accounts=ACC)
    assert r.error is not None and "No map found for user" in r.error.message
    r = incus_maps("root:1000:1000\n", "root:1000:1000\n", accounts=ACC)
    assert r.error is not None and r.error.message.startswith("No valid subuid/subgid map")


def test_incus_two_big_ranges_collide_at_container_zero() -> None:
    text = "root:1000000:65536\nroot:2000000:65536\n"
    r = incus_maps(text, text, accounts=ACC)
    assert r.error is not None and r.error.reason == "kernel-refused"


def test_incus_missing_files_use_its_own_block() -> None:
    r = incus_maps(None, None, accounts=ACC)
    assert t(r.uid) == [(0, 1000000, 1000000000)]


def test_incus_raw_idmap_holes() -> None:
    base = "root:1000000:65536\n"
    r = incus_maps(base, base, accounts=ACC, raw_idmap="uid 1000 1000\ngid 50 0")
    assert t(r.uid) == [(0, 1000000, 1000), (1000, 1000, 1), (1001, 1001001, 64535)]
    assert t(r.gid) == [(0, 50, 1), (1, 1000001, 65535)]


def test_incus_raw_idmap_quirks() -> None:
    base = "root:1000000:65536\n"
    # Incus's Intersects ignores the LAST ID of each range: a hole at container 65535
    # is not punched, the entry is appended, and the kernel refuses the overlap.
    r = incus_maps(base, base, accounts=ACC, raw_idmap="both 5000 65535")
    assert r.error is not None and r.error.reason == "kernel-refused"
    # Its HostIDsIntersect counts TOUCHING host ranges: refused, though nothing overlaps.
    r = incus_maps(base, base, accounts=ACC, raw_idmap="both 1065536 1000")
    assert r.error is not None and r.error.message == "Host ID is in the range of subids"
    r = incus_maps(base, base, accounts=ACC, raw_idmap="both 1 2 3")
    assert r.error is not None and r.error.reason == "syntax"


def test_incus_isolated_allocation() -> None:
    pool = "root:1000000:1000000000\n"

    def base(**kw: object) -> int:
        r = incus_maps(pool, pool, accounts=ACC, isolated=True, **kw)  # type: ignore[arg-type]
        assert r.uid is not None and r.gid is not None and t(r.uid) == t(r.gid)
        return r.uid[0].host

    assert base() == 1065536  # skips the first 65536 IDs of root's range
    assert base(isolated_in_use=[(1065536, 65536)]) == 1131072
    # A gap of exactly the size between two containers is NOT used; one more ID is.
    assert base(isolated_in_use=[(1065536, 65536), (1196608, 65536)]) == 1262144
    assert base(isolated_in_use=[(1065536, 65536), (1196609, 65536)]) == 1131072
    assert base(idmap_base=5000000) == 5000000
    r = incus_maps(pool, pool, accounts=ACC, isolated=True, idmap_size=100000)
    assert t(r.uid) == [(0, 1065536, 100000)]
    small = "root:1000000:131072\n"
    r = incus_maps(small, small, accounts=ACC, isolated=True, isolated_in_use=[(1065536, 10)])
    assert r.error is not None and r.error.message == (
        "Not enough uid/gid available for the container")


# -- the comparison ---------------------------------------------------------------------


def test_compare_docker_and_podman_on_the_jonas_file() -> None:
    text = "jonas:100000:1000\njonas:1000:1\n"
    cmp = compare_runtimes(text, text, "jonas", accounts=ACC)
    assert [r.runtime for r in cmp.results] == [
        "docker", "podman", "podman-rootless", "unshare --map-auto",
        "unshare --map-auto --map-root-user"]
    dp = [d for d in cmp.differences if (d.first, d.second) == ("docker", "podman")]
    assert [(d.kind, d.reason, d.container, d.hosts) for d in dp] == [
        ("uid", "order", 0, (100000, 1000)), ("gid", "order", 0, (100000, 1000))]
    assert "FILE order (subuid lines 1, 2)" in dp[0].message
    assert "sorted by host start (subuid lines 2, 1)" in dp[0].message
    du = next(d for d in cmp.differences if d.second == "unshare --map-auto")
    assert du.reason == "ids" and "only docker uses host uids {1000}" in du.message
    assert cmp.result("docker").uid is not None
    assert json.loads(json.dumps(cmp.to_dict()))["user"] == "jonas"
    assert len(cmp.summary()) == len(cmp.differences) > 0


def test_compare_agrees_and_fails() -> None:
    one = "seb:100000:65536\n"
    cmp = compare_runtimes(one, one, "seb", accounts=ACC,
                           runtimes=["docker", "podman", "unshare --map-auto"])
    assert cmp.agree and cmp.summary() == [
        "docker, podman, unshare --map-auto build the same maps for seb"]
    cmp = compare_runtimes("seb:100000:65536\n", "", "seb", accounts=ACC,
                           runtimes=["docker", "podman-rootless"])
    assert {d.reason for d in cmp.differences} == {"fails"}
    with pytest.raises(KeyError):
        cmp.result("incus")
    with pytest.raises(ValueError, match="unknown runtime 'lxd'"):
        compare_runtimes(one, one, "seb", accounts=ACC, runtimes=["lxd"])
    root = compare_runtimes("root:1000000:65536\n", "root:1000000:65536\n", "root",
                            accounts=ACC)
    assert root.result("incus").ok and root.result("docker").uid is None


def test_subidfile_inputs_are_accepted() -> None:
    f = SubidFile.parse("seb:100000:65536\n", path="subuid")
    assert t(docker_remap(f, f, "seb", accounts=ACC).uid) == [(0, 100000, 65536)]


# -- unshare against the real util-linux unshare ----------------------------------------

_SHOW = "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map"


def _line(rng: random.Random) -> str:
    owner = rng.choice([USER] * 4 + [str(UID), f"{UID}x", "nsother"])
    start = rng.choice([100000, 100000, 200000, 4242, 4294967296 + 100000])
    count = rng.choice([1, 10, 65536, 65536, 70000])
    tail = rng.choice([""] * 8 + [" ", ":extra"])
    return f"{owner}:{start}:{count}{tail}"


@pytest.mark.kernel
def test_unshare_differential_against_real_unshare(tmp_path: Path) -> None:
    why = tools_available()
    if why is not None:
        pytest.skip(why)
    rng = random.Random(8)
    options = [[], ["--map-root-user"], ["--map-current-user"], ["--map-user=7"]]
    scenarios: list[dict[str, object]] = []
    for i in range(100):
        subuid = "".join(_line(rng) + "\n" for _ in range(rng.choice([0, 1, 1, 2, 3])))
        subgid = "".join(_line(rng) + "\n" for _ in range(rng.choice([0, 1, 1, 2, 3])))
        opts = options[i % len(options)]
        scenarios.append({"cmd": ["unshare", "--user", "--map-auto", *opts, "sh", "-c", _SHOW],
                          "subuid": subuid, "subgid": subgid, "opts": opts})
    results = run_as_user(tmp_path, scenarios)
    acc = Accounts.parse(f"{USER}:x:{UID}:{GID}::/:/bin/sh\n", f"{USER}:x:{GID}:\n")
    ok = 0
    for sc, real in zip(scenarios, results):
        flags = str(sc["opts"])
        model = unshare_maps(
            str(sc["subuid"]), str(sc["subgid"]), USER, accounts=acc,
            map_root_user="--map-root-user" in flags,
            map_current_user="--map-current-user" in flags,
            map_user=7 if "--map-user=7" in flags else None,
        )
        if model.error is None:
            assert real["rc"] == 0, (sc, real, model)
            uid_text, gid_text = str(real["stdout"]).split("--\n")
            installed = [parse_proc(text) for text in (uid_text, gid_text)]
            assert installed == [model.uid, model.gid], (sc, real, model)
            ok += 1
        else:
            assert real["rc"] != 0, (sc, real, model)
            assert str(real["stderr"]).startswith(model.error.message), (sc, real, model)
    assert 20 <= ok <= 80, ok  # both outcomes exercised


# -- the documentation pages of this module ----------------------------------------------

_DOCS = Path(__file__).resolve().parent.parent / "docs"
_FENCE = re.compile(r"^```pycon\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("page", ["howto/remap-docker.md", "reference/runtimes.md"])
def test_doc_page_examples_run(page: str) -> None:
    text = (_DOCS / page).read_text(encoding="utf-8")
    blocks = _FENCE.findall(text)
    assert blocks, f"{page} has no pycon example"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict[str, object] = {}
    for i, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, globs, f"{page}[{i}]", page, 0)
        report: list[str] = []
        result = runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs
        assert result.attempted > 0 and result.failed == 0, "".join(report)


def test_differences_page_table_is_what_the_code_builds() -> None:
    text = (_DOCS / "differences.md").read_text(encoding="utf-8")
    acc = Accounts.parse("jonas:x:1001:1001::/:/bin/sh\n", "jonas:x:1001:\n")
    subuid = "jonas:100000:1000\njonas:1000:1\n"
    cmp = compare_runtimes(subuid, subuid, "jonas", accounts=acc)
    labels = {"docker": "Docker", "podman": "Podman (root, `--subuidname=jonas`)",
              "podman-rootless": "Podman rootless"}
    for r in cmp.results:
        assert r.uid is not None
        shown = ", ".join(f"`{e}`" for e in r.uid)
        row = f"| {labels.get(r.runtime, f'`{r.runtime}`')} | {shown}"
        assert row in text, row


def test_docker_default_keeps_existing_dockremap_lines_without_passwd_entry() -> None:
    # dockerd creates the dockremap user but keeps the lines it already has
    # (moby createSubordinateRanges looks them up before calling usermod).
    no_user = Accounts.from_pairs([("root", 0)], [("root", 0)])
    text = "dockremap:231072:65536\n"
    r = docker_remap(text, text, "default", accounts=no_user)
    assert r.uid == IDMap.single(0, 231072, 65536)
    assert r.data_root == "231072.231072"
    assert r.uid_lines == (1,)
    assert "keep its existing subuid/subgid lines" in r.notes[0].message
    # Only the file without a line gets a new range (after root's ranges: 100000).
    r = docker_remap(text, "", "default", accounts=no_user)
    assert r.gid == IDMap.single(0, 100000, 65536)
    assert r.data_root == "231072.100000"
    assert "usermod -w 100000-165535 dockremap" in r.notes[0].message


def test_docker_no_ranges_names_the_file_in_a_note() -> None:
    r = docker_remap("seb:100000:65536\n", "", "seb", accounts=ACC)
    assert [n.reason for n in r.notes] == ["docker-no-ranges-file"]
    assert r.notes[0].message.startswith("/etc/subgid has no line for seb")
