"""Run the userns benchmarks and write ``docs/performance.md``.

Every number in the table is a ratio against a baseline measured in the same run, with the
runs interleaved; see ``benchmarks/_harness.py``. From the repository root, in the venv::

    python benchmarks/run.py                      # everything, default sizes
    python benchmarks/run.py --section translation --rounds 9
    python benchmarks/run.py --section shifting --tree-sizes 10000,100000 --million
    python benchmarks/run.py --section startup --startup-rounds 31

Exit status: 0 when the run completed (targets missed are reported, not failed), 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # when imported rather than run as a script
    sys.path.insert(0, str(HERE))

from _harness import Section, render_markdown, render_text  # noqa: E402

__all__ = ["main", "machine"]

SECTIONS = ("translation", "allocation", "shifting", "mount", "startup")
PATH_OPTIONS = ("--out", "--disk-dir", "--tmpfs-dir")


def _ints(text: str) -> list[int]:
    try:
        values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers: {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Measure userns against its baselines; print ratios, write the docs page.",
    )
    p.add_argument("--section", action="append", choices=SECTIONS,
                   help="run only this section (repeatable; default: all)")
    p.add_argument("--rounds", type=int, default=7,
                   help="interleaved rounds per translation comparison (default 7)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md",
                   help="Markdown file to write (default docs/performance.md)")
    p.add_argument("--no-write", action="store_true", help="print only, write no file")
    p.add_argument("--seed", type=int, default=6, help="random seed (default 6)")
    g = p.add_argument_group("translation")
    g.add_argument("--extents", type=_ints, default=[1, 5, 340, 10000],
                   help="map sizes in extents (default 1,5,340,10000)")
    g.add_argument("--bulk-ids", type=int, default=1_000_000,
                   help="IDs for the bulk rows (default 1000000; 0 skips them)")
    g.add_argument("--bulk-extents", type=_ints, default=[1, 340],
                   help="map sizes for the bulk rows (default 1,340)")
    g = p.add_argument_group("allocation")
    g.add_argument("--owners", type=_ints, default=[1000, 10000, 100000],
                   help="owners in the subuid/subgid files (default 1000,10000,100000)")
    g.add_argument("--alloc-rounds", type=int, default=5,
                   help="interleaved rounds per owner count (default 5)")
    g = p.add_argument_group("shifting")
    g.add_argument("--tree-sizes", type=_ints, default=[10000, 100000],
                   help="entries per tree for the growth rows (default 10000,100000)")
    g.add_argument("--tree-size", type=int, default=100_000,
                   help="entries in the tree of the main comparison (default 100000)")
    g.add_argument("--million", action="store_true",
                   help="add a 1,000,000-entry tree to the growth rows (a few more minutes, "
                        "about 1 GB of tmpfs)")
    g.add_argument("--tree-rounds", type=int, default=3,
                   help="interleaved rounds per tree comparison (default 3)")
    g.add_argument("--disk-dir", type=Path, default=None,
                   help="directory on a disk filesystem for the on-disk rows "
                        "(default /var/tmp, when it is not tmpfs)")
    g.add_argument("--tmpfs-dir", type=Path, default=None,
                   help="directory on tmpfs (default /dev/shm, if it is tmpfs)")
    g.add_argument("--no-strace", action="store_true", help="skip the syscall counts")
    g = p.add_argument_group("startup")
    g.add_argument("--startup-rounds", type=int, default=21,
                   help="interleaved rounds of the start-up processes (default 21)")
    return p


def _cmd(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = int(f.readline().split()[1])
            mem = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    os_name = ""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "CPU": f"{cpu or platform.processor() or '?'} x {os.cpu_count()} (nproc {_cmd(['nproc'])})",
        "memory": mem,
        "kernel": platform.release(),
        "OS": os_name,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "commit": _commit(),
    }


def _public_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with the values of path options replaced (the page names no local path)."""
    out: list[str] = []
    hide = False
    for a in argv:
        if hide:
            out.append("PATH")
            hide = False
        elif a in PATH_OPTIONS:
            out.append(a)
            hide = True
        elif a.split("=", 1)[0] in PATH_OPTIONS:
            out.append(a.split("=", 1)[0] + "=PATH")
        else:
            out.append(a)
    return out


def _commit() -> str:
    """HEAD, and whether ``src/`` differs from it (then the numbers are of that tree)."""
    head = _cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if head and _cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"]):
        head += " (src/ has uncommitted changes)"
    return head


def _page(sections: Sequence[Section], argv: Sequence[str], started: str) -> str:
    info = machine()
    argv = _public_argv(argv)
    head = [
        "# Performance",
        "",
        "Written by `python benchmarks/run.py` — do not edit by hand; rerun it. Every ratio is "
        "the baseline's time divided by userns's time, per round, with the runs of both "
        "interleaved in the same rounds (the order rotates each round); the table gives the "
        "median over the rounds and their spread (IQR from 4 rounds up, else min-max), as "
        "speed factors (above 1: userns faster).",
        "",
        f"Run: `python benchmarks/run.py {shlex.join(argv)}`".rstrip() + f", {started} UTC.",
        "",
        "To reproduce, from the repository root, as root, in the project's venv "
        "(`pip install -e '.[test]'`): install the baselines "
        "(`apt-get install passwd gcc libc6-dev strace lxd-tools findutils`; "
        "`pip install --no-deps idmapshift`), then run `python benchmarks/run.py` "
        "(`--help` for sizes and `--section`; `--million` adds the 1M-entry tree). "
        "A baseline that is missing is listed under its section, not faked.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
    ]
    return "\n".join(head) + "\n" + render_markdown(sections).rstrip() + "\n"


def _sections(args: argparse.Namespace) -> list[tuple[str, Callable[[], Section]]]:
    def translation() -> Section:
        import translation as mod

        return mod.run(extents=args.extents, bulk_ids=args.bulk_ids,
                       bulk_extents=args.bulk_extents, rounds=args.rounds, seed=args.seed)

    def allocation() -> Section:
        import allocation as mod

        return mod.run(owners=args.owners, rounds=args.alloc_rounds, seed=args.seed)

    def shifting() -> Section:
        import shifting as mod

        sizes = list(args.tree_sizes) + ([1_000_000] if args.million else [])
        return mod.run(size=args.tree_size, growth=sizes, rounds=args.tree_rounds,
                       disk_dir=args.disk_dir, tmpfs_dir=args.tmpfs_dir,
                       strace=not args.no_strace, seed=args.seed)

    def mount() -> Section:
        import mount as mod

        section: Section = mod.run_from_args(args)
        return section

    def startup() -> Section:
        import startup as mod

        return mod.run(rounds=args.startup_rounds)

    table = {"translation": translation, "allocation": allocation, "shifting": shifting,
             "mount": mount, "startup": startup}
    chosen = args.section or list(SECTIONS)
    return [(name, table[name]) for name in SECTIONS if name in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections, print the table, write the page."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if min(args.rounds, args.alloc_rounds, args.tree_rounds, args.startup_rounds) < 1:
        parser().error("rounds must be at least 1")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    sections: list[Section] = []
    for name, fn in _sections(args):
        print(f"... {name}", file=sys.stderr, flush=True)
        sections.append(fn())
        print(render_text(sections[-1:]), flush=True)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(_page(sections, argv, started), encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
