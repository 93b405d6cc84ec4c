"""``userns shift``, ``unshift`` and ``audit``: re-own a volume tree for a remapped container."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..ids import OVERFLOW_ID
from ..maps import IDMapPair
from ._common import (
    CommandError,
    Output,
    add_json,
    add_map_options,
    load_pair,
    parse_id,
    plural,
)

__all__ = ["cmd_audit", "cmd_shift", "cmd_unshift", "register"]


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


def _shift_like(args: argparse.Namespace, out: Output, mode: str) -> int:
    from ..shift import ShiftError, UnmappedOwnersError, shift_tree

    if os.path.islink(args.path):
        raise CommandError(f"{args.path} is a symbolic link; userns never follows one: give "
                           "the directory it points to", reason="symlink")
    mapping = load_pair(args.map, args.format)
    other = getattr(args, "source", None) or getattr(args, "target", None)
    second = load_pair(other, args.format) if other else None
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
                n = plural(u.count, 'entry', 'entries')
                out.line(f"  cannot translate {u.kind} {u.id}: {n} (e.g. {ex})")
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


def _print_shift(report: Any, out: Output, mode: str, *, would_stop: bool = False) -> None:
    if getattr(report, "already_complete", False):
        out.line(f"{mode} {report.root}: already complete (the root carries the mark of this "
                 "very shift); nothing to do")
        return
    if report.dry_run:
        out.line(f"{mode} {report.root} (dry run, nothing changed): "
                 f"{plural(report.entries, 'entry', 'entries')}; the plan:")
    else:
        out.line(f"{mode} {report.root}: {plural(report.entries, 'entry', 'entries')}, changed "
                 f"{report.changed}, left unchanged {report.unchanged}")
    extra = []
    if report.hardlinks:
        extra.append(f"{plural(report.hardlinks, 'extra hard link', 'extra hard links')} "
                     "(each inode shifted once)")
    if report.modes_restored:
        extra.append(f"{plural(report.modes_restored, 'setuid/setgid mode', 'setuid/setgid modes')}"
                     " restored")
    if report.capabilities:
        extra.append(f"{plural(report.capabilities, 'capability', 'capabilities')} kept")
    if report.acls:
        extra.append(f"{plural(report.acls, 'ACL', 'ACLs')} shifted")
    if extra:
        out.line("  " + "; ".join(extra))
    for c in report.owner_changes[:20]:
        out.line(f"  {c.kind} {c.old} -> {c.new}: {c.count}")
    left = "cannot translate" if would_stop else "left as is, not in the map"
    for u in report.unmapped:
        ex = ", ".join(dict.fromkeys(u.examples[:3]))
        out.line(f"  {left}: {u.kind} {u.id}: {plural(u.count, 'entry', 'entries')} (e.g. {ex})")
    if would_stop:
        out.line("  a real run with --policy error would stop before changing anything: "
                 "choose --policy skip or overflow, or fix the map")
    for m in report.skipped_mounts:
        out.line(f"  skipped mount point: {m}")
    for e in report.errors[:20]:
        out.line(f"  error: {e.path}: {e.operation}: {e.message}")
    if report.resumed:
        out.line(f"  resumed from journal {report.journal}")


def cmd_shift(args: argparse.Namespace, out: Output) -> int:
    return _shift_like(args, out, "shift")


def cmd_unshift(args: argparse.Namespace, out: Output) -> int:
    return _shift_like(args, out, "unshift")


def cmd_audit(args: argparse.Namespace, out: Output) -> int:
    from ..shift import audit_tree

    mapping = load_pair(args.map, args.format)
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




def register(sub: Any) -> None:
    """Add this module's commands to the ``userns`` sub-parsers."""
    for name, func, text in (
        ("shift", cmd_shift, "re-own a tree for a remapped container (container -> host IDs)"),
        ("unshift", cmd_unshift, "undo a shift (host IDs -> container IDs)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("path", help="the tree's root directory")
        add_map_options(p)
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
        p.add_argument("--overflow", type=parse_id, default=OVERFLOW_ID,
                       help="with --policy overflow: the ID to give (default 65534)")
        p.add_argument("--on-error", choices=("stop", "continue"), default="stop",
                       help="a path that cannot be changed: stop, or report and continue")
        p.add_argument("--journal", metavar="FILE", help="where the resume journal lives")
        p.add_argument("--cross-mounts", action="store_true",
                       help="enter other filesystems mounted in the tree")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_json(p)
        p.set_defaults(func=func)

    p = sub.add_parser("audit", help="count a tree's owners and tell whether it is shifted")
    p.add_argument("path", help="the tree's root directory")
    add_map_options(p)
    p.add_argument("--cross-mounts", action="store_true",
                   help="enter other filesystems mounted in the tree")
    add_json(p)
    p.set_defaults(func=cmd_audit)
