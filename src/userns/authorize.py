"""Would ``newuidmap`` / ``newgidmap`` let a user install a map? And what would they say?

This is shadow 4.13's decision (``src/newuidmap.c``, ``src/newgidmap.c``,
``lib/subordinateio.c: have_range``), rebuilt over the text of ``/etc/subuid`` or
``/etc/subgid`` as shadow reads it (``lib/commonio.c`` and ``subordinate_parse``):

- Every extent ``container host count`` is checked on its own, in argument order; the first
  one refused ends the run with ``newuidmap: uid range [C-C+N) -> [H-H+N) not allowed``.
- An extent is allowed when its host range lies within the caller's subordinate ranges.
  ``have_range`` walks from the first host ID: the FIRST line (file order) of the owner
  that contains it, then from the end of that line on, so adjacent or overlapping lines of
  the same owner may be spanned, but a gap may not.
- Lines are matched first by the exact owner name, then (only when no line by name
  contains the ID) by the caller's decimal uid or by ANY other name whose passwd entry has
  the same uid. ``newgidmap`` matches /etc/subgid lines against the caller's USER name and
  uid too, never a group.
- Otherwise an extent of count 1 whose host ID is the caller's own uid (``newuidmap``) or
  the caller's real gid (``newgidmap``) is allowed.
- Numbers are read by ``strtoul(..., 0)``: ``0x186a0`` and ``0303240`` are 100000, and
  ``-1`` is 2**64-1. Lines that start with ``+`` or ``-`` (NIS), have fewer than three
  fields, an empty field, a bad number, or are 1024 bytes or longer are skipped; fields
  after the third are ignored. A count of 0 makes ``start + count - 1`` wrap to
  2**64-1 in shadow's unsigned long arithmetic, so ``user:0:0`` covers EVERY ID.
- ``newgidmap`` writes ``deny`` to ``/proc/PID/setgroups`` unless at least one extent
  was allowed through /etc/subgid.

>>> r = newuidmap_decision("alice:100000:65536\\n", [(0, 100000, 65537)], user="alice", uid=1000)
>>> r.allowed, r.message
(False, 'newuidmap: uid range [0-65537) -> [100000-165537) not allowed')
>>> newuidmap_decision("alice:100000:65536\\n", [(0, 1000, 1), (1, 100000, 65536)],
...                    user="alice", uid=1000).allowed
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

import attrs

from ._foreign import ULONG_MAX
from .errors import (
    NotAllowedError,
    UsernsError,
)
from .formats.proc import validate_map_write
from .ids import INVALID_ID
from .maps import Extent, IDMap
from .subid import Accounts, RawRange, SubidFile

__all__ = [
    "Decision",
    "ExtentVerdict",
    "NotAllowedError",
    "newgidmap_decision",
    "newuidmap_decision",
    "shadow_records",
]

_UINT_MAX = INVALID_ID  # 4294967295

SubidSource: TypeAlias = "SubidFile | str | bytes"


def _shadow_last(r: RawRange) -> int:
    # find_range computes start + count - 1 in unsigned long: a count of 0 wraps.
    return (r.start + r.count - 1) & ULONG_MAX


def _covers(r: RawRange, value: int) -> bool:
    return r.start <= value <= _shadow_last(r)


def shadow_records(subid: SubidSource) -> tuple[RawRange, ...]:
    """The lines of a subid file that shadow reads as entries, as it reads them, in order.

    >>> [(r.lineno, r.owner, r.start) for r in shadow_records(
    ...     "# comment\\nbob:0x186a0:65536\\n+nis:1:1\\nbob:1:2:extra\\nbad:1\\n")]
    [(2, 'bob', 100000), (4, 'bob', 1)]
    """
    f = subid if isinstance(subid, SubidFile) else SubidFile.parse(subid)
    return f.shadow_records


@attrs.frozen
class ExtentVerdict:
    """Whether one extent would pass, and why.

    ``how`` is ``subordinate`` (covered by the lines in ``lines``, in the order shadow
    used them), ``own-id`` (count 1 and the caller's own uid or gid), or ``denied``.
    """

    container: int
    host: int
    count: int
    how: str
    lines: tuple[int, ...] = ()

    @property
    def allowed(self) -> bool:
        """True unless ``how`` is ``denied``."""
        return self.how != "denied"


@attrs.frozen
class Decision:
    """What ``newuidmap``/``newgidmap`` would do with a map for a user.

    ``message`` is the exact line the tool prints on stderr (``None`` when it succeeds),
    ``exit_status`` its exit status; ``verdicts`` judge every extent (the tool itself
    stops at the first refused one, which ``message`` names). ``setgroups`` is what
    ``newgidmap`` leaves in ``/proc/PID/setgroups`` (``"deny"`` when no extent came from
    /etc/subgid; ``None`` for ``newuidmap`` or when it is left alone).
    """

    tool: str
    allowed: bool
    message: str | None
    exit_status: int
    reason: str
    verdicts: tuple[ExtentVerdict, ...]
    setgroups: str | None = None

    def check(self) -> None:
        """Raise :class:`NotAllowedError` with the tool's message if the map is refused."""
        if not self.allowed:
            raise NotAllowedError(self.message or self.reason, reason=self.reason)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "tool": self.tool,
            "allowed": self.allowed,
            "message": self.message,
            "exit_status": self.exit_status,
            "reason": self.reason,
            "setgroups": self.setgroups,
            "extents": [
                {"container": v.container, "host": v.host, "count": v.count,
                 "how": v.how, "lines": list(v.lines)}
                for v in self.verdicts
            ],
        }


def _find_line(
    lines: Sequence[RawRange],
    user: str,
    uid: int | None,
    accounts: Accounts,
    value: int,
) -> RawRange | None:
    """shadow's ``find_range``: by exact name first, then by uid (numeric or alias)."""
    for line in lines:
        if line.owner == user and _covers(line, value):
            return line
    if uid is None:
        return None  # getpwnam(user) failed: shadow gives up
    uid_text = str(uid)
    for line in lines:
        if not _covers(line, value):
            continue
        if line.owner == uid_text or accounts.uid_of(line.owner) == uid:
            return line
    return None


def _have_range(
    lines: Sequence[RawRange],
    user: str,
    uid: int | None,
    accounts: Accounts,
    start: int,
    count: int,
) -> tuple[int, ...] | None:
    """shadow's ``have_range``: the line numbers used, or None when not covered."""
    if count == 0:
        return None
    end = start + count - 1
    used: list[int] = []
    line = _find_line(lines, user, uid, accounts, start)
    while line is not None:
        used.append(line.lineno)
        last = _shadow_last(line)
        if last >= end:
            return tuple(used)
        start = last + 1
        line = _find_line(lines, user, uid, accounts, start)
    return None


def _as_triples(extents: IDMap | Iterable[Extent | tuple[int, int, int]]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for e in extents:
        t = (e.container, e.host, e.size) if isinstance(e, Extent) else tuple(e)
        if len(t) != 3 or any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in t):
            raise ValueError(f"an extent is (container, host, count), non-negative ints: {e!r}")
        out.append(t)
    return out


def _decide(
    kind: str,
    subid: SubidSource,
    extents: IDMap | Iterable[Extent | tuple[int, int, int]],
    *,
    user: str,
    uid: int,
    own_id: int,
    accounts: Accounts | None,
) -> Decision:
    tool = f"new{kind}map"
    triples = _as_triples(extents)
    # get_my_pwent: the caller's passwd entry, found by uid, comes first.
    if accounts is not None and accounts.user_by_uid(uid) is None:
        return Decision(tool, False, f"{tool}: Cannot determine your user name.", 1,
                        "unknown-user", ())
    # get_map_ranges: every argument and every end must fit in 32 bits.
    for upper, lower, count in triples:
        if max(upper, lower, count) > _UINT_MAX or max(upper, lower) + count > _UINT_MAX:
            return Decision(tool, False, f"{tool}: subuid overflow detected.", 1, "overflow", ())
    lines = shadow_records(subid)
    # find_range's second pass looks the user up in passwd; without data, trust ``uid``.
    acc = accounts if accounts is not None else Accounts.from_pairs([(user, uid)])
    user_uid = acc.uid_of(user)
    verdicts: list[ExtentVerdict] = []
    from_subid = False
    for upper, lower, count in triples:
        used = _have_range(lines, user, user_uid, acc, lower, count)
        if used is not None:
            from_subid = True
            verdicts.append(ExtentVerdict(upper, lower, count, "subordinate", used))
        elif count == 1 and lower == own_id:
            verdicts.append(ExtentVerdict(upper, lower, count, "own-id"))
        else:
            verdicts.append(ExtentVerdict(upper, lower, count, "denied"))
    setgroups = "deny" if kind == "gid" and not from_subid else None
    for v in verdicts:
        if not v.allowed:
            msg = (f"{tool}: {kind} range [{v.container}-{v.container + v.count}) -> "
                   f"[{v.host}-{v.host + v.count}) not allowed")
            return Decision(tool, False, msg, 1, "not-allowed", tuple(verdicts))
    # Authorized: the kernel now gets one write of the whole map.
    text = "".join(f"{u} {lo} {c}\n" for u, lo, c in triples)
    try:
        validate_map_write(text)
    except UsernsError:
        msg = f"{tool}: write to {kind}_map failed: Invalid argument"
        return Decision(tool, False, msg, 1, "kernel-refused", tuple(verdicts), setgroups)
    return Decision(tool, True, None, 0, "ok", tuple(verdicts), setgroups)


def newuidmap_decision(
    subuid: SubidSource,
    extents: IDMap | Iterable[Extent | tuple[int, int, int]],
    *,
    user: str,
    uid: int,
    accounts: Accounts | None = None,
) -> Decision:
    """What ``newuidmap PID C H N ...`` run by ``user`` (uid ``uid``) would do.

    ``subuid`` is /etc/subuid (a :class:`~userns.subid.SubidFile` or its text);
    ``extents`` the argument triples (an :class:`IDMap`, :class:`Extent` values or
    ``(container, host, count)`` tuples, kept in order); ``accounts`` is the passwd data
    for shadow's second lookup pass (by default only ``user`` is known). The caller is
    assumed to own the target process.

    >>> d = newuidmap_decision("1000:100000:10\\n1000:100010:10\\n", [(0, 100000, 20)],
    ...                        user="alice", uid=1000)
    >>> d.allowed, d.verdicts[0].lines
    (True, (1, 2))
    """
    return _decide("uid", subuid, extents, user=user, uid=uid, own_id=uid, accounts=accounts)


def newgidmap_decision(
    subgid: SubidSource,
    extents: IDMap | Iterable[Extent | tuple[int, int, int]],
    *,
    user: str,
    uid: int,
    gid: int,
    accounts: Accounts | None = None,
) -> Decision:
    """What ``newgidmap PID C H N ...`` run by ``user`` (uid ``uid``, real gid ``gid``)
    would do. /etc/subgid is searched by the USER name and uid, as shadow does.

    >>> d = newgidmap_decision("", [(0, 1000, 1)], user="alice", uid=1000, gid=1000)
    >>> d.allowed, d.setgroups
    (True, 'deny')
    """
    return _decide("gid", subgid, extents, user=user, uid=uid, own_id=gid, accounts=accounts)
