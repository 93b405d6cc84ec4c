"""Docker by version: the 20.10 line (moby 20.10 to 27.x), 28, and main after PR 53524.

Each case is a rule read in moby's source at that version (``pkg/idtools`` at v20.10.24,
``daemon/internal/usergroup`` and ``moby/sys/user`` at v28 and main, PR 53524's
description for ``findNextRangeStart``); ``tests/test_docker_real.py`` checks the 20.10
line against a real dockerd.
"""

from __future__ import annotations

import pytest

from userns.runtimes import RuntimeConfigError, docker_remap
from userns.runtimes.docker import DOCKER_VERSIONS, docker_rules, next_range_start
from userns.subid import Accounts

ACC = Accounts.parse(
    "root:x:0:0::/root:/bin/sh\ntestuser:x:1500:1500::/:/bin/sh\nalice:x:1002:1002::/:/bin/sh\n",
    "root:x:0:\ntestuser:x:1500:\nalice:x:1002:\n",
)


def host0(text: str, version: str, remap: str = "testuser") -> int | None:
    r = docker_remap(text, text, remap, accounts=ACC, version=version)
    return None if r.uid is None else r.uid.to_host(0)


def test_uid_lines_first_in_20_10_name_or_uid_in_file_order_later() -> None:
    text = "testuser:9000000:20\n1500:20000000:65536\n"
    assert host0(text, "20.10") == 20000000
    assert host0(text, "28") == host0(text, "main") == 9000000
    r = docker_remap(text, text, "testuser", accounts=ACC, version="20.10")
    assert r.data_root == "20000000.20000000" and r.uid_lines == (2,)
    note = next(n for n in r.notes if n.reason == "docker-uid-lines-first")
    assert (note.file, note.lineno) == ("subuid", 1)
    # No line of the uid: the name's lines, in file order, in every version.
    assert host0("testuser:300000:10\ntestuser:100000:65536\n", "20.10") == 300000


def test_20_10_cannot_read_a_file_with_a_malformed_line() -> None:
    text = "# made by hand\nbogus line\ntestuser:100000:65536\n"
    r = docker_remap(text, text, "testuser", accounts=ACC, version="20.10")
    assert r.uid is None and r.error is not None
    assert (r.error.reason, r.error.file) == ("docker-unreadable", "subuid")
    assert r.error.message == ("Can't create ID mappings: Cannot parse subuid/gid information: "
                               "Format not correct for /etc/subuid file")
    assert host0(text, "main") == 100000  # moby/sys/user reads the other lines


def test_20_10_refuses_unreadable_numbers_later_versions_read_zero() -> None:
    text = "testuser: 100000:65536\n"
    r = docker_remap(text, text, "testuser", accounts=ACC, version="20.10")
    assert r.error is not None and r.error.message.endswith(
        'strconv.Atoi: parsing " 100000": invalid syntax')
    later = docker_remap(text, text, "testuser", accounts=ACC, version="main")
    assert later.uid is not None and later.uid.to_host(0) == 0  # container root = host root
    # An unreadable number on ANOTHER owner's line is not parsed by 20.10 either.
    assert host0("alice:0x10:5\ntestuser:100000:65536\n", "20.10") == 100000


def test_20_10_skips_comments_later_versions_read_them_as_owners() -> None:
    text = "#testuser:1:1\ntestuser:100000:65536\n"
    assert host0(text, "20.10") == host0(text, "main") == 100000


def test_no_ranges_message_per_version() -> None:
    r = docker_remap("testuser:100000:65536\n", "", "testuser", accounts=ACC, version="20.10")
    assert r.error is not None
    assert r.error.message == ("Can't create ID mappings: no subgid ranges found for user "
                               '"testuser"')
    r = docker_remap("testuser:100000:65536\n", "", "testuser", accounts=ACC, version="main")
    assert r.error is not None and "no subuid ranges" in r.error.message  # moby's words


# -- findNextRangeStart -------------------------------------------------------------------------


@pytest.mark.parametrize(("ranges", "closed", "half_open"), [
    ([], 100000, 100000),                          # empty list
    ([(100000, 65536)], 165536, 165536),           # the candidate itself
    ([(110000, 10)], 100000, 110010),              # contained: the old test misses it
    ([(165536, 10)], 165546, 100000),              # immediately after the candidate
    ([(34464, 65536)], 100000, 100000),            # immediately before it
    ([(300000, 5), (100000, 65536)], 165536, 165536),  # unsorted input is sorted first
    ([(165536, 65536), (100000, 65536)], 231072, 231072),
])
def test_find_next_range_start(ranges: list[tuple[int, int]], closed: int,
                               half_open: int) -> None:
    assert next_range_start(ranges, half_open=False) == closed
    assert next_range_start(ranges, half_open=True) == half_open


def test_default_avoids_every_range_in_20_10_and_roots_only_later() -> None:
    no_dockremap = Accounts.parse("root:x:0:0::/:/bin/sh\nalice:x:1002:1002::/:/bin/sh\n",
                                  "root:x:0:\n")
    text = "root:100000:65536\nalice:165536:65536\n"
    old = docker_remap(text, text, accounts=no_dockremap, version="20.10")
    assert old.data_root == "231072.231072"
    assert "usermod -v 231072-296607 -w 231072-296607 dockremap" in old.notes[0].message
    assert not [n for n in old.notes if n.reason == "docker-new-range-overlaps"]
    for v in ("28", "main"):
        new = docker_remap(text, text, accounts=no_dockremap, version=v)
        assert new.data_root == "165536.165536"
        assert [n.reason for n in new.notes].count("docker-new-range-overlaps") == 2
    # A range inside the candidate: the closed test misses it, main sees it.
    text = "root:110000:10\n"
    assert docker_remap(text, text, accounts=no_dockremap, version="28").data_root == (
        "100000.100000")
    assert docker_remap(text, text, accounts=no_dockremap, version="main").data_root == (
        "110010.110010")


# -- versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "version"), [
    ("20.10", "20.10"), ("20.10.24", "20.10"), ("Docker version 20.10.24+dfsg1, build 5d6db84",
                                                "20.10"),
    ("v24.0.7", "20.10"), ("27.5.1", "20.10"), ("28.0.0", "28"),
    ("Docker version 29.7.2, build 1a2b3c4", "28"), ("main", "main"), ("28", "28"),
])
def test_docker_rules_from_version_texts(text: str, version: str) -> None:
    assert docker_rules(text).version == version
    assert docker_rules(text).version in DOCKER_VERSIONS


def test_docker_rules_refuses_a_text_without_a_version() -> None:
    with pytest.raises(RuntimeConfigError) as info:
        docker_rules("latest")
    assert info.value.reason == "docker-version"


def test_lone_size_one_mapping_is_not_root_here() -> None:
    """docs/differences.md: containers/storage's GetRootUIDGID takes a lone size-1
    mapping as root's host ID; userns does not."""
    from userns import IDMap, IDMapPair, UnmappedIDError

    lone = IDMap.single(5, 1000, 1)
    assert lone.to_host(0, None) is None
    with pytest.raises(UnmappedIDError):
        IDMapPair(lone, lone).root  # noqa: B018
    with pytest.raises(UnmappedIDError):
        IDMapPair(lone, lone).root_dir_name  # noqa: B018
