"""``userns access``: what a container identity may do at host paths, and which rule decides.

The library decides (:mod:`userns.access`: the walk from ``/`` reads the filesystem, the
decision is the kernel's order of checks); this command renders one table per path, a
row per component, and the one-line summary. Exit 0 when the analysis ran, whatever
the verdicts; 1 on an error (a path that cannot be read, a map that cannot be built).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..maps import IDMapPair
from ._common import (
    EXIT_OK,
    CommandError,
    Output,
    System,
    UsageError,
    add_json,
    add_map_options,
    load_pair,
    parse_id,
    triples,
)

__all__ = ["cmd_access", "register"]


def _groups(text: str) -> tuple[int, ...]:
    """``--groups 0,33,100`` (an empty text: no groups)."""
    return tuple(parse_id(part.strip()) for part in text.split(",") if part.strip())


def _pair(args: argparse.Namespace) -> tuple[IDMapPair, str]:
    if (args.map is None) == (args.user is None):
        raise UsageError("userns access: give the map with -m MAP or a userns-remap user "
                         "with --user NAME (one of them)")
    if args.map is not None:
        if args.root:
            raise UsageError("userns access: --root goes with --user (it names the system "
                             "whose /etc/subuid and /etc/subgid give the user's map)")
        return load_pair(args.map, args.format), "the map given"
    from ..runtimes import docker_remap

    system = System(args)
    maps = docker_remap(system.subid("uid"), system.subid("gid"), args.user,
                        accounts=system.accounts())
    pair = maps.pair
    if pair is None:
        why = maps.error.message if maps.error is not None else "no map"
        raise CommandError(f"no userns-remap map for {args.user!r}: {why}",
                           reason=maps.error.reason if maps.error is not None else "no-map")
    return pair, f"dockerd --userns-remap={args.user} ({system.subuid_path})"


def _owner(uid: int, gid: int) -> str:
    return f"{'?' if uid < 0 else uid}:{'?' if gid < 0 else gid}"


def _verdict(v: Any) -> str:
    return f"{'yes' if v.allowed else 'no'} ({v.rule})"


def _rows(result: Any) -> list[list[str]]:
    rows = [["component", "type", "mode", "host owner", "inside", "acl", "verdict"]]
    last = len(result.components) - 1
    for i, c in enumerate(result.components):
        ino = c.inode
        flags = "".join(f for f, on in (("i", ino.immutable), ("a", ino.append_only))
                        if on)
        mode = f"{ino.mode:04o}" + (f" +{flags}" if flags else "")
        if ino.readonly:
            mode += " ro"
        if i == last:
            x = "search" if ino.is_dir else "exec"
            verdict = (f"read {_verdict(result.read)}, write {_verdict(result.write)}, "
                       f"{x} {_verdict(result.exec)}")
        elif c.search is not None:
            verdict = f"search {_verdict(c.search)}"
        elif c.follow is not None:
            verdict = f"follow {_verdict(c.follow)}"
        else:
            verdict = ""
        inside = f"{c.view_uid}:{c.view_gid}"
        if not (c.uid_mapped and c.gid_mapped):
            inside += " (unmapped)"
        acl = "" if ino.acl is None else f"{len(ino.acl.entries)} entries"
        kind = {"directory": "dir", "symlink": "link"}.get(ino.kind, ino.kind)
        rows.append([ino.path, kind, mode, _owner(ino.uid, ino.gid), inside, acl, verdict])
    return rows


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1]
            for r in rows]


def cmd_access(args: argparse.Namespace, out: Output) -> int:
    from ..access import Identity, analyze

    if any(not path for path in args.paths):
        raise UsageError("an empty PATH names no file (use . for the current directory)")
    pair, source = _pair(args)
    gid = args.uid if args.gid is None else args.gid
    who = Identity(pair, args.uid, gid, args.groups)
    results = [analyze(path, who) for path in args.paths]
    caps = ", ".join(sorted(who.caps)) or "none"
    out.line(f"{who.describe()} = host uid {who.host_uid}, gid {who.host_gid}; "
             f"capabilities: {caps}; map: {source}")
    for r in results:
        out.line("")
        out.line(r.path)
        for line in _table(_rows(r)):
            out.line(line)
        if r.create is not None and r.delete is not None:
            out.line(f"  create entries: {_verdict(r.create)}; delete entries: "
                     f"{_verdict(r.delete)}")
            shown = {r.why.split(": ", 1)[-1]}  # the summary line says it already
            for v in (r.create, r.delete):
                if not v.allowed and v.detail not in shown:
                    shown.add(v.detail)
                    out.line(f"    {v.detail}")
        out.line(f"  {r.why}")
    out.json({"identity": who.to_dict(), "uid_map": triples(pair.uid),
              "gid_map": triples(pair.gid), "results": [r.to_dict() for r in results]})
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``userns access`` to the ``userns`` sub-parsers."""
    p = sub.add_parser(
        "access", help="what a container uid may do at host paths, and which rule decides",
        description="For each PATH, walk from / down and say whether the container "
        "identity may search each directory and read, write and exec (search) the last "
        "component, and for a directory create and delete entries; each verdict names the "
        "kernel rule that decided it. Exit 0 when the analysis ran, whatever the verdicts.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="host paths to analyse")
    add_map_options(p, required=False)
    p.add_argument("--user", "-u", metavar="NAME",
                   help="take the map dockerd --userns-remap=NAME builds from /etc/subuid "
                   "and /etc/subgid")
    p.add_argument("--root", metavar="DIR",
                   help="with --user: read DIR/etc/{subuid,subgid,passwd,group}")
    p.add_argument("--uid", type=parse_id, default=0, metavar="N",
                   help="the uid inside the container (default 0: container root, with the "
                   "full capability set; any other uid has none)")
    p.add_argument("--gid", type=parse_id, default=None, metavar="G",
                   help="the gid inside (default: the uid)")
    p.add_argument("--groups", metavar="G,...", type=_groups, default=(),
                   help="supplementary groups inside, comma-separated")
    add_json(p)
    p.set_defaults(func=cmd_access)
