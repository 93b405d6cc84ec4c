"""Owner names: one validator, used by every writer; a refusal changes no byte."""

from __future__ import annotations

import os
import pathlib
import pickle
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from userns import IDRange, InvalidOwnerError
from userns.subid import (
    Accounts,
    PasswdEntry,
    SubidFile,
    UnknownOwnerWarning,
    add_subid_range,
    allocate_many,
    check_owner,
    edit_subid_file,
    lint,
    owner_problem,
    shadow_add_range,
    shadow_useradd,
    shadow_usermod,
)

#: (owner, rule): the issue's hostile names and one per rule.
HOSTILE = [
    ("evil\nroot:0:65536\nx", "control-character"),
    ("bad:name", "colon"),
    ("", "empty"),
    (" alice", "whitespace"),
    ("alice ", "whitespace"),
    ("al ice", "whitespace"),
    ("alice\r", "control-character"),
    ("ali\x00ce", "control-character"),
    ("ali\tce", "control-character"),
    ("ali\x7fce", "control-character"),
    ("#alice", "comment-or-nis"),
    ("+alice", "comment-or-nis"),
    ("-alice", "comment-or-nis"),
    ("alicé", "non-ascii"),
    ("ali\u2028ce", "whitespace"),
    ("a" * 256, "too-long"),
    ("01000", "bad-uid"),
    ("4294967295", "bad-uid"),
    ("..", "dot-name"),
    ("a,b", "reserved-character"),
    ("a/b", "reserved-character"),
    ("a@b", "not-portable"),
    ("a$b", "not-portable"),
]
GOOD = ["alice", "dockremap", "A-b_c.d", "_x", ".hidden", "machine$", "1000", "0",
        "a" * 255, "4294967294"]


@pytest.mark.parametrize(("owner", "rule"), HOSTILE)
def test_each_rule_refuses_with_its_code(owner: str, rule: str) -> None:
    problem = owner_problem(owner)
    assert problem is not None and problem[0] == rule
    with pytest.raises(InvalidOwnerError) as info:
        check_owner(owner)
    err = info.value
    assert (err.reason, err.rule, err.owner) == ("invalid-owner", rule, owner)
    assert repr(owner) in err.message  # the offending text, escaped
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.reason, copy.rule, copy.owner, str(copy)) == (err.reason, rule, owner, str(err))


@pytest.mark.parametrize("owner", GOOD)
def test_good_names_pass(owner: str) -> None:
    assert owner_problem(owner) is None and check_owner(owner) == owner


def test_badname_relaxes_only_the_portable_rule() -> None:
    assert owner_problem("a@b", badname=True) is None
    assert owner_problem("a$b", badname=True) is None
    for owner, rule in HOSTILE:
        if rule != "not-portable":
            assert owner_problem(owner, badname=True) is not None, owner


# -- every writer refuses ---------------------------------------------------------------

BASE = SubidFile.parse("# keep\nalice:100000:65536\n")
WRITERS: dict[str, Callable[[str], object]] = {
    "SubidFile.add_range": lambda o: BASE.add_range(o, IDRange(300000, 10)),
    "SubidFile.add_ranges": lambda o: BASE.add_ranges([("bob", IDRange(1, 1)),
                                                       (o, IDRange(5, 5))]),
    "shadow_useradd": lambda o: shadow_useradd(BASE, o),
    "shadow_add_range": lambda o: shadow_add_range(BASE, o, 300000, 10),
    "shadow_usermod": lambda o: shadow_usermod(BASE, o, add=[IDRange(300000, 10)]),
    "allocate_many": lambda o: allocate_many(BASE, ["bob", o]),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("owner", ["evil\nroot:0:65536\nx", "bad:name", "", " x", "+x"])
def test_every_pure_writer_refuses(writer: str, owner: str) -> None:
    with pytest.raises(InvalidOwnerError):
        WRITERS[writer](owner)


def _etc(tmp_path: pathlib.Path, users: list[str]) -> pathlib.Path:
    (tmp_path / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\n"
        + "".join(f"{u}:x:{1000 + i}:{1000 + i}::/:/bin/sh\n" for i, u in enumerate(users)))
    (tmp_path / "group").write_text("root:x:0:\n")
    for name in ("subuid", "subgid"):
        (tmp_path / name).write_bytes(b"# hand-made\nalice:100000:65536\n")
    return tmp_path


def _snapshot(d: pathlib.Path) -> dict[str, tuple[bytes, int, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
            for p in sorted(d.iterdir())}


@pytest.mark.parametrize(("owner", "rule"), HOSTILE)
def test_file_writers_refuse_and_change_no_byte(tmp_path: pathlib.Path, owner: str,
                                                rule: str) -> None:
    etc = _etc(tmp_path, ["alice"])
    before = _snapshot(etc)
    with pytest.raises(InvalidOwnerError) as info:
        add_subid_range(etc / "subuid", owner, IDRange(300000, 65536))
    assert info.value.rule == rule
    # Neither flag lets a broken name through (badname relaxes only "not-portable").
    with pytest.raises(InvalidOwnerError):
        add_subid_range(etc / "subgid", owner, IDRange(300000, 65536),
                        allow_unknown_owner=True, badname=rule != "not-portable")
    assert _snapshot(etc) == before  # no backup, no lock, no temp file; mtimes kept


def test_edit_subid_file_refuses_lines_a_change_smuggles_in(tmp_path: pathlib.Path) -> None:
    etc = _etc(tmp_path, ["alice", "bob"])
    before = _snapshot(etc)
    injected = lambda f: SubidFile.parse(f.text + "bob:1:1\nevil x:5:5\n")  # noqa: E731
    with pytest.raises(InvalidOwnerError) as info:
        edit_subid_file(etc / "subuid", injected)
    assert info.value.rule == "whitespace"
    unreadable = lambda f: SubidFile.parse(f.text + "bob:0x10:5\n")  # noqa: E731
    with pytest.raises(ValueError, match="hexadecimal"):
        edit_subid_file(etc / "subuid", unreadable)
    assert _snapshot(etc) == before
    # An owner already in the file may be trimmed and re-split (legacy names included).
    (etc / "subuid").write_bytes(b"legacy@name:100:100\n")
    edit_subid_file(etc / "subuid", lambda f: f.remove_range("legacy@name", IDRange(120, 10)))
    assert (etc / "subuid").read_bytes() == b"legacy@name:100:20\nlegacy@name:130:70\n"


def test_unknown_owner_needs_the_flag_and_is_warned_about(tmp_path: pathlib.Path) -> None:
    etc = _etc(tmp_path, ["alice"])
    before = _snapshot(etc)
    with pytest.raises(InvalidOwnerError) as info:
        add_subid_range(etc / "subuid", "ghost", IDRange(300000, 65536))
    assert info.value.reason == "unknown-owner"
    assert str(etc / "passwd") in info.value.message
    with pytest.raises(InvalidOwnerError):
        add_subid_range(etc / "subuid", "1001", IDRange(300000, 65536))  # no such uid
    assert _snapshot(etc) == before
    with pytest.warns(UnknownOwnerWarning, match="ghost"):
        add_subid_range(etc / "subuid", "ghost", IDRange(300000, 65536),
                        allow_unknown_owner=True)
    assert (etc / "subuid").read_bytes().endswith(b"\nghost:300000:65536\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known name, or a known uid: no warning
        add_subid_range(etc / "subgid", "alice", IDRange(300000, 65536))
        add_subid_range(etc / "subgid", "1000", IDRange(400000, 65536))


# -- the property ---------------------------------------------------------------------

_CHARS = st.sampled_from(list("abcXYZ019_.-$@:#+,/ \t\n\r\x00\x7f\u00e9\u2028\x85"))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(_CHARS, max_size=12), st.text(max_size=8)))
@example("evil\nroot:0:65536\nx")
@example("bad:name")
@example("a" * 255)
def test_any_owner_is_refused_or_reads_back_cleanly(tmp_path: pathlib.Path,
                                                    owner: str) -> None:
    """For any text: refused (no byte changes) or written, re-read as the same owner,
    with no new lint finding. The owner is given a passwd entry, so only its text counts."""
    d = pathlib.Path(tempfile.mkdtemp(dir=tmp_path))
    base = b"# hand-made\nalice:100000:65536\n"
    (d / "subuid").write_bytes(base)
    accounts = Accounts([PasswdEntry("alice", 1000, 1000), PasswdEntry(owner, 2000, 2000)])
    before = _snapshot(d)
    try:
        add_subid_range(d / "subuid", owner, IDRange(300000, 65536), accounts=accounts,
                        badname=True)
    except InvalidOwnerError:
        assert _snapshot(d) == before
        return
    new = SubidFile.read(d / "subuid")
    assert new.text.encode() == base + f"{owner}:300000:65536\n".encode()
    assert [(e.owner, e.start, e.count) for e in new.entries][-1] == (owner, 300000, 65536)
    assert [r.owner for r in new.shadow_records][-1] == owner
    assert [line.docker.owner for line in new.lines if line.docker][-1] == owner
    old_findings = {(f.reason, f.severity) for f in lint(SubidFile.parse(base),
                                                          accounts=accounts)}
    new_findings = {(f.reason, f.severity) for f in lint(new, accounts=accounts)}
    assert new_findings <= old_findings, new_findings - old_findings


# -- against the real useradd ------------------------------------------------------------

USERADD = shutil.which("useradd") or ("/usr/sbin/useradd"
                                       if os.path.exists("/usr/sbin/useradd") else None)


@pytest.mark.skipif(USERADD is None, reason="useradd (Debian passwd) missing")
@pytest.mark.skipif(os.geteuid() != 0, reason="useradd --prefix needs root")
def test_names_we_accept_useradd_accepts(tmp_path: pathlib.Path) -> None:
    """Every name the strict rule accepts (up to Debian's 32 characters), useradd makes;
    the hard rules refuse names that Debian's useradd also refuses."""
    assert USERADD is not None
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\n")
    (etc / "login.defs").write_text("")
    accepted = [n for n in GOOD if not n.isdigit() and len(n) <= 32]
    accepted += ["Upper", "x.y-z", "_", "a-", "z$"]
    for name in accepted:
        assert owner_problem(name) is None
        run = subprocess.run([USERADD, "--prefix", str(tmp_path), "-M", name],
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, (name, run.stderr)
    for name in ["x y", "+x", "-x", "a:b", "a,b", "a\nb"]:
        assert owner_problem(name, badname=True) is not None
        run = subprocess.run([USERADD, "--prefix", str(tmp_path), "-M", name],
                             capture_output=True, text=True, check=False)
        assert run.returncode != 0, name


# -- the CLI -------------------------------------------------------------------------------


def _cli(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from userns.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("owner", "rule"), HOSTILE)
def test_cli_allocate_write_refuses_and_changes_neither_file(tmp_path: pathlib.Path,
                                                             owner: str, rule: str) -> None:
    import json

    (tmp_path / "etc").mkdir()
    etc = _etc(tmp_path / "etc", ["alice"])
    before = _snapshot(etc)
    code, out, err = _cli("allocate", "--root", str(tmp_path), "--write", "--", owner)
    assert code == 1 and "[invalid-owner]" in err and "Traceback" not in err
    code, out, _ = _cli("allocate", "--root", str(tmp_path), "--write", "--json",
                        "--allow-unknown-owner", "--", owner)
    doc = json.loads(out)
    assert (code, doc["ok"], doc["error"]["reason"]) == (1, False, "invalid-owner")
    assert _snapshot(etc) == before


def test_cli_allocate_unknown_owner(tmp_path: pathlib.Path) -> None:
    import json

    (tmp_path / "etc").mkdir()
    etc = _etc(tmp_path / "etc", ["alice"])
    before = _snapshot(etc)
    code, _, err = _cli("allocate", "ghost", "--root", str(tmp_path), "--write")
    assert code == 1 and "[unknown-owner]" in err
    assert _snapshot(etc) == before
    code, out, _ = _cli("allocate", "ghost", "--root", str(tmp_path))  # no --write: warned
    assert code == 0 and "warning: 'ghost' has no passwd entry" in out
    code, out, _ = _cli("allocate", "ghost", "--root", str(tmp_path), "--write", "--json",
                        "--allow-unknown-owner")
    doc = json.loads(out)
    assert code == 0 and doc["written"] and "ghost" in doc["warnings"][0]
    for name in ("subuid", "subgid"):
        assert (etc / name).read_bytes().endswith(b"\nghost:165536:65536\n")
    code, _, err = _cli("allocate", "a@b", "--root", str(tmp_path), "--write",
                        "--allow-unknown-owner")
    assert code == 1 and "not-portable" not in err and "--badname" in err
    code, _, _ = _cli("allocate", "a@b", "--root", str(tmp_path), "--write", "--badname",
                      "--allow-unknown-owner")
    assert code == 0
