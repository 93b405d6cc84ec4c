"""``userns check`` and ``allocate``: lint the subordinate ID files, pick ranges as useradd."""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Any

from ..errors import UsernsError
from ..formats.proc import format_proc, validate_map_write
from ..formats.registry import FORMATS, detect_format, get_format
from ..ids import MAX_EXTENTS
from ._common import (
    LEVELS,
    CommandError,
    Output,
    System,
    add_json,
    add_system_options,
    finding_dict,
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
    threshold = LEVELS.index(args.fail_on)
    failing = [f for f in findings if int(f.severity) >= threshold]
    for f in findings:
        out.line(f.render())
    out.line(f"{len(findings)} finding(s), {len(failing)} at or above {args.fail_on}")
    out.json({"subuid": system.subuid_path, "subgid": system.subgid_path,
              "findings": [finding_dict(f) for f in findings], "failing": len(failing)})
    return 1 if failing else 0


def _check_map(args: argparse.Namespace, out: Output) -> int:
    text, path = read_text(args.map)
    fmt = args.format or detect_format(text)
    if fmt != "proc":
        # Another format: check the uid_map text it stands for, as the kernel would.
        text = format_proc(get_format(fmt).parse(text, path=path, side="uid").uid)
    parent = None
    if args.parent is not None:
        ptext, ppath = read_text(args.parent)
        parent = validate_map_write(ptext, path=ppath, page_size=1 << 30, max_extents=1 << 30)
    max_extents = 5 if args.legacy else MAX_EXTENTS
    try:
        m = validate_map_write(text, path=path, parent=parent, max_extents=max_extents)
    except UsernsError as err:
        out.line(err.render())
        loc = err.location
        out.json({"ok": False, "error": {
            "reason": err.reason, "message": err.message, "path": loc.path if loc else None,
            "line": loc.line if loc else None, "column": loc.column if loc else None}})
        return 1
    out.line(f"ok: the kernel would install {len(m)} extent(s), {m.size} IDs")
    out.line("  " + format_proc(m).rstrip("\n").replace("\n", "\n  "))
    out.json({"ok": True, "map": triples(m)})
    return 0


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
        warned = [f"{args.user!r} has no passwd entry: --write would refuse it "
                  "(--allow-unknown-owner writes it anyway)"]
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
    out.json({"user": args.user, "written": bool(args.write), "warnings": warned,
              "ranges": {k: {"start": r.start, "count": r.size} for k, r in chosen.items()}})
    return 0


# -- run ---------------------------------------------------------------------------------



def register(sub: Any) -> None:
    """Add this module's commands to the ``userns`` sub-parsers."""
    p = sub.add_parser("check", help="lint subuid/subgid files, or check a map as the kernel")
    add_system_options(p)
    p.add_argument("--map", "-m", metavar="MAP",
                   help="check this map (text, @FILE, -) against the kernel's uid_map rules")
    p.add_argument("--format", "-f", choices=sorted(FORMATS), metavar="FORMAT",
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
