"""userns.mount against the running kernel: idmapped mounts of tmpfs, ext4 on a loop device
and overlayfs, refusals with their reasons, recursive mounts, and prepare_volume's two
strategies compared from inside a remapped user namespace.

Every test that mounts runs in a forked child that first enters a private mount namespace
(``unshare(CLONE_NEWNS)``, then ``/`` made recursively private) and works on a tmpfs
mounted over ``/mnt`` there: nothing reaches the host's mount table, and the paths are
searchable from inside a remapped namespace (pytest's own temporary directory is under a
0700 directory that a remapped root cannot enter).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.errors import MountError, UsernsError
from userns.formats import parse_xmount
from userns.kernel import overflow_ids, run_in_userns
from userns.mount import (
    REASONS,
    MapNamespace,
    Probe,
    clear_probe_cache,
    idmap_in_place,
    idmapped_mount,
    is_idmapped,
    mount_info,
    prepare_volume,
    probe,
    probe_kernel,
    read_idmap,
)

from .mountns import CLONE_NEWNS, kernel_at_least, private_mountns

PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 200000, 65536))
UNMAPPED = 70000  # on disk, outside PAIR's container side
BASE = Path("/mnt")
_libc = ctypes.CDLL(None, use_errno=True)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
needs_idmap = pytest.mark.skipif(not kernel_at_least(5, 12),
                                 reason="idmapped mounts need Linux 5.12")
needs_tmpfs_idmap = pytest.mark.skipif(not kernel_at_least(6, 3),
                                       reason="tmpfs takes idmapped mounts from Linux 6.3")
needs_statmount_maps = pytest.mark.skipif(
    not kernel_at_least(6, 15), reason="statmount reports a mount's maps from Linux 6.15")
pytestmark = [needs_root, needs_idmap]


def _fresh_base() -> None:
    _mount_tmpfs(BASE)
    clear_probe_cache()


#: The test body runs in a forked child, in a private mount namespace with a fresh tmpfs
#: at ``BASE``; its failure (or skip) comes back to the parent as text.
in_private_mountns = private_mountns(_fresh_base)


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _mount_tmpfs(path: Path, *, mode: str = "0755") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", str(path))
    return path


def _mount_ext4(path: Path) -> Path:
    for tool in ("mkfs.ext4", "losetup"):
        if shutil.which(tool) is None and os.environ.get("CI") != "true":
            pytest.skip(f"{tool} is not installed (e2fsprogs, mount)")
    img = BASE / "ext4.img"
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    _run("mkfs.ext4", "-q", "-F", str(img))
    path.mkdir(parents=True, exist_ok=True)
    _run("mount", "-o", "loop", str(img), str(path))
    return path


def _populate(root: Path) -> None:
    """On disk: 0, 1000 and an unmapped ID; setuid and setgid modes; a capability; an
    ACL naming a user and a group. The root is world-writable (sticky), so that an
    unmapped writer meets the mount's refusal rather than the mode's."""
    os.chown(root, 0, 0)
    os.chmod(root, 0o1777)
    for name, owner in (("root", 0), ("user", 1000), ("stray", UNMAPPED)):
        (root / name).write_text(name)
        os.chown(root / name, owner, owner)
    (root / "suid").write_text("#!/bin/sh\n")
    os.chown(root / "suid", 1000, 1000)
    os.chmod(root / "suid", 0o6755)
    (root / "cap").write_text("cap")
    _run("setcap", "cap_net_raw+ep", str(root / "cap"))
    (root / "acl").write_text("acl")
    _run("setfacl", "-m", "u:1000:r,g:1000:rw", str(root / "acl"))


def _snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    out = {}
    for p in [*sorted(root.rglob("*")), root]:
        st = p.lstat()
        xattrs = tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False))
                              for n in os.listxattr(p, follow_symlinks=False)))
        # The root's ctime moves with the test's own create and unlink through the mount.
        ctime = st.st_ctime_ns if p != root else None
        out[str(p.relative_to(root))] = (st.st_uid, st.st_gid, st.st_mode, ctime, xattrs)
    return out


def _cap_rootid(path: Path) -> int | None:
    """The v3 ``security.capability`` root uid, or None for a v2 value (root of the
    caller's own namespace)."""
    raw = os.getxattr(path, "security.capability")
    magic = struct.unpack_from("<I", raw)[0]
    if magic >> 24 == 3:
        return int(struct.unpack_from("<I", raw, 20)[0])
    return None


def _acl_ids(path: Path) -> dict[str, int]:
    raw = os.getxattr(path, "system.posix_acl_access")
    out = {}
    for off in range(4, len(raw), 8):
        tag, _perm, ident = struct.unpack_from("<HHI", raw, off)
        if tag == 0x02:
            out["user"] = ident
        elif tag == 0x08:
            out["group"] = ident
    return out


def _write_as(uid: int, gid: int, path: Path) -> int:
    """Create ``path`` in a child running as host ``uid``/``gid``; 0 or the errno."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 255
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            path.write_text("x")
            code = 0
        except OSError as e:
            code = e.errno or 254
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _check_translated(src: Path, dst: Path) -> None:
    ou, og = overflow_ids()
    before = _snapshot(src)
    idmapped_mount(src, dst, PAIR)
    seen = {n: (os.stat(dst / n).st_uid, os.stat(dst / n).st_gid)
            for n in ("root", "user", "stray")}
    assert seen == {
        "root": (PAIR.uid.to_host(0), PAIR.gid.to_host(0)),
        "user": (PAIR.uid.to_host(1000), PAIR.gid.to_host(1000)),
        "stray": (ou, og),
    }
    assert os.stat(dst / "suid").st_mode & 0o7777 == 0o6755
    assert _cap_rootid(dst / "cap") == PAIR.uid.to_host(0)
    assert _cap_rootid(src / "cap") is None  # v2 on disk: root of the initial namespace
    assert _acl_ids(dst / "acl") == {"user": PAIR.uid.to_host(1000),
                                     "group": PAIR.gid.to_host(1000)}
    assert _acl_ids(src / "acl") == {"user": 1000, "group": 1000}
    # A file made through the mount by host IDs to_host(0) is stored as 0; a host ID
    # outside the map cannot own a file there (EOVERFLOW).
    assert _write_as(PAIR.uid.to_host(0), PAIR.gid.to_host(0), dst / "made") == 0
    assert _write_as(5000, 5000, dst / "refused") == errno.EOVERFLOW
    assert (os.stat(src / "made").st_uid, os.stat(src / "made").st_gid) == (0, 0)
    assert not (src / "refused").exists()
    os.unlink(src / "made")
    assert _snapshot(src) == before  # nothing on disk changed
    assert is_idmapped(dst) and not is_idmapped(src)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        line = next(ln for ln in f if f" {dst} " in ln)
    assert "idmapped" in line.split()[5].split(",")
    if kernel_at_least(6, 15):
        assert read_idmap(dst) == PAIR
    assert read_idmap(src) is None


# -- filesystems -------------------------------------------------------------------------


@needs_tmpfs_idmap
@in_private_mountns
def test_tmpfs_owners_modes_caps_acls_translated() -> None:
    src = _mount_tmpfs(BASE / "src")
    _populate(src)
    (BASE / "dst").mkdir()
    _check_translated(src, BASE / "dst")


@in_private_mountns
def test_ext4_on_a_loop_device_translated() -> None:
    src = _mount_ext4(BASE / "src")
    _populate(src)
    (BASE / "dst").mkdir()
    assert probe(src).ok, probe(src)
    _check_translated(src, BASE / "dst")


@needs_tmpfs_idmap
@in_private_mountns
def test_overlayfs_refused_itself_served_over_idmapped_layers() -> None:
    lower = _mount_tmpfs(BASE / "lower")
    (lower / "f").write_text("x")
    os.chown(lower / "f", 1000, 1000)
    up = _mount_tmpfs(BASE / "up")
    (up / "upper").mkdir()
    (up / "work").mkdir()
    merged = BASE / "merged"
    merged.mkdir()
    _run("mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={lower},upperdir={up}/upper,workdir={up}/work", str(merged))
    answer = probe(merged)
    # overlayfs has no FS_ALLOW_IDMAP: the overlay mount itself is refused ...
    assert (answer.ok, answer.reason, answer.fs_type) == (False, "fs-unsupported", "overlay")
    assert "layers" in answer.message
    if not kernel_at_least(5, 19):
        pytest.skip("overlayfs takes idmapped layers from Linux 5.19")
    # ... but takes idmapped layers (5.19+): idmap them, then mount the overlay on top.
    for name, src in (("ilower", lower), ("iup", up)):
        (BASE / name).mkdir()
        idmapped_mount(src, BASE / name, PAIR)
    over = BASE / "over"
    over.mkdir()
    _run("mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={BASE}/ilower,upperdir={BASE}/iup/upper,workdir={BASE}/iup/work",
         str(over))
    assert os.stat(over / "f").st_uid == PAIR.uid.to_host(1000)
    assert os.stat(lower / "f").st_uid == 1000
    # Mounted by host root, whom the layers' map does not cover: overlayfs cannot make its
    # work directory through the idmapped upper layer (EOVERFLOW) and comes up read-only.
    assert _write_as(PAIR.uid.to_host(0), PAIR.gid.to_host(0), over / "new") == errno.EROFS


# -- refusals ----------------------------------------------------------------------------


@in_private_mountns
def test_procfs_refused_with_its_reason() -> None:
    answer = probe("/proc")
    assert (answer.ok, answer.reason, answer.fs_type) == (False, "fs-unsupported", "proc")
    assert "procfs" in answer.message and "strategy shift" in answer.message
    dst = BASE / "dst"
    dst.mkdir()
    with pytest.raises(MountError) as info:
        idmapped_mount("/proc", dst, PAIR)
    assert info.value.reason == "fs-unsupported" and info.value.errno == 22
    assert info.value.step == "mount_setattr"
    assert mount_info(dst).mount_point == str(BASE)  # nothing was attached
    with pytest.raises(MountError) as info:
        prepare_volume("/proc", PAIR, strategy="idmap", to=dst)
    assert info.value.reason == "fs-unsupported"


def _without_open_tree_attr() -> None:
    """Make this process see a kernel before 6.15 (open_tree_attr gives ENOSYS)."""
    import platform

    import userns.mount as m

    m.SYSCALLS[platform.machine()]["open_tree_attr"] = 100_000  # no such system call


@needs_tmpfs_idmap
@in_private_mountns
def test_already_idmapped_refused_without_open_tree_attr() -> None:
    _without_open_tree_attr()
    src = _mount_tmpfs(BASE / "src")
    (BASE / "once").mkdir()
    (BASE / "twice").mkdir()
    idmapped_mount(src, BASE / "once", PAIR)
    answer = probe(BASE / "once")
    assert (answer.ok, answer.reason) == (False, "already-idmapped")
    with pytest.raises(MountError) as info:
        idmapped_mount(BASE / "once", BASE / "twice", PAIR)
    assert info.value.reason == "already-idmapped" and info.value.errno == errno.EPERM
    assert not is_idmapped(BASE / "twice")


@needs_tmpfs_idmap
@in_private_mountns
def test_already_idmapped_gets_the_new_map_with_open_tree_attr() -> None:
    if not kernel_at_least(6, 15):
        pytest.skip("open_tree_attr replaces a copy's idmap from Linux 6.15")
    src = _mount_tmpfs(BASE / "src")
    (src / "f").write_text("x")
    os.chown(src / "f", 5, 6)
    (BASE / "once").mkdir()
    (BASE / "twice").mkdir()
    idmapped_mount(src, BASE / "once", PAIR)
    answer = probe(BASE / "once")
    assert answer.ok and "idmapped already" in answer.message, answer
    other = IDMapPair(IDMap.single(0, 300000, 65536), IDMap.single(0, 400000, 65536))
    idmapped_mount(BASE / "once", BASE / "twice", other)
    st = os.stat(BASE / "twice" / "f")
    # The new map replaces the old one, relative to the IDs on disk (no composition).
    assert (st.st_uid, st.st_gid) == (300005, 400006)
    assert os.stat(BASE / "once" / "f").st_uid == PAIR.uid.to_host(5)
    assert read_idmap(BASE / "twice") == other


@needs_tmpfs_idmap
@in_private_mountns
def test_not_permitted_without_cap_sys_admin() -> None:
    src = _mount_tmpfs(BASE / "src")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            os.write(w, pickle.dumps(probe(src)))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        answer = pickle.loads(f.read())
    os.waitpid(pid, 0)
    assert (answer.ok, answer.reason) == (False, "not-permitted"), answer
    assert "CAP_SYS_ADMIN" in answer.message


def test_an_empty_map_is_refused_before_the_kernel() -> None:
    with pytest.raises(MountError) as info:
        MapNamespace(IDMapPair(IDMap.single(0, 100000, 10), IDMap()))
    assert info.value.reason == "unmapped-namespace"
    assert "gid map is empty" in info.value.message


def test_probe_of_a_missing_path() -> None:
    answer = probe("/nonexistent/userns-test")
    assert (answer.ok, answer.reason) == (False, "not-found")
    assert answer.reason in REASONS


def test_kernel_probe() -> None:
    assert probe_kernel().ok  # this kernel is at least 5.12 (pytestmark)


def test_probe_answers_are_values() -> None:
    a = Probe(path="/p", ok=False, reason="fs-unsupported", message="m", errno=22)
    assert a == pickle.loads(pickle.dumps(a))
    assert json.loads(json.dumps(a.to_dict()))["reason"] == "fs-unsupported"
    with pytest.raises(AttributeError):
        a.ok = True  # type: ignore[misc]


# -- recursive, in place, reuse ----------------------------------------------------------


@needs_tmpfs_idmap
@in_private_mountns
def test_recursive_mount_carries_a_nested_tmpfs() -> None:
    src = _mount_tmpfs(BASE / "src")
    (src / "top").write_text("t")
    os.chown(src / "top", 1000, 1000)
    sub = _mount_tmpfs(src / "sub")
    (sub / "inner").write_text("i")
    os.chown(sub / "inner", 33, 33)
    flat, deep = BASE / "flat", BASE / "deep"
    flat.mkdir()
    deep.mkdir()
    idmapped_mount(src, flat, PAIR)
    assert os.stat(flat / "top").st_uid == PAIR.uid.to_host(1000)
    assert not (flat / "sub" / "inner").exists()  # one level: the submount stays behind
    idmapped_mount(src, deep, PAIR, recursive=True)
    assert os.stat(deep / "sub" / "inner").st_uid == PAIR.uid.to_host(33)
    assert is_idmapped(deep / "sub") and is_idmapped(deep)
    assert os.stat(sub / "inner").st_uid == 33


@needs_tmpfs_idmap
@in_private_mountns
def test_in_place_and_namespace_reuse() -> None:
    a = _mount_tmpfs(BASE / "a")
    b = _mount_tmpfs(BASE / "b")
    for d in (a, b):
        (d / "f").write_text("x")
        os.chown(d / "f", 7, 7)
    with MapNamespace(PAIR) as ns:
        idmap_in_place(a, PAIR, namespace=ns)
        idmap_in_place(b, PAIR, namespace=ns)
        fd = ns.fd
    assert ns.fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)
    for d in (a, b):
        assert os.stat(d / "f").st_uid == PAIR.uid.to_host(7)
        assert is_idmapped(d)
    # One mount stays at each place: the original was detached, not stacked under.
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [ln.split()[4] for ln in f]
    assert points.count(str(a)) == 1 and points.count(str(b)) == 1


# -- X-mount.idmap direction -------------------------------------------------------------


@needs_tmpfs_idmap
@in_private_mountns
def test_xmount_idmap_first_field_is_on_disk() -> None:
    src = _mount_tmpfs(BASE / "src")
    (src / "f").write_text("x")
    os.chown(src / "f", 1000, 1001)
    dst = BASE / "dst"
    dst.mkdir()
    # mount(8): u:1000:5000:1 maps on-disk 1000 to 5000 seen through the mount.
    pair = parse_xmount("u:1000:5000:1 g:1001:6001:1")
    idmapped_mount(src, dst, pair)
    assert (os.stat(dst / "f").st_uid, os.stat(dst / "f").st_gid) == (5000, 6001)


# -- prepare_volume ----------------------------------------------------------------------


def _volume(root: Path) -> None:
    os.chown(root, 0, 0)
    for name, owner in (("etc", 0), ("www", 33), ("home", 1000)):
        (root / name).mkdir()
        (root / name / "f").write_text(name)
        os.chown(root / name, owner, owner)
        os.chown(root / name / "f", owner, owner + 1)
    os.chmod(root / "home" / "f", 0o4755)


def _seen_inside(where: Path) -> list[str]:
    """``stat`` of every entry, run in a user namespace with PAIR (as its root)."""
    names = sorted(str(p.relative_to(where)) for p in where.rglob("*"))
    out = BASE / f"stat-{where.name}.txt"
    with open(out, "wb") as f:
        code = run_in_userns(["/usr/bin/stat", "-c", "%n %u %g %a", *names], PAIR,
                             cwd=str(where), stdout=f.fileno(),
                             env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    assert code == 0, out.read_text()
    return out.read_text().splitlines()


@needs_tmpfs_idmap
@in_private_mountns
def test_prepare_volume_idmap_and_shift_look_the_same_inside() -> None:
    vols = _mount_tmpfs(BASE / "vols")
    a, b = vols / "a", vols / "b"
    for d in (a, b):
        d.mkdir()
        _volume(d)
    (BASE / "ra").mkdir()
    (BASE / "rb").mkdir()
    auto = prepare_volume(a, PAIR, to=BASE / "ra")
    assert auto.strategy == "idmap" and auto.probe.ok
    refused = Probe(path=str(b), ok=False, reason="fs-unsupported",
                    message="injected: this filesystem cannot be idmapped")
    shifted = prepare_volume(b, PAIR, to=BASE / "rb", probed=refused, workers=1)
    assert shifted.strategy == "shift" and "fs-unsupported" in shifted.why
    assert shifted.shift is not None and shifted.shift.complete
    # On disk: a unchanged, b shifted.
    assert os.stat(a / "www" / "f").st_uid == 33
    assert os.stat(b / "www" / "f").st_uid == PAIR.uid.to_host(33)
    inside_a, inside_b = _seen_inside(BASE / "ra"), _seen_inside(BASE / "rb")
    assert inside_a == inside_b
    assert "home/f 1000 1001 4755" in inside_a and "www 33 33 755" in inside_a
    assert json.loads(json.dumps(shifted.to_dict()))["strategy"] == "shift"


@in_private_mountns
def test_prepare_volume_auto_shifts_where_the_probe_says_no() -> None:
    # A real refusal: a volume on an idmapped mount cannot be idmapped again without
    # open_tree_attr (kept from this process, as on a kernel before 6.15).
    if not kernel_at_least(6, 3):
        pytest.skip("tmpfs takes idmapped mounts from Linux 6.3")
    _without_open_tree_attr()
    src = _mount_tmpfs(BASE / "src")
    (BASE / "view").mkdir()
    idmapped_mount(src, BASE / "view", IDMapPair.both(IDMap.single(0, 0, 65536 * 4)))
    (BASE / "view" / "f").write_text("x")
    os.chown(BASE / "view" / "f", 33, 33)
    result = prepare_volume(BASE / "view", PAIR, workers=1,
                            journal=str(BASE / "journal"))
    assert result.strategy == "shift" and result.probe.reason == "already-idmapped"
    assert os.stat(BASE / "view" / "f").st_uid == PAIR.uid.to_host(33)


# -- the CLI -----------------------------------------------------------------------------


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "userns", *argv], capture_output=True,
                          text=True)


def test_cli_probe_refuses_procfs() -> None:
    done = _cli("probe", "/proc", "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is False and doc["reason"] == "fs-unsupported"
    text = _cli("probe", "/proc")
    assert text.returncode == 1 and "fs-unsupported" in text.stdout + text.stderr
    assert "Traceback" not in text.stderr


@needs_tmpfs_idmap
@in_private_mountns
def test_cli_mount_probe_volume() -> None:
    src = _mount_tmpfs(BASE / "src")
    (src / "f").write_text("x")
    os.chown(src / "f", 1000, 1000)
    assert _cli("probe", str(src)).returncode == 0
    (BASE / "dst").mkdir()
    done = _cli("mount", str(src), str(BASE / "dst"), "-m", "0:100000:65536", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["idmapped"] is True
    assert os.stat(BASE / "dst" / "f").st_uid == 101000
    refused = _cli("mount", "/proc", str(BASE / "dst"), "-m", "0:100000:65536")
    assert refused.returncode == 1 and "fs-unsupported" in refused.stderr
    assert "Traceback" not in refused.stderr
    vol = _mount_tmpfs(BASE / "vol")
    (vol / "g").write_text("x")
    os.chown(vol / "g", 33, 33)
    (BASE / "served").mkdir()
    done = _cli("volume", str(vol), "-m", "0:100000:65536", "--to", str(BASE / "served"),
                "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["strategy"] == "idmap"
    assert os.stat(BASE / "served" / "g").st_uid == 100033


def test_mount_error_is_a_userns_error_and_an_oserror() -> None:
    err = MountError("m", reason="not-permitted", errno=1, path="/x", step="open_tree")
    assert isinstance(err, UsernsError) and isinstance(err, OSError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.reason, again.errno, again.path, again.step) == (
        "not-permitted", 1, "/x", "open_tree")


# -- the pages' examples -----------------------------------------------------------------


@pytest.mark.parametrize("page", ["reference/mount.md", "howto/volume-idmap-or-shift.md"])
def test_page_examples_run(page: str) -> None:
    import doctest
    import re

    text = (Path(__file__).resolve().parent.parent / "docs" / page).read_text()
    blocks = re.findall(r"^```pycon\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert blocks
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner()
    globs: dict[str, object] = {}
    for i, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, globs, f"{page}[{i}]", page, 0)
        report: list[str] = []
        result = runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs
        assert result.failed == 0, "".join(report)


def test_mount_info_without_a_statx_mount_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before Linux 5.8 statx has no mount ID: the device and the longest mount point decide.
    import userns.mount as m

    paths = ["/", "/proc", "/proc/self/fd", "/sys/kernel", str(Path(__file__).parent)]
    by_id = [m.mount_info(p) for p in paths]
    monkeypatch.setattr(m, "_statx_mount_id", lambda path, mask: None)
    assert [m.mount_info(p) for p in paths] == by_id


@needs_tmpfs_idmap
@in_private_mountns
def test_the_namespace_holder_is_forked_without_util_linux_unshare() -> None:
    setattr(shutil, "which", lambda *a, **k: None)  # noqa: B010  (in this child only)
    src = _mount_tmpfs(BASE / "src")
    (src / "f").write_text("x")
    os.chown(src / "f", 2, 3)
    (BASE / "dst").mkdir()
    idmapped_mount(src, BASE / "dst", PAIR)
    st = os.stat(BASE / "dst" / "f")
    assert (st.st_uid, st.st_gid) == (PAIR.uid.to_host(2), PAIR.gid.to_host(3))
    kids = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if kids.exists():  # every holder was reaped
        assert kids.read_text().strip() == ""


@needs_tmpfs_idmap
@in_private_mountns
def test_prepare_volume_auto_falls_back_when_a_submount_refuses() -> None:
    # The probe looks at the top mount (tmpfs: yes); the recursive idmap meets procfs below.
    vol = _mount_tmpfs(BASE / "vol")
    (vol / "f").write_text("x")
    os.chown(vol / "f", 33, 33)
    (vol / "proc").mkdir()
    _run("mount", "-t", "proc", "proc", str(vol / "proc"))
    (BASE / "dst").mkdir()
    result = prepare_volume(vol, PAIR, to=BASE / "dst", recursive=True, workers=1,
                            journal=str(BASE / "journal"))
    assert result.strategy == "shift", result
    assert result.probe.reason == "fs-unsupported" and "mount below" in result.probe.message
    assert os.stat(vol / "f").st_uid == PAIR.uid.to_host(33)
    assert os.stat(BASE / "dst" / "f").st_uid == PAIR.uid.to_host(33)
    assert result.shift is not None and str(vol / "proc") in result.shift.skipped_mounts
    with pytest.raises(MountError):
        prepare_volume(vol, PAIR, strategy="idmap", to=BASE / "dst", recursive=True)


# -- the benchmark still runs ------------------------------------------------------------


@needs_tmpfs_idmap
def test_benchmark_section_runs_small() -> None:
    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm tmpfs for the benchmark")
    sys.path.insert(0, str(bench))
    try:
        import mount as bench_mount  # benchmarks/mount.py

        sec = bench_mount.run(sizes=[300], rounds=1, calls=1)
    finally:
        sys.path.remove(str(bench))
        sys.modules.pop("mount", None)
    assert sec.unavailable is None, sec.unavailable
    assert [r.candidate for r in sec.rows] == [
        "idmapped mount (process)", "idmapped_mount() call", "idmapped_mount() call"]
    assert all(r.result is not None for r in sec.rows[:2])
    (headers, rows), = sec.extra_tables
    assert len(rows) == 1 and len(rows[0]) == len(headers)


@needs_tmpfs_idmap
@in_private_mountns
def test_nested_container_root_idmaps_its_own_filesystems_only() -> None:
    # Root of a user namespace (with a mount namespace of its own) holds CAP_SYS_ADMIN
    # there, but not over the host tmpfs's superblock, which the initial namespace owns.
    from userns._kernel_spawn import NamespaceChild, Report
    from userns.kernel import write_map

    src = _mount_tmpfs(BASE / "src")
    r, w = os.pipe()

    def inside(report: Report) -> Any:  # pragma: no cover - runs in the child
        try:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            if _libc.unshare(CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
            host_fs = probe(src)
            # A tmpfs mounted in here belongs to this namespace: it can be idmapped.
            if _libc.mount(b"tmpfs", os.fsencode(own), b"tmpfs", 0, None) != 0:
                raise OSError(ctypes.get_errno(), "mount tmpfs")
            os.write(w, pickle.dumps((host_fs, probe(own))))
        finally:
            os._exit(0)

    own = BASE / "own"
    own.mkdir()
    child = NamespaceChild(inside)
    write_map(child.pid, PAIR.uid, "uid")
    write_map(child.pid, PAIR.gid, "gid")
    child.go(until_exec=False)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    child.wait()
    answer, mine = pickle.loads(data)
    assert mine.ok and mine.fs_type == "tmpfs", mine
    assert (answer.ok, answer.reason) == (False, "not-permitted"), answer
    # The copy was made (its own mount namespace); the idmap is what was refused.
    assert answer.errno == errno.EPERM and "mount_setattr" in answer.message, answer
