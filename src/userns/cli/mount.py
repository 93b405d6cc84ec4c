"""``userns mount``, ``probe`` and ``volume``: idmapped mounts, and the volume auto path.

The library decides (:mod:`userns.mount`); these commands render. A refusal from the
kernel is a :class:`~userns.errors.MountError`, which :func:`userns.cli.main` prints with
its reason and turns into exit status 1.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..ids import OVERFLOW_ID
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    Output,
    add_json,
    add_map_options,
    load_pair,
    parse_id,
    triples,
)

__all__ = ["cmd_mount", "cmd_probe", "cmd_volume", "register"]


def cmd_mount(args: argparse.Namespace, out: Output) -> int:
    from ..mount import idmapped_mount

    pair = load_pair(args.map, args.format)
    info = idmapped_mount(args.src, args.dst, pair, recursive=args.recursive)
    out.line(f"mounted {args.src} at {args.dst}, idmapped "
             f"({'with the mounts below it' if args.recursive else 'one level'}): on-disk "
             "ID k is seen as its host ID in the map")
    out.line(f"  {info.fs_type}, mount ID {info.mount_id}; uid map "
             f"{_text(pair.uid)}; gid map {_text(pair.gid)}")
    out.json({"ok": True, "source": args.src, "target": args.dst,
              "recursive": args.recursive, "idmapped": info.idmapped,
              "mount_id": info.mount_id, "fs_type": info.fs_type,
              "uid_map": triples(pair.uid), "gid_map": triples(pair.gid)})
    return EXIT_OK


def cmd_probe(args: argparse.Namespace, out: Output) -> int:
    from ..mount import probe

    answer = probe(args.path)
    verdict = "can be idmapped" if answer.ok else f"cannot be idmapped [{answer.reason}]"
    out.line(f"{args.path}: {verdict}")
    out.line(f"  {answer.message}")
    out.json(answer.to_dict())
    return EXIT_OK if answer.ok else EXIT_FAILURE


def cmd_volume(args: argparse.Namespace, out: Output) -> int:
    from ..mount import prepare_volume

    pair = load_pair(args.map, args.format)
    options: dict[str, Any] = {"policy": args.policy,
                               "overflow": (args.overflow, args.overflow)}
    if args.journal:
        options["journal"] = args.journal
    result = prepare_volume(args.path, pair, strategy=args.strategy, to=args.to,
                            recursive=args.recursive, **options)
    out.line(f"{args.path}: {result.strategy}; serve it from {result.served_at}")
    out.line(f"  {result.why}")
    report = result.shift
    if report is not None:
        out.line(f"  shifted {report.entries} entries, changed {report.changed}"
                 + ("" if report.complete else " (incomplete: run again to resume)"))
    out.json(result.to_dict())
    if report is not None and (report.errors or not report.complete):
        return EXIT_FAILURE
    return EXIT_OK


def _text(m: Any) -> str:
    return ", ".join(f"{e.container}:{e.host}:{e.size}" for e in m) or "(empty)"


def register(sub: Any) -> None:
    """Add ``mount``, ``probe`` and ``volume`` to the ``userns`` sub-parsers."""
    p = sub.add_parser("mount", help="bind-mount a tree idmapped (no chown: the mount "
                       "translates owners)")
    p.add_argument("src", help="the tree to mount (the IDs on disk are container IDs)")
    p.add_argument("dst", help="where to mount it (an existing directory, or file)")
    add_map_options(p)
    p.add_argument("--recursive", "-r", action="store_true",
                   help="carry the mounts below SRC too (each must take an idmap)")
    add_json(p)
    p.set_defaults(func=cmd_mount)

    p = sub.add_parser("probe", help="can PATH be idmapped here? (exit 0 yes, 1 no, with "
                       "the reason)")
    p.add_argument("path", help="a path on the mount to ask about")
    add_json(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("volume", help="give a tree to a remapped container: idmap it where "
                       "the kernel can, else shift it")
    p.add_argument("path", help="the volume's root (holding container IDs)")
    add_map_options(p)
    p.add_argument("--strategy", choices=("auto", "idmap", "shift"), default="auto",
                   help="auto (default): idmap when the probe says yes, else shift")
    p.add_argument("--to", metavar="DST",
                   help="mount the volume here (default: idmapped in place)")
    p.add_argument("--recursive", "-r", action="store_true",
                   help="idmap the mounts below PATH too")
    p.add_argument("--policy", choices=("error", "skip", "overflow"), default="error",
                   help="when shifting: IDs the map cannot translate (as userns shift)")
    p.add_argument("--overflow", type=parse_id, default=OVERFLOW_ID,
                   help="with --policy overflow: the ID to give (default 65534)")
    p.add_argument("--journal", metavar="DIR", help="when shifting: the resume journal")
    add_json(p)
    p.set_defaults(func=cmd_volume)
