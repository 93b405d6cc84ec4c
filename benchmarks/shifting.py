"""Shifting: ``userns.shift.shift_tree`` against a C loop, LXD's fuidshift and idmapshift.

One tree (see :mod:`tree`) is built per filesystem and shifted again and again: every run
moves every ID from ``offset`` to ``offset + DELTA`` (maps ``b:offset:offset+DELTA:65536``),
so all shifters do the same work on the same inodes. Between runs, untimed,
:func:`tree.reset` repairs whatever the previous shifter got wrong (the C loop shifts a
hard-linked inode once per name and drops setuid bits and capabilities), so each run
starts from a correct tree. Every shifter runs as its own process (userns too: a fresh
``python -c``, imports included), timed by wall clock, with the peak RSS from ``wait4``.

The baselines:

* **C nftw+lchown** — ``benchmarks/shift_floor.c``, built with ``gcc -O2`` at run time:
  the syscall floor, and wrong (see its header);
* **fuidshift** — LXD's tool (Debian ``lxd-tools``), the correct peer;
* **idmapshift** — the PyPI package (``os.walk`` + ``lchown``; loses setuid bits and
  capabilities, ignores ACLs), when it is importable;
* **find -printf %U:%G** — a read-only walk in C (findutils), the floor for re-running a
  shift over an already-shifted tree.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tree
from _harness import Row, Section, Timing, fmt_bytes, fmt_count, fmt_seconds, ratio

__all__ = ["run"]

HERE = Path(__file__).resolve().parent
DELTA = 100_000
SIZE = 65536
MARK = "trusted.userns.shift"  # userns.shift's root mark of a finished shift
CLI = "userns CLI process"  # the yardstick: ``python -m userns shift``


@dataclass
class Tool:
    """One shifter: how to run it from ``offset`` to ``offset + DELTA`` on ``root``."""

    name: str
    argv: Callable[[Path, int], list[str]]
    mutates: bool = True  # False: a read-only walk (the tree stays at ``offset``)
    follows: bool = False  # runs right after each "userns" run, on the tree it left
    strip_mark: bool = False  # remove userns's root mark of a finished shift first


@dataclass
class Measured:
    """Wall times and peak RSS of one tool over the rounds."""

    timing: Timing
    rss: list[int] = field(default_factory=list)
    failed: str | None = None
    bad_runs: int = 0  # runs after which some owner was not what a correct shift gives


#: The environment of every measured process: Python's bytecode caches written and
#: read (under the run's scratch directory), as in an installed package; without them
#: every run would compile the package first (see :func:`_use_bytecode_caches`).
_ENV: dict[str, str] | None = None


def _use_bytecode_caches(work: Path) -> None:
    """Let the measured Python processes keep bytecode caches in ``work`` (even when this
    process runs with ``PYTHONDONTWRITEBYTECODE``), and fill them once, untimed."""
    global _ENV
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    _ENV = env
    for argv in ([sys.executable, "-c", "import userns.shift, userns.cli"],
                 [sys.executable, "-m", "userns", "shift", "--help"]):
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run(argv: list[str], peak: Path | None) -> tuple[float, int, str | None]:
    """Run ``argv``; wall seconds, peak RSS in bytes (0 if unknown), error text.

    Through ``peak`` (``peak_rss.c``) when built: a process forked from this one would
    carry this process's RSS high-water mark across its exec.
    """
    full = [str(peak), *argv] if peak is not None else argv
    t0 = time.perf_counter()
    proc = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_ENV)
    wall = time.perf_counter() - t0
    err = proc.stderr.decode(errors="replace")
    rss = 0
    if peak is not None and "peak_rss_kib " in err:
        err, _, tail = err.rpartition("peak_rss_kib ")
        rss = int(tail.split()[0]) * 1024
    if proc.returncode != 0:
        return wall, 0, f"exit {proc.returncode}: {err.strip()[-300:]}"
    return wall, rss, None


def _userns_argv(workers: int | None, *, again: bool = False, policy: str = "error",
                 durable: bool = True) -> Callable[[Path, int], list[str]]:
    code = (
        "import sys; from userns import IDMap, IDMapPair; from userns.shift import shift_tree\n"
        "root, off, delta, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]\n"
        "pair = lambda o: IDMapPair.both(IDMap.single(0, o, 65536)) if o else None\n"
        "r = shift_tree(root, pair(off + delta), source=pair(off), policy=sys.argv[5],\n"
        "               workers=int(w) if w != '-' else None, durable=sys.argv[7] == 'y')\n"
        "assert r.complete, r\n"
        "assert r.changed == 0 or sys.argv[6] == 'first', r\n"
    )

    def argv(root: Path, off: int) -> list[str]:
        if again:  # the tree is already at ``off``: rerun the shift that put it there
            off -= DELTA
        return [sys.executable, "-c", code, str(root), str(off), str(DELTA),
                "-" if workers is None else str(workers), policy,
                "again" if again else "first", "y" if durable else "n"]

    return argv


def _cli_argv(root: Path, off: int) -> list[str]:
    """``python -m userns shift`` from ``off`` to ``off + DELTA``: the command as a user
    runs it (its defaults: policy error, a durable journal, default workers)."""
    argv = [sys.executable, "-m", "userns", "shift", str(root), "--map",
            f"0 {off + DELTA} {SIZE}", "--no-progress"]
    if off:
        argv += ["--source", f"0 {off} {SIZE}"]
    return argv


def _tools(floor_bin: Path | None) -> tuple[list[Tool], list[str]]:
    """The shifters available here, and notes on the ones that are not."""
    tools = [
        Tool("userns", _userns_argv(None)),
        Tool("userns, 1 worker", _userns_argv(1)),
        Tool("userns, durable=False", _userns_argv(None, durable=False)),
        Tool(CLI, _cli_argv),
    ]
    missing = []
    if floor_bin is not None:
        tools.append(Tool("C nftw+lchown", lambda r, o: [str(floor_bin), str(r), str(DELTA)]))
    else:
        missing.append("C nftw+lchown: gcc or benchmarks/shift_floor.c not available")
    if shutil.which("fuidshift"):
        tools.append(Tool("fuidshift", lambda r, o: [
            "fuidshift", str(r), f"b:{o}:{o + DELTA}:{SIZE}"]))
    else:
        missing.append("fuidshift: not installed (Debian package lxd-tools)")
    if _importable("idmapshift"):
        code = ("import sys; from idmapshift.main import main; "
                "sys.argv = ['idmapshift'] + sys.argv[1:]; main()")
        tools.append(Tool("idmapshift", lambda r, o: [
            sys.executable, "-c", code, str(r), "-u", f"{o}:{o + DELTA}:{SIZE}",
            "-g", f"{o}:{o + DELTA}:{SIZE}"]))
    else:
        missing.append("idmapshift: not importable (pip install --no-deps idmapshift)")
    # Re-running the shift userns just finished: its root mark makes it a verifying walk
    # (read-only when nothing is wrong; trust_mark=True would make it a no-op). Without
    # the mark (a tree shifted by another tool, or a lost xattr), the default policy
    # "error" refuses (every owner is outside the source map) and "skip" walks read-only.
    tools.append(Tool("userns, rerun (marked)", _userns_argv(None, again=True),
                      mutates=False, follows=True))
    tools.append(Tool("userns, rerun (no mark, skip)",
                      _userns_argv(None, again=True, policy="skip"),
                      mutates=False, follows=True, strip_mark=True))
    # The audit reads owners and (by default) the IDs ACLs and capabilities name: one
    # listxattrat more per file than an audit of owners only, which is what find sees.
    audit = ("import sys; from userns import IDMap, IDMapPair; from userns.shift import "
             "audit_tree; m = IDMapPair.both(IDMap.single(0, int(sys.argv[2]), 65536)); "
             "w = int(sys.argv[3]) or None; "
             "assert audit_tree(sys.argv[1], m, workers=w, "
             "xattrs=sys.argv[4] == 'x').state == 'shifted'")
    tools.append(Tool("userns audit_tree", lambda r, o: [
        sys.executable, "-c", audit, str(r), str(o), "0", "x"], mutates=False, follows=True))
    tools.append(Tool("userns audit_tree, owners only", lambda r, o: [
        sys.executable, "-c", audit, str(r), str(o), "0", "o"], mutates=False, follows=True))
    tools.append(Tool("userns audit_tree, 1 worker", lambda r, o: [
        sys.executable, "-c", audit, str(r), str(o), "1", "x"], mutates=False, follows=True))
    if shutil.which("find"):
        tools.append(Tool("find -printf %U:%G", lambda r, o: [
            "find", str(r), "-printf", "%U:%G\n"], mutates=False, follows=True))
    return tools, missing


def _importable(name: str) -> bool:
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True)
    return proc.returncode == 0


def _build(work: Path, name: str) -> Path | None:
    """Compile ``benchmarks/<name>.c`` with ``gcc -O2``; None without gcc or the file."""
    src = HERE / f"{name}.c"
    if not src.exists() or shutil.which("gcc") is None:
        return None
    out = work / name
    subprocess.run(["gcc", "-O2", "-o", str(out), str(src)], check=True)
    return out


class Bench:
    """A tree on one filesystem and its current offset."""

    def __init__(self, parent: Path, n: int, seed: int, peak: Path | None) -> None:
        self.peak = peak
        self.root = parent / f"tree-{n}"
        self.info = tree.build(self.root, n, random.Random(seed))
        self.offset = 0
        self.checks: dict[str, tree.Check] = {}

    def prepare(self) -> None:
        tree.reset(self.root, self.info, self.offset)
        os.sync()

    def measure(self, tools: Sequence[Tool], rounds: int) -> dict[str, Measured]:
        """Every tool once per round, order rotating, each run checked; the followers
        right after each "userns" run."""
        out = {t.name: Measured(Timing(t.name, units=self.info.entries)) for t in tools}
        main = [t for t in tools if not t.follows]
        followers = [t for t in tools if t.follows]
        for rnd in range(rounds):
            k = rnd % len(main)
            for t in main[k:] + main[:k]:
                m = out[t.name]
                if m.failed:
                    continue
                self.prepare()
                if self._timed(t, m) and t.name == "userns":
                    for f in followers:
                        if not out[f.name].failed:
                            self._strip(f)
                            os.sync()
                            self._timed(f, out[f.name])
        return out

    def _timed(self, t: Tool, m: Measured) -> bool:
        wall, rss, err = _run(t.argv(self.root, self.offset), self.peak)
        if err is not None:
            m.failed = err
            if t.mutates:
                self._resync()  # whatever it left, put right before the next run
            return False
        m.timing.times.append(wall)
        m.rss.append(rss)
        if t.mutates:
            c = tree.check(self.root, self.info, self.offset + DELTA)
            self.checks.setdefault(t.name, c)
            m.bad_runs += c.owners_wrong > 0
            self.offset += DELTA
        return True

    def _strip(self, t: Tool) -> None:
        if t.strip_mark:
            with contextlib.suppress(OSError):
                os.removexattr(self.root, MARK, follow_symlinks=False)

    def _resync(self) -> None:
        # A failed shifter may have moved some inodes: put all back at the offset.
        tree.reset(self.root, self.info, self.offset)

    def strace(self, tool: Tool, work: Path) -> tuple[int, list[tuple[str, int]]] | None:
        """Total syscalls of one run under ``strace -c -f``, and the five most frequent.

        A follower is traced on the tree as the last run left it (call it right after
        tracing "userns")."""
        if shutil.which("strace") is None:
            return None
        if tool.follows:
            self._strip(tool)
        else:
            self.prepare()
        out = work / "strace.txt"
        argv = ["strace", "-c", "-f", "-o", str(out), "--", *tool.argv(self.root, self.offset)]
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=_ENV)
        if proc.returncode != 0:
            if tool.mutates:
                self._resync()
            return None
        if tool.mutates:
            self.offset += DELTA
        return _parse_strace(out.read_text())


def _parse_strace(text: str) -> tuple[int, list[tuple[str, int]]]:
    """``strace -c`` summary: the total calls and the five most frequent syscalls.

    >>> _parse_strace('''% time     seconds  usecs/call     calls    errors syscall
    ... ------ ----------- ----------- --------- --------- ----------------
    ...  60.00    0.000600           3       200           fchownat
    ...  40.00    0.000400           2       150        10 newfstatat
    ... ------ ----------- ----------- --------- --------- ----------------
    ... 100.00    0.001000           2       350        10 total''')
    (350, [('fchownat', 200), ('newfstatat', 150)])
    """
    total = 0
    per: list[tuple[str, int]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or not parts[0].replace(".", "").isdigit():
            continue
        calls = int(parts[3])
        if parts[-1] == "total":
            total = calls
        else:
            per.append((parts[-1], calls))
    per.sort(key=lambda p: -p[1])
    return total, per[:5]


def _fs_type(path: Path) -> str:
    proc = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def _main_rows(label: str, res: dict[str, Measured], entries: int) -> list[Row]:
    rows: list[Row] = []
    me = res["userns"]
    if not me.timing.times:
        return rows
    for name, m in res.items():
        if name.startswith("userns,") and "worker" not in name and "durable" not in name:
            continue
        if name in ("userns", "find -printf %U:%G", CLI) or "audit" in name or m.failed:
            continue
        r = ratio(me.timing, m.timing)
        target, met = "", None
        if name == "C nftw+lchown":
            target, met = "within 2x", r.median >= 0.5
        elif name == "fuidshift":
            target, met = ">= 3x faster", r.median >= 3.0
        rows.append(Row(f"{fmt_count(entries)} entries, {label}", "shift_tree", name,
                        fmt_seconds(me.timing.median), fmt_seconds(m.timing.median), r,
                        target=target, met=met))
    floor, cli = res.get("C nftw+lchown"), res.get(CLI)
    if floor and cli and floor.timing.times and cli.timing.times and not (floor.failed
                                                                          or cli.failed):
        r = ratio(cli.timing, floor.timing)
        rows.append(Row(f"{fmt_count(entries)} entries, {label}", "shift, CLI process",
                        "C nftw+lchown", fmt_seconds(cli.timing.median),
                        fmt_seconds(floor.timing.median), r,
                        target="<= 1.5x slower", met=r.median >= 1 / 1.5))
    # The followers ran right after each userns run: pair them with that run.
    find = res.get("find -printf %U:%G")
    audit = res.get("userns audit_tree")
    for name, shown in (("userns, rerun (marked)", "rerun, root marked"),
                        ("userns, rerun (no mark, skip)", "rerun, no mark (skip)"),
                        ("userns audit_tree", "audit_tree"),
                        ("userns audit_tree, owners only", "audit_tree, owners only"),
                        ("userns audit_tree, 1 worker", "audit_tree, 1 worker")):
        f = res.get(name)
        if f is None or f.failed or not f.timing.times:
            continue
        rows.append(Row(f"already shifted, {label}", shown, "its full shift",
                        fmt_seconds(f.timing.median), fmt_seconds(me.timing.median),
                        ratio(f.timing, me.timing)))
        if find and find.timing.times and not find.failed:
            r = ratio(f.timing, find.timing)
            target, met = ("<= 1.5x slower", r.median >= 1 / 1.5) if name in (
                "userns audit_tree", "userns audit_tree, owners only") else ("", None)
            rows.append(Row(f"already shifted, {label}", shown, "find -printf %U:%G",
                            fmt_seconds(f.timing.median), fmt_seconds(find.timing.median),
                            r, target=target, met=met))
        if name == "userns, rerun (marked)" and audit and audit.timing.times \
                and not audit.failed:
            # Nothing is wrong in the tree: "an audit plus the changes" is an audit.
            r = ratio(f.timing, audit.timing)
            rows.append(Row(f"already shifted, {label}", shown, "audit_tree",
                            fmt_seconds(f.timing.median), fmt_seconds(audit.timing.median),
                            r, target="<= audit + changes", met=r.median >= 1.0))
    return rows


def _detail_rows(label: str, res: dict[str, Measured], entries: int,
                 sys_counts: dict[str, tuple[int, list[tuple[str, int]]] | None],
                 checks: dict[str, tree.Check], info: tree.TreeInfo) -> list[list[str]]:
    out = []
    for name, m in res.items():
        if m.failed:
            out.append([label, name, f"failed: {m.failed}", *[""] * 10])
            continue
        sc = sys_counts.get(name)
        c = checks.get(name)
        out.append([
            label, name, fmt_seconds(m.timing.median),
            f"{entries / m.timing.median:,.0f}",
            fmt_bytes(max(m.rss)) if m.rss else "",
            f"{sc[0] / entries:.2f}" if sc else "",
            ", ".join(f"{s} {n / entries:.2f}" for s, n in sc[1][:3]) if sc else "",
            *(c.cells(info) if c else [""] * 5),
            f"{m.bad_runs}/{len(m.timing.times)}" if c else "",
        ])
    return out


DETAIL_HEADERS = ["fs", "tool", "median wall", "entries/s", "peak RSS", "syscalls/entry",
                  "top syscalls/entry", "owners wrong", "hard links wrong",
                  "setuid lost", "caps lost", "ACL IDs wrong", "runs with wrong owners"]


def run(*, size: int, growth: Sequence[int], rounds: int, disk_dir: Path | None,
        tmpfs_dir: Path | None, strace: bool = True, seed: int = 6) -> Section:
    """The shifting rows: tmpfs and disk at ``size`` entries, then growth on tmpfs."""
    sec = Section("Shifting")
    if os.geteuid() != 0:
        sec.unavailable = "needs root (the tree holds many owners; shifting chowns them)"
        return sec
    try:
        import userns.shift  # noqa: F401
    except ImportError:
        sec.unavailable = "userns.shift has not landed"
        return sec
    places: list[tuple[str, Path]] = []
    shm = tmpfs_dir or Path("/dev/shm")
    if shm.is_dir() and _fs_type(shm) == "tmpfs":
        places.append(("tmpfs", shm))
    else:
        sec.notes.append(f"no tmpfs rows: {shm} is not a tmpfs directory (--tmpfs-dir)")
    disk = disk_dir or Path("/var/tmp")
    if disk.is_dir() and _fs_type(disk) != "tmpfs":
        places.append((_fs_type(disk), disk))
    else:
        sec.notes.append(f"no disk rows: {disk} is not on a disk filesystem (--disk-dir)")
    work = Path(tempfile.mkdtemp(prefix="userns-bench-"))
    detail: list[list[str]] = []
    growth_rows: list[list[str]] = []
    try:
        floor_bin = _build(work, "shift_floor")
        peak = _build(work, "peak_rss")
        _use_bytecode_caches(work)
        tools, missing = _tools(floor_bin)
        sec.notes += [f"not measured: {m}" for m in missing]
        for label, parent in places:
            d = Path(tempfile.mkdtemp(prefix="userns-bench-", dir=parent))
            try:
                b = Bench(d, size, seed, peak)
                res = b.measure(tools, rounds)
                counts = _strace_counts(b, tools, res, work) if strace and label == "tmpfs" \
                    else {}
                shown = label if label == "tmpfs" else f"disk ({label})"
                sec.rows += _main_rows(shown, res, b.info.entries)
                detail += _detail_rows(shown, res, b.info.entries, counts, b.checks, b.info)
                if label == "tmpfs":
                    sec.notes.append(f"Tree: {b.info.summary()}.")
            finally:
                shutil.rmtree(d, ignore_errors=True)  # the journal, a sibling, is inside
        if places and places[0][0] == "tmpfs":
            growth_rows = _growth(places[0][1], growth, tools, rounds, seed, sec, peak)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if detail:
        sec.extra_tables.append((DETAIL_HEADERS, detail))
    if growth_rows:
        sec.extra_tables.append((["entries (tmpfs)", "userns", "userns entries/s",
                                  "C loop", "C entries/s", "userns vs C",
                                  "userns runs with wrong owners"], growth_rows))
    sec.notes += [
        "Each tool runs as a process; ratios are per round, the tools interleaved with the "
        "order rotating. Every run shifts all IDs by +100000 (the tree was reset untimed "
        "before it, and `sync`ed).",
        f"`{CLI}`: `python -m userns shift TREE --map ... --no-progress`, the command "
        "as a user runs it (the issue's yardstick for the C loop).",
        "userns runs with its defaults: two worker processes on two CPUs, a journal, and a "
        "`syncfs` at the end (durable); the others do not sync (`userns, durable=False` "
        "skips the journal's fsyncs and the final syncfs). Peak RSS is the largest "
        "single process.",
        "owners/setuid/caps columns: state after that tool's first run, against a correct "
        "shift (hard links wrong = inodes with several names shifted more than once); "
        "the last column counts the timed runs after which any owner was wrong.",
        "Python processes run with bytecode caches (written once, untimed, before the "
        "first round), as an installed package has them; the start-up figures do not "
        "include compiling the package.",
        "syscalls/entry: one extra run under `strace -c -f` on tmpfs (process start and, "
        "for Python tools, imports included).",
        "already shifted: measured right after each userns shift, on the tree it left. "
        "`rerun, root marked`: the same call again; the root's `trusted.userns.shift` mark "
        "makes it a verifying walk (every ID the shift produces is taken as right, only what "
        "is wrong is changed: here nothing, so it is read-only; `trust_mark=True` would make "
        "it a no-op). `rerun, no mark (skip)`: the mark removed first (as after another "
        "tool, or a lost xattr); the default `policy='error'` then refuses the tree (every "
        "owner is outside the source map), so `policy='skip'` is timed: a read-only walk. "
        "`audit_tree`: the read-only report, with its defaults: owners and the IDs that ACLs "
        "and v3 capabilities name (a `listxattrat` per file, the values read only where "
        "there are some); `audit_tree, owners only`: `xattrs=False`, the owners alone. "
        "Floor: `find -printf %U:%G`, a C read-only walk of owners only (it reads no "
        "extended attribute). A verifying re-run reads the same extended attributes as the "
        "default audit, so that is its yardstick.",
    ]
    return sec


def _strace_counts(b: Bench, tools: Sequence[Tool], res: dict[str, Measured],
                   work: Path) -> dict[str, tuple[int, list[tuple[str, int]]] | None]:
    """One traced run of each tool that did not fail (the followers right after "userns")."""
    counts: dict[str, tuple[int, list[tuple[str, int]]] | None] = {}
    for t in tools:
        if t.follows or res[t.name].failed:
            continue
        counts[t.name] = b.strace(t, work)
        if t.name == "userns":
            for f in tools:
                if f.follows and not res[f.name].failed:
                    counts[f.name] = b.strace(f, work)
    return counts


def _growth(parent: Path, sizes: Sequence[int], tools: Sequence[Tool], rounds: int,
            seed: int, sec: Section, peak: Path | None) -> list[list[str]]:
    chosen = [t for t in tools if t.name in ("userns", "C nftw+lchown")]
    if len(chosen) < 2:
        sec.notes.append("no growth rows: the C loop is not available")
        return []
    rows = []
    for n in sizes:
        d = Path(tempfile.mkdtemp(prefix="userns-bench-", dir=parent))
        try:
            b = Bench(d, n, seed, peak)
            res = b.measure(chosen, rounds)
            me, c = res["userns"], res["C nftw+lchown"]
            if me.failed or c.failed:
                rows.append([fmt_count(n), me.failed or "", "", c.failed or "", "", "", ""])
                continue
            r = ratio(me.timing, c.timing)
            rows.append([fmt_count(b.info.entries), fmt_seconds(me.timing.median),
                         f"{b.info.entries / me.timing.median:,.0f}",
                         fmt_seconds(c.timing.median),
                         f"{b.info.entries / c.timing.median:,.0f}",
                         f"{r.text()} ({r.spread()})",
                         f"{me.bad_runs}/{len(me.timing.times)}"])
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return rows
