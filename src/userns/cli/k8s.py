"""``userns k8s check`` and ``userns k8s pods``: kubelet's pod ID pool on a node.

The decisions are :mod:`userns.kubelet`'s; this module reads the options and renders.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING, Any

from ..formats.registry import get_format
from ._common import (
    CommandError,
    Output,
    UsageError,
    add_json,
    capped,
    finding_dict,
    format_name,
    parse_positive,
)

if TYPE_CHECKING:  # the library is imported when a k8s command runs, not at start-up
    from ..kubelet import KubeletNode, Pod, Pool, StartError

#: kubelet's defaults (``userns.kubelet.DEFAULT_IDS_PER_POD``/``DEFAULT_MAX_PODS``, checked
#: equal by a test), here so that building the parser imports no library module.
DEFAULT_IDS_PER_POD = 65536
DEFAULT_MAX_PODS = 110

__all__ = ["cmd_check", "cmd_pods", "register"]


def _node(args: argparse.Namespace) -> KubeletNode:
    root = args.root or "/"
    if args.root and not os.path.isdir(args.root):
        raise CommandError(f"--root {args.root}: no such directory", reason="io")
    if args.kubelet_dir and not os.path.isdir(args.kubelet_dir):
        raise CommandError(f"--kubelet-dir {args.kubelet_dir}: no such directory", reason="io")
    try:
        from ..kubelet import read_node

        return read_node(root, kubelet_dir=args.kubelet_dir, ids_per_pod=args.ids_per_pod,
                         max_pods=args.max_pods, run_real=not args.no_getsubids)
    except ValueError as err:
        raise UsageError(str(err)) from err


def _error(err: StartError | None) -> dict[str, Any] | None:
    return None if err is None else {"reason": err.reason, "message": err.message,
                                     "pod": err.pod}


def _pod_dict(pod: Pod, err: StartError | None) -> dict[str, Any]:
    return {"uid": pod.uid, "path": pod.path, "userns": pod.has_userns,
            "host_first": pod.host_first, "length": pod.length,
            "ok": err is None, "error": _error(err)}


def _pool_text(pool: Pool) -> str:
    last = pool.stop - 1
    return (f"{pool.first}…{last} ({pool.length} IDs, {pool.slots} slots of "
            f"{pool.ids_per_pod}; from {pool.source})")


def cmd_check(args: argparse.Namespace, out: Output) -> int:
    node = _node(args)
    blocked = {p.uid: e for p, e in node.blocking()}
    if node.pool is not None:
        out.line(f"pool: {_pool_text(node.pool)}")
    for g in (*node.predicted, *node.real):
        shown = g.stdout.rstrip("\n") or g.stderr.rstrip("\n")
        out.line(f"{g.source} '{g.command}': {shown} (status {g.status})")
    if node.ok:
        out.line(f"ok: kubelet would start (maxPods {node.max_pods}, idsPerPod "
                 f"{node.ids_per_pod})")
    else:
        assert node.error is not None
        out.line(f"kubelet would not start: {node.error.message}")
    used = [p for p in node.pods if p.has_userns]
    if used:
        out.line(f"{len(used)} pod(s) in user namespaces, {len(blocked)} refused")
    listed, more = capped(node.findings)
    for f in listed:
        out.line(f"{f.severity}: {f.message} [{f.reason}]")
    if more:
        out.line(more)
    out.json({
        "ok": node.ok, "error": _error(node.error),
        "pool": None if node.pool is None else node.pool.as_dict(),
        "free_slots": node.free_slots(),
        "pods": [_pod_dict(p, blocked.get(p.uid)) for p in node.pods],
        "findings": [finding_dict(f) for f in node.findings],
        "getsubids": [{"source": g.source, "command": g.command, "stdout": g.stdout,
                       "stderr": g.stderr, "status": g.status}
                      for g in (*node.predicted, *node.real)],
    })
    return 0 if node.ok and node.secure else 1


_DIGITS = re.compile(r"[0-9]+")


def _parse_pool(text: str) -> tuple[int, int]:
    """``FIRST:LENGTH``: two base-10 numbers, LENGTH at least 1 (a pool of no IDs holds no
    pod; kubelet's own checks of the numbers are reported, not refused here)."""
    first, sep, length = text.partition(":")
    if not sep or not _DIGITS.fullmatch(first) or not _DIGITS.fullmatch(length):
        raise argparse.ArgumentTypeError(
            f"expected FIRST:LENGTH, two base-10 numbers (LENGTH at least 1), found {text!r}")
    if int(length) == 0:
        raise argparse.ArgumentTypeError(
            f"the pool's LENGTH must be at least 1 (a pool of no IDs holds no pod), found "
            f"{text!r}")
    return int(first), int(length)


def cmd_pods(args: argparse.Namespace, out: Output) -> int:
    node = _node(args)
    pool = node.pool
    if args.pool is not None:
        from ..kubelet import Pool

        pool = Pool(args.pool[0], args.pool[1], node.ids_per_pod, "given")
    blocked = {p.uid: e for p, e in node.blocking(pool)}
    fmt = get_format(args.format) if args.format else None
    if pool is not None:
        out.line(f"pool: {_pool_text(pool)}")
    rows = []
    for pod in node.pods:
        err = blocked.get(pod.uid)
        row = _pod_dict(pod, err)
        pair = pod.pair
        if fmt is not None and pair is not None:
            row["map"] = fmt.format(pair)
        rows.append(row)
    shown, more = capped(node.pods)
    for pod, row in zip(shown, rows):
        err = blocked.get(pod.uid)
        if not pod.has_userns:
            out.line(f"{pod.uid}: no user namespace (hostUsers)")
            continue
        where = (f"{pod.host_first}…{(pod.host_first or 0) + (pod.length or 0) - 1}"
                 if pod.host_first is not None else "no mapping")
        status = "ok" if err is None else f"BLOCKS: {err.message}"
        out.line(f"{pod.uid}: {where}  {status}")
        if fmt is not None:
            text = str(row.get("map") or "").rstrip("\n")
            out.line("  " + (text.replace("\n", "\n  ") if text else "no map"))
    if more:
        out.line(more)
    from ..kubelet import Pool, StartError, pool_keeping

    keep = pool_keeping(node.pods, ids_per_pod=node.ids_per_pod, max_pods=node.max_pods,
                        around=pool)
    if isinstance(keep, Pool):
        out.line(f"a pool that keeps every pod: kubelet:{keep.first}:{keep.length} "
                 f"({keep.slots} slots)")
    else:
        out.line(f"no pool keeps every pod: {keep.message}")
    free = None
    if pool is not None:
        used = {p.host_first for p in node.pods if p.has_userns and p.uid not in blocked}
        free = pool.slots - len(used)
        out.line(f"free slots: {free} of {pool.slots}")
    out.json({
        "pool": None if pool is None else pool.as_dict(),
        "pods": rows,
        "blocking": list(blocked),
        "keeping": keep.as_dict() if isinstance(keep, Pool) else None,
        "keeping_error": _error(keep) if isinstance(keep, StartError) else None,
        "free_slots": free,
    })
    return 1 if blocked else 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", metavar="DIR",
                   help="the node's root directory (default /: the running host)")
    p.add_argument("--kubelet-dir", metavar="DIR",
                   help="kubelet's --root-dir (default: var/lib/kubelet under --root)")
    p.add_argument("--ids-per-pod", type=parse_positive, default=DEFAULT_IDS_PER_POD,
                   metavar="N", help="userNamespaces.idsPerPod (default 65536)")
    p.add_argument("--max-pods", type=parse_positive, default=DEFAULT_MAX_PODS, metavar="M",
                   help="maxPods (default 110)")
    p.add_argument("--no-getsubids", action="store_true",
                   help="do not run the real getsubids; use the prediction from the files")
    add_json(p)


def register(sub: Any) -> None:
    """Add ``userns k8s check`` and ``userns k8s pods``."""
    k8s = sub.add_parser("k8s", help="kubelet's ID pool for pods in user namespaces")
    k8s_sub = k8s.add_subparsers(dest="k8s_command", metavar="SUBCOMMAND",
                                 parser_class=type(k8s))
    k8s_sub.required = True
    p = k8s_sub.add_parser("check", help="would kubelet start, and is its pool safe")
    _common(p)
    p.set_defaults(func=cmd_check)
    p = k8s_sub.add_parser("pods", help="the pods' ranges, and which block a pool change")
    _common(p)
    p.add_argument("--pool", type=_parse_pool, metavar="FIRST:LENGTH",
                   help="check the pods against this pool instead of the node's")
    p.add_argument("--format", "-f", type=format_name, metavar="FORMAT",
                   help="also print each pod's map in this format")
    p.set_defaults(func=cmd_pods)
