"""The ``userns`` command line.

Structured like pip: :func:`main` parses, dispatches to one function per command, and
one place (:func:`main`) turns errors into a short message on stderr and an exit code:
0 ok, 1 error or findings, 2 usage. Every command that reports something takes
``--json`` (keys documented in ``docs/cli.md``). ``--debug`` shows the traceback.
The commands only call the library and print; no domain logic lives here.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from . import __version__
from .errors import UsernsError
from .formats.proc import format_proc, validate_map_write
from .formats.registry import FORMATS, get_format
from .ids import ID_MAX, MAX_EXTENTS, OVERFLOW_ID
from .maps import IDMap, IDMapPair

__all__ = ["EXAMPLE_SUBGID", "EXAMPLE_SUBUID", "main"]

#: The seed example ``explain --example`` runs on: Docker's default remap user.
EXAMPLE_SUBUID = "dockremap:231072:65536\n"
EXAMPLE_SUBGID = "dockremap:231072:65536\n"
_EXAMPLE_PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    "dockremap:x:999:999::/home/dockremap:/bin/false\n"
)
_EXAMPLE_GROUP = "root:x:0:\nnogroup:x:65534:\ndockremap:x:999:\n"

_NOTABLE = (0, 33, 1000, 65534)


class CommandError(UsernsError, ValueError):
    """A command was given something it cannot use (a missing file, an unreadable map)."""

    reason = "input"


class UsageError(CommandError):
    """The command line itself is wrong (exit status 2, like argparse's own errors)."""

    reason = "usage"


class _Output:
    """Where a command writes: plain text lines, or one JSON document at the end."""

    def __init__(self, stream: TextIO, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json

    def line(self, text: str = "") -> None:
        if not self.as_json:
            self.stream.write(text + "\n")

    def json(self, data: Any) -> None:
        if self.as_json:
            self.stream.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


# -- reading inputs ---------------------------------------------------------------------

_PROC_LINE = re.compile(r"^\s*\d+\s+\d+\s+\d+\s*$")
_NOTATION = re.compile(r"^[ugb]\d+:k\d+:r\d+")
_XMOUNT = re.compile(r"^(X-mount\.idmap=)?[ugb]:\d+:\d+:\d+")
_COLON_TRIPLE = re.compile(r"^[@+ug]*\d+:[@+]?\d+:\d+")
_NEWUIDMAP = re.compile(r"^(new[ug]idmap\s+)?\d+(\s+\d+\s+\d+\s+\d+)+\s*$")


def detect_format(text: str, option: str = "--format") -> str:
    """Guess the format of a map text; raise :class:`CommandError` when unsure.

    >>> detect_format("0 231072 65536"), detect_format("0:231072:65536")
    ('proc', 'podman')
    >>> detect_format('[{"containerID": 0, "hostID": 1, "size": 1}]')
    'oci'
    """
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise CommandError("the map is empty", reason="empty")
    s = "\n".join(lines)
    first = lines[0]
    if s.startswith("["):
        return "oci"
    if s.startswith("{"):
        return "oci-config"
    if first.startswith("lxc.idmap"):
        return "lxc"
    if first.split(" ", 1)[0] in ("both", "uid", "gid"):
        return "incus"
    if _NOTATION.match(first):
        return "kernel"
    if _XMOUNT.match(first):
        return "xmount"
    if all(_PROC_LINE.match(ln) for ln in lines):
        return "proc"
    if _NEWUIDMAP.match(first):
        return "newuidmap"
    if _COLON_TRIPLE.match(first):
        return "podman"
    raise CommandError(
        f"cannot tell the format of {first[:40]!r}; say it with {option} "
        f"({', '.join(sorted(FORMATS))})",
        reason="unknown-format",
    )


def _read_text(value: str) -> tuple[str, str | None]:
    """``@PATH`` or ``-`` (stdin) or the text itself; the text and its path, if any."""
    if value == "-":
        return sys.stdin.read(), "<stdin>"
    if value.startswith("@"):
        path = value[1:]
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                return f.read(), path
        except OSError as err:
            raise CommandError(f"cannot read {path}: {err.strerror}", reason="io") from err
    return value, None


def _load_pair(value: str, fmt: str | None, side: str = "both") -> IDMapPair:
    text, path = _read_text(value)
    name = fmt or detect_format(text)
    return get_format(name).parse(text, path=path, side=side)  # type: ignore[arg-type]


def _read_file(path: str, *, required: bool) -> str:
    """The file's text; a missing file is empty unless it was named explicitly."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError as err:
        if required:
            raise CommandError(f"cannot read {path}: no such file", reason="io") from err
        return ""
    except OSError as err:
        raise CommandError(f"cannot read {path}: {err.strerror}", reason="io") from err


class _System:
    """The subuid/subgid/passwd/group/login.defs a command works on."""

    def __init__(self, args: argparse.Namespace) -> None:
        root = getattr(args, "root", None) or "/"
        if getattr(args, "root", None) and not os.path.isdir(os.path.join(root, "etc")):
            raise CommandError(f"--root {root}: there is no {os.path.join(root, 'etc')} "
                               "directory", reason="io")
        etc = os.path.join(root, "etc")
        self.example = bool(getattr(args, "example", False))
        named = [o for o in ("root", "subuid", "subgid", "passwd", "group")
                 if getattr(args, o, None)]
        if self.example and named:
            raise UsageError(f"--example uses its own files; it cannot be combined with "
                             f"--{named[0]}")
        self.explicit = {o for o in named if o != "root"}
        self.subuid_path = getattr(args, "subuid", None) or os.path.join(etc, "subuid")
        self.subgid_path = getattr(args, "subgid", None) or os.path.join(etc, "subgid")
        self.passwd_path = getattr(args, "passwd", None) or os.path.join(etc, "passwd")
        self.group_path = getattr(args, "group", None) or os.path.join(etc, "group")
        self.login_defs_path = os.path.join(etc, "login.defs")
        if self.example:
            self.subuid_path, self.subgid_path = "subuid (example)", "subgid (example)"

    def subid(self, kind: str) -> Any:
        from .subid import SubidFile

        if self.example:
            text = EXAMPLE_SUBUID if kind == "uid" else EXAMPLE_SUBGID
            return SubidFile.parse(text, path=f"sub{kind}")
        path = self.subuid_path if kind == "uid" else self.subgid_path
        return SubidFile.parse(_read_file(path, required=f"sub{kind}" in self.explicit),
                               path=path)

    def accounts(self) -> Any:
        from .subid import Accounts

        if self.example:
            return Accounts.parse(_EXAMPLE_PASSWD, _EXAMPLE_GROUP)
        return Accounts.parse(_read_file(self.passwd_path, required="passwd" in self.explicit),
                              _read_file(self.group_path, required="group" in self.explicit))

    def login_defs(self) -> Any:
        from .logindefs import LoginDefs

        if self.example:
            return LoginDefs()
        return LoginDefs.parse(_read_file(self.login_defs_path, required=False))


def _add_system_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("files (default: the running system's)")
    g.add_argument("--root", metavar="DIR", help="read DIR/etc/{subuid,subgid,passwd,group}")
    g.add_argument("--subuid", metavar="FILE", help="the subuid file")
    g.add_argument("--subgid", metavar="FILE", help="the subgid file")
    g.add_argument("--passwd", metavar="FILE", help="the passwd file")
    g.add_argument("--group", metavar="FILE", help="the group file")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document")


def _triples(m: IDMap | None) -> list[list[int]] | None:
    return None if m is None else [[e.container, e.host, e.size] for e in m]


# -- explain ----------------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace, out: _Output) -> int:
    from .runtimes import compare_runtimes, docker_remap, docker_remapped_root
    from .subid import lint

    system = _System(args)
    subuid, subgid = system.subid("uid"), system.subid("gid")
    accounts = system.accounts()
    remap = args.user
    docker = docker_remap(subuid, subgid, remap, accounts=accounts)
    try:
        user = docker_remapped_root(remap, accounts)[0]
    except UsernsError:
        user = "dockremap" if remap == "default" else remap.split(":", 1)[0]
    uid = accounts.uid_of(user)
    all_findings = lint(subuid, subgid, accounts=accounts, defs=system.login_defs())
    mine = {user, str(uid) if uid is not None else user}
    findings = [f for f in all_findings if f.owner is None or f.owner in mine]
    others = len(all_findings) - len(findings)
    comparison_error: str | None = None
    try:
        comparison = compare_runtimes(subuid, subgid, user, accounts=accounts)
    except UsernsError as err:
        comparison = None
        comparison_error = str(err)
    data_root = os.path.join(args.data_root, docker.data_root) if docker.data_root else None
    pair = docker.pair
    data: dict[str, Any] = {
        "remap": remap,
        "user": user,
        "subuid": system.subuid_path,
        "subgid": system.subgid_path,
        "docker": docker.to_dict(),
        "uid_map_text": format_proc(pair.uid) if pair else None,
        "gid_map_text": format_proc(pair.gid) if pair else None,
        "data_root_path": data_root,
        "translations": [],
        "host_views": [],
        "findings": [_finding_dict(f) for f in findings],
        "comparison": comparison.to_dict() if comparison else None,
    }
    out.line(f"Docker --userns-remap={remap}: what dockerd would build")
    out.line(f"  from {system.subuid_path} and {system.subgid_path}")
    if pair is None:
        why = docker.error.message if docker.error else "no map"
        out.line(f"  no user namespace: {why}")
    else:
        for kind, m, lines in (("uid", pair.uid, docker.uid_lines),
                               ("gid", pair.gid, docker.gid_lines)):
            used = ", ".join(str(n) for n in lines)
            where = (f"sub{kind} line{'s' if len(lines) > 1 else ''} {used}" if lines
                     else f"a range dockerd would add to /etc/sub{kind}")
            out.line(f"\n{kind} map ({where}):")
            for e in m:
                out.line(f"  container {e.container}…{e.container + e.size - 1}"
                         f"  ->  host {e.host}…{e.host + e.size - 1}  ({e.size} IDs)")
        out.line("\ncontainer -> host (uid / gid):")
        for c in _NOTABLE:
            hu = pair.uid.to_host(c, None)
            hg = pair.gid.to_host(c, None)
            data["translations"].append({"container": c, "host_uid": hu, "host_gid": hg})
            out.line(f"  {c:>6} -> {_show(hu)} / {_show(hg)}")
        out.line("\nhost -> seen inside (uid / gid; 65534 = nobody/nogroup):")
        root_uid, root_gid = pair.root
        for h in sorted({0, 1000, root_uid, root_gid}):
            vu = pair.uid.container_view(h)
            vg = pair.gid.container_view(h)
            data["host_views"].append({"host": h, "inside_uid": vu, "inside_gid": vg})
            note = "  (host root: its files show as nobody inside)" if h == 0 else ""
            out.line(f"  {h:>6} -> {vu} / {vg}{note}")
        out.line("\n/proc/PID/uid_map:")
        out.line("  " + format_proc(pair.uid).rstrip("\n").replace("\n", "\n  "))
        out.line("/proc/PID/gid_map:")
        out.line("  " + format_proc(pair.gid).rstrip("\n").replace("\n", "\n  "))
        out.line(f"\nDocker data root: {data_root}")
    for docker_note in docker.notes:
        out.line(f"note: {docker_note.message}")
    out.line(f"\nlint ({user}):" if findings else f"\nlint ({user}): no findings")
    for f in findings:
        out.line("  " + f.render().replace("\n", "\n  "))
    if others:
        out.line(f"  ({others} more finding(s) about other owners: run 'userns check')")
    if comparison is not None:
        out.line("\nwhere the other runtimes differ from Docker for this user:")
        for r in comparison.results:
            if r.runtime == "docker":
                continue
            diffs = [d for d in comparison.differences
                     if {d.first, d.second} == {"docker", r.runtime}]
            if not r.ok:
                why = r.error.message if r.error else "it would build none"
                either = " either" if pair is None else ""
                out.line(textwrap.fill(f"{r.runtime}: no map{either}: {why}", width=100,
                                       initial_indent="  ", subsequent_indent="    ",
                                   break_on_hyphens=False, break_long_words=False))
                continue
            if not diffs:
                out.line(f"  {r.runtime}: the same maps")
                continue
            kinds = " and ".join(d.kind for d in diffs)
            out.line(textwrap.fill(f"{r.runtime} ({kinds} maps differ): {diffs[0].message}",
                                   width=100, initial_indent="  ", subsequent_indent="    ",
                                   break_on_hyphens=False, break_long_words=False))
    elif comparison_error:
        out.line(f"\nother runtimes: not compared: {comparison_error}")
    out.json(data)
    return 0 if pair is not None else 1


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _show(value: int | None) -> str:
    return "unmapped" if value is None else str(value)


def _finding_dict(f: Any) -> dict[str, Any]:
    return {"reason": f.reason, "severity": str(f.severity), "message": f.message,
            "path": f.path, "line": f.lineno, "owner": f.owner}


# -- translate / convert -----------------------------------------------------------------


def cmd_translate(args: argparse.Namespace, out: _Output) -> int:
    pair = _load_pair(args.map, args.format)
    m = pair.uid if args.kind == "uid" else pair.gid
    inside: int | None = None
    if not m:
        raise CommandError(f"the map has no {args.kind} map", reason="empty")
    results = []
    for value in args.ids:
        if args.direction == "to-host":
            got = m.to_host(value, None)
        elif args.direction == "to-container":
            got = m.to_container(value, None)
        else:
            inside = m.to_container(value, None)
            got = args.overflow if inside is None else inside
        mapped = got is not None and (args.direction != "view" or inside is not None)
        results.append({"id": value, "result": got, "mapped": mapped})
        note = "  (overflow: not mapped)" if args.direction == "view" and not mapped else ""
        out.line(f"{value} -> {_show(got)}{note}")
    out.json({"direction": args.direction, "kind": args.kind, "results": results})
    if args.direction == "view":
        return 0
    return 0 if all(r["mapped"] for r in results) else 1


def cmd_convert(args: argparse.Namespace, out: _Output) -> int:
    text, path = _read_text(args.input)
    src = args.from_ or detect_format(text, "--from")
    pair = get_format(src).parse(text, path=path, side=args.side)
    for kind in ("uid", "gid") if args.side == "both" else (args.side,):
        if not getattr(pair, kind) and args.side != "both":
            raise CommandError(f"the input has no {kind} map", reason="empty")
    written = get_format(args.to).format(pair, side=args.side)
    if out.as_json:
        out.json({"from": get_format(src).name, "to": get_format(args.to).name,
                  "text": written, "uid_map": _triples(pair.uid), "gid_map": _triples(pair.gid)})
    else:
        out.stream.write(written if written.endswith("\n") or not written else written + "\n")
    return 0


# -- check -------------------------------------------------------------------------------

_LEVELS = ("info", "warning", "error", "security")


def cmd_check(args: argparse.Namespace, out: _Output) -> int:
    if args.map is not None:
        return _check_map(args, out)
    from .subid import lint

    system = _System(args)
    findings = lint(system.subid("uid"), system.subid("gid"), accounts=system.accounts(),
                    defs=system.login_defs())
    threshold = _LEVELS.index(args.fail_on)
    failing = [f for f in findings if int(f.severity) >= threshold]
    for f in findings:
        out.line(f.render())
    out.line(f"{len(findings)} finding(s), {len(failing)} at or above {args.fail_on}")
    out.json({"subuid": system.subuid_path, "subgid": system.subgid_path,
              "findings": [_finding_dict(f) for f in findings], "failing": len(failing)})
    return 1 if failing else 0


def _check_map(args: argparse.Namespace, out: _Output) -> int:
    text, path = _read_text(args.map)
    fmt = args.format or detect_format(text)
    if fmt != "proc":
        # Another format: check the uid_map text it stands for, as the kernel would.
        text = format_proc(get_format(fmt).parse(text, path=path, side="uid").uid)
    parent = None
    if args.parent is not None:
        ptext, ppath = _read_text(args.parent)
        parent = validate_map_write(ptext, path=ppath, page_size=1 << 30, max_extents=1 << 30)
    max_extents = 5 if args.legacy else MAX_EXTENTS
    try:
        m = validate_map_write(text, path=path, parent=parent, max_extents=max_extents)
    except UsernsError as err:
        out.line(err.render())
        loc = err.location
        out.json({"ok": False, "reason": err.reason, "message": err.message,
                  "line": loc.line if loc else None, "column": loc.column if loc else None})
        return 1
    out.line(f"ok: the kernel would install {len(m)} extent(s), {m.size} IDs")
    out.line("  " + format_proc(m).rstrip("\n").replace("\n", "\n  "))
    out.json({"ok": True, "map": _triples(m)})
    return 0


# -- allocate ----------------------------------------------------------------------------


def cmd_allocate(args: argparse.Namespace, out: _Output) -> int:
    from .ranges import IDRange
    from .subid import add_subid_range, allocate, allocate_aligned

    system = _System(args)
    defs = system.login_defs()
    kinds = ("uid", "gid") if args.kind == "both" else (args.kind,)
    chosen: dict[str, IDRange] = {}
    for kind in kinds:
        f = system.subid(kind)
        existing = f.ranges_for(args.user, None)
        if existing and not args.force:
            joined = ", ".join(str(r) for r in existing)
            raise CommandError(
                f"{args.user} already has sub{kind} ranges ({joined}); useradd would not "
                "add another (use --force to allocate one more)",
                reason="has-range",
            )
        if args.align > 1:
            count = args.count if args.count is not None else defs.subid_limits(kind).count
            chosen[kind] = allocate_aligned(f, count, align=args.align, defs=defs, kind=kind)
        else:
            chosen[kind] = allocate(f, args.count, defs=defs, kind=kind)
    for kind, r in chosen.items():
        out.line(f"sub{kind}: {args.user}:{r.start}:{r.size}   ({r})")
    if args.write:
        for kind, r in chosen.items():
            path = system.subuid_path if kind == "uid" else system.subgid_path
            existed = os.path.exists(path)
            add_subid_range(path, args.user, r, missing_ok=True)
            out.line(f"wrote {path}" + (f" (backup {path}-)" if existed else " (new file)"))
    out.json({"user": args.user, "written": bool(args.write),
              "ranges": {k: {"start": r.start, "count": r.size} for k, r in chosen.items()}})
    return 0


# -- run ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: _Output) -> int:
    from .kernel import NamespaceSetupError, run_in_userns

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command given: userns run --map MAP -- COMMAND [ARGS...]")
    pair = _load_pair(args.map, args.format)
    if args.gid_map is not None:
        pair = IDMapPair(pair.uid, _load_pair(args.gid_map, args.format).gid)
    for opt, m, value in (("--uid", pair.uid, args.uid), ("--gid", pair.gid, args.gid)):
        if m.to_host(value, None) is None:
            raise CommandError(f"{opt} {value} (the ID to run as inside) is not mapped by the "
                               f"{opt[2:]} map; choose another {opt} or map it", reason="unmapped")
    sys.stdout.flush()
    try:
        return run_in_userns(command, pair, uid=args.uid, gid=args.gid)
    except NamespaceSetupError as err:
        if err.reason != "exec-failed":
            raise
        # As shells do: 127 for a command not found, 126 for one that cannot run.
        sys.stderr.write(_prefix_message(err.render()) + "\n")
        return 127 if err.errno == errno.ENOENT else 126


# -- shift / unshift / audit -------------------------------------------------------------


@contextmanager
def _progress_bar(enabled: bool, label: str) -> Iterator[Callable[[Any], None] | None]:
    if not enabled:
        yield None
        return
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:  # the cli extra is not installed: plain output
        yield None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), transient=False)
    task = bar.add_task(label, total=None)

    def update(p: Any) -> None:
        bar.update(task, description=f"{label}: {p.phase}", completed=p.done, total=p.total)

    with bar:
        yield update


def _shift_like(args: argparse.Namespace, out: _Output, mode: str) -> int:
    from .shift import ShiftError, UnmappedOwnersError, shift_tree

    if os.path.islink(args.path):
        raise CommandError(f"{args.path} is a symbolic link; userns never follows one: give "
                           "the directory it points to", reason="symlink")
    mapping = _load_pair(args.map, args.format)
    other = getattr(args, "source", None) or getattr(args, "target", None)
    second = _load_pair(other, args.format) if other else None
    if mode == "shift":
        target: IDMapPair | None = mapping
        source = second
    else:
        target = second
        source = mapping
    show_bar = not out.as_json and not args.no_progress and sys.stderr.isatty()
    overflow = (args.overflow, args.overflow)
    with _progress_bar(show_bar, mode) as progress:
        try:
            report = shift_tree(args.path, target, source=source, policy=args.policy,
                                overflow=overflow, dry_run=args.dry_run, progress=progress,
                                journal=args.journal, cross_mounts=args.cross_mounts,
                                on_error=args.on_error)
        except (UnmappedOwnersError, ShiftError) as err:
            for u in err.report.unmapped:
                ex = ", ".join(dict.fromkeys(u.examples[:3]))
                out.line(f"  cannot translate {u.kind} {u.id}: {_n(u.count, 'entry', 'entries')} "
                         f"(e.g. {ex})")
            for e in err.report.errors[:20]:
                out.line(f"  error: {e.path}: {e.operation}: {e.message}")
            raise
    would_stop = report.dry_run and args.policy == "error" and bool(report.unmapped)
    _print_shift(report, out, mode, would_stop=would_stop)
    out.json({**report.to_dict(), "would_stop": would_stop} if report.dry_run
             else report.to_dict())
    if report.dry_run:
        return 1 if report.errors or would_stop else 0
    return 1 if report.errors or not report.complete else 0


def _print_shift(report: Any, out: _Output, mode: str, *, would_stop: bool = False) -> None:
    if getattr(report, "already_complete", False):
        out.line(f"{mode} {report.root}: already complete (the root carries the mark of this "
                 "very shift); nothing to do")
        return
    if report.dry_run:
        out.line(f"{mode} {report.root} (dry run, nothing changed): "
                 f"{_n(report.entries, 'entry', 'entries')}; the plan:")
    else:
        out.line(f"{mode} {report.root}: {_n(report.entries, 'entry', 'entries')}, changed "
                 f"{report.changed}, left unchanged {report.unchanged}")
    extra = []
    if report.hardlinks:
        extra.append(f"{_n(report.hardlinks, 'extra hard link', 'extra hard links')} "
                     "(each inode shifted once)")
    if report.modes_restored:
        extra.append(f"{_n(report.modes_restored, 'setuid/setgid mode', 'setuid/setgid modes')}"
                     " restored")
    if report.capabilities:
        extra.append(f"{_n(report.capabilities, 'capability', 'capabilities')} kept")
    if report.acls:
        extra.append(f"{_n(report.acls, 'ACL', 'ACLs')} shifted")
    if extra:
        out.line("  " + "; ".join(extra))
    for c in report.owner_changes[:20]:
        out.line(f"  {c.kind} {c.old} -> {c.new}: {c.count}")
    left = "cannot translate" if would_stop else "left as is, not in the map"
    for u in report.unmapped:
        ex = ", ".join(dict.fromkeys(u.examples[:3]))
        out.line(f"  {left}: {u.kind} {u.id}: {_n(u.count, 'entry', 'entries')} (e.g. {ex})")
    if would_stop:
        out.line("  a real run with --policy error would stop before changing anything: "
                 "choose --policy skip or overflow, or fix the map")
    for m in report.skipped_mounts:
        out.line(f"  skipped mount point: {m}")
    for e in report.errors[:20]:
        out.line(f"  error: {e.path}: {e.operation}: {e.message}")
    if report.resumed:
        out.line(f"  resumed from journal {report.journal}")


def cmd_shift(args: argparse.Namespace, out: _Output) -> int:
    return _shift_like(args, out, "shift")


def cmd_unshift(args: argparse.Namespace, out: _Output) -> int:
    return _shift_like(args, out, "unshift")


def cmd_audit(args: argparse.Namespace, out: _Output) -> int:
    from .shift import audit_tree

    mapping = _load_pair(args.map, args.format)
    report = audit_tree(args.path, mapping, cross_mounts=args.cross_mounts)
    out.line(f"audit {report.root}: {report.entries} entries, state: {report.state}")
    for kind, counts in (("uid", report.uids), ("gid", report.gids)):
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        out.line(f"  {kind}s: " + ", ".join(f"{i} ({n})" for i, n in top))
    for u in report.outside:
        ex = ", ".join(u.examples[:3])
        out.line(f"  outside the map: {u.kind} {u.id}: {u.count} entries (e.g. {ex})")
    for e in report.errors[:20]:
        out.line(f"  error: {e.path}: {e.operation}: {e.message}")
    out.json(report.to_dict())
    return 1 if report.outside or report.errors else 0


# -- the parser and main -----------------------------------------------------------------


_DIGITS = re.compile(r"[0-9]+\Z")


def _id(text: str) -> int:
    if not _DIGITS.match(text):
        raise argparse.ArgumentTypeError(f"not a base-10 ID: {text!r}")
    if len(text.lstrip("0")) > 10 or int(text) > ID_MAX:
        what = "(uid_t)-1, never an ID" if text.lstrip("0") == "4294967295" else "too large"
        raise argparse.ArgumentTypeError(f"{text} is {what}: IDs are 0…{ID_MAX}")
    return int(text)


def _positive(text: str) -> int:
    if not _DIGITS.match(text):
        raise argparse.ArgumentTypeError(f"not a base-10 number: {text!r}")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _add_map_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--map", "-m", required=required, metavar="MAP",
                   help="the map: its text, @FILE, or - for stdin")
    p.add_argument("--format", "-f", choices=sorted(FORMATS), metavar="FORMAT",
                   help=f"the map's format (default: guessed): {', '.join(sorted(FORMATS))}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``userns`` command."""
    parser = argparse.ArgumentParser(
        prog="userns",
        description="Linux user-namespace UID/GID mapping: explain, translate, convert, "
        "check, allocate, run, shift, unshift, audit.",
        epilog="Maps are given as text, @FILE or - (stdin), in any format of "
        "'userns convert --help'. Exit status: 0 ok, 1 error or findings, 2 usage.",
    )
    parser.add_argument("--version", action="version", version=f"userns {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("explain", help="what Docker userns-remap builds for a user, and why")
    p.add_argument("--user", "-u", default="default", metavar="REMAP",
                   help="the userns-remap value: default (dockremap), USER, USER:GROUP, "
                   "UID, UID:GID")
    p.add_argument("--example", action="store_true",
                   help="use an embedded dockremap:231072:65536 instead of the system's files")
    p.add_argument("--data-root", default="/var/lib/docker", metavar="DIR",
                   help="Docker's data root (default /var/lib/docker)")
    _add_system_options(p)
    _add_json(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("translate", help="translate IDs through a map")
    _add_map_options(p)
    d = p.add_mutually_exclusive_group()
    d.add_argument("--to-host", dest="direction", action="store_const", const="to-host",
                   help="container IDs to host IDs (default)")
    d.add_argument("--to-container", dest="direction", action="store_const",
                   const="to-container", help="host IDs to container IDs")
    d.add_argument("--view", dest="direction", action="store_const", const="view",
                   help="host owners as seen from inside (overflow ID when unmapped)")
    p.set_defaults(direction="to-host")
    p.add_argument("--kind", "--side", dest="kind", choices=("uid", "gid"), default="uid",
                   help="which map of a pair format (default uid)")
    p.add_argument("--overflow", type=_id, default=OVERFLOW_ID,
                   help="with --view: the ID unmapped owners show as (default 65534)")
    p.add_argument("ids", nargs="+", type=_id, metavar="ID", help="IDs to translate (0…4294967294)")
    _add_json(p)
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("convert", help="convert a map from one format to another")
    p.add_argument("--from", "--format", "-f", dest="from_", choices=sorted(FORMATS),
                   metavar="FORMAT", help="input format (default: guessed)")
    p.add_argument("--to", required=True, choices=sorted(FORMATS), metavar="FORMAT",
                   help=f"output format: {', '.join(sorted(FORMATS))}")
    p.add_argument("--kind", "--side", dest="side", choices=("uid", "gid", "both"),
                   default="both", help="which map: uid, gid or both (default)")
    p.add_argument("input", nargs="?", default="-", help="the map text, @FILE, or - (stdin)")
    _add_json(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("check", help="lint subuid/subgid files, or check a map as the kernel")
    _add_system_options(p)
    p.add_argument("--map", "-m", metavar="MAP",
                   help="check this map (text, @FILE, -) against the kernel's uid_map rules")
    p.add_argument("--format", "-f", choices=sorted(FORMATS), metavar="FORMAT",
                   help="with --map: its format (default: guessed)")
    p.add_argument("--parent", metavar="MAP", help="with --map: the parent namespace's map")
    p.add_argument("--legacy", action="store_true", help="with --map: at most 5 lines")
    p.add_argument("--fail-on", choices=_LEVELS, default="info",
                   help="lowest finding severity that makes the exit status 1 (default info)")
    _add_json(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("allocate", help="a free subordinate range, as useradd picks it")
    p.add_argument("user", help="the owner (user name)")
    p.add_argument("--count", type=_positive, default=None,
                   help="how many IDs (default SUB_UID_COUNT from login.defs)")
    p.add_argument("--kind", choices=("uid", "gid", "both"), default="both",
                   help="allocate in subuid, subgid or both (default)")
    p.add_argument("--align", type=_positive, default=1,
                   help="start on a multiple of this (65536 for Kubernetes)")
    p.add_argument("--write", action="store_true",
                   help="add the ranges to the files (locked, atomic, with a backup)")
    p.add_argument("--force", action="store_true", help="even if the user has ranges already")
    _add_system_options(p)
    _add_json(p)
    p.set_defaults(func=cmd_allocate)

    p = sub.add_parser("run", help="run a command in a new user namespace with a map")
    _add_map_options(p)
    p.add_argument("--gid-map", metavar="MAP", help="a different map for groups")
    p.add_argument("--uid", type=_id, default=0, help="uid inside (default 0)")
    p.add_argument("--gid", type=_id, default=0, help="gid inside (default 0)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=cmd_run)

    for name, func, text in (
        ("shift", cmd_shift, "re-own a tree for a remapped container (container -> host IDs)"),
        ("unshift", cmd_unshift, "undo a shift (host IDs -> container IDs)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("path", help="the tree's root directory")
        _add_map_options(p)
        if name == "shift":
            p.add_argument("--source", metavar="MAP",
                           help="the map the tree is shifted by now (default: it holds "
                           "container IDs)")
        else:
            p.add_argument("--target", metavar="MAP",
                           help="re-shift to this map instead of back to container IDs")
        p.add_argument("--dry-run", "-n", action="store_true", help="change nothing; report")
        p.add_argument("--policy", choices=("error", "skip", "overflow"), default="error",
                       help="IDs the maps cannot translate: stop before any change (error), "
                       "leave them (skip), or give them the overflow ID")
        p.add_argument("--overflow", type=_id, default=OVERFLOW_ID,
                       help="with --policy overflow: the ID to give (default 65534)")
        p.add_argument("--on-error", choices=("stop", "continue"), default="stop",
                       help="a path that cannot be changed: stop, or report and continue")
        p.add_argument("--journal", metavar="FILE", help="where the resume journal lives")
        p.add_argument("--cross-mounts", action="store_true",
                       help="enter other filesystems mounted in the tree")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        _add_json(p)
        p.set_defaults(func=func)

    p = sub.add_parser("audit", help="count a tree's owners and tell whether it is shifted")
    p.add_argument("path", help="the tree's root directory")
    _add_map_options(p)
    p.add_argument("--cross-mounts", action="store_true",
                   help="enter other filesystems mounted in the tree")
    _add_json(p)
    p.set_defaults(func=cmd_audit)
    for command in sub.choices.values():
        # Also after the command name; SUPPRESS keeps a --debug given before it.
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks")
    return parser


def _prefix_message(message: str) -> str:
    return message if message.startswith("userns:") else f"userns: error: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``userns`` command; return its exit status (0 ok, 1 error/findings, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        return int(exc.code) if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    out = _Output(sys.stdout, bool(getattr(args, "json", False)))
    try:
        code: int = args.func(args, out)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        sys.stderr.write("userns: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): not an error of ours; keep Python quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except UsernsError as err:
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(_prefix_message(err.render()) + "\n")
        loc = err.location
        out.json({"ok": False, "error": {
            "reason": err.reason, "message": err.message,
            "path": loc.path if loc else None, "line": loc.line if loc else None,
            "column": loc.column if loc else None}})
        return 2 if isinstance(err, UsageError) else 1
    except OSError as err:
        if args.debug:
            traceback.print_exc()
        name = errno.errorcode.get(err.errno or 0, "")
        where = f"{err.filename}: " if err.filename else ""
        sys.stderr.write(f"userns: error: {where}{err.strerror or err} ({name})\n")
        out.json({"ok": False, "error": {"reason": name.lower() or "os-error",
                                         "message": f"{where}{err.strerror or err}"}})
        return 1
