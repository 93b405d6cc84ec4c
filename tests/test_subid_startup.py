"""What a process that reads, allocates and writes subordinate IDs imports.

Structural, never timed (the process row of ``benchmarks/allocation.py`` times it): a
fresh interpreter runs shadow's ``useradd`` part and its ``sys.modules`` is read.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import userns.subid

ALLOCATE = """\
from pathlib import Path
import sys
from userns.logindefs import LoginDefs
from userns.subid import SubidFile, shadow_useradd
etc = Path(sys.argv[1])
defs = LoginDefs.read(root=etc.parent)
for name, kind in (("subuid", "uid"), ("subgid", "gid")):
    new, r = shadow_useradd(SubidFile.read(etc / name), "newowner", defs=defs, kind=kind)
    (etc / name).write_bytes(new.to_bytes())
sys.stderr.write("\\nMODULES " + __import__("json").dumps(sorted(sys.modules)) + "\\n")
"""

#: What that process never needs.
NOT_FOR_AN_ALLOCATION = {"userns.subid.accounts", "userns.subid.edit", "userns.maps",
                         "userns.formats"}


def test_reading_allocating_and_writing_loads_only_the_subid_path(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("subuid", "subgid"):
        (etc / name).write_text("# subordinate IDs\nalice:100000:65536\n\nbob:165536:65536\n")
    proc = subprocess.run([sys.executable, "-c", ALLOCATE, str(etc)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0 and "\nMODULES " in proc.stderr, proc.stderr
    loaded = set(json.loads(proc.stderr.rsplit("\nMODULES ", 1)[1]))
    assert {"userns.subid.model", "userns.subid.allocate", "userns.logindefs"} <= loaded
    assert not loaded & NOT_FOR_AN_ALLOCATION, sorted(loaded & NOT_FOR_AN_ALLOCATION)
    # it did the work: the new owner got the range after bob's, in both files
    for name in ("subuid", "subgid"):
        assert (etc / name).read_text().endswith("newowner:231072:65536\n")


def test_every_public_name_resolves_to_its_modules_object() -> None:
    package = userns.subid
    lazy: dict[str, str] = package._LAZY
    assert set(lazy) <= set(package.__all__)
    for name in package.__all__:
        value = getattr(package, name)
        if name in lazy:
            assert value is getattr(importlib.import_module(lazy[name], package.__name__), name)
        assert name in dir(package), name
    namespace: dict[str, object] = {}
    exec("from userns.subid import *", namespace)
    assert {n for n in namespace if n != "__builtins__"} == set(package.__all__)


def test_a_lazy_name_is_found_first_in_a_fresh_interpreter() -> None:
    code = ("from userns.subid import Accounts, write_subid_file\n"
            "import userns.subid.accounts as a, userns.subid.edit as e, userns.subid.lint\n"
            "assert Accounts is a.Accounts and write_subid_file is e.write_subid_file\n"
            "from userns.subid import lint\n"  # the function, after its module was imported
            "import sys\n"
            "assert lint is sys.modules['userns.subid.lint'].lint is userns.subid.lint\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"module 'userns\.subid' has no attribute 'nope'"):
        userns.subid.nope  # noqa: B018
