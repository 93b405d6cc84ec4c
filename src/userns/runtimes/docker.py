"""Docker ``--userns-remap``: the maps dockerd builds, and its data root, by version.

dockerd's rules changed twice, so :func:`docker_remap` takes ``version=``:

- ``"20.10"`` — moby 20.10 to 27.x (``pkg/idtools``; Debian 12 ships 20.10.24): a line is
  trimmed, blank and ``#`` lines are skipped, any other line that is not three
  ``:``-fields makes the WHOLE file unreadable, and a matching line whose number is not a
  Go ``Atoi`` integer too (dockerd then refuses to start); the user's lines are looked up
  by UID first and by NAME only when no line carries the uid (``lookupSubUIDRanges``),
  subgid by the same user; ``default`` places a new range after ALL the file's ranges
  (``parseSubuid("ALL")``), sorted, with a closed-interval overlap test.
- ``"28"`` — moby 28.0 to 29.x (``daemon/internal/usergroup`` over ``moby/sys/user``):
  every line is read (``ParseSubIDFilter``: no comments, numbers that do not parse
  become 0), the lines of the user's NAME or UID in file order
  (``lookupSubRangesFile``); ``default`` places a new range after ROOT's ranges only
  (``CurrentUserSubUIDs``), same closed-interval test.
- ``"main"`` (the default) — moby's main branch after PR 53524 (2026-08-31): as
  ``"28"``, but ``findNextRangeStart`` treats ranges as half-open, so a range contained
  in the candidate is seen and one that merely touches it is not.

:func:`docker_rules` turns a version text (``"20.10.24"``, ``"Docker version 28.1.1,
build 4eba377"``, ``"main"``) into one of these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import attrs

from .._foreign import go_parse_int, go_trim_space
from ..maps import IDMap
from ..ranges import IDRange
from ..subid import Accounts, SubidFile
from ._base import Note, RuntimeConfigError, RuntimeMaps, SubidSource, _file, _kernel_map

__all__ = [
    "DOCKER_VERSIONS",
    "DockerRules",
    "docker_remap",
    "docker_remapped_root",
    "docker_rules",
]

#: The rule sets :func:`docker_remap` models, oldest first.
DOCKER_VERSIONS = ("20.10", "28", "main")
#: moby's ``defaultRangeStart`` / ``defaultRangeLen`` for the ``default`` user's ranges.
DEFAULT_RANGE_START = 100000
DEFAULT_RANGE_LEN = 65536
_VERSION = re.compile(r"(?:Docker version\s+)?v?(\d+)(?:\.(\d+))?")


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


@attrs.frozen
class DockerRules:
    """The subuid/subgid rules of one line of dockerd releases (see the module docstring).

    ``version`` is ``"20.10"``, ``"28"`` or ``"main"``; ``release`` the version text it
    was derived from. ``uid_first``: lines of the uid, else of the name (20.10) instead of
    both in file order; ``idtools_parser``: 20.10's strict reader instead of
    ``moby/sys/user``'s lenient one; ``next_after_all``: a new ``default`` range avoids
    every range (20.10) instead of root's only; ``half_open``: PR 53524's overlap test.

    >>> r = docker_rules("Docker version 20.10.24+dfsg1, build 5d6db84")
    >>> r.version, r.release, r.uid_first, r.next_after_all, r.half_open
    ('20.10', '20.10.24+dfsg1', True, True, False)
    >>> docker_rules("28.1.1").version, docker_rules("main").half_open
    ('28', True)
    """

    version: str
    release: str
    uid_first: bool
    idtools_parser: bool
    next_after_all: bool
    half_open: bool

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return attrs.asdict(self)


def docker_rules(version: str | DockerRules = "main") -> DockerRules:
    """The rules dockerd ``version`` follows: ``"20.10"``, ``"28"``, ``"main"``, a release
    number (``"24.0.7"``: the 20.10 rules, which hold until 27.x) or ``dockerd
    --version``'s output. Raises :class:`RuntimeConfigError` (``docker-version``) for a
    text that names no version.
    """
    if isinstance(version, DockerRules):
        return version
    text = version.strip()
    if text in ("main", "master", "dev"):
        return DockerRules("main", text, False, False, False, True)
    m = _VERSION.match(text)
    if m is None:
        raise RuntimeConfigError(
            f"cannot tell a Docker version from {text!r}: give 20.10, 28, main, a release "
            "such as 24.0.7, or the output of 'dockerd --version'", reason="docker-version")
    release = text[m.start(1):].split(",", 1)[0].split()[0]
    major = int(m[1])
    if major < 28:
        return DockerRules("20.10", release, True, True, True, False)
    return DockerRules("28", release, False, False, False, False)


# -- reading the files as each version reads them ----------------------------------------


@attrs.frozen
class _Read:
    """One line as dockerd read it: the line number, its text, owner, start, count."""

    lineno: int
    text: str
    owner: str
    start: int
    count: int


def _idtools_read(f: SubidFile, file: str, want: Callable[[str], bool]
                  ) -> tuple[list[_Read], str | None]:
    """moby 20.10 ``parseSubidFile``: the matching lines, or dockerd's error for the file."""
    path = f"/etc/{file}"
    out: list[_Read] = []
    for line in f.lines:
        text = go_trim_space(line.text)
        if not text or text.startswith("#"):
            continue
        parts = text.split(":")
        if len(parts) != 3:
            return [], (f"Cannot parse subuid/gid information: Format not correct for "
                        f"{path} file")
        if want(parts[0]):
            values = []
            for field in parts[1:]:
                value, error = go_parse_int(field)
                if error:
                    return [], (f"String to int conversion failed during subuid/gid parsing "
                                f"of {path}: strconv.Atoi: parsing {_q(field)}: {error}")
                values.append(value)
            out.append(_Read(line.lineno, line.text, parts[0], values[0], values[1]))
    return out, None


def _sys_user_read(f: SubidFile, want: Callable[[str], bool]) -> list[_Read]:
    """``moby/sys/user`` ``ParseSubIDFilter``: every line, unreadable numbers as 0."""
    return [_Read(line.lineno, line.text, r.owner, r.start, r.count)
            for line in f.lines if (r := line.docker) is not None and want(r.owner)]


def _lookup(rules: DockerRules, f: SubidFile, file: str, name: str, uid: int | None
            ) -> tuple[list[_Read], str | None]:
    """The user's lines in ``f`` as ``rules`` select them, or why dockerd cannot read it."""
    uid_text = None if uid is None else str(uid)
    if not rules.uid_first:
        return _sys_user_read(f, lambda o: o in (name, uid_text)), None
    if uid_text is not None:
        found, error = _idtools_read(f, file, lambda o: o == uid_text)
        if error or found:
            return found, error
    return _idtools_read(f, file, lambda o: o == name)


def _misread_notes(reads: list[_Read], f: SubidFile, file: str) -> list[Note]:
    """A note for each line dockerd reads differently from the strict syntax."""
    notes: list[Note] = []
    for r in reads:
        strict = f.lines[r.lineno - 1].entry
        if strict is not None and (strict.start, strict.count) == (r.start, r.count):
            continue
        sev = "security" if r.start == 0 and r.count > 0 else "warning"
        what = ("container root would be HOST root" if sev == "security"
                else "the kernel would refuse the map")
        notes.append(Note(
            "docker-misread",
            f"Docker reads {r.text!r} as start {r.start}, count {r.count} "
            f"(number-parse errors become 0): {what}",
            sev, file, r.lineno))
    return notes


def _triples(reads: list[_Read]) -> list[tuple[int, int, int]]:
    """moby ``createIDMap``: the ranges in the order read, at container IDs 0, 1, …"""
    out: list[tuple[int, int, int]] = []
    container = 0
    for r in reads:
        out.append((container, r.start, r.count))
        container += r.count
    return out


def next_range_start(ranges: list[tuple[int, int]], *, half_open: bool) -> int:
    """moby ``findNextRangeStart``: where dockerd puts 65536 new IDs, given ``(start,
    count)`` ranges to avoid (sorted here, as every version sorts them first).

    Before PR 53524 the test is closed at both ends and only asks whether the
    candidate's first or last-plus-one ID falls in a range, so a range CONTAINED in the
    candidate is missed and one that merely touches it moves it on; after it the ranges
    are half-open intervals.

    >>> next_range_start([(110000, 10)], half_open=False)  # contained: missed
    100000
    >>> next_range_start([(110000, 10)], half_open=True)
    110010
    >>> next_range_start([(165536, 10)], half_open=False), next_range_start(
    ...     [(165536, 10)], half_open=True)  # immediately after the candidate
    (165546, 100000)
    """
    start = DEFAULT_RANGE_START
    for first, count in sorted(ranges, key=lambda r: r[0]):
        if half_open:
            overlaps = start < first + count and first < start + DEFAULT_RANGE_LEN
        else:
            high = start + DEFAULT_RANGE_LEN
            overlaps = (first <= start <= first + count) or (first <= high <= first + count)
        if overlaps:
            start = first + count
    return start


def _avoided(rules: DockerRules, f: SubidFile, file: str) -> tuple[list[tuple[int, int]],
                                                                    str | None]:
    """The ranges ``default``'s new range is placed around: every range of the file
    (20.10, ``parseSubuid("ALL")``) or root's (later, ``CurrentUserSubUIDs``)."""
    if rules.next_after_all:
        reads, error = _idtools_read(f, file, lambda o: True)
        return [(r.start, r.count) for r in reads], error
    return [(r.start, r.count) for r in _sys_user_read(f, lambda o: o in ("root", "0"))], None


def _name_lines(rules: DockerRules, f: SubidFile, file: str, name: str
                ) -> tuple[list[_Read], str | None]:
    """``parseSubuid(name)`` in ``createSubordinateRanges``: the NAME's lines only."""
    if rules.idtools_parser:
        return _idtools_read(f, file, lambda o: o == name)
    return _sys_user_read(f, lambda o: o == name), None


def _refused(error: str, notes: list[Note], file: str, prefix: str) -> RuntimeMaps:
    return RuntimeMaps("docker", None, None, notes=tuple(notes), error=Note(
        "docker-unreadable", f"{prefix}{error}", "error", file))


def _default_created(fu: SubidFile, fg: SubidFile, rules: DockerRules) -> RuntimeMaps:
    """``default`` without a ``dockremap`` user: what dockerd creates and then maps."""
    # dockerd creates dockremap (adduser --system or useradd -r); a file where dockremap
    # has no line yet gets 65536 IDs (usermod -v / -w); existing lines are kept (moby
    # createSubordinateRanges). The new user's uid is unknown: match the name.
    created: list[Note] = []
    made_maps: list[tuple[IDMap, tuple[int, ...]]] = []
    usermod: list[str] = []
    whose = "every range in the file" if rules.next_after_all else "root's ranges only"
    for f, file, flag in ((fu, "subuid", "-v"), (fg, "subgid", "-w")):
        reads, error = _name_lines(rules, f, file, "dockremap")
        if error:
            return _refused(error, created, file, "Error during \"dockremap\" user creation: "
                            "Couldn't create subordinate ID ranges: Error while looking for "
                            f"sub{file[3:]} ranges for user \"dockremap\": ")
        created.extend(_misread_notes(reads, f, file))
        if reads:
            made = _kernel_map(_triples(reads))
            if isinstance(made, str):
                return RuntimeMaps("docker", None, None, notes=tuple(created), error=Note(
                    "kernel-refused",
                    f"container start fails writing the {file[3:]} map: {made}",
                    "error", file))
            made_maps.append((made, tuple(r.lineno for r in reads)))
            continue
        avoid, error = _avoided(rules, f, file)
        if error:
            return _refused(error, created, file, "Error during \"dockremap\" user creation: "
                            "Couldn't create subordinate ID ranges: Can't find available "
                            f"sub{file[3:]} range: Couldn't parse all ranges in /etc/{file} "
                            "file: ")
        start = next_range_start(avoid, half_open=rules.half_open)
        usermod.append(f"{flag} {start}-{start + DEFAULT_RANGE_LEN - 1}")
        new = IDRange(start, DEFAULT_RANGE_LEN)
        for e in f.entries:
            if e.range.overlaps(new):
                created.append(Note(
                    "docker-new-range-overlaps",
                    f"the range dockerd {rules.version} would give dockremap in /etc/{file}, "
                    f"{new}, overlaps {e.owner}'s {e.range}: dockerd avoids {whose}"
                    + ("" if rules.half_open else ", with an overlap test that misses a "
                       "range inside the new one (fixed in moby PR 53524)"),
                    "security", file, e.lineno))
        made_maps.append((IDMap.single(0, start, DEFAULT_RANGE_LEN), ()))
    what = (f" and run 'usermod {' '.join(usermod)} dockremap'" if usermod
            else " and keep its existing subuid/subgid lines")
    created.insert(0, Note("docker-creates-dockremap",
                           f"dockerd would create user dockremap{what}", "warning"))
    (new_uid, new_uid_lines), (new_gid, new_gid_lines) = made_maps
    return RuntimeMaps("docker", new_uid, new_gid, new_uid_lines, new_gid_lines,
                       tuple(created),
                       data_root=f"{new_uid.to_host(0)}.{new_gid.to_host(0)}")


def docker_remap(
    subuid: SubidSource,
    subgid: SubidSource,
    remap: str = "default",
    *,
    accounts: Accounts,
    version: str | DockerRules = "main",
) -> RuntimeMaps:
    """The maps ``dockerd --userns-remap=REMAP`` would use (moby ``setupRemappedRoot``).

    ``version`` picks the rules (:func:`docker_rules`; the module docstring says which
    rule comes from which release). In every version the user's ranges are concatenated
    into container IDs 0, 1, … in the order read, the group part of ``REMAP`` is
    validated but never used for subgid (looked up by the USER), and the data root is
    ``<uid of container 0>.<gid of container 0>``.

    >>> acc = Accounts.from_pairs([("seb", 1000)], [("seb", 1000)])
    >>> r = docker_remap("seb:1000:1\\nseb:100000:65536\\n", "seb:982:1\\nseb:100000:65536\\n",
    ...                  "seb", accounts=acc)
    >>> r.uid.to_host(0), r.uid.to_host(33), r.gid.to_host(0), r.data_root
    (1000, 100032, 982, '1000.982')
    >>> r.pair.container_view(1000, 1000)
    (0, 65534)
    >>> both = "seb:9000000:20\\n1000:20000000:65536\\n"  # the name's line first
    >>> [docker_remap(both, both, "seb", accounts=acc, version=v).uid.to_host(0)
    ...  for v in ("20.10", "main")]
    [20000000, 9000000]
    """
    rules = docker_rules(version)
    fu, fg = _file(subuid), _file(subgid)
    try:
        user, group = docker_remapped_root(remap, accounts)
    except RuntimeConfigError as err:
        if remap != "default":
            return RuntimeMaps("docker", None, None, error=Note(err.reason, err.message, "error"))
        return _default_created(fu, fg, rules)
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
    sides: list[tuple[IDMap | None, tuple[int, ...]]] = []
    error: Note | None = None
    for f, file in ((fu, "subuid"), (fg, "subgid")):
        reads, unreadable = _lookup(rules, f, file, user, pw.uid)
        if unreadable:
            return _refused(unreadable, notes, file, "Can't create ID mappings: ")
        notes.extend(_misread_notes(reads, f, file))
        used = tuple(r.lineno for r in reads)
        if rules.uid_first and reads and reads[0].owner == str(pw.uid):
            shadowed = [e.lineno for e in f.entries if e.owner == user]
            if shadowed:
                notes.append(Note(
                    "docker-uid-lines-first",
                    f"dockerd {rules.version} uses only the lines of uid {pw.uid} in "
                    f"/etc/{file}; the lines of the name {user!r} (line"
                    f"{'s' if len(shadowed) > 1 else ''} "
                    f"{', '.join(map(str, shadowed))}) are ignored (moby 28 and later use "
                    "both, in file order)", "warning", file, shadowed[0]))
        if not reads:
            if rules.uid_first:
                message = f'Can\'t create ID mappings: no {file} ranges found for user "{user}"'
            else:
                # moby says "subuid" for both files (its exact words are kept in the
                # error); a note says which file it really is.
                message = (f"error creating ID mappings: no subuid ranges found for "
                           f'user "{user}"')
                notes.append(Note("docker-no-ranges-file",
                                  f"/etc/{file} has no line for {user} (dockerd's message "
                                  "says subuid whichever file it is)", "error", file))
            error = error or Note("docker-no-ranges", message, "error", file)
            sides.append((None, used))
            continue
        built = _kernel_map(_triples(reads))
        if isinstance(built, str):
            error = error or Note("kernel-refused",
                                  f"container start fails writing the {file[3:]} map: {built}",
                                  "error", file)
            sides.append((None, used))
        else:
            sides.append((built, used))
    (uid_map, uid_lines), (gid_map, gid_lines) = sides
    data_root = None
    if uid_map is not None and gid_map is not None:
        data_root = f"{uid_map.to_host(0)}.{gid_map.to_host(0)}"
    return RuntimeMaps("docker", uid_map, gid_map, uid_lines, gid_lines, tuple(notes), error,
                       data_root)
