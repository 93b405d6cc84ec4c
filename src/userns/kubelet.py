"""The ID pool kubelet gives pods in user namespaces (KEP-127), and what breaks it.

kubelet runs every pod with ``hostUsers: false`` in a user namespace of its own: ONE
range of host IDs, the *pool*, is cut into slots of ``idsPerPod`` IDs (65536 unless
``userNamespaces.idsPerPod`` says otherwise), and each pod gets a slot. This module
follows kubelet's source (``pkg/kubelet/kubelet_pods.go``: ``getKubeletMappings``,
``parseGetSubIdsOutput``; ``pkg/kubelet/userns/userns_manager.go``:
``MakeUserNsManager``, ``record``, ``parseUserNsFileAndRecord``) step by step:

1. **The pool.** No ``kubelet`` account: the default pool, ``idsPerPod`` up to 2^32.
   An account but no ``getsubids`` on ``PATH``: kubelet stops (``os.IsNotExist`` does
   not match ``exec.ErrNotFound``; kubernetes PR 141345 fixes it). Otherwise
   ``getsubids kubelet`` and ``getsubids -g kubelet`` must both succeed, print the same
   bytes, and that be one line of four fields whose last two are ``uint32``: the first
   ID and the length. :func:`predict_getsubids` says what shadow's ``getsubids`` prints
   from the files; :func:`run_getsubids` runs the real one on the same root.
2. **The start-up checks**, in kubelet's order and with kubelet's words
   (:func:`check_pool`): ``idsPerPod`` a multiple of 65536; the first ID a multiple of
   ``idsPerPod`` and at least ``idsPerPod``; the length a multiple of ``idsPerPod``;
   at least ``maxPods`` slots.
3. **The pods already on disk** (:func:`read_pods`): every ``pods/<uid>/userns`` file,
   validated as ``parseUserNsFileAndRecord`` and ``record`` do; the first that fails
   stops kubelet (``id N is out of range`` after a pool change).

Beyond kubelet (:func:`pool_findings`): a pool past 2^32, whose top slots kubelet
computes in 32 bits and so hands out host IDs near 0 (``security``); the slot that
holds 4294967295, whose map the kernel refuses; the pool sharing IDs with other owners'
subordinate ranges; the pool covering account IDs.

Every message that kubelet prints is kubelet's own text, including the wrapping
``create user namespace manager:`` it adds.

>>> check_pool(65536, 7208960, ids_per_pod=65536, max_pods=110) is None
True
>>> check_pool(65536, 7208960, ids_per_pod=65536, max_pods=111).message
'create user namespace manager: kubelet user assigned IDs are not enough to support 111 pods'
>>> pool = Pool(327680, 4294836224)
>>> [(s.index, s.host_first) for s in pool.wrapped_slots()]
[(65531, 0), (65532, 65536), (65533, 131072)]
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

from ._foreign import go_fields, go_parse_uint, go_quote
from .errors import UsernsError
from .formats.kubelet import KubeletUsernsFile, read_kubelet_userns
from .maps import Extent, IDMap, IDMapPair
from .ranges import IDRange, IDSet
from .subid.accounts import Accounts
from .subid.allocate import shadow_list_owner_ranges
from .subid.lint import Finding, Severity
from .subid.model import SubidFile

__all__ = [
    "DEFAULT_IDS_PER_POD",
    "DEFAULT_KUBELET_DIR",
    "DEFAULT_MAX_PODS",
    "ID_UNIT",
    "KUBELET_USER",
    "GetsubidsOutput",
    "KubeletNode",
    "Pod",
    "Pool",
    "Slot",
    "StartError",
    "check_pod",
    "check_pool",
    "find_getsubids",
    "go_quote",
    "kubelet_mappings",
    "parse_getsubids_output",
    "pods_blocking",
    "pool_findings",
    "pool_keeping",
    "predict_getsubids",
    "read_node",
    "read_pods",
    "run_getsubids",
]

#: The account whose subordinate IDs kubelet takes as its pool.
KUBELET_USER = "kubelet"
#: ``userNsUnitLength``: ``idsPerPod`` must be a multiple of it.
ID_UNIT = 65536
#: kubelet's default ``userNamespaces.idsPerPod``.
DEFAULT_IDS_PER_POD = 65536
#: kubelet's default ``maxPods``.
DEFAULT_MAX_PODS = 110
#: kubelet's default ``--root-dir``.
DEFAULT_KUBELET_DIR = "/var/lib/kubelet"

_U32 = 1 << 32
_PREFIX = "create user namespace manager: "
_SEARCH = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")


# -- values -----------------------------------------------------------------------------


@attrs.frozen
class StartError:
    """Why kubelet would refuse to start: a stable ``reason`` and kubelet's ``message``.

    ``message`` is the error ``NewMainKubelet`` returns (journal:
    ``failed to run Kubelet: failed to create kubelet: <message>``); ``pod`` names the
    pod whose file stopped it, when one did.
    """

    reason: str
    message: str
    pod: str | None = None

    def __str__(self) -> str:
        return f"{self.message} [{self.reason}]"


@attrs.frozen
class GetsubidsOutput:
    """What ``getsubids [-g] OWNER`` printed (``source="real"``) or would print
    (``"predicted"``): its arguments, output streams and exit status."""

    args: tuple[str, ...]
    stdout: str
    stderr: str
    status: int
    source: Literal["predicted", "real"] = "predicted"

    @property
    def command(self) -> str:
        """The command line, as a reader would type it."""
        return " ".join(("getsubids", *self.args))


@attrs.frozen
class Slot:
    """Slot ``index`` of a pool: the host IDs kubelet gives the pod in it.

    ``first`` is the true first ID (it may pass 2^32); ``host_first`` is what kubelet
    computes, ``uint32((index + offset) * idsPerPod)``, which wraps past 2^32.
    """

    index: int
    first: int
    length: int

    @property
    def host_first(self) -> int:
        """The first host ID kubelet's 32-bit arithmetic gives the pod."""
        return self.first % _U32

    @property
    def wraps(self) -> bool:
        """True when kubelet's first ID wrapped past 2^32 (the pod gets low host IDs)."""
        return self.first >= _U32

    @property
    def kernel_refuses(self) -> bool:
        """True when the extent ``0 host_first length`` cannot be written to a uid_map:
        it reaches 4294967295 or wraps (``map_write``'s overflow check)."""
        return self.host_first + self.length > _U32 - 1


@attrs.frozen
class Pool:
    """kubelet's pool: ``length`` host IDs from ``first``, in slots of ``ids_per_pod``.

    ``source`` is ``"default"`` (no kubelet account or no getsubids) or
    ``"getsubids"``. Nothing is checked here: :func:`check_pool` does kubelet's checks.

    >>> p = Pool(65536, 65536 * 110)
    >>> p.slots, p.offset, p.slot(1).first
    (110, 1, 131072)
    """

    first: int
    length: int
    ids_per_pod: int = DEFAULT_IDS_PER_POD
    source: Literal["default", "getsubids", "given"] = "getsubids"

    @classmethod
    def default(cls, ids_per_pod: int = DEFAULT_IDS_PER_POD) -> Pool:
        """The pool kubelet uses when no range is configured: ``ids_per_pod`` … 2^32."""
        return cls(ids_per_pod, _U32 - ids_per_pod, ids_per_pod, "default")

    @property
    def stop(self) -> int:
        """One past the last ID (may pass 2^32)."""
        return self.first + self.length

    @property
    def slots(self) -> int:
        """How many pods the pool holds: ``length // ids_per_pod``."""
        return self.length // self.ids_per_pod

    @property
    def offset(self) -> int:
        """kubelet's ``off``: the slot number of the first ID counted from 0."""
        return self.first // self.ids_per_pod

    def slot(self, index: int) -> Slot:
        """Slot ``index`` (0-based) as kubelet's ``allocateOne`` computes it."""
        if not 0 <= index < self.slots:
            raise IndexError(f"slot {index} is not in a pool of {self.slots} slots")
        return Slot(index, (self.offset + index) * self.ids_per_pod, self.ids_per_pod)

    def wrapped_slots(self) -> list[Slot]:
        """The slots whose first ID kubelet wraps past 2^32 (PR 141345)."""
        first_wrapped = max(0, -(-_U32 // self.ids_per_pod) - self.offset)
        return [self.slot(i) for i in range(first_wrapped, self.slots)]

    def host_ids(self) -> IDSet:
        """The host IDs pods can be given: the pool below 4294967295, and the low IDs its
        wrapped slots (:meth:`wrapped_slots`) hand out."""
        stop = min(self.stop, _U32 - 1)
        ranges = [IDRange(self.first, stop - self.first)] if stop > self.first else []
        ranges += [IDRange(s.host_first, s.length) for s in self.wrapped_slots()
                   if s.host_first + s.length < _U32]
        return IDSet(ranges)

    def as_dict(self) -> dict[str, object]:
        return {"first": self.first, "length": self.length, "slots": self.slots,
                "ids_per_pod": self.ids_per_pod, "source": self.source}


@attrs.frozen
class Pod:
    """One pod directory under ``<kubelet-dir>/pods`` and its ``userns`` file.

    ``file`` is ``None`` for a pod without one (it runs in the host's namespace);
    ``problem`` is kubelet's refusal of the file itself (bad JSON, not one mapping,
    uid and gid different, container ID not 0), before the pool is considered.
    """

    uid: str
    path: str
    file: KubeletUsernsFile | None
    problem: StartError | None = None

    @property
    def has_userns(self) -> bool:
        return self.file is not None

    @property
    def host_first(self) -> int | None:
        """The ``hostId`` kubelet records for the pod (uid mapping 0)."""
        if self.file is None or not self.file.uid:
            return None
        return self.file.uid[0].host_id

    @property
    def length(self) -> int | None:
        if self.file is None or not self.file.uid:
            return None
        return self.file.uid[0].length

    @property
    def pair(self) -> IDMapPair | None:
        """The pod's maps as an :class:`IDMapPair`, or ``None`` when they are no valid map."""
        if self.file is None or not self.file.uid:
            return None
        try:
            return IDMapPair(
                IDMap(Extent(m.container_id, m.host_id, m.length) for m in self.file.uid),
                IDMap(Extent(m.container_id, m.host_id, m.length) for m in self.file.gid))
        except (UsernsError, ValueError):
            return None


# -- 1. the pool --------------------------------------------------------------------------


def predict_getsubids(file: SubidFile, owner: str = KUBELET_USER, *,
                      accounts: Accounts | None = None,
                      kind: Literal["uid", "gid"] = "uid") -> GetsubidsOutput:
    """What shadow's ``getsubids OWNER`` (``kind="gid"``: ``-g OWNER``) prints for ``file``.

    One ``"<n>: <owner> <start> <count>"`` line per range shadow lists; no range is
    exit status 1 and ``Error fetching ranges`` on stderr.

    >>> predict_getsubids(SubidFile.parse("kubelet:65536:7208960\\n")).stdout
    '0: kubelet 65536 7208960\\n'
    >>> predict_getsubids(SubidFile.parse("")).status
    1
    """
    args = (owner,) if kind == "uid" else ("-g", owner)
    ranges = shadow_list_owner_ranges(file, owner, accounts=accounts, kind=kind)
    if not ranges:
        return GetsubidsOutput(args, "", "Error fetching ranges\n", 1)
    text = "".join(f"{i}: {owner} {start} {count}\n" for i, (start, count) in enumerate(ranges))
    return GetsubidsOutput(args, text, "", 0)


def find_getsubids(root: str | os.PathLike[str] = "/") -> str | None:
    """The ``getsubids`` kubelet would find: on ``PATH`` for the running host (``/``),
    else in the usual directories under ``root``."""
    root = os.fspath(root)
    if os.path.realpath(root) == "/":
        return shutil.which("getsubids")
    for d in _SEARCH:
        candidate = os.path.join(root, d, "getsubids")
        if _is_exec(candidate):
            return candidate
    return None


def run_getsubids(root: str | os.PathLike[str] = "/", owner: str = KUBELET_USER, *,
                  kind: Literal["uid", "gid"] = "uid",
                  executable: str | None = None,
                  timeout: float = 30.0) -> GetsubidsOutput | None:
    """Run the real ``getsubids`` on ``root``'s files; ``None`` when that is not possible.

    For the running host (``root`` is ``/``) it simply runs. For another root, libsubid
    only reads ``/etc``, so the host's ``getsubids`` runs in a private mount namespace
    with ``<root>/etc`` bind-mounted over ``/etc`` (needs root and ``unshare``); nothing
    is visible outside that namespace.
    """
    exe = executable or shutil.which("getsubids")
    if exe is None:
        return None
    args = [owner] if kind == "uid" else ["-g", owner]
    root = os.fspath(root)
    if os.path.realpath(root) == "/":
        argv = [exe, *args]
    else:
        unshare = shutil.which("unshare")
        etc = os.path.join(root, "etc")
        if unshare is None or os.geteuid() != 0 or not os.path.isdir(etc):
            return None
        script = 'mount --bind "$1" /etc && shift && exec "$@"'
        argv = [unshare, "--mount", "--propagation", "private", "--", "sh", "-c", script,
                "sh", etc, exe, *args]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    dec = "utf-8"
    return GetsubidsOutput(tuple(args), proc.stdout.decode(dec, "surrogateescape"),
                           proc.stderr.decode(dec, "surrogateescape"), proc.returncode,
                           "real")


def parse_getsubids_output(text: str) -> tuple[int, int] | StartError:
    """kubelet's ``parseGetSubIdsOutput``: ``(first, length)``, or its error.

    >>> parse_getsubids_output("0: kubelet 65536 7208960\\n")
    (65536, 7208960)
    >>> print(parse_getsubids_output("0: kubelet 1 4294967296\\n").message)
    error parsing line "0: kubelet 1 4294967296\\n": strconv.ParseUint: parsing \
"4294967296": value out of range
    """
    lines = text.strip("\n").split("\n")
    if len(lines) != 1:
        return StartError("getsubids-lines", f"error parsing line {go_quote(text)}: it must "
                          "contain only one line")
    parts = go_fields(lines[0])
    if len(parts) != 4:
        return StartError("getsubids-fields", f"invalid line {go_quote(text)}")
    values = []
    for part in parts[2:]:
        value, err = go_parse_uint(part, 32)
        if err is not None:  # Go's *NumError text
            return StartError("getsubids-number", f"error parsing line {go_quote(text)}: "
                              f"strconv.ParseUint: parsing {go_quote(part)}: {err}")
        values.append(value)
    return values[0], values[1]


def kubelet_mappings(*, user_exists: bool, uid_output: GetsubidsOutput | None,
                     gid_output: GetsubidsOutput | None,
                     ids_per_pod: int = DEFAULT_IDS_PER_POD,
                     missing_getsubids: Literal["stop", "default"] = "stop",
                     ) -> Pool | StartError:
    """kubelet's ``getKubeletMappings``: the pool, or why kubelet stops.

    ``uid_output``/``gid_output`` are what ``getsubids kubelet`` and ``getsubids -g
    kubelet`` printed; ``None`` means there is no ``getsubids`` to run. With the account
    and no ``getsubids``, kubelet's code means to fall back to the default pool but stops
    (``missing_getsubids="stop"``, what released kubelets do); ``"default"`` is the
    behaviour with the fix proposed in kubernetes PR 141345.

    >>> kubelet_mappings(user_exists=False, uid_output=None, gid_output=None)
    Pool(first=65536, length=4294901760, ids_per_pod=65536, source='default')
    >>> kubelet_mappings(user_exists=True, uid_output=None, gid_output=None).reason
    'getsubids-missing'
    """
    _check_ids_per_pod(ids_per_pod)
    pre = _PREFIX + "kubelet mappings: "
    if not user_exists:
        return Pool.default(ids_per_pod)
    if uid_output is None or gid_output is None:
        if missing_getsubids == "default":
            return Pool.default(ids_per_pod)
        return StartError("getsubids-missing", pre + 'exec: "getsubids": executable file not '
                          "found in $PATH")
    user = go_quote(KUBELET_USER)
    if uid_output.status != 0:
        return StartError("getsubids-failed", pre + f"error retrieving additional ids for "
                          f"user {user}")
    if gid_output.status != 0:
        return StartError("getsubids-failed", pre + f"error retrieving additional gids for "
                          f"user {user}")
    if uid_output.stdout != gid_output.stdout:
        return StartError("subids-mismatch", pre + f"mismatched subuids and subgids for user "
                          f"{user}")
    got = parse_getsubids_output(uid_output.stdout)
    if isinstance(got, StartError):
        return attrs.evolve(got, message=pre + got.message)
    return Pool(got[0], got[1], ids_per_pod, "getsubids")


def _check_ids_per_pod(ids_per_pod: int) -> None:
    if not isinstance(ids_per_pod, int) or not 1 <= ids_per_pod < _U32:
        raise ValueError(f"ids_per_pod must be within 1…4294967295 (kubelet keeps it in a "
                         f"uint32): {ids_per_pod!r}")


# -- 2. kubelet's start-up checks ---------------------------------------------------------


def check_pool(first: int, length: int, *, ids_per_pod: int = DEFAULT_IDS_PER_POD,
               max_pods: int = DEFAULT_MAX_PODS) -> StartError | None:
    """``MakeUserNsManager``'s checks of the pool, in its order; ``None`` when all pass.

    >>> check_pool(65537, 65536 * 110).message
    'create user namespace manager: kubelet user assigned ID 65537 is not a multiple of 65536'
    >>> check_pool(0, 65536 * 110).reason
    'first-too-low'
    """
    _check_ids_per_pod(ids_per_pod)
    n = ids_per_pod
    if n % ID_UNIT:
        return StartError("ids-per-pod", _PREFIX + f"kubelet user namespace length {n} is not "
                          f"a multiple of {ID_UNIT}")
    if first % n:
        return StartError("first-not-multiple", _PREFIX + f"kubelet user assigned ID {first} "
                          f"is not a multiple of {n}")
    if first < n:
        return StartError("first-too-low", _PREFIX + f"kubelet user assigned ID {first} must "
                          f"be greater or equal to {n}")
    if length % n:
        return StartError("length-not-multiple", _PREFIX + f"kubelet user assigned IDs length "
                          f"{length} is not a multiple of {n}")
    if length // n < max_pods % _U32:
        return StartError("too-few-slots", _PREFIX + f"kubelet user assigned IDs are not "
                          f"enough to support {max_pods} pods")
    return None


# -- 3. pods on disk ---------------------------------------------------------------------


def _file_problem(f: KubeletUsernsFile) -> str | None:
    """``parseUserNsFileAndRecord``'s checks before ``record``, in its order."""
    pre = "invalid user namespace configuration: "
    if len(f.uid) != 1:
        return pre + "no more than one mapping allowed."
    if len(f.uid) != len(f.gid):
        return pre + "GID and UID mappings should be identical."
    u, g = f.uid[0], f.gid[0]
    if (u.host_id, u.container_id, u.length) != (g.host_id, g.container_id, g.length):
        return pre + "GID and UID mapping should be identical"
    if u.container_id != 0:
        return pre + "UID 0 must be mapped"
    return None


def read_pods(kubelet_dir: str | os.PathLike[str] = DEFAULT_KUBELET_DIR) -> list[Pod]:
    """Every directory of ``<kubelet_dir>/pods`` in kubelet's order (by name), with its
    ``userns`` file read as kubelet reads it. No ``pods`` directory: no pods.

    A file kubelet cannot read or parse gives the pod a ``problem`` with kubelet's words.
    """
    pods_dir = os.path.join(os.fspath(kubelet_dir), "pods")
    try:
        entries = sorted(os.scandir(pods_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    out: list[Pod] = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        path = os.path.join(entry.path, "userns")
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            out.append(Pod(entry.name, path, None))
            continue
        except OSError as err:
            out.append(Pod(entry.name, path, None, StartError(
                "pod-unreadable", _pod_message(entry.name, f"{err.strerror}"), entry.name)))
            continue
        if not data:
            out.append(Pod(entry.name, path, None))  # kubelet: no content, no userns
            continue
        text = data.decode("utf-8", "surrogateescape")
        try:
            f = read_kubelet_userns(text, path=path)
        except UsernsError as err:
            out.append(Pod(entry.name, path, KubeletUsernsFile((), ()), StartError(
                "pod-invalid-json", _pod_message(
                    entry.name, f"invalid user namespace mappings file: {err.message}"),
                entry.name)))
            continue
        problem = _file_problem(f)
        out.append(Pod(entry.name, path, f, None if problem is None else StartError(
            "pod-invalid", _pod_message(entry.name, problem), entry.name)))
    return out


def _pod_message(uid: str, text: str) -> str:
    return _PREFIX + f"record pod mappings for existing pod {go_quote(uid)}: {text}"


def check_pod(pod: Pod, pool: Pool, taken: Iterable[int] = ()) -> StartError | None:
    """kubelet's ``record`` for ``pod`` against ``pool``; ``taken`` are slot indexes
    earlier pods hold. ``None`` when kubelet accepts the pod (or it has no userns).

    >>> f = read_kubelet_userns('{"uidMappings":[{"hostId":626982912,"containerId":0,'
    ...     '"length":65536}],"gidMappings":[{"hostId":626982912,"containerId":0,"length":65536}]}')
    >>> print(check_pod(Pod("p1", "p1/userns", f), Pool(65536, 7208960)).message)
    create user namespace manager: record pod mappings for existing pod "p1": id 626982912 \
is out of range
    """
    if pod.problem is not None:
        return pod.problem
    if pod.file is None:
        return None
    first, length = pod.host_first, pod.length
    assert first is not None and length is not None
    n = pool.ids_per_pod
    if length != n:
        return StartError("pod-wrong-length", _pod_message(
            pod.uid, f"wrong user namespace length {length}"), pod.uid)
    if first % n:
        return StartError("pod-wrong-offset", _pod_message(
            pod.uid, f"wrong user namespace offset specified {first}"), pod.uid)
    index = first // n - pool.offset
    if not 0 <= index < pool.slots:
        return StartError("pod-out-of-range", _pod_message(
            pod.uid, f"id {first} is out of range"), pod.uid)
    if index in (taken if isinstance(taken, (set, frozenset)) else set(taken)):
        return StartError("pod-slot-taken", _pod_message(
            pod.uid, f"range picked for pod {go_quote(pod.uid)} already taken"), pod.uid)
    return None


def pods_blocking(pods: Sequence[Pod], pool: Pool) -> list[tuple[Pod, StartError]]:
    """Every pod kubelet would refuse under ``pool``, each with kubelet's message; kubelet
    itself stops at the first one.

    >>> pods_blocking([], Pool(65536, 65536 * 110))
    []
    """
    out: list[tuple[Pod, StartError]] = []
    taken: set[int] = set()
    for pod in pods:
        err = check_pod(pod, pool, taken)
        if err is not None:
            out.append((pod, err))
        elif pod.host_first is not None:
            taken.add(pod.host_first // pool.ids_per_pod - pool.offset)
    return out


def pool_keeping(pods: Sequence[Pod], *, ids_per_pod: int = DEFAULT_IDS_PER_POD,
                 max_pods: int = DEFAULT_MAX_PODS,
                 around: Pool | None = None) -> Pool | StartError:
    """The smallest pool that keeps every pod kubelet can read and passes kubelet's checks.

    It covers ``around`` (the pool wanted) too when given. A pod whose range no pool of
    ``ids_per_pod`` slots can hold (another length, an offset not a multiple) is the
    error instead: that pod must be deleted first. So are two pods on one slot
    (``pod-slot-shared``): kubelet refuses the second under every pool, so no pool keeps
    both; the message names the two pods.

    >>> f = read_kubelet_userns('{"uidMappings":[{"hostId":131072,"containerId":0,'
    ...     '"length":65536}],"gidMappings":[{"hostId":131072,"containerId":0,"length":65536}]}')
    >>> pool_keeping([Pod("a", "a/userns", f), Pod("b", "b/userns", f)]).reason
    'pod-slot-shared'
    """
    _check_ids_per_pod(ids_per_pod)
    n = ids_per_pod
    starts: list[int] = []
    holder: dict[int, str] = {}
    for pod in pods:
        if pod.file is None:
            continue
        if pod.problem is not None:
            return pod.problem
        first, length = pod.host_first, pod.length
        assert first is not None and length is not None
        if length != n or first % n or first < n:
            what = (f"wrong user namespace length {length}" if length != n
                    else f"wrong user namespace offset specified {first}" if first % n
                    else f"id {first} is out of range")
            return StartError("pod-unkeepable", _pod_message(pod.uid, what), pod.uid)
        if first in holder:
            taken = _pod_message(pod.uid, f"range picked for pod {go_quote(pod.uid)} "
                                 "already taken")
            return StartError(
                "pod-slot-shared",
                f"{taken} (pods {go_quote(holder[first])} and {go_quote(pod.uid)} share the "
                f"slot {first}…{first + n - 1}: kubelet refuses the second under any pool, "
                f"so no pool keeps both; delete one of them)", pod.uid)
        holder[first] = pod.uid
        starts.append(first)
    lo = min(starts, default=around.first if around else n)
    hi = max((s + n for s in starts), default=lo)
    if around is not None:
        lo, hi = min(lo, around.first), max(hi, around.stop)
    lo -= lo % n
    hi += -hi % n
    if (hi - lo) // n < max_pods:
        hi = lo + max_pods * n
    return Pool(lo, hi - lo, n, "given")


# -- beyond kubelet -----------------------------------------------------------------------


def _finding(reason: str, severity: Severity, message: str, path: str | None = None,
             owner: str | None = None, lineno: int | None = None) -> Finding:
    return Finding(reason, severity, message, path, lineno, owner)


def pool_findings(pool: Pool, *, subuid: SubidFile | None = None,
                  subgid: SubidFile | None = None,
                  accounts: Accounts | None = None) -> list[Finding]:
    """What kubelet does not check: wrapped and refused slots, other owners' ranges in the
    pool, account IDs in the pool.

    >>> fs = pool_findings(Pool(327680, 4294836224))
    >>> [(f.reason, str(f.severity)) for f in fs]
    [('pool-wraps', 'security'), ('slot-refused', 'error')]
    """
    out: list[Finding] = []
    n = pool.ids_per_pod
    # The largest pool end whose last slot stays below 4294967295.
    safe_length = max(0, (_U32 - n - pool.first) // n * n)
    fix = (f"give the kubelet account a subuid/subgid range of at most {safe_length} IDs "
           f"from {pool.first}" if pool.source == "default"
           else f"give the kubelet range a count of at most {safe_length}")
    wrapped = pool.wrapped_slots() if pool.stop > _U32 else []
    if wrapped:
        names = ", ".join(f"slot {s.index} → host {s.host_first}…{s.host_first + s.length - 1}"
                          for s in wrapped[:4])
        more = f" and {len(wrapped) - 4} more" if len(wrapped) > 4 else ""
        root = " (host root's own IDs)" if any(s.host_first == 0 for s in wrapped) else ""
        out.append(_finding(
            "pool-wraps", Severity.SECURITY,
            f"the pool {pool.first}+{pool.length} ends at {pool.stop}, past 2^32: kubelet "
            f"computes slot IDs in 32 bits, so {len(wrapped)} slot(s) wrap to low host IDs"
            f"{root}: {names}{more}; {fix}"))
    # The one slot that holds 4294967295 (or straddles 2^32), if the pool reaches it.
    last = (_U32 - 1) // n - pool.offset
    if 0 <= last < pool.slots:
        s = pool.slot(last)
        out.append(_finding(
            "slot-refused", Severity.ERROR,
            f"slot {s.index} (host {s.first}…{s.first + s.length - 1}) holds 4294967295: "
            "the kernel refuses its uid_map, so a pod given it never starts "
            f"(FailedCreatePodSandBox, kubernetes issue 139916); {fix}"))
    ids = pool.host_ids()
    for file, kind in ((subuid, "subuid"), (subgid, "subgid")):
        if file is None:
            continue
        kubelet_uid = accounts.uid_of(KUBELET_USER) if accounts else None
        for e in file.entries:
            if e.owner == KUBELET_USER or (kubelet_uid is not None
                                           and e.owner == str(kubelet_uid)):
                continue
            shared = ids & e.range.to_set()
            if shared:
                first = shared.ranges[0]
                out.append(_finding(
                    "pool-overlap", Severity.ERROR,
                    f"the kubelet pool shares {len(shared)} IDs with {e.owner}'s range "
                    f"{e.start}+{e.count} ({kind} line {e.lineno}), from {first.start}: a pod "
                    f"and {e.owner}'s containers can own each other's files; move one of them",
                    file.path, e.owner, e.lineno))
    if accounts is not None:
        for u in accounts.users:
            if u.uid in ids:
                who = "the kubelet account's own" if u.name == KUBELET_USER else f"{u.name}'s"
                out.append(_finding(
                    "pool-covers-account", Severity.SECURITY,
                    f"the kubelet pool covers {who} uid {u.uid}: a pod whose slot holds it runs "
                    f"container IDs as that account and owns its files; keep the pool clear "
                    f"of account IDs", owner=u.name))
        for g in accounts.groups:
            if g.gid in ids:
                out.append(_finding(
                    "pool-covers-group", Severity.SECURITY,
                    f"the kubelet pool covers group {g.name}'s gid {g.gid}: a pod whose slot "
                    f"holds it acts as that group on host files; keep the pool clear of "
                    f"account IDs", owner=g.name))
    return out


# -- the whole node --------------------------------------------------------------------


@attrs.frozen
class KubeletNode:
    """What kubelet would make of a node: ``pool`` (``None`` when kubelet cannot even get
    one), ``error`` (kubelet's refusal, ``None`` when it starts), the pods on disk, the
    findings beyond kubelet, and the getsubids outputs (predicted, and real when run).
    """

    pool: Pool | None
    error: StartError | None
    pods: tuple[Pod, ...]
    findings: tuple[Finding, ...]
    predicted: tuple[GetsubidsOutput, ...]
    real: tuple[GetsubidsOutput, ...]
    ids_per_pod: int
    max_pods: int

    @property
    def ok(self) -> bool:
        """kubelet would start."""
        return self.error is None

    @property
    def secure(self) -> bool:
        """No finding is ``security``."""
        return all(f.severity < Severity.SECURITY for f in self.findings)

    def blocking(self, pool: Pool | None = None) -> list[tuple[Pod, StartError]]:
        """The pods kubelet would refuse under ``pool`` (default: the node's own pool).

        Without any pool (kubelet cannot get one), the pods kubelet refuses whatever the
        pool: a file it cannot read or take (unreadable, not JSON, not one identical
        uid/gid mapping), and a pod on the same range as an earlier one.
        """
        target = pool or self.pool
        if target is not None:
            return pods_blocking(self.pods, target)
        out: list[tuple[Pod, StartError]] = []
        seen: set[tuple[int, int]] = set()
        for p in self.pods:
            if p.problem is not None:
                out.append((p, p.problem))
            elif p.host_first is not None and p.length is not None:
                key = (p.host_first, p.length)
                if key in seen:
                    out.append((p, StartError("pod-slot-taken", _pod_message(
                        p.uid, f"range picked for pod {go_quote(p.uid)} already taken"),
                        p.uid)))
                seen.add(key)
        return out

    def free_slots(self) -> int | None:
        """Slots no pod on disk holds (``None`` without a pool)."""
        if self.pool is None:
            return None
        used = {p.host_first for p in self.pods if p.file is not None
                and check_pod(p, self.pool) is None}
        return self.pool.slots - len(used)


def read_node(root: str | os.PathLike[str] = "/", *,
              kubelet_dir: str | os.PathLike[str] | None = None,
              ids_per_pod: int = DEFAULT_IDS_PER_POD, max_pods: int = DEFAULT_MAX_PODS,
              run_real: bool = True, getsubids: str | Literal[False] | None = None,
              ) -> KubeletNode:
    """Everything kubelet would decide on the system at ``root``.

    ``kubelet_dir`` defaults to ``<root>/var/lib/kubelet``. ``getsubids``: the binary
    kubelet would find (default: :func:`find_getsubids`), ``False`` to say there is none.
    ``run_real`` also runs the real ``getsubids`` where possible; when it ran, its output
    is what kubelet sees, and a difference from the prediction is a finding.

    "getsubids present" means one thing for both the verdict and the real run: the
    binary kubelet would find (``getsubids``), on ``PATH`` for the running host, in the
    usual ``bin``/``sbin`` directories under ``root`` for another root. Only when it is
    present is the real ``getsubids`` run; for another root that is this machine's
    ``getsubids`` reading ``<root>/etc`` (:func:`run_getsubids`), standing in for the
    root's own, which may not run here. A root without one gets no real run, and kubelet
    stops (``getsubids-missing``) when the ``kubelet`` account exists.
    """
    _check_ids_per_pod(ids_per_pod)
    root = os.fspath(root)
    etc = os.path.join(root, "etc")
    accounts = Accounts.read(root)
    files = {}
    for kind in ("uid", "gid"):
        path = os.path.join(etc, f"sub{kind}")
        try:
            files[kind] = SubidFile.read(path)
        except FileNotFoundError:
            files[kind] = SubidFile.parse("", path=path)
    exe = find_getsubids(root) if getsubids is None else (getsubids or None)
    user_exists = accounts.user(KUBELET_USER) is not None
    findings: list[Finding] = []
    predicted = (predict_getsubids(files["uid"], accounts=accounts, kind="uid"),
                 predict_getsubids(files["gid"], accounts=accounts, kind="gid"))
    real: tuple[GetsubidsOutput, ...] = ()
    if run_real and exe is not None:
        runs = [run_getsubids(root, kind="uid"), run_getsubids(root, kind="gid")]
        real = tuple(r for r in runs if r is not None)
        for want, ran in zip(predicted, real):
            if (want.stdout, want.status) != (ran.stdout, ran.status):
                findings.append(_finding(
                    "getsubids-differs", Severity.WARNING,
                    f"'{ran.command}' printed {go_quote(ran.stdout)} (status {ran.status}) "
                    f"but the files give {go_quote(want.stdout)} (status {want.status}): "
                    "subordinate IDs come from somewhere else too (nsswitch.conf 'subid:')"))
    seen = real if len(real) == 2 else predicted
    if user_exists and not _has_tool(root, "getent"):
        findings.append(_finding(
            "getent-missing", Severity.WARNING,
            f"no getent under {root}: kubelet builds that look their account up with "
            "'getent passwd kubelet' (static kubelet, kubernetes PR 135870) then treat the "
            "account as absent and use the default pool, not the kubelet range (kubernetes "
            "issue 141970); install getent (libc-bin)"))
    if not user_exists:
        findings.append(_finding(
            "pool-default", Severity.INFO,
            f"no '{KUBELET_USER}' account in {os.path.join(etc, 'passwd')}: kubelet uses its "
            "default pool; create the account and give it a subuid and subgid range to "
            "choose the pool"))
    got = kubelet_mappings(user_exists=user_exists,
                           uid_output=seen[0] if exe else None,
                           gid_output=seen[1] if exe else None, ids_per_pod=ids_per_pod)
    pool: Pool | None = got if isinstance(got, Pool) else None
    error: StartError | None = got if isinstance(got, StartError) else None
    kdir = os.fspath(kubelet_dir) if kubelet_dir is not None else os.path.join(
        root, DEFAULT_KUBELET_DIR.lstrip("/"))
    pods = tuple(read_pods(kdir))
    if pool is not None:
        error = check_pool(pool.first, pool.length, ids_per_pod=ids_per_pod, max_pods=max_pods)
        if error is None:
            blocked = pods_blocking(pods, pool)
            if blocked:
                error = blocked[0][1]
        findings += pool_findings(pool, subuid=files["uid"], subgid=files["gid"],
                                  accounts=accounts)
    return KubeletNode(pool, error, pods, tuple(findings), predicted, real, ids_per_pod,
                       max_pods)


def _has_tool(root: str, name: str) -> bool:
    if os.path.realpath(root) == "/":
        return shutil.which(name) is not None
    return any(_is_exec(os.path.join(root, d, name)) for d in _SEARCH)


def _is_exec(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)
