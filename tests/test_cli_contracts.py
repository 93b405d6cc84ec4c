"""The CLI's contracts a script relies on: exit statuses, one JSON shape for errors."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from userns.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, build_parser, main
from userns.cli._common import capped


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_status_constants_are_the_documented_numbers() -> None:
    assert (EXIT_OK, EXIT_FAILURE, EXIT_USAGE) == (0, 1, 2)


@pytest.mark.parametrize("argv", [
    ["translate", "--json", "-m", "0 1 2", "x"],   # a bad argument value
    ["translate", "--json"],                      # missing arguments
    ["--json", "explain", "--no-such-option"],    # an unknown option
])
def test_usage_errors_are_one_json_document(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    doc = json.loads(out)
    assert doc["ok"] is False
    assert doc["error"]["reason"] == "usage"
    assert doc["error"]["message"].startswith("userns")
    assert "usage:" not in err  # no usage text mixed into a JSON run


def test_usage_error_without_json_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "translate")
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith("usage: userns translate")
    assert "error: the following arguments are required" in err


@pytest.mark.parametrize("argv", [
    ["check", "--json", "--map", "0 0 0"],                    # refused by the kernel's rules
    ["translate", "--json", "-m", "@/nonexistent/map", "0"],  # an input error
    ["convert", "--json", "--to", "oci", "nonsense map"],     # format not recognised
])
def test_errors_share_the_success_documents_shape(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, _ = run(capsys, *argv)
    assert code == EXIT_FAILURE
    doc = json.loads(out)
    assert doc["ok"] is False
    assert set(doc["error"]) == {"reason", "message", "path", "line", "column"}


def _root(tmp_path: Path, subuid: str) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "subuid").write_text(subuid)
    (etc / "subgid").write_text(subuid)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\nseb:x:1000:1000::/:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nseb:x:1000:\n")
    return tmp_path


def test_check_fails_on_warning_by_default_not_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An owner without a passwd entry is an info finding only.
    root = _root(tmp_path, "ghost:100000:65536\n")
    code, out, _ = run(capsys, "check", "--root", str(root), "--json")
    doc = json.loads(out)
    severities = {f["severity"] for f in doc["findings"]}
    assert severities == {"info"}, doc
    assert code == EXIT_OK
    code, _, _ = run(capsys, "check", "--root", str(root), "--fail-on", "info")
    assert code == EXIT_FAILURE


def _leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                nested = _leaf_commands(command, f"{prefix}{name} ")
                out.extend(nested or [(f"{prefix}{name}", command)])
    return out


def test_every_command_takes_json() -> None:
    leaves = _leaf_commands(build_parser())
    assert len(leaves) >= 9
    for name, command in leaves:
        if name == "run":  # passes the child's exit status through; prints nothing itself
            continue
        flags = {o for a in command._actions for o in a.option_strings}
        assert "--json" in flags, name


def test_capped_says_how_many_were_left_out() -> None:
    shown, more = capped(list(range(25)), 20)
    assert list(shown) == list(range(20)) and more == "… and 5 more"
    assert capped(list(range(20)), 20) == (list(range(20)), None)


def test_cli_defaults_restated_for_start_up_match_the_library() -> None:
    from userns import kubelet
    from userns.cli import k8s

    assert (k8s.DEFAULT_IDS_PER_POD, k8s.DEFAULT_MAX_PODS) == (
        kubelet.DEFAULT_IDS_PER_POD, kubelet.DEFAULT_MAX_PODS)


def test_building_the_parser_imports_no_analysis_module() -> None:
    # Start-up of every command pays for what the parser imports: keep the heavy library
    # modules (kubelet, doctor, shift, mount, access, subid) out of it.
    import subprocess
    import sys

    code = ("import sys; from userns.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('userns.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = set(eval(out))
    heavy = {"userns.kubelet", "userns.doctor", "userns.shift", "userns.mount",
             "userns.access", "userns.subid", "userns.runtimes", "userns.kernel"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_check_map_checks_the_gid_map_of_a_pair_format_too(
    capsys: pytest.CaptureFixture[str]
) -> None:
    # The uid map fits the parent; the gid map does not: the kernel would refuse it.
    code, out, _ = run(capsys, "check", "--map", "u0:1:1 g0:5:1", "--parent", "0 0 2")
    assert code == EXIT_FAILURE
    assert "(as written to gid_map):1:1" in out and "[not-in-parent]" in out
    code, out, _ = run(capsys, "check", "--map", "u0:1:1 g0:1:1", "--parent",
                       '[{"containerID": 0, "hostID": 0, "size": 3}]')  # an OCI parent
    assert code == EXIT_OK and out.startswith("ok: uid_map and gid_map: ")


def test_format_aliases_are_accepted_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "convert", "--to", "LXD", "0:1:2")
    assert (code, out) == (EXIT_OK, "both 1-2 0-1\n")
    code, out, _ = run(capsys, "translate", "-f", "UID_MAP", "-m", "0 1 2", "1")
    assert (code, out) == (EXIT_OK, "1 -> 2\n")
    code, _, err = run(capsys, "convert", "--to", "nope", "0:1:2")
    assert code == EXIT_USAGE and "unknown format 'nope'" in err


def test_a_closed_stdin_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setattr(sys, "stdin", None)
    code, out, err = run(capsys, "translate", "-m", "-", "0", "--json")
    assert code == EXIT_FAILURE
    assert json.loads(out)["error"]["reason"] == "io"
    assert "standard input is closed" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to an ID outside the map needs root")
def test_shift_overflow_report_does_not_say_left_as_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("x")
    os.chown(tree / "f", 70000, 70000)
    for extra in (["--dry-run"], []):
        code, out, _ = run(capsys, "shift", str(tree), "-m", "0 231072 65536",
                           "--policy", "overflow", "--no-progress", *extra)
        assert code == EXIT_OK, out
        assert "uid 70000 -> 65534: 1" in out
        assert "not in the map, given the overflow ID: uid 70000" in out
        assert "left as is" not in out
    assert os.stat(tree / "f").st_uid == 65534


def test_allocate_skips_a_kind_whose_count_is_zero_as_useradd_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil
    import subprocess

    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "login.defs").write_text("SUB_UID_COUNT 0\n")
    (etc / "subuid").write_text("")
    (etc / "subgid").write_text("")
    code, out, _ = run(capsys, "allocate", "alice", "--root", str(tmp_path), "--write",
                       "--json")
    doc = json.loads(out)
    assert (code, doc["skipped"], list(doc["ranges"])) == (EXIT_OK, ["uid"], ["gid"])
    assert (etc / "subuid").read_text() == ""
    assert (etc / "subgid").read_text() == "alice:100000:65536\n"
    if os.geteuid() == 0 and shutil.which("useradd"):
        # The oracle: useradd --prefix on the same files adds no subuid line either.
        subprocess.run(["useradd", "--prefix", str(tmp_path), "bob"], check=True,
                       capture_output=True)
        assert (etc / "subuid").read_text() == ""
        assert (etc / "subgid").read_text().splitlines()[-1] == "bob:165536:65536"


def test_check_caps_its_text_list_and_says_how_many_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 30 owners without passwd entries: 30 findings (and more), capped at 20 in text.
    root = _root(tmp_path, "".join(f"ghost{i}:{100000 + i * 65536}:65536\n" for i in range(30)))
    code, out, _ = run(capsys, "check", "--root", str(root), "--json")
    total = len(json.loads(out)["findings"])
    assert total > 20
    code_text, out, _ = run(capsys, "check", "--root", str(root))
    assert code_text == code
    assert f"… and {total - 20} more (--json lists every finding)" in out
    assert f"{total} finding(s)" in out


def test_allocate_unknown_owner_warning_fits_the_flags_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _root(tmp_path, "")
    _, out, _ = run(capsys, "allocate", "ghost", "--root", str(root), "--json")
    assert json.loads(out)["warnings"] == [
        "'ghost' has no passwd entry: --write would refuse it (--allow-unknown-owner writes "
        "it anyway)"]
    _, out, _ = run(capsys, "allocate", "ghost", "--root", str(root), "--json",
                    "--allow-unknown-owner")
    assert json.loads(out)["warnings"] == [
        "'ghost' has no passwd entry: --write with --allow-unknown-owner would write it anyway"]


def test_access_of_an_empty_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "access", "", "-m", "0 231072 65536")
    assert code == EXIT_USAGE and "an empty PATH names no file" in err


def test_an_interrupted_shift_says_the_journal_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import userns.shift

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(userns.shift, "shift_tree", interrupted)
    for argv in (["shift"], ["--debug", "shift"]):  # the command, wherever it stands
        code, _, err = run(capsys, *argv, str(tmp_path), "-m", "0 231072 65536",
                           "--no-progress")
        assert code == 130
        assert err.startswith("userns: interrupted; the journal is kept: run the same command")
