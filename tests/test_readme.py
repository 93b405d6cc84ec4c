"""README.md says what works: its Python runs, its commands are the ones CI runs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_example_runs() -> None:
    (code,) = blocks("python")
    exec(compile(code, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command() -> None:
    setup = blocks("sh")[1].strip()
    test_command = setup.split("&&")[-1].strip()
    assert test_command == ".venv/bin/python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -e '.[test]'" in ci
    assert re.search(rf"^{re.escape(test_command)}$", ci, flags=re.M)


def test_main_command_runs() -> None:
    first = blocks("sh")[0].strip()
    command = shlex.split(first.split("&&")[-1].strip())
    assert command[:3] == [".venv/bin/userns", "explain", "--example"]
    p = subprocess.run([sys.executable, "-m", "userns", *command[1:]], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "container 0…65535  ->  host 231072…296607" in p.stdout


def test_cli_examples_parse() -> None:
    from userns.cli import build_parser

    parser = build_parser()
    (cli_block,) = [b for b in blocks("sh") if b.startswith("userns explain")]
    lines = [ln for ln in cli_block.splitlines() if ln.startswith("userns ")]
    assert len(lines) == 13
    for line in lines:
        argv = shlex.split(line.split("#")[0])[1:]
        parser.parse_args(argv)  # exits (fails the test) on a usage error


def test_readme_names_every_debian_package_ci_installs() -> None:
    listed = README.split("<!-- packages: begin -->", 1)[1].split("<!-- packages: end -->")[0]
    named = set(re.findall(r"`([a-z0-9.+-]+)`", listed))
    ci = (ROOT / ".ci" / "run").read_text()
    line = ci.split("apt-get install", 1)[1].split(">/dev/null", 1)[0]
    installed = {w for w in line.replace("\\", " ").split() if not w.startswith("-")}
    assert named == installed


def test_quick_test_command_selects_a_marker_that_exists() -> None:
    (quick,) = [b.strip() for b in blocks("sh") if "not slow" in b]
    assert quick.startswith(".venv/bin/python -m pytest -m \"not slow\"")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"slow: ' in pyproject
    slow_tests = [p for p in (ROOT / "tests").glob("test_*.py")
                  if "pytest.mark.slow" in p.read_text()]
    assert slow_tests  # the quick command leaves something out
