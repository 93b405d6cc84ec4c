"""Allocation: parse a big /etc/subuid + /etc/subgid and allocate one more range.

The baseline is shadow's own ``useradd --prefix DIR -M NAME`` (Debian 12: shadow 4.13) on the
same files: it reads ``DIR/etc/login.defs``, ``passwd``, ``group``, ``shadow``,
``gshadow``, ``subuid`` and ``subgid``, picks the first free range of ``SUB_UID_COUNT`` IDs
(first fit, ascending, every owner's entries considered) and writes every file back with a
lock and a backup. userns does the same subordinate-ID part: read both files, allocate one
range in each for the new owner, write both back. It is timed twice: in-process (the
library call) and as a fresh ``python -c`` process (interpreter start and imports included,
as useradd's process start is).

The files: ``N`` owners of 4096 IDs each, laid out from 100000 with random gaps smaller
than 65536 and written in random order, so the first fit is past the last range and every
entry has to be considered. ``passwd`` and ``group`` hold root only. A second pair of files
starts with a comment line, as real files often do: the library keeps the canonical lines
as columns and the comment as a line of its own, and useradd sorts the comment last.

The targets (issue 16): parse + allocate at least 1.2x faster than useradd, read +
allocate + write not slower.

>>> d = make_files(Path(tempfile.mkdtemp()), 50, random.Random(1))
>>> len((d / "etc" / "subuid").read_text().splitlines())
50
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import Row, Section, compare, fmt_seconds, ratio

__all__ = ["floor_allocate", "make_files", "run"]

OWNER_COUNT = 4096
NEW_COUNT = 65536
SUB_MIN = 100_000
SUB_MAX = 4_294_000_000
NEW_OWNER = "newowner"

LOGIN_DEFS = f"""\
SUB_UID_MIN {SUB_MIN}
SUB_UID_MAX {SUB_MAX}
SUB_UID_COUNT {NEW_COUNT}
SUB_GID_MIN {SUB_MIN}
SUB_GID_MAX {SUB_MAX}
SUB_GID_COUNT {NEW_COUNT}
"""


def make_files(prefix: Path, owners: int, rng: random.Random, head: str = "") -> Path:
    """A ``--prefix`` root with ``etc/`` holding the account files and a big subuid/subgid
    (``head``: lines to put first, e.g. a comment)."""
    etc = prefix / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\n")
    (etc / "login.defs").write_text(LOGIN_DEFS)
    for name in ("shadow", "gshadow"):
        os.chmod(etc / name, 0o640)
    lines = []
    pos = SUB_MIN
    for i in range(owners):
        lines.append(f"u{i:06d}:{pos}:{OWNER_COUNT}\n")
        pos += OWNER_COUNT + rng.randrange(NEW_COUNT)
    if pos + NEW_COUNT > SUB_MAX:
        raise ValueError(f"{owners} owners do not fit below {SUB_MAX}")
    rng.shuffle(lines)
    text = head + "".join(lines)
    (etc / "subuid").write_text(text)
    (etc / "subgid").write_text(text)
    return prefix


def _last_range(path: Path, owner: str) -> tuple[int, int]:
    for line in reversed(path.read_text().splitlines()):
        name, start, count = line.split(":")
        if name == owner:
            return int(start), int(count)
    raise LookupError(f"{owner} not in {path}")


def available() -> str | None:
    """Why the section cannot run here, or None."""
    if shutil.which("useradd") is None:
        return "useradd (Debian package passwd) is not installed"
    if os.geteuid() != 0:
        return "needs root (useradd --prefix cannot write the account files otherwise)"
    try:
        import userns.subid as subid
    except ImportError:
        return "userns.subid has not landed (src/userns/subid/ is not importable)"
    if _library_allocator(subid) is None:
        return "userns.subid has no allocation API yet"
    return None


#: The library's side of the comparison, run as it is by both the in-process rows (compiled
#: once, see :func:`_library_allocator`) and the process row (``python -c``): it imports
#: only what it uses (the benchmark's own modules would add their imports to the
#: process's start-up, which is not the library's).
LIBRARY_SIDE = """\
import os
import sys

from userns.logindefs import LoginDefs
from userns.subid import SubidFile, allocate, shadow_useradd


def write(path, data):
    # shadow's commonio: a backup path- (a copy of the old bytes with their owner, mode
    # and times, fsynced: create_backup), then path+ written, fsynced and renamed over
    # path (the lock is left out: nothing else edits these benchmark files).
    st = os.stat(path)
    with open(path, "rb") as f:
        old = f.read()
    fd = os.open(path + "-", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, st.st_mode & 0o664)
    try:
        os.write(fd, old)
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.utime(path + "-", ns=(st.st_atime_ns, st.st_mtime_ns))
    fd = os.open(path + "+", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, st.st_mode & 0o7777)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(path + "+", path)


def allocate_both(prefix, owner, write_files=True):
    prefix = os.fspath(prefix)
    defs = LoginDefs.read(root=prefix)
    picked = []
    for name, kind in (("subuid", "uid"), ("subgid", "gid")):
        path = os.path.join(prefix, "etc", name)
        file = SubidFile.read(path)
        if write_files:
            new, r = shadow_useradd(file, owner, defs=defs, kind=kind)
            write(path, new.to_bytes())
        else:
            r = allocate(file, defs=defs, kind=kind)
        picked.append((r.start, r.size))
    return picked


if __name__ == "__main__":
    allocate_both(sys.argv[1], sys.argv[2])
"""


def _library_allocator(subid: Any) -> Callable[..., list[tuple[int, int]]] | None:
    """The library's read + allocate + write for both files (``write=False``: read +
    allocate), or None when the API is missing: :data:`LIBRARY_SIDE`, compiled."""
    if not all(hasattr(subid, n) for n in ("SubidFile", "allocate", "shadow_useradd")):
        return None
    try:
        import userns.logindefs  # noqa: F401
    except ImportError:
        return None
    namespace: dict[str, Any] = {"__name__": "library_side"}
    exec(compile(LIBRARY_SIDE, "<allocation library side>", "exec"), namespace)
    allocate_both = namespace["allocate_both"]

    def alloc(prefix: Path, write: bool = True) -> list[tuple[int, int]]:
        picked: list[tuple[int, int]] = allocate_both(prefix, NEW_OWNER, write)
        return picked

    return alloc


def floor_allocate(prefix: Path) -> list[tuple[int, int]]:
    """The least Python that reads both files and finds shadow's first fit.

    Correct only for plain ``owner:start:count`` lines without overlaps (what
    :func:`make_files` writes): split, ``int``, sort by (start, count), walk the holes
    from ``SUB_UID_MIN``. The floor the library's parse + allocate is compared with.

    >>> d = make_files(Path(tempfile.mkdtemp()), 3, random.Random(1))
    >>> len(floor_allocate(d)), floor_allocate(d)[0][1]
    (2, 65536)
    """
    picked = []
    for name in ("subuid", "subgid"):
        with open(prefix / "etc" / name, encoding="utf-8") as f:
            recs: list[tuple[int, int]] = []
            for line in f.read().splitlines():
                if line.startswith("#"):
                    continue  # a comment has no two colons here: shadow reads no range
                fields = line.split(":")
                recs.append((int(fields[1]), int(fields[2])))
        recs.sort()
        low = SUB_MIN
        for first, size in recs:
            if first - low >= NEW_COUNT:
                break
            low = max(low, first + size)
        if low + NEW_COUNT - 1 > SUB_MAX:
            raise LookupError("no room")
        picked.append((low, NEW_COUNT))
    return picked


def _one(n: int, alloc: Callable[..., list[tuple[int, int]]], work: Path, rounds: int,
         rng: random.Random) -> list[Row]:
    template = make_files(work / f"template-{n}", n, rng)
    # The same files with a comment line first (the library's line-by-line path).
    commented = work / f"commented-{n}"
    shutil.copytree(template, commented)
    for name in ("subuid", "subgid"):
        path = commented / "etc" / name
        path.write_text("# subordinate IDs\n" + path.read_text())
    dirs = {name: work / f"{name}-{n}"
            for name in ("pure", "floor", "userns", "process", "useradd", "userns#",
                         "useradd#")}

    def fresh(name: str) -> None:
        shutil.rmtree(dirs[name], ignore_errors=True)
        shutil.copytree(commented if name.endswith("#") else template, dirs[name])

    t = compare(
        {
            "pure": lambda: alloc(dirs["pure"], write=False),
            "floor": lambda: floor_allocate(dirs["floor"]),
            "userns": lambda: alloc(dirs["userns"]),
            "process": lambda: subprocess.run(
                [sys.executable, "-c", LIBRARY_SIDE, str(dirs["process"]), NEW_OWNER],
                check=True),
            "useradd": lambda: subprocess.run(
                ["useradd", "--prefix", str(dirs["useradd"]), "-M", NEW_OWNER],
                check=True, stdout=subprocess.DEVNULL),
            "userns#": lambda: alloc(dirs["userns#"]),
            "useradd#": lambda: subprocess.run(
                ["useradd", "--prefix", str(dirs["useradd#"]), "-M", NEW_OWNER],
                check=True, stdout=subprocess.DEVNULL),
        },
        rounds=rounds,
        setup=fresh,
    )
    # Same files, same login.defs: userns must write the very bytes useradd writes.
    for name in ("subuid", "subgid"):
        ours = (dirs["userns"] / "etc" / name).read_bytes()
        theirs = (dirs["useradd"] / "etc" / name).read_bytes()
        if ours != theirs or (dirs["process"] / "etc" / name).read_bytes() != theirs:
            raise AssertionError(f"{name} written by userns differs from useradd's at {n}")
        if ((dirs["userns#"] / "etc" / name).read_bytes()
                != (dirs["useradd#"] / "etc" / name).read_bytes()):
            raise AssertionError(f"{name} with a comment: userns differs from useradd at {n}")
    picked = alloc(dirs["pure"], write=False)
    if picked[0] != _last_range(dirs["useradd"] / "etc" / "subuid", NEW_OWNER):
        raise AssertionError(f"allocations differ at {n} owners: {picked}")
    if floor_allocate(dirs["floor"]) != picked:
        raise AssertionError(f"the floor disagrees at {n} owners")
    rq = ratio(t["pure"], t["useradd"])
    rf = ratio(t["pure"], t["floor"])
    r = ratio(t["userns"], t["useradd"])
    rp = ratio(t["process"], t["useradd"])
    rc = ratio(t["userns#"], t["useradd#"])
    return [
        Row(f"{n} owners", "parse + allocate", "useradd --prefix",
            fmt_seconds(t["pure"].median), fmt_seconds(t["useradd"].median), rq,
            target="≥ 1.2x faster", met=rq.median >= 1.2),
        Row(f"{n} owners", "parse + allocate", "minimal Python floor",
            fmt_seconds(t["pure"].median), fmt_seconds(t["floor"].median), rf),
        Row(f"{n} owners", "read + allocate + write", "useradd --prefix",
            fmt_seconds(t["userns"].median), fmt_seconds(t["useradd"].median), r,
            target="not slower", met=r.median >= 1.0),
        Row(f"{n} owners", "same, a comment line first", "useradd --prefix",
            fmt_seconds(t["userns#"].median), fmt_seconds(t["useradd#"].median), rc),
        Row(f"{n} owners", "same, as a python process", "useradd --prefix",
            fmt_seconds(t["process"].median), fmt_seconds(t["useradd"].median), rp,
            target="< 1 s, not slower",
            met=t["process"].median < 1.0 and rp.median >= 1.0),
    ]


def run(*, owners: list[int], rounds: int, seed: int = 6) -> Section:
    """The allocation rows: userns against useradd at each owner count."""
    sec = Section("Allocation")
    why = available()
    if why is not None:
        sec.unavailable = why
        return sec
    import compileall

    import userns.subid as subid

    alloc = _library_allocator(subid)
    assert alloc is not None
    # The process row times the library as installed, its bytecode compiled (as pip
    # leaves it): with PYTHONDONTWRITEBYTECODE set, a module edited since its last
    # compile would be compiled from source at every start of the process.
    compileall.compile_dir(str(Path(subid.__file__).parent.parent), quiet=1)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="userns-bench-alloc-"))
    try:
        for n in owners:
            sec.rows += _one(n, alloc, work, rounds, rng)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sec.notes += [
        f"Files: N owners x {OWNER_COUNT} IDs in random order with gaps < {NEW_COUNT}; "
        f"the new owner gets SUB_UID_COUNT={NEW_COUNT} in both files; userns and useradd "
        "are checked to pick the same ranges.",
        "useradd also writes passwd, group and shadow (root only here) and tries to "
        "invalidate nscd/sssd caches; the userns rows cover subuid and subgid only.",
        "minimal Python floor: split each line, `int`, sort, walk the holes - correct only "
        "for these plain files; how far the library's parse + allocate is from Python's "
        "limit.",
        "Every userns row does both files (subuid and subgid). `parse + allocate` is "
        "`SubidFile.read` + `allocate` (shadow's order, first fit); `read + allocate + "
        "write` is `shadow_useradd` (the file useradd writes) plus, as shadow's commonio, a "
        "backup copy and the new file, each fsynced, and a rename; the process row runs "
        "the same code as `python -c` (it imports `os`, `sys`, `userns.logindefs` and "
        "`userns.subid`, nothing of the benchmark). After "
        "each size the files userns wrote are checked byte for byte against the ones "
        "useradd wrote. The library's bytecode is compiled before the runs.",
        "a comment line first: the same files and run with `# subordinate IDs` as line 1, "
        "against useradd on those files; the library keeps the canonical lines as columns "
        "and reads the comment alone (`SubidFile.canonical_split`), as for a file without "
        "it.",
    ]
    return sec

