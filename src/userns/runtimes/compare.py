"""All the runtimes for one user from one pair of files, and where they differ."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..maps import IDMap
from ..subid import Accounts
from ._base import RuntimeMaps, SubidSource
from .docker import docker_remap
from .incus import incus_maps
from .podman import podman_maps
from .unshare import unshare_maps

__all__ = [
    "Comparison",
    "Difference",
    "compare_runtimes",
]


#: How each runtime lays a user's lines out, for explanations.
_POLICY = {
    "docker": "every line of the user, in FILE order",
    "podman": "every line of the user, sorted by host start",
    "podman-rootless": "the user's own ID at 0, then every line sorted by host start",
    "unshare --map-auto": "the FIRST matching line only",
    "unshare --map-auto --map-root-user": "the user's own ID at 0, then the FIRST matching "
                                          "line less one ID",
    "incus": "root's lines of at least 65536 IDs, each from container ID 0",
}
#: The runtimes :func:`compare_runtimes` knows, in the order it reports them.
_RUNTIMES = tuple(_POLICY)


@attrs.frozen
class Difference:
    """Two runtimes build different maps of one kind (``uid`` or ``gid``) for a user.

    ``reason`` is ``fails`` (one of them would not start), ``order`` (the same host
    IDs laid out in another order), ``ids`` (different host IDs); ``container`` is the
    first container ID they translate differently, ``hosts`` what each maps it to
    (``None``: unmapped).
    """

    first: str
    second: str
    kind: str
    reason: str
    message: str
    container: int | None = None
    hosts: tuple[int | None, int | None] = (None, None)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"runtimes": [self.first, self.second], "kind": self.kind,
                "reason": self.reason, "message": self.message, "container": self.container,
                "hosts": list(self.hosts)}


@attrs.frozen
class Comparison:
    """The maps several runtimes build for one user from one pair of files, and how they
    differ. ``results`` in a fixed order; ``differences`` for every pair that differs.
    """

    user: str
    results: tuple[RuntimeMaps, ...]
    differences: tuple[Difference, ...]

    @property
    def agree(self) -> bool:
        """True when every runtime builds the same maps (or fails alike)."""
        return not self.differences

    def result(self, runtime: str) -> RuntimeMaps:
        """The result of one runtime (``KeyError`` if it was not compared)."""
        for r in self.results:
            if r.runtime == runtime:
                return r
        raise KeyError(runtime)

    def summary(self) -> list[str]:
        """One line per difference (or one saying they agree), for a terminal."""
        if self.agree:
            names = ", ".join(r.runtime for r in self.results)
            return [f"{names} build the same maps for {self.user}"]
        return [d.message for d in self.differences]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"user": self.user, "agree": self.agree,
                "results": [r.to_dict() for r in self.results],
                "differences": [d.to_dict() for d in self.differences]}


def _first_difference(a: IDMap, b: IDMap) -> tuple[int, int | None, int | None] | None:
    """The first container ID ``a`` and ``b`` translate differently (checked at extent
    boundaries only: between two boundaries both maps are shifts)."""
    points = sorted({0, *(e.container for m in (a, b) for e in m),
                     *(e.container + e.size for m in (a, b) for e in m)})
    for c in points:
        if c > 4294967294:
            break
        ha, hb = a.to_host(c, None), b.to_host(c, None)
        if ha != hb:
            return c, ha, hb
    return None


def _describe(r: RuntimeMaps, kind: str) -> str:
    lines = r.uid_lines if kind == "uid" else r.gid_lines
    where = f" (sub{kind} lines {', '.join(map(str, lines))})" if lines else ""
    return f"{r.runtime} takes {_POLICY.get(r.runtime, 'its own ranges')}{where}"


def _compare_pair(user: str, a: RuntimeMaps, b: RuntimeMaps, kind: str) -> Difference | None:
    ma, mb = (a.uid, b.uid) if kind == "uid" else (a.gid, b.gid)
    head = f"{a.runtime} and {b.runtime} give {user} different {kind} maps"
    if a.error is not None or b.error is not None or ma is None or mb is None:
        if (a.error is None) == (b.error is None) and (ma is None) == (mb is None):
            if ma is None or mb is None or ma.equivalent(mb):
                return None
        else:
            failing = a if (a.error is not None or ma is None) else b
            why = failing.error.message if failing.error is not None else "no map at all"
            return Difference(a.runtime, b.runtime, kind, "fails",
                              f"{head}: {failing.runtime} builds none: {why}")
    assert ma is not None and mb is not None
    if ma.equivalent(mb):
        return None
    first = _first_difference(ma, mb)
    c, ha, hb = first if first is not None else (None, None, None)
    reason = "order" if ma.host_ids() == mb.host_ids() else "ids"
    why = f"{_describe(a, kind)}; {_describe(b, kind)}"
    if reason == "ids":
        only_a, only_b = ma.host_ids() - mb.host_ids(), mb.host_ids() - ma.host_ids()
        parts = []
        if only_a:
            parts.append(f"only {a.runtime} uses host {kind}s {only_a}")
        if only_b:
            parts.append(f"only {b.runtime} uses host {kind}s {only_b}")
        why += "; " + ", ".join(parts)
    else:
        why += "; the same host IDs, in another order"
    example = ""
    if c is not None:
        def show(h: int | None) -> str:
            return "unmapped" if h is None else f"host {h}"

        example = (f": container {kind} {c} is {show(ha)} under {a.runtime} and "
                   f"{show(hb)} under {b.runtime}")
    return Difference(a.runtime, b.runtime, kind, reason, f"{head}{example} ({why})", c,
                      (ha, hb))


def compare_runtimes(
    subuid: SubidSource,
    subgid: SubidSource,
    user: str,
    *,
    accounts: Accounts,
    runtimes: Sequence[str] | None = None,
) -> Comparison:
    """What each runtime would build for ``user`` from the same files, and how they differ.

    ``runtimes`` picks among ``docker`` (``--userns-remap=USER``), ``podman`` (root,
    ``--subuidname=USER``), ``podman-rootless`` (run by the user), ``unshare
    --map-auto`` and ``unshare --map-auto --map-root-user`` (run by the user), and
    ``incus`` (which always uses ROOT's ranges); the default is all but ``incus``, and
    ``incus`` too when ``user`` is ``root``.

    >>> acc = Accounts.from_pairs([("jonas", 1001)], [("jonas", 1001)])
    >>> text = "jonas:100000:1000\\njonas:1000:1\\n"
    >>> cmp = compare_runtimes(text, text, "jonas", accounts=acc, runtimes=["docker", "podman"])
    >>> [d.reason for d in cmp.differences], cmp.differences[0].container
    (['order', 'order'], 0)
    >>> print(cmp.summary()[0])  # doctest: +NORMALIZE_WHITESPACE
    docker and podman give jonas different uid maps: container uid 0 is host 100000 under
    docker and host 1000 under podman (docker takes every line of the user, in FILE order
    (subuid lines 1, 2); podman takes every line of the user, sorted by host start (subuid
    lines 2, 1); the same host IDs, in another order)
    """
    chosen = list(runtimes) if runtimes is not None else [
        r for r in _RUNTIMES if r != "incus" or user == "root"]
    unknown = [r for r in chosen if r not in _POLICY]
    if unknown:
        raise ValueError(f"unknown runtime {unknown[0]!r}: choose from {', '.join(_RUNTIMES)}")
    results: list[RuntimeMaps] = []
    for name in chosen:
        if name == "docker":
            r = docker_remap(subuid, subgid, user, accounts=accounts)
        elif name == "podman":
            r = podman_maps(subuid, subgid, user, accounts=accounts, rootless=False)
        elif name == "podman-rootless":
            r = podman_maps(subuid, subgid, user, accounts=accounts, rootless=True)
        elif name == "incus":
            r = incus_maps(subuid, subgid, accounts=accounts)
        else:
            r = unshare_maps(subuid, subgid, user, accounts=accounts,
                             map_root_user=name.endswith("--map-root-user"))
        results.append(attrs.evolve(r, runtime=name))
    diffs: list[Difference] = []
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            for kind in ("uid", "gid"):
                d = _compare_pair(user, a, b, kind)
                if d is not None:
                    diffs.append(d)
    return Comparison(user, tuple(results), tuple(diffs))
