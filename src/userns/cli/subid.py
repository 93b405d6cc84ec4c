"""``userns check`` and ``allocate``: lint the subordinate ID files, pick ranges as useradd."""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Any

from ..errors import UsernsError
from ..formats.proc import format_proc, validate_map_write
from ..formats.registry import detect_format, get_format
from ..ids import MAX_EXTENTS
from ..maps import IDMap
from ..severity import Severity
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    LEVELS,
    CommandError,
    Output,
    System,
    add_json,
    add_system_options,
    capped,
    error_document,
    finding_dict,
    format_name,
    parse_positive,
    read_text,
    triples,
)

__all__ = ["cmd_allocate", "cmd_check", "register"]





def cmd_check(args: argparse.Namespace, out: Output) -> int:
    if args.map is not None:
        return _check_map(args, out)
    from ..subid import lint

    system = System(args)
    findings = lint(system.subid("uid"), system.subid("gid"), accounts=system.accounts(),
                    defs=system.login_defs())
    threshold = Severity.of(args.fail_on)
    failing = [f for f in findings if f.severity >= threshold]
    shown, more = capped(findings)
    for f in shown:
        out.line(f.render())
    if more:
        out.line(f"{more} (--json lists every finding)")
    out.line(f"{len(findings)} finding(s), {len(failing)} at or above {args.fail_on}")
    out.json({"subuid": system.subuid_path, "subgid": system.subgid_path,
              "findings": [finding_dict(f) for f in findings], "failing": len(failing)})
    return 1 if failing else 0


def _check_map(args: argparse.Namespace, out: Output) -> int:
    text, path = read_text(args.map)
    fmt = args.format or detect_format(text)
    # (kind, the text the kernel would be given, where it came from) for each map to check:
    # a proc text is checked as given (carets on the user's own text); any other format is
    # read, and each of its maps checked as the uid_map/gid_map text it stands for.
    if fmt == "proc":
        texts = [("uid", text, path)]
        parsed = None
    else:
        parsed = get_format(fmt).parse(text, path=path)
        where = f"{path or '<input>'} (as written to "
        texts = [(kind, format_proc(m), where + f"{kind}_map)")
                 for kind, m in (("uid", parsed.uid), ("gid", parsed.gid)) if m]
        if parsed.uid == parsed.gid:
            texts = texts[:1]  # one map for both: checked once
        if not texts:
            raise CommandError("the map is empty: the kernel takes no empty map",
                               reason="empty")
    parents: dict[str, IDMap | None] = {"uid": None, "gid": None}
    if args.parent is not None:
        ptext, ppath = read_text(args.parent)
        pfmt = detect_format(ptext, "--parent")
        if pfmt == "proc":
            whole = validate_map_write(ptext, path=ppath, page_size=1 << 30,
                                       max_extents=1 << 30)
            parents = {"uid": whole, "gid": whole}
        else:
            ppair = get_format(pfmt).parse(ptext, path=ppath)
            parents = {"uid": ppair.uid, "gid": ppair.gid}
    max_extents = 5 if args.legacy else MAX_EXTENTS
    checked: dict[str, IDMap] = {}
    for kind, kernel_text, origin in texts:
        try:
            checked[kind] = validate_map_write(kernel_text, path=origin, parent=parents[kind],
                                               max_extents=max_extents)
        except UsernsError as err:
            out.line(err.render())
            out.json({**error_document(err), "kind": kind})
            return EXIT_FAILURE
    both = parsed is not None and parsed.uid == parsed.gid
    for kind, m in checked.items():
        label = ("" if parsed is None else "uid_map and gid_map: " if both
                 else f"{kind}_map: ")
        out.line(f"ok: {label}the kernel would install {len(m)} extent(s), {m.size} IDs")
        out.line("  " + format_proc(m).rstrip("\n").replace("\n", "\n  "))
    first = next(iter(checked.values()))
    out.json({"ok": True, "map": triples(first),
              "uid_map": triples(checked.get("uid", first)),
              "gid_map": triples(checked.get("gid", first))})
    return EXIT_OK


# -- allocate ----------------------------------------------------------------------------


def cmd_allocate(args: argparse.Namespace, out: Output) -> int:
    from ..ranges import IDRange
    from ..subid import (
        UnknownOwnerWarning,
        add_subid_range,
        allocate,
        allocate_aligned,
        check_owner,
    )

    system = System(args)
    defs = system.login_defs()
    kinds = ("uid", "gid") if args.kind == "both" else (args.kind,)
    # The owner is checked before anything is allocated or written, against the passwd
    # the command reads (--root, --passwd): a refusal leaves both files untouched.
    accounts = system.accounts()
    warned: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnknownOwnerWarning)
        check_owner(args.user, accounts=accounts, badname=args.badname,
                    allow_unknown_owner=args.allow_unknown_owner or not args.write)
    warned += [str(w.message) for w in caught if issubclass(w.category, UnknownOwnerWarning)]
    if warned and not args.write:
        then = ("--write with --allow-unknown-owner would write it anyway"
                if args.allow_unknown_owner else
                "--write would refuse it (--allow-unknown-owner writes it anyway)")
        warned = [f"{args.user!r} has no passwd entry: {then}"]
    chosen: dict[str, IDRange] = {}
    skipped: list[str] = []
    for kind in kinds:
        if args.count is None and defs.subid_limits(kind).count == 0:
            # useradd allocates no range of a kind whose SUB_?ID_COUNT is 0.
            skipped.append(kind)
            out.line(f"sub{kind}: none: SUB_{kind.upper()}_COUNT is 0 in login.defs, so "
                     "useradd allocates no range")
            continue
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
    for message in warned:
        out.line(f"warning: {message}")
    if args.write:
        for kind, r in chosen.items():
            path = system.subuid_path if kind == "uid" else system.subgid_path
            existed = os.path.exists(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnknownOwnerWarning)  # said once above
                add_subid_range(path, args.user, r, missing_ok=True, accounts=accounts,
                                allow_unknown_owner=args.allow_unknown_owner,
                                badname=args.badname)
            out.line(f"wrote {path}" + (f" (backup {path}-)" if existed else " (new file)"))
    out.json({"user": args.user, "written": bool(args.write) and bool(chosen),
              "warnings": warned, "skipped": skipped,
              "ranges": {k: {"start": r.start, "count": r.size} for k, r in chosen.items()}})
    return 0


# -- run ---------------------------------------------------------------------------------



def register(sub: Any) -> None:
    """Add this module's commands to the ``userns`` sub-parsers."""
    p = sub.add_parser("check", help="lint subuid/subgid files, or check a map as the kernel")
    add_system_options(p)
    p.add_argument("--map", "-m", metavar="MAP",
                   help="check this map (text, @FILE, -) against the kernel's uid_map rules")
    p.add_argument("--format", "-f", type=format_name, metavar="FORMAT",
                   help="with --map: its format (default: guessed)")
    p.add_argument("--parent", metavar="MAP", help="with --map: the parent namespace's map")
    p.add_argument("--legacy", action="store_true", help="with --map: at most 5 lines")
    p.add_argument("--fail-on", choices=LEVELS, default="warning",
                   help="lowest finding severity that makes the exit status 1 "
                   "(default warning)")
    add_json(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("allocate", help="a free subordinate range, as useradd picks it")
    p.add_argument("user", help="the owner (user name)")
    p.add_argument("--count", type=parse_positive, default=None,
                   help="how many IDs (default SUB_UID_COUNT from login.defs)")
    p.add_argument("--kind", choices=("uid", "gid", "both"), default="both",
                   help="allocate in subuid, subgid or both (default)")
    p.add_argument("--align", type=parse_positive, default=1,
                   help="start on a multiple of this (65536 for Kubernetes)")
    p.add_argument("--write", action="store_true",
                   help="add the ranges to the files (locked, atomic, with a backup)")
    p.add_argument("--force", action="store_true", help="even if the user has ranges already")
    p.add_argument("--allow-unknown-owner", action="store_true",
                   help="with --write: write an owner that passwd does not know (warned)")
    p.add_argument("--badname", action="store_true",
                   help="accept user names beyond shadow's portable set, as useradd "
                   "--badname (never ':', white space, control or non-ASCII characters)")
    add_system_options(p)
    add_json(p)
    p.set_defaults(func=cmd_allocate)
