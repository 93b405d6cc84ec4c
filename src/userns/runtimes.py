"""What Docker, Podman, ``unshare`` and Incus build from the same subuid/subgid files.

Each runtime reads /etc/subuid and /etc/subgid with its own parser and turns the lines
into maps its own way. This module rebuilds each one from its source (versions named in
``docs/differences.md``), over the texts of the files (or :class:`~userns.subid.SubidFile`
values) and the passwd/group data (:class:`~userns.subid.Accounts`); nothing here reads
the running host.

- :func:`docker_remap` — ``dockerd --userns-remap``: every line of the user (by name or
  decimal uid), concatenated into container IDs 0, 1, … in FILE order; subgid looked up
  by the USER; no map for ``root``; data root ``<root>/<uid>.<gid>``.
- :func:`podman_maps` — Podman/containers-storage: the ranges sorted by host start;
  rootless, the intermediate namespace ``0 → own uid`` then the ranges from 1.
  :func:`podman_rootless_map` resolves a rootless ``--uidmap``;
  :func:`podman_auto` / :func:`podman_auto_size` are ``--userns=auto``.
- :func:`unshare_maps` — util-linux 2.38 ``unshare --map-auto`` (the FIRST matching line
  only) and its ``--map-root-user`` / ``--map-current-user`` / ``--map-user`` variants.
- :func:`incus_maps` — Incus: root's ranges of at least 65536 IDs, ``raw.idmap`` holes
  applied with Incus's own ``AddSafe``.
- :func:`compare_runtimes` — the maps of all of them for one user, and why they differ.

>>> subuid = "jonas:100000:1000\\njonas:1000:1\\n"
>>> acc = Accounts.from_pairs([("jonas", 1000)], [("jonas", 1000)])
>>> print(docker_remap(subuid, subuid, "jonas", accounts=acc).uid)
0 100000 1000
1000 1000 1
>>> print(podman_maps(subuid, subuid, "jonas", accounts=acc, rootless=False).uid)
0 1000 1
1 100000 1000
>>> podman_maps(subuid, subuid, "jonas", accounts=acc).error.message
'invalid configuration: the specified mapping 1000:1 in "/etc/subuid" includes the user UID'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TypeAlias

import attrs

from .authorize import newgidmap_decision, newuidmap_decision
from .errors import UsernsError
from .formats.lxc import parse_raw_idmap
from .formats.proc import validate_map_write
from .maps import Extent, IDMap, IDMapPair
from .ranges import IDRange, IDSet
from .subid import Accounts, SubidFile
from .subid.model import _go_trim  # Go's bytes.TrimSpace, shared with Docker's reader

__all__ = [
    "AUTO_USERNS_MAX_SIZE",
    "AUTO_USERNS_MIN_SIZE",
    "Comparison",
    "Difference",
    "Note",
    "RuntimeConfigError",
    "RuntimeMaps",
    "compare_runtimes",
    "docker_remap",
    "docker_remapped_root",
    "incus_maps",
    "podman_auto",
    "podman_auto_available",
    "podman_auto_size",
    "podman_maps",
    "podman_rootless_map",
    "unshare_maps",
]

SubidSource: TypeAlias = "SubidFile | str | bytes"

#: containers-storage's defaults for ``--userns=auto`` (``AutoUserNsMinSize``/``MaxSize``).
AUTO_USERNS_MIN_SIZE = 1024
AUTO_USERNS_MAX_SIZE = 65536
_UINT32 = 2**32
_ULONG_MAX = 2**64 - 1
_INCUS_POSIX = 65536
_GO_INT = re.compile(r"[+-]?[0-9]+\Z")


class RuntimeConfigError(UsernsError, ValueError):
    """A runtime would refuse its configuration; the message is the runtime's own.

    Raised by :func:`docker_remapped_root` (``reason`` ``docker-config``) and
    :func:`podman_auto_size` / :func:`podman_auto` (``auto-too-big``,
    ``no-available-ids``). Functions that return a :class:`RuntimeMaps` report the same
    failures in its ``error`` instead of raising.
    """

    reason = "runtime-config"


@attrs.frozen
class Note:
    """One thing a runtime does with the files that the user should know.

    ``reason`` is a stable code; ``severity`` is ``info``, ``warning``, ``security`` or
    ``error``; ``file`` (``subuid``/``subgid``) and ``lineno`` say where, when known.
    """

    reason: str
    message: str
    severity: str = "info"
    file: str | None = None
    lineno: int | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"reason": self.reason, "message": self.message, "severity": self.severity,
                "file": self.file, "line": self.lineno}


@attrs.frozen
class RuntimeMaps:
    """The uid and gid maps one runtime would build, where they came from, and why not.

    ``uid``/``gid`` are ``None`` when the runtime would build no map (``error`` then says
    why, in the runtime's words, or Docker's remap is off for root). ``uid_lines`` and
    ``gid_lines`` are the subuid/subgid line numbers used, in the order used.
    ``data_root`` is Docker's ``<uid>.<gid>`` directory name; ``uid_argv`` and
    ``gid_argv`` the ``newuidmap``/``newgidmap`` arguments after the PID, for the tools
    that run them.
    """

    runtime: str
    uid: IDMap | None
    gid: IDMap | None
    uid_lines: tuple[int, ...] = ()
    gid_lines: tuple[int, ...] = ()
    notes: tuple[Note, ...] = ()
    error: Note | None = None
    data_root: str | None = None
    uid_argv: tuple[int, ...] | None = None
    gid_argv: tuple[int, ...] | None = None

    @property
    def ok(self) -> bool:
        """True when the runtime would start a container with these maps."""
        return self.error is None and self.uid is not None and self.gid is not None

    @property
    def pair(self) -> IDMapPair | None:
        """Both maps as an :class:`IDMapPair` (``None`` unless :attr:`ok`)."""
        if self.uid is None or self.gid is None or self.error is not None:
            return None
        return IDMapPair(self.uid, self.gid)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: maps as ``[container, host, size]`` triples."""
        def triples(m: IDMap | None) -> list[list[int]] | None:
            return None if m is None else [[e.container, e.host, e.size] for e in m]

        return {
            "runtime": self.runtime,
            "ok": self.ok,
            "uid_map": triples(self.uid),
            "gid_map": triples(self.gid),
            "uid_lines": list(self.uid_lines),
            "gid_lines": list(self.gid_lines),
            "data_root": self.data_root,
            "error": None if self.error is None else self.error.to_dict(),
            "notes": [n.to_dict() for n in self.notes],
        }


def _file(source: SubidSource | None) -> SubidFile:
    if source is None:
        return SubidFile.parse("")
    return source if isinstance(source, SubidFile) else SubidFile.parse(source)


def _kernel_map(triples: Sequence[tuple[int, int, int]]) -> IDMap | str:
    """The map the kernel would install from ``triples``, or why it would refuse them."""
    for c, h, n in triples:
        if n < 1 or min(c, h) < 0 or max(c, h) + n > _UINT32 - 1 or max(c, h) >= _UINT32 - 1:
            return f"the kernel refuses the extent '{c} {h} {n}'"
    try:
        return validate_map_write("".join(f"{c} {h} {n}\n" for c, h, n in triples))
    except UsernsError as err:
        return err.message


# -- Docker ---------------------------------------------------------------------------


def _go_parse_int32(text: str) -> int | None:
    """``strconv.ParseInt(s, 10, 32)``: the value, or None on any error."""
    if not _GO_INT.match(text):
        return None
    value = int(text)
    return value if -(2**31) <= value < 2**31 else None


def _q(text: str) -> str:
    """Go's ``%q`` for the texts that occur here (JSON string syntax is the same)."""
    return json.dumps(text)


def _getent_error(key: str, database: str) -> str:
    return f"getent unable to find entry {_q(key)} in {database} database"


def docker_remapped_root(value: str, accounts: Accounts) -> tuple[str, str]:
    """The ``(user, group)`` names ``dockerd`` resolves a ``userns-remap`` value to.

    Forms: ``default`` (user and group ``dockremap``), ``USER``, ``USER:GROUP``, ``UID``,
    ``UID:GID``. A numeric part is one that parses as a signed 32-bit decimal. Raises
    :class:`RuntimeConfigError` with dockerd's message when a part does not resolve
    (``default`` without a ``dockremap`` user raises too: dockerd would create it; see
    :func:`docker_remap`).

    >>> acc = Accounts.from_pairs([("seb", 1000)], [("seb", 1000), ("staff", 50)])
    >>> docker_remapped_root("1000", acc), docker_remapped_root("seb:50", acc)
    (('seb', 'seb'), ('seb', 'staff'))
    """
    parts = value.split(":")
    if len(parts) > 2:
        raise RuntimeConfigError(
            f"Invalid user/group specification in --userns-remap: {_q(value)}",
            reason="docker-config")
    group = ""
    uid = _go_parse_int32(parts[0])
    if uid is not None:
        u = accounts.user_by_uid(uid) if uid >= 0 else None
        if u is None:
            raise RuntimeConfigError(
                f"Uid {uid} has no entry in /etc/passwd: {_getent_error(str(uid), 'passwd')}",
                reason="docker-config")
        user = u.name
        if len(parts) == 1:
            g = accounts.group_by_gid(uid) if uid >= 0 else None
            if g is None:
                raise RuntimeConfigError(
                    f"Gid {uid} has no entry in /etc/group: {_getent_error(str(uid), 'group')}",
                    reason="docker-config")
            group = g.name
    else:
        name = "dockremap" if parts[0] == "default" else parts[0]
        u = accounts.user(name)
        if u is None:
            raise RuntimeConfigError(
                f"Error during uid lookup for {_q(name)}: {_getent_error(name, 'passwd')}",
                reason="docker-config")
        user = u.name
        if len(parts) == 1:
            if accounts.group(name) is None:
                raise RuntimeConfigError(
                    f"Error during gid lookup for {_q(name)}: {_getent_error(name, 'group')}",
                    reason="docker-config")
            group = name
    if len(parts) == 2:
        gid = _go_parse_int32(parts[1])
        if gid is not None:
            g = accounts.group_by_gid(gid) if gid >= 0 else None
            if g is None:
                # dockerd says /etc/passwd here, for a gid.
                raise RuntimeConfigError(
                    f"Gid {gid} has no entry in /etc/passwd: {_getent_error(str(gid), 'group')}",
                    reason="docker-config")
            group = g.name
        else:
            if accounts.group(parts[1]) is None:
                raise RuntimeConfigError(
                    f"Error during groupname lookup for {_q(parts[1])}: "
                    f"{_getent_error(parts[1], 'group')}", reason="docker-config")
            group = parts[1]
    return user, group


def _docker_side(
    f: SubidFile, file: str, name: str, uid: int | None
) -> tuple[list[tuple[int, int, int]], tuple[int, ...], list[Note]]:
    """moby's ``lookupSubRangesFile``: matching lines as Docker reads them, concatenated.

    ``uid`` ``None`` matches by name only.
    """
    uid_text = str(uid) if uid is not None else None
    triples: list[tuple[int, int, int]] = []
    used: list[int] = []
    notes: list[Note] = []
    container = 0
    for line in f.lines:
        r = line.docker
        if r is None or (r.owner != name and r.owner != uid_text):
            continue
        used.append(line.lineno)
        triples.append((container, r.start, r.count))
        container += r.count
        strict = line.entry
        if strict is None or (strict.start, strict.count) != (r.start, r.count):
            sev = "security" if r.start == 0 and r.count > 0 else "warning"
            what = ("container root would be HOST root" if sev == "security"
                    else "the kernel would refuse the map")
            notes.append(Note(
                "docker-misread",
                f"Docker reads {line.text!r} as start {r.start}, count {r.count} "
                f"(number-parse errors become 0): {what}",
                sev, file, line.lineno))
    return triples, tuple(used), notes


def _next_docker_range(f: SubidFile, root_names: tuple[str, ...]) -> int:
    """moby's ``findNextRangeStart`` over ROOT's ranges only (``CurrentUserSubUIDs``)."""
    ranges = sorted((line.docker for line in f.lines if line.docker is not None
                     and line.docker.owner in root_names), key=lambda r: r.start)
    start = 100000
    for r in ranges:
        high = start + 65536
        if (r.start <= start <= r.start + r.count) or (r.start <= high <= r.start + r.count):
            start = r.start + r.count
    return start


def docker_remap(
    subuid: SubidSource,
    subgid: SubidSource,
    remap: str = "default",
    *,
    accounts: Accounts,
) -> RuntimeMaps:
    """The maps ``dockerd --userns-remap=REMAP`` would use (moby ``setupRemappedRoot``).

    Lines are read as Docker reads them (white space trimmed, ``:``-split, numbers that
    do not parse become 0, no comments) and matched by the user's NAME or decimal UID,
    in BOTH files: the group part of ``REMAP`` is validated but never used for subgid.
    The ranges are concatenated into container IDs 0, 1, … in file order.

    >>> acc = Accounts.from_pairs([("seb", 1000)], [("seb", 1000)])
    >>> r = docker_remap("seb:1000:1\\nseb:100000:65536\\n", "seb:982:1\\nseb:100000:65536\\n",
    ...                  "seb", accounts=acc)
    >>> r.uid.to_host(0), r.uid.to_host(33), r.gid.to_host(0), r.data_root
    (1000, 100032, 982, '1000.982')
    >>> r.pair.container_view(1000, 1000)
    (0, 65534)
    """
    fu, fg = _file(subuid), _file(subgid)
    try:
        user, group = docker_remapped_root(remap, accounts)
    except RuntimeConfigError as err:
        if remap != "default":
            return RuntimeMaps("docker", None, None, error=Note(err.reason, err.message, "error"))
        # dockerd creates dockremap (useradd -r); a file where dockremap has no line yet
        # gets 65536 IDs after ROOT's ranges (usermod -v / -w); existing lines are kept
        # (moby createSubordinateRanges). The new user's uid is unknown: match the name.
        root_names = ("root", "0")
        created: list[Note] = []
        made_maps: list[tuple[IDMap, tuple[int, ...]]] = []
        usermod: list[str] = []
        for f, file, flag in ((fu, "subuid", "-v"), (fg, "subgid", "-w")):
            triples, used, side_notes = _docker_side(f, file, "dockremap", None)
            created.extend(side_notes)
            if triples:
                made = _kernel_map(triples)
                if isinstance(made, str):
                    return RuntimeMaps("docker", None, None, notes=tuple(created), error=Note(
                        "kernel-refused",
                        f"container start fails writing the {file[3:]} map: {made}",
                        "error", file))
                made_maps.append((made, used))
                continue
            start = _next_docker_range(f, root_names)
            usermod.append(f"{flag} {start}-{start + 65535}")
            new = IDRange(start, 65536)
            for e in f.entries:
                if e.range.overlaps(new):
                    created.append(Note(
                        "docker-new-range-overlaps",
                        f"the range dockerd would give dockremap, {new}, overlaps "
                        f"{e.owner}'s {e.range}: dockerd only avoids root's ranges",
                        "security", file, e.lineno))
            made_maps.append((IDMap.single(0, start, 65536), ()))
        what = (f" and run 'usermod {' '.join(usermod)} dockremap'" if usermod
                else " and keep its existing subuid/subgid lines")
        created.insert(0, Note("docker-creates-dockremap",
                               f"dockerd would create user dockremap{what}", "warning"))
        (new_uid, new_uid_lines), (new_gid, new_gid_lines) = made_maps
        return RuntimeMaps("docker", new_uid, new_gid, new_uid_lines, new_gid_lines,
                           tuple(created),
                           data_root=f"{new_uid.to_host(0)}.{new_gid.to_host(0)}")
    if user == "root":
        note = Note("docker-root-no-remap",
                    "User namespaces: root cannot be remapped with itself; user namespaces "
                    "are OFF", "warning")
        return RuntimeMaps("docker", None, None, notes=(note,))
    pw = accounts.user(user)
    assert pw is not None  # docker_remapped_root resolved it
    notes: list[Note] = []
    if group != user:
        notes.append(Note("docker-group-unused",
                          f"the group {group!r} is validated but /etc/subgid is looked up by "
                          f"the user {user!r} (moby PR 41018)"))
    sides: list[tuple[IDMap | None, tuple[int, ...], tuple[int, ...] | None]] = []
    error: Note | None = None
    for f, file in ((fu, "subuid"), (fg, "subgid")):
        triples, used, side_notes = _docker_side(f, file, user, pw.uid)
        notes.extend(side_notes)
        if not triples:
            # moby says "subuid" for both files (its exact words are kept in the error);
            # a note says which file it really is.
            error = error or Note("docker-no-ranges",
                                  f"error creating ID mappings: no subuid ranges found for "
                                  f'user "{user}"', "error", file)
            notes.append(Note("docker-no-ranges-file",
                              f"/etc/{file} has no line for {user} (dockerd's message says "
                              "subuid whichever file it is)", "error", file))
            sides.append((None, used, None))
            continue
        built = _kernel_map(triples)
        if isinstance(built, str):
            error = error or Note("kernel-refused",
                                  f"container start fails writing the {file[3:]} map: {built}",
                                  "error", file)
            sides.append((None, used, tuple(v for t in triples for v in t)))
        else:
            sides.append((built, used, tuple(v for t in triples for v in t)))
    (uid_map, uid_lines, _), (gid_map, gid_lines, _) = sides
    data_root = None
    if uid_map is not None and gid_map is not None:
        data_root = f"{uid_map.to_host(0)}.{gid_map.to_host(0)}"
    return RuntimeMaps("docker", uid_map, gid_map, uid_lines, gid_lines, tuple(notes), error,
                       data_root)


# -- Podman / containers-storage ---------------------------------------------------------


def _podman_ranges(
    f: SubidFile, file: str, name: str, uid: int | None
) -> tuple[list[tuple[int, int, int]], str | None]:
    """containers-storage ``parseSubidFile``: ``(start, count, lineno)`` or the error.

    A line that is not ``a:b:c`` fails the WHOLE file, whoever owns it; a matching line
    whose numbers are not Go ints fails it too.
    """
    uid_text = "" if uid is None else str(uid)
    out: list[tuple[int, int, int]] = []
    for line in f.lines:
        text = _go_trim(line.text)
        if not text or text.startswith("#"):
            continue
        parts = text.split(":")
        if len(parts) != 3:
            return [], ("cannot parse subuid/gid information: Format not correct for "
                        f"/etc/{file} file")
        if parts[0] == name or (parts[0] == uid_text and parts[0] != ""):
            values = []
            for p in parts[1:]:
                if not _GO_INT.match(p) or not -(2**63) <= int(p) < 2**63:
                    why = "invalid syntax" if not _GO_INT.match(p) else "value out of range"
                    return [], (f"string to int conversion failed during subuid/gid parsing "
                                f'of /etc/{file}: strconv.Atoi: parsing "{p}": {why}')
                values.append(int(p))
            out.append((values[0], values[1], line.lineno))
    return out, None


def podman_maps(
    subuid: SubidSource,
    subgid: SubidSource,
    user: str,
    *,
    accounts: Accounts,
    rootless: bool = True,
    group: str | None = None,
) -> RuntimeMaps:
    """The maps Podman builds from a user's ranges (containers-storage ``NewIDMappings``).

    The ranges are sorted by host start, then concatenated. ``rootless=True`` (Podman
    run by ``user``): the map of the rootless namespace, ``0 → own uid`` (own gid: the
    primary gid) then the ranges from container ID 1, set up with ``newuidmap``; it is
    also the container's map when no ``--uidmap`` is given. ``rootless=False``: the
    sorted ranges from container ID 0 (root Podman with ``--subuidname=user``,
    ``--subgidname=group``; ``group`` defaults to ``user``).

    >>> acc = Accounts.from_pairs([("ann", 1000)], [("ann", 1000)])
    >>> print(podman_maps("ann:300000:10\\nann:100000:10\\n", "ann:100000:20\\n", "ann",
    ...                   accounts=acc, rootless=False).uid)
    0 100000 10
    10 300000 10
    """
    fu, fg = _file(subuid), _file(subgid)
    pw = accounts.user(user)
    uid = None if pw is None else pw.uid
    group_name = user if group is None else group
    runtime = "podman-rootless" if rootless else "podman"
    u_ranges, u_err = _podman_ranges(fu, "subuid", user, uid)
    # rootless: readSubgid(username); the uid string still comes from user.Lookup(name).
    gpw = accounts.user(group_name)
    g_ranges, g_err = _podman_ranges(fg, "subgid", group_name, None if gpw is None else gpw.uid)
    error = None
    if u_err or g_err:
        error = u_err or g_err
    elif not u_ranges:
        error = f'no subuid ranges found for user "{user}" in /etc/subuid'
    elif not g_ranges:
        error = f'no subgid ranges found for group "{group_name}" in /etc/subgid'
    notes: list[Note] = []
    if not rootless:
        if error is not None:
            return RuntimeMaps(runtime, None, None, error=Note("podman-no-ranges", error, "error"))
        maps: list[IDMap | None] = []
        for ranges, file in ((u_ranges, "subuid"), (g_ranges, "subgid")):
            triples, c = [], 0
            for start, count, _ in sorted(ranges, key=lambda r: r[0]):
                triples.append((c, start, count))
                c += count
            built = _kernel_map(triples)
            if isinstance(built, str):
                return RuntimeMaps(runtime, None, None, error=Note(
                    "kernel-refused", f"the {file[3:]} map is refused: {built}", "error", file))
            maps.append(built)
        return RuntimeMaps(runtime, maps[0], maps[1],
                           tuple(n for _, _, n in sorted(u_ranges)),
                           tuple(n for _, _, n in sorted(g_ranges)))
    if pw is None:
        return RuntimeMaps(runtime, None, None, error=Note(
            "unknown-user", f"user {user!r} has no passwd entry", "error"))
    if error is not None:
        # GetConfiguredMappings logs the error and goes on with a single mapping.
        notes.append(Note("podman-no-ranges",
                          f"cannot find UID/GID for user {user}: {error} - check rootless mode "
                          "in man pages.", "warning"))
        notes.append(Note("podman-single-mapping",
                          "using rootless single mapping into the namespace. This might break "
                          "some images. Check /etc/subuid and /etc/subgid for adding sub*ids",
                          "warning"))
        return RuntimeMaps(runtime, IDMap.single(0, pw.uid, 1), IDMap.single(0, pw.gid, 1),
                           notes=tuple(notes))
    out: list[tuple[IDMap | None, tuple[int, ...], tuple[int, ...]]] = []
    err_note: Note | None = None
    for ranges, own, file in ((u_ranges, pw.uid, "subuid"), (g_ranges, pw.gid, "subgid")):
        # tryMappingTool: "0 own 1", then each sorted range at its container ID + 1.
        triples = [(0, own, 1)]
        container = 0
        for start, count, _ in sorted(ranges, key=lambda r: r[0]):
            if start <= own < start + count:
                what = "UID" if file == "subuid" else "GID"
                err_note = err_note or Note(
                    "podman-range-includes-user",
                    f"invalid configuration: the specified mapping {start}:{count} in "
                    f'"/etc/{file}" includes the user {what}', "error", file)
            triples.append((container + 1, start, count))
            container += count
        lines = tuple(n for _, _, n in sorted(ranges, key=lambda r: r[0]))
        if file == "subuid":
            d = newuidmap_decision(fu, triples, user=user, uid=pw.uid, accounts=accounts)
        else:
            d = newgidmap_decision(fg, triples, user=user, uid=pw.uid, gid=pw.gid,
                                   accounts=accounts)
        if not d.allowed and err_note is None:
            err_note = Note("newuidmap-refused",
                            f"cannot setup namespace using new{file[3:]}map: {d.message}",
                            "error", file)
        built = _kernel_map(triples)
        out.append((built if d.allowed and isinstance(built, IDMap) else None, lines,
                    tuple(v for t in triples for v in t)))
    (um, ul, ua), (gm, gl, ga) = out
    return RuntimeMaps(runtime, um, gm, ul, gl, tuple(notes), err_note, uid_argv=ua, gid_argv=ga)


def podman_rootless_map(intermediate: IDMap, uidmap: IDMap) -> IDMap:
    """The host map of a rootless container started with ``--uidmap``.

    Rootless, ``--uidmap`` host IDs are IDs of the intermediate namespace (its container
    side: 0 is the user, 1… the subordinate ranges); the result is ``uidmap`` composed
    with ``intermediate``. Raises :class:`RuntimeConfigError` (``not-in-parent``) when
    ``uidmap`` uses an ID the intermediate namespace does not have: the kernel refuses.

    >>> inter = IDMap([Extent(0, 1000, 1), Extent(1, 100000, 65536)])
    >>> print(podman_rootless_map(inter, IDMap([Extent(0, 1, 65536), Extent(65536, 0, 1)])))
    0 100000 65536
    65536 1000 1
    """
    out = uidmap.then(intermediate)
    if out.size != uidmap.size:
        missing = uidmap.host_ids() - intermediate.container_ids()
        raise RuntimeConfigError(
            f"--uidmap uses ID {missing.min} of the rootless namespace, which maps only "
            f"{intermediate.container_ids()}: the kernel refuses the map",
            reason="not-in-parent")
    return out


def podman_auto_size(
    requested: int = 0,
    *,
    initial: int = 0,
    image_max: int = 0,
    min_size: int = AUTO_USERNS_MIN_SIZE,
    max_size: int = AUTO_USERNS_MAX_SIZE,
) -> int:
    """How many IDs ``--userns=auto`` gives a container (containers-storage ``getAutoUserNS``).

    ``requested`` (``auto:size=N``) wins outright. Otherwise the size is the largest of
    ``min_size``, ``initial`` (``auto:size`` … ``initialsize=N``) and ``image_max`` (one
    past the largest ID the image's layers and /etc/passwd, /etc/group use, nobody not
    counted), and must not exceed ``max_size``.

    >>> podman_auto_size(), podman_auto_size(image_max=1001), podman_auto_size(200)
    (1024, 1024, 200)
    >>> try:
    ...     podman_auto_size(image_max=70000)
    ... except RuntimeConfigError as err:
    ...     print(err.reason)
    auto-too-big
    """
    if requested > 0:
        return requested
    size = max(min_size or AUTO_USERNS_MIN_SIZE, initial or 1, image_max)
    limit = max_size or AUTO_USERNS_MAX_SIZE
    if size > limit:
        raise RuntimeConfigError(
            f"the container needs a user namespace with size {size} that is bigger than the "
            f"maximum value allowed with userns=auto {limit}", reason="auto-too-big")
    return size


def podman_auto_available(
    subuid: SubidSource,
    subgid: SubidSource,
    *,
    accounts: Accounts,
    user: str = "containers",
    rootless: bool = False,
) -> tuple[IDSet, IDSet]:
    """The uids and gids ``--userns=auto`` may hand out (``getAvailableIDs``).

    Root Podman: the host IDs of ``user``'s ranges (``containers`` by default); an error
    reading them leaves nothing available. Rootless: IDs ``1 … N`` of the intermediate
    namespace, N the number of the user's subordinate IDs.

    >>> acc = Accounts.from_pairs([("containers", 990)], [("containers", 990)])
    >>> podman_auto_available("containers:2147483647:2147483648\\n",
    ...                       "containers:2147483647:2147483648\\n", accounts=acc)[0]
    IDSet([IDRange(2147483647, 2147483648)])
    """
    r = podman_maps(subuid, subgid, user, accounts=accounts, rootless=False)
    if r.uid is None or r.gid is None:
        return IDSet.empty(), IDSet.empty()
    if not rootless:
        return r.uid.host_ids(), r.gid.host_ids()
    return (IDSet([IDRange(1, r.uid.size)]), IDSet([IDRange(1, r.gid.size)]))


def podman_auto(
    available: IDSet,
    size: int,
    *,
    used: Iterable[IDMap] = (),
    additional: IDMap | None = None,
) -> IDMap:
    """The map ``--userns=auto`` gives a new container (``getAutoUserNSIDMappings``).

    Container IDs ``0 … size-1`` (less those ``additional`` maps, e.g. from
    ``auto:uidmapping=``) get the LOWEST ``available`` host IDs that no map in ``used``
    (the other containers') or ``additional`` takes, zipped in order; then
    ``additional`` is appended. Raises :class:`RuntimeConfigError`
    (``no-available-ids``) when there are not enough.

    >>> avail = IDSet([IDRange(100000, 200000)])
    >>> print(podman_auto(avail, 1024, used=[IDMap.single(0, 100000, 1024)]))
    0 101024 1024
    """
    extra = additional if additional is not None else IDMap()
    taken = IDSet([m.host_ids() for m in used] + [extra.host_ids()])
    wanted = IDSet([IDRange(0, size)]) - extra.container_ids()
    free = available - taken
    need = len(wanted)
    hosts: list[IDRange] = []
    for r in free.ranges:
        if need <= 0:
            break
        take = min(r.size, need)
        hosts.append(IDRange(r.start, take))
        need -= take
    if need > 0:
        raise RuntimeConfigError("not enough unused IDs in user namespace",
                                 reason="no-available-ids")
    out: list[Extent] = []
    conts = list(wanted.ranges)
    hi = ci = 0
    h_off = c_off = 0
    while hi < len(hosts) and ci < len(conts):
        h, c = hosts[hi], conts[ci]
        n = min(h.size - h_off, c.size - c_off)
        out.append(Extent(c.start + c_off, h.start + h_off, n))
        h_off += n
        c_off += n
        if h_off == h.size:
            hi, h_off = hi + 1, 0
        if c_off == c.size:
            ci, c_off = ci + 1, 0
    return IDMap([*out, *extra])


# -- util-linux unshare (2.38) --------------------------------------------------------


def _c_strtoul(text: str) -> int:
    """C ``strtoul(s, NULL, 10)``: the leading number, 0 when there is none."""
    m = re.match(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)", text)
    if m is None:
        return 0
    value = int(m.group(2))
    if value > _ULONG_MAX:
        return _ULONG_MAX
    return (-value) & _ULONG_MAX if m.group(1) == "-" else value


def _strtoul_or_err(text: str) -> int | None:
    """util-linux ``strtoul_or_err``: all of ``text`` one base-10 number, else None."""
    m = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)", text)
    if m is None or int(m.group(2)) > _ULONG_MAX:
        return None  # garbage, or ERANGE
    value = int(m.group(2))
    return (-value) & _ULONG_MAX if m.group(1) == "-" else value


def _unshare_read_subid(
    f: SubidFile, file: str, name: str, uid: int
) -> tuple[tuple[int, int, int] | None, int | None, str | None]:
    """``read_subid_range``: (outer, inner, count) of the FIRST matching line, or the error."""
    for line in f.lines:
        text = line.text.split("\0", 1)[0]
        if ":" not in text:
            continue
        owner, rest = text.split(":", 1)
        if owner != name and _c_strtoul(owner) != uid:
            continue
        if ":" not in rest:
            continue
        first, second = rest.split(":", 1)
        outer, count = _strtoul_or_err(first), _strtoul_or_err(second)
        if outer is None:
            return None, line.lineno, f"unshare: failed to parse subid map: '{first}'"
        if count is None:
            return None, line.lineno, f"unshare: failed to parse subid map: '{second}'"
        # struct map_range holds unsigned ints: the values are cut to 32 bits.
        return (outer % _UINT32, 0, count % _UINT32), line.lineno, None
    return None, None, f'unshare: no line matching user "{name}" in /etc/{file}'


def _unshare_map_ids(outer: int, inner: int | None, rng: tuple[int, int, int]) -> list[
        tuple[int, int, int]]:
    """util-linux ``map_ids``: the newuidmap triples, in its unsigned int arithmetic."""
    m_outer, m_inner, m_count = rng
    if inner is None:
        return [(m_inner, m_outer, m_count)]
    mask = _UINT32 - 1

    def u(x: int) -> int:
        return x & mask

    count = m_count
    if (m_outer <= outer <= u(m_outer + count)) or (m_inner <= inner <= u(m_inner + count)):
        count = u(count - 1)
    outer_offset = min(u(outer - m_outer) if outer > m_outer else 0, count)
    inner_offset = min(u(inner - m_inner) if inner > m_inner else 0, count)
    lo = (m_outer, m_inner, min(inner_offset, outer_offset))
    mid_outer = u(lo[0] + lo[2])
    mid_outer = u(mid_outer + (mid_outer == outer))
    mid_inner = u(lo[1] + lo[2])
    mid_inner = u(mid_inner + (mid_inner == inner))
    mid = (mid_outer, mid_inner, abs(outer_offset - inner_offset))
    hi_outer = u(mid[0] + mid[2])
    hi_outer = u(hi_outer + (hi_outer == outer))
    hi_inner = u(mid[1] + mid[2])
    hi_inner = u(hi_inner + (hi_inner == inner))
    hi = (hi_outer, hi_inner, u(count - lo[2] - mid[2]))
    out = [(inner, outer, 1)]
    out.extend((part[1], part[0], part[2]) for part in (lo, mid, hi) if part[2])
    return out


def unshare_maps(
    subuid: SubidSource,
    subgid: SubidSource,
    user: str,
    *,
    accounts: Accounts,
    map_auto: bool = True,
    map_root_user: bool = False,
    map_current_user: bool = False,
    map_user: int | None = None,
    map_group: int | None = None,
    map_users: tuple[int, int, int] | None = None,
    map_groups: tuple[int, int, int] | None = None,
) -> RuntimeMaps:
    """The maps ``unshare --user`` of util-linux 2.38 sets up when ``user`` runs it.

    ``map_auto`` (``--map-auto``): the FIRST line of subuid and of subgid matching the
    user's name, or whose owner field starts with the user's uid as C ``strtoul`` reads
    it (so for root, every line whose owner is a name matches); ``map_users`` /
    ``map_groups`` are ``--map-users=OUTER,INNER,COUNT``. ``map_root_user`` (``-r``),
    ``map_current_user`` (``-c``) or ``map_user``/``map_group`` (``--map-user``) map the
    caller's own uid/gid to 0, to itself, or to the given ID, cutting it out of the range
    (one ID of the range is then left unused). With a range the maps are installed by
    ``newuidmap``/``newgidmap`` (and must pass them); with only a single ID they are
    written directly, with setgroups denied.

    >>> acc = Accounts.from_pairs([("ann", 1000)], [("ann", 1000)])
    >>> files = ("ann:100000:65536\\nann:300000:65536\\n", "ann:100000:65536\\n")
    >>> print(unshare_maps(*files, "ann", accounts=acc).uid)
    0 100000 65536
    >>> print(unshare_maps(*files, "ann", accounts=acc, map_root_user=True).uid)
    0 1000 1
    1 100000 65535
    """
    fu, fg = _file(subuid), _file(subgid)
    pw = accounts.user(user)
    runtime = "unshare"
    if pw is None:
        return RuntimeMaps(runtime, None, None, error=Note(
            "unknown-user", f"user {user!r} has no passwd entry", "error"))
    inner_u = map_user if map_user is not None else (
        0 if map_root_user else pw.uid if map_current_user else None)
    inner_g = map_group if map_group is not None else (
        0 if map_root_user else pw.gid if map_current_user else None)
    notes: list[Note] = []
    error: Note | None = None
    # Both files are read while the options are parsed, before any newuidmap runs.
    for f, file, explicit in ((fu, "subuid", map_users), (fg, "subgid", map_groups)):
        if map_auto and explicit is None:
            _, lineno, message = _unshare_read_subid(f, file, pw.name, pw.uid)
            if message is not None:
                return RuntimeMaps(runtime, None, None, error=Note(
                    "unshare-subid", message, "error", file, lineno))
    results: list[tuple[IDMap | None, tuple[int, ...], tuple[int, ...] | None]] = []
    for kind, f, file, own, inner, explicit in (
        ("uid", fu, "subuid", pw.uid, inner_u, map_users),
        ("gid", fg, "subgid", pw.gid, inner_g, map_groups),
    ):
        rng: tuple[int, int, int] | None = None
        lines: tuple[int, ...] = ()
        if explicit is not None:
            rng = explicit
        elif map_auto:
            # read_subid_range looks both files up by the user's uid (real_euid).
            rng, lineno, _ = _unshare_read_subid(f, file, pw.name, pw.uid)
            lines = (lineno,) if lineno is not None else ()
        if rng is None:
            if inner is None:
                notes.append(Note("unshare-no-map", f"no {kind} map is written: every ID is "
                                  "unmapped (shown as the overflow ID)", "info"))
                results.append((None, (), None))
                continue
            if kind == "gid":
                notes.append(Note("unshare-setgroups-deny",
                                  "setgroups is denied (the gid map is written directly)"))
            results.append((IDMap.single(inner, own, 1), (), None))
            continue
        triples = _unshare_map_ids(own, inner, rng)
        if kind == "uid":
            d = newuidmap_decision(fu, triples, user=pw.name, uid=pw.uid, accounts=accounts)
        else:
            d = newgidmap_decision(fg, triples, user=pw.name, uid=pw.uid, gid=pw.gid,
                                   accounts=accounts)
        argv = tuple(v for t in triples for v in t)
        if not d.allowed:
            error = error or Note("newuidmap-refused", d.message or d.reason, "error", file)
            results.append((None, lines, argv))
            continue
        if kind == "gid" and d.setgroups == "deny":
            notes.append(Note("unshare-setgroups-deny", "newgidmap denies setgroups: no "
                              "extent came from /etc/subgid"))
        built = _kernel_map(triples)
        results.append((built if isinstance(built, IDMap) else None, lines, argv))
    (um, ul, ua), (gm, gl, ga) = results
    return RuntimeMaps(runtime, um, gm, ul, gl, tuple(notes), error, uid_argv=ua, gid_argv=ga)


# -- Incus ----------------------------------------------------------------------------

_Entry: TypeAlias = "tuple[int, int, int]"  # (container, host, size), as Incus's Entry


def _incus_from_shadow(
    f: SubidFile, file: str, name: str
) -> tuple[list[tuple[int, int, int]], str | None]:
    """Incus ``getFromShadow``: ``(start, size, lineno)`` of lines owned by ``name``.

    ``#`` starts a comment anywhere; a line with fewer than three ``:`` fields fails the
    whole file; owners compare case-insensitively; numbers that are not uint32 skip the
    line.
    """
    out: list[tuple[int, int, int]] = []
    for line in f.lines:
        body = line.text.split("#", 1)[0]
        if not body:
            continue
        parts = body.split(":")
        if len(parts) < 3:
            shown = " ".join('"' + p.replace('"', '\\"') + '"' for p in parts)
            return [], f'Unexpected values in "/etc/{file}": [{shown}]'
        if parts[0].casefold() != name.casefold():
            continue
        values = [int(p) if re.fullmatch(r"\+?[0-9]+", p) else -1 for p in parts[1:3]]
        if any(not 0 <= v < _UINT32 for v in values):
            continue
        out.append((values[0], values[1], line.lineno))
    return out, None


def _half_open(x: int, low: int, high: int) -> bool:
    return low <= x < high  # Incus's isBetween


def _incus_intersects(e: _Entry, i: _Entry) -> bool:
    """Incus ``Entry.Intersects``: note the ``- 1``: each end is exclusive of the last ID."""
    ec, eh, en = e
    ic, ih, isz = i
    checks = (
        (eh, ih, ih + isz - 1), (ih, eh, eh + en - 1),
        (eh + en - 1, ih, ih + isz - 1), (ih + isz - 1, eh, eh + en - 1),
        (ec, ic, ic + isz - 1), (ic, ec, ec + en - 1),
        (ec + en - 1, ic, ic + isz - 1), (ic + isz - 1, ec, ec + en - 1),
    )
    return any(_half_open(x, low, high) for x, low, high in checks)


def _incus_host_ids_intersect(e: _Entry, i: _Entry) -> bool:
    """Incus ``Entry.HostIDsIntersect``: touching host ranges count as intersecting."""
    _, eh, en = e
    _, ih, isz = i
    return (_half_open(eh, ih, ih + isz) or _half_open(ih, eh, eh + en)
            or _half_open(eh + en, ih, ih + isz) or _half_open(ih + isz, eh, eh + en))


def _incus_add_safe(entries: list[_Entry], i: _Entry) -> list[_Entry]:
    """Incus ``Set.AddSafe``: split every entry ``i`` intersects around it."""
    result: list[_Entry] = []
    added = False
    for e in entries:
        if not _incus_intersects(e, i):
            result.append(e)
            continue
        if _incus_host_ids_intersect(e, i):
            raise RuntimeConfigError("Host ID is in the range of subids", reason="incus-host-id")
        lower = (e[0], e[1], i[0] - e[0])
        upper = (i[0] + i[2], e[1] + lower[2] + i[2], e[2] - i[2] - lower[2])
        if lower[2] > 0:
            result.append(lower)
        if not added:
            added = True
            result.append(i)
        if upper[2] > 0:
            result.append(upper)
    if not added:
        result.append(i)
    return result


def _incus_isolated_base(
    first: _Entry, size: int, base: int | None, in_use: Sequence[tuple[int, int]]
) -> int:
    """``findIdmap``'s search for an isolated container's host base, quirks included:
    between two containers a gap must be LARGER than ``size``; after the last one it
    may be exactly ``size``."""
    if base is not None:
        return base
    _, first_host, first_size = first
    offset = first_host + _INCUS_POSIX
    used = sorted(in_use)
    for i, (host, length) in enumerate(used):
        if i == 0:
            if host < offset + size:
                offset = host + length
                continue
            return offset
        prev_end = used[i - 1][0] + used[i - 1][1]
        if prev_end > offset:
            offset = prev_end
            continue
        offset = prev_end
        if offset + size < host:
            return offset
        offset = host + length
    if offset + size <= first_host + first_size:
        return offset
    raise RuntimeConfigError("Not enough uid/gid available for the container",
                             reason="incus-no-room")


def incus_maps(
    subuid: SubidSource | None,
    subgid: SubidSource | None,
    *,
    accounts: Accounts,
    raw_idmap: str = "",
    idmap_size: int | None = None,
    isolated: bool = False,
    idmap_base: int | None = None,
    isolated_in_use: Sequence[tuple[int, int]] = (),
) -> RuntimeMaps:
    """The maps of an Incus container (``incusd``'s ``findIdmap``).

    Incus takes ROOT's lines (by name, case-insensitively, else by root's uid), keeps
    those of at least 65536 IDs (``FilterPOSIX``), each mapped from container ID 0;
    ``idmap_size`` (``security.idmap.size``) caps them; ``raw_idmap`` entries are laid
    over with Incus's ``AddSafe``. Pass ``None`` for both files when they (or
    newuidmap/newgidmap) are missing: Incus then takes 1000000000 IDs from 1000000.

    ``isolated`` (``security.idmap.isolated``): the container gets ``idmap_size`` IDs
    (65536 by default) of its own, at ``idmap_base`` (``security.idmap.base``) or in the
    first gap after the first 65536 IDs of root's first range that the other isolated
    containers' ``(volatile.idmap.base, size)`` pairs in ``isolated_in_use`` leave.

    >>> acc = Accounts.from_pairs([("root", 0)], [("root", 0)])
    >>> r = incus_maps("root:1000000:1000000000\\n", "root:1000000:1000000000\\n",
    ...                accounts=acc, raw_idmap="both 1000 1000")
    >>> print(r.uid)
    0 1000000 1000
    1000 1000 1
    1001 1001001 999998999
    """
    runtime = "incus"
    notes: list[Note] = []
    if subuid is None or subgid is None:
        notes.append(Note("incus-no-subid", "no /etc/subuid or /etc/subgid: Incus splits "
                          "1000000000 IDs from 1000000 off its own map"))
        sides: list[list[_Entry]] = [[(0, 1000000, 1000000000)], [(0, 1000000, 1000000000)]]
        lines: list[tuple[int, ...]] = [(), ()]
    else:
        sides, lines = [], []
        for f, file in ((_file(subuid), "subuid"), (_file(subgid), "subgid")):
            found, err = _incus_from_shadow(f, file, "root")
            if err is None and not found:
                root_uid = accounts.uid_of("root")
                if root_uid is None:
                    err = "No map found for user"
                else:
                    found, err = _incus_from_shadow(f, file, str(root_uid))
                    err = err or (None if found else "No map found for user")
            if err is not None:
                return RuntimeMaps(runtime, None, None, notes=tuple(notes), error=Note(
                    "incus-no-map", f"Unable to parse system idmap: {err}; only privileged "
                    "containers will be functional", "error", file))
            for start, size, lineno in found:
                if size < _INCUS_POSIX:
                    notes.append(Note("incus-small-range",
                                      f"root's range {start}:{size} has fewer than 65536 IDs: "
                                      "Incus ignores it", "warning", file, lineno))
            kept = [(s, n, ln) for s, n, ln in found if n >= _INCUS_POSIX]
            sides.append([(0, s, n) for s, n, _ in kept])
            lines.append(tuple(ln for _, _, ln in kept))
        if not sides[0] and not sides[1]:
            return RuntimeMaps(runtime, None, None, notes=tuple(notes), error=Note(
                "incus-no-map", "No valid subuid/subgid map, only privileged containers will "
                "be functional", "error"))
    if isolated:
        try:
            offset = _incus_isolated_base(sides[0][0] if sides[0] else (0, 0, 0),
                                          idmap_size or _INCUS_POSIX, idmap_base,
                                          isolated_in_use)
        except RuntimeConfigError as err:
            return RuntimeMaps(runtime, None, None, notes=tuple(notes),
                               error=Note(err.reason, err.message, "error"))
        size = idmap_size or _INCUS_POSIX
        sides = [[(0, offset, size)], [(0, offset, size)]]
        notes.append(Note("incus-isolated", f"isolated: {size} IDs from host ID {offset} "
                          "(volatile.idmap.base)"))
    elif idmap_size is not None:
        sides = [[(c, h, min(n, idmap_size)) for c, h, n in side] for side in sides]
    error: Note | None = None
    if raw_idmap:
        try:
            raw = parse_raw_idmap(raw_idmap, path="raw.idmap")
        except UsernsError as err:
            return RuntimeMaps(runtime, None, None, notes=tuple(notes),
                               error=Note(err.reason, str(err), "error"))
        try:
            for k, extra in enumerate((raw.uid, raw.gid)):
                for e in extra:
                    sides[k] = _incus_add_safe(sides[k], (e.container, e.host, e.size))
        except RuntimeConfigError as err:
            return RuntimeMaps(runtime, None, None, notes=tuple(notes),
                               error=Note(err.reason, err.message, "error"))
    maps: list[IDMap | None] = []
    for side, kind in zip(sides, ("uid", "gid")):
        if not side:
            error = error or Note("incus-no-map", f"no root {kind} range of 65536 IDs or more: "
                                  "the container cannot start", "error", f"sub{kind}")
            maps.append(None)
            continue
        built = _kernel_map(side)
        if isinstance(built, str):
            error = error or Note("kernel-refused", f"LXC's {kind} map is refused: {built}",
                                  "error", f"sub{kind}")
            maps.append(None)
        else:
            maps.append(built)
    return RuntimeMaps(runtime, maps[0], maps[1], lines[0], lines[1], tuple(notes), error)


# -- the comparison -------------------------------------------------------------------

#: How each runtime lays a user's lines out, for explanations.
_POLICY = {
    "docker": "every line of the user, in FILE order",
    "podman": "every line of the user, sorted by host start",
    "podman-rootless": "the user's own ID at 0, then every line sorted by host start",
    "unshare --map-auto": "the FIRST matching line only",
    "unshare --map-auto --map-root-user": "the user's own ID at 0, then the FIRST matching "
                                          "line less one ID",
    "incus": "root's lines of at least 65536 IDs, each from container ID 0",
}
#: The runtimes :func:`compare_runtimes` knows, in the order it reports them.
_RUNTIMES = tuple(_POLICY)


@attrs.frozen
class Difference:
    """Two runtimes build different maps of one kind (``uid`` or ``gid``) for a user.

    ``reason`` is ``fails`` (one of them would not start), ``order`` (the same host
    IDs laid out in another order), ``ids`` (different host IDs); ``container`` is the
    first container ID they translate differently, ``hosts`` what each maps it to
    (``None``: unmapped).
    """

    first: str
    second: str
    kind: str
    reason: str
    message: str
    container: int | None = None
    hosts: tuple[int | None, int | None] = (None, None)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"runtimes": [self.first, self.second], "kind": self.kind,
                "reason": self.reason, "message": self.message, "container": self.container,
                "hosts": list(self.hosts)}


@attrs.frozen
class Comparison:
    """The maps several runtimes build for one user from one pair of files, and how they
    differ. ``results`` in a fixed order; ``differences`` for every pair that differs.
    """

    user: str
    results: tuple[RuntimeMaps, ...]
    differences: tuple[Difference, ...]

    @property
    def agree(self) -> bool:
        """True when every runtime builds the same maps (or fails alike)."""
        return not self.differences

    def result(self, runtime: str) -> RuntimeMaps:
        """The result of one runtime (``KeyError`` if it was not compared)."""
        for r in self.results:
            if r.runtime == runtime:
                return r
        raise KeyError(runtime)

    def summary(self) -> list[str]:
        """One line per difference (or one saying they agree), for a terminal."""
        if self.agree:
            names = ", ".join(r.runtime for r in self.results)
            return [f"{names} build the same maps for {self.user}"]
        return [d.message for d in self.differences]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"user": self.user, "agree": self.agree,
                "results": [r.to_dict() for r in self.results],
                "differences": [d.to_dict() for d in self.differences]}


def _first_difference(a: IDMap, b: IDMap) -> tuple[int, int | None, int | None] | None:
    """The first container ID ``a`` and ``b`` translate differently (checked at extent
    boundaries only: between two boundaries both maps are shifts)."""
    points = sorted({0, *(e.container for m in (a, b) for e in m),
                     *(e.container + e.size for m in (a, b) for e in m)})
    for c in points:
        if c > 4294967294:
            break
        ha, hb = a.to_host(c, None), b.to_host(c, None)
        if ha != hb:
            return c, ha, hb
    return None


def _describe(r: RuntimeMaps, kind: str) -> str:
    lines = r.uid_lines if kind == "uid" else r.gid_lines
    where = f" (sub{kind} lines {', '.join(map(str, lines))})" if lines else ""
    return f"{r.runtime} takes {_POLICY.get(r.runtime, 'its own ranges')}{where}"


def _compare_pair(user: str, a: RuntimeMaps, b: RuntimeMaps, kind: str) -> Difference | None:
    ma, mb = (a.uid, b.uid) if kind == "uid" else (a.gid, b.gid)
    head = f"{a.runtime} and {b.runtime} give {user} different {kind} maps"
    if a.error is not None or b.error is not None or ma is None or mb is None:
        if (a.error is None) == (b.error is None) and (ma is None) == (mb is None):
            if ma is None or mb is None or ma.equivalent(mb):
                return None
        else:
            failing = a if (a.error is not None or ma is None) else b
            why = failing.error.message if failing.error is not None else "no map at all"
            return Difference(a.runtime, b.runtime, kind, "fails",
                              f"{head}: {failing.runtime} builds none: {why}")
    assert ma is not None and mb is not None
    if ma.equivalent(mb):
        return None
    first = _first_difference(ma, mb)
    c, ha, hb = first if first is not None else (None, None, None)
    reason = "order" if ma.host_ids() == mb.host_ids() else "ids"
    why = f"{_describe(a, kind)}; {_describe(b, kind)}"
    if reason == "ids":
        only_a, only_b = ma.host_ids() - mb.host_ids(), mb.host_ids() - ma.host_ids()
        parts = []
        if only_a:
            parts.append(f"only {a.runtime} uses host {kind}s {only_a}")
        if only_b:
            parts.append(f"only {b.runtime} uses host {kind}s {only_b}")
        why += "; " + ", ".join(parts)
    else:
        why += "; the same host IDs, in another order"
    example = ""
    if c is not None:
        def show(h: int | None) -> str:
            return "unmapped" if h is None else f"host {h}"

        example = (f": container {kind} {c} is {show(ha)} under {a.runtime} and "
                   f"{show(hb)} under {b.runtime}")
    return Difference(a.runtime, b.runtime, kind, reason, f"{head}{example} ({why})", c,
                      (ha, hb))


def compare_runtimes(
    subuid: SubidSource,
    subgid: SubidSource,
    user: str,
    *,
    accounts: Accounts,
    runtimes: Sequence[str] | None = None,
) -> Comparison:
    """What each runtime would build for ``user`` from the same files, and how they differ.

    ``runtimes`` picks among ``docker`` (``--userns-remap=USER``), ``podman`` (root,
    ``--subuidname=USER``), ``podman-rootless`` (run by the user), ``unshare
    --map-auto`` and ``unshare --map-auto --map-root-user`` (run by the user), and
    ``incus`` (which always uses ROOT's ranges); the default is all but ``incus``, and
    ``incus`` too when ``user`` is ``root``.

    >>> acc = Accounts.from_pairs([("jonas", 1001)], [("jonas", 1001)])
    >>> text = "jonas:100000:1000\\njonas:1000:1\\n"
    >>> cmp = compare_runtimes(text, text, "jonas", accounts=acc, runtimes=["docker", "podman"])
    >>> [d.reason for d in cmp.differences], cmp.differences[0].container
    (['order', 'order'], 0)
    >>> print(cmp.summary()[0])  # doctest: +NORMALIZE_WHITESPACE
    docker and podman give jonas different uid maps: container uid 0 is host 100000 under
    docker and host 1000 under podman (docker takes every line of the user, in FILE order
    (subuid lines 1, 2); podman takes every line of the user, sorted by host start (subuid
    lines 2, 1); the same host IDs, in another order)
    """
    chosen = list(runtimes) if runtimes is not None else [
        r for r in _RUNTIMES if r != "incus" or user == "root"]
    unknown = [r for r in chosen if r not in _POLICY]
    if unknown:
        raise ValueError(f"unknown runtime {unknown[0]!r}: choose from {', '.join(_RUNTIMES)}")
    results: list[RuntimeMaps] = []
    for name in chosen:
        if name == "docker":
            r = docker_remap(subuid, subgid, user, accounts=accounts)
        elif name == "podman":
            r = podman_maps(subuid, subgid, user, accounts=accounts, rootless=False)
        elif name == "podman-rootless":
            r = podman_maps(subuid, subgid, user, accounts=accounts, rootless=True)
        elif name == "incus":
            r = incus_maps(subuid, subgid, accounts=accounts)
        else:
            r = unshare_maps(subuid, subgid, user, accounts=accounts,
                             map_root_user=name.endswith("--map-root-user"))
        results.append(attrs.evolve(r, runtime=name))
    diffs: list[Difference] = []
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            for kind in ("uid", "gid"):
                d = _compare_pair(user, a, b, kind)
                if d is not None:
                    diffs.append(d)
    return Comparison(user, tuple(results), tuple(diffs))
