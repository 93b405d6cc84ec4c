"""Translation: ``IDMap.to_host`` / ``to_container`` against a linear scan and a bisect floor.

Baselines, both on the same extents as the :class:`~userns.maps.IDMap`:

* **scan** — a first-match linear scan over the extents in map order, the way Docker
  (``idtools.toHost``/``toContainer``), Podman (containers/storage) and Incus translate.
* **floor** — a bare closure doing ``bisect.bisect_right`` over a tuple of starts and two
  tuple indexes: the least work a Python O(log n) lookup can do.

Every variant is timed as the same loop, ``for x in ids: f(x)``, with ``f`` the bound
method, the scan function or the floor closure, so only the lookup differs. The bulk rows
time ``to_host_many`` over a million IDs against the per-call loop and against the floor
written inline in one loop.

>>> triples = make_triples(5, random.Random(1))
>>> len(triples), len({c for c, _, _ in triples})
(5, 5)
>>> scan = make_scan(triples)
>>> floor = make_floor(triples)
>>> all(scan(c + s - 1) == floor(c + s - 1) == h + s - 1 for c, h, s in triples)
True
"""

from __future__ import annotations

import itertools
import random
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence

from _harness import Row, Section, Timing, compare, fmt_count, fmt_seconds, ratio

from userns.maps import IDMap

__all__ = ["make_floor", "make_scan", "make_triples", "run"]

Triple = tuple[int, int, int]

#: Wall time one timed run of one variant aims at (the batch of IDs is sized to it).
RUN_SECONDS = 0.04
SCAN_TARGET = 15.0  # ≥ 15x the linear scan at 340 extents
FLOOR_TARGET = 1.5  # within 1.5x of the bisect floor


def make_triples(n: int, rng: random.Random) -> list[Triple]:
    """``n`` extents ``(container, host, size)`` in random order.

    Container ranges are contiguous from 0 (as Docker builds a map from several subuid
    lines); host ranges are the same sizes laid out in another random order, with gaps,
    from host ID 100000, so the two sides are sorted differently.
    """
    cap = max(1, min(65536, 3_000_000_000 // (2 * n)))
    sizes = [rng.randint(1, cap) for _ in range(n)]
    containers = [0] * n
    pos = 0
    for i, s in enumerate(sizes):
        containers[i] = pos
        pos += s
    hosts = [0] * n
    pos = 100_000
    for i in rng.sample(range(n), n):
        hosts[i] = pos
        pos += sizes[i] + rng.randint(0, cap)
    triples = list(zip(containers, hosts, sizes))
    rng.shuffle(triples)
    return triples


def make_scan(triples: Sequence[Triple]) -> Callable[[int], int]:
    """First-match linear scan in map order, as Docker's ``idtools`` does."""
    extents = tuple(triples)

    def scan(x: int) -> int:
        for c, h, s in extents:
            if c <= x < c + s:
                return h + (x - c)
        raise LookupError(x)

    return scan


def make_floor(triples: Sequence[Triple]) -> Callable[[int], int]:
    """``bisect_right`` over sorted starts, then a stop check and a delta: nothing else."""
    ordered = sorted(triples)
    starts = tuple(c for c, _, _ in ordered)
    stops = tuple(c + s for c, _, s in ordered)
    deltas = tuple(h - c for c, h, _ in ordered)

    def floor(x: int) -> int:
        i = bisect_right(starts, x) - 1
        if i >= 0 and x < stops[i]:
            return x + deltas[i]
        raise LookupError(x)

    return floor


def make_floor_bulk(triples: Sequence[Triple]) -> Callable[[Sequence[int]], list[int]]:
    """The floor written inline in one loop over many IDs (what a bulk API can reach)."""
    ordered = sorted(triples)
    starts = tuple(c for c, _, _ in ordered)
    stops = tuple(c + s for c, _, s in ordered)
    deltas = tuple(h - c for c, h, _ in ordered)

    def floor_many(ids: Sequence[int]) -> list[int]:
        out: list[int] = []
        append = out.append
        for x in ids:
            i = bisect_right(starts, x) - 1
            if i >= 0 and x < stops[i]:
                append(x + deltas[i])
            else:
                raise LookupError(x)
        return out

    return floor_many


def _loop(f: Callable[[int], int], ids: Sequence[int]) -> Callable[[], None]:
    def run() -> None:
        for x in ids:
            f(x)

    return run


def _batch(f: Callable[[int], int], pool: Sequence[int], cap: int) -> int:
    """How many IDs one run of ``f`` should translate to take about RUN_SECONDS."""
    n = min(200, len(pool))
    t0 = time.perf_counter()
    for x in pool[:n]:
        f(x)
    per = max((time.perf_counter() - t0) / n, 1e-9)
    return max(50, min(cap, int(RUN_SECONDS / per)))


def _random_ids(triples: Sequence[Triple], count: int, rng: random.Random) -> list[int]:
    """``count`` IDs drawn uniformly from the first side of the extents."""
    starts = [c for c, _, _ in triples]
    cumulative = list(itertools.accumulate(s for _, _, s in triples))
    out = []
    for _ in range(count):
        r = rng.randrange(cumulative[-1])
        i = bisect_right(cumulative, r)
        out.append(starts[i] + r - (cumulative[i - 1] if i else 0))
    return out


def _single(
    n: int, direction: str, triples: list[Triple], rounds: int, rng: random.Random,
    net: list[list[str]],
) -> list[Row]:
    m = IDMap.from_triples(triples)
    lib: Callable[[int], int] = m.to_host
    if direction == "to_container":
        triples = [(h, c, s) for c, h, s in triples]
        lib = m.to_container
    ids = _random_ids(triples, 20_000, rng)
    scan, floor = make_scan(triples), make_floor(triples)
    check = ids[:500]
    if not [lib(x) for x in check] == [scan(x) for x in check] == [floor(x) for x in check]:
        raise AssertionError(f"variants disagree at {n} extents ({direction})")

    def noop(x: int) -> int:
        return x

    fns = {"userns": lib, "scan": scan, "floor": floor, "noop": noop}
    counts = {name: _batch(f, ids, len(ids)) for name, f in fns.items()}
    t = compare(
        {name: _loop(f, ids[: counts[name]]) for name, f in fns.items()},
        rounds=rounds,
        units=counts,
    )
    case = f"{direction}, {n} extent{'s' if n != 1 else ''}"
    r_scan = ratio(t["userns"], t["scan"])
    r_floor = ratio(t["userns"], t["floor"])
    def per(name: str) -> str:
        return f"{fmt_seconds(t[name].per_unit)}/ID"

    overhead = t["noop"].per_unit
    net_lib, net_floor = t["userns"].per_unit - overhead, t["floor"].per_unit - overhead
    net.append([case, fmt_seconds(overhead), fmt_seconds(net_lib), fmt_seconds(net_floor),
                f"{net_lib / net_floor:.2f}" if net_floor > 0 else "—"])
    return [
        Row(case, f"m.{direction}", "linear scan", per("userns"), per("scan"), r_scan,
            target="≥ 15x faster" if n == 340 else "",
            met=(r_scan.median >= SCAN_TARGET) if n == 340 else None),
        Row(case, f"m.{direction}", "bisect floor", per("userns"), per("floor"), r_floor,
            target="within 1.5x", met=r_floor.median >= 1 / FLOOR_TARGET),
    ]


def _bulk(n: int, count: int, triples: list[Triple], rounds: int,
          rng: random.Random) -> list[Row]:
    m = IDMap.from_triples(triples)
    ids = _random_ids(triples, count, rng)
    floor_many = make_floor_bulk(triples)
    to_host = m.to_host
    if m.to_host_many(ids[:1000]) != floor_many(ids[:1000]):
        raise AssertionError(f"to_host_many disagrees with the floor at {n} extents")
    t: dict[str, Timing] = compare(
        {
            "userns": lambda: m.to_host_many(ids),
            "per-call": lambda: [to_host(x) for x in ids],
            "floor": lambda: floor_many(ids),
        },
        rounds=rounds,
        units=dict.fromkeys(("userns", "per-call", "floor"), count),
    )
    case = f"to_host_many, {fmt_count(count)} IDs, {n} extent{'s' if n != 1 else ''}"
    def tot(name: str) -> str:
        return fmt_seconds(t[name].median)

    r_floor = ratio(t["userns"], t["floor"])
    return [
        Row(case, "m.to_host_many", "[m.to_host(x) for x]", tot("userns"), tot("per-call"),
            ratio(t["userns"], t["per-call"])),
        Row(case, "m.to_host_many", "inline bisect loop", tot("userns"), tot("floor"), r_floor,
            target="within 1.5x", met=r_floor.median >= 1 / FLOOR_TARGET),
    ]


def run(
    *, extents: Sequence[int], bulk_ids: int, bulk_extents: Sequence[int], rounds: int,
    seed: int = 6,
) -> Section:
    """Every translation row, as one table section."""
    rng = random.Random(seed)
    sec = Section("Translation")
    net: list[list[str]] = []
    for n in extents:
        triples = make_triples(n, rng)
        for direction in ("to_host", "to_container"):
            sec.rows += _single(n, direction, triples, rounds, rng, net)
    if net:
        sec.extra_tables.append(
            (["case", "loop + call of a no-op", "userns net", "floor net",
              "net userns ÷ floor"], net)
        )
    if bulk_ids > 0:
        for n in bulk_extents:
            sec.rows += _bulk(n, bulk_ids, make_triples(n, rng), max(3, rounds // 2), rng)
    sec.notes += [
        "Every single-ID variant is timed as the same loop `for x in ids: f(x)`; `f` is the "
        "bound method, the scan or the floor closure. Times include that loop; the second "
        "table subtracts it (measured with `f` a no-op closure, in the same rounds).",
        "linear scan: first match over the extents in map order (Docker `idtools`, "
        "containers/storage, Incus); floor: `bisect_right` + tuple indexes in a closure.",
        "Maps: container side contiguous from 0, host side in another random order with gaps, "
        "extents given in random order; IDs uniform over the mapped IDs "
        f"(seed {seed}).",
    ]
    return sec
