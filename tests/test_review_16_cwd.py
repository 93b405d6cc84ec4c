"""Review of the worker processes that move their working directory into each directory
they list (``walk.own_cwd``, ``walk._Names``): they must see what a walk in one process
sees, error for error.

``fchdir`` needs search (execute) permission on the directory, which opening and
listing it do not: a directory that is readable but not searchable (mode 0644, say) can
be opened and listed by its owner, but not entered. A walk in one process records the
``EACCES`` of each entry's ``stat`` and goes on; a worker must do the same, not fail.
(Root has ``CAP_DAC_READ_SEARCH`` and never sees this; a user auditing a tree of their
own, or root on an NFS export with root squashing, does.)
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Any

import pytest

from userns import IDMap, IDMapPair
from userns.errors import UsernsError
from userns.shift import audit_tree, shift_tree

from .test_shift_trees import need_root

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))

PAIR = IDMapPair(IDMap.single(0, 100000, 65536), IDMap.single(0, 100000, 65536))
USER = 4242  # an unprivileged owner of the whole tree


def unsearchable_tree(tmp_path: Path) -> Path:
    """A tree owned by :data:`USER` with one directory it may read but not search."""
    root = tmp_path / "t"
    (root / "ro").mkdir(parents=True)
    (root / "ok").mkdir()
    (root / "ro" / "f").write_text("x")
    (root / "ok" / "g").write_text("y")
    for p in (root, root / "ro", root / "ok", root / "ro" / "f", root / "ok" / "g"):
        os.chown(p, USER, USER)
    (root / "ro").chmod(0o644)
    return root


def as_user(root: Path, what: str, workers: int, *, xattrs: bool = True) -> dict[str, Any]:
    """Run ``audit_tree`` or ``shift_tree`` on ``root`` as :data:`USER` in a child
    process (entered by ``fchdir`` before dropping root, since the test's temporary
    directory is not searchable by others) and return what it gave."""
    codecs.lookup("ascii")  # (the codecs a shift loads, before the interpreter's own
    # files may be out of reach of the unprivileged child)
    r, w = os.pipe()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            os.fchdir(fd)
            os.setgroups([])
            os.setgid(USER)
            os.setuid(USER)
            try:
                if what == "audit":
                    rep = audit_tree(".", PAIR, workers=workers, xattrs=xattrs,
                                     journal="/proc/self/cwd/.journal")
                    out: dict[str, Any] = {"state": rep.state, "entries": rep.entries,
                                           "errors": sorted((e.path, e.operation, e.reason)
                                                            for e in rep.errors)}
                else:
                    srep = shift_tree(".", PAIR, workers=workers, policy="skip",
                                      journal="/proc/self/cwd/.journal")
                    out = {"entries": srep.entries, "complete": srep.complete,
                           "errors": sorted((e.path, e.operation, e.reason)
                                            for e in srep.errors)}
            except UsernsError as exc:
                report = getattr(exc, "report", None)
                out = {"raised": type(exc).__name__, "reason": exc.reason,
                       "message": str(exc).splitlines()[0],
                       "errors": sorted((e.path, e.operation, e.reason)
                                        for e in getattr(report, "errors", ()))}
            os.write(w, json.dumps(out).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    os.close(fd)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert status == 0, data
    got: dict[str, Any] = json.loads(data)
    return got


def test_one_process_audit_records_the_unsearchable_directory(tmp_path: Path) -> None:
    """The reference: one process lists ``ro``, cannot ``stat`` its entry, says so."""
    got = as_user(unsearchable_tree(tmp_path), "audit", 1)
    assert got["errors"] == [["./ro/f", "stat", "EACCES"]]
    assert got["entries"] == 4  # the root, ok, ok/g, ro


def test_two_worker_audit_records_the_same_error_as_one_process(tmp_path: Path) -> None:
    root = unsearchable_tree(tmp_path)
    one = as_user(root, "audit", 1)
    two = as_user(root, "audit", 2)
    assert two == one


def test_two_worker_audit_owners_only_is_unaffected(tmp_path: Path) -> None:
    """Without the xattr reading there is no ``fchdir``: the split walk agrees."""
    root = unsearchable_tree(tmp_path)
    one = as_user(root, "audit", 1, xattrs=False)
    assert one["errors"] == [["./ro/f", "stat", "EACCES"]]
    assert as_user(root, "audit", 2, xattrs=False) == one


def test_two_worker_shift_stops_at_the_same_path_error_as_one_process(
        tmp_path: Path) -> None:
    one = as_user(unsearchable_tree(tmp_path / "a"), "shift", 1)
    two = as_user(unsearchable_tree(tmp_path / "b"), "shift", 2)
    # one process: the shift stops at ro/f's stat (it cannot chown anything anyway)
    assert one.get("reason") != "worker-failed"
    assert two.get("reason") == one.get("reason")
    # Each worker stops at its own first error: the other one may have met another
    # path first (here a chown refused to this unprivileged user), so the errors of
    # two workers hold those of one process, and perhaps one more.
    assert {tuple(e) for e in one["errors"]} <= {tuple(e) for e in two["errors"]}
    assert len(two["errors"]) <= 2
