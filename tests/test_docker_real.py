"""The Docker model against a real dockerd (Debian's ``docker.io``): maps, data root, ranges.

Each layout runs a fresh ``dockerd --userns-remap`` in a private mount namespace where
``/etc`` is a bind-mounted copy holding the layout's subuid/subgid/passwd/group, with
vfs storage, no iptables or bridge, a cgroupfs driver, a data root the remapped root can
traverse and a short exec root. A busybox image is made with ``docker import`` from the
host's static busybox, and a container prints its ``/proc/self/uid_map`` and
``gid_map``. The prediction is ``docker_remap(..., version=<dockerd --version>)``: the
maps the container got, the data root's name (and owner and mode, as
``check_data_root`` expects them), the ranges ``default`` wrote, or the refusal.
"""

from __future__ import annotations

import glob
import os
import pathlib
import random
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator

import pytest

from userns.formats.proc import parse_proc
from userns.runtimes import docker_remap
from userns.runtimes.daemon import check_data_root, detect_docker_version
from userns.subid import Accounts, SubidFile

pytestmark = pytest.mark.slow

DOCKERD = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")
# The client packaged with dockerd (docker.io puts both in /usr/{s,}bin).
DOCKER = next((p for p in ("/usr/bin/docker", shutil.which("docker")) if p and
               os.access(p, os.X_OK)), None)
BUSYBOX = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
UNSHARE = shutil.which("unshare")

SCRIPT = r"""
set -u
W=$1; REMAP=$2
mkdir -p "$W/etc" "$W/out"
cp -a /etc/. "$W/etc/"
cp "$W/in/subuid" "$W/etc/subuid"; cp "$W/in/subgid" "$W/etc/subgid"
cat "$W/in/passwd.add" >> "$W/etc/passwd"; cat "$W/in/group.add" >> "$W/etc/group"
rm -f "$W/etc/docker/daemon.json"
mount --bind "$W/etc" /etc || exit 90
echo '{}' > "$W/daemon.json"
"$DOCKERD" --config-file "$W/daemon.json" --userns-remap="$REMAP" --storage-driver=vfs \
  --iptables=false --ip6tables=false --bridge=none \
  --exec-opt native.cgroupdriver=cgroupfs --data-root "$W/data" --exec-root "$X" \
  -H "unix://$X/d.sock" --pidfile "$X/d.pid" > "$W/out/dockerd.log" 2>&1 &
DPID=$!
for i in $(seq 1 120); do
  if ! kill -0 $DPID 2>/dev/null; then echo exited > "$W/out/status"; break; fi
  if "$DOCKER" -H "unix://$X/d.sock" version >/dev/null 2>&1; then
    echo up > "$W/out/status"; break
  fi
  sleep 0.25
done
if [ "$(cat "$W/out/status" 2>/dev/null)" = up ]; then
  D="$DOCKER -H unix://$X/d.sock"
  $D import "$W/../rootfs.tar" ubox > /dev/null 2> "$W/out/import.err"
  $D run --rm --network none ubox /bin/cat /proc/self/uid_map > "$W/out/uid_map" \
    2> "$W/out/run.err"
  $D run --rm --network none ubox /bin/cat /proc/self/gid_map > "$W/out/gid_map" \
    2>> "$W/out/run.err"
  ls "$W/data" > "$W/out/data_entries"
  cp /etc/subuid /etc/subgid /etc/passwd "$W/out/"
  kill $DPID; wait $DPID
fi
"""


def _static(path: str) -> bool:
    """An ELF file with no program interpreter (PT_INTERP): runs in an empty rootfs."""
    with open(path, "rb") as fh:
        head = fh.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "dockerd needs root"
    missing = [n for n, p in (("dockerd (Debian docker.io)", DOCKERD),
                              ("docker (Debian docker.io)", DOCKER),
                              ("busybox (Debian busybox-static)", BUSYBOX),
                              ("unshare", UNSHARE)) if p is None]
    if missing:
        return "missing: " + ", ".join(missing)
    assert BUSYBOX is not None
    if not _static(BUSYBOX):
        return f"{BUSYBOX} is not statically linked (install busybox-static)"
    return None


WHY = _why_not()
needs_dockerd = pytest.mark.skipif(WHY is not None, reason=WHY or "")


@pytest.fixture(scope="module")
def workdir() -> Iterator[pathlib.Path]:
    # Under /tmp with mode 0755: the remapped root must traverse every parent of the
    # data root (a 0700 pytest directory makes dockerd refuse it).
    base = pathlib.Path(tempfile.mkdtemp(prefix="userns-dockerd-", dir="/tmp"))
    base.chmod(0o755)
    assert BUSYBOX is not None
    with tarfile.open(base / "rootfs.tar", "w") as tar:
        for d in ("bin", "proc", "sys", "dev", "etc", "tmp"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        for name in ("sh", "cat"):
            info = tarfile.TarInfo(f"bin/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    (base / "run.sh").write_text(SCRIPT)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def version(workdir: pathlib.Path) -> str:
    """dockerd's version; skips the module when dockerd cannot start on this machine at
    all (a plain valid layout), with dockerd's own last words as the reason."""
    assert DOCKERD is not None
    probe = run_dockerd(workdir, "probe", "testuser", "testuser:100000:65536\n",
                        "testuser:100000:65536\n", [("testuser", 1500)])
    if probe["status"] != "up" or probe["run_err"]:
        said = (str(probe["run_err"]) or str(probe["log"])).strip().splitlines()[-3:]
        pytest.skip("dockerd cannot run a container on this machine: " + " | ".join(said))
    found = detect_docker_version(DOCKERD)
    assert found is not None, "dockerd --version printed no version"
    return found


def run_dockerd(base: pathlib.Path, name: str, remap: str, subuid: str, subgid: str,
                users: list[tuple[str, int]]) -> dict[str, object]:
    """One dockerd run on this layout; what it did."""
    w = base / name
    (w / "in").mkdir(parents=True)
    (w / "in" / "subuid").write_text(subuid)
    (w / "in" / "subgid").write_text(subgid)
    (w / "in" / "passwd.add").write_text("".join(f"{u}:x:{i}:{i}::/nonexistent:/bin/false\n"
                                                 for u, i in users))
    (w / "in" / "group.add").write_text("".join(f"{u}:x:{i}:\n" for u, i in users))
    exec_root = tempfile.mkdtemp(prefix="udx", dir="/tmp")  # short: containerd sockets
    env = {**os.environ, "DOCKERD": str(DOCKERD), "DOCKER": str(DOCKER), "X": exec_root}
    try:
        subprocess.run([str(UNSHARE), "-m", "--propagation", "private", "bash",
                        str(base / "run.sh"), str(w), remap], env=env, check=False,
                       timeout=180, capture_output=True)
    finally:
        # dockerd also makes <exec-root>.<uid>.<gid> for the remapped root.
        for path in [exec_root, *glob.glob(exec_root + ".*")]:
            shutil.rmtree(path, ignore_errors=True)
    out = w / "out"

    def read(n: str) -> str:
        return (out / n).read_text() if (out / n).exists() else ""

    result: dict[str, object] = {"status": read("status").strip(), "log": read("dockerd.log"),
                                 "run_err": read("run.err")}
    if result["status"] == "up":
        result["uid_map"] = read("uid_map")
        result["gid_map"] = read("gid_map")
        result["entries"] = read("data_entries").split()
        result["subuid"], result["subgid"] = read("subuid"), read("subgid")
        result["passwd"] = read("passwd")
        result["data"] = w / "data"
    return result


def _accounts(users: list[tuple[str, int]]) -> Accounts:
    return Accounts.parse("root:x:0:0::/root:/bin/sh\n" + "".join(
        f"{u}:x:{i}:{i}::/:/bin/false\n" for u, i in users),
        "root:x:0:\n" + "".join(f"{u}:x:{i}:\n" for u, i in users))


def _compare(base: pathlib.Path, name: str, version: str, remap: str, subuid: str,
             subgid: str, users: list[tuple[str, int]]) -> str:
    want = docker_remap(subuid, subgid, remap, accounts=_accounts(users), version=version)
    got = run_dockerd(base, name, remap, subuid, subgid, users)
    layout = f"{name}: subuid={subuid!r} subgid={subgid!r} remap={remap}"
    if want.pair is None:
        assert got["status"] != "up" or got["run_err"], (
            f"{layout}: userns predicts no container ({want.error}), dockerd ran one")
        if want.error is not None and want.error.reason in ("docker-unreadable",
                                                            "docker-no-ranges"):
            # dockerd's own words, as the model gives them (its log escapes quotes).
            said = str(got["log"]).replace('\\"', '"')
            assert want.error.message.split(": ", 1)[1] in said, (layout, said[-600:])
        return "refused"
    assert got["status"] == "up", f"{layout}: dockerd did not start:\n{got['log']}"
    assert not got["run_err"], f"{layout}: {got['run_err']}"
    assert parse_proc(str(got["uid_map"])) == want.pair.uid, layout
    assert parse_proc(str(got["gid_map"])) == want.pair.gid, layout
    assert got["entries"] == [want.data_root], layout
    data = got["data"]
    assert isinstance(data, pathlib.Path)
    assert check_data_root(data, want) == [], layout  # as dockerd leaves it
    if remap == "default":
        # The lines dockerd wrote are the ones the model says usermod adds.
        for kind in ("uid", "gid"):
            before = SubidFile.parse(subuid if kind == "uid" else subgid)
            after = SubidFile.parse(str(got[f"sub{kind}"]))
            added = [(e.owner, e.start, e.count) for e in after.entries][len(before.entries):]
            m = want.pair.uid if kind == "uid" else want.pair.gid
            lines = want.uid_lines if kind == "uid" else want.gid_lines
            expect = [] if lines else [("dockremap", m.to_host(0), 65536)]
            assert added == expect, (layout, kind)
    return "mapped"


@needs_dockerd
def test_issue_layout_uid_lines_first(workdir: pathlib.Path, version: str) -> None:
    """testuser (uid 1500): the uid's line wins in 20.10, the name's first line later."""
    text = "testuser:9000000:20\n1500:20000000:65536\n"
    assert _compare(workdir, "issue", version, "testuser", text, text,
                    [("testuser", 1500)]) == "mapped"


@needs_dockerd
def test_random_layouts(workdir: pathlib.Path, version: str) -> None:
    rng = random.Random(12)
    outcomes: list[str] = []
    for n in range(14):
        texts = []
        for _ in range(2):
            lines = []
            starts = rng.sample(range(1, 90), rng.randint(1, 4))
            for s in starts:
                owner = rng.choice(["testuser", "1500", "other", "1600"])
                lines.append(f"{owner}:{s * 100000}:{rng.choice([20, 1000, 65536])}")
            texts.append("".join(f"{line}\n" for line in lines))
        outcomes.append(_compare(workdir, f"random{n}", version, "testuser", texts[0],
                                 texts[1], [("testuser", 1500), ("other", 1600)]))
    print("real dockerd outcomes:", outcomes)
    assert "mapped" in outcomes


@needs_dockerd
def test_malformed_line(workdir: pathlib.Path, version: str) -> None:
    text = "# by hand\nbogus\ntestuser:100000:65536\n"
    _compare(workdir, "malformed", version, "testuser", text, text, [("testuser", 1500)])


@needs_dockerd
@pytest.mark.parametrize(("name", "text"), [
    ("default-after-root", "root:100000:65536\nalice:165536:65536\n"),
    ("default-contained", "root:110000:10\n"),
    ("default-empty", ""),
])
def test_default_creates_dockremap_and_its_ranges(workdir: pathlib.Path, version: str,
                                                  name: str, text: str) -> None:
    assert _compare(workdir, name, version, "default", text, text,
                    [("alice", 1002)]) == "mapped"
