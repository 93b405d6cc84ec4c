"""``audit_tree`` reads the IDs that POSIX ACLs and revision 3 capabilities name, as a
shift translates them: a tree whose owners were moved by a tool that leaves ACLs and
capabilities alone is "mixed", not "shifted" (the audit of owners alone called it
shifted)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.cli import main
from userns.shift import audit_tree, shift_tree

from .test_shift_trees import need_root, need_tool, run

pytestmark = [
    pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
    pytest.mark.skipif(need_tool("setfacl") is not None, reason=str(need_tool("setfacl"))),
    pytest.mark.skipif(need_tool("setcap") is not None, reason=str(need_tool("setcap"))),
]

PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))
MAPS = ["--map", "0 100000 65536", "--gid-map", "0 300000 65536"]


def volume(tmp_path: Path) -> Path:
    """A small unshifted tree: a file with an access ACL, a directory with access and
    default ACLs, a file with a v3 capability (root ID 7), a hard-linked file with an
    ACL (two names), a symlink."""
    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    (root / "f").write_text("x")
    (root / "bin").write_bytes(b"\x7fELF")
    (root / "h1").write_text("y")
    os.link(root / "h1", root / "d" / "h2")
    os.symlink("f", root / "link")
    run("setfacl", "-m", "u:1000:rw,g:1001:r", str(root / "f"))
    run("setfacl", "-m", "u:1000:rwx", str(root / "d"))
    run("setfacl", "-d", "-m", "u:1002:rwx,g:1003:rx", str(root / "d"))
    run("setfacl", "-m", "g:1004:r", str(root / "h1"))
    run("setcap", "-n", "7", "cap_net_raw+ep", str(root / "bin"))
    return root


def chown_only(root: Path, delta_uid: int, delta_gid: int) -> None:
    """Move every owner as a tool that knows nothing of ACLs does, and put back the
    capability the kernel drops on chown as it was (its root ID untranslated), as a
    copy that restores extended attributes verbatim would."""
    seen = set()
    for path in sorted([root, *root.rglob("*")], key=str):
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        os.chown(path, st.st_uid + delta_uid, st.st_gid + delta_gid, follow_symlinks=False)
    run("setcap", "-n", "7", "cap_net_raw+ep", str(root / "bin"))


@pytest.mark.parametrize("workers", [1, 2])
def test_the_ids_acls_and_capabilities_name_are_counted_before_and_after_a_shift(
        tmp_path: Path, workers: int) -> None:
    root = volume(tmp_path)
    before = audit_tree(root, PAIR, workers=workers)
    assert before.state == "unshifted" and before.xattrs
    # the hard-linked file's ACL counts once, whichever names the walkers found
    assert before.acl_uids == {1000: 2, 1002: 1}
    assert before.acl_gids == {1001: 1, 1003: 1, 1004: 1}
    assert before.cap_rootids == {7: 1}
    assert before.outside == () and before.errors == ()
    shift_tree(root, PAIR, workers=1)
    after = audit_tree(root, PAIR, workers=workers)
    assert after.state == "shifted"
    assert after.acl_uids == {101000: 2, 101002: 1}
    assert after.acl_gids == {301001: 1, 301003: 1, 301004: 1}
    assert after.cap_rootids == {100007: 1}


@pytest.mark.parametrize("workers", [1, 2])
def test_owners_moved_without_their_acls_are_mixed_not_shifted(
        tmp_path: Path, workers: int) -> None:
    root = volume(tmp_path)
    chown_only(root, 100000, 300000)
    report = audit_tree(root, PAIR, workers=workers)
    assert set(report.uids) == {100000} and set(report.gids) == {300000}
    assert report.state == "mixed"
    assert report.acl_uids == {1000: 2, 1002: 1} and report.cap_rootids == {7: 1}
    # what makes it mixed: the owners are host IDs, the ACL and capability IDs are not
    assert report.shifted_ids == {"uid": {100000: 6}, "gid": {300000: 6}}
    assert report.unshifted_ids == {"acl-uid": {1000: 2, 1002: 1},
                                    "acl-gid": {1001: 1, 1003: 1, 1004: 1},
                                    "cap-rootid": {7: 1}}
    # owners only: what the audit said before it read ACLs, and says it did not read them
    owners = audit_tree(root, PAIR, workers=workers, xattrs=False)
    assert owners.state == "shifted" and not owners.xattrs
    assert (owners.acl_uids, owners.acl_gids, owners.cap_rootids) == ({}, {}, {})
    # a shift of the same tree repairs what the chown left (the owners are host IDs:
    # "skip" keeps them, the ACLs' container IDs are translated)
    shift_tree(root, PAIR, workers=1, policy="skip")
    assert audit_tree(root, PAIR, workers=workers).state == "shifted"


def test_an_acl_id_outside_the_map_is_listed_with_its_path(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a").write_text("")
    (root / "b").write_text("")
    run("setfacl", "-m", "u:70000:r,g:70001:r", str(root / "a"))
    run("setfacl", "-m", "u:70000:r", str(root / "b"))
    report = audit_tree(root, PAIR, workers=1)
    got = {(u.kind, u.id): (u.count, sorted(u.examples)) for u in report.outside}
    assert got == {("acl-uid", 70000): (2, [str(root / "a"), str(root / "b")]),
                   ("acl-gid", 70001): (1, [str(root / "a")])}
    assert report.state == "unshifted"  # (the owners, 0:0, are container IDs)


def test_cli_audit_shows_acl_ids_and_owners_only_skips_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = volume(tmp_path)
    chown_only(root, 100000, 300000)
    code = main(["audit", str(root), *MAPS])
    out = capsys.readouterr().out
    assert code == 1
    assert "state: mixed" in out
    assert "ACL uids: 1000 (2), 1002 (1)" in out
    assert "capability root IDs: 7 (1)" in out
    assert ("unshifted (container IDs of the map): acl-uid 1000 (2), acl-uid 1002 (1), "
            "acl-gid 1001 (1)") in out
    assert "shifted (host IDs of the map): uid 100000 (6), gid 300000 (6)" in out
    code = main(["audit", str(root), *MAPS, "--owners-only", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["state"] == "shifted" and data["xattrs"] is False
    code = main(["audit", str(root), *MAPS, "--owners-only"])
    out = capsys.readouterr().out
    assert "ACLs and capabilities: not read (--owners-only)" in out


@pytest.mark.parametrize("recorded", [True, False])
def test_the_overflow_ids_a_shift_wrote_count_as_shifted(tmp_path: Path,
                                                         recorded: bool) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "f").write_text("x")
    os.chown(root / "f", 70000, 70001)  # outside the map: written as the overflow IDs
    run("setfacl", "-m", "u:70000:r", str(root / "f"))
    shift_tree(root, PAIR, policy="overflow", overflow=(4242, 4343))
    st = os.lstat(root / "f")
    assert (st.st_uid, st.st_gid) == (4242, 4343)
    if not recorded:  # a mark from before the overflow IDs were recorded in it
        mark = json.loads(os.getxattr(root, "trusted.userns.shift"))
        del mark["overflow"]
        os.setxattr(root, "trusted.userns.shift", json.dumps(mark).encode())
    report = audit_tree(root, PAIR)
    assert report.mark is not None and report.mark.policy == "overflow"
    assert report.mark.overflow == ((4242, 4343) if recorded else None)
    # recorded: the IDs this shift wrote; else the kernel's overflow IDs, not these
    assert report.state == ("shifted" if recorded else "mixed")
    assert report.acl_uids == {4242: 1}
    # another map's audit does not take them as its results (they are its container IDs)
    other = IDMapPair(IDMap.single(0, 200000, 65536), IDMap.single(0, 400000, 65536))
    assert audit_tree(root, other).state == "unshifted"


def test_cli_audit_explains_an_unknown_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "t"
    root.mkdir()
    code = main(["audit", str(root), "--map", "0 0 65536"])  # an identity map
    out = capsys.readouterr().out
    assert code == 0 and "state: unknown" in out
    assert "no ID is only a container ID or only a host ID of this map" in out
