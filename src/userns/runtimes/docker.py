"""Docker ``--userns-remap``: the maps dockerd builds, and its data root."""

from __future__ import annotations

import json

from .._foreign import go_parse_int
from ..maps import IDMap
from ..ranges import IDRange
from ..subid import Accounts, SubidFile
from ._base import Note, RuntimeConfigError, RuntimeMaps, SubidSource, _file, _kernel_map

__all__ = [
    "docker_remap",
    "docker_remapped_root",
]


def _go_parse_int32(text: str) -> int | None:
    """``strconv.ParseInt(s, 10, 32)``: the value, or None on any error."""
    value, error = go_parse_int(text, 32)
    return None if error else value


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
