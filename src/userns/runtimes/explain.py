"""What Docker ``userns-remap`` builds for a host, and what that means: :func:`explain_docker`.

The CLI's ``userns explain`` renders an :class:`Explanation`; every sentence in it is
derived here from the maps, never fixed text: where host root lands inside (loudly when
host root IS container root), how each notable ID translates, which lines were used,
which findings are ``security``. Pure: the caller reads the files (and, if it wants, the
daemon configuration with :func:`~userns.runtimes.daemon.read_daemon_config` and the
data root with :func:`~userns.runtimes.daemon.check_data_root`).

>>> from userns.subid import Accounts
>>> acc = Accounts.parse("seb:x:1000:1000::/:/bin/sh\\n", "seb:x:1000:\\n")
>>> e = explain_docker("seb:0:65536\\n", "seb:0:65536\\n", "seb", accounts=acc)
>>> e.host_root_is_container_root, e.ok
(True, False)
>>> print(e.host_root[:64])
HOST ROOT IS CONTAINER ROOT: host uid 0 is container uid 0 and h
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from ..errors import UsernsError
from ..ids import OVERFLOW_ID
from ..logindefs import LoginDefs
from ..maps import IDMap
from ..severity import Severity
from ..subid import Accounts, Finding, lint
from ._base import Note, RuntimeMaps, SubidSource, _file
from .compare import Comparison, compare_runtimes
from .daemon import DEFAULT_DATA_ROOT, DaemonConfig
from .docker import DockerRules, docker_remap, docker_remapped_root, docker_rules

__all__ = [
    "NOTABLE_CONTAINER_IDS",
    "Explanation",
    "HostView",
    "Translation",
    "explain_docker",
]

#: The container IDs every explanation translates: root, www-data, a first user, nobody.
NOTABLE_CONTAINER_IDS = (0, 33, 1000, 65534)


@attrs.frozen
class Translation:
    """Container ID ``container`` is host uid ``host_uid`` and host gid ``host_gid``
    (``None``: the map does not cover it, so no file can be owned by it)."""

    container: int
    host_uid: int | None
    host_gid: int | None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"container": self.container, "host_uid": self.host_uid,
                "host_gid": self.host_gid}


@attrs.frozen
class HostView:
    """How host ID ``host`` shows inside: ``inside_uid``/``inside_gid`` (the overflow ID
    when unmapped, ``uid_mapped``/``gid_mapped`` say which), and ``note``, a phrase derived
    from those facts (``None`` when there is nothing to add)."""

    host: int
    inside_uid: int
    inside_gid: int
    uid_mapped: bool
    gid_mapped: bool
    note: str | None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the ``note`` and the mapped flags are in ``host_view_notes``)."""
        return {"host": self.host, "inside_uid": self.inside_uid, "inside_gid": self.inside_gid}


@attrs.frozen
class Explanation:
    """Everything ``userns explain`` says about one Docker remap setting.

    ``remap`` is the ``userns-remap`` value (``None``: remapping is OFF) and
    ``remap_from`` says where it came from; ``docker`` the maps dockerd builds under
    ``rules``; ``host_root`` the sentence about host root's fate; ``notes`` the
    explanation's own findings (``docker-remap-off``, ``host-root-is-container-root``,
    ``host-root-mapped``) next to ``docker.notes``, the lint ``findings`` about the
    remap user and ``data_root_notes`` (from
    :func:`~userns.runtimes.daemon.check_data_root`, when given).
    :attr:`ok`: a container would start and nothing is ``security``.
    """

    remap: str | None
    remap_from: str
    user: str | None
    rules: DockerRules
    docker: RuntimeMaps | None
    host_root: str
    host_root_is_container_root: bool
    translations: tuple[Translation, ...]
    host_views: tuple[HostView, ...]
    data_root: str
    data_root_path: str | None
    findings: tuple[Finding, ...]
    other_findings: int
    notes: tuple[Note, ...]
    comparison: Comparison | None
    comparison_error: str | None
    config: DaemonConfig | None = None
    data_root_notes: tuple[Note, ...] = ()

    @property
    def security(self) -> list[str]:
        """Every ``security`` finding and note, as ``reason: message`` lines."""
        out = [f"{n.reason}: {n.message}" for n in self.notes if n.severity == Severity.SECURITY]
        if self.docker is not None:
            out += [f"{n.reason}: {n.message}" for n in self.docker.notes
                    if n.severity == Severity.SECURITY]
        out += [f"{f.reason}: {f.message}" for f in self.findings
                if f.severity == Severity.SECURITY]
        return out

    @property
    def ok(self) -> bool:
        """True when dockerd would start remapped containers, its data root lets it
        (no ``error`` in :attr:`data_root_notes`), and nothing is ``security``."""
        return (self.docker is not None and self.docker.pair is not None
                and not self.security
                and all(n.severity < Severity.ERROR for n in self.data_root_notes))

    def with_data_root_notes(self, notes: Sequence[Note]) -> Explanation:
        """A copy carrying :func:`~userns.runtimes.daemon.check_data_root`'s notes."""
        return attrs.evolve(self, data_root_notes=tuple(notes))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the CLI's ``explain --json``)."""
        from ..formats.proc import format_proc

        pair = None if self.docker is None else self.docker.pair
        return {
            "ok": self.ok,
            "remap": self.remap,
            "remap_from": self.remap_from,
            "remapping": self.remap is not None,
            "user": self.user,
            "docker_version": self.rules.to_dict(),
            "docker": None if self.docker is None else self.docker.to_dict(),
            "uid_map_text": format_proc(pair.uid) if pair else None,
            "gid_map_text": format_proc(pair.gid) if pair else None,
            "host_root": {"sentence": self.host_root,
                          "is_container_root": self.host_root_is_container_root},
            "data_root": self.data_root,
            "data_root_path": self.data_root_path,
            "data_root_checks": [n.to_dict() for n in self.data_root_notes],
            "translations": [t.to_dict() for t in self.translations],
            "host_views": [v.to_dict() for v in self.host_views],
            "host_view_notes": [{"host": v.host, "uid_mapped": v.uid_mapped,
                                 "gid_mapped": v.gid_mapped, "note": v.note}
                                for v in self.host_views],
            "notes": [n.to_dict() for n in self.notes],
            "findings": [{"reason": f.reason, "severity": str(f.severity),
                          "message": f.message, "path": f.path, "line": f.lineno,
                          "owner": f.owner} for f in self.findings],
            "other_findings": self.other_findings,
            "security": self.security,
            "comparison": self.comparison.to_dict() if self.comparison else None,
            "comparison_error": self.comparison_error,
            "config": None if self.config is None else self.config.to_dict(),
        }


def _lines(kind: str, lines: Sequence[int]) -> str:
    if not lines:
        return f"a range dockerd would add to /etc/sub{kind}"
    return f"sub{kind} line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}"


def _host_root(docker: RuntimeMaps) -> tuple[str, bool, list[Note]]:
    """The sentence about host root (uid 0, gid 0), from the maps; and its notes."""
    pair = docker.pair
    assert pair is not None
    cu, cg = pair.uid.to_container(0, None), pair.gid.to_container(0, None)
    if cu is None and cg is None:
        return (f"host root (uid 0, gid 0) is not mapped: its files show as "
                f"{OVERFLOW_ID}/{OVERFLOW_ID} (nobody/nogroup) inside, and container root is "
                "'other' to them", False, [])
    parts = []
    if cu is not None:
        parts.append(f"host uid 0 is container uid {cu}")
    if cg is not None:
        parts.append(f"host gid 0 is container gid {cg}")
    where = [_lines("uid", [n for n in docker.uid_lines if _covers(pair.uid, n, docker, "uid")]),
             _lines("gid", [n for n in docker.gid_lines if _covers(pair.gid, n, docker, "gid")])]
    source = where[0] if cu is not None else where[1]
    if cu == 0:
        sentence = (f"HOST ROOT IS CONTAINER ROOT: {' and '.join(parts)} ({source}): root in "
                    "the container is root on the host for every file it can reach")
        return sentence, True, [Note("host-root-is-container-root", sentence, "security")]
    who = f"container uid {cu}" if cu is not None else f"container gid {cg}"
    sentence = (f"host root is mapped: {' and '.join(parts)} ({source}): a process running as "
                f"{who} owns host root's files")
    return sentence, False, [Note("host-root-mapped", sentence, "security")]


def _covers(m: IDMap, lineno: int, docker: RuntimeMaps, kind: str) -> bool:
    """Whether the extent made from subid line ``lineno`` holds host ID 0."""
    lines = docker.uid_lines if kind == "uid" else docker.gid_lines
    extents = list(m)
    if lineno not in lines or len(extents) != len(lines):
        return True  # cannot tell which line: name them all
    e = extents[list(lines).index(lineno)]
    return e.host <= 0 < e.host + e.size


def _view_note(h: int, uid_c: int | None, gid_c: int | None) -> str | None:
    if h == 0:
        if uid_c == 0:
            return "HOST ROOT IS CONTAINER ROOT"
        if uid_c is None and gid_c is None:
            return "host root: not mapped, its files show as nobody inside"
        return "host root: MAPPED into the container"
    if uid_c == 0 and gid_c == 0:
        return "container root"
    if uid_c == 0:
        return "container root's uid"
    if uid_c is None and gid_c is None:
        return "not mapped: nobody/nogroup inside"
    if uid_c is None or gid_c is None:
        return f"{'uid' if uid_c is None else 'gid'} not mapped"
    return None


def explain_docker(
    subuid: SubidSource,
    subgid: SubidSource,
    remap: str | None = "default",
    *,
    accounts: Accounts,
    defs: LoginDefs | None = None,
    version: str | DockerRules = "main",
    data_root: str | None = None,
    config: DaemonConfig | None = None,
    remap_from: str | None = None,
    compare: bool = True,
) -> Explanation:
    """What ``dockerd --userns-remap=REMAP`` (of ``version``) builds from these files.

    ``remap`` ``None`` means remapping is OFF (nothing sets it): a ``security`` note says
    that container root is host root. ``config`` (from
    :func:`~userns.runtimes.daemon.read_daemon_config`) is kept for the report and gives
    the default ``data_root``; pass ``config.remap`` as ``remap`` to explain what the host
    is configured to do, and say where it came from in ``remap_from``. ``defs`` is the
    system's ``login.defs`` for lint. ``compare`` also builds every other runtime's maps
    for the same user.
    """
    rules = docker_rules(version)
    fu, fg = _file(subuid), _file(subgid)
    if data_root is None:
        data_root = config.data_root if config is not None else DEFAULT_DATA_ROOT
    if remap_from is None:
        remap_from = "given" if remap is not None else "not set"
    all_findings = lint(fu, fg, accounts=accounts, defs=defs)
    if remap is None:
        where = ("nothing sets userns-remap" if config is None or config.userns_remap is None
                 else f"userns-remap is empty at {config.userns_remap.where}")
        sentence = ("userns-remap is OFF: container root IS HOST ROOT (uid 0); a container "
                    "run with -v /etc:/root/etc can append to the host's /etc/passwd and "
                    f"/etc/shadow ({where}; set \"userns-remap\": \"default\" in "
                    "/etc/docker/daemon.json and restart dockerd)")
        return Explanation(None, remap_from, None, rules, None, sentence, True, (), (),
                           data_root, None, (), len(all_findings),
                           (Note("docker-remap-off", sentence, "security"),), None, None,
                           config)
    docker = docker_remap(fu, fg, remap, accounts=accounts, version=rules)
    try:
        user = docker_remapped_root(remap, accounts)[0]
    except UsernsError:
        user = "dockremap" if remap == "default" else remap.split(":", 1)[0]
    uid = accounts.uid_of(user)
    mine = {user, str(uid) if uid is not None else user}
    findings = tuple(f for f in all_findings if f.owner is None or f.owner in mine)
    comparison: Comparison | None = None
    comparison_error: str | None = None
    if compare:
        try:
            comparison = compare_runtimes(fu, fg, user, accounts=accounts)
        except UsernsError as err:
            comparison_error = str(err)
    pair = docker.pair
    if pair is None:
        why = docker.error.message if docker.error else "no map"
        if docker.error is not None and docker.error.reason == "docker-config":
            # dockerd refuses the remap value itself: the others, asked about the user
            # alone, would describe a container Docker never starts.
            comparison, comparison_error = None, f"dockerd refuses --userns-remap={remap}"
        return Explanation(remap, remap_from, user, rules, docker,
                           f"no user namespace ({why}): no container starts", False, (), (),
                           data_root, None, findings, len(all_findings) - len(findings), (),
                           comparison, comparison_error, config)
    host_root, is_root, notes = _host_root(docker)
    if comparison is not None and rules.version != "main":
        main = docker_remap(fu, fg, remap, accounts=accounts, version="main")
        if (main.uid, main.gid) != (docker.uid, docker.gid):
            notes.append(Note(
                "compare-uses-main",
                f"the comparison with the other runtimes below uses moby main's Docker rules, "
                f"which give another map than dockerd {rules.release} here", "info"))
    translations = tuple(Translation(c, pair.uid.to_host(c, None), pair.gid.to_host(c, None))
                         for c in NOTABLE_CONTAINER_IDS)
    root_uid, root_gid = pair.root
    views = []
    for h in sorted({0, 1000, root_uid, root_gid}):
        uc, gc = pair.uid.to_container(h, None), pair.gid.to_container(h, None)
        views.append(HostView(h, pair.uid.container_view(h), pair.gid.container_view(h),
                              uc is not None, gc is not None, _view_note(h, uc, gc)))
    path = os.path.join(data_root, docker.data_root) if docker.data_root else None
    return Explanation(remap, remap_from, user, rules, docker, host_root, is_root,
                       translations, tuple(views), data_root, path, findings,
                       len(all_findings) - len(findings), tuple(notes), comparison,
                       comparison_error, config)
