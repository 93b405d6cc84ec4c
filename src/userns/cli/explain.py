"""``userns explain``: what Docker ``userns-remap`` builds for a user, and why."""

from __future__ import annotations

import argparse
import os
import textwrap
from typing import Any

from ..errors import UsernsError
from ..formats.proc import format_proc
from ._common import (
    NOTABLE,
    Output,
    System,
    add_json,
    add_system_options,
    finding_dict,
    show,
)

__all__ = ["cmd_explain", "register"]


def cmd_explain(args: argparse.Namespace, out: Output) -> int:
    from ..runtimes import compare_runtimes, docker_remap, docker_remapped_root
    from ..subid import lint

    system = System(args)
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
        "findings": [finding_dict(f) for f in findings],
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
        for c in NOTABLE:
            hu = pair.uid.to_host(c, None)
            hg = pair.gid.to_host(c, None)
            data["translations"].append({"container": c, "host_uid": hu, "host_gid": hg})
            out.line(f"  {c:>6} -> {show(hu)} / {show(hg)}")
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



def register(sub: Any) -> None:
    """Add this module's commands to the ``userns`` sub-parsers."""
    p = sub.add_parser("explain", help="what Docker userns-remap builds for a user, and why")
    p.add_argument("--user", "-u", default="default", metavar="REMAP",
                   help="the userns-remap value: default (dockremap), USER, USER:GROUP, "
                   "UID, UID:GID")
    p.add_argument("--example", action="store_true",
                   help="use an embedded dockremap:231072:65536 instead of the system's files")
    p.add_argument("--data-root", default="/var/lib/docker", metavar="DIR",
                   help="Docker's data root (default /var/lib/docker)")
    add_system_options(p)
    add_json(p)
    p.set_defaults(func=cmd_explain)
