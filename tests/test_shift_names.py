"""How a walker lists an entry's extended attribute names: through ``listxattrat`` in the
caller's process, by bare name from the directory it moved into in a worker process that
owns its working directory (``own_cwd``). Both must give the same bytes, never follow a
symlink, and a descriptor other than the one entered falls back to ``listxattrat``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from userns.shift import walk

from .test_shift_trees import need_root, need_tool, run

pytestmark = [
    pytest.mark.skipif(need_root() is not None, reason=str(need_root())),
    pytest.mark.skipif(need_tool("setfacl") is not None, reason=str(need_tool("setfacl"))),
]

# The start of a child process's code (it moves its working directory): a and b open.
HEAD = """
import json, os, sys
from userns.shift import walk
a, b = sys.argv[1], sys.argv[2]
walk.own_cwd()
names = walk._Names()
fa = os.open(a, os.O_RDONLY | os.O_DIRECTORY)
fb = os.open(b, os.O_RDONLY | os.O_DIRECTORY)
"""
CHILD = HEAD + """
out = {"cwd_mode": names.cwd}
names.enter(fa)
out["here"] = os.getcwd() == os.path.realpath(a)
for n in sorted(os.listdir(a)):
    out["a/" + n] = names.names(fa, n).decode("utf-8", "surrogateescape")
# not entered: listxattrat on b, though the working directory is a
for n in sorted(os.listdir(b)):
    out["b/" + n] = names.names(fb, n).decode("utf-8", "surrogateescape")
out["cwd_after"] = os.getcwd() == os.path.realpath(a)
print(json.dumps(out))
"""


def test_bare_names_in_a_worker_give_what_listxattrat_gives(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for d in (a, b):
        (d / "acl").write_text("")
        run("setfacl", "-m", "u:1000:r", str(d / "acl"))
        (d / "plain").write_text("")
        os.symlink("acl", d / "link")  # its target has an ACL: not followed
        (d / "caf\udcff").write_text("")  # a name that is not UTF-8
        os.setxattr(d / "caf\udcff", "user.x", b"1")
        (d / "many").write_text("")  # names longer than the first buffer (256 bytes)
        for i in range(20):
            os.setxattr(d / "many", f"user.a-rather-long-attribute-name-{i:02d}", b"")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(a), str(b)],
                          capture_output=True, text=True, check=True)
    got = json.loads(proc.stdout)
    assert got.pop("cwd_mode") is True and got.pop("here") and got.pop("cwd_after")
    # the same answers, from listxattrat in this process (which never moves its cwd)
    mine = walk._Names()
    assert mine.cwd is False
    want = {}
    for d in (a, b):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for n in sorted(os.listdir(d)):
                want[f"{d.name}/{n}"] = mine.names(fd, n).decode("utf-8", "surrogateescape")
        finally:
            os.close(fd)
    assert got == want
    assert got["a/acl"] == "system.posix_acl_access\0"
    assert got["a/link"] == "" and got["a/plain"] == ""
    assert got["a/caf\udcff"] == "user.x\0"
    assert sorted(got["a/many"].split("\0")) == sorted(
        ["", *(f"user.a-rather-long-attribute-name-{i:02d}" for i in range(20))])


# A descriptor closed through the cache and its number reused for another directory:
# the bare-name listing must not answer from the old working directory.
REUSE = """
import json, os, sys
from userns.shift import walk
a, b = sys.argv[1], sys.argv[2]
walk.own_cwd()
names = walk._Names()
cache = walk._DirCache(4, names.forget)
fa = os.open(a, os.O_RDONLY | os.O_DIRECTORY)
names.enter(fa)
cache._close(fa)  # (as an eviction does)
fb = os.open(b, os.O_RDONLY | os.O_DIRECTORY)
print(json.dumps({"reused": fb == fa, "here": names.here,
                  "acl": names.names(fb, "acl").decode()}))
"""


def test_a_closed_and_reused_descriptor_is_not_taken_for_the_working_directory(
        tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "acl").write_text("")
    (b / "acl").write_text("")
    run("setfacl", "-m", "u:1000:r", str(a / "acl"))  # only a's has an ACL
    proc = subprocess.run([sys.executable, "-c", REUSE, str(a), str(b)],
                          capture_output=True, text=True, check=True)
    got = json.loads(proc.stdout)
    assert got == {"reused": True, "here": -1, "acl": ""}


def test_an_unreadable_attribute_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # (the walk's error line shows strerror: "examine: Invalid argument" said nothing of
    # which attribute, the ACL or the capability, could not be read)
    import errno

    def refuse(*args: object, **kwargs: object) -> bytes:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "getxattr", refuse)
    for target in (3, "/proc/self/fd/3/f"):
        with pytest.raises(OSError) as got:
            walk._reader(target)("system.posix_acl_access")
        assert got.value.errno == errno.EINVAL
        assert got.value.strerror == "Invalid argument (reading system.posix_acl_access)"


LISTING = HEAD + """
names.enter(fa)
out = {}
for tag, fd in (("a", fa), ("b", fb)):  # (b is not entered: the working directory is a)
    with names.scandir(fd) as it:
        out[tag] = sorted((e.name, e.stat(follow_symlinks=False).st_ino) for e in it)
print(json.dumps(out))
"""


def test_a_worker_lists_the_directory_it_entered_as_dot_and_others_by_descriptor(
        tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        for n in ("same", "other"):
            (d / n).write_text(str(d))  # same names, other inodes
    proc = subprocess.run([sys.executable, "-c", LISTING, str(a), str(b)],
                          capture_output=True, text=True, check=True)
    got = json.loads(proc.stdout)
    for tag, d in (("a", a), ("b", b)):
        assert got[tag] == sorted([n, os.lstat(d / n).st_ino] for n in ("same", "other"))


@pytest.mark.skipif(need_tool("strace") is not None, reason=str(need_tool("strace")))
def test_a_worker_lists_a_directory_without_duplicating_its_descriptor(
        tmp_path: Path) -> None:
    # Listing through a descriptor costs a dup, a look at its flags and a rewind before
    # closing (fcntl, fcntl, fcntl, lseek); a worker lists the directory it moved into
    # as "." instead: 60 directories, no fcntl per directory.
    root = tmp_path / "t"
    for i in range(60):
        (root / f"d{i}").mkdir(parents=True)
        (root / f"d{i}" / "f").write_text("")
    code = ("import sys; from userns import IDMap, IDMapPair; from userns.shift import "
            "audit_tree; audit_tree(sys.argv[1], IDMapPair.both(IDMap.single(0, 100000, "
            "65536)), workers=2)")
    out = tmp_path / "trace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=fcntl", "-o", str(out),
                    sys.executable, "-c", code, str(root)], check=True, capture_output=True)
    dups = [c for c in out.read_text().splitlines() if "F_DUPFD" in c]
    assert len(dups) < 10, dups[:10]
