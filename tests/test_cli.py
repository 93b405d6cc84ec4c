"""The ``userns`` command, through ``main()`` and through real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from userns.cli import detect_format, main

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_example_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "explain", "--example")
    assert code == 0, err
    assert "container 0…65535  ->  host 231072…296607  (65536 IDs)" in out
    assert "      33 -> 231105 / 231105" in out
    assert "       0 -> 65534 / 65534" in out  # host root seen inside
    assert "/var/lib/docker/231072.231072" in out
    assert "/proc/PID/uid_map:\n  0 231072 65536\n" in out
    assert "podman: the same maps" in out
    assert "lint (dockremap): no findings" in out


def test_explain_example_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "--example", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["docker"]["uid_map"] == [[0, 231072, 65536]]
    assert data["data_root_path"] == "/var/lib/docker/231072.231072"
    assert {"container": 33, "host_uid": 231105, "host_gid": 231105} in data["translations"]
    assert {"host": 0, "inside_uid": 65534, "inside_gid": 65534} in data["host_views"]
    assert data["uid_map_text"] == "0 231072 65536\n"
    assert data["comparison"]["user"] == "dockremap"


def make_root(tmp_path: Path, subuid: str, subgid: str | None = None) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir(parents=True)
    (etc / "subuid").write_text(subuid)
    (etc / "subgid").write_text(subgid if subgid is not None else subuid)
    (etc / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nseb:x:1000:1000::/home/seb:/bin/sh\n"
        "jonas:x:1001:1001::/home/jonas:/bin/sh\n"
    )
    (etc / "group").write_text("root:x:0:\nseb:x:1000:\njonas:x:1001:\n")
    return tmp_path


def test_explain_seb_from_root_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "seb:1000:1\nseb:100000:65536\n", "seb:982:1\nseb:100000:65536\n")
    code, out, err = run(capsys, "explain", "--user", "seb", "--root", str(root), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["docker"]["uid_map"] == [[0, 1000, 1], [1, 100000, 65536]]
    assert data["docker"]["gid_map"] == [[0, 982, 1], [1, 100000, 65536]]
    assert {"container": 33, "host_uid": 100032, "host_gid": 100032} in data["translations"]
    assert {"host": 1000, "inside_uid": 0, "inside_gid": 65534} in data["host_views"]
    assert data["data_root_path"] == "/var/lib/docker/1000.982"


def test_explain_docker_podman_order_difference(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "jonas:100000:1000\njonas:200000:65536\njonas:1000:1\n")
    code, out, _ = run(capsys, "explain", "--user", "jonas", "--root", str(root))
    assert code == 0
    assert "podman (uid and gid maps differ)" in out


def test_explain_no_entry_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "")
    code, out, _ = run(capsys, "explain", "--user", "seb", "--root", str(root))
    assert code == 1
    assert "no user namespace:" in out


def test_translate(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "translate", "--map", "0 231072 65536", "0", "33")[:2] == (
        0, "0 -> 231072\n33 -> 231105\n")
    assert run(capsys, "translate", "--map", "0:231072:65536", "--view", "0", "231105")[:2] == (
        0, "0 -> 65534  (overflow: not mapped)\n231105 -> 33\n")
    code, out, _ = run(capsys, "translate", "--map", "u0:k231072:r65536", "--to-container",
                       "--json", "5")
    assert code == 1
    assert json.loads(out)["results"] == [{"id": 5, "result": None, "mapped": False}]


def test_translate_map_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "uid_map"
    f.write_text("         0     200000         20\n        20     250000      65516\n")
    code, out, _ = run(capsys, "translate", "--map", f"@{f}", "0", "19", "20")
    assert (code, out) == (0, "0 -> 200000\n19 -> 200019\n20 -> 250000\n")


@pytest.mark.parametrize(
    ("src", "to", "expected"),
    [
        ("0:100000:65536", "oci", '[{"containerID": 0, "hostID": 100000, "size": 65536}]\n'),
        ("0 100000 65536", "lxc", "lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n"),
        ("0 100000 65536", "kernel", "u0:k100000:r65536\n"),
        ("0 100000 65536", "nspawn", "--private-users=100000:65536\n"),
        ("0 100000 65536", "crio",
         "private:uidmapping=0:100000:65536;gidmapping=0:100000:65536\n"),
        ("PrivateUsers=100000", "podman", "0:100000:65536\n"),
        ('io.kubernetes.cri-o.userns-mode: "private:uidmapping=0:100000:65536"', "proc",
         "0 100000 65536\n"),
    ],
)
def test_convert(capsys: pytest.CaptureFixture[str], src: str, to: str, expected: str) -> None:
    code, out, err = run(capsys, "convert", "--to", to, src)
    assert code == 0, err
    assert out == expected


def test_convert_round_trip_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    from userns.formats.registry import FORMATS

    two = "0 100000 65536\n65536 300000 10\n"
    for name in sorted(FORMATS):
        code, out, err = run(capsys, "convert", "--from", "proc", "--to", name, two)
        if FORMATS[name].writes_any or name == "crio":  # CRI-O writes any map, both kinds
            assert code == 0, (name, err)
            code, back, err = run(capsys, "convert", "--from", name, "--to", "proc", out)
            assert (code, back) == (0, two), (name, err)
        else:  # nspawn: one range from 0, so the two-extent map is refused, saying why
            assert (code, out) == (1, ""), name
            assert err.startswith(f"userns: error: {name}'s ") and "[not-expressible]" in err
            code, out, _ = run(capsys, "convert", "--from", "proc", "--to", name, "--json", two)
            assert code == 1
            assert json.loads(out)["error"]["reason"] == "not-expressible"


def test_convert_side_to_a_restricted_format(capsys: pytest.CaptureFixture[str]) -> None:
    # --side uid leaves the groups unmapped: neither CRI-O nor nspawn can say that.
    for name in ("crio", "nspawn"):
        code, out, err = run(capsys, "convert", "--to", name, "--side", "uid", "0 1000 1")
        assert (code, out) == (1, ""), name
        assert "[not-expressible]" in err
    code, out, _ = run(capsys, "convert", "--to", "proc", "--side", "gid",
                       "private:uidmapping=0:1000:1;gidmapping=0:2000:1")
    assert (code, out) == (0, "0 2000 1\n")


def test_check_map_refusal_has_caret(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--map", "0 0 1\n0 5 1")
    assert code == 1
    assert out == (
        "<input>:2:1: line 2 ('0 5 1') overlaps line 1 ('0 0 1') on the container side "
        "[overlap-container]\n    0 5 1\n    ^~~~~\n"
    )
    code, out, _ = run(capsys, "check", "--map", "0 4294967296 1", "--json")
    assert code == 1
    assert json.loads(out)["error"]["reason"] == "field-too-large"
    code, out, _ = run(capsys, "check", "--map", "0 0 4294967295")
    assert code == 0 and out.startswith("ok: the kernel would install 1 extent(s)")
    code, out, _ = run(capsys, "check", "--map", "0 500 10", "--parent", "0 0 100\n100 9000 900")
    assert code == 0
    code, out, _ = run(capsys, "check", "--map", "0 50 100", "--parent", "0 0 100\n100 9000 900")
    assert code == 1 and "[not-in-parent]" in out


def test_check_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "seb:100000:65536\njonas:165535:65536\n")
    code, out, _ = run(capsys, "check", "--root", str(root), "--json")
    assert code == 1
    reasons = {f["reason"] for f in json.loads(out)["findings"]}
    assert "overlap" in {r.split("-")[0] for r in reasons}
    clean = make_root(tmp_path / "clean", "seb:100000:65536\njonas:165536:65536\n")
    code, out, _ = run(capsys, "check", "--root", str(clean))
    assert code == 0, out


def test_allocate_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "seb:100000:65536\n")
    code, out, _ = run(capsys, "allocate", "jonas", "--root", str(root))
    assert (code, out.splitlines()[0]) == (0, "subuid: jonas:165536:65536   ([165536, 231072))")
    assert (root / "etc" / "subuid").read_text() == "seb:100000:65536\n"  # nothing written
    code, out, _ = run(capsys, "allocate", "jonas", "--root", str(root), "--write", "--json")
    assert code == 0
    assert json.loads(out)["ranges"]["gid"] == {"start": 165536, "count": 65536}
    assert (root / "etc" / "subuid").read_text() == "seb:100000:65536\njonas:165536:65536\n"
    assert (root / "etc" / "subuid-").read_text() == "seb:100000:65536\n"
    code, _, err = run(capsys, "allocate", "jonas", "--root", str(root))
    assert code == 1 and "already has subuid ranges" in err


def test_usage_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "translate", "0")[0] == 2
    assert run(capsys, "nonsense")[0] == 2
    assert run(capsys)[0] == 2
    code, _, err = run(capsys, "translate", "--map", "junk", "0")
    assert code == 1
    assert err.startswith("userns: error: cannot tell the format of 'junk'")
    assert "Traceback" not in err
    code, _, err = run(capsys, "translate", "--map", "@/nonexistent/map", "0")
    assert code == 1 and "cannot read /nonexistent/map" in err
    assert run(capsys, "--version")[0] == 0


def test_debug_shows_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--debug", "translate", "--map", "junk", "0")
    assert code == 1
    assert "Traceback (most recent call last)" in err


def test_detect_format() -> None:
    assert detect_format("lxc.idmap = u 0 1 2") == "lxc"
    assert detect_format("both 1000 1000") == "incus"
    assert detect_format("u0:k1:r2") == "kernel"
    assert detect_format("u:0:1:2") == "xmount"
    assert detect_format('{"linux": {}}') == "oci-config"
    assert detect_format("PrivateUsers=524288:65536") == "nspawn"
    assert detect_format("auto:size=65536") == "crio"


def cli(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        [sys.executable, "-m", "userns", *argv], capture_output=True, text=True, timeout=120,
        **kw)
    return done


def test_subprocess_explain_and_exit_codes() -> None:
    p = cli("explain", "--example")
    assert p.returncode == 0 and "231072.231072" in p.stdout and p.stderr == ""
    p = cli("translate", "--map", "0 1 1", "x")
    assert p.returncode == 2 and "not a base-10 ID: 'x'" in p.stderr
    p = cli("convert", "--to", "podman", input="0 100000 65536\n")
    assert (p.returncode, p.stdout) == (0, "0:100000:65536\n")


def test_subprocess_broken_pipe() -> None:
    p = subprocess.run(f"{sys.executable} -m userns explain --example | head -1",
                       shell=True, capture_output=True, text=True, timeout=120)
    assert p.stdout.startswith("Docker --userns-remap=default")
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


needs_root = pytest.mark.skipif(not IS_ROOT, reason="chown of arbitrary IDs needs root")


@needs_root
def test_shift_audit_unshift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    f = tree / "d" / "f"
    f.write_text("x")
    os.chown(f, 33, 33)
    os.chmod(f, 0o4755)  # after chown, which clears setuid
    code, out, err = run(capsys, "shift", str(tree), "--map", "0 231072 65536", "--dry-run")
    assert code == 0, err
    assert os.stat(f).st_uid == 33 and "(dry run, nothing changed): 3 entries" in out
    assert "uid 33 -> 231105: 1" in out and "uid 0 -> 231072: 2" in out
    code, out, _ = run(capsys, "shift", str(tree), "--map", "0 231072 65536", "--json")
    assert code == 0 and json.loads(out)["changed"] == 3
    st = os.stat(f)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (231105, 231105, 0o4755)
    code, out, _ = run(capsys, "audit", str(tree), "--map", "0 231072 65536", "--json")
    assert code == 0 and json.loads(out)["state"] == "shifted"
    code, out, _ = run(capsys, "unshift", str(tree), "--map", "0 231072 65536")
    assert code == 0
    assert (os.stat(f).st_uid, os.stat(tree).st_uid) == (33, 0)


@needs_root
def test_shift_unmapped_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("")
    os.chown(tree / "a", 70000, 0)
    code, _, err = run(capsys, "shift", str(tree), "--map", "0 231072 65536")
    assert code == 1 and "70000" in err and "Traceback" not in err
    assert os.stat(tree / "a").st_uid == 70000 and os.stat(tree).st_uid == 0  # nothing changed
    code, out, _ = run(capsys, "shift", str(tree), "--map", "0 231072 65536", "--dry-run")
    assert code == 1  # the dry run says what the real run would do: stop
    assert "a real run with --policy error would stop" in out
    code, _, _ = run(capsys, "shift", str(tree), "--map", "0 231072 65536", "--policy", "skip")
    assert code == 0
    assert (os.stat(tree / "a").st_uid, os.stat(tree).st_uid) == (70000, 231072)
    code, out, _ = run(capsys, "shift", str(tree), "--map", "0 231072 65536", "--policy", "skip")
    assert code == 0 and "already complete" in out
    assert (os.stat(tree / "a").st_uid, os.stat(tree).st_uid) == (70000, 231072)


@needs_root
def test_shift_refuses_a_symlinked_root(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    code, _, err = run(capsys, "shift", str(tmp_path / "link"), "--map", "0 231072 65536")
    assert code == 1 and "symbolic link" in err
    assert os.stat(tmp_path / "real").st_uid == 0


@needs_root
def test_run_in_remapped_namespace() -> None:
    if not os.path.exists("/proc/self/ns/user"):
        pytest.skip("no user namespaces on this kernel")
    p = cli("run", "--map", "0 231072 65536", "--", "sh", "-c",
            "id -u; stat -c %u /; exit 7")
    assert p.returncode == 7, p.stderr
    assert p.stdout.split() == ["0", "65534"]
    p = cli("run", "--map", "0 231072 65536", "--", "/no/such/command")
    assert p.returncode == 127 and "Traceback" not in p.stderr, p.stderr
    p = cli("run", "--map", "5 231072 1", "--", "true")
    assert p.returncode == 1 and "--uid 0 (the ID to run as inside) is not mapped" in p.stderr


@needs_root
@pytest.mark.skipif(shutil.which("script") is None, reason="script(1) (bsdutils) not installed")
def test_progress_bar_draws_under_a_pty(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(200):
        d = tree / f"d{i}"
        d.mkdir()
        for j in range(100):
            (d / f"f{j}").touch()
    cmd = f"{sys.executable} -m userns shift {tree} --map '0 231072 65536'"
    env = dict(os.environ, COLUMNS="100", TERM="xterm-256color")
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "━" in p.stdout  # rich's bar, drawn only on a terminal
    assert "shift" in p.stdout and "20201" in p.stdout
    plain = cli("audit", str(tree), "--map", "0 231072 65536")
    assert "━" not in plain.stdout + plain.stderr


def test_review_fixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "seb:100000:65536\n")
    # --align without --count takes SUB_UID_COUNT (65536) from login.defs' defaults.
    code, out, err = run(capsys, "allocate", "jonas", "--root", str(root), "--align", "65536")
    assert code == 0, err
    assert out.splitlines()[0] == "subuid: jonas:196608:65536   ([196608, 262144))"
    # IDs are 0…4294967294, base-10 digits only.
    for bad in ("4294967295", "4294967296", "1_000", "\uff10", "-1", "0x10"):
        assert run(capsys, "translate", "--map", "0 1 1", bad)[0] == 2, bad
    assert run(capsys, "translate", "--map", "0 1 1", "--view", "--overflow",
               "4294967295", "0")[0] == 2
    # A --root without etc/, an explicit file that is missing: errors, not empty files.
    code, _, err = run(capsys, "check", "--root", str(tmp_path / "nowhere"))
    assert code == 1 and "there is no" in err
    code, _, err = run(capsys, "explain", "--subuid", str(tmp_path / "nope"))
    assert code == 1 and "no such file" in err
    # Usage errors exit 2, also when found after parsing.
    assert run(capsys, "run", "--map", "0 1 1")[0] == 2
    assert run(capsys, "explain", "--example", "--root", str(root))[0] == 2
    # convert names its own option; --debug also after the command name.
    code, _, err = run(capsys, "convert", "--to", "proc", "x")
    assert code == 1 and "say it with --from" in err
    code, _, err = run(capsys, "translate", "--debug", "--map", "junk", "0")
    assert code == 1 and "Traceback" in err
    # A kind the input does not hold is an error, not empty output.
    oci = '{"linux": {"uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}}'
    code, out, err = run(capsys, "convert", "--to", "proc", "--kind", "gid", oci)
    assert (code, out) == (1, "") and "has no gid map" in err
    # --json errors are JSON too.
    code, out, _ = run(capsys, "translate", "--json", "--map", "junk", "0")
    assert code == 1
    assert json.loads(out)["error"]["reason"] == "unknown-format"
    # Comments before an lxc config do not hide its format.
    assert detect_format("# a container\nlxc.idmap = u 0 1 2\n") == "lxc"
    code, _, err = run(capsys, "translate", "--map", "", "0")
    assert code == 1 and "the map is empty" in err


def test_explain_numeric_user_is_resolved_for_every_runtime(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path, "seb:100000:65536\n")
    code, out, err = run(capsys, "explain", "--root", str(root), "--user", "1000", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["user"] == "seb"
    results = {r["runtime"]: r for r in data["comparison"]["results"]}
    assert results["podman-rootless"]["ok"], results["podman-rootless"]


def test_docs_show_the_real_explain_output(capsys: pytest.CaptureFixture[str]) -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    shown = page.split("```text\n", 1)[1].split("```", 1)[0]
    code, out, _ = run(capsys, "explain", "--example")
    assert code == 0
    assert shown == out
