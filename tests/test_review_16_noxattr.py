"""Review of the audit's xattr reading (and the workers' listing by bare name) on a
filesystem with no extended attributes at all: ramfs, mounted in a private mount
namespace. The audit must count owners as ``--owners-only`` does, with no errors, in
one process and in two; a shift of the same tree must restore its setuid bit and the
audit then say shifted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.shift import audit_tree, shift_tree

from .mountns import private_mountns
from .test_shift_trees import need_root

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))


@private_mountns()
def test_audit_and_shift_on_ramfs(tmp_path: Path) -> None:
    mnt = tmp_path / "ram"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "none", str(mnt)], check=True)
    root = mnt / "t"
    (root / "d").mkdir(parents=True)
    for i in range(80):  # more directories than a worker lists before moving on
        (root / "d" / f"s{i}").mkdir()
        (root / "d" / f"s{i}" / "f").write_text(str(i))
        os.link(root / "d" / f"s{i}" / "f", root / f"h{i}")
    (root / "suid").write_text("x")
    os.chmod(root / "suid", 0o4755)
    os.symlink("suid", root / "link")
    with pytest.raises(OSError):  # (no extended attributes here: the premise)
        os.setxattr(root / "suid", "user.x", b"1")
    for workers in (1, 2):
        full = audit_tree(root, PAIR, workers=workers)
        owners = audit_tree(root, PAIR, workers=workers, xattrs=False)
        assert full.errors == () and full.state == "unshifted"
        assert full.entries == owners.entries == 1 + 1 + 80 + 80 + 2
        assert (full.uids, full.gids) == (owners.uids, owners.gids)
        assert (full.acl_uids, full.acl_gids, full.cap_rootids) == ({}, {}, {})
    report = shift_tree(root, PAIR, workers=2)
    assert report.complete and report.errors == () and report.modes_restored == 1
    assert os.stat(root / "suid").st_mode & 0o7777 == 0o4755
    assert os.stat(root / "h3").st_uid == 100000
    for workers in (1, 2):
        assert audit_tree(root, PAIR, workers=workers).state == "shifted"
    subprocess.run(["umount", str(mnt)], check=True)
