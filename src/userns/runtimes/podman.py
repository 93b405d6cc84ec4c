"""Podman and containers/storage: rootful, rootless, ``--uidmap`` and ``--userns=auto``."""

from __future__ import annotations

from collections.abc import Iterable

from .._foreign import go_trim_space as _go_trim  # Go's strings.TrimSpace
from ..authorize import newgidmap_decision, newuidmap_decision
from ..maps import Extent, IDMap
from ..ranges import IDRange, IDSet
from ..subid import Accounts, SubidFile
from ._base import (
    _GO_INT,
    AUTO_USERNS_MAX_SIZE,
    AUTO_USERNS_MIN_SIZE,
    Note,
    RuntimeConfigError,
    RuntimeMaps,
    SubidSource,
    _file,
    _kernel_map,
)

__all__ = [
    "podman_auto",
    "podman_auto_available",
    "podman_auto_size",
    "podman_maps",
    "podman_rootless_map",
]


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


def podman_maps(  # noqa: C901 (mirrors containers/storage's branches, case for case)
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
