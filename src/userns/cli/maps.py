"""``userns translate``, ``convert`` and ``run``: a map applied to IDs, texts and processes."""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Any

from ..formats.registry import FORMATS, detect_format, get_format
from ..ids import OVERFLOW_ID
from ..maps import IDMapPair
from ._common import (
    CommandError,
    Output,
    UsageError,
    add_json,
    add_map_options,
    format_name,
    load_pair,
    parse_id,
    prefix_message,
    read_text,
    show,
    triples,
)

__all__ = ["cmd_convert", "cmd_run", "cmd_translate", "register"]


def cmd_translate(args: argparse.Namespace, out: Output) -> int:
    pair = load_pair(args.map, args.format)
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
        out.line(f"{value} -> {show(got)}{note}")
    out.json({"direction": args.direction, "kind": args.kind, "results": results})
    if args.direction == "view":
        return 0
    return 0 if all(r["mapped"] for r in results) else 1


def cmd_convert(args: argparse.Namespace, out: Output) -> int:
    text, path = read_text(args.input)
    src = args.from_ or detect_format(text, "--from")
    pair = get_format(src).parse(text, path=path, side=args.side)
    for kind in ("uid", "gid") if args.side == "both" else (args.side,):
        if not getattr(pair, kind) and args.side != "both":
            raise CommandError(f"the input has no {kind} map", reason="empty")
    written = get_format(args.to).format(pair, side=args.side)
    if out.as_json:
        out.json({"from": get_format(src).name, "to": get_format(args.to).name,
                  "text": written, "uid_map": triples(pair.uid), "gid_map": triples(pair.gid)})
    else:
        out.stream.write(written if written.endswith("\n") or not written else written + "\n")
    return 0


# -- check -------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    from ..kernel import NamespaceSetupError, run_in_userns

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command given: userns run --map MAP -- COMMAND [ARGS...]")
    pair = load_pair(args.map, args.format)
    if args.gid_map is not None:
        pair = IDMapPair(pair.uid, load_pair(args.gid_map, args.format).gid)
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
        sys.stderr.write(prefix_message(err.render()) + "\n")
        return 127 if err.errno == errno.ENOENT else 126


# -- shift / unshift / audit -------------------------------------------------------------


def register(sub: Any) -> None:
    """Add this module's commands to the ``userns`` sub-parsers."""
    p = sub.add_parser("translate", help="translate IDs through a map")
    add_map_options(p)
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
    p.add_argument("--overflow", type=parse_id, default=OVERFLOW_ID,
                   help="with --view: the ID unmapped owners show as (default 65534)")
    p.add_argument("ids", nargs="+", type=parse_id, metavar="ID",
                   help="IDs to translate (0…4294967294)")
    add_json(p)
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("convert", help="convert a map from one format to another")
    p.add_argument("--from", "--format", "-f", dest="from_", type=format_name,
                   metavar="FORMAT", help="input format (default: guessed)")
    p.add_argument("--to", required=True, type=format_name, metavar="FORMAT",
                   help=f"output format: {', '.join(sorted(FORMATS))}")
    p.add_argument("--kind", "--side", dest="side", choices=("uid", "gid", "both"),
                   default="both", help="which map: uid, gid or both (default)")
    p.add_argument("input", nargs="?", default="-", help="the map text, @FILE, or - (stdin)")
    add_json(p)
    p.set_defaults(func=cmd_convert)


    p = sub.add_parser("run", help="run a command in a new user namespace with a map")
    add_map_options(p)
    p.add_argument("--gid-map", metavar="MAP", help="a different map for groups")
    p.add_argument("--uid", type=parse_id, default=0, help="uid inside (default 0)")
    p.add_argument("--gid", type=parse_id, default=0, help="gid inside (default 0)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=cmd_run)
