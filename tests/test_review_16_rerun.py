"""Review of the verifying re-run's "settled" hard-linked inodes (an inode found right
when first seen is not looked at again after the walk) and of the worker processes'
listing by bare name: trees built to break them, checked against the kernel (``lstat``,
raw extended attributes, ``getfacl -n``), not against our own parsers.

- hard-linked inodes whose names are spread over far more directories than the
  directory-descriptor cache holds, walked with a tiny open-file limit so that
  descriptors are closed and their numbers reused all the time;
- inodes re-owned, given an ACL or a setuid owner back after a shift: the verifying
  re-run must repair each, whatever the state of its other names;
- one worker against two, for shifts (both maps disjoint and overlapping) and audits.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import stat
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.errors import OutsideLinksError
from userns.shift import audit_tree, shift_tree

from .test_review_16_xattr_names import acl_ids
from .test_shift_trees import need_root, need_tool, run

pytestmark = [
    pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
    pytest.mark.skipif(need_tool("setfacl") is not None, reason=str(need_tool("setfacl"))),
]

PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))
OVERLAP = IDMapPair(IDMap.single(0, 1000, 65536), IDMap.single(0, 1000, 65536))
MARK = "trusted.userns.shift"  # (its content names the run: differs between two runs)


def acl(*named: tuple[int, int]) -> bytes:
    """A POSIX ACL xattr value naming ``(tag, id)`` entries (2 user, 8 group)."""
    entries = [(1, 0xFFFFFFFF), *named, (4, 0xFFFFFFFF), (16, 0xFFFFFFFF), (32, 0xFFFFFFFF)]
    data = struct.pack("<I", 2)
    for tag, i in sorted(entries):
        data += struct.pack("<HHI", tag, 5, i)
    return data


def cap2() -> bytes:
    return struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


def cap3(rootid: int) -> bytes:
    return struct.pack("<IIIIII", 0x03000001, 1 << 13, 0, 0, 0, rootid)


def build(  # noqa: C901 (one random recipe, read top to bottom)
        root: Path, seed: int, *, ndirs: int, nfiles: int, outside: Path | None) -> None:
    """A random tree: nested directories (some not UTF-8, some with access and default
    ACLs), files with owners inside the map, setuid/setgid modes, v2 and v3
    capabilities, ACLs, long lists of xattr names, symlinks, fifos, and hard links with
    up to 9 names in random directories (and sometimes one in ``outside``)."""
    rnd = random.Random(seed)
    root.mkdir(parents=True)
    dirs = [str(root)]
    for i in range(ndirs):
        p = os.path.join(rnd.choice(dirs), f"d{i}" + ("\udcff" if rnd.random() < 0.1 else ""))
        os.mkdir(p)
        os.chown(p, rnd.choice([0, 5, 1000]), rnd.choice([0, 7]))
        if rnd.random() < 0.15:
            os.setxattr(p, "system.posix_acl_access", acl((2, rnd.choice([1000, 1001]))))
        if rnd.random() < 0.15:
            os.setxattr(p, "system.posix_acl_default", acl((8, rnd.choice([2000, 2001]))))
        dirs.append(p)
    for i in range(nfiles):
        p = os.path.join(rnd.choice(dirs), f"f{i}" + ("\udce9" if rnd.random() < 0.1 else ""))
        kind = rnd.random()
        if kind < 0.05:
            os.symlink("target", p)
            os.chown(p, rnd.choice([0, 3]), 0, follow_symlinks=False)
        else:
            regular = kind >= 0.08
            if regular:
                Path(p).write_bytes(b"x" * (i % 5))
            else:
                os.mkfifo(p)
            os.chown(p, rnd.choice([0, 1, 1000, 65535]), rnd.choice([0, 2, 1000]))
            if regular and rnd.random() < 0.15:
                os.chmod(p, rnd.choice([0o4755, 0o2755, 0o6755]))
            if regular and rnd.random() < 0.1:
                os.setxattr(p, "security.capability", cap3(rnd.choice([7, 1000]))
                            if rnd.random() < 0.6 else cap2())
            if rnd.random() < 0.1:
                os.setxattr(p, "system.posix_acl_access",
                            acl((2, rnd.choice([1000, 1002])), (8, rnd.choice([1003, 2]))))
            if regular and rnd.random() < 0.05:
                for k in range(12):
                    os.setxattr(p, f"user.{'n' * 40}{k}", b"v")
        if rnd.random() < 0.3:
            for k in range(rnd.choice([1, 2, 4, 8])):
                q = os.path.join(rnd.choice(dirs), f"l{i}_{k}")
                if not os.path.lexists(q):
                    os.link(p, q, follow_symlinks=False)
            if outside is not None and rnd.random() < 0.1:
                os.link(p, outside / f"o{i}", follow_symlinks=False)


def snapshot(root: Path) -> dict[str, Any]:
    """Every inode's owner, mode, link count and raw extended attributes, by path
    (read by the kernel: lstat and getxattr; the shift's mark left out)."""
    out: dict[str, Any] = {}
    for dp, dn, fn in os.walk(root):
        for name in [None, *dn, *fn]:
            p = dp if name is None else os.path.join(dp, name)
            st = os.lstat(p)
            xs = {}
            if not stat.S_ISLNK(st.st_mode):
                for x in os.listxattr(p, follow_symlinks=False):
                    if x != MARK:
                        xs[x] = os.getxattr(p, x, follow_symlinks=False).hex()
            out[os.path.relpath(p, root)] = (st.st_uid, st.st_gid, st.st_mode, st.st_nlink, xs)
    return out


SUMMARY = ("entries", "changed", "unchanged", "hardlinks", "capabilities", "acls",
           "modes_restored", "outside_links", "unmapped", "errors", "complete")


def plain(data: Any, root: Path) -> Any:
    """A report's fields as JSON data, the root's path and the example paths (which one
    of several walkers happened to find first) taken out."""
    text = json.dumps(data).replace(str(root), "ROOT")
    return json.loads(re.sub(r'"examples": \[[^\]]*\]', '"examples": []', text))


def in_child(nofile: int, job: Any) -> Any:
    """``job()`` in a forked child whose open-file limit (soft and hard) is ``nofile``,
    so that its walks (and their workers, which cannot raise it) keep only a handful
    of directory descriptors: closed and reused all the time. Its JSON result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            data = json.dumps(job()).encode()
            os.write(w, data)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert status == 0, "the child failed"
    return json.loads(data)


def owners(root: Path) -> dict[str, tuple[int, int, bool]]:
    """Every path's owner, and whether all of its inode's names are in the tree."""
    found: dict[tuple[int, int], int] = {}
    seen: dict[str, Any] = {}
    for dp, dn, fn in os.walk(root):
        for name in [None, *dn, *fn]:
            p = dp if name is None else os.path.join(dp, name)
            st = os.lstat(p)
            key = (st.st_dev, st.st_ino)
            found[key] = found.get(key, 0) + 1
            seen[p] = (st, key)
    return {p: (st.st_uid, st.st_gid, stat.S_ISDIR(st.st_mode) or found[key] >= st.st_nlink)
            for p, (st, key) in seen.items()}


def shift_twice(root: Path, pair: IDMapPair, workers: int) -> Any:
    def job() -> Any:
        before = owners(root)
        first = shift_tree(root, pair, workers=workers, policy="skip")
        after_first = snapshot(root)
        # the kernel's word: every inode wholly inside the tree has its owner translated
        # (every ID of these trees is a container ID of both maps), the others kept
        wrong = []
        for p, (uid, gid, inside) in owners(root).items():
            u0, g0, _ = before[p]
            want = ((pair.uid.to_host(u0, None), pair.gid.to_host(g0, None)) if inside
                    else (u0, g0))
            if (uid, gid) != want:
                wrong.append(p)
        again = shift_tree(root, pair, workers=workers, policy="skip")
        audit = audit_tree(root, pair, workers=workers)
        return {"wrong": wrong,
                "first": plain({k: first.to_dict()[k] for k in SUMMARY}, root),
                "again": plain({k: again.to_dict()[k] for k in SUMMARY}, root),
                "verified": again.verified, "after_first": after_first,
                "after_again": snapshot(root),
                "audit": plain({k: v for k, v in audit.to_dict().items()
                                if k not in ("root", "mark")}, root)}
    return in_child(40, job)


@pytest.mark.slow
@pytest.mark.parametrize("pair", [PAIR, OVERLAP], ids=["disjoint", "overlapping"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_and_two_workers_agree_with_few_descriptors_and_the_rerun_changes_nothing(
        tmp_path: Path, pair: IDMapPair, seed: int) -> None:
    got = {}
    for workers in (1, 2):
        base = tmp_path / f"w{workers}"
        (base / "out").mkdir(parents=True)
        build(base / "t", seed, ndirs=90, nfiles=300, outside=base / "out")
        got[workers] = shift_twice(base / "t", pair, workers)
    one, two = got[1], got[2]
    assert one["first"]["changed"] > 0 and one["first"]["outside_links"]
    assert one["after_first"] == two["after_first"]  # the same tree, inode for inode
    assert one["first"] == two["first"] and one["audit"] == two["audit"]
    for g in (one, two):
        assert g["wrong"] == []
        assert g["verified"]
        assert g["again"]["changed"] == 0 and g["again"]["errors"] == []
        assert g["after_again"] == g["after_first"]
    assert one["again"] == two["again"]


def spread(root: Path, ndirs: int) -> list[Path]:
    """``ndirs`` directories two levels deep, each holding a name of the same inodes."""
    dirs = []
    for i in range(ndirs):
        d = root / f"a{i % 9}" / f"b{i}"
        d.mkdir(parents=True)
        dirs.append(d)
    return dirs


@pytest.mark.parametrize("workers", [1, 2])
def test_rerun_repairs_hard_linked_inodes_broken_after_the_shift(
        tmp_path: Path, workers: int) -> None:
    """Hard-linked inodes with a name in each of 120 directories (more than the
    descriptor cache holds, with 40 open files at most): after the shift, one is
    chowned back to container IDs, one given an ACL naming a container ID, one setuid
    file re-owned to 0 (its mode restored as chown cleared it), one left right. The
    verifying re-run repairs the three, leaves the fourth, and the audit then says
    shifted (getfacl and stat agree)."""
    root = tmp_path / "t"
    dirs = spread(root, 120)
    names = ["owner", "acl", "setuid", "right"]
    for n in names:
        (dirs[0] / n).write_text(n)
        for d in dirs[1:]:
            os.link(dirs[0] / n, d / n)
    os.chmod(dirs[0] / "setuid", 0o4755)
    for i in range(300):  # plain files in between
        (dirs[i % len(dirs)] / f"p{i}").write_text("")
    shift_tree(root, PAIR, workers=workers)
    os.chown(dirs[57] / "owner", 5, 6)
    run("setfacl", "-m", "u:1000:r,g:1001:r", str(dirs[99] / "acl"))
    os.chown(dirs[3] / "setuid", 0, 0)
    os.chmod(dirs[3] / "setuid", 0o4755)
    assert audit_tree(root, PAIR, workers=workers).state == "mixed"

    def job() -> Any:
        rep = shift_tree(root, PAIR, workers=workers)
        return {"verified": rep.verified, "changed": rep.changed,
                "unchanged": rep.unchanged, "entries": rep.entries,
                "hardlinks": rep.hardlinks, "modes": rep.modes_restored}
    got = in_child(40, job)
    assert got["verified"] and got["changed"] == 3 and got["modes"] == 1
    assert got["entries"] == 1 + 9 + 120 + 4 + 300  # root, a*, b*, the four, plain files
    assert got["hardlinks"] == 4 * 119
    want = {"owner": (100005, 300006), "acl": (100000, 300000),
            "setuid": (100000, 300000), "right": (100000, 300000)}
    for n in names:
        st = os.lstat(dirs[0] / n)
        assert (st.st_uid, st.st_gid, st.st_nlink) == (*want[n], 120), n
    assert os.lstat(dirs[0] / "setuid").st_mode & 0o7777 == 0o4755
    out = subprocess.run(["getfacl", "-n", "-c", str(dirs[0] / "acl")], capture_output=True,
                         text=True, check=True).stdout
    assert "user:101000:r--" in out and "group:301001:r--" in out
    report = audit_tree(root, PAIR, workers=workers)
    assert report.state == "shifted" and report.outside == () and report.errors == ()
    assert report.acl_uids == {101000: 1} and report.acl_gids == {301001: 1}


@pytest.mark.parametrize("workers", [1, 2])
def test_rerun_with_a_hard_link_outside_the_tree_still_reports_it(
        tmp_path: Path, workers: int) -> None:
    """A right inode with a name outside the tree is not "settled" away: the re-run
    reports it as the first run did, and the audit too."""
    root = tmp_path / "t"
    dirs = spread(root, 60)
    (dirs[0] / "x").write_text("x")
    for d in dirs[1:]:
        os.link(dirs[0] / "x", d / "x")
    os.link(dirs[0] / "x", tmp_path / "elsewhere")
    os.chown(dirs[0] / "x", 100001, 300001)  # already right: a host ID of the map
    first = shift_tree(root, PAIR, workers=workers, policy="skip")
    again = shift_tree(root, PAIR, workers=workers, policy="skip")
    assert again.verified
    for rep in (first, again):
        assert [(o.links, o.inside) for o in rep.outside_links] == [(61, 60)]
    # policy error: the verifying re-run still refuses the tree for it
    with pytest.raises(OutsideLinksError) as info:
        shift_tree(root, PAIR, workers=workers)
    assert [(o.links, o.inside) for o in info.value.report.outside_links] == [(61, 60)]
    audit = audit_tree(root, PAIR, workers=workers)
    assert [(o.links, o.inside) for o in audit.outside_links] == [(61, 60)]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 8])
def test_audit_of_random_trees_matches_getfacl_and_stat(tmp_path: Path, seed: int) -> None:
    """The audit's counts against the kernel's tools on random trees, before and after a
    shift, with one and two workers and 40 open files at most."""
    root = tmp_path / "t"
    build(root, seed, ndirs=40, nfiles=120, outside=None)

    def tools() -> dict[str, Any]:
        uids: dict[int, int] = {}
        gids: dict[int, int] = {}
        au: dict[int, int] = {}
        ag: dict[int, int] = {}
        seen = set()
        for p in [root, *root.rglob("*")]:
            st = os.lstat(p)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            uids[st.st_uid] = uids.get(st.st_uid, 0) + 1
            gids[st.st_gid] = gids.get(st.st_gid, 0) + 1
            if stat.S_ISLNK(st.st_mode):
                continue
            us, gs = acl_ids(p)
            for u in us:
                au[u] = au.get(u, 0) + 1
            for g in gs:
                ag[g] = ag.get(g, 0) + 1
        return {"entries": len(seen), "uids": uids, "gids": gids, "acl_uids": au,
                "acl_gids": ag}

    for phase in ("before", "after"):
        want = json.loads(json.dumps(tools()))
        for workers in (1, 2):
            def job(workers: int = workers) -> Any:
                a = audit_tree(root, PAIR, workers=workers)
                return {"entries": a.entries, "uids": a.uids, "gids": a.gids,
                        "acl_uids": a.acl_uids, "acl_gids": a.acl_gids}
            assert in_child(40, job) == want, (phase, workers)
        if phase == "before":
            shift_tree(root, PAIR, workers=1, policy="skip")


def test_fixture_sanity(tmp_path: Path) -> None:
    """The random tree has what the tests above rely on (hard links across directories,
    ACLs, capabilities, setuid modes)."""
    build(tmp_path / "t", 1, ndirs=90, nfiles=300, outside=tmp_path)
    snap = snapshot(tmp_path / "t")
    assert sum(1 for v in snap.values() if v[3] > 2 and not stat.S_ISDIR(v[2])) > 20
    assert any("security.capability" in v[4] for v in snap.values())
    assert any("system.posix_acl_default" in v[4] for v in snap.values())
    assert any(v[2] & 0o4000 for v in snap.values())
    shutil.rmtree(tmp_path / "t")


def tamper(root: Path, before: dict[str, tuple[int, int, bool]], pair: IDMapPair) -> int:
    """Give every plain inode wholly inside the tree (not the root, no setuid/setgid
    mode, no capability: a chown would drop those) its owner from before the shift
    back, as files added since with container IDs; the number of names re-owned. (An
    owner that is also a host ID of an overlapping map is left: a verifying re-run
    takes every host ID as right.)"""
    n = 0
    hosts = (pair.uid.host_ids(), pair.gid.host_ids())
    for p, (uid, gid, inside) in before.items():
        st = os.lstat(p)
        if not inside or p == str(root) or st.st_mode & 0o6000 or stat.S_ISLNK(st.st_mode) \
                or "security.capability" in os.listxattr(p) or uid in hosts[0] \
                or gid in hosts[1]:
            continue
        os.chown(p, uid, gid, follow_symlinks=False)
        n += 1
    return n


@pytest.mark.slow
@pytest.mark.parametrize("pair", [PAIR, OVERLAP], ids=["disjoint", "overlapping"])
def test_verifying_rerun_in_small_batches_repairs_everything(
        tmp_path: Path, pair: IDMapPair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stream mode with batches of 50 changes and 40 open files: the changes are made
    (and directories re-opened, descriptors reused) in the middle of the walk and of
    the after-walk check of the hard-linked inodes, in the shift and in the verifying
    re-run that repairs most of the tree. One and two workers, the same trees."""
    from userns.shift import walk as walk_mod

    monkeypatch.setattr(walk_mod, "BATCH", 50)
    got = {}
    for workers in (1, 2):
        base = tmp_path / f"w{workers}"
        (base / "out").mkdir(parents=True)
        root = base / "t"
        build(root, 21, ndirs=150, nfiles=1500, outside=base / "out")
        before = owners(root)

        def job(root: Path = root, workers: int = workers,
                before: dict[str, tuple[int, int, bool]] = before) -> Any:
            first = shift_tree(root, pair, workers=workers, policy="skip")
            shifted = snapshot(root)
            n = tamper(root, before, pair)
            again = shift_tree(root, pair, workers=workers, policy="skip")
            return {"first": first.changed, "tampered": n, "verified": again.verified,
                    "again": again.changed, "errors": len(again.errors),
                    "shifted": shifted, "repaired": snapshot(root)}
        got[workers] = in_child(40, job)
    for g in got.values():
        assert g["tampered"] > 500 and g["verified"] and g["errors"] == 0
        assert g["again"] > 200
        assert g["repaired"] == g["shifted"]
    assert got[1]["shifted"] == got[2]["shifted"]
    assert (got[1]["first"], got[1]["again"]) == (got[2]["first"], got[2]["again"])
