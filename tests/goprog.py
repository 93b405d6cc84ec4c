"""Build a small Go program of a test's, with Go's own standard library as the oracle."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

#: The Go toolchain (Debian ``golang-go``), or ``None``.
GO = shutil.which("go")


def build_go(factory: pytest.TempPathFactory, name: str, source: str, *,
             gopath: str | None = None) -> pathlib.Path:
    """Compile ``source`` (a ``main`` package) into a fresh directory; the binary's path.

    Offline and self-contained: no modules, a private build cache and home; ``gopath``
    for packages installed outside the toolchain (Debian's ``golang-*-dev``).
    """
    assert GO is not None, "check GO before building"
    work = factory.mktemp(name)
    (work / "main.go").write_text(source)
    env = {**os.environ, "GO111MODULE": "off", "GOCACHE": str(work / "cache"),
           "HOME": str(work), "GOPATH": gopath or str(work / "gopath")}
    subprocess.run([GO, "build", "-o", str(work / name), str(work / "main.go")],
                   cwd=work, env=env, check=True, capture_output=True)
    return work / name
