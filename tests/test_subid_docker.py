"""Differential test of the Docker reading against the real Go parser.

Docker reads ``/etc/subuid`` with ``ParseSubIDFilter`` of ``github.com/moby/sys/user``,
which is the code of runc's ``libcontainer/user`` moved to its own module. Debian ships
the runc one (``golang-github-opencontainers-runc-dev``); the test builds a tiny program
on it with Debian's ``golang-go`` and compares its output with
:attr:`userns.subid.SubidLine.docker` on random lines.
"""

from __future__ import annotations

import os
import pathlib
import random
import subprocess

import pytest

from userns.subid import SubidFile

from .goprog import GO, build_go

GOPATH = "/usr/share/gocode"
RUNC_USER = os.path.join(GOPATH, "src/github.com/opencontainers/runc/libcontainer/user")

PROGRAM = """\
package main

import (
\t"encoding/hex"
\t"fmt"
\t"os"

\t"github.com/opencontainers/runc/libcontainer/user"
)

func main() {
\tids, err := user.ParseSubID(os.Stdin)
\tif err != nil {
\t\tfmt.Println("error", err)
\t\tos.Exit(1)
\t}
\tfor _, id := range ids {
\t\tfmt.Printf("%s %d %d\\n", hex.EncodeToString([]byte(id.Name)), id.SubID, id.Count)
\t}
}
"""


@pytest.fixture(scope="module")
def go_parser(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    if GO is None or not os.path.isdir(RUNC_USER):
        pytest.skip("needs Debian's golang-go and golang-github-opencontainers-runc-dev")
    return build_go(tmp_path_factory, "subidparse", PROGRAM, gopath=GOPATH)


TOKENS = ["alice", "bob", "1000", "#", "+", "-", ":", ":", ":", "0", "1", "65536",
          "100000", "0100000", "0x186a0", "+5", "-7", "99999999999999999999",
          "-99999999999999999999", "4294967296", " ", "\t", "\u00a0", "\u2003", "\x85",
          "\x1c", "\r", "é", "1_000", ""]


def random_lines(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 8))) for _ in range(n)]


def docker_readings(text: str) -> list[tuple[str, int, int]]:
    out = []
    for line in SubidFile.parse(text).lines:
        if line.docker is not None:
            raw = line.docker.owner.encode("utf-8", "surrogateescape")
            out.append((raw.hex(), line.docker.start, line.docker.count))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_docker_reading_matches_runc_user(go_parser: pathlib.Path, seed: int) -> None:
    rng = random.Random(seed)
    lines = random_lines(rng, 500)
    lines += ["alice:0x186a0:65536", "  alice:100000:65536  ", "alice:0100000:65536",
              "alice:100000", "# alice:1:2", "+alice:1:2", "alice: 5:5", "alice:1:2:3"]
    text = "\n".join(lines) + "\n"
    run = subprocess.run([str(go_parser)], input=text.encode(), capture_output=True,
                         check=True)
    got = [(name, int(a), int(b)) for name, a, b in
           (row.split(" ") for row in run.stdout.decode().splitlines())]
    assert got == docker_readings(text)
