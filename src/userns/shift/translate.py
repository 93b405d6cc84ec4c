"""What a shift does to one ID: the composed map and the policy for IDs it cannot map.

Pure: no I/O. A shift from ``source`` to ``target`` sends host ID ``h`` to
``target.to_host(source.to_container(h))``; with no ``source`` the tree holds container
IDs and ``h`` goes to ``target.to_host(h)``; with no ``target`` (an unshift) the result is
the container ID. :func:`compose` builds that one map; :class:`IDTranslator` applies it
with a policy.

>>> m = IDMap.single(0, 100000, 65536)
>>> t = IDTranslator(compose(m, None), "error")
>>> t(1000), t.unmapped
(101000, set())
>>> t(70000), t.unmapped
(70000, {70000})
>>> IDTranslator(compose(None, m), "overflow", overflow=65534)(5)
65534
"""

from __future__ import annotations

from typing import Literal, get_args

from ..maps import IDMap
from ..ranges import IDSet

__all__ = ["Policy", "IDTranslator", "compose", "check_policy"]

#: What to do with an ID the source or the target cannot map: ``error`` stops before
#: changing anything, ``skip`` leaves it as it is, ``overflow`` writes the overflow ID.
Policy = Literal["error", "skip", "overflow"]


def check_policy(policy: str) -> Policy:
    """Return ``policy`` if it is one of :data:`Policy`, else raise ``ValueError``.

    >>> check_policy("skip")
    'skip'
    """
    if policy not in get_args(Policy):
        raise ValueError(f"policy must be one of {', '.join(get_args(Policy))}: {policy!r}")
    return policy  # type: ignore[return-value]


def compose(target: IDMap | None, source: IDMap | None) -> IDMap:
    """The one map from the IDs on disk now to the IDs on disk after the shift.

    Its container side is every ID the shift can translate, its host side every ID a
    translated inode can end up with.

    >>> compose(IDMap.single(0, 200000, 10), IDMap.single(0, 100000, 10))
    IDMap([Extent(100000, 200000, 10)])
    >>> compose(None, IDMap.single(0, 100000, 10))       # unshift
    IDMap([Extent(100000, 0, 10)])
    """
    if source is None and target is None:
        raise ValueError("a shift needs a target map, a source map, or both")
    if source is None:
        assert target is not None
        return target
    if target is None:
        return source.inverse()
    return source.inverse().then(target)


class IDTranslator:
    """One side (uids or gids) of a shift: ``translator(h)`` is the new ID of ``h``.

    Results are cached per ID (a tree has few distinct owners). IDs the map cannot
    translate are collected in :attr:`unmapped` and become ``h`` itself (policies
    ``error`` and ``skip``) or ``overflow``. ``done`` is the set of IDs a resumed run
    treats as already translated (see :attr:`idempotent_set`).

    >>> t = IDTranslator(IDMap.single(0, 100000, 10), "skip", done=IDSet.of(100003))
    >>> t(100003), t(3)
    (100003, 100003)
    """

    __slots__ = ("cache", "done", "map", "overflow", "policy", "unmapped")

    def __init__(
        self,
        idmap: IDMap,
        policy: Policy,
        *,
        overflow: int = 65534,
        done: IDSet | None = None,
    ) -> None:
        self.map = idmap
        self.policy = check_policy(policy)
        self.overflow = overflow
        self.done = done
        self.cache: dict[int, int] = {}
        self.unmapped: set[int] = set()

    def __call__(self, h: int) -> int:
        new = self.cache.get(h)
        if new is None:
            new = self.cache[h] = self._compute(h)
        return new

    def _compute(self, h: int) -> int:
        if self.done is not None and h in self.done:
            return h
        new: int | None = self.map.to_host(h, None)
        if new is not None:
            return new
        self.unmapped.add(h)
        return self.overflow if self.policy == "overflow" else h

    def is_unmapped(self, h: int) -> bool:
        """True when ``h`` is (so far) one of the IDs this side could not translate."""
        return h in self.unmapped

    def idempotent_set(self) -> IDSet | None:
        """The IDs a resume may take as done without a journal record, or ``None``.

        When the IDs the shift translates and the IDs it produces are disjoint (and no
        overflow ID is written), an inode whose ID is already a result is done: this set.
        Otherwise a resume needs the journal for every inode.

        >>> IDTranslator(IDMap.single(0, 100000, 10), "error").idempotent_set()
        IDSet([IDRange(100000, 10)])
        >>> IDTranslator(IDMap.single(0, 5, 10), "error").idempotent_set() is None
        True
        """
        if self.policy == "overflow":
            return None
        dom, img = self.map.container_ids(), self.map.host_ids()
        if dom & img:
            return None
        return img

