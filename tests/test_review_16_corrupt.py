"""Review of the audit on values the kernel itself cannot read: an ext4 image whose
on-disk ACL is truncated and whose capability is revision 1 (written raw with
``debugfs``, since the kernel refuses both through ``setxattr``). ``getfacl`` and
``getcap`` fail on them with ``EINVAL``; the audit must report each as a path error
(exit 1), in one process and in two, and go on counting the rest; the shift too."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from userns import IDMap, IDMapPair
from userns.cli import main
from userns.shift import audit_tree, shift_tree

from .mountns import ext4_image, private_mountns
from .test_shift_trees import need_root, need_tool

pytestmark = [
    pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
    pytest.mark.skipif(need_tool("setfacl") is not None, reason=str(need_tool("setfacl"))),
]

PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=True)


def corrupt_image(tmp_path: Path) -> tuple[Path, Path]:
    """An ext4 image with t/good (an ACL naming 1000), t/v1cap (a revision 1
    capability), t/badacl and its hard link t/badacl2 (a truncated ACL)."""
    img, mnt = ext4_image(tmp_path)
    (mnt / "t").mkdir()
    for name in ("good", "v1cap", "badacl"):
        (mnt / "t" / name).write_text("x")
    (mnt / "t" / "badacl2").hardlink_to(mnt / "t" / "badacl")
    _run("setfacl", "-m", "u:1000:r", str(mnt / "t" / "good"))
    _run("umount", str(mnt))
    # magic 0x01000000 | effective, permitted = CAP_NET_RAW, inheritable 0
    _run("debugfs", "-w", "-R",
         "ea_set -r /t/v1cap security.capability 010000010020000000000000", str(img))
    # ext4's on-disk ACL: a version 1 header and half an entry
    _run("debugfs", "-w", "-R",
         "ea_set -r /t/badacl system.posix_acl_access 0100000002000400e8", str(img))
    _run("mount", "-o", "loop", str(img), str(mnt))
    return mnt, mnt / "t"


@private_mountns()
def test_values_the_kernel_cannot_read_are_path_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mnt, root = corrupt_image(tmp_path)
    try:
        # the oracle: the tools cannot read them either
        fail = subprocess.run(["getfacl", "-n", str(root / "badacl")], capture_output=True,
                              text=True, check=False)
        assert fail.returncode != 0 and "Invalid argument" in fail.stderr
        for workers in (1, 2):
            report = audit_tree(root, PAIR, workers=workers)
            errs = sorted((Path(e.path).name, e.operation, e.reason) for e in report.errors)
            assert errs in ([("badacl", "examine", "EINVAL"), ("v1cap", "examine", "EINVAL")],
                            [("badacl2", "examine", "EINVAL"),
                             ("v1cap", "examine", "EINVAL")]), errs
            assert report.entries == 4 and report.acl_uids == {1000: 1}
        assert main(["audit", str(root), "--map", "0 100000 65536", "--gid-map",
                     "0 300000 65536"]) == 1
        out = capsys.readouterr().out
        assert out.count("examine: Invalid argument") == 2
        shifted = shift_tree(root, PAIR, workers=2, policy="skip", on_error="continue")
        assert not shifted.complete
        assert sorted(Path(e.path).name for e in shifted.errors)[-1] == "v1cap"
        assert _run("getfacl", "-n", "-c", str(root / "good")).stdout.count("user:101000:") == 1
    finally:
        # (lazily: the incomplete shift above leaves a descriptor of its journal open,
        # see test_review_16_leak.py)
        subprocess.run(["umount", "-l", str(mnt)], check=False)
