"""Idmapped mounts: ``userns.mount.idmapped_mount`` against ``userns.shift.shift_tree``.

Both give a tree of container IDs (see :mod:`tree`) to a container remapped by
``b:0:100000:65536``: the shift re-owns every inode, the mount re-owns nothing and
translates at access time, so its time should not grow with the tree. Two ways, each
interleaved round by round with its baseline, on tmpfs:

* **process**: each a fresh ``python -c`` (imports included), timed by wall clock. The
  mount process first enters a private mount namespace (``unshare(CLONE_NEWNS)`` and ``/``
  made private, counted in its time) so the mount vanishes with it; it checks that the
  tree's root is seen as ``to_host(0)`` through the mount.
* **in-library**: one forked child in a private mount namespace times the calls
  themselves: ``idmapped_mount`` (a fresh user namespace for the maps each call, the
  mount detached again untimed), the same with one reused ``MapNamespace``, and
  ``shift_tree`` (the tree reset untimed before each).

Between shifts, untimed, :func:`tree.reset` puts every owner back to the container IDs
and the shift's root mark is removed, so every shift does the whole work.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import tree
from _harness import Row, Section, Timing, compare, fmt_count, fmt_seconds, ratio

__all__ = ["run", "run_from_args"]

HOST = 100_000
SIZE = 65536
MARK = "trusted.userns.shift"
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
MNT_DETACH = 2

_PRIVATE = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"assert libc.unshare({CLONE_NEWNS}) == 0, os.strerror(ctypes.get_errno())\n"
    f"assert libc.mount(None, b'/', None, {MS_REC | MS_PRIVATE}, None) == 0\n"
)
MOUNT_CODE = _PRIVATE + (
    "from userns import IDMap, IDMapPair\n"
    "from userns.mount import idmapped_mount\n"
    f"pair = IDMapPair.both(IDMap.single(0, {HOST}, {SIZE}))\n"
    "idmapped_mount(sys.argv[1], sys.argv[2], pair)\n"
    f"st = os.stat(sys.argv[2]); assert st.st_uid == {HOST}, (st, os.stat(sys.argv[1]))\n"
)
SHIFT_CODE = (
    "import sys\n"
    "from userns import IDMap, IDMapPair\n"
    "from userns.shift import shift_tree\n"
    f"r = shift_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, {HOST}, {SIZE})))\n"
    "assert r.complete and r.changed > 0, r\n"
)


def _proc(code: str, *args: str) -> None:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace")[-400:])


def _restore(root: Path, info: tree.TreeInfo) -> None:
    """The tree back to container IDs, the shift's mark gone (untimed)."""
    tree.reset(root, info, 0)
    with contextlib.suppress(OSError):
        os.removexattr(root, MARK, follow_symlinks=False)


def _in_library(root: Path, dst: Path, info: tree.TreeInfo, rounds: int,
                calls: int) -> dict[str, list[float]]:
    """Time the library calls in a forked child, in a private mount namespace."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        out: dict[str, object] = {}
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNS) != 0 or \
                    libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
                raise OSError(ctypes.get_errno(), "private mount namespace")
            from userns import IDMap, IDMapPair
            from userns.mount import MapNamespace, idmapped_mount
            from userns.shift import shift_tree

            pair = IDMapPair.both(IDMap.single(0, HOST, SIZE))
            times: dict[str, list[float]] = {"mount": [], "mount, namespace reused": [],
                                             "namespace alone": [], "shift": []}

            def detach() -> None:
                if libc.umount2(os.fsencode(dst), MNT_DETACH) != 0:
                    raise OSError(ctypes.get_errno(), "umount2")

            with MapNamespace(pair) as ns:
                for _ in range(rounds):
                    for _ in range(calls):
                        t0 = time.perf_counter()
                        idmapped_mount(root, dst, pair)
                        times["mount"].append(time.perf_counter() - t0)
                        detach()
                        t0 = time.perf_counter()
                        idmapped_mount(root, dst, pair, namespace=ns)
                        times["mount, namespace reused"].append(time.perf_counter() - t0)
                        detach()
                        t0 = time.perf_counter()
                        MapNamespace(pair).close()
                        times["namespace alone"].append(time.perf_counter() - t0)
                    _restore(root, info)
                    os.sync()
                    t0 = time.perf_counter()
                    rep = shift_tree(root, pair)
                    times["shift"].append(time.perf_counter() - t0)
                    assert rep.complete and rep.changed > 0, rep
            _restore(root, info)
            out = {"times": times}
        except BaseException as e:  # reported to the parent
            out = {"error": f"{type(e).__name__}: {e}"}
        finally:
            os.write(w, pickle.dumps(out))
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    result = pickle.loads(data)
    if "error" in result:
        raise RuntimeError(result["error"])
    return dict(result["times"])


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def run(*, sizes: Sequence[int], rounds: int, tmpfs_dir: Path | None = None,
        calls: int = 5, seed: int = 6) -> Section:
    """Rows per tree size: the mount against the shift, as processes and in-library."""
    sec = Section("Idmapped mounts")
    if os.geteuid() != 0:
        sec.unavailable = "needs root (mounting, and shifting a tree of many owners)"
        return sec
    try:
        from userns.mount import probe
    except ImportError:
        sec.unavailable = "userns.mount has not landed"
        return sec
    shm = tmpfs_dir or Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="userns-bench-", dir=shm))
    try:
        answer = probe(work)
        if not answer.ok:
            sec.unavailable = f"{work.parent} cannot be idmapped here: {answer.message}"
            return sec
        growth: list[list[str]] = []
        for n in sizes:
            d = Path(tempfile.mkdtemp(prefix="mount-", dir=work))
            try:
                root, dst = d / "tree", d / "view"
                info = tree.build(root, n, random.Random(seed))
                dst.mkdir()
                _restore(root, info)

                shifted = [False]  # the tree as the last run left it

                def setup(name: str, root: Path = root, info: tree.TreeInfo = info,
                          shifted: list[bool] = shifted) -> None:
                    if shifted[0]:
                        _restore(root, info)
                        os.sync()
                    shifted[0] = name == "shift"

                def mount(root: Path = root, dst: Path = dst) -> None:
                    _proc(MOUNT_CODE, str(root), str(dst))

                def shift(root: Path = root) -> None:
                    _proc(SHIFT_CODE, str(root))

                timed = compare({"mount": mount, "shift": shift}, rounds=rounds, setup=setup)
                _restore(root, info)
                lib = _in_library(root, dst, info, rounds, calls)
                case = f"{fmt_count(info.entries)} entries, tmpfs"
                rp = ratio(timed["mount"], timed["shift"])
                big = info.entries >= 1_000_000
                sec.rows.append(Row(case, "idmapped mount (process)", "shift_tree (process)",
                                    fmt_seconds(timed["mount"].median),
                                    fmt_seconds(timed["shift"].median), rp,
                                    target=">= 50x faster" if big else "",
                                    met=rp.median >= 50 if big else None))
                # In-library: each round's median mount call against that round's shift.
                per_round = [_median(lib["mount"][i * calls:(i + 1) * calls])
                             for i in range(rounds)]
                lm = Timing("mount", per_round)
                ls = Timing("shift", lib["shift"])
                rl = ratio(lm, ls)
                sec.rows.append(Row(case, "idmapped_mount() call", "shift_tree() call",
                                    fmt_seconds(lm.median), fmt_seconds(ls.median), rl,
                                    target=">= 50x faster" if big else "",
                                    met=rl.median >= 50 if big else None))
                call = _median(lib["mount"])
                sec.rows.append(Row(case, "idmapped_mount() call", "(target)",
                                    fmt_seconds(call), "20 ms", None, target="< 20 ms",
                                    met=call < 0.020))
                growth.append([
                    fmt_count(info.entries), fmt_seconds(timed["mount"].median),
                    fmt_seconds(timed["shift"].median), rp.text(),
                    fmt_seconds(call), fmt_seconds(_median(lib["mount, namespace reused"])),
                    fmt_seconds(_median(lib["namespace alone"])),
                    fmt_seconds(ls.median), rl.text(),
                ])
            finally:
                with contextlib.suppress(OSError):
                    subprocess.run(["umount", "-l", str(d / "view")], capture_output=True)
                shutil.rmtree(d, ignore_errors=True)
        sec.extra_tables.append(([
            "entries (tmpfs)", "mount (process)", "shift (process)", "process ratio",
            "mount() call", "mount() call, namespace reused", "MapNamespace alone",
            "shift_tree() call", "in-library ratio"], growth))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sec.notes += [
        "The mount's time should not grow with the tree: it touches no inode. The shift's "
        "does (every inode is chowned).",
        f"process: a fresh `python -c` each (imports included; the mount's also enters a "
        f"private mount namespace); {rounds} interleaved rounds, order rotating.",
        f"in-library: in one forked child in a private mount namespace; {calls} mount calls "
        "per round (each makes and drops a user namespace for the maps: a spawned "
        "`unshare --user`, two map writes, an open), the median per round against that "
        "round's shift_tree call (two worker processes on two CPUs, journal, syncfs). "
        "`namespace reused`: the same call given one MapNamespace; `MapNamespace alone`: "
        "making and closing one.",
    ]
    return sec


def run_from_args(args: argparse.Namespace) -> Section:
    """The section from ``benchmarks/run.py``'s options (``--tree-sizes``, ``--million``,
    ``--tree-rounds``, ``--tmpfs-dir``, ``--seed``)."""
    sizes = list(args.tree_sizes) + ([1_000_000] if args.million else [])
    return run(sizes=sizes, rounds=args.tree_rounds, tmpfs_dir=args.tmpfs_dir,
               seed=args.seed)


if __name__ == "__main__":
    from _harness import render_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--tmpfs-dir", type=Path, default=None)
    a = p.parse_args()
    print(render_text([run(sizes=[int(x) for x in a.sizes.split(",")], rounds=a.rounds,
                           tmpfs_dir=a.tmpfs_dir, calls=a.calls)]))
