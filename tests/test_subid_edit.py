"""Safe edits: lossless text, shadow's lock, backup, owner and mode, crash safety."""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import random
import signal
import subprocess
import sys

import pytest

import userns.subid.edit as edit_mod
from userns import IDRange
from userns.subid import (
    LockError,
    SubidFile,
    add_subid_range,
    edit_subid_file,
    lock_file,
    remove_subid_range,
)

#: every owner these tests add: the writers refuse owners that passwd does not know.
KNOWN = ("alice", "bob", "carol", "dave", "a", "b", "x7", "u7", "tail")


@pytest.fixture(autouse=True)
def _passwd_beside(tmp_path: pathlib.Path) -> None:
    """A passwd file next to the tests' subid files (where the writers look for it)."""
    (tmp_path / "passwd").write_text(
        "".join(f"{n}:x:{1000 + i}:{1000 + i}::/:/bin/sh\n" for i, n in enumerate(KNOWN)))


MESSY = (
    b"# managed by hand\n"
    b"\n"
    b"alice:100000:65536   \n"  # trailing blanks (shadow skips this line)
    b"bob:165536:65536\n"
    b"+nis\n"
    b"\xff\xfe not utf-8\n"
    b"carol:231072:65536"  # no final newline
)


def test_add_is_lossless(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "subuid"
    p.write_bytes(MESSY)
    new = add_subid_range(p, "dave", IDRange(296608, 65536))
    assert p.read_bytes() == MESSY + b"\ndave:296608:65536\n"
    assert new.to_bytes() == p.read_bytes()
    assert (tmp_path / "subuid-").read_bytes() == MESSY
    assert not (tmp_path / "subuid+").exists() and not (tmp_path / "subuid.lock").exists()


def test_remove_splits_and_keeps_other_lines(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "subuid"
    p.write_bytes(MESSY)
    remove_subid_range(p, "bob", IDRange(170000, 10))
    want = MESSY.replace(b"bob:165536:65536\n", b"bob:165536:4464\n") + b"\nbob:170010:61062\n"
    assert p.read_bytes() == want
    ids = SubidFile.read(p).ranges_for("bob")
    assert sum(r.size for r in ids) == 65536 - 10


def test_unchanged_edit_writes_nothing(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "subuid"
    p.write_bytes(MESSY)
    before = p.stat()
    got = add_subid_range(p, "bob", IDRange(170000, 10))  # bob already holds it
    assert got.to_bytes() == MESSY
    assert p.stat().st_ino == before.st_ino and p.stat().st_mtime_ns == before.st_mtime_ns
    assert not (tmp_path / "subuid-").exists()


def test_missing_file(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "subgid"
    with pytest.raises(FileNotFoundError):
        add_subid_range(p, "a", IDRange(100000, 65536))
    add_subid_range(p, "a", IDRange(100000, 65536), missing_ok=True)
    assert p.read_bytes() == b"a:100000:65536\n"
    assert p.stat().st_mode & 0o777 == 0o644


def test_symlink_is_refused(tmp_path: pathlib.Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"a:1:1\n")
    link = tmp_path / "subuid"
    link.symlink_to(real)
    with pytest.raises(Exception, match="not a regular file"):
        add_subid_range(link, "b", IDRange(5, 5))
    assert real.read_bytes() == b"a:1:1\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another owner needs root")
def test_owner_and_mode_are_kept(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "subuid"
    p.write_bytes(b"a:100000:65536\n")
    os.chown(p, 1234, 5678)
    os.chmod(p, 0o640)
    add_subid_range(p, "b", IDRange(165536, 65536))
    for name in ("subuid", "subuid-"):
        st = (tmp_path / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o640), name


def test_lock_file_has_shadows_format(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "subuid"
    p.write_bytes(b"")
    with lock_file(p):
        assert (tmp_path / "subuid.lock").read_bytes() == f"{os.getpid()}\0".encode()
        assert not (tmp_path / f"subuid.{os.getpid()}").exists()
    assert not (tmp_path / "subuid.lock").exists()


def test_live_lock_blocks_and_stale_lock_is_taken_over(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "subuid"
    p.write_bytes(b"a:1:1\n")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "subuid.lock").write_bytes(f"{holder.pid}\0".encode())
        with pytest.raises(LockError) as info:
            edit_subid_file(p, lambda f: f.add_range("b", IDRange(5, 5)), tries=2, delay=0)
        assert info.value.reason == "locked" and isinstance(info.value, OSError)
    finally:
        holder.kill()
        holder.wait()
    # The holder is dead now: its lock is stale and is taken over.
    edit_subid_file(p, lambda f: f.add_range("b", IDRange(5, 5)), tries=1, delay=0)
    assert p.read_bytes() == b"a:1:1\nb:5:5\n"
    assert not (tmp_path / "subuid.lock").exists()


def test_lock_without_pid_is_an_error(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "subuid"
    p.write_bytes(b"")
    (tmp_path / "subuid.lock").write_bytes(b"garbage")
    with pytest.raises(LockError) as info:
        edit_subid_file(p, lambda f: f, tries=1, delay=0)
    assert info.value.reason == "lock-failed"


STEPS = ["read", "backup", "backup-write", "backup-fsync", "new", "new-write", "new-fsync",
         "rename", "dir-fsync", "unlock"]


class Injected(Exception):
    pass


@pytest.mark.parametrize("step", STEPS)
def test_failure_at_each_step_leaves_old_or_new(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    old, new = MESSY, MESSY + b"\ndave:296608:65536\n"
    p = tmp_path / "subuid"
    p.write_bytes(old)
    seen: list[str] = []

    def fail_at(name: str) -> None:
        seen.append(name)
        if name == step:
            raise Injected(name)

    monkeypatch.setattr(edit_mod, "_checkpoint", fail_at)
    with pytest.raises(Injected):
        add_subid_range(p, "dave", IDRange(296608, 65536))
    assert step in seen
    renamed = STEPS.index(step) > STEPS.index("rename")
    assert p.read_bytes() == (new if renamed else old)
    # The lock is released on every failure except one in the release itself.
    assert (tmp_path / "subuid.lock").exists() == (step == "unlock")


def _writer_loop(path: str, a: bytes, b: bytes) -> None:
    fa, fb = SubidFile.parse(a), SubidFile.parse(b)
    while True:
        edit_subid_file(path, lambda f: fb if f.text == fa.text else fa, tries=10000,
                        delay=0.0005)


def test_killed_writer_never_leaves_a_torn_file(tmp_path: pathlib.Path) -> None:
    """SIGKILL a writer that flips the file between two texts, at random moments."""
    a = b"".join(f"u{i}:{100000 + i * 65536}:65536\n".encode() for i in range(300))
    b = b"# header\n" + a.replace(b"u7:", b"x7:") + b"tail:1:1\n"
    p = tmp_path / "subuid"
    p.write_bytes(a)
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(1)
    states: dict[str, int] = {}
    for _ in range(30):
        child = ctx.Process(target=_writer_loop, args=(str(p), a, b))
        child.start()
        child.join(rng.uniform(0.005, 0.15))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        data = p.read_bytes()
        assert data in (a, b), "torn file"
        key = ("a" if data == a else "b") + ("+lock" if (tmp_path / "subuid.lock").exists()
                                             else "")
        states[key] = states.get(key, 0) + 1
        # Whatever the kill left (a stale lock, a subuid+ file), the next edit works.
        edit_subid_file(p, lambda f: f, tries=3, delay=0.001)
    assert sum(states.values()) == 30
    print("kill outcomes:", states, "leftover subuid+:", (tmp_path / "subuid+").exists())


def test_missing_directory_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    from userns.errors import UsernsError
    from userns.ranges import IDRange
    from userns.subid import add_subid_range

    target = tmp_path / "nowhere" / "subuid"
    with pytest.raises(UsernsError) as info:
        add_subid_range(target, "alice", IDRange(100000, 65536), missing_ok=True)
    assert info.value.reason == "no-directory"
    assert str(info.value) == (f"cannot write {target}: the directory {target.parent} does "
                               "not exist [no-directory]")
