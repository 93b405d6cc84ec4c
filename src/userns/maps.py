"""ID maps: extents translating container IDs to host IDs and back.

An :class:`Extent` says that container IDs ``[container, container + size)`` are host IDs
``[host, host + size)``. An :class:`IDMap` is a list of extents that overlap on neither
side, so it is a bijection between its container IDs and its host IDs. The map keeps the
order it was given in (the kernel and Docker keep it, and it shows in their output);
lookups go through sorted copies, by bisection.

>>> m = IDMap.single(0, 231072, 65536)          # /etc/subuid: dockremap:231072:65536
>>> m.to_host(0), m.to_host(33)
(231072, 231105)
>>> m.to_container(231105)
33
>>> m.container_view(0)                         # host root, seen from inside
65534
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, TypeVar, overload

import attrs

from .errors import InvalidIDError, InvalidMapError, InvalidRangeError, UnmappedIDError
from .ids import ID_MAX, OVERFLOW_ID, check_id
from .ranges import IDRange, IDSet, Span

__all__ = ["Extent", "IDMap", "IDMapPair"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()
_T = TypeVar("_T")


def _valid(value: object) -> bool:
    """True for an int that is an ID (``bool`` is not)."""
    return type(value) is int and 0 <= value <= ID_MAX


def _check_id_field(instance: object, attribute: Any, value: int) -> None:
    check_id(value, f"'{attribute.name}'")


def _check_extent_size(instance: Any, attribute: Any, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"'size' must be an int: {value!r}")
    if value < 1:
        raise InvalidRangeError(f"'size' must be >= 1: {value}", reason="empty-range")
    for side in ("container", "host"):
        start = getattr(instance, side)
        if start + value - 1 > ID_MAX:
            raise InvalidRangeError(
                f"{side} range {start}+{value} ends at {start + value - 1}, "
                f"past the largest ID {ID_MAX}",
                reason="range-past-max",
            )


@attrs.frozen(repr=False)
class Extent:
    """Container IDs ``[container, container + size)`` are host IDs ``[host, host + size)``.

    >>> e = Extent(0, 231072, 65536)
    >>> str(e), e.host_range
    ('0 231072 65536', IDRange(231072, 65536))
    """

    container: int = attrs.field(validator=_check_id_field)
    host: int = attrs.field(validator=_check_id_field)
    size: int = attrs.field(validator=_check_extent_size)

    @property
    def container_range(self) -> IDRange:
        """The container IDs this extent covers."""
        return IDRange(self.container, self.size)

    @property
    def host_range(self) -> IDRange:
        """The host IDs this extent covers."""
        return IDRange(self.host, self.size)

    def inverse(self) -> Extent:
        """The same extent seen from the other side (host and container swapped)."""
        return Extent(self.host, self.container, self.size)

    def __repr__(self) -> str:
        return f"Extent({self.container}, {self.host}, {self.size})"

    def __str__(self) -> str:
        return f"{self.container} {self.host} {self.size}"


def _start(e: Extent, side: str) -> int:
    return e.container if side == "container" else e.host


def overlapping_pair(
    extents: Sequence[Extent], side: str, order: Sequence[int] | None = None
) -> tuple[int, int] | None:
    """Positions ``(i, j)``, ``i < j``, of two extents that share IDs on ``side``, or ``None``.

    The overlap rule of a map, in one place (``IDMap`` and the ``uid_map`` validator use
    it): sorted by their start on that side, each extent ends before the next one starts;
    touching is fine. ``order`` is the positions already sorted that way, if known.

    >>> overlapping_pair([Extent(0, 100, 10), Extent(10, 105, 1)], "host")
    (0, 1)
    """
    if order is None:
        order = sorted(range(len(extents)), key=lambda i: _start(extents[i], side))
    for a, b in itertools.pairwise(order):
        if _start(extents[a], side) + extents[a].size > _start(extents[b], side):
            return (a, b) if a < b else (b, a)
    return None


def _sorted_checked(extents: Sequence[Extent], side: str) -> list[Extent]:
    """The extents sorted by ``side``; raise on the first overlap there."""
    order = sorted(range(len(extents)), key=lambda i: _start(extents[i], side))
    pair = overlapping_pair(extents, side, order)
    if pair is not None:
        first, second = extents[pair[0]], extents[pair[1]]
        lo = max(_start(first, side), _start(second, side))
        hi = min(_start(first, side) + first.size, _start(second, side) + second.size)
        raise InvalidMapError(
            f"extents '{first}' and '{second}' overlap on the {side} side: "
            f"{side} IDs {IDRange(lo, hi - lo)}",
            reason=f"overlap-{side}",
        )
    return [extents[i] for i in order]


class IDMap:
    """A validated list of :class:`Extent`: a bijection between container and host IDs.

    Construction checks that no two extents overlap on the container side or on the host
    side (touching is fine). ``len()`` is the number of extents, iteration yields them
    in the order given, and :attr:`size` is the number of IDs mapped.

    >>> m = IDMap([Extent(0, 200000, 20), Extent(20, 250000, 65516)])
    >>> m.to_host(19), m.to_host(20), m.to_container(250000)
    (200019, 250000, 20)
    >>> m.to_host(70000, default=None) is None
    True
    """

    __slots__ = (
        "_c_deltas",
        "_c_starts",
        "_c_stops",
        "_extents",
        "_h_deltas",
        "_h_starts",
        "_h_stops",
    )

    _extents: tuple[Extent, ...]
    _c_starts: tuple[int, ...]
    _c_stops: tuple[int, ...]
    _c_deltas: tuple[int, ...]
    _h_starts: tuple[int, ...]
    _h_stops: tuple[int, ...]
    _h_deltas: tuple[int, ...]

    def __init__(self, extents: Iterable[Extent] = ()) -> None:
        items = tuple(extents)
        for e in items:
            if not isinstance(e, Extent):
                raise TypeError(f"IDMap takes Extent values, not {type(e).__name__}: {e!r}")
        by_c = _sorted_checked(items, "container")
        by_h = _sorted_checked(items, "host")
        put = object.__setattr__
        put(self, "_extents", items)
        put(self, "_c_starts", tuple(e.container for e in by_c))
        put(self, "_c_stops", tuple(e.container + e.size for e in by_c))
        put(self, "_c_deltas", tuple(e.host - e.container for e in by_c))
        put(self, "_h_starts", tuple(e.host for e in by_h))
        put(self, "_h_stops", tuple(e.host + e.size for e in by_h))
        put(self, "_h_deltas", tuple(e.container - e.host for e in by_h))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"IDMap is immutable: cannot set {name!r}")

    # -- constructors -------------------------------------------------------------

    @classmethod
    def single(cls, container: int, host: int, size: int) -> IDMap:
        """A map of one extent: ``IDMap.single(0, 231072, 65536)``."""
        return cls([Extent(container, host, size)])

    @classmethod
    def from_triples(cls, triples: Iterable[tuple[int, int, int]]) -> IDMap:
        """A map from ``(container, host, size)`` tuples."""
        return cls(Extent(c, h, s) for c, h, s in triples)

    def to_triples(self) -> list[list[int]]:
        """The extents as ``[container, host, size]`` lists, in order: JSON-ready.

        >>> IDMap.single(0, 231072, 65536).to_triples()
        [[0, 231072, 65536]]
        >>> IDMap.from_triples(IDMap.single(5, 6, 7).to_triples()) == IDMap.single(5, 6, 7)
        True
        """
        return [[e.container, e.host, e.size] for e in self._extents]

    @classmethod
    def identity(cls, size: int = ID_MAX + 1, *, start: int = 0) -> IDMap:
        """IDs ``[start, start + size)`` mapped to themselves.

        The default is the initial namespace's map, ``0 0 4294967295``.
        """
        return cls([Extent(start, start, size)])

    # -- sequence protocol --------------------------------------------------------

    @property
    def extents(self) -> tuple[Extent, ...]:
        """The extents, in the order given."""
        return self._extents

    def __len__(self) -> int:
        return len(self._extents)

    def __iter__(self) -> Iterator[Extent]:
        return iter(self._extents)

    @overload
    def __getitem__(self, index: int) -> Extent: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Extent, ...]: ...
    def __getitem__(self, index: int | slice) -> Extent | tuple[Extent, ...]:
        return self._extents[index]

    def __bool__(self) -> bool:
        return bool(self._extents)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IDMap):
            return NotImplemented
        return self._extents == other._extents

    def __hash__(self) -> int:
        return hash(self._extents)

    def __repr__(self) -> str:
        return f"IDMap([{', '.join(repr(e) for e in self._extents)}])"

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self._extents)

    def __reduce__(self) -> tuple[Any, ...]:
        return (IDMap, (self._extents,))

    @property
    def size(self) -> int:
        """How many IDs the map covers."""
        return sum(e.size for e in self._extents)

    def equivalent(self, other: IDMap) -> bool:
        """True when both maps translate every ID the same way, whatever their order."""
        return self.normalized() == other.normalized()

    # -- translation --------------------------------------------------------------

    @overload
    def to_host(self, container_id: int) -> int: ...
    @overload
    def to_host(self, container_id: int, default: _T) -> int | _T: ...
    def to_host(self, container_id: int, default: Any = _MISSING) -> Any:
        """The host ID of ``container_id``.

        Raises :class:`UnmappedIDError` when the map does not cover it, unless ``default``
        is given, which is then returned; :class:`InvalidIDError` (or ``TypeError``) for
        what is not an ID at all (a float, a bool), ``default`` or not.
        """
        try:
            i = bisect_right(self._c_starts, container_id) - 1
            if i >= 0 and container_id < self._c_stops[i] and type(container_id) is int:
                return container_id + self._c_deltas[i]
        except TypeError:
            raise self._unmapped(container_id, "to_host") from None
        if default is _MISSING or not _valid(container_id):
            raise self._unmapped(container_id, "to_host")
        return default

    @overload
    def to_container(self, host_id: int) -> int: ...
    @overload
    def to_container(self, host_id: int, default: _T) -> int | _T: ...
    def to_container(self, host_id: int, default: Any = _MISSING) -> Any:
        """The container ID of ``host_id``.

        Raises :class:`UnmappedIDError` when the map does not cover it, unless ``default``
        is given, which is then returned; :class:`InvalidIDError` (or ``TypeError``) for
        what is not an ID at all, ``default`` or not.
        """
        try:
            i = bisect_right(self._h_starts, host_id) - 1
            if i >= 0 and host_id < self._h_stops[i] and type(host_id) is int:
                return host_id + self._h_deltas[i]
        except TypeError:
            raise self._unmapped(host_id, "to_container") from None
        if default is _MISSING or not _valid(host_id):
            raise self._unmapped(host_id, "to_container")
        return default

    def _unmapped(self, value: Any, direction: str) -> Exception:
        """The error for a lookup that missed: not an ID at all, or a valid ID unmapped."""
        try:
            check_id(value, "an ID")
        except (TypeError, InvalidIDError) as exc:
            return exc
        return UnmappedIDError(value, direction)

    def container_view(self, host_id: int, overflow: int = OVERFLOW_ID) -> int:
        """How an owner ``host_id`` appears from inside: its container ID, or ``overflow``.

        The kernel shows host IDs outside the map as the overflow ID
        (``/proc/sys/kernel/overflowuid``, 65534 "nobody" by default).
        """
        result: int = self.to_container(host_id, overflow)
        return result

    @overload
    def to_host_many(self, container_ids: Iterable[int]) -> list[int]: ...
    @overload
    def to_host_many(self, container_ids: Iterable[int], default: _T) -> list[int | _T]: ...
    def to_host_many(self, container_ids: Iterable[int], default: Any = _MISSING) -> list[Any]:
        """:meth:`to_host` over many IDs at once (faster than a loop of calls)."""
        return self._many(container_ids, self._c_starts, self._c_stops, self._c_deltas,
                          default, "to_host")

    @overload
    def to_container_many(self, host_ids: Iterable[int]) -> list[int]: ...
    @overload
    def to_container_many(self, host_ids: Iterable[int], default: _T) -> list[int | _T]: ...
    def to_container_many(self, host_ids: Iterable[int], default: Any = _MISSING) -> list[Any]:
        """:meth:`to_container` over many IDs at once (faster than a loop of calls)."""
        return self._many(host_ids, self._h_starts, self._h_stops, self._h_deltas,
                          default, "to_container")

    def _many(
        self,
        ids: Iterable[int],
        starts: tuple[int, ...],
        stops: tuple[int, ...],
        deltas: tuple[int, ...],
        default: Any,
        direction: str,
    ) -> list[Any]:
        if not isinstance(ids, (list, tuple)):
            ids = list(ids)
        if {*map(type, ids)} - {int}:
            # Something that is not an int (a float, a bool) would translate on a hit:
            # refuse the first one, as the single lookups do. One C-speed pass.
            x = next(x for x in ids if type(x) is not int)
            raise self._unmapped(x, direction)
        out: list[Any] = []
        append = out.append
        bisect = bisect_right
        try:
            if len(starts) == 1:
                # One extent (the common case): no bisection at all.
                lo, hi, d = starts[0], stops[0], deltas[0]
                for x in ids:
                    if lo <= x < hi:
                        append(x + d)
                    elif default is _MISSING or not _valid(x):
                        raise self._unmapped(x, direction)
                    else:
                        append(default)
                return out
            for x in ids:
                i = bisect(starts, x) - 1
                if i >= 0 and x < stops[i]:
                    append(x + deltas[i])
                elif default is _MISSING or not _valid(x):
                    raise self._unmapped(x, direction)
                else:
                    append(default)
        except TypeError:
            raise self._unmapped(x, direction) from None
        return out

    # -- sets ---------------------------------------------------------------------

    def container_ids(self) -> IDSet:
        """Every container ID the map covers."""
        return IDSet(e.container_range for e in self._extents)

    def host_ids(self) -> IDSet:
        """Every host ID the map covers."""
        return IDSet(e.host_range for e in self._extents)

    # -- derived maps -------------------------------------------------------------

    def inverse(self) -> IDMap:
        """The map seen from the other side: host IDs become container IDs."""
        return IDMap(e.inverse() for e in self._extents)

    def is_identity(self) -> bool:
        """True when every mapped ID maps to itself (an empty map is an identity)."""
        return all(e.container == e.host for e in self._extents)

    def normalized(self) -> IDMap:
        """The same mapping, sorted by container ID, with contiguous extents merged.

        Two maps that translate every ID alike have equal normalized forms.

        >>> IDMap([Extent(10, 110, 5), Extent(0, 100, 10)]).normalized()
        IDMap([Extent(0, 100, 15)])
        """
        merged: list[list[int]] = []
        for e in sorted(self._extents, key=lambda e: e.container):
            if merged:
                c, h, s = merged[-1]
                if c + s == e.container and h + s == e.host:
                    merged[-1][2] = s + e.size
                    continue
            merged.append([e.container, e.host, e.size])
        return IDMap(Extent(c, h, s) for c, h, s in merged)

    def restrict(self, ids: IDSet | IDRange, *, side: str = "container") -> IDMap:
        """Only the part of the map whose ``side`` (``container`` or ``host``) IDs are in ``ids``.

        Extents are cut where needed; their order is kept.

        >>> IDMap.single(0, 100000, 65536).restrict(IDSet.of(0, 1, 2, 1000))
        IDMap([Extent(0, 100000, 3), Extent(1000, 101000, 1)])
        """
        if side not in ("container", "host"):
            raise ValueError(f"side must be 'container' or 'host': {side!r}")
        keep = ids if isinstance(ids, IDSet) else ids.to_set()
        out: list[Extent] = []
        for e in self._extents:
            rng = e.container_range if side == "container" else e.host_range
            for r in (keep & rng).ranges:
                off = r.start - rng.start
                out.append(Extent(e.container + off, e.host + off, r.size))
        return IDMap(out)

    def then(self, parent: IDMap) -> IDMap:
        """The map of a namespace nested in another: this map's host side is ``parent``'s
        container side.

        ``child.then(parent).to_host(x) == parent.to_host(child.to_host(x))`` wherever both
        are defined; IDs the parent does not map are left out, and extents are split where
        the parent's extents are.

        >>> child = IDMap.single(0, 1000, 2000)
        >>> parent = IDMap([Extent(0, 100000, 1500), Extent(1500, 300000, 100000)])
        >>> child.then(parent)
        IDMap([Extent(0, 101000, 500), Extent(500, 300000, 1500)])
        """
        starts, stops, deltas = parent._c_starts, parent._c_stops, parent._c_deltas
        out: list[Extent] = []
        for e in self._extents:
            lo, hi = e.host, e.host + e.size
            i = max(bisect_right(starts, lo) - 1, 0)
            while i < len(starts) and starts[i] < hi:
                a = max(lo, starts[i])
                b = min(hi, stops[i])
                if a < b:
                    out.append(Extent(e.container + (a - lo), a + deltas[i], b - a))
                i += 1
        return IDMap(out)

    def override(self, *extents: Extent) -> IDMap:
        """This map with ``extents`` taking precedence over it.

        The container IDs and the host IDs of the new extents are cut out of the existing
        extents, then the new extents are added; the result is sorted by container ID.
        This is how Incus applies ``raw.idmap`` over a container's base map.

        >>> base = IDMap.single(0, 1000000, 65536)
        >>> base.override(Extent(1000, 1000, 1))
        IDMap([Extent(0, 1000000, 1000), Extent(1000, 1000, 1), Extent(1001, 1001001, 64535)])
        """
        extra = IDMap(extents)  # the overrides must themselves be a valid map
        cut_c = extra.container_ids()
        cut_h = extra.host_ids()
        out: list[Extent] = []
        for e in self._extents:
            delta = e.host - e.container
            # Host IDs taken by the overrides, expressed as this extent's container IDs.
            taken: list[Span] = [
                (a - delta, b - delta) for a, b in (cut_h & e.host_range)._spans
            ]
            keep = e.container_range.to_set() - cut_c - IDSet._from_spans(tuple(taken))
            out.extend(Extent(r.start, r.start + delta, r.size) for r in keep.ranges)
        out.extend(extra)
        return IDMap(sorted(out, key=lambda e: e.container))

    def passthrough(self, *ids: int | IDRange) -> IDMap:
        """This map with each of ``ids`` mapped to itself (host N is container N).

        Podman's ``keep-id``-style and Incus's ``raw.idmap "both 1000 1000"`` holes.

        >>> IDMap.single(0, 1000000, 65536).passthrough(1000).to_host(1000)
        1000
        """
        extents = [
            Extent(i, i, 1) if isinstance(i, int) else Extent(i.start, i.start, i.size)
            for i in ids
        ]
        return self.override(*extents)

    def _repr_html_(self) -> str:
        from .display import map_html

        return map_html(self)


@attrs.frozen
class IDMapPair:
    """The uid map and the gid map of one user namespace.

    >>> pair = IDMapPair.both(IDMap.single(0, 231072, 65536))
    >>> pair.root
    (231072, 231072)
    >>> pair.root_dir_name        # Docker's data root: /var/lib/docker/231072.231072
    '231072.231072'
    """

    uid: IDMap
    gid: IDMap

    @classmethod
    def both(cls, idmap: IDMap) -> IDMapPair:
        """The same map for users and groups."""
        return cls(idmap, idmap)

    @property
    def root(self) -> tuple[int, int]:
        """Host uid and gid of container root (``UnmappedIDError`` if 0 is not mapped)."""
        uid: int = self.uid.to_host(0)
        gid: int = self.gid.to_host(0)
        return uid, gid

    @property
    def root_dir_name(self) -> str:
        """``<uid>.<gid>`` of container root, the name Docker gives its remapped data root."""
        uid, gid = self.root
        return f"{uid}.{gid}"

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        """Host owner of a container owner ``(uid, gid)``."""
        return self.uid.to_host(uid), self.gid.to_host(gid)

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        """Container owner of a host owner ``(uid, gid)``."""
        return self.uid.to_container(uid), self.gid.to_container(gid)

    def container_view(
        self, uid: int, gid: int, overflow: tuple[int, int] = (OVERFLOW_ID, OVERFLOW_ID)
    ) -> tuple[int, int]:
        """How a host owner appears from inside, overflow IDs for unmapped ones."""
        return self.uid.container_view(uid, overflow[0]), self.gid.container_view(gid, overflow[1])

    def inverse(self) -> IDMapPair:
        """Both maps seen from the other side."""
        return IDMapPair(self.uid.inverse(), self.gid.inverse())

    def then(self, parent: IDMapPair) -> IDMapPair:
        """Both maps composed with a parent namespace's maps (see :meth:`IDMap.then`)."""
        return IDMapPair(self.uid.then(parent.uid), self.gid.then(parent.gid))

    def _repr_html_(self) -> str:
        from .display import pair_html

        return pair_html(self)
