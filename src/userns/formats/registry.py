"""Every format by name, behind one signature, so a caller can convert between any two.

Each :class:`Format` reads a text into an :class:`~userns.maps.IDMapPair` and writes one
back, whatever the text holds:

- a **one-map** format (``proc``, ``oci``, ``unshare``, ``newuidmap``, ``kernel``) holds a
  single map and does not say whether it is for users or groups. ``parse(…, side=…)``
  puts it in ``uid``, ``gid``, or (``"both"``, the default) in both, as Podman and
  unshare do when only the user map is given; ``format(pair, side=…)`` writes
  ``pair.uid``, ``pair.gid``, or for ``"both"`` the map both hold (and raises
  :class:`FormatSideError` when they differ: say which one you want);
- a **pair** format (``oci-config``, ``podman``, ``lxc``, ``usernsexec``, ``incus``,
  ``xmount``, ``kubelet``, ``incus-idmap``, ``idmap-option``, ``crio``, ``nspawn``) holds
  both. ``side="uid"`` or ``"gid"`` keeps only that map (the other is empty) when reading
  and writes only that one when writing.

Most formats write every valid pair (``Format.writes_any``). Two express only some:
``nspawn`` (one range from container ID 0, the same for users and groups) and ``crio``
(a uid map and a gid map, neither empty); their ``format`` raises
:class:`~userns.errors.NotExpressibleError` (reason ``not-expressible``) for any other
pair rather than write a text the tool would read as another map.

A kind of map a text does not mention is an empty :class:`~userns.maps.IDMap`: to the
kernel, a namespace whose ``gid_map`` was never written maps no group at all.

>>> convert("0:100000:65536", "podman", "lxc")
'lxc.idmap = u 0 100000 65536\\nlxc.idmap = g 0 100000 65536\\n'
>>> get_format("raw.idmap").name
'incus'
>>> sorted(FORMATS)[:4]
['crio', 'idmap-option', 'incus', 'incus-idmap']
>>> [name for name, f in sorted(FORMATS.items()) if not f.writes_any]
['crio', 'nspawn']
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .._lazy import lazy_names
from ..errors import (
    FormatSideError,
    NotExpressibleError,
    UnknownFormatError,
)
from ..maps import IDMap, IDMapPair

if TYPE_CHECKING:
    from ._text import Side

__all__ = [
    "FORMATS",
    "Format",
    "FormatSideError",
    "NotExpressibleError",
    "Side",
    "UnknownFormatError",
    "convert",
    "detect_format",
    "get_format",
]

# ``Side`` lives with the text helpers (:mod:`._text`), which reading a map in most formats
# does not need (``proc``, what ``userns shift --map`` is usually given, does not): it is
# imported from there the first time it is asked for, the same object.
__getattr__, __dir__ = lazy_names(__name__, {"Side": f"{__name__.rpartition('.')[0]}._text"},
                                  __all__, globals())

_EMPTY = IDMap()


def _load(module: str, name: str) -> Callable[..., Any]:
    """The function ``name`` of the format module ``module``, imported on its first call.

    So a command that reads or writes one format loads that format's module and no other.
    """
    loaded: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not loaded:
            loaded.append(getattr(importlib.import_module(f"{__package__}.{module}"), name))
        return loaded[0](*args, **kwargs)

    return call


@attrs.frozen
class Format:
    """One format: its name, what it is, whether it holds one map or a uid+gid pair.

    ``accepts_empty`` says whether a text with no mapping at all is valid in it (an
    empty ``raw.idmap`` is; an empty ``uid_map`` write is not). ``writes_any`` says
    whether :meth:`format` writes every valid pair (up to ``accepts_empty``); a format
    without it raises :class:`~userns.errors.NotExpressibleError` for a pair it cannot
    express, its message saying what it can.

    >>> f = get_format("kernel")
    >>> f.parse("u0:k1000:r1").uid.to_host(0), f.carries
    (1000, 'one')
    """

    name: str
    description: str
    carries: Literal["one", "pair"]
    aliases: tuple[str, ...]
    accepts_empty: bool
    _read: Callable[[str, str | None], IDMapPair] = attrs.field(repr=False)
    _write: Callable[[IDMapPair], str] = attrs.field(repr=False)
    writes_any: bool = attrs.field(default=True, kw_only=True)

    def parse(self, text: str, *, path: str | None = None, side: Side = "both") -> IDMapPair:
        """Read ``text``; ``side`` says where a one-map text goes, or which map of a pair
        to keep (see the module docs)."""
        _check_side(side)
        pair = self._read(text, path)
        if side == "uid":
            return IDMapPair(pair.uid, _EMPTY)
        if side == "gid":
            return IDMapPair(_EMPTY, pair.gid)
        return pair

    def format(self, pair: IDMapPair, *, side: Side = "both") -> str:
        """Write ``pair`` (or its ``side`` map) in this format.

        Raises :class:`FormatSideError` when a one-map format is given two different maps
        and ``side="both"``, and :class:`~userns.errors.NotExpressibleError` when a format
        that does not write any map (``writes_any`` false) cannot express this one.
        """
        _check_side(side)
        if self.carries == "one":
            from ._text import pick_side

            return self._write(IDMapPair.both(pick_side(pair, side, self.name)))
        if side == "uid":
            pair = IDMapPair(pair.uid, _EMPTY)
        elif side == "gid":
            pair = IDMapPair(_EMPTY, pair.gid)
        return self._write(pair)


def _check_side(side: str) -> None:
    if side not in ("uid", "gid", "both"):
        raise ValueError(f"side must be 'uid', 'gid' or 'both': {side!r}")


def _lazy(name: str, description: str, carries: Literal["one", "pair"],
          aliases: tuple[str, ...], accepts_empty: bool, module: str, suffix: str, *,
          writes_any: bool = True) -> Format:
    """A format whose functions are ``parse_SUFFIX`` and ``format_SUFFIX`` of ``module``.

    They are named rather than imported: listing the formats or looking one up loads no
    format module (every command's start-up does both).
    """
    parse, write = _load(module, f"parse_{suffix}"), _load(module, f"format_{suffix}")
    if carries == "one":
        def read(text: str, path: str | None) -> IDMapPair:
            return IDMapPair.both(parse(text, path=path))

        def out(pair: IDMapPair) -> str:
            text: str = write(pair.uid)
            return text
    else:
        def read(text: str, path: str | None) -> IDMapPair:
            pair: IDMapPair = parse(text, path=path)
            return pair

        def out(pair: IDMapPair) -> str:
            text: str = write(pair)
            return text
    return Format(name, description, carries, aliases, accepts_empty, read, out,
                  writes_any=writes_any)


_ALL = (
    _lazy("proc", "/proc/PID/uid_map text: 'container host count' lines", "one",
          ("uid_map", "gid_map"), False, "proc", "proc"),
    _lazy("oci", "OCI runtime-spec linux.uidMappings/gidMappings JSON array", "one",
          ("oci-mappings", "uidmappings", "gidmappings"), True, "oci", "oci_mappings"),
    _lazy("oci-config", "OCI runtime-spec config.json (linux.uidMappings and gidMappings)",
          "pair", ("config.json",), True, "oci", "oci_config"),
    _lazy("podman", "Podman --uidmap values 'container:host:size' (u/g flags for one kind)",
          "pair", ("uidmap", "gidmap"), True, "podman", "podman_pair"),
    _lazy("lxc", "LXC config 'lxc.idmap = u|g container host count' lines", "pair",
          ("lxc.idmap",), True, "lxc", "lxc"),
    _lazy("usernsexec", "lxc-usernsexec -m values 'u|g|b:container:host:count'", "pair",
          ("lxc-usernsexec", "mount-idmapped"), True, "lxc", "usernsexec"),
    _lazy("incus", "Incus raw.idmap overrides 'both|uid|gid host-range container-range'",
          "pair", ("raw.idmap", "lxd"), True, "lxc", "raw_idmap"),
    _lazy("unshare", "util-linux unshare --map-users values 'inner:outer:count'", "one",
          ("map-users", "map-groups"), True, "unshare", "unshare"),
    _lazy("newuidmap", "newuidmap/newgidmap arguments 'container host count ...'", "one",
          ("newgidmap",), True, "newuidmap", "newuidmap"),
    _lazy("kernel", "kernel documentation notation 'u0:k231072:r65536'", "one",
          ("notation", "idmappings"), True, "notation", "notation"),
    _lazy("xmount", "mount(8) X-mount.idmap value '[u|g|b:]mount:host:range ...'", "pair",
          ("x-mount.idmap", "mount"), False, "xmount", "xmount"),
    _lazy("kubelet", "kubelet's per-pod userns file {\"uidMappings\": [{\"hostId\", "
          "\"containerId\", \"length\"}], \"gidMappings\": [...]}", "pair",
          ("kubelet-userns", "userns-file"), True, "kubelet", "kubelet_userns"),
    _lazy("incus-idmap", "Incus volatile.idmap.next / volatile.last_state.idmap JSON "
          "[{\"Isuid\", \"Isgid\", \"Hostid\", \"Nsid\", \"Maprange\"}]", "pair",
          ("volatile.idmap.next", "volatile.idmap.current", "volatile.last_state.idmap"),
          True, "incus_idmap", "incus_idmap"),
    _lazy("idmap-option", "crun/Podman mount option 'idmap=uids=0-1-10#10-11-10;gids=...'",
          "pair", ("crun-idmap", "podman-idmap"), False, "idmap_option", "idmap_option"),
    _lazy("crio", "CRI-O pod annotation io.kubernetes.cri-o.userns-mode "
          "'private:uidmapping=0:100000:65536;gidmapping=...' (a uid map and a gid map, "
          "neither empty)", "pair", ("cri-o", "userns-mode", "io.kubernetes.cri-o.userns-mode"),
          False, "crio", "crio", writes_any=False),
    _lazy("nspawn", "systemd-nspawn --private-users=BASE[:RANGE] / PrivateUsers= (one range "
          "from container ID 0, the same for users and groups)", "pair",
          ("systemd-nspawn", "private-users", "privateusers"), False, "nspawn", "nspawn",
          writes_any=False),
)

#: Every format by its name.
FORMATS: Mapping[str, Format] = MappingProxyType({f.name: f for f in _ALL})

_BY_NAME: dict[str, Format] = {
    alias: f for f in _ALL for alias in (f.name, *f.aliases)
}


def get_format(name: str) -> Format:
    """The format called ``name`` or one of its aliases (case does not matter).

    >>> get_format("X-mount.idmap").name
    'xmount'
    """
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise UnknownFormatError(f"unknown format {name!r}; known: {known}") from None


def convert(text: str, source: str, target: str, *, side: Side = "both",
            path: str | None = None) -> str:
    """``text`` read as format ``source`` and written as format ``target``.

    >>> convert("u0:k231072:r65536", "kernel", "oci")
    '[{"containerID": 0, "hostID": 231072, "size": 65536}]'
    """
    src, dst = get_format(source), get_format(target)
    return dst.format(src.parse(text, path=path, side=side), side=side)


# -- guessing a text's format -------------------------------------------------------

_PROC_LINE = re.compile(r"^\s*\d+\s+\d+\s+\d+\s*$")
_NOTATION = re.compile(r"^[ugb]\d+:k\d+:r\d+")
_XMOUNT = re.compile(r"^(X-mount\.idmap=)?[ugb]:\d+:\d+:\d+")
_COLON_TRIPLE = re.compile(r"^[@+ug]*\d+:[@+]?\d+:\d+")
_NEWUIDMAP = re.compile(r"^(new[ug]idmap\s+)?\d+(\s+\d+\s+\d+\s+\d+)+\s*$")
_NSPAWN_PREFIXES = ("--private-users=", "PrivateUsers=")
_CRIO_KEYS = ("io.kubernetes.cri-o.userns-mode", "userns-mode.crio.io")
_CRIO_MODE = re.compile(r"^(private|auto)(:|$)")


def detect_format(text: str, option: str = "--format") -> str:  # noqa: C901 (an ordered list of guesses, read top to bottom)
    """Guess the format of a map text; raise :class:`UnknownFormatError` when unsure.

    ``option`` names the command-line option that would say it, for the message.

    >>> detect_format("0 231072 65536"), detect_format("0:231072:65536")
    ('proc', 'podman')
    >>> detect_format('[{"containerID": 0, "hostID": 1, "size": 1}]')
    'oci'
    >>> detect_format("--private-users=524288:65536"), detect_format("private:uidmapping=0:1:2")
    ('nspawn', 'crio')
    """
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise UnknownFormatError("the map is empty", reason="empty")
    s = "\n".join(lines)
    first = lines[0]
    if s.startswith("[") and '"isuid"' in s[:200].lower():
        return "incus-idmap"
    if s.startswith("{") and '"hostid"' in s.lower() and '"length"' in s.lower():
        return "kubelet"
    if first.startswith(("idmap=", "uids=", "gids=")) or first == "idmap":
        return "idmap-option"
    if first.startswith(_NSPAWN_PREFIXES):
        return "nspawn"
    if first.startswith(_CRIO_KEYS) or _CRIO_MODE.match(first):
        return "crio"
    if s.startswith("["):
        return "oci"
    if s.startswith("{"):
        return "oci-config"
    if first.startswith("lxc.idmap"):
        return "lxc"
    if first.split(" ", 1)[0] in ("both", "uid", "gid"):
        return "incus"
    if _NOTATION.match(first):
        return "kernel"
    if _XMOUNT.match(first):
        return "xmount"
    if all(_PROC_LINE.match(ln) for ln in lines):
        return "proc"
    if _NEWUIDMAP.match(first):
        return "newuidmap"
    if _COLON_TRIPLE.match(first):
        return "podman"
    raise UnknownFormatError(
        f"cannot tell the format of {first[:40]!r}; say it with {option} "
        f"({', '.join(sorted(FORMATS))})",
        reason="unknown-format",
    )
