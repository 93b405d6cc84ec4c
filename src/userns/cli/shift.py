"""``userns shift``, ``unshift`` and ``audit``: re-own a volume tree for a remapped container."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..ids import OVERFLOW_ID
from ..maps import IDMapPair
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    CommandError,
    Output,
    System,
    UsageError,
    add_json,
    add_map_options,
    add_system_options,
    capped,
    load_pair,
    parse_id,
    parse_positive,
    plural,
)

__all__ = ["cmd_audit", "cmd_shift", "cmd_unshift", "register"]

#: The library these commands run, imported as part of the process's start-up (see
#: ``userns.cli._StartUp``), not by ``--help``.
_LIBRARY = ("userns.shift",)


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


def _resolve_user(args: argparse.Namespace) -> tuple[IDMapPair, str]:
    """The maps ``dockerd --userns-remap=USER`` gives, from the subuid/subgid files as
    ``explain`` reads them (the library decides; see :func:`userns.runtimes.docker_remap`)."""
    from ..runtimes import detect_docker_version, docker_remap, docker_rules

    system = System(args)
    version = args.docker_version
    if version is None:
        root = getattr(args, "root", None) or "/"
        found = detect_docker_version() if root == "/" else None
        version = found or "main"
    rules = docker_rules(version)
    r = docker_remap(system.subid("uid"), system.subid("gid"), args.user,
                     accounts=system.accounts(), version=rules)
    if r.pair is None:
        why = r.error.message if r.error is not None else "; ".join(n.message for n in r.notes)
        raise CommandError(f"--user {args.user}: dockerd ({rules.version} rules) builds no map "
                           f"from {system.subuid_path} and {system.subgid_path}: {why}",
                           reason=r.error.reason if r.error is not None else "no-map")
    return r.pair, f"--user {args.user} ({rules.version} rules: {system.subuid_path}, " \
                   f"{system.subgid_path})"


def _mapping(args: argparse.Namespace) -> IDMapPair:
    """The map of the command: ``--map`` or ``--user``, with ``--gid-map`` for groups."""
    if (args.map is None) == (args.user is None):
        raise UsageError(f"{args.command}: give the map with exactly one of --map MAP and "
                         "--user NAME")
    if args.user is None:
        named = [o for o in ("root", "subuid", "subgid", "passwd", "group", "docker_version")
                 if getattr(args, o, None)]
        if named:
            raise UsageError(f"{args.command}: --{named[0].replace('_', '-')} goes with --user "
                             "NAME, not with --map")
        pair = load_pair(args.map, args.format)
    else:
        pair, _ = _resolve_user(args)
    if args.gid_map is not None:
        pair = IDMapPair(pair.uid, load_pair(args.gid_map, args.format).gid)
    return pair


def _list(out: Output, items: Sequence[Any], render: Callable[[Any], str]) -> None:
    """Print a list, at most TEXT_CAP lines, ending with "… and N more" when cut."""
    shown, more = capped(items)
    for item in shown:
        out.line("  " + render(item))
    if more:
        out.line(f"  {more}")


def _unmapped_line(prefix: str) -> Callable[[Any], str]:
    def render(u: Any) -> str:
        ex = ", ".join(dict.fromkeys(u.examples[:3]))
        return f"{prefix}{u.kind} {u.id}: {plural(u.count, 'entry', 'entries')} (e.g. {ex})"
    return render


def _error_line(e: Any) -> str:
    return f"error: {e.path}: {e.operation}: {e.message}"


def _outside_line(o: Any) -> str:
    return (f"{o.path}: {o.links} links, {o.inside} inside the tree, "
            f"{o.outside} outside")


def _shift_like(args: argparse.Namespace, out: Output, mode: str) -> int:
    from ..shift import OutsideLinksError, ShiftError, UnmappedOwnersError, shift_tree

    if os.path.islink(args.path):
        raise CommandError(f"{args.path} is a symbolic link; userns never follows one: give "
                           "the directory it points to", reason="symlink")
    mapping = _mapping(args)
    other = getattr(args, "source", None) or getattr(args, "target", None)
    second = load_pair(other, args.format) if other else None
    if mode == "shift":
        target: IDMapPair | None = mapping
        source = second
    else:
        target = second
        source = mapping
    rollback = bool(getattr(args, "rollback", False))
    if rollback and args.dry_run:
        raise UsageError("shift: --rollback cannot be combined with --dry-run")
    show_bar = not out.as_json and not args.no_progress and sys.stderr.isatty()
    overflow = (args.overflow, args.overflow)
    with _progress_bar(show_bar, mode) as progress:
        try:
            if mode == "unshift" and target is None:
                from ..shift import unshift_tree

                report = unshift_tree(args.path, mapping, policy=args.policy,
                                      overflow=overflow, dry_run=args.dry_run,
                                      progress=progress, journal=args.journal,
                                      cross_mounts=args.cross_mounts, on_error=args.on_error,
                                      include_outside_links=args.include_outside_links,
                                      trust_mark=args.trust_mark, workers=args.workers)
            else:
                report = shift_tree(args.path, target, source=source, policy=args.policy,
                                    overflow=overflow, dry_run=args.dry_run,
                                    progress=progress, journal=args.journal,
                                    cross_mounts=args.cross_mounts, on_error=args.on_error,
                                    include_outside_links=args.include_outside_links,
                                    trust_mark=args.trust_mark, rollback=rollback,
                                    workers=args.workers)
        except (UnmappedOwnersError, ShiftError, OutsideLinksError) as err:
            _list(out, err.report.unmapped, _unmapped_line("cannot translate "))
            _list(out, err.report.outside_links,
                  lambda o: "hard link with a name outside the tree: " + _outside_line(o))
            _list(out, err.report.errors, _error_line)
            raise
    would_stop = report.dry_run and args.policy == "error" and bool(
        report.unmapped or (report.outside_links and not args.include_outside_links))
    _print_shift(report, out, mode, would_stop=would_stop, policy=args.policy)
    out.json({**report.to_dict(), "would_stop": would_stop} if report.dry_run
             else report.to_dict())
    if report.dry_run:
        return EXIT_FAILURE if report.errors or would_stop else EXIT_OK
    return EXIT_FAILURE if report.errors or not report.complete else EXIT_OK


def _print_shift(report: Any, out: Output, mode: str, *, would_stop: bool = False,
                 policy: str = "error") -> None:
    entries = plural(report.entries, "entry", "entries")
    if report.already_complete:
        out.line(f"{mode} {report.root}: the root carries the mark of this very shift; not "
                 "verified (--trust-mark): nothing was checked or changed")
        return
    if report.rolled_back:
        out.line(f"{mode} {report.root}: rolled back the interrupted shift: {entries}, "
                 f"restored {report.changed}; journal {report.journal} removed")
    elif report.dry_run:
        what = ("a verifying walk (the root carries the mark of this very shift)"
                if report.verified else "the plan")
        out.line(f"{mode} {report.root} (dry run, nothing changed): {entries}; {what}:")
    elif report.verified:
        fixed = (f"fixed {report.changed}" if report.changed
                 else "nothing to fix: already complete")
        out.line(f"{mode} {report.root}: verified (the root carries the mark of this very "
                 f"shift): {entries} checked, {fixed}")
    else:
        out.line(f"{mode} {report.root}: {entries}, changed "
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
    _list(out, report.owner_changes, lambda c: f"{c.kind} {c.old} -> {c.new}: {c.count}")
    left = ("cannot translate: " if would_stop
            else "not in the map, given the overflow ID: " if policy == "overflow"
            else "left as is, not in the map: ")
    _list(out, report.unmapped, _unmapped_line(left))
    if report.outside_links:
        how = "a real run would refuse the tree" if would_stop else "left alone"
        count = plural(len(report.outside_links), "hard-linked inode has",
                       "hard-linked inodes have")
        out.line(f"  {count} a name outside the tree ({how}; --include-outside-links "
                 "re-owns them):")
        _list(out, report.outside_links, lambda o: "  " + _outside_line(o))
    if would_stop:
        out.line("  a real run with --policy error would stop before changing anything: "
                 "choose --policy skip or overflow, or fix the map")
    _list(out, report.skipped_mounts, lambda m: f"skipped mount point: {m}")
    _list(out, report.errors, _error_line)
    if report.resumed and not report.rolled_back:
        if report.dry_run:
            out.line(f"  the plan of a resume of the interrupted shift (journal "
                     f"{report.journal})")
        else:
            out.line(f"  resumed from journal {report.journal}")


def cmd_shift(args: argparse.Namespace, out: Output) -> int:
    return _shift_like(args, out, "shift")


def cmd_unshift(args: argparse.Namespace, out: Output) -> int:
    return _shift_like(args, out, "unshift")


def _counts_line(label: str, counted: Sequence[tuple[object, int]]) -> str:
    """``  label: a (n), b (m)``: the first 10 of ``counted``, ending with "… and N more"
    when cut."""
    shown, more = capped(counted, 10)
    return (f"  {label}: " + ", ".join(f"{what} ({n})" for what, n in shown)
            + (f", {more}" if more else ""))


def cmd_audit(args: argparse.Namespace, out: Output) -> int:
    from ..shift import audit_tree

    mapping = _mapping(args)
    report = audit_tree(args.path, mapping, cross_mounts=args.cross_mounts,
                        journal=args.journal, xattrs=not args.owners_only,
                        workers=args.workers)
    out.line(f"audit {report.root}: {report.entries} entries, state: {report.state}")
    for label, counts in (("uids", report.uids), ("gids", report.gids),
                          ("ACL uids", report.acl_uids), ("ACL gids", report.acl_gids),
                          ("capability root IDs", report.cap_rootids)):
        if not counts and label not in ("uids", "gids"):
            continue
        out.line(_counts_line(label, sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))
    if not report.xattrs:
        out.line("  ACLs and capabilities: not read (--owners-only); the state speaks "
                 "for the owners alone")
    _list(out, report.outside, _unmapped_line("outside the map: "))
    if report.outside_links:
        count = plural(len(report.outside_links), "hard-linked inode has",
                       "hard-linked inodes have")
        out.line(f"  {count} a name outside the tree (a shift leaves them alone):")
        _list(out, report.outside_links, lambda o: "  " + _outside_line(o))
    mark = report.mark
    if mark is None:
        out.line("  mark: none (no shift has finished on this root)")
    else:
        which = ("a shift of container IDs by this map" if mark.matches
                 else "another shift" if mark.uid else "a shift (maps not recorded)")
        holds = ("" if mark.holds else "; the root's owner has changed since, so a shift "
                 "ignores it")
        out.line(f"  mark: {which} finished on this root (owner {mark.owner[0]}:"
                 f"{mark.owner[1]}, policy {mark.policy or 'unknown'}){holds}")
    if report.journal is not None:
        out.line(f"  pending journal: {report.journal} (an interrupted shift: run it again "
                 "to resume, or roll it back with unshift / shift --rollback)")
    _list(out, report.errors, _error_line)
    from ..mount import probe

    idmap = probe(args.path)
    if idmap.ok:
        out.line("  idmapped mount: possible here; instead of shifting this tree, an "
                 "idmapped mount of it in its unshifted state serves the container "
                 "('userns mount' / 'userns volume'), in constant time")
    else:
        out.line(f"  idmapped mount: not possible here ({idmap.reason}): a shift is the way")
    _list(out, report.skipped_mounts, lambda m: f"skipped mount point: {m}")
    wrong_state = report.state in ("mixed", "unshifted")
    if report.state == "mixed":
        for label, ids in (("unshifted (container IDs of the map)", report.unshifted_ids),
                           ("shifted (host IDs of the map)", report.shifted_ids)):
            out.line(_counts_line(label, [
                (f"{kind} {i}", n) for kind, counts in ids.items()
                for i, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]))
    elif report.state == "unknown":
        out.line("  state unknown: no ID is only a container ID or only a host ID of this "
                 "map (an identity map, IDs on both sides of an overlapping one, or only "
                 "IDs outside it)")
    if wrong_state:
        out.line(f"  the tree is {report.state}, not shifted by this map: exit status 1")
    if report.outside:
        out.line(f"  {plural(len(report.outside), 'ID is', 'IDs are')} outside "
                 "the map (neither a container nor a host ID of it): exit status 1")
    if report.errors:
        out.line("  some paths could not be read: exit status 1")
    out.json({**report.to_dict(), "idmap": idmap.to_dict()})
    return EXIT_FAILURE if report.outside or report.errors or wrong_state else EXIT_OK


def _add_maps(p: argparse.ArgumentParser) -> None:
    add_map_options(p, required=False)
    p.add_argument("--gid-map", metavar="MAP", help="a different map for groups")
    p.add_argument("--user", "-u", default=None, metavar="REMAP",
                   help="instead of --map: the maps dockerd --userns-remap=REMAP builds "
                   "from the subuid/subgid files (as explain reads them)")
    p.add_argument("--docker-version", default=None, metavar="VERSION",
                   help="with --user: the dockerd whose rules apply (default: 'dockerd "
                   "--version' when installed, else main)")
    add_system_options(p)


def _parse_workers(text: str) -> int:
    from ..shift import MAX_WORKERS  # (the command loads it anyway; --help does not)

    value = parse_positive(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_WORKERS}: {text!r}")
    return value


def _add_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_parse_workers, default=None, metavar="N",
                   help="processes that share the walk (default: as many as CPUs, at most "
                   "2; 1 walks in this process; more may help on slow disks; at most 64)")


def register(sub: Any) -> None:
    """Add this module's commands to the ``userns`` sub-parsers."""
    for name, func, text in (
        ("shift", cmd_shift, "re-own a tree for a remapped container (container -> host IDs)"),
        ("unshift", cmd_unshift, "undo a shift (host IDs -> container IDs)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("path", help="the tree's root directory")
        _add_maps(p)
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
        p.add_argument("--journal", metavar="DIR",
                       help="where the resume journal lives (a directory userns creates)")
        p.add_argument("--cross-mounts", action="store_true",
                       help="enter other filesystems mounted in the tree")
        _add_workers(p)
        p.add_argument("--include-outside-links", action="store_true",
                       help="also re-own hard-linked files with a name outside the tree "
                       "(by default they are refused under --policy error, else left)")
        p.add_argument("--trust-mark", action="store_true",
                       help="on a tree whose root carries the mark of this very shift, "
                       "check nothing (default: verify the tree and fix what is wrong)")
        if name == "shift":
            p.add_argument("--rollback", action="store_true",
                           help="undo an interrupted run of this shift from its journal")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_json(p)
        p.set_defaults(func=func, command=name, preload=_LIBRARY)

    p = sub.add_parser("audit", help="count a tree's owners and tell whether it is shifted")
    p.add_argument("path", help="the tree's root directory")
    _add_maps(p)
    p.add_argument("--cross-mounts", action="store_true",
                   help="enter other filesystems mounted in the tree")
    p.add_argument("--journal", metavar="DIR",
                   help="where to look for a pending journal (default: next to the tree)")
    _add_workers(p)
    p.add_argument("--owners-only", action="store_true",
                   help="count owners only: do not read the IDs that ACLs and file "
                        "capabilities name (one system call less per file)")
    add_json(p)
    p.set_defaults(func=cmd_audit, command="audit", preload=_LIBRARY)
