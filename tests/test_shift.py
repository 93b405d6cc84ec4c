"""userns.shift on real trees, as root: what must survive a shift, and how it is reported."""

from __future__ import annotations

import contextlib
import os
import resource
import stat
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from userns import Extent, IDMap, IDMapPair
from userns.shift import (
    JournalError,
    Policy,
    Progress,
    ShiftError,
    UnmappedOwnersError,
    audit_tree,
    default_journal_path,
    shift_tree,
    unshift_tree,
)
from userns.shift.journal import Journal
from userns.shift.xattrs import parse_acl, parse_capability

from .test_shift_trees import build_tree, need_root, need_tool, run, snapshot

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

# Different maps for uids and gids, so a mixed-up side shows.
PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))
# Container and host ranges overlap: shifting anything twice shows (5 -> 1005 -> 2005).
OVERLAP = IDMapPair.both(IDMap.single(0, 1000, 65536))


def expected(before: dict[bytes, tuple[Any, ...]], pair: IDMapPair) -> dict[bytes, tuple[Any, ...]]:
    """The snapshot a correct shift of ``before`` by ``pair`` gives (no xattrs in play)."""
    out = {}
    for rel, (kind, uid, gid, mode, xattrs, digest) in before.items():
        out[rel] = (kind, pair.uid.to_host(uid), pair.gid.to_host(gid), mode, xattrs, digest)
    return out


@pytest.fixture
def tree(tmp_path: Path) -> str:
    root = str(tmp_path / "vol")
    build_tree(root)
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_every_kind_of_inode_is_shifted_once_and_survives(tree: str, workers: int) -> None:
    before = snapshot(tree)
    report = shift_tree(tree, OVERLAP, workers=workers)
    assert snapshot(tree) == expected(before, OVERLAP)
    assert report.complete and not report.errors
    assert report.hardlinks == 2  # hl has three names: two extra visits, no extra shift
    inodes = len({v[-1] for v in snapshot(tree, inodes=True).values()})
    assert report.entries == inodes
    assert report.changed == inodes  # every owner moves, the root-owned dangling link too
    assert report.modes_restored == 3  # suid, sgid, both
    assert not os.path.exists(default_journal_path(tree))


def test_unshift_gives_the_tree_back(tree: str) -> None:
    before = snapshot(tree)
    shift_tree(tree, PAIR, workers=1)
    assert snapshot(tree)[b"plain"][1:3] == (100001, 300002)
    report = unshift_tree(tree, PAIR, workers=2)
    assert snapshot(tree) == before
    assert report.complete


def test_shift_between_two_maps(tree: str) -> None:
    before = snapshot(tree)
    shift_tree(tree, PAIR, workers=1)
    other = IDMapPair.both(IDMap([Extent(0, 500000, 10), Extent(10, 700000, 65526)]))
    shift_tree(tree, other, source=PAIR, workers=1)
    assert snapshot(tree) == expected(before, other)


def test_symlinks_are_reowned_not_followed(tree: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("secret")
    os.chown(outside, 0, 0)
    os.symlink(str(outside), f"{tree}/to-outside")
    os.symlink(str(tmp_path), f"{tree}/to-outside-dir")
    shift_tree(tree, PAIR, workers=1)
    assert (os.stat(outside).st_uid, os.stat(outside).st_gid) == (0, 0)
    assert os.stat(tmp_path).st_uid == 0
    assert os.lstat(f"{tree}/to-outside").st_uid == 100000
    assert os.lstat(f"{tree}/link").st_uid == 100012
    assert os.lstat("/etc/passwd").st_uid == 0


def test_special_files_are_never_opened(tree: str) -> None:
    # A FIFO without a writer would block an open for reading; the device 7,0 (loop0)
    # may not even exist. Both are only chowned.
    shift_tree(tree, PAIR, workers=1)
    for name, kind in (("fifo", stat.S_IFIFO), ("sock", stat.S_IFSOCK),
                       ("whiteout", stat.S_IFCHR), ("blk", stat.S_IFBLK)):
        st = os.lstat(f"{tree}/{name}")
        assert stat.S_IFMT(st.st_mode) == kind
        assert st.st_uid >= 100000
    assert os.major(os.lstat(f"{tree}/whiteout").st_rdev) == 0
    assert os.lstat(f"{tree}/sparse").st_blocks * 512 < 1 << 20  # still sparse


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o6755, 0o4711, 0o2711])
def test_setuid_and_setgid_survive(tmp_path: Path, mode: int) -> None:
    root = tmp_path / "t"
    root.mkdir()
    f = root / "prog"
    f.write_bytes(b"\x7fELF")
    os.chown(f, 0, 0)
    os.chmod(f, mode)
    shift_tree(root, PAIR, workers=1)
    st = os.stat(f)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (100000, 300000, mode)


def test_setgid_directory_keeps_its_bit(tree: str) -> None:
    shift_tree(tree, PAIR, workers=1)
    st = os.stat(f"{tree}/shared")
    assert stat.S_IMODE(st.st_mode) == 0o2775
    assert (st.st_uid, st.st_gid) == (100008, 300009)


@pytest.mark.skipif(need_tool("setcap") is not None, reason=str(need_tool("setcap")))
def test_capabilities_v2_and_v3_survive_and_v3_rootid_is_translated(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    for name in ("v2", "v3", "both"):
        (root / name).write_bytes(b"\x7fELF")
    run("setcap", "cap_net_raw+ep", str(root / "v2"))
    run("setcap", "-n", "3", "cap_net_admin,cap_sys_time+eip", str(root / "v3"))
    os.chmod(root / "both", 0o4755)
    run("setcap", "-n", "7", "cap_net_bind_service=ep", str(root / "both"))
    v3_raw = os.getxattr(root / "v3", "security.capability")
    assert parse_capability(v3_raw).rootid == 3
    report = shift_tree(root, PAIR, workers=1)
    assert report.capabilities == 3
    assert run("getcap", "-n", str(root / "v2")).split()[1:] == ["cap_net_raw=ep"]
    got = run("getcap", "-n", str(root / "both")).split()
    assert got[1:] == ["cap_net_bind_service=ep", "[rootid=100007]"]
    assert stat.S_IMODE(os.stat(root / "both").st_mode) == 0o4755
    cap = parse_capability(os.getxattr(root / "both", "security.capability"))
    assert (cap.revision, cap.rootid) == (3, 100007)
    v3 = parse_capability(os.getxattr(root / "v3", "security.capability"))
    before = parse_capability(v3_raw)
    assert (v3.permitted, v3.inheritable, v3.effective) == (before.permitted,
                                                            before.inheritable, True)
    assert v3.rootid == 100003
    # and back; a root uid that becomes 0 is stored as v2 by the kernel, and written so
    (root / "hostroot").write_bytes(b"\x7fELF")
    run("setcap", "-n", "100000", "cap_chown=ep", str(root / "hostroot"))
    os.chown(root / "hostroot", 100000, 300000)
    run("setcap", "-n", "100000", "cap_chown=ep", str(root / "hostroot"))
    report = unshift_tree(root, PAIR, workers=1)
    assert run("getcap", "-n", str(root / "both")).split()[1:] == [
        "cap_net_bind_service=ep", "[rootid=7]"]
    assert run("getcap", "-n", str(root / "hostroot")).split()[1:] == ["cap_chown=ep"]
    assert parse_capability(os.getxattr(root / "hostroot", "security.capability")).revision == 2
    assert report.capabilities == 4


@pytest.mark.skipif(need_tool("setfacl") is not None, reason=str(need_tool("setfacl")))
def test_every_named_acl_entry_is_shifted(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    f = root / "d" / "f"
    f.write_text("x")
    users, groups = [1000, 1001, 1002, 33, 0], [2000, 2001, 2002, 5]
    spec = ",".join([f"u:{u}:rw" for u in users] + [f"g:{g}:r" for g in groups])
    run("setfacl", "-m", spec, str(f))
    run("setfacl", "-m", spec, str(root / "d"))
    run("setfacl", "-d", "-m", spec + ",u:1003:x", str(root / "d"))
    report = shift_tree(root, PAIR, workers=1)
    assert report.acls == 3
    for path, attr, extra in ((f, "system.posix_acl_access", []),
                              (root / "d", "system.posix_acl_access", []),
                              (root / "d", "system.posix_acl_default", [1003])):
        u, g = parse_acl(os.getxattr(path, attr)).named_ids()
        assert sorted(u) == sorted(100000 + x for x in users + extra)
        assert sorted(g) == sorted(300000 + x for x in groups)
    text = run("getfacl", "-n", "-p", str(f))
    for uid in users:
        assert f"user:{100000 + uid}:rw-" in text
    for gid in groups:
        assert f"group:{300000 + gid}:r--" in text
    assert "user:1000:" not in text


def test_already_correct_inodes_are_not_touched(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    for i in range(10):
        (root / f"f{i}").write_text("x")
        os.chown(root / f"f{i}", i, i)
    # IDs 0-4 map to themselves, 5-9 move.
    pair = IDMapPair.both(IDMap([Extent(0, 0, 5), Extent(5, 100005, 65531)]))
    ctimes = {i: os.lstat(root / f"f{i}").st_ctime_ns for i in range(10)}
    report = shift_tree(root, pair, workers=1)
    for i in range(10):
        st = os.lstat(root / f"f{i}")
        assert st.st_uid == (i if i < 5 else 100000 + i)
        assert (st.st_ctime_ns == ctimes[i]) == (i < 5)
    assert (report.changed, report.unchanged) == (5, 6)


def test_no_recursion_limit_10000_levels() -> None:
    # Not under tmp_path: shutil.rmtree (and so pytest's cleanup of old tmp_path
    # directories, in any later session) recurses and fails on it; rm(1) does not.
    top = Path(tempfile.mkdtemp(prefix="userns-deep-"))
    try:
        root = top / "t"
        root.mkdir()
        _deep_tree_shift(root)
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)
    assert not top.exists()


def _deep_tree_shift(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(10_000):
            os.mkdir("d", dir_fd=fd)
            new = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = new
        os.mknod("leaf", dir_fd=fd)
    finally:
        os.close(fd)
    report = shift_tree(root, PAIR, workers=2)
    assert report.entries == 10_002 and report.changed == 10_002
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(10_000):
            assert os.fstat(fd).st_uid == 100000
            new = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = new
        assert os.stat("leaf", dir_fd=fd, follow_symlinks=False).st_gid == 300000
    finally:
        os.close(fd)


def test_more_entries_than_the_open_file_limit(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    for i in range(300):
        d = root / f"d{i}" / "x" / "y"
        d.mkdir(parents=True)
        (d / "f").write_text("x")
    code = (
        "import resource, sys\n"
        "from userns import IDMap, IDMapPair\n"
        "from userns.shift import shift_tree\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))\n"
        "r = shift_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, 100000, 65536)), "
        "workers=2)\n"
        "print(r.entries, r.changed, len(r.errors))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(root)], check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["1201", "1201", "0"]
    assert all(os.lstat(p).st_uid == 100000 for p in root.rglob("*"))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 24  # ours was not touched


@contextlib.contextmanager
def tmpfs(path: Path, *options: str) -> Iterator[Path]:
    path.mkdir()
    opts = ",".join(("size=4m", *options))
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _can_mount(tmp_path: Path) -> str | None:
    probe = tmp_path / "probe"
    try:
        with tmpfs(probe):
            return None
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        return f"cannot mount a tmpfs here: {exc}"


def test_mount_points_are_not_crossed_unless_asked(tree: str, tmp_path: Path) -> None:
    if (why := _can_mount(tmp_path)) is not None:
        pytest.skip(why)
    with tmpfs(Path(tree) / "mnt") as mnt:
        (mnt / "inner").write_text("x")
        os.chown(mnt / "inner", 7, 7)
        report = shift_tree(tree, PAIR, workers=2)
        assert report.skipped_mounts == (f"{tree}/mnt",)
        assert os.lstat(mnt / "inner").st_uid == 7
        assert os.lstat(f"{tree}/plain").st_uid == 100001
        unshift_tree(tree, PAIR, workers=1)
        report = shift_tree(tree, PAIR, workers=1, cross_mounts=True)
        assert report.skipped_mounts == ()
        assert os.lstat(mnt / "inner").st_uid == 100007


@pytest.mark.parametrize("policy", ["error", "skip"])  # preflight, and streaming
def test_permission_errors_are_reported_per_path_and_resume(tree: str, tmp_path: Path,
                                                            policy: Policy) -> None:
    if (why := _can_mount(tmp_path)) is not None:
        pytest.skip(why)
    before = snapshot(tree)
    ro = Path(tree) / "ro"
    with tmpfs(ro) as mnt:
        for i in range(3):
            (mnt / f"f{i}").write_text("x")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(ShiftError) as info:
            shift_tree(tree, PAIR, workers=1, cross_mounts=True, policy=policy)
        assert info.value.report.errors[0].reason == "EROFS"
        assert not info.value.report.complete
        assert isinstance(info.value, OSError)
        report = shift_tree(tree, PAIR, workers=1, cross_mounts=True, on_error="continue",
                             policy=policy)
        assert {e.reason for e in report.errors} == {"EROFS"}
        # the mount point itself is on the read-only tmpfs too
        assert sorted(e.path for e in report.errors) == [str(mnt)] + [
            f"{mnt}/f{i}" for i in range(3)]
        assert not report.complete and report.resumed
        assert os.stat(tree).st_uid == 0  # the root is changed last, only when complete
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        report = shift_tree(tree, PAIR, workers=2, cross_mounts=True, policy=policy)
        assert report.complete and report.resumed
        assert all(os.lstat(mnt / f"f{i}").st_uid == 100000 for i in range(3))
        after = snapshot(tree)
        for rel, row in before.items():
            assert after[rel] == expected({rel: row}, PAIR)[rel]


def test_policy_error_changes_nothing(tree: str) -> None:
    os.chown(f"{tree}/plain", 70000, 2)
    os.chown(f"{tree}/a", 1, 80000)
    before = snapshot(tree, inodes=True)
    ctimes = {p: os.lstat(p).st_ctime_ns for p in Path(tree).rglob("*")}
    with pytest.raises(UnmappedOwnersError) as info:
        shift_tree(tree, PAIR, workers=2)
    assert {(u.kind, u.id) for u in info.value.report.unmapped} == {("uid", 70000),
                                                                    ("gid", 80000)}
    assert info.value.report.unmapped[0].examples
    assert snapshot(tree, inodes=True) == before
    assert {p: os.lstat(p).st_ctime_ns for p in Path(tree).rglob("*")} == ctimes
    assert not os.path.exists(default_journal_path(tree))


def test_policy_skip_and_overflow(tree: str, tmp_path: Path) -> None:
    os.chown(f"{tree}/plain", 70000, 2)
    report = shift_tree(tree, PAIR, workers=1, policy="skip")
    assert os.lstat(f"{tree}/plain")[4:6] == (70000, 300002)
    assert [(u.kind, u.id, u.count) for u in report.unmapped] == [("uid", 70000, 1)]
    other = tmp_path / "o"
    build_tree(str(other))
    os.chown(other / "plain", 70000, 2)
    shift_tree(other, PAIR, workers=1, policy="overflow", overflow=(65534, 65533))
    assert os.lstat(other / "plain")[4:6] == (65534, 300002)


def test_unmapped_owner_counted_once_per_inode_with_xattrs(tmp_path: Path) -> None:
    # A file with an ACL or a setuid mode goes through the slow path too; its owner must
    # still be counted once, with one example per path.
    for tool in ("setfacl",):
        if need_tool(tool):
            pytest.skip(str(need_tool(tool)))
    root = tmp_path / "t"
    root.mkdir()
    for name in ("a", "b", "c"):
        (root / name).write_text(name)
    for p in (root, *root.iterdir()):
        os.chown(p, 70000, 70000)
    subprocess.run(["setfacl", "-m", "u:33:r", str(root / "a")], check=True)
    os.chmod(root / "b", 0o4755)
    report = shift_tree(root, PAIR, workers=1, policy="skip", dry_run=True)
    got = {(u.kind, u.id): (u.count, u.examples) for u in report.unmapped}
    assert got[("uid", 70000)][0] == 4  # the root and three files, each once
    assert got[("gid", 70000)][0] == 4
    examples = got[("uid", 70000)][1]
    assert len(examples) == len(set(examples))


def test_dry_run_changes_nothing_and_reports_the_plan(tree: str) -> None:
    before = snapshot(tree, inodes=True)
    ctimes = {p: os.lstat(p).st_ctime_ns for p in [Path(tree), *Path(tree).rglob("*")]}
    report = shift_tree(tree, PAIR, dry_run=True)
    assert snapshot(tree, inodes=True) == before
    assert {p: os.lstat(p).st_ctime_ns for p in ctimes} == ctimes
    assert report.dry_run and report.changed == 0
    assert not os.path.exists(default_journal_path(tree))
    plan = {(c.kind, c.old, c.new): c.count for c in report.owner_changes}
    assert plan["uid", 1, 100001] == sum(1 for v in before.values() if v[1] == 1)
    inodes = len({v[-1] for v in snapshot(tree, inodes=True).values()})
    for kind in ("uid", "gid"):  # every inode moves, once
        assert sum(c for (k, _, _), c in plan.items() if k == kind) == inodes
    real = shift_tree(tree, PAIR, workers=1)
    assert real.owner_changes == report.owner_changes


def test_progress_callback(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    for i in range(9000):
        (root / f"f{i}").touch()
    seen: list[Progress] = []
    shift_tree(root, PAIR, workers=1, progress=seen.append)
    scans = [p.done for p in seen if p.phase == "scan"]
    applies = [p for p in seen if p.phase == "apply"]
    assert scans == sorted(scans) and scans[0] == 4096 and scans[-1] == 9000
    # the apply total is the walk's; the root is changed after it
    assert applies and all(p.total == 9000 for p in applies)
    assert applies[-1].done == 9000 and applies[-1].fraction == 1.0
    for workers in (1, 2):
        seen.clear()
        report = unshift_tree(root, PAIR, workers=workers, progress=seen.append,
                              policy="skip")
        assert report.changed == 9001
        assert max(p.done for p in seen if p.phase == "scan") == 9000
        assert max(p.done for p in seen if p.phase == "apply") == 9000
        assert all(p.total is None for p in seen)  # streaming: no preflight, no total
        shift_tree(root, PAIR, workers=workers)


def test_report_is_json_ready(tree: str) -> None:
    import json

    report = shift_tree(tree, PAIR, workers=2)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["changed"] == report.changed
    assert data["owner_changes"][0]["kind"] in ("uid", "gid")


def test_audit(tree: str) -> None:
    a = audit_tree(tree, PAIR)
    assert a.state == "unshifted" and a.outside == ()
    shift_tree(tree, PAIR, workers=1)
    os.chown(f"{tree}/plain", 42, 424242)
    a = audit_tree(tree, PAIR)
    assert a.state == "mixed"
    assert [(o.kind, o.id, o.examples) for o in a.outside] == [
        ("gid", 424242, (f"{tree}/plain",))]
    assert a.uids[42] == 1 and sum(a.uids.values()) == a.entries


def test_journal_mismatch_and_busy(tree: str) -> None:
    path = default_journal_path(tree)
    jr = Journal.open(path, {"root": [0, 0]})
    try:
        with pytest.raises(JournalError) as info:
            shift_tree(tree, PAIR, workers=1)
        assert info.value.reason == "busy"
    finally:
        jr.close()
    with pytest.raises(JournalError) as info:
        shift_tree(tree, PAIR, workers=1)
    assert info.value.reason == "journal-mismatch"


def _attack(root: Path, outside: Path, stop: threading.Event, hits: list[int]) -> None:
    """Swap directories (and files) of ``root`` for symlinks into ``outside``, over and over."""
    n = 0
    while not stop.is_set():
        i = n % 20
        d, hold = root / f"d{i}", root / f"held{i}"
        with contextlib.suppress(OSError):
            os.rename(d, hold)
            os.symlink(outside, d)
            hits[0] += 1
            os.unlink(d)
            os.rename(hold, d)
        f, fhold = root / f"d{(i + 7) % 20}" / "f0", root / "fheld"
        with contextlib.suppress(OSError):
            os.rename(f, fhold)
            os.symlink(outside / "o0", f)
            hits[0] += 1
            os.unlink(f)
            os.rename(fhold, f)
        n += 1


def test_symlink_swap_race_never_leaves_the_tree(tmp_path: Path) -> None:
    """An attacker thread swaps directories for symlinks to the outside during the walk."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(50):
        (outside / f"o{i}").write_text("keep")
    before = snapshot(str(outside), inodes=True)
    rounds, hits, refused = 40, [0], 0
    for round_ in range(rounds):
        root = tmp_path / f"t{round_}"
        for i in range(20):
            d = root / f"d{i}"
            d.mkdir(parents=True)
            for j in range(20):
                (d / f"f{j}").touch()
        stop = threading.Event()
        attacker = threading.Thread(target=_attack, args=(root, outside, stop, hits))
        attacker.start()
        try:
            report = shift_tree(root, PAIR, workers=1 + round_ % 2, on_error="continue",
                                journal=tmp_path / f"j{round_}")
            refused += len(report.errors)
        except UnmappedOwnersError:
            pass  # the attacker's symlink (owned by 0) came and went: fine
        finally:
            stop.set()
            attacker.join()
        assert snapshot(str(outside), inodes=True) == before
        # ... and inside, nothing was shifted twice
        assert all(os.lstat(p).st_uid in (0, 100000) for p in root.rglob("*"))
    print(f"\nrace: {rounds} rounds, {hits[0]} swaps, {refused} paths refused")
    assert hits[0] > rounds  # the attacker really raced the walk ...
    assert refused > 0  # ... and the walk saw swapped names and refused them


def _syscalls(root: Path, tmp: Path) -> Counter[str]:
    out = tmp / f"strace-{root.name}.txt"
    code = ("import sys\nfrom userns import IDMap, IDMapPair\nfrom userns.shift import shift_tree\n"
            "shift_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, 100000, 65536)), "
            "workers=1, policy='skip', durable=False)\n")
    subprocess.run(["strace", "-f", "-qq", "-o", str(out), sys.executable, "-c", code,
                    str(root)], check=True)
    names: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        name = line.split("(", 1)[0].split()[-1] if "(" in line else "?"
        names[name] += 1
    return names


@pytest.mark.skipif(need_tool("strace") is not None, reason=str(need_tool("strace")))
def test_at_most_three_syscalls_per_plain_file(tmp_path: Path) -> None:
    counts = {}
    for n in (1000, 3000):
        root = tmp_path / f"t{n}"
        for d in range(10):
            (root / f"d{d}").mkdir(parents=True)
            for i in range(n // 10):
                (root / f"d{d}" / f"f{i}").touch()
        counts[n] = _syscalls(root, tmp_path)
    extra = counts[3000] - counts[1000]
    per_file = sum(extra.values()) / 2000
    # fstatat, listxattrat and fchownat per file; getdents64 amortized
    assert per_file <= 3.05, extra.most_common(8)
    assert extra["fchownat"] == 2000 and extra["newfstatat"] == 2000


def test_the_same_shift_twice_is_a_noop(tree: str) -> None:
    shift_tree(tree, OVERLAP, workers=1)
    once = snapshot(tree)
    again = shift_tree(tree, OVERLAP, workers=2)  # the mark says done: a verifying walk
    assert again.verified and again.complete and again.changed == 0
    assert again.entries == 42 and not again.already_complete
    assert snapshot(tree) == once  # not 5 -> 1005 -> 2005
    trusted = shift_tree(tree, OVERLAP, trust_mark=True)
    assert trusted.already_complete and not trusted.verified and trusted.entries == 0
    plan = shift_tree(tree, OVERLAP, dry_run=True)
    assert plan.verified and plan.owner_changes == ()
    assert shift_tree(tree, OVERLAP, dry_run=True, trust_mark=True).already_complete
    unshift_tree(tree, OVERLAP, workers=1)  # a different shift: runs
    assert snapshot(tree)[b"plain"][1:3] == (1, 2)


@pytest.mark.skipif(need_tool("chattr") is not None, reason=str(need_tool("chattr")))
def test_immutable_file_is_reported_and_the_rest_continues(tree: str) -> None:
    target = Path(tree) / "a" / "f0"
    done = subprocess.run(["chattr", "+i", str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {done.stderr!r}")
    try:
        report = shift_tree(tree, PAIR, workers=2, on_error="continue")
        assert [(e.path, e.reason, e.operation) for e in report.errors] == [
            (str(target), "EPERM", "chown")]
        assert not report.complete
        assert os.lstat(target).st_uid == 0
        assert os.lstat(f"{tree}/plain").st_uid == 100001
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    report = shift_tree(tree, PAIR, workers=1)
    assert report.resumed and report.complete
    assert os.lstat(target).st_uid == 100000


def test_the_root_must_be_a_real_directory(tree: str, tmp_path: Path) -> None:
    os.symlink(tree, tmp_path / "via-link")
    for bad in (tmp_path / "via-link", Path(tree) / "plain", tmp_path / "missing"):
        with pytest.raises(ShiftError) as info:
            shift_tree(bad, PAIR, workers=1)
        assert info.value.reason == "bad-root"
        with pytest.raises(ShiftError) as info:
            audit_tree(bad, PAIR)
        assert info.value.reason == "bad-root"
    assert os.stat(tree).st_uid == 0


class _Inotify:
    """Just enough inotify (through ctypes) to see every open in some directories."""

    IN_OPEN, IN_ACCESS, IN_MODIFY, IN_ISDIR = 0x20, 0x01, 0x02, 0x40000000

    def __init__(self) -> None:
        import ctypes

        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        self.watches: dict[int, bytes] = {}

    def watch(self, path: bytes) -> None:
        wd = self.libc.inotify_add_watch(self.fd, path,
                                         self.IN_OPEN | self.IN_ACCESS | self.IN_MODIFY)
        assert wd >= 0
        self.watches[wd] = path

    def events(self) -> list[tuple[bytes, int]]:
        import struct

        out: list[tuple[bytes, int]] = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return out
            pos = 0
            while pos < len(data):
                wd, mask, _, size = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16: pos + 16 + size].rstrip(b"\0")
                out.append((os.path.join(self.watches.get(wd, b"?"), name), mask))
                pos += 16 + size

    def close(self) -> None:
        os.close(self.fd)


@pytest.mark.skipif(need_tool("setcap") is not None or need_tool("setfacl") is not None,
                    reason="needs setcap and setfacl")
def test_no_file_is_opened_for_reading_or_writing(tree: str) -> None:
    run("setcap", "cap_net_raw+ep", f"{tree}/plain")
    run("setfacl", "-m", "u:5:r,g:6:r", f"{tree}/empty", f"{tree}/fifo")
    ino = _Inotify()
    try:
        for dirpath, _, _ in os.walk(os.fsencode(tree)):
            ino.watch(dirpath)
        ino.events()
        report = shift_tree(tree, PAIR, workers=2)
        assert report.capabilities == 1 and report.acls == 2
        events = ino.events()
    finally:
        ino.close()
    assert events, "inotify saw nothing: the watch does not work here"
    # Directories are opened (to list them); no other inode is opened, read or written.
    others = [(p, hex(m)) for p, m in events if not m & _Inotify.IN_ISDIR]
    assert others == []
    assert any(m & _Inotify.IN_OPEN for _, m in events)  # the directories, listed
    assert not any(m & _Inotify.IN_MODIFY for _, m in events)


@pytest.mark.skipif(need_tool("chattr") is not None, reason=str(need_tool("chattr")))
def test_a_journal_inside_the_tree_is_left_alone(tree: str) -> None:
    journal = Path(tree) / ".shift-journal"
    stuck = Path(tree) / "plain"
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode:
        pytest.skip("this filesystem has no immutable flag")
    try:
        report = shift_tree(tree, OVERLAP, workers=2, journal=journal, on_error="continue")
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert not report.complete and len(report.errors) == 1
    # the journal (kept: the shift is incomplete) was not shifted with the tree
    assert {os.lstat(p).st_uid for p in [journal, *journal.iterdir()]} == {0}
    report = shift_tree(tree, OVERLAP, workers=1, journal=journal)
    assert report.complete and report.resumed and not journal.exists()
    assert all(row[1] >= 1000 for row in snapshot(tree).values())


@pytest.mark.skipif(need_tool("setfacl") is not None, reason=str(need_tool("setfacl")))
def test_a_long_xattr_list_still_finds_the_acl(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    f = root / "f"
    f.write_text("x")
    try:
        for i in range(40):  # about 1 KiB of names: more than the first listxattrat asks
            os.setxattr(f, f"user.padding-attribute-{i:03d}", b"v")
    except OSError as exc:
        pytest.skip(f"no user.* attributes here: {exc}")
    run("setfacl", "-m", "u:7:r", str(f))
    assert len(b"\0".join(n.encode() for n in os.listxattr(f))) > 1000
    shift_tree(root, PAIR, workers=1)
    assert parse_acl(os.getxattr(f, "system.posix_acl_access")).named_ids() == ([100007], [])
    assert os.getxattr(f, "user.padding-attribute-039") == b"v"


@pytest.mark.skipif(need_tool("chattr") is not None, reason=str(need_tool("chattr")))
def test_dry_run_of_an_interrupted_shift_plans_only_what_is_left(tree: str) -> None:
    stuck = Path(tree) / "plain"  # uid 1, gid 2
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode:
        pytest.skip("this filesystem has no immutable flag")
    try:
        first = shift_tree(tree, OVERLAP, workers=2, on_error="continue")
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert not first.complete
    plan = shift_tree(tree, OVERLAP, dry_run=True)
    assert plan.resumed
    # the stuck file and the root (changed last) are all that is left, nothing twice
    assert {(c.kind, c.old, c.new, c.count) for c in plan.owner_changes} == {
        ("uid", 1, 1001, 1), ("gid", 2, 1002, 1), ("uid", 0, 1000, 1), ("gid", 0, 1000, 1)}
    done = shift_tree(tree, OVERLAP, workers=1)
    assert done.owner_changes == plan.owner_changes


class _MisleadingEntry:
    """A directory entry whose d_ino is not the inode's (as overlayfs can give)."""

    def __init__(self, entry: os.DirEntry[str]) -> None:
        self.entry = entry
        self.name = entry.name

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self.entry.is_dir(follow_symlinks=follow_symlinks)

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return self.entry.stat(follow_symlinks=follow_symlinks)

    def inode(self) -> int:
        return self.entry.inode() + (1 if self.name == "hl3" else 0)  # one of three links


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_misleading_entry_inode_numbers_fall_back_to_one_process(
        tree: str, monkeypatch: pytest.MonkeyPatch, policy: Policy) -> None:
    real = os.scandir

    @contextlib.contextmanager
    def scandir(fd: int) -> Iterator[list[_MisleadingEntry]]:
        with real(fd) as it:
            yield [_MisleadingEntry(e) for e in it]

    before = snapshot(tree)
    monkeypatch.setattr(os, "scandir", scandir)  # the forked workers inherit it
    report = shift_tree(tree, OVERLAP, workers=2, policy=policy)
    monkeypatch.undo()
    assert snapshot(tree) == expected(before, OVERLAP)  # hl shifted once: 10 -> 1010
    assert report.complete and report.workers == 1 and report.resumed


def test_on_overlayfs_only_changed_inodes_are_copied_up(tmp_path: Path) -> None:
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    for i in range(6):
        (lower / f"f{i}").write_text(f"{i}")
        os.chown(lower / f"f{i}", i, i)  # f0-f2 map to themselves below, f3-f5 move
    os.chown(lower, 0, 0)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount an overlayfs here")
    try:
        pair = IDMapPair.both(IDMap([Extent(0, 0, 3), Extent(3, 100003, 65533)]))
        report = shift_tree(merged, pair, workers=2)
        assert report.complete and report.changed == 3  # f3-f5; the root maps to itself
        assert sorted(p.name for p in upper.iterdir()) == ["f3", "f4", "f5"]
        assert [os.lstat(merged / f"f{i}").st_uid for i in range(6)] == [
            0, 1, 2, 100003, 100004, 100005]
        assert (merged / "f4").read_text() == "4"
    finally:
        subprocess.run(["umount", str(merged)], check=True)


@pytest.mark.skipif(need_tool("unshare") is not None, reason=str(need_tool("unshare")))
def test_without_proc_nothing_is_changed(tree: str) -> None:
    code = ("import sys\nfrom userns import IDMap, IDMapPair\n"
            "from userns.shift import ShiftError, shift_tree\n"
            "try:\n    shift_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, 1000, 65536)))\n"
            "except ShiftError as e:\n    print(e.reason)\n")
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           'umount -l /proc && exec "$0" -c "$1" "$2"', sys.executable,
                           code, tree], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot hide /proc in a mount namespace here: {done.stderr[-200:]}")
    assert done.stdout.split() == ["no-proc"]
    assert os.lstat(f"{tree}/plain").st_uid == 1
