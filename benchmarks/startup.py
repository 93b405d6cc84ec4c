"""Start-up: how long a ``userns`` process takes before it does any work.

Every variant is a whole process, a fresh interpreter, run interleaved with the others
(:func:`_harness.compare`) and timed by wall clock:

* ``python -c pass`` — the interpreter's own start-up, the baseline of every row;
* ``python -c "import userns"`` — the package (its lazy names not yet used);
* ``python -m userns shift --help`` — a command line naming a command: only that
  command's parsers are built;
* ``python -m userns --help`` — every command's parsers;
* ``python -c "import attrs"`` — the floor of any command that reads a map: the core's
  value classes (``IDMap``, ``IDMapPair``) are attrs classes;
* ``userns shift EMPTY`` — a whole shift of an empty directory (a durable journal, the
  default workers): everything a shift costs but the walk itself, its fixed cost. The
  directory is on tmpfs when ``/dev/shm`` is one, and is put back (owner 0:0, no mark)
  untimed before each run, so every run is a first shift. Only as root (it chowns).

A second table counts the modules each process holds at its end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from _harness import Row, Section, compare, fmt_seconds, ratio

__all__ = ["VARIANTS", "run"]

#: The measured processes: their label and the arguments after the interpreter.
VARIANTS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import attrs'": ["-c", "import attrs"],
    "python -c 'import userns'": ["-c", "import userns"],
    "userns shift --help": ["-m", "userns", "shift", "--help"],
    "userns --help": ["-m", "userns", "--help"],
}

#: The shift of an empty directory: its label, and the arguments after ``EMPTY``.
SHIFT = "userns shift EMPTY"
_SHIFT_ARGS = ["--map", "0 100000 65536", "--no-progress"]
_MARK = "trusted.userns.shift"

#: The rows: case, candidate, baseline.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("import userns", "python -c 'import userns'", "python -c pass"),
    ("userns shift --help", "userns shift --help", "python -c pass"),
    ("userns shift --help", "userns shift --help", "python -c 'import attrs'"),
    ("userns --help", "userns --help", "python -c pass"),
    ("userns shift, empty tree", SHIFT, "python -c pass"),
    ("userns shift, empty tree", SHIFT, "python -c 'import attrs'"),
)

# Run as ``python -m userns ARGS`` would (runpy), then report the modules on stderr.
_COUNT = (
    "import runpy, sys\n"
    "sys.argv = ['userns', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('userns', run_name='__main__', alter_sys=True)\n"
    "except SystemExit:\n"
    "    pass\n"
    "ours = [m for m in sys.modules if m == 'userns' or m.startswith('userns.')]\n"
    "sys.stderr.write(f'\\nmodules {len(sys.modules)} {len(ours)} {\"attrs\" in sys.modules}\\n')\n"
)


def _env(work: Path) -> dict[str, str]:
    """The measured processes' environment: bytecode caches written and read (under
    ``work``), as in an installed package, even when this process runs with
    ``PYTHONDONTWRITEBYTECODE``; without them every run would compile the package."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def _process(argv: Sequence[str], env: dict[str, str], cwd: Path) -> Callable[[], None]:
    def run_once() -> None:
        subprocess.run([sys.executable, *argv], env=env, cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return run_once


def _modules(argv: Sequence[str], env: dict[str, str], cwd: Path) -> list[str]:
    """Modules held at the end of the process: all, ``userns.*``, whether attrs is one."""
    if argv[0] == "-m":  # python -m userns ARGS
        full = [sys.executable, "-c", _COUNT, *argv[2:]]
    else:
        code = (f"{argv[1]}\nimport sys\nours = [m for m in sys.modules if m == 'userns' "
                "or m.startswith('userns.')]\nsys.stderr.write(f'\\nmodules "
                "{len(sys.modules)} {len(ours)} {\"attrs\" in sys.modules}\\n')\n")
        full = [sys.executable, "-c", code]
    err = subprocess.run(full, env=env, cwd=cwd, capture_output=True, text=True).stderr
    if "\nmodules " not in err:
        return ["?", "?", "?"]
    total, ours, attrs = err.rsplit("\nmodules ", 1)[1].split()
    return [total, ours, "yes" if attrs == "True" else "no"]


def _empty_tree(work: Path) -> Path:
    """A directory for the empty-tree shift: on tmpfs when ``/dev/shm`` is one."""
    shm = Path("/dev/shm")
    with contextlib.suppress(OSError):
        if _fs_type_of(shm) == "tmpfs" and os.access(shm, os.W_OK):
            return Path(tempfile.mkdtemp(prefix="userns-startup-", dir=shm)) / "empty"
    return work / "empty"


def _unshift(tree: Path) -> None:
    """Put the empty tree back as before its shift: owner 0:0, no mark (the shift, being
    complete, removed its journal)."""
    with contextlib.suppress(OSError):
        os.removexattr(tree, _MARK)
    os.chown(tree, 0, 0)


def _setup(name: str, tree: Path) -> None:
    if name == SHIFT:
        _unshift(tree)


def run(*, rounds: int = 21) -> Section:
    """Each process against ``python -c pass`` (and ``userns shift`` against attrs)."""
    sec = Section("Start-up")
    work = Path(tempfile.mkdtemp(prefix="userns-startup-"))
    tree = _empty_tree(work)
    try:
        env = _env(work)
        variants = {name: _process(argv, env, work) for name, argv in VARIANTS.items()}
        rows = ROWS
        if os.geteuid() == 0:
            tree.mkdir()
            variants[SHIFT] = _process(["-m", "userns", "shift", str(tree), *_SHIFT_ARGS],
                                       env, work)
        else:
            rows = tuple(r for r in ROWS if r[1] != SHIFT)
            sec.notes.append("The empty-tree shift is measured as root only (it chowns).")
        for name, once in variants.items():  # fill the bytecode caches, untimed
            _setup(name, tree)
            once()
        timings = compare(variants, rounds=rounds, setup=lambda name: _setup(name, tree))
        for case, cand, base in rows:
            c, b = timings[cand], timings[base]
            sec.rows.append(Row(case, cand, base, fmt_seconds(c.median),
                                fmt_seconds(b.median), ratio(c, b)))
        sec.extra_tables.append((
            ["process", "modules loaded", "of them userns.*", "attrs loaded"],
            [[name, *_modules(argv, env, work)] for name, argv in VARIANTS.items()],
        ))
        floor = timings["python -c pass"].median
        attrs = timings["python -c 'import attrs'"].median
        shift = timings["userns shift --help"].median
        sec.notes += [
            f"Medians over {rounds} interleaved rounds; every variant is a fresh "
            "interpreter, with bytecode caches (filled once, untimed).",
            f"Over `python -c pass` (medians): `import attrs` alone costs "
            f"{fmt_seconds(attrs - floor)}, `userns shift --help` "
            f"{fmt_seconds(shift - floor)}, so {fmt_seconds(shift - attrs)} beyond attrs. "
            "attrs is the floor of every command that reads a map: the core's value "
            "classes are attrs classes.",
            "A command line that names a command builds only that command's parsers and "
            "imports only its module; a format module is imported when a map in that "
            "format is read or written.",
        ]
        if SHIFT in timings:
            empty = timings[SHIFT].median
            sec.notes.append(
                f"`{SHIFT}`: a first shift of an empty directory on {_fs_type_of(tree)} "
                f"(`--map '0 100000 65536'`, a durable journal, the default workers), "
                f"{fmt_seconds(empty)}: {fmt_seconds(empty - floor)} over `python -c "
                f"pass`, {fmt_seconds(empty - attrs)} beyond attrs. It is the fixed cost "
                "of every shift: start-up, the journal, the workers, the report, the exit.")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if tree.parent != work:
            shutil.rmtree(tree.parent, ignore_errors=True)
    return sec


def _fs_type_of(path: Path) -> str:
    """The type of the filesystem holding ``path``: the longest mount point above it."""
    best, kind = "", "?"
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and (str(path) + "/").startswith(fields[1].rstrip("/") + "/") \
                    and len(fields[1]) >= len(best):
                best, kind = fields[1], fields[2]
    return kind


if __name__ == "__main__":
    from _harness import render_text

    print(render_text([run(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 21)]))
