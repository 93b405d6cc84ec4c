"""``userns doctor``: can this host run user namespaces, and what will go wrong.

The checks are :func:`userns.doctor.diagnose`'s; this module renders them.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ._common import CommandError, Output, add_json

__all__ = ["cmd_doctor", "register"]

_MARK = {"ok": "ok", "info": "info", "warning": "WARN", "error": "FAIL", "not-run": "skip"}


def cmd_doctor(args: argparse.Namespace, out: Output) -> int:
    root = args.root or "/"
    if not os.path.isdir(root):
        raise CommandError(f"--root {root}: no such directory", reason="io")
    if args.proc_sys and not os.path.isdir(args.proc_sys):
        raise CommandError(f"--proc-sys {args.proc_sys}: no such directory", reason="io")
    from ..doctor import diagnose

    report = diagnose(root, args.paths, proc_sys=args.proc_sys,
                      run_getsubids=not args.no_getsubids)
    where = "the running host" if report.live else root
    out.line(f"userns doctor: {where}")
    for c in report.checks:
        out.line(f"[{_MARK[c.status]:>4}] {c.title}")
        out.line(f"       {c.evidence}")
        if c.fix and c.status in ("warning", "error", "info"):
            out.line(f"       fix: {c.fix}")
    failed = [c for c in report.checks if c.failed]
    out.line(f"{len(report.checks)} checks, {len(failed)} failed")
    out.json({"ok": report.ok, "root": report.root, "live": report.live,
              "checks": [c.as_dict() for c in report.checks]})
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    """Add ``userns doctor``."""
    p = sub.add_parser("doctor", help="can this host run user namespaces, and what will "
                       "go wrong")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="also check that these paths can be idmapped")
    p.add_argument("--root", metavar="DIR",
                   help="check the system under DIR (its files; the live /proc/sys is read "
                   "only for the running host)")
    p.add_argument("--proc-sys", metavar="DIR",
                   help="read the sysctls from this /proc/sys tree")
    p.add_argument("--no-getsubids", action="store_true",
                   help="do not run the real getsubids")
    add_json(p)
    p.set_defaults(func=cmd_doctor)
