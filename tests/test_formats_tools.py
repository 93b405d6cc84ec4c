"""The real tools as oracles: what shadow's newuidmap, util-linux's unshare and the kernel
install for a text is what the parsers say.

Needs root, user namespaces and the Debian packages ``uidmap`` (newuidmap) and
``util-linux`` (unshare); each test skips with the reason when that is missing. The
tools read ``/etc/subuid``; the tests never touch the machine's file: they run the tool
in a private mount namespace with a test file bind-mounted over it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair, ParseError
from userns.formats import (
    format_newuidmap,
    format_proc,
    format_unshare,
    get_format,
    parse_newuidmap,
    parse_proc,
    parse_unshare,
)

SUBIDS = "root:100000:65536\n"


def _userns_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode == 0


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (writes maps, mounts)")
needs_userns = pytest.mark.skipif(not _userns_works(),
                                  reason="user namespaces or unshare(1) unavailable")
needs_newuidmap = pytest.mark.skipif(shutil.which("newuidmap") is None,
                                     reason="newuidmap missing (Debian package uidmap)")
needs_subid_files = pytest.mark.skipif(
    not (Path("/etc/subuid").exists() and Path("/etc/subgid").exists()),
    reason="/etc/subuid or /etc/subgid missing: nothing to bind-mount a test file over")


def _mountns_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", "sh", "-c", "mount --bind /etc/subuid /etc/subuid"]
    return subprocess.run(probe, capture_output=True).returncode == 0


needs_mountns = pytest.mark.skipif(not _mountns_works(),
                                   reason="cannot bind-mount in a private mount namespace")

pytestmark = [needs_root, needs_userns]


@contextlib.contextmanager
def new_userns() -> Iterator[int]:
    """The PID of a process in a fresh user namespace with no map written yet."""
    proc = subprocess.Popen(["unshare", "--user", "sleep", "60"])
    try:
        for _ in range(1000):  # poll until the child has entered its namespace
            if os.readlink(f"/proc/{proc.pid}/ns/user") != os.readlink("/proc/self/ns/user"):
                break
            time.sleep(0.01)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def target() -> Iterator[int]:
    with new_userns() as pid:
        yield pid


def with_subids(script: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (argv) with SUBIDS as /etc/subuid and /etc/subgid, privately."""
    with tempfile.NamedTemporaryFile("w", suffix=".subid", delete=False) as f:
        f.write(SUBIDS)
    try:
        shell = ('mount --bind "$1" /etc/subuid && mount --bind "$1" /etc/subgid && '
                 'shift && exec "$@"')
        return subprocess.run(["unshare", "--mount", "sh", "-c", shell, "sh", f.name, *script],
                              capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)


def read_map(pid: int, kind: str = "uid") -> IDMap:
    return parse_proc(Path(f"/proc/{pid}/{kind}_map").read_text())


@needs_newuidmap
def test_newuidmap_own_uid_and_base_zero(target: int) -> None:
    # Mapping one's own uid needs no subuid entry. shadow reads numbers with
    # strtoul(..., 0): "010" is octal 8, which is why userns refuses that text.
    text = f"newuidmap {target} 010 0 1"
    with pytest.raises(ParseError) as info:
        parse_newuidmap(text)
    assert info.value.reason == "ambiguous-number"
    subprocess.run(text.split(), check=True, capture_output=True)
    assert read_map(target) == IDMap.single(8, 0, 1)


@needs_newuidmap
@needs_subid_files
@needs_mountns
def test_newuidmap_installs_what_parse_says(target: int) -> None:
    text = f"newuidmap {target} 0 100010 10 10 100000 10 20 100100 1000"
    expected = parse_newuidmap(text)
    done = with_subids(text.split())
    assert done.returncode == 0, done.stderr
    assert read_map(target) == expected  # three extents: the kernel keeps their order
    assert format_newuidmap(read_map(target), target=target) == text


def _unshare_version() -> tuple[int, int]:
    out = subprocess.run(["unshare", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


@needs_newuidmap
@needs_subid_files
@needs_mountns
def test_unshare_map_users_installs_what_parse_says() -> None:
    m = IDMap.single(0, 100000, 65536)
    # util-linux before 2.39 reads only the outer,inner,count form; later ones read both.
    legacy = _unshare_version() < (2, 39)
    value = format_unshare(m, legacy=legacy)
    assert parse_unshare(value) == m
    done = with_subids(["unshare", "--user", f"--map-users={value}", f"--map-groups={value}",
                        "cat", "/proc/self/uid_map", "/proc/self/gid_map"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert parse_proc(lines[0]) == parse_proc(lines[1]) == m


EXAMPLES = [
    ("podman", "0:1:1000 1000:0:1 1001:1001:64535"),
    ("oci-config", '{"linux": {"uidMappings": [{"containerID": 0, "hostID": 231072, '
                   '"size": 65536}], "gidMappings": [{"containerID": 0, "hostID": 0, '
                   '"size": 4294967295}]}}'),
    ("lxc", "lxc.idmap = u 0 4294967294 1\nlxc.idmap = g 4294967294 0 1\n"),
    ("incus", "uid 1000-1002 0-2\ngid 50 50"),
    ("kernel", "u0:k0:r4294967295"),
    ("xmount", "u:1000:0:1 g:1001:1:2 5000:1000:2"),
]


@pytest.mark.parametrize(("name", "text"), EXAMPLES)
def test_kernel_installs_the_parsed_maps(name: str, text: str) -> None:
    pair = get_format(name).parse(text)
    installed = []
    for kind, idmap in (("uid", pair.uid), ("gid", pair.gid)):
        if not idmap:
            installed.append(IDMap())
            continue
        with new_userns() as pid:
            with open(f"/proc/{pid}/{kind}_map", "w") as f:
                f.write(format_proc(idmap))
            installed.append(read_map(pid, kind))
    assert IDMapPair(installed[0], installed[1]) == pair
