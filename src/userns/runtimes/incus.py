"""Incus: root's ranges, ``raw.idmap`` applied with Incus's ``AddSafe``, isolated maps."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeAlias

from ..errors import UsernsError
from ..formats.lxc import parse_raw_idmap
from ..maps import IDMap
from ..subid import Accounts, SubidFile
from ._base import (
    _INCUS_POSIX,
    _UINT32,
    Note,
    RuntimeConfigError,
    RuntimeMaps,
    SubidSource,
    _file,
    _kernel_map,
)

__all__ = [
    "incus_maps",
]


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


def incus_maps(  # noqa: C901 (mirrors Incus's own branches, case for case)
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
