"""userns.kernel against the running kernel: maps read and written in real user namespaces,
commands run remapped, and the userns-remap demonstration (host files seen from a
remapped container root)."""

from __future__ import annotations

import contextlib
import ctypes
import doctest
import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from userns import (
    Extent,
    IDMap,
    IDMapPair,
    InvalidMapError,
    UnmappedIDError,
    format_proc,
    validate_map_write,
)
from userns._kernel_spawn import ChildFailure, NamespaceChild, Report
from userns.formats.proc import format_proc_padded
from userns.kernel import (
    PROC_USER_INIT_INO,
    HelperMissingError,
    KernelError,
    MapWriteError,
    NamespaceSetupError,
    in_initial_userns,
    overflow_ids,
    own_maps,
    read_map,
    read_maps,
    read_setgroups,
    run_in_userns,
    userns_inode,
    write_map,
    write_setgroups,
)

REMAP = IDMap.single(0, 231072, 65536)  # dockremap:231072:65536
IDENTITY = IDMap.identity()


def _wait_forever(report: Report) -> NoReturn:  # never runs: the holder is never told go
    os._exit(0)


def _probe() -> str | None:
    try:
        NamespaceChild(_wait_forever).abort()
    except ChildFailure as f:
        why = os.strerror(f.errno or 0)
        return f"user namespaces unavailable here: unshare(CLONE_NEWUSER): {why}"
    return None


_UNAVAILABLE = _probe()
needs_userns = pytest.mark.skipif(_UNAVAILABLE is not None, reason=_UNAVAILABLE or "")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (CAP_SETUID over the initial namespace) to write "
    "arbitrary maps")
pytestmark = [pytest.mark.kernel]


@contextlib.contextmanager
def fresh_namespace() -> Iterator[int]:
    """A child process alone in a new user namespace with no maps yet; its pid."""
    child = NamespaceChild(_wait_forever)
    try:
        yield child.pid
    finally:
        child.abort()


@contextlib.contextmanager
def shared_tempdir() -> Iterator[Path]:
    """A root-owned 0755 directory the remapped users can reach (pytest's tmp_path is under
    a 0700 directory that an unmapped-root container cannot traverse)."""
    with tempfile.TemporaryDirectory(prefix="userns-test-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


def capture(argv: list[str], maps: IDMapPair, **kw: object) -> tuple[int, str]:
    """Run and return (exit status, stdout+stderr)."""
    with tempfile.TemporaryFile() as out:
        code = run_in_userns(argv, maps, stdout=out.fileno(), stderr=out.fileno(),
                             **kw)  # type: ignore[arg-type]
        out.seek(0)
        return code, out.read().decode()


# -- reading ------------------------------------------------------------------------------


@needs_userns
def test_own_maps_match_the_proc_text() -> None:
    for kind in ("uid", "gid"):
        with open(f"/proc/self/{kind}_map") as f:
            text = f.read()
        assert read_map("self", kind) == validate_map_write(text)
    assert own_maps() == read_maps(os.getpid())


def test_overflow_ids_strip_the_newline(tmp_path: Path) -> None:
    kernel = tmp_path / "sys" / "kernel"
    kernel.mkdir(parents=True)
    (kernel / "overflowuid").write_text("65534\n")
    (kernel / "overflowgid").write_text("65533\n")
    assert overflow_ids(proc=str(tmp_path)) == (65534, 65533)


def test_overflow_ids_of_this_kernel() -> None:
    with open("/proc/sys/kernel/overflowuid") as f:
        expected = int(f.read())
    assert overflow_ids()[0] == expected


@needs_userns
@needs_root
def test_identity_map_does_not_make_the_initial_namespace() -> None:
    assert in_initial_userns() is (userns_inode()[1] == PROC_USER_INIT_INO)
    with fresh_namespace() as pid:
        write_map(pid, IDENTITY, "uid")
        # The child's map text equals the initial namespace's ...
        assert read_map(pid, "uid") == IDENTITY
        # ... but the namespace inode tells them apart.
        assert not in_initial_userns(pid)
        assert userns_inode(pid) != userns_inode()


@needs_userns
def test_unwritten_map_reads_empty() -> None:
    with fresh_namespace() as pid:
        assert read_map(pid, "uid") == IDMap()
        assert read_setgroups(pid) == "allow"


def test_read_map_rejects_a_bad_kind() -> None:
    with pytest.raises(ValueError, match="kind must be"):
        read_map("self", "projid")  # type: ignore[arg-type]


# -- writing ------------------------------------------------------------------------------


@needs_userns
@needs_root
def test_write_and_read_back_sorted_and_padded() -> None:
    # Seven extents listed out of order: the kernel sorts maps of more than 5 by container.
    m = IDMap([Extent(100 - 10 * i, 300000 + 1000 * i, 5) for i in range(7)])
    with fresh_namespace() as pid:
        installed = write_map(pid, m, "uid")
        with open(f"/proc/{pid}/uid_map") as f:
            raw = f.read()
    assert installed == validate_map_write(format_proc(m))
    assert [e.container for e in installed] == sorted(e.container for e in m)
    assert raw == format_proc_padded(installed)


@needs_userns
@needs_root
def test_five_extents_keep_their_order() -> None:
    m = IDMap([Extent(40 - 10 * i, 300000 + 1000 * i, 5) for i in range(5)])
    with fresh_namespace() as pid:
        write_map(pid, m, "uid")
        assert read_map(pid, "uid") == m


@needs_userns
@needs_root
def test_a_map_is_written_once() -> None:
    with fresh_namespace() as pid:
        write_map(pid, REMAP, "uid")
        with pytest.raises(MapWriteError) as info:
            write_map(pid, IDMap.single(0, 100000, 10), "uid")
        assert info.value.reason == "already-written"
        assert info.value.errno == errno.EPERM
        assert isinstance(info.value, OSError)
        assert read_map(pid, "uid") == REMAP


@needs_userns
@needs_root
def test_two_writes_install_only_the_first_line() -> None:
    """Why write_map makes ONE write(): a second write of a map is refused.

    On the same descriptor the kernel says EINVAL (its file offset is no longer 0); on a
    new one, EPERM (the map is written). Either way only the first line is installed.
    """
    with fresh_namespace() as pid:
        path = f"/proc/{pid}/uid_map"
        fd = os.open(path, os.O_WRONLY)
        try:
            assert os.write(fd, b"0 100000 10\n") == 12
            with pytest.raises(OSError) as same_fd:
                os.write(fd, b"10 200000 10\n")
        finally:
            os.close(fd)
        fd = os.open(path, os.O_WRONLY)
        try:
            with pytest.raises(OSError) as new_fd:
                os.write(fd, b"10 200000 10\n")
        finally:
            os.close(fd)
        assert (same_fd.value.errno, new_fd.value.errno) == (errno.EINVAL, errno.EPERM)
        assert read_map(pid, "uid") == IDMap.single(0, 100000, 10)


@needs_userns
@needs_root
def test_invalid_text_is_refused_before_writing() -> None:
    with fresh_namespace() as pid:
        with pytest.raises(InvalidMapError) as info:
            write_map(pid, "0 100 10\n5 200 10\n", "uid")
        assert info.value.reason == "overlap-container"
        assert info.value.location is not None
        assert info.value.location.path == f"/proc/{pid}/uid_map"
        assert read_map(pid, "uid") == IDMap()  # nothing written: a valid map still goes in
        assert write_map(pid, "0 100 10\n", "uid") == IDMap.single(0, 100, 10)


@needs_userns
@needs_root
def test_gid_map_and_setgroups() -> None:
    with fresh_namespace() as pid:
        write_map(pid, REMAP, "gid", setgroups="deny")
        assert read_setgroups(pid) == "deny"
        assert read_map(pid, "gid") == REMAP
        with pytest.raises(MapWriteError) as info:
            write_setgroups(pid, "allow")
        assert info.value.reason == "setgroups-after-gid-map"
        assert info.value.errno == errno.EPERM


@needs_userns
@needs_root
def test_explicit_parent_is_checked_before_writing() -> None:
    parent = IDMap.single(0, 100000, 1000)
    with fresh_namespace() as pid:
        with pytest.raises(InvalidMapError) as info:
            write_map(pid, "0 500 1000", "uid", parent=parent)
        assert info.value.reason == "not-in-parent"
        assert read_map(pid, "uid") == IDMap()


def test_gone_process() -> None:
    gone = 2**22 + 1  # above pid_max's hard limit
    with pytest.raises(MapWriteError) as info:
        write_map(gone, REMAP, "uid", parent=None)
    assert info.value.reason == "no-such-process"
    assert info.value.errno == errno.ENOENT
    with pytest.raises(KernelError) as read_info:
        read_map(gone, "gid")
    assert (read_info.value.reason, read_info.value.pid) == ("no-such-process", gone)
    assert str(read_info.value) == (f"cannot read /proc/{gone}/gid_map: No such file or "
                                    "directory (no such process?) [no-such-process]")


#: The middle namespace of the nested test: host root is its uid 1000, so that its
#: process (still host uid 0) may create a namespace inside it without changing IDs.
MIDDLE = IDMap([Extent(0, 100000, 1000), Extent(1000, 0, 1)])


@needs_userns
@needs_root
def test_parent_rule_in_a_nested_namespace() -> None:
    """A process in a namespace mapped ``0 100000 1000`` + ``1000 0 1`` creates grandchild
    namespaces and writes their maps: host IDs must lie inside ONE extent of its map, for
    the validator (``write_map``'s ``parent="auto"``) as for the kernel (EPERM)."""
    texts = ["0 0 1000\n", "0 500 1000\n", "0 999 2\n", "0 1000 1\n", "0 1001 1\n",
             "0 0 1\n1 1000 1\n"]
    res_r, res_w = os.pipe()

    def middle(report: Report) -> NoReturn:  # pragma: no cover - runs in the child
        os.close(res_r)
        lines = []
        for text in texts:
            with fresh_namespace() as gpid:
                try:
                    got = write_map(gpid, text, "uid")
                    lines.append(f"validator ok {format_proc(got).strip()!r}")
                except InvalidMapError as e:
                    lines.append(f"validator {e.reason}")
            with fresh_namespace() as gpid:
                fd = os.open(f"/proc/{gpid}/uid_map", os.O_WRONLY)
                try:
                    os.write(fd, text.encode())
                    got = read_map(gpid, "uid")
                    lines.append(f"kernel ok {format_proc(got).strip()!r}")
                except OSError as e:
                    lines.append(f"kernel {errno.errorcode[e.errno or 0]}")
                finally:
                    os.close(fd)
        os.write(res_w, "\n".join(lines).encode())
        os._exit(0)

    child = NamespaceChild(middle)
    os.close(res_w)
    try:
        write_map(child.pid, MIDDLE, "uid")
        write_map(child.pid, MIDDLE, "gid")
        child.go(until_exec=False)
        with os.fdopen(res_r) as f:
            out = f.read().splitlines()
    finally:
        assert os.waitstatus_to_exitcode(child.wait()) == 0
    assert out == [
        "validator ok '0 0 1000'", "kernel ok '0 0 1000'",
        "validator not-in-parent", "kernel EPERM",
        # 999 and 1000 are contiguous inside, but lie in two extents of the middle map.
        "validator not-in-parent", "kernel EPERM",
        "validator ok '0 1000 1'", "kernel ok '0 1000 1'",
        "validator not-in-parent", "kernel EPERM",
        "validator ok '0 0 1\\n1 1000 1'", "kernel ok '0 0 1\\n1 1000 1'",
    ]


@needs_userns
@needs_root
def test_unprivileged_writer_is_told_which_rule() -> None:
    """A process of uid/gid 4300 without capabilities writes its own child's maps."""
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(res_r)
            os.setgroups([])
            os.setresgid(4300, 4300, 4300)
            os.setresuid(4300, 4300, 4300)
            # setresuid made the process non-dumpable, and /proc/PID of its children root's.
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
            out = []
            with fresh_namespace() as ns:
                try:
                    write_map(ns, IDMap.single(0, 4300, 1), "gid", setgroups="allow")
                except MapWriteError as e:
                    out.append(f"{e.reason}: {e.message}")
                out.append(f"own uid: {write_map(ns, IDMap.single(0, 4300, 1), 'uid')!r}")
            with fresh_namespace() as ns:
                try:
                    write_map(ns, IDMap.single(0, 100000, 10), "uid")
                except MapWriteError as e:
                    out.append(f"{e.reason} {errno.errorcode[e.errno or 0]}")
            with fresh_namespace() as ns:
                write_map(ns, IDMap.single(0, 4300, 1), "gid")  # 'deny' written first
                out.append(f"own gid: setgroups {read_setgroups(ns)}")
            os.write(res_w, "\n".join(out).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(res_w)
    with os.fdopen(res_r) as f:
        out = f.read().splitlines()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert out[0].startswith("not-permitted: not permitted to write /proc/")
    assert out[0].endswith("without CAP_SETGID, 'deny' must be written to "
                           f"/proc/{out[0].split('/')[2]}/setgroups first (setgroups is 'allow')")
    assert out[1:] == [
        "own uid: IDMap([Extent(0, 4300, 1)])",
        "not-permitted EPERM",
        "own gid: setgroups deny",
    ]


def test_kernel_einval_after_validation_names_the_old_limit(tmp_path: Path) -> None:
    from userns import kernel

    six = "".join(f"{i} {i} 1\n" for i in range(6)).encode()
    err = kernel._explain_write_error(OSError(errno.EINVAL, "Invalid argument"), 1, "uid",
                                      "uid_map", str(tmp_path), six)
    assert err.reason == "kernel-refused"
    assert "kernels before Linux 4.15 take at most 5 lines" in str(err)


# -- running a command --------------------------------------------------------------------


@needs_userns
@needs_root
def test_run_passes_exit_status_and_output() -> None:
    pair = IDMapPair.both(REMAP)
    code, out = capture(["sh", "-c", "id -u; id -g; id -G; cat /proc/self/uid_map; exit 3"],
                        pair, uid=33, gid=34)
    assert code == 3
    lines = out.splitlines()
    assert lines[:3] == ["33", "34", "34"]  # supplementary groups dropped
    assert validate_map_write(lines[3] + "\n") == REMAP


@needs_userns
@needs_root
def test_run_reports_signals_like_a_shell() -> None:
    code, _ = capture(["sh", "-c", "kill -9 $$"], IDMapPair.both(REMAP))
    assert code == 128 + 9


@needs_userns
@needs_root
def test_run_host_sees_the_mapped_ids() -> None:
    with shared_tempdir() as d:
        (d / "own").mkdir()
        os.chown(d / "own", 231072, 231072)  # container root's directory
        script = (f"cd {d}/own && touch root-made user-made && chown 1000:1000 user-made && "
                  "stat -c '%n %u %g' root-made user-made")
        code, out = capture(["sh", "-c", script], IDMapPair.both(REMAP))
        assert (code, out) == (0, "root-made 0 0\nuser-made 1000 1000\n")
        seen = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in (d / "own").iterdir()}
        assert seen == {"root-made": (231072, 231072), "user-made": (232072, 232072)}


@needs_userns
@needs_root
def test_run_leaks_no_descriptor_and_restores_sigpipe(tmp_path: Path) -> None:
    # A host directory, on numbers ls itself will not use: must not reach the command.
    fd = os.open(tmp_path, os.O_RDONLY)
    leaked = os.dup2(fd, 250, inheritable=True)
    passed = os.dup2(fd, 251, inheritable=False)
    os.close(fd)
    try:
        code, out = capture(["sh", "-c", "ls /proc/self/fd; grep SigIgn /proc/self/status"],
                            IDMapPair.both(REMAP), pass_fds=[passed])
    finally:
        os.close(leaked)
        os.close(passed)
    assert code == 0
    lines = out.splitlines()
    fds = {int(x) for x in lines[:-1]}
    assert leaked not in fds and passed in fds and {0, 1, 2} <= fds
    ignored = int(lines[-1].split()[1], 16)
    assert not ignored & (1 << (13 - 1))  # SIGPIPE is 13: not ignored in the command


@needs_userns
def test_child_killed_before_go() -> None:
    child = NamespaceChild(_wait_forever)
    os.kill(child.pid, 9)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped yet
    with pytest.raises(ChildFailure) as info:
        child.go()
    assert info.value.stage == "wait"
    assert os.WTERMSIG(child.wait()) == 9


def test_run_refuses_unmapped_ids_before_starting() -> None:
    with pytest.raises(UnmappedIDError):
        run_in_userns(["true"], IDMapPair.both(REMAP), uid=70000)
    with pytest.raises(ValueError, match="argv is empty"):
        run_in_userns([], IDMapPair.both(REMAP))
    many = IDMap([Extent(i, i, 1) for i in range(341)])  # 341 short lines: < 4096 bytes
    with pytest.raises(InvalidMapError) as info:
        run_in_userns(["true"], IDMapPair(REMAP, many))
    assert info.value.reason == "too-many-extents"
    assert info.value.location is not None and info.value.location.path == "gid_map"


@needs_userns
@needs_root
def test_run_exec_and_chdir_failures(tmp_path: Path) -> None:
    with pytest.raises(NamespaceSetupError) as info:
        run_in_userns([str(tmp_path / "missing")], IDMapPair.both(IDENTITY))
    assert (info.value.reason, info.value.errno) == ("exec-failed", errno.ENOENT)
    # A bare name searched on a PATH whose first directory container root cannot search.
    with shared_tempdir() as d:
        (d / "closed").mkdir(mode=0o700)
        env = {"PATH": f"{d / 'closed'}:{d}"}
        with pytest.raises(NamespaceSetupError) as info:
            run_in_userns(["no-such-command"], IDMapPair.both(REMAP), env=env)
    assert (info.value.reason, info.value.errno) == ("exec-failed", errno.EACCES)
    assert "not found on PATH, or a PATH directory" in str(info.value)
    with pytest.raises(NamespaceSetupError) as info:
        run_in_userns(["true"], IDMapPair.both(IDENTITY), cwd=str(tmp_path / "missing"))
    assert (info.value.reason, info.value.errno) == ("chdir-failed", errno.ENOENT)


# -- the userns-remap demonstration ------------------------------------------------------

#: Stat a file, then try to create, append and delete in "$1", as the Docker docs show;
#: coreutils only (the remapped root cannot read a Python installed under a 0700 home).
_TRY = r"""
d=$1
stat -c 'owner %u %g' "$d/passwd"
attempt() {
    name=$1; shift
    if err=$("$@" 2>&1); then echo "$name ok"
    else case $err in *"Permission denied"*) echo "$name EACCES";; *) echo "$name $err";; esac
    fi
}
attempt create touch "$d/new"
attempt append sh -c 'echo more >> "$1"' sh "$d/passwd"
attempt delete rm -f "$d/shadow"
"""
ENV_C = {**os.environ, "LC_ALL": "C"}


@contextlib.contextmanager
def host_etc() -> Iterator[Path]:
    """A root-owned "host /etc": a 0755 directory with 0644 files."""
    with shared_tempdir() as d:
        etc = d / "etc"
        etc.mkdir(mode=0o755)
        for name in ("passwd", "shadow"):
            (etc / name).write_text("root:x:0:0:root:/root:/bin/sh\n")
            os.chmod(etc / name, 0o644)
        os.chown(etc, 0, 0)
        yield etc


@needs_userns
@needs_root
def test_userns_remap_container_root_cannot_touch_host_files() -> None:
    with host_etc() as etc:
        before = {p.name: p.stat() for p in etc.iterdir()}
        pair = IDMapPair.both(REMAP)
        code, out = capture(["sh", "-c", _TRY, "sh", str(etc)], pair, env=ENV_C)
        assert code == 0, out
        assert out.splitlines() == [
            "owner 65534 65534", "create EACCES", "append EACCES", "delete EACCES",
        ]
        code, listing = capture(["ls", "-ln", str(etc)], pair)
        assert code == 0
        owners = {tuple(line.split()[2:4]) for line in listing.splitlines()[1:]}
        assert owners == {("65534", "65534")}
        # Nothing changed on the host.
        after = {p.name: p.stat() for p in etc.iterdir()}
        assert after.keys() == before.keys()
        assert all(after[n].st_size == before[n].st_size for n in after)


@needs_userns
@needs_root
def test_userns_remap_identity_map_can() -> None:
    with host_etc() as etc:
        code, out = capture(["sh", "-c", _TRY, "sh", str(etc)], IDMapPair.both(IDENTITY),
                            env=ENV_C)
        assert code == 0, out
        assert out.splitlines() == ["owner 0 0", "create ok", "append ok", "delete ok"]
        assert sorted(p.name for p in etc.iterdir()) == ["new", "passwd"]
        assert (etc / "passwd").read_text().endswith("more\n")
        assert (etc / "new").stat().st_uid == 0


DOCS = Path(__file__).resolve().parent.parent / "docs"


def run_page_examples(page: str) -> int:
    """Run the ``pycon`` blocks of a docs page in one namespace; how many examples ran."""
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = re.findall(r"^```pycon\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert blocks, f"{page} has no example"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict[str, object] = {}
    attempted = 0
    for i, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, globs, f"{page}[{i}]", str(DOCS / page), 0)
        report: list[str] = []
        result = runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs
        attempted += result.attempted
        assert result.failed == 0, f"{page}: block {i} failed\n" + "".join(report)
    return attempted


@needs_userns
@needs_root
def test_remap_demo_page_runs() -> None:
    """The documented demonstration (docs/howto/remap-demo.md) runs as written."""
    assert run_page_examples("howto/remap-demo.md") >= 20


def test_kernel_reference_page_runs() -> None:
    assert run_page_examples("reference/kernel.md") >= 4


# -- unprivileged callers -----------------------------------------------------------------


def test_helper_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    from userns import kernel

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HelperMissingError) as info:
        kernel._helper_argv("uid", REMAP, 1234, str(tmp_path / "subuid"))
    assert info.value.reason == "no-newuidmap"
    assert "package 'uidmap'" in str(info.value)


def test_subuid_gap_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pwd

    from userns import kernel

    fake = tmp_path / "newuidmap"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    subuid = tmp_path / "subuid"
    uid = os.getuid()
    name = pwd.getpwuid(uid).pw_name
    subuid.write_text(f"{name}:231072:1000\nsomeone-else:232072:64536\n")
    with pytest.raises(HelperMissingError) as info:
        kernel._helper_argv("uid", REMAP, 1234, str(subuid))
    assert info.value.reason == "no-subuid-range"
    assert str(info.value) == (
        "newuidmap: uid range [0-65536) -> [231072-296608) not allowed: "
        f"{subuid} does not give host uids 231072-296607 to user {name!r} (uid {uid}); add "
        f"them with 'usermod --add-subuids 231072-296607 {name}' (a line "
        f"'{name}:231072:65536') [no-subuid-range]")
    # Adjacent lines of the same owner are spanned, as shadow does.
    subuid.write_text(f"{name}:231072:1000\n{uid}:232072:64536\n")
    argv = kernel._helper_argv("uid", REMAP, 1234, str(subuid))
    assert argv == [str(fake), "1234", "0", "231072", "65536"]
    # Mapping one's own ID needs no delegation.
    own = IDMap.single(0, uid, 1)
    assert kernel._helper_argv("uid", own, 1234, str(tmp_path / "x"))[1:] == [
        "1234", "0", str(uid), "1"]


#: Runs as the unprivileged test user: the helper path, the own-ID path, and a refusal.
_UNPRIVILEGED = r"""
import os, sys, tempfile
sys.path.insert(0, sys.argv[1])
from userns import IDMap, IDMapPair
from userns.kernel import HelperMissingError, effective_capabilities, run_in_userns

def run(pair, script):
    with tempfile.TemporaryFile() as out:
        code = run_in_userns(["sh", "-c", script], pair, stdout=out.fileno())
        out.seek(0)
        return [code, *out.read().decode().split()]

print("caps", effective_capabilities())
show = "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups"
print("helper", *run(IDMapPair.both(IDMap.single(0, 231072, 65536)), show))
print("own", *run(IDMapPair.both(IDMap.single(0, os.getuid(), 1)), show))
try:
    run_in_userns(["true"], IDMapPair.both(IDMap.single(0, 300000, 10)))
except HelperMissingError as e:
    print("refused", e.reason, e)
"""


@needs_userns
@needs_root
def test_run_as_an_unprivileged_user_through_newuidmap(tmp_path: Path) -> None:
    """An ordinary user (uid 4300, no capability over IDs) runs a remapped command: the maps
    go in through the real newuidmap/newgidmap and /etc/subuid, /etc/subgid, which are
    bind-mounted in a private mount namespace (the machine's /etc is not touched)."""
    for tool in ("newuidmap", "newgidmap", "unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages uidmap, util-linux, mount)")
    user, uid = "nsrun", 4300
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(f"root:x:0:0::/root:/bin/sh\n{user}:x:{uid}:{uid}::/:/bin/sh\n")
    (etc / "group").write_text(f"root:x:0:\n{user}:x:{uid}:\n")
    for name in ("subuid", "subgid"):
        (etc / name).write_text(f"{user}:231072:65536\n")
    mounts = " && ".join(f"mount --bind {etc / name} /etc/{name}"
                         for name in ("passwd", "group", "subuid", "subgid"))
    src = str(Path(__file__).resolve().parent.parent / "src")
    # CAP_DAC_READ_SEARCH only lets the user read the interpreter wherever it is installed;
    # it gives nothing over IDs (run_in_userns looks for CAP_SETUID/SETGID/SETFCAP).
    setpriv = (f"setpriv --reuid {uid} --regid {uid} --clear-groups "
               "--inh-caps +dac_read_search --ambient-caps +dac_read_search")
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         f'{mounts} && cd / && exec {setpriv} "$0" -c "$1" "$2"',
         sys.executable, _UNPRIVILEGED, src],
        capture_output=True, text=True, timeout=120, env={**os.environ, "LC_ALL": "C"},
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()}
    assert lines["caps"] == [str(1 << 2)]  # CAP_DAC_READ_SEARCH alone
    # exit status, id -u, id -g, uid_map, gid_map, setgroups
    assert lines["helper"] == ["0", "0", "0", "0", "231072", "65536",
                               "0", "231072", "65536", "allow"]
    assert lines["own"] == ["0", "0", "0", "0", str(uid), "1", "0", str(uid), "1", "deny"]
    assert lines["refused"][0] == "no-subuid-range"
    assert " ".join(lines["refused"][1:]) == (
        "newuidmap: uid range [0-10) -> [300000-300010) not allowed: /etc/subuid does not give "
        f"host uids 300000-300009 to user '{user}' (uid {uid}); add them with 'usermod "
        f"--add-subuids 300000-300009 {user}' (a line '{user}:300000:10') [no-subuid-range]")
