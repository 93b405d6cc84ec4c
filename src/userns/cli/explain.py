"""``userns explain``: what Docker ``userns-remap`` builds for a host, and why.

The library decides (:func:`userns.runtimes.explain_docker`, the daemon configuration
from :func:`userns.runtimes.read_daemon_config`, the data root from
:func:`userns.runtimes.check_data_root`); this module only renders.
"""

from __future__ import annotations

import argparse
import os
import textwrap
from typing import Any

from ..formats.proc import format_proc
from ..formats.registry import get_format
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    Output,
    System,
    add_json,
    add_system_options,
    show,
)

__all__ = ["cmd_explain", "register"]

#: Notes the report already says in its own sentences.
_SAID = frozenset({"host-root-is-container-root", "host-root-mapped", "docker-remap-off"})


def _fill(text: str, first: str = "  ", rest: str = "    ") -> str:
    return textwrap.fill(text, width=100, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False, break_long_words=False)


def cmd_explain(args: argparse.Namespace, out: Output) -> int:
    from ..runtimes import (
        check_data_root,
        detect_docker_version,
        explain_docker,
        read_daemon_config,
    )

    system = System(args)
    subuid, subgid = system.subid("uid"), system.subid("gid")
    accounts = system.accounts()
    root = getattr(args, "root", None) or "/"
    config = None
    if args.user is not None:
        remap, remap_from = args.user, "--user"
    elif system.example:
        remap, remap_from = "default", "--example"
    else:
        config = read_daemon_config(root)
        remap = config.remap
        setting = config.userns_remap
        remap_from = (setting.where if setting is not None and setting.value
                      else "the daemon configuration (nothing sets userns-remap)")
    version, detected = args.docker_version, False
    if version is None and not system.example and root == "/":
        found = detect_docker_version()
        version, detected = (found, True) if found else ("main", False)
    explanation = explain_docker(
        subuid, subgid, remap, accounts=accounts, defs=system.login_defs(),
        version=version or "main", data_root=args.data_root, config=config,
        remap_from=remap_from)
    if not system.example and explanation.docker is not None and explanation.data_root_path:
        on_disk = os.path.join(root, explanation.data_root.lstrip("/"))
        explanation = explanation.with_data_root_notes(
            check_data_root(on_disk, explanation.docker, root=root))
    data = explanation.to_dict()
    data.update({"subuid": system.subuid_path, "subgid": system.subgid_path,
                 "docker_version_detected": detected})
    _render(explanation, system, out, detected)
    data["volumes"] = _volumes(args.volume or [], explanation, out)
    out.json(data)
    return EXIT_OK if explanation.ok else EXIT_FAILURE


def _volumes(paths: list[str], e: Any, out: Output) -> list[dict[str, Any]]:
    """For each ``--volume``: would an idmapped mount serve it, or must it be shifted?"""
    if not paths:
        return []
    from ..mount import probe

    pair = None if e.docker is None else e.docker.pair
    # Podman's one-line form holds both maps, uid and gid, as -m takes them.
    spec = None if pair is None else get_format("podman").format(pair)
    out.line("\nvolumes (bind-mounted into the container):")
    rows = []
    for path in paths:
        answer = probe(path)
        if answer.reason == "not-found":
            how = None
            text = f"{answer.message} [{answer.reason}]: neither a mount nor a shift applies"
        elif answer.ok:
            how = "idmap" if pair is not None else None
            text = ("an idmapped mount serves it, no chown: userns mount "
                    f"{path} DST -m '{spec}'" if pair is not None
                    else "it can be idmapped, but there is no map to idmap it with")
        else:
            how = "shift" if pair is not None else None
            text = (f"shift it (userns shift {path} -m '{spec}'): {answer.message} "
                    f"[{answer.reason}]" if pair is not None
                    else f"{answer.message} [{answer.reason}]")
        out.line(_fill(f"{path}: {text}"))
        rows.append({"path": path, "strategy": how, "probe": answer.to_dict()})
    return rows


def _render(e: Any, system: System, out: Output, detected: bool) -> None:
    """The text report, in the order a reader needs it."""
    _render_head(e, system, out, detected)
    docker = e.docker
    pair = None if docker is None else docker.pair
    if docker is not None and pair is None:
        why = docker.error.message if docker.error else "no map"
        out.line(f"  no user namespace: {why}")
    if docker is not None and pair is not None:
        _render_maps(e, docker, pair, out)
    if docker is not None:
        for note in docker.notes:
            out.line(_fill(f"note: {note.message}", "", "  "))
    _render_lint(e, out)
    _render_comparison(e, pair, out)
    security = e.security
    if security:
        out.line(f"\n{len(security)} security finding(s): exit status 1")
        for s in security:
            out.line(_fill(f"- {s}"))


def _render_head(e: Any, system: System, out: Output, detected: bool) -> None:
    rules = e.rules
    how = (f"dockerd {rules.release}, detected" if detected
           else f"{rules.version} rules" if rules.release == rules.version
           else f"dockerd {rules.release}")
    if e.remap is None:
        out.line(f"Docker userns-remap: OFF ({how})")
        out.line(f"  from {e.remap_from}")
        out.line("")
        out.line(_fill(f"!!! {e.host_root}", "", "    "))
        return
    out.line(f"Docker --userns-remap={e.remap}: what dockerd would build ({how})")
    if e.remap_from not in ("--user", "--example", "given"):
        out.line(f"  userns-remap from {e.remap_from}")
    out.line(f"  from {system.subuid_path} and {system.subgid_path}")


def _render_maps(e: Any, docker: Any, pair: Any, out: Output) -> None:
    for kind, m, lines in (("uid", pair.uid, docker.uid_lines),
                           ("gid", pair.gid, docker.gid_lines)):
        used = ", ".join(str(n) for n in lines)
        where = (f"sub{kind} line{'s' if len(lines) > 1 else ''} {used}" if lines
                 else f"a range dockerd would add to /etc/sub{kind}")
        out.line(f"\n{kind} map ({where}):")
        for x in m:
            out.line(f"  container {x.container}…{x.container + x.size - 1}"
                     f"  ->  host {x.host}…{x.host + x.size - 1}  ({x.size} IDs)")
    out.line("\ncontainer -> host (uid / gid):")
    for t in e.translations:
        out.line(f"  {t.container:>6} -> {show(t.host_uid)} / {show(t.host_gid)}")
    out.line("\nhost -> seen inside (uid / gid; an unmapped ID shows as 65534, "
             "nobody/nogroup):")
    for v in e.host_views:
        note = f"  ({v.note})" if v.note else ""
        out.line(f"  {v.host:>6} -> {v.inside_uid} / {v.inside_gid}{note}")
    loud = "!!! " if e.host_root_is_container_root or not e.host_root.startswith(
        "host root (uid 0, gid 0) is not mapped") else ""
    out.line("")
    out.line(_fill(f"{loud}{e.host_root}", "", "    "))
    out.line("\n/proc/PID/uid_map:")
    out.line("  " + format_proc(pair.uid).rstrip("\n").replace("\n", "\n  "))
    out.line("/proc/PID/gid_map:")
    out.line("  " + format_proc(pair.gid).rstrip("\n").replace("\n", "\n  "))
    out.line(f"\nDocker data root: {e.data_root_path}")
    for n in e.data_root_notes:
        out.line(_fill(f"{n.severity}: {n.message}"))


def _render_lint(e: Any, out: Output) -> None:
    if e.user is None:
        return
    out.line(f"\nlint ({e.user}):" if e.findings else f"\nlint ({e.user}): no findings")
    for f in e.findings:
        out.line("  " + f.render().replace("\n", "\n  "))
    if e.other_findings:
        out.line(f"  ({e.other_findings} more finding(s) about other owners: run "
                 "'userns check')")


def _render_comparison(e: Any, pair: Any, out: Output) -> None:
    if e.comparison is None:
        if e.comparison_error:
            out.line(f"\nother runtimes: not compared: {e.comparison_error}")
        return
    out.line("\nwhere the other runtimes differ from Docker for this user:")
    for n in e.notes:
        if n.reason not in _SAID:
            out.line(_fill(f"({n.message})"))
    for r in e.comparison.results:
        if r.runtime == "docker":
            continue
        diffs = [d for d in e.comparison.differences
                 if {d.first, d.second} == {"docker", r.runtime}]
        if not r.ok:
            why = r.error.message if r.error else "it would build none"
            either = " either" if pair is None else ""
            out.line(_fill(f"{r.runtime}: no map{either}: {why}"))
        elif not diffs:
            out.line(f"  {r.runtime}: the same maps")
        else:
            kinds = " and ".join(d.kind for d in diffs)
            out.line(_fill(f"{r.runtime} ({kinds} maps differ): {diffs[0].message}"))


def register(sub: Any) -> None:
    """Add this module's commands to the ``userns`` sub-parsers."""
    p = sub.add_parser("explain", help="what Docker userns-remap builds for a host, and why")
    p.add_argument("--user", "-u", default=None, metavar="REMAP",
                   help="the userns-remap value: default (dockremap), USER, USER:GROUP, "
                   "UID, UID:GID (default: what daemon.json, the docker.service unit or "
                   "sysconfig set; none is remapping OFF)")
    p.add_argument("--example", action="store_true",
                   help="use an embedded dockremap:231072:65536 instead of the system's files")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="Docker's data root (default: the configured one, else /var/lib/docker)")
    p.add_argument("--docker-version", default=None, metavar="VERSION",
                   help="the dockerd whose rules apply: 20.10, 28, main, a release such as "
                   "24.0.7 (default: 'dockerd --version' when installed, else main)")
    p.add_argument("--volume", action="append", metavar="PATH",
                   help="a host directory the container will mount: say whether an "
                   "idmapped mount serves it or it must be shifted (repeatable)")
    add_system_options(p)
    add_json(p)
    p.set_defaults(func=cmd_explain)
