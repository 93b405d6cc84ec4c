"""The typed results of a shift or an audit, and the errors a shift raises.

Values only: the CLI prints them and turns them into JSON with ``to_dict()``.

>>> r = ShiftReport(root="/srv/vol", entries=3, changed=2)
>>> r.to_dict()["changed"], r.complete
(2, True)
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ..errors import OutsideLinksError, ShiftError, UnmappedOwnersError, UsernsError  # noqa: F401 (re-exported)

__all__ = [
    "AuditReport",
    "AuditState",
    "OutsideLink",
    "OutsideLinksError",
    "OwnerChange",
    "PathError",
    "Progress",
    "ShiftError",
    "ShiftMark",
    "ShiftReport",
    "UnmappedID",
    "UnmappedOwnersError",
]

#: ``unshifted``: every owner is a container ID; ``shifted``: every owner is a host ID of
#: the map; ``mixed``: both; ``unknown``: no owner tells (all outside or on both sides).
AuditState = Literal["unshifted", "shifted", "mixed", "unknown"]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    return value


@attrs.frozen
class Progress:
    """Where a running shift is: ``phase`` (``scan`` or ``apply``), inodes done so far,
    and the total when known (the apply phase after a preflight).

    >>> Progress("apply", 10, 40).fraction
    0.25
    """

    phase: str
    done: int
    total: int | None = None

    @property
    def fraction(self) -> float | None:
        """``done / total``, or ``None`` while the total is unknown."""
        return None if not self.total else min(self.done / self.total, 1.0)


@attrs.frozen
class PathError:
    """An operation failed on one path: which, the ``errno`` and a short ``reason``.

    >>> PathError("a/b", "chown", 1, "EPERM", "Operation not permitted").reason
    'EPERM'
    """

    path: str
    operation: str
    errno: int
    reason: str
    message: str


@attrs.frozen
class UnmappedID:
    """An ID the shift could not translate: ``kind`` is ``uid``, ``gid``, ``acl-uid``,
    ``acl-gid`` or ``cap-rootid``; ``count`` inodes use it; a few example paths."""

    kind: str
    id: int
    count: int
    examples: tuple[str, ...]


@attrs.frozen
class OwnerChange:
    """``count`` inodes had ``kind`` (``uid``/``gid``) ``old`` and get (or got) ``new``."""

    kind: str
    old: int
    new: int
    count: int


@attrs.frozen
class OutsideLink:
    """A hard-linked inode with a name outside the tree: ``links`` is its link count,
    ``inside`` the names the walk found under the root, ``path`` the first of them.
    A shift leaves it alone (changing it would change the file outside) unless told
    to include outside links.

    >>> OutsideLink("/srv/vol/innocent", 2, 1).outside
    1
    """

    path: str
    links: int
    inside: int

    @property
    def outside(self) -> int:
        """How many of its names are outside the tree."""
        return self.links - self.inside


@attrs.frozen
class ShiftReport:
    """What a shift did (or, with ``dry_run``, would do).

    ``entries`` inodes were examined, ``changed`` of them modified (``unchanged`` already
    right); ``hardlinks`` counts extra names of inodes already handled;
    ``modes_restored``, ``capabilities`` and ``acls`` count setuid/setgid modes put
    back, capability values rewritten and ACL values shifted. ``complete`` is true when
    the whole tree is done and the journal removed. ``verified`` when the root's mark
    said this very shift had finished once and the run checked the tree (changing only
    what was wrong); ``already_complete`` when the caller chose to trust the mark: nothing
    was checked nor done. ``rolled_back`` when an interrupted shift was undone (see
    ``rollback_shift``) and its journal removed.
    ``outside_links`` lists hard-linked inodes with a name outside the tree, left alone
    (unless the shift was told to include them).
    """

    root: str
    dry_run: bool = False
    entries: int = 0
    changed: int = 0
    unchanged: int = 0
    hardlinks: int = 0
    modes_restored: int = 0
    capabilities: int = 0
    acls: int = 0
    owner_changes: tuple[OwnerChange, ...] = ()
    unmapped: tuple[UnmappedID, ...] = ()
    outside_links: tuple[OutsideLink, ...] = ()
    skipped_mounts: tuple[str, ...] = ()
    errors: tuple[PathError, ...] = ()
    resumed: bool = False
    journal: str | None = None
    workers: int = 1
    complete: bool = True
    already_complete: bool = False
    verified: bool = False
    rolled_back: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts, lists, ints, strings) for JSON."""
        result: dict[str, Any] = _plain(self)
        return result


@attrs.frozen
class ShiftMark:
    """The mark a finished shift leaves on the root of its tree: the maps it applied
    (``(from, to, size)`` triples: IDs on disk before, after), its policy and the root's
    owner after it. ``holds`` is true when the root still has that owner;
    ``matches`` when the maps are a shift of container IDs by the map audited;
    ``overflow`` the uid and gid it wrote for IDs it could not map under policy
    ``overflow``. Marks written before the maps were recorded have empty ``uid``/``gid``,
    before the overflow IDs were, ``overflow`` ``None``.

    >>> ShiftMark(((0, 1000, 10),), ((0, 1000, 10),), "error", (1000, 1000), True, True).holds
    True
    """

    uid: tuple[tuple[int, int, int], ...]
    gid: tuple[tuple[int, int, int], ...]
    policy: str | None
    owner: tuple[int, int]
    holds: bool
    matches: bool
    overflow: tuple[int, int] | None = None


@attrs.frozen
class AuditReport:
    """What a tree holds, compared with a map, without changing anything.

    ``uids``/``gids`` count inodes per owner; ``outside`` lists IDs that are neither a
    container ID nor a host ID of the map, with example paths; ``state`` says whether
    the tree looks unshifted, shifted or mixed. ``acl_uids``/``acl_gids`` count inodes
    per ID their POSIX ACLs name, ``cap_rootids`` regular files per root ID of their
    revision 3 capability; they count towards ``state`` and ``outside`` (kinds
    ``acl-uid``, ``acl-gid``, ``cap-rootid``) as owners do. ``xattrs`` says whether they
    were read: when false, those three are empty because nothing was looked at, and
    ``state`` speaks for the owners only. ``shifted_ids`` and ``unshifted_ids`` say
    which IDs make the state: per kind (``uid``, ``gid``, ``acl-uid``, ``acl-gid``,
    ``cap-rootid``), the host IDs (shifted) and the container IDs (unshifted) found,
    each with its count of inodes; an ID on both sides of an overlapping map is in
    neither. After a shift by this map with policy
    ``overflow`` (the root's ``mark`` says so and holds), the overflow IDs it wrote count
    as shifted, as its verifying re-run takes them. ``outside_links`` lists hard-linked
    inodes with a name outside the tree (a shift leaves them alone). ``mark`` is the
    root's mark of a finished shift, if any; ``journal`` the path of the journal of an
    interrupted shift, if one is pending.
    """

    root: str
    entries: int
    uids: dict[int, int]
    gids: dict[int, int]
    outside: tuple[UnmappedID, ...]
    state: AuditState
    outside_links: tuple[OutsideLink, ...] = ()
    skipped_mounts: tuple[str, ...] = ()
    errors: tuple[PathError, ...] = ()
    mark: ShiftMark | None = None
    journal: str | None = None
    acl_uids: dict[int, int] = attrs.field(factory=dict)
    acl_gids: dict[int, int] = attrs.field(factory=dict)
    cap_rootids: dict[int, int] = attrs.field(factory=dict)
    xattrs: bool = True
    shifted_ids: dict[str, dict[int, int]] = attrs.field(factory=dict)
    unshifted_ids: dict[str, dict[int, int]] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts, lists, ints, strings) for JSON."""
        result: dict[str, Any] = _plain(self)
        return result


