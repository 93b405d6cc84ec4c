"""Review of resuming after ``SIGKILL`` with the worker processes' listing by bare name
and the verifying re-run's settled hard-linked inodes: a shift killed (the whole
process group, workers included) after its N-th ``chown``, then run again with one or
two workers, must leave the tree the kernel shows exactly as an uninterrupted shift
does; a third run changes nothing; the audit of both agrees.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from userns.shift import audit_tree, shift_tree

from .test_review_16_rerun import PAIR, build, plain, snapshot
from .test_shift_trees import need_root

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

KILLED_SHIFT = textwrap.dedent("""
    import os, signal, sys
    from userns import IDMap, IDMapPair
    from userns.shift import shift_tree
    after = int(sys.argv[2])
    calls = [0]
    real = os.chown
    def chown(*args, **kwargs):
        calls[0] += 1
        if calls[0] == after:
            os.killpg(0, signal.SIGKILL)  # (the workers too: a power cut's worth)
        return real(*args, **kwargs)
    os.chown = chown
    pair = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 300000, 65536))
    shift_tree(sys.argv[1], pair, workers=int(sys.argv[3]), policy="skip")
""")


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "after", "first", "second"), [
    (11, 40, 2, 2), (12, 150, 2, 1), (13, 5, 1, 2), (14, 300, 1, 1), (15, 90, 2, 2)])
def test_a_shift_killed_mid_run_and_resumed_ends_as_an_uninterrupted_one(
        tmp_path: Path, seed: int, after: int, first: int, second: int) -> None:
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    for base in (ref, cut):
        (base / "out").mkdir(parents=True)
        build(base / "t", seed, ndirs=80, nfiles=700, outside=base / "out")
    shift_tree(ref / "t", PAIR, workers=1, policy="skip")
    want = snapshot(ref / "t")
    # each worker counts its own chowns: any one reaching ``after`` kills them all
    proc = subprocess.run([sys.executable, "-c", KILLED_SHIFT, str(cut / "t"), str(after),
                           str(first)], start_new_session=True, check=False)
    assert proc.returncode == -signal.SIGKILL, "the shift ended before it was cut"
    middle = audit_tree(cut / "t", PAIR, workers=2)
    assert middle.journal is not None and middle.state == "mixed"
    resumed = shift_tree(cut / "t", PAIR, workers=second, policy="skip")
    assert resumed.resumed and resumed.complete and resumed.errors == ()
    assert snapshot(cut / "t") == want
    again = shift_tree(cut / "t", PAIR, workers=second, policy="skip")
    assert again.verified and again.changed == 0
    assert snapshot(cut / "t") == want
    audits = []
    for base in (ref, cut):
        a = audit_tree(base / "t", PAIR, workers=second).to_dict()
        audits.append(plain({k: v for k, v in a.items() if k not in ("root", "mark")},
                            base / "t"))
    assert audits[0] == audits[1]
    assert audits[1]["journal"] is None
