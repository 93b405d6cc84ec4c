"""Start-up: what ``import userns`` and a ``userns shift`` command line load before the walk.

Structural, never timed (the timings are in ``benchmarks/startup.py``): each test runs a
fresh interpreter and reads its ``sys.modules``. ``test_cli_contracts.py`` keeps the
analysis modules out of the whole parser (``build_parser()``); these tests go further
for the commands a shift runs: only the shift's own command module and the one format
its map is written in.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import userns
import userns.formats
from userns import cli

ROOT = Path(__file__).resolve().parent.parent


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = (f"{code}\nimport sys, json\n"
              "sys.stderr.write('\\nMODULES ' + json.dumps(sorted(sys.modules)) + '\\n')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert "\nMODULES " in proc.stderr, proc.stderr
    return set(json.loads(proc.stderr.rsplit("\nMODULES ", 1)[1]))


#: What a ``userns shift`` never needs: the other commands, the other formats, and the
#: library modules behind the other commands.
NOT_FOR_A_SHIFT = {
    "userns.cli.explain", "userns.cli.maps", "userns.cli.subid", "userns.cli.k8s",
    "userns.cli.doctor", "userns.cli.mount", "userns.cli.access",
    "userns.kubelet", "userns.doctor", "userns.runtimes", "userns.mount", "userns.access",
    "userns.kernel", "userns.subid", "userns.authorize", "userns.display",
    *(f"userns.formats.{name}" for name in (
        "crio", "idmap_option", "incus_idmap", "kubelet", "lxc", "newuidmap", "notation",
        "nspawn", "oci", "podman", "unshare", "xmount")),
}


def test_import_userns_loads_neither_attrs_nor_a_format() -> None:
    loaded = loaded_after("import userns")
    assert {m for m in loaded if m.startswith("userns")} == {
        "userns", "userns._lazy", "userns.errors", "userns.ids"}
    assert "attrs" not in loaded and "attr" not in loaded


def test_import_userns_cli_loads_neither_attrs_nor_the_registry() -> None:
    # What a command needs is imported by main(), during the process's start-up proper
    # (the collector off), not by the import of the package that holds main.
    loaded = loaded_after("import userns.cli")
    heavy = {"attrs", "attr", "userns.maps", "userns.formats.registry", "userns.cli.shift"}
    assert not loaded & heavy, sorted(loaded & heavy)
    from_cli = loaded_after("from userns.cli import detect_format\n"
                            "import userns.formats.registry as r\n"
                            "assert detect_format is r.detect_format\n")
    assert "userns.formats.registry" in from_cli


def test_a_shift_command_line_loads_only_what_a_shift_needs(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_text("x")
    argv = ["shift", str(tree), "--map", "0 231072 65536", "--dry-run", "--no-progress",
            "--json"]
    loaded = loaded_after(
        "import sys, io, contextlib\nfrom userns.cli import main\nout = io.StringIO()\n"
        f"with contextlib.redirect_stdout(out):\n    code = main({argv!r})\n"
        "assert code == 0, (code, out.getvalue())\n"
        "assert '\"dry_run\": true' in out.getvalue(), out.getvalue()\n")
    # The run got as far as the walk, through the map's own format...
    assert {"userns.cli.shift", "userns.shift", "userns.formats.proc"} <= loaded
    # ...and loaded nothing it does not use: not even the text helpers of the other
    # formats, which a proc map does not need.
    assert not loaded & NOT_FOR_A_SHIFT, sorted(loaded & NOT_FOR_A_SHIFT)
    assert "userns.formats._text" not in loaded


@pytest.mark.skipif(os.geteuid() != 0, reason="a real shift needs root (the trusted mark)")
def test_a_shift_loads_neither_openssl_nor_traceback(tmp_path: Path) -> None:
    # The mark's key is SHA-256 from the interpreter's own module (hashlib would load
    # OpenSSL); traceback is imported only to report a worker's crash.
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("x")
    loaded = loaded_after(
        "from userns import IDMap, IDMapPair\nfrom userns.shift import shift_tree\n"
        f"r = shift_tree({str(tree)!r}, IDMapPair.both(IDMap.single(0, 231072, 65536)))\n"
        "assert r.complete and r.changed == 2, r\n")
    assert not loaded & {"hashlib", "_hashlib", "traceback"}, sorted(
        loaded & {"hashlib", "_hashlib", "traceback"})


def test_the_marks_key_is_sha256_as_hashlib_computes_it() -> None:
    # The key is stored on disk in the root's mark: it must not change with the module
    # that computes it.
    import hashlib

    from userns.shift.core import _marker_key

    header = {"root": [1, 2], "uid": [[0, 1000, 10]], "policy": "error"}
    data = json.dumps(header, sort_keys=True).encode()
    assert _marker_key(header) == hashlib.sha256(data).hexdigest()[:32]


def test_side_is_the_text_helpers_object_loaded_when_asked_for() -> None:
    loaded = loaded_after(
        "import sys\nimport userns.formats.registry as r\n"
        "assert 'userns.formats._text' not in sys.modules and 'Side' in dir(r)\n"
        "from userns.formats.registry import Side\nimport userns.formats._text as t\n"
        "assert Side is t.Side and r.Side is t.Side\n"
        "assert r.get_format('proc').format(r.IDMapPair.both(r.IDMap.single(0, 1, 2)), "
        "side='uid') == '0 1 2\\n'\n")
    assert "userns.formats._text" in loaded


def test_shift_help_loads_neither_the_walker_nor_another_command() -> None:
    loaded = loaded_after("from userns.cli import main\nmain(['shift', '--help'])")
    assert "userns.cli.shift" in loaded
    # shutil: argparse imports it for the terminal width; the CLI's formatter does not.
    unused = NOT_FOR_A_SHIFT | {"userns.shift", "userns.formats.proc", "shutil"}
    assert not loaded & unused, sorted(loaded & unused)


@pytest.mark.parametrize("columns", ["100", "7", "0", "-3", "wide", None])
def test_the_help_is_as_wide_as_argparse_makes_it(columns: str | None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._columns() == shutil.get_terminal_size().columns
    mine = cli.build_parser()._get_formatter()
    theirs = argparse.HelpFormatter("userns")
    assert (mine._width, mine._max_help_position) == (theirs._width, theirs._max_help_position)


def test_listing_and_looking_up_formats_loads_no_format_module() -> None:
    loaded = loaded_after(
        "from userns.formats.registry import FORMATS, detect_format, get_format\n"
        "assert len(FORMATS) >= 16 and get_format('CRI-O').name == 'crio'\n"
        "assert detect_format('0:1:2') == 'podman'\n")
    formats = {m for m in loaded if m.startswith("userns.formats.")}
    assert formats == {"userns.formats.registry"}
    used = loaded_after("from userns import convert\nconvert('0:1:2', 'podman', 'lxc')")
    assert {m for m in used if m.startswith("userns.formats.")} == {
        "userns.formats.registry", "userns.formats._text", "userns.formats.podman",
        "userns.formats.lxc"}


# -- the process's start-up runs without the collector, then is frozen -------------------

_SPY = """
import gc, json, sys
import userns.cli
import userns.cli.shift as command
seen = {{}}
real_parser_for, real_cmd = userns.cli._parser_for, command.cmd_shift
def parser_for(argv):
    seen["parsing, collector on"] = gc.isenabled()
    return real_parser_for(argv)
def cmd_shift(args, out):
    import userns.shift.core as core
    seen["working, collector on"] = gc.isenabled()
    seen["frozen objects"] = gc.get_freeze_count()
    seen["the walker's code frozen"] = all(o is not core.shift_tree for o in gc.get_objects())
    return real_cmd(args, out)
userns.cli._parser_for, command.cmd_shift = parser_for, cmd_shift
argv = ["shift", {tree!r}, "--map", "0 231072 65536", "--dry-run", "--no-progress", "--json"]
sys.argv[1:] = argv
code = userns.cli.main({given})
seen["code"], seen["after, collector on"] = code, gc.isenabled()
seen["frozen after"] = gc.get_freeze_count()
sys.stderr.write("\\nSEEN " + json.dumps(seen) + "\\n")
"""


def _spy(tree: Path, given: str) -> dict[str, object]:
    code = _SPY.format(tree=str(tree), given=given)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert "\nSEEN " in proc.stderr, proc.stderr
    seen: dict[str, object] = json.loads(proc.stderr.rsplit("\nSEEN ", 1)[1])
    return seen


def test_the_process_start_up_runs_without_the_collector_and_is_frozen_before_the_walk(
    tmp_path: Path,
) -> None:
    (tmp_path / "tree" / "d").mkdir(parents=True)
    seen = _spy(tmp_path / "tree", "")  # main(): the process's own entry
    assert seen["code"] == 0, seen
    # Parsing and the imports (the shift library's included) ran with the collector
    # off; the walk runs with it on, and what start-up built is frozen, the library too.
    assert seen["parsing, collector on"] is False, seen
    assert seen["working, collector on"] is True and seen["after, collector on"] is True
    assert isinstance(seen["frozen objects"], int) and seen["frozen objects"] > 10_000, seen
    assert seen["the walker's code frozen"] is True, seen


def test_a_caller_that_gives_argv_keeps_its_collector_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "tree" / "d").mkdir(parents=True)
    seen = _spy(tmp_path / "tree", "argv")  # main(argv): tests, other programs
    assert seen["code"] == 0, seen
    assert seen["parsing, collector on"] is True and seen["working, collector on"] is True
    assert seen["frozen objects"] == 0 and seen["frozen after"] == 0, seen
    assert seen["the walker's code frozen"] is False, seen


def test_help_imports_no_library_even_as_the_process_entry() -> None:
    loaded = loaded_after("import sys\nfrom userns.cli import main\n"
                          "sys.argv[1:] = ['shift', '--help']\nmain()")
    assert "userns.cli.shift" in loaded and "userns.shift" not in loaded


# -- the lazy names are the same objects as ever --------------------------------------


@pytest.mark.parametrize("package", [userns, userns.formats], ids=lambda p: p.__name__)
def test_every_public_name_resolves_to_its_modules_object(package: ModuleType) -> None:
    names = package.__all__
    lazy: dict[str, str] = package._LAZY
    assert set(lazy) <= set(names)
    for name in names:
        value = getattr(package, name)
        if name in lazy:
            module = importlib.import_module(lazy[name], package.__name__)
            assert value is getattr(module, name), name
        assert name in dir(package), name
    namespace: dict[str, object] = {}
    exec(f"from {package.__name__} import *", namespace)
    assert {n for n in namespace if n != "__builtins__"} == set(names)


def test_the_lazy_table_names_existing_objects_in_a_fresh_interpreter() -> None:
    # Resolved first through the package (no module imported beforehand by this test run).
    code = ("import userns, userns.formats, userns.maps, userns.formats.registry as r\n"
            "assert userns.IDMap is userns.maps.IDMap and userns.get_format is r.get_format\n"
            "assert userns.formats.parse_crio is __import__('userns.formats.crio', "
            "fromlist=['x']).parse_crio\n"
            "from userns import FORMATS, IDSet, validate_map_write\n")
    assert "userns.formats.crio" in loaded_after(code)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'userns' has no attribute 'nope'"):
        userns.nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from userns.formats import nope")
    assert not hasattr(userns.formats, "parse_docker")


# -- the CLI builds one command's parsers, and they are the same parsers ----------------


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no sub-commands")


def test_the_command_table_matches_what_the_modules_register() -> None:
    table = cli._MODULE_OF
    for module in cli.COMMAND_MODULES:
        registered = set(_choices(cli._build((module,))))
        assert registered == {c for c, m in table.items() if m == module}, module
    assert set(table.values()) == set(cli.COMMAND_MODULES)


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every sub-command's help text, nested ones (``k8s check``) included."""
    out: dict[str, str] = {}
    for name, sub in _choices(parser).items():
        out[name] = sub.format_help()
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            out.update({f"{name} {k}": v for k, v in _helps(sub).items()})
    return out


def test_a_command_line_gets_the_same_parser_for_its_command() -> None:
    full = _helps(cli.build_parser())
    for command in cli._MODULE_OF:
        for argv in ([command], ["--debug", command, "--json"]):
            mine = _helps(cli._parser_for(argv))
            assert command in mine and set(mine) < set(full), argv
            assert all(full[k] == v for k, v in mine.items()), argv


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["-h", "shift"], ["--version"], ["--deb", "shift"], ["--", "shift"],
    ["shi"], ["SHIFT"], ["--json", "shift"], ["--debug"], ["nope", "shift"],
])
def test_anything_but_a_command_name_gets_the_whole_parser(argv: list[str]) -> None:
    assert set(_choices(cli._parser_for(argv))) == set(cli._MODULE_OF)


def test_an_abbreviated_command_is_still_refused_with_the_full_list(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["shi"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "invalid choice: 'shi'" in err and "'access')" in err


# -- the benchmark row runs ---------------------------------------------------------------


def test_the_startup_benchmark_reports(tmp_path: Path) -> None:
    out = tmp_path / "perf.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--section", "startup",
         "--startup-rounds", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    md = out.read_text(encoding="utf-8")
    part = md.split("## Start-up\n", 1)[1]
    rows = [ln for ln in part.split("\n\n", 1)[0].splitlines() if ln.startswith("| ")][1:]
    cases = [r.split(" | ")[0].lstrip("| ") for r in rows]
    shifts = ["userns shift, empty tree"] * 2 if os.geteuid() == 0 else []
    assert cases == ["import userns", "userns shift --help", "userns shift --help",
                     "userns --help", *shifts], cases
    assert all(" slower | " in r or " faster | " in r for r in rows), rows
    modules = {r.split(" | ")[0].lstrip("| "): r.split(" | ")[1:]
               for r in part.split("\n\n", 2)[1].splitlines()[2:]}
    assert modules["python -c 'import userns'"][1:] == ["4", "no |"], modules
    assert modules["userns shift --help"][2] == "yes |", modules
    if shifts:
        assert "`userns shift EMPTY`: a first shift of an empty directory" in part, part
