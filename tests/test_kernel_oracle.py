"""The kernel as the test oracle for ``validate_map_write``.

Each case is the exact bytes of a ``uid_map`` write. The validator answers first; then the
same bytes go to the ``uid_map`` of a fresh user namespace in ONE ``write()``, and:

1. the kernel accepts exactly what the validator accepts, and refuses the rest with EINVAL;
2. what the kernel reads back is the validated map, padded and ordered as the kernel does;
3. translation agrees both ways: a child in the namespace calls ``setresuid(r, e, s)`` and
   the host reads its IDs from ``/proc/PID/status`` (= ``to_host``, or EINVAL when one is
   unmapped); files chowned on the host to IDs inside and outside the map are stat'ed
   from inside (= ``container_view``, the overflow ID for unmapped owners).

The two inputs the validator refuses on purpose although the kernel takes them (see
``userns.formats.proc``) are checked against a model of what the kernel really does:

- ``field-too-large``: every field is truncated to 32 bits;
- ``nul-byte``: the kernel stops reading at the NUL.

The parent rule is checked the same way from inside a middle namespace (hypothesis draws
its map): the maps of ITS children must have their host IDs inside one extent of the
middle map, and the kernel must answer EPERM exactly where the validator (given the
middle map as ``parent``) says ``not-in-parent``.

Cases come from an enumerated edge list and from hypothesis (the hypothesis tests are
marked ``slow``; ``-m "not slow"`` leaves the edge list). Set ``USERNS_ORACLE_EXAMPLES``
to scale the number of hypothesis examples (300 by default: about 3,500 kernel round
trips). The module prints a tally: cases, accepted, refused by errno, documented
deviations, disagreements.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import gc
import os
import pickle
import random
import re
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from userns import IDMap, InvalidMapError, validate_map_write
from userns._kernel_spawn import NamespaceChild, Report
from userns.formats.proc import format_proc_padded
from userns.kernel import overflow_ids, write_map

from .test_kernel import needs_root, needs_userns

pytestmark = [pytest.mark.kernel, needs_userns, needs_root]

EXAMPLES = int(os.environ.get("USERNS_ORACLE_EXAMPLES", "300"))
#: Map texts per example of the batch test (cheap to generate, so most of the volume).
BATCH = 25
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: Validator refusals that are documented deviations from the kernel.
DOCUMENTED = ("field-too-large", "nul-byte")

TALLY: collections.Counter[str] = collections.Counter()
DISAGREEMENTS: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def report_tally(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None or not TALLY:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(
            f"kernel oracle: {TALLY['cases']} cases written to real uid_maps; "
            f"{TALLY['accepted']} accepted, {TALLY['refused']} refused "
            f"({TALLY['refused:EINVAL']} EINVAL, {TALLY['refused:EPERM']} EPERM for the "
            f"parent rule, in {TALLY['middles']} middle namespaces); "
            f"{TALLY['translated']} translation checks ({TALLY['setresuid']} setresuid, "
            f"{TALLY['stat']} stat); documented deviations: "
            f"field-too-large {TALLY['dev:field-too-large']} "
            f"(kernel installed the truncation {TALLY['dev-installed:field-too-large']}), "
            f"nul-byte {TALLY['dev:nul-byte']} "
            f"(kernel installed the prefix {TALLY['dev-installed:nul-byte']}); "
            f"disagreements: {len(DISAGREEMENTS)}")
        for line in DISAGREEMENTS[:20]:
            reporter.write_line(f"  DISAGREEMENT {line}")


# -- the kernel's side ---------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What to check inside an accepted namespace: ``setresuid`` arguments (container IDs)
    and the host owners of the files to stat from inside."""

    setresuid: tuple[int, int, int]
    owners: tuple[int, ...]


@dataclass(frozen=True)
class KernelAnswer:
    """What the kernel did: the write's errno, the read-back text, and the probe's results
    (``setresuid``'s errno, the Uid line of ``/proc/PID/status``, the owners seen inside)."""

    errno: int | None  # None: the write succeeded
    readback: str
    setresuid_errno: int | None = None
    status_uids: tuple[int, ...] = ()
    views: tuple[int, ...] = ()


class Files:
    """Files in a private directory, chowned on the host before each probe."""

    def __init__(self, root: Path, count: int) -> None:
        self.paths = [root / f"f{i}" for i in range(count)]
        for p in self.paths:
            p.touch()


def _status_uids(pid: int) -> tuple[int, ...]:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return tuple(int(x) for x in line.split()[1:])
    raise AssertionError("no Uid line")  # pragma: no cover


def kernel_write(data: bytes, probe: Probe | None, files: Files) -> KernelAnswer:
    """Write ``data`` to a fresh namespace's uid_map in one write(); probe it if accepted."""
    paths = [str(p) for p in files.paths[: len(probe.owners)]] if probe else []
    if probe:
        for path, owner in zip(paths, probe.owners):
            os.chown(path, owner, -1)
    res_r, res_w = os.pipe()
    hold_r, hold_w = os.pipe()

    def inside(report: Report) -> NoReturn:  # pragma: no cover - runs in the child
        os.close(res_r)
        os.close(hold_w)
        assert probe is not None
        views = [os.stat(p).st_uid for p in paths]
        try:
            os.setresuid(*probe.setresuid)
            err = 0
        except OSError as e:
            err = e.errno or -1
        os.write(res_w, (" ".join(str(v) for v in [err, *views]) + "\n").encode())
        os.read(hold_r, 1)  # the parent reads /proc/PID/status meanwhile
        os._exit(0)

    child = NamespaceChild(inside)
    os.close(res_w)
    os.close(hold_r)
    try:
        fd = os.open(f"/proc/{child.pid}/uid_map", os.O_WRONLY)
        try:
            os.write(fd, data)
            write_errno = None
        except OSError as e:
            write_errno = e.errno
        finally:
            os.close(fd)
        with open(f"/proc/{child.pid}/uid_map") as f:
            readback = f.read()
        if write_errno is not None or probe is None or not readback:
            child.abort()
            return KernelAnswer(write_errno, readback)
        child.go(until_exec=False)
        with os.fdopen(res_r, closefd=False) as r:
            fields = [int(x) for x in r.readline().split()]
        status = _status_uids(child.pid)
        os.close(hold_w)
        hold_w = -1
        child.wait()
        return KernelAnswer(None, readback, fields[0] or None, status, tuple(fields[1:]))
    finally:
        os.close(res_r)
        if hold_w >= 0:
            os.close(hold_w)
        child.abort()


def _read_exactly(fd: int, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def _send(fd: int, obj: object) -> None:
    payload = pickle.dumps(obj)
    os.write(fd, struct.pack("<I", len(payload)) + payload)


def _receive(fd: int) -> object:
    (n,) = struct.unpack("<I", _read_exactly(fd, 4))
    return pickle.loads(_read_exactly(fd, n))


def _serve(requests: int, answers: int, files: Files) -> None:  # pragma: no cover - server
    gc.freeze()  # keep the collector from touching (and copying) the pages pytest left
    while True:
        try:
            data, probe = cast("tuple[Any, Any]", _receive(requests))
        except EOFError:
            return
        try:
            answer: object = kernel_write(data, probe, files)
        except Exception as e:
            answer = f"{type(e).__name__}: {e}"
        _send(answers, answer)


class Kernel:
    """A small server process, forked once, that runs :func:`kernel_write` for the tests.

    Forking every namespace child from pytest itself costs ~20 ms a case: while a child
    of the big pytest process lives, each page pytest (or hypothesis) writes is copied.
    The server's pages are few and quiet, so its forks cost ~1 ms.
    """

    def __init__(self, root: Path, middle: IDMap | None = None) -> None:
        self.files = Files(root, 6)
        self.middle = middle
        req_r, self._req_w = os.pipe()
        self._ans_r, ans_w = os.pipe()

        def serve(report: Report | None = None) -> NoReturn:  # pragma: no cover - server
            code = 1
            try:
                os.close(self._req_w)
                os.close(self._ans_r)
                _serve(req_r, ans_w, self.files)
                code = 0
            finally:
                os._exit(code)

        self._child: NamespaceChild | None = None
        if middle is None:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the server
                serve()
        else:
            # The server runs inside a namespace mapped by ``middle``: the maps it writes
            # are its children's, checked by the kernel against ``middle`` as the parent.
            self._child = NamespaceChild(serve)
            pid = self._child.pid
            write_map(pid, middle, "uid")
            write_map(pid, IDMap.identity(), "gid")
            self._child.go(until_exec=False)
        os.close(req_r)
        os.close(ans_w)
        self.pid = pid

    def write(self, data: bytes, probe: Probe | None) -> KernelAnswer:
        self.send(data, probe)
        return self.receive(data)

    def send(self, data: bytes, probe: Probe | None) -> None:
        """Queue one case (the server answers in order; see :meth:`receive`)."""
        _send(self._req_w, (data, probe))

    def receive(self, data: bytes) -> KernelAnswer:
        answer = _receive(self._ans_r)
        if isinstance(answer, str):
            raise AssertionError(f"the kernel server failed on {data!r}: {answer}")
        assert isinstance(answer, KernelAnswer)
        return answer

    def close(self) -> None:
        os.close(self._req_w)
        os.close(self._ans_r)
        status = self._child.wait() if self._child else os.waitpid(self.pid, 0)[1]
        assert os.waitstatus_to_exitcode(status) == 0


# -- the model of the documented deviations ----------------------------------------------


def kernel_model(data: bytes) -> bytes:
    """The text the kernel effectively parses: cut at the first NUL, each field mod 2^32.

    ``simple_strtoul`` reads every digit into an unsigned long and the extent stores a
    u32; a digit run in junk stays junk whatever its value, so rewriting every run is safe.
    """
    cut = data.split(b"\0", 1)[0]
    return re.sub(rb"[0-9]+", lambda m: str(int(m.group()) % 2**32).encode(), cut)


def validator(
    data: bytes, page_size: int = PAGE_SIZE, parent: IDMap | None = None
) -> IDMap | InvalidMapError:
    try:
        return validate_map_write(data, page_size=page_size, parent=parent)
    except InvalidMapError as e:
        return e


def choose_probe(m: IDMap, pick: int) -> Probe:
    """Container IDs at the edges of the extents (and one unmapped, now and then); host
    owners inside and just outside the extents."""
    extents = list(m)
    cs: list[int] = []
    owners: list[int] = [0]
    for k, e in enumerate(extents[:6]):
        cs += [e.container, e.container + e.size - 1, e.container + (pick * 7919 + k) % e.size]
        owners += [e.host, e.host + e.size - 1]
        if e.host > 0:
            owners.append(e.host - 1)
        if e.host + e.size <= 4294967294:
            owners.append(e.host + e.size)
    rotate = pick % len(cs)
    cs = cs[rotate:] + cs[:rotate]
    triple = (cs[0], cs[1 % len(cs)], cs[2 % len(cs)])
    if pick % 5 == 0:
        # An unmapped container ID, when there is one: setresuid must fail with EINVAL.
        free = next((x for x in (0, 1, 65534, 4294967294, extents[0].container - 1,
                                 extents[0].container + extents[0].size)
                     if 0 <= x <= 4294967294 and m.to_host(x, None) is None), None)
        if free is not None:
            triple = (triple[0], free, triple[2])
    rotate = pick % len(owners)
    owners = owners[rotate:] + owners[:rotate]
    return Probe(triple, tuple(dict.fromkeys(owners))[:6])


# -- the comparison -----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What the validator (or, for a documented deviation, the model) expects of a case."""

    data: bytes
    expected: IDMap | InvalidMapError
    probe: Probe | None


def plan(data: bytes, parent: IDMap | None, pick: int) -> Plan:
    verdict = validator(data, parent=parent)
    expected = verdict
    if isinstance(verdict, InvalidMapError) and verdict.reason in DOCUMENTED:
        # The validator refuses on purpose; the kernel must do what the model says.
        TALLY[f"dev:{verdict.reason}"] += 1
        expected = (verdict if len(data) >= PAGE_SIZE
                    else validator(kernel_model(data), page_size=1 << 20, parent=parent))
        if isinstance(expected, IDMap):
            TALLY[f"dev-installed:{verdict.reason}"] += 1
    probe = (choose_probe(expected, pick)
             if isinstance(expected, IDMap) and parent is None else None)
    return Plan(data, expected, probe)


def judge(case: Plan, got: KernelAnswer) -> None:
    """Compare the kernel's answer with the plan; record the tally, fail on disagreement."""
    expected, data = case.expected, case.data
    TALLY["cases"] += 1
    problems: list[str] = []
    if isinstance(expected, IDMap):
        TALLY["accepted"] += 1
        if got.errno is not None:
            problems.append(f"kernel refused ({errno.errorcode[got.errno]}), validator accepted "
                            f"{expected!r}")
        elif got.readback != format_proc_padded(expected):
            problems.append(f"read back {got.readback!r}, validator {expected!r}")
        elif case.probe is not None:
            problems += compare_translation(expected, case.probe, got)
    else:
        TALLY["refused"] += 1
        want = errno.EPERM if expected.reason == "not-in-parent" else errno.EINVAL
        TALLY[f"refused:{errno.errorcode[want]}"] += 1
        if got.errno != want:
            said = "accepted" if got.errno is None else errno.errorcode[got.errno]
            problems.append(f"kernel {said} (read back {got.readback!r}), validator refused "
                            f"[{expected.reason}] {expected.message}")
    if problems:
        DISAGREEMENTS.append(f"{data!r}: " + "; ".join(problems))
    assert not problems, f"{data!r}: " + "; ".join(problems)


def check(data: bytes, kernel: Kernel, pick: int = 0) -> None:
    """One case: validator, kernel, comparison.

    With a ``kernel`` running in a middle namespace, the validator gets its map as
    ``parent`` and the kernel must answer EPERM exactly where it says ``not-in-parent``.
    """
    case = plan(data, kernel.middle, pick)
    judge(case, kernel.write(data, case.probe))


def check_many(cases: list[tuple[bytes, int]], kernels: list[Kernel]) -> None:
    """Many cases, dealt round-robin to several servers and queued (no round trip per case):
    the servers work in parallel on a machine with more than one core."""
    plans = [plan(data, None, pick) for data, pick in cases]
    for i, case in enumerate(plans):
        kernels[i % len(kernels)].send(case.data, case.probe)
    answers = [kernels[i % len(kernels)].receive(case.data) for i, case in enumerate(plans)]
    for case, got in zip(plans, answers):
        judge(case, got)


def compare_translation(m: IDMap, probe: Probe, got: KernelAnswer) -> list[str]:
    TALLY["translated"] += 1
    problems = []
    overflow = overflow_ids()[0]
    hosts = [m.to_host(c, None) for c in probe.setresuid]
    if None in hosts:
        want_errno, want_status = errno.EINVAL, (0, 0, 0, 0)  # unchanged: still host root
    else:
        r, e, s = (int(h) for h in hosts if h is not None)
        want_errno, want_status = None, (r, e, s, e)  # fsuid follows euid
    TALLY["setresuid"] += 1
    if (got.setresuid_errno, got.status_uids) != (want_errno, want_status):
        problems.append(f"setresuid{probe.setresuid}: kernel {got.setresuid_errno} "
                        f"{got.status_uids}, model {want_errno} {want_status}")
    want_views = tuple(m.container_view(h, overflow) for h in probe.owners)
    TALLY["stat"] += len(want_views)
    if got.views != want_views:
        problems.append(f"owners {probe.owners} seen inside as {got.views}, container_view "
                        f"{want_views}")
    return problems


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with tempfile.TemporaryDirectory(prefix="userns-oracle-") as d:
        server = Kernel(Path(d))
        try:
            yield server
        finally:
            server.close()


@pytest.fixture(scope="module")
def kernels() -> Iterator[list[Kernel]]:
    """One server per CPU (at most 4), each with its own files."""
    with contextlib.ExitStack() as stack:
        servers = []
        for _ in range(max(min(len(os.sched_getaffinity(0)), 4), 1)):
            d = stack.enter_context(tempfile.TemporaryDirectory(prefix="userns-oracle-"))
            server = Kernel(Path(d))
            stack.callback(server.close)
            servers.append(server)
        yield servers


# -- the enumerated edge list -------------------------------------------------------------


def _lines(n: int, *, width: int = 0, start: int = 0) -> bytes:
    return b"".join(f"{i:0{width}d} {start + i} 1\n".encode() for i in range(n))


def _padded(body: bytes, size: int, pad: bytes = b" ") -> bytes:
    return body + pad * (size - len(body))


EDGES: list[bytes] = [
    # the seed examples
    b"0 231072 65536\n", b"0 231072 65536", b"0 200000 20\n20 250000 65516\n",
    # the ID space's ends
    b"0 0 4294967295", b"0 0 4294967294", b"1 1 4294967294", b"1 0 4294967294",
    b"4294967294 0 1", b"0 4294967294 1", b"4294967294 4294967294 1",
    b"4294967295 0 1", b"0 4294967295 1", b"4294967295 4294967295 1",
    b"1 0 4294967295", b"0 1 4294967295", b"4294967294 0 2", b"0 4294967294 2",
    b"4294967293 0 2", b"2147483648 2147483648 2147483647", b"2147483648 0 2147483648",
    # counts
    b"0 0 0", b"0 0 1", b"5 5 0\n", b"0 0 00000000000000000001",
    # fields of 2^32 or more (documented: the kernel truncates)
    b"0 4294967296 1", b"4294967296 0 1", b"0 0 4294967296", b"0 0 4294967297",
    b"0 18446744073709551616 1", b"0 18446744073709551617 1", b"0 18446744073709551615 1",
    b"4294968296 231072 65536", b"0 0 99999999999999999999999999",
    b"0 1000 1\n4294967296 1001 1",
    # NUL bytes (documented: the kernel stops reading)
    b"0 0 1\0junk", b"0 0 1\n\0", b"\0", b"0 0\0 1", b"0 0 1\n\0garbage\n", b"0 0 1\0\n1 1 1",
    # whitespace the kernel's isspace() knows
    b" 0 0 1", b"\t0\t0\t1\t", b"0\v0\f1\r", b"0\xa00\xa01", b"0 0 1\r\n", b"0 0 1 \n",
    b"0\r0\r1", b"\xa00 0 1\xa0", b"0  \t\v\f\r\xa0 0 1", b"0 0 1\n1 1 1\r\n",
    # and what it does not
    b"0\x850 1", b"0\xc2\xa00 1", b"0\x1c0 1", b"0\x000 1",
    # structure
    b"", b"\n", b"\n\n", b"0 0 1\n\n", b"\n0 0 1", b"0 0 1\n\n1 1 1", b"0 0", b"0",
    b"0 0 ", b"0 0 1 2", b"0 0 1 #", b"#0 0 1", b"0 0 1\n#", b"0,0,1", b"0 0 1x", b"0x1 0 1",
    b"-1 0 1", b"+1 0 1", b"0 -0 1", b"0 0 +1", b"1e3 0 1", b"0 0 1.0", b"\xd9\xa1 0 1",
    b"00 00 01", b"0 0 1\n ", b"0 0 1\n\t\n", b" \n0 0 1",
    # overlaps and touching
    b"0 100 10\n10 110 10", b"0 100 10\n9 200 10", b"0 100 10\n10 109 10",
    b"0 100 10\n0 100 10", b"10 110 10\n0 100 10", b"0 10 10\n10 0 10",
    b"0 100 10\n20 100 1", b"0 100 10\n20 109 1", b"0 100 10\n20 110 1",
    b"5 0 1\n0 5 10", b"0 0 4294967295\n0 0 1",
    # five and six extents: the kernel sorts only past five
    b"50 1 1\n40 2 1\n30 3 1\n20 4 1\n10 5 1\n",
    b"60 1 1\n50 2 1\n40 3 1\n30 4 1\n20 5 1\n10 6 1\n",
    b"60 1 1\n50 2 1\n40 3 1\n30 4 1\n20 5 1\n10 6 1\n55 1 1\n",
    # extent counts: 340 and 341 lines
    _lines(340), _lines(341), _lines(339) + b"339 339 1", _lines(340)[:-1],
    _lines(340) + b"\n", _lines(5), _lines(6), _lines(341)[:-1],
    # sizes: PAGE_SIZE - 1 and PAGE_SIZE bytes (4095, 4096), and padding of every kind
    _padded(b"0 0 1", PAGE_SIZE - 1), _padded(b"0 0 1", PAGE_SIZE),
    _padded(b"0 0 1", PAGE_SIZE - 2), _padded(b"0 0 1\n", PAGE_SIZE - 1, b"\t"),
    _padded(b"0 0 1", PAGE_SIZE - 1, b"\xa0"), _padded(b"0 0 1", PAGE_SIZE, b"\xa0"),
    _padded(b"0 0 1\0", PAGE_SIZE - 1), _padded(b"0 0 1\0", PAGE_SIZE),
    _padded(b"0 4294967296 1", PAGE_SIZE - 1), _padded(b"0 4294967296 1", PAGE_SIZE),
    _padded(b"0 0 1\n", PAGE_SIZE - 1, b"\n"),
    _lines(340, width=3), _lines(340, width=4), _lines(300, width=4, start=100000),
]


@pytest.mark.parametrize("data", EDGES, ids=[repr(e[:40]) for e in EDGES])
def test_edge_cases(data: bytes, kernel: Kernel) -> None:
    check(data, kernel, pick=len(data))


def test_edge_list_hits_the_limits() -> None:
    # The list really contains what its comments promise.
    assert {len(e) for e in EDGES} >= {PAGE_SIZE - 1, PAGE_SIZE}
    assert {e.count(b"\n") for e in EDGES} >= {340, 341}


# -- hypothesis ---------------------------------------------------------------------------

_WS = [b" ", b"\t", b"\v", b"\f", b"\r", b"\xa0"]
_INTERESTING = [0, 1, 2, 9, 10, 1000, 65535, 65536, 100000, 231072, 2**31 - 1, 2**31,
                4294967293, 4294967294, 4294967295, 4294967296, 4294967297, 2**33,
                2**64 - 1, 2**64, 2**64 + 1]
_JUNK = [b"-1", b"+1", b"0x10", b"abc", b"", b"1.5", b"#", b"\0", b"\x85", b"\xc2\xa0",
         b"1 2", b"\n"]


def ws(min_size: int) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(b" " * min_size),
        st.lists(st.sampled_from(_WS), min_size=min_size, max_size=3).map(b"".join),
    )


def values() -> st.SearchStrategy[int]:
    """IDs: mostly small (so that maps are often valid), the edges and beyond sometimes."""
    return st.one_of(st.integers(0, 300), st.integers(0, 300), st.integers(0, 2**32 - 1),
                     st.sampled_from(_INTERESTING), st.integers(0, 2**64 + 5))


def counts() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(1, 20), st.integers(1, 20), st.integers(1, 70000), values())


# Built once: a strategy built inside every draw costs hypothesis more than the kernel.
_WS0, _WS1, _VALUES, _COUNTS = ws(0), ws(1), values(), counts()
_NEAR_SIZES = st.one_of(st.integers(1, 12), st.integers(1, 12), st.sampled_from([0, 4294967295]))
_SHIFT = st.integers(-2, 2)
_JUNKS = st.sampled_from(_JUNK)
_SEPS = st.sampled_from([b"\n"] * 6 + [b"\r\n", b"\n\n"])
_PADS = st.sampled_from([*_WS, b"\n"])


@st.composite
def extents(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    """Triples, often placed against the previous one: touching, overlapping, or apart."""
    n = draw(st.integers(1, 7))
    out: list[tuple[int, int, int]] = []
    for _ in range(n):
        if out and bool(draw(st.booleans())):
            c, h, s = out[-1]
            shift_c = draw(_SHIFT)
            shift_h = draw(_SHIFT)
            size = draw(_NEAR_SIZES)
            out.append((max(c + s + shift_c, 0), max(h + s + shift_h, 0), size))
        else:
            out.append((draw(_VALUES), draw(_VALUES), draw(_COUNTS)))
    return out


@st.composite
def map_texts(draw: st.DrawFn) -> bytes:
    """Map texts, mostly well-formed, with whitespace variants, leading zeros, and now and
    then junk, blank lines, NUL bytes or a CRLF."""
    triples = draw(extents())
    lines = []
    for c, h, s in triples:
        fields = [str(v).encode() for v in (c, h, s)]
        if draw(st.integers(0, 9)) == 0:
            i = draw(st.integers(0, 2))
            fields[i] = b"0" * draw(st.integers(1, 3)) + fields[i]
        line = (draw(_WS0) + fields[0] + draw(_WS1) + fields[1] + draw(_WS1) + fields[2]
                + draw(_WS0))
        if draw(st.integers(0, 11)) == 0:
            at = draw(st.integers(0, len(line)))
            line = line[:at] + draw(_JUNKS) + line[at:]
        lines.append(line)
    sep = draw(_SEPS)
    text = sep.join(lines)
    if draw(st.booleans()):
        text += b"\n"
    return text


@st.composite
def long_texts(draw: st.DrawFn) -> bytes:
    """Many lines near the 340-extent and 4096-byte limits, sometimes with one overlap."""
    n = draw(st.integers(330, 345))
    width = draw(st.integers(0, 4))
    base = draw(st.sampled_from([0, 100000, 4294967294 - 400]))
    rows = [[i, base + i, 1] for i in range(n)]
    if draw(st.booleans()):
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        rows[i][1] = rows[j][1]  # an overlap on the host side (none when i == j)
    text = b"".join(f"{c:0{width}d} {h} {s}\n".encode() for c, h, s in rows)
    if draw(st.booleans()):
        text = text[:-1]
    return text


@st.composite
def sized_texts(draw: st.DrawFn) -> bytes:
    """A short map padded with whitespace to just under, at and over PAGE_SIZE."""
    body = draw(map_texts())
    size = draw(st.integers(PAGE_SIZE - 3, PAGE_SIZE + 1))
    pad = draw(_PADS)
    return body + pad * max(size - len(body), 0)


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])


@pytest.mark.slow
@_SETTINGS
@given(data=map_texts(), pick=st.integers(0, 1000))
def test_random_maps_agree_with_the_kernel(data: bytes, pick: int, kernel: Kernel) -> None:
    check(data, kernel, pick)


@pytest.mark.slow
@settings(_SETTINGS, max_examples=max(EXAMPLES // 6, 20))
@given(data=long_texts())
def test_long_maps_agree_with_the_kernel(data: bytes, kernel: Kernel) -> None:
    check(data, kernel, len(data))


@pytest.mark.slow
@settings(_SETTINGS, max_examples=max(EXAMPLES // 6, 20))
@given(data=sized_texts())
def test_page_sized_maps_agree_with_the_kernel(data: bytes, kernel: Kernel) -> None:
    check(data, kernel, len(data))


@pytest.mark.slow
@settings(_SETTINGS, max_examples=max(EXAMPLES // 4, 20))
@given(data=st.binary(max_size=40))
def test_arbitrary_bytes_agree_with_the_kernel(data: bytes, kernel: Kernel) -> None:
    check(data, kernel)


# -- volume: many texts per hypothesis example, from a seeded generator ---------------------

_SPECIAL = [0, 4294967294, 4294967295, 4294967296, 4294967297, 2**33 + 5, 2**64 + 1]


def random_map_text(rng: random.Random) -> bytes:
    """A map text from the same grammar as :func:`map_texts`, drawn from ``rng``: a valid
    layout (container blocks in order, host blocks permuted, gaps or touching) placed low,
    high or at the top of the ID space, then now and then broken: an overlap on one side,
    a special value, junk, a NUL; whitespace, zeros and line ends varied throughout."""
    n = rng.choice([1, 1, 2, 3, 5, 6, 7, rng.randint(1, 12)])
    sizes = [rng.choice([1, rng.randint(1, 20), rng.randint(1, 70000)]) for _ in range(n)]
    gaps = [rng.choice([0, 0, 1, rng.randint(0, 1000)]) for _ in range(2 * n)]
    cs, c = [], 0
    for i in range(n):
        cs.append(c)
        c += sizes[i] + gaps[i]
    hs, h = [0] * n, 0
    for i in rng.sample(range(n), n):
        hs[i] = h
        h += sizes[i] + gaps[n + i]
    top = 4294967295
    c_off = rng.choice([0, rng.randint(0, 100000), max(top - c - rng.randint(0, 2), 0)])
    h_off = rng.choice([0, 231072, rng.randint(0, 2**31), max(top - h - rng.randint(0, 2), 0)])
    rows = [[cs[i] + c_off, hs[i] + h_off, sizes[i]] for i in range(n)]
    rng.shuffle(rows)
    roll = rng.random()
    if roll < 0.15 and n > 1:  # overlap one side by a little
        a, b = rng.sample(range(n), 2)
        side = rng.randint(0, 1)
        rows[b][side] = rows[a][side] + rng.randint(-1, 1) * rng.choice([0, 1, rows[a][2]])
    elif roll < 0.25:
        rows[rng.randrange(n)][rng.randint(0, 2)] = rng.choice(_SPECIAL)
    text_rows = []
    for row in rows:
        fields = [str(max(v, 0)).encode() for v in row]
        if rng.random() < 0.05:
            k = rng.randint(0, 2)
            fields[k] = b"0" * rng.randint(1, 3) + fields[k]
        seps = [b"".join(rng.choice(_WS) for _ in range(rng.choice([1, 1, 1, 2, 3])))
                if rng.random() < 0.2 else b" " for _ in range(2)]
        lead = rng.choice(_WS) if rng.random() < 0.05 else b""
        trail = rng.choice(_WS) if rng.random() < 0.05 else b""
        text_rows.append(lead + fields[0] + seps[0] + fields[1] + seps[1] + fields[2] + trail)
    text = (b"\r\n" if rng.random() < 0.03 else b"\n").join(text_rows)
    if rng.random() < 0.7:
        text += b"\n"
    if rng.random() < 0.06:
        at = rng.randint(0, len(text))
        text = text[:at] + rng.choice(_JUNK) + text[at:]
    return text


@pytest.mark.slow
@settings(_SETTINGS, max_examples=max(EXAMPLES // 3, 10))
@given(seed=st.integers(0, 2**64))
def test_many_random_maps_agree_with_the_kernel(seed: int, kernels: list[Kernel]) -> None:
    # Hypothesis draws the seed (and prints it on failure); each text is printed whole.
    rng = random.Random(seed)
    check_many([(random_map_text(rng), rng.randint(0, 1000)) for _ in range(BATCH)], kernels)


# -- the parent rule: maps written from inside a middle namespace -------------------------


def middle_map(rng: random.Random) -> IDMap:
    """A middle namespace's uid map: 1-4 extents, gaps or none on both sides, host root
    in one of them (its process, still host uid 0, must be mapped to create namespaces)."""
    n = rng.randint(1, 4)
    sizes = [rng.choice([1, 2, rng.randint(1, 40)]) for _ in range(n)]
    cs, c = [], rng.choice([0, 0, rng.randint(0, 50)])
    for size in sizes:
        cs.append(c)
        c += size + rng.choice([0, 0, 1, rng.randint(0, 20)])
    hs, h = [0] * n, 0
    for i in rng.sample(range(n), n):
        hs[i] = h
        h += sizes[i] + rng.choice([0, 1, rng.randint(0, 100000)])
    return IDMap.from_triples(zip(cs, hs, sizes))


def child_text(rng: random.Random, parent: IDMap) -> bytes:
    """A grandchild map whose host IDs (the middle's IDs) sit at the middle's extent edges:
    inside, one past, one before, spanning two extents that touch or not."""
    edges = sorted({x for e in parent for x in (e.container, e.container + e.size)})
    rows, c = [], 0
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        start = max(rng.choice(edges) + rng.choice([-1, 0, 0, 1]), 0)
        size = rng.choice([1, 1, 2, rng.randint(1, 50)])
        rows.append(f"{c} {start} {size}")
        c += size + rng.randint(0, 3)
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.slow
@settings(_SETTINGS, max_examples=max(EXAMPLES // 15, 5))
@given(seed=st.integers(0, 2**64))
def test_parent_rule_agrees_with_the_kernel(seed: int) -> None:
    rng = random.Random(seed)
    parent = middle_map(rng)
    with tempfile.TemporaryDirectory(prefix="userns-oracle-") as d:
        server = Kernel(Path(d), middle=parent)
        TALLY["middles"] += 1
        try:
            for _ in range(BATCH):
                check(child_text(rng, parent), server)
        finally:
            server.close()


def test_parent_rule_edges() -> None:
    # Two extents touching inside (container 0-9 and 10-19) but apart outside.
    parent = IDMap.from_triples([(0, 0, 10), (10, 100000, 10)])
    with tempfile.TemporaryDirectory(prefix="userns-oracle-") as d:
        server = Kernel(Path(d), middle=parent)
        TALLY["middles"] += 1
        try:
            for text in (b"0 0 10", b"0 0 11", b"0 9 2", b"0 10 10", b"0 10 11", b"0 20 1",
                         b"0 0 10\n10 10 10", b"0 5 1\n1 15 1", b"0 0 4294967295",
                         b"0 0 10\n10 9 1", b"0 4294967296 1", b"0 4294967306 1"):
                check(text, server)
        finally:
            server.close()


def test_model_of_the_deviations() -> None:
    # The model itself: a NUL ends the text, every field is taken mod 2^32.
    assert kernel_model(b"0 4294967296 1\0junk") == b"0 0 1"
    assert kernel_model(b"0 18446744073709551617 1") == b"0 1 1"
    assert kernel_model(b"0 0 1x99999999999") == b"0 0 1x1215752191"
