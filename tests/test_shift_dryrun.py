"""A dry run reports what the real run then reports: the same counts of setuid/setgid
modes restored, capabilities and ACLs, the same owner changes, on the same tree; and a
dry run of an interrupted shift plans exactly what its resume then does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.shift import ShiftError, ShiftReport, shift_tree, unshift_tree

from .test_shift_resume import acl, build_template, copy
from .test_shift_trees import need_root, need_tool

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

OVERLAP = IDMapPair.both(IDMap.single(0, 1000, 65536))
PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))


def counts(r: ShiftReport) -> dict[str, Any]:
    return {"entries": r.entries, "modes_restored": r.modes_restored,
            "capabilities": r.capabilities, "acls": r.acls, "hardlinks": r.hardlinks,
            "owner_changes": r.owner_changes}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("pair", [OVERLAP, PAIR], ids=["overlap", "disjoint"])
def test_a_dry_run_counts_what_the_real_run_reports(tmp_path: Path, workers: int,
                                                    pair: IDMapPair) -> None:
    tree = tmp_path / "t"
    build_template(tree)  # setuid files, v2 and v3 capabilities, ACLs, hard links
    # an ACL whose entries stay (no owner change, an ACL change only) and a setgid
    # directory (a directory keeps its mode across chown: nothing to restore)
    (tree / "acl-only").write_text("")
    os.chown(tree / "acl-only", 70000, 70000)
    os.setxattr(tree / "acl-only", "system.posix_acl_access", acl([4], [5]))
    os.chmod(tree / "a", 0o2775)
    plan = shift_tree(tree, pair, dry_run=True, policy="skip")
    done = shift_tree(tree, pair, workers=workers, policy="skip")
    assert plan.modes_restored > 0 and plan.capabilities > 0 and plan.acls > 0
    assert counts(plan) == counts(done)
    # and back
    plan = unshift_tree(tree, pair, dry_run=True, policy="skip")
    done = unshift_tree(tree, pair, workers=workers, policy="skip")
    assert plan.capabilities > 0 and counts(plan) == counts(done)


@pytest.mark.skipif(need_tool("chattr") is not None, reason=str(need_tool("chattr")))
def test_a_dry_run_of_an_interrupted_shift_plans_its_resume(tmp_path: Path) -> None:
    template = tmp_path / "template"
    build_template(template)
    tree = tmp_path / "t"
    copy(template, tree)
    stuck = sorted(tree.rglob("f1*"))[0]
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode:
        pytest.skip("this filesystem has no immutable flag")
    try:
        with pytest.raises(ShiftError):
            shift_tree(tree, OVERLAP, workers=1, policy="skip")
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    plan = shift_tree(tree, OVERLAP, dry_run=True, policy="skip")
    assert plan.resumed and plan.journal is not None and os.path.isdir(plan.journal)
    done = shift_tree(tree, OVERLAP, policy="skip")
    assert done.resumed and done.complete
    assert counts(plan) == counts(done)
