"""util-linux ``unshare`` (2.38): ``--map-auto`` and its ``--map-*`` variants."""

from __future__ import annotations

from .._foreign import c_strtoul, util_linux_strtoul
from ..authorize import newgidmap_decision, newuidmap_decision
from ..maps import IDMap
from ..subid import Accounts, SubidFile
from ._base import _UINT32, Note, RuntimeMaps, SubidSource, _file, _kernel_map

__all__ = [
    "unshare_maps",
]


def _unshare_read_subid(
    f: SubidFile, file: str, name: str, uid: int
) -> tuple[tuple[int, int, int] | None, int | None, str | None]:
    """``read_subid_range``: (outer, inner, count) of the FIRST matching line, or the error."""
    for line in f.lines:
        text = line.text.split("\0", 1)[0]
        if ":" not in text:
            continue
        owner, rest = text.split(":", 1)
        if owner != name and c_strtoul(owner, 10).value != uid:
            continue
        if ":" not in rest:
            continue
        first, second = rest.split(":", 1)
        outer, count = util_linux_strtoul(first), util_linux_strtoul(second)
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
