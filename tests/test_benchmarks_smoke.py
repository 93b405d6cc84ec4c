"""Smoke run of ``benchmarks/run.py`` with tiny sizes: the scripts run and the table is well formed.

No timing is asserted (machines are noisy); only the shape of the output, that each
benchmark's variants agree with each other, and the helpers' arithmetic.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


@pytest.fixture
def bench() -> Iterator[None]:
    sys.path.insert(0, str(BENCH))
    try:
        yield
    finally:
        sys.path.remove(str(BENCH))


RATIO = re.compile(r"^\d+(\.\d+)?x (faster|slower)$")


def table_rows(md: str, section: str) -> list[list[str]]:
    """The cells of the first table under ``## section``."""
    part = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = part.strip().split("\n\n", 1)[0].splitlines()
    assert all(ln.startswith("|") for ln in lines), lines
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:]]


def run_bench(tmp_path: Path, *args: str) -> tuple[str, str]:
    out = tmp_path / "perf.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--out", str(out), *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, out.read_text(encoding="utf-8")


def test_translation_table(tmp_path: Path) -> None:
    stdout, md = run_bench(
        tmp_path, "--section", "translation", "--extents", "1,5,340", "--rounds", "2",
        "--bulk-ids", "2000", "--bulk-extents", "1,5",
    )
    assert md.startswith("# Performance\n")
    assert "| kernel | " in md and "| Python | CPython" in md
    assert "--out PATH" in md and str(tmp_path) not in md  # no local path in the page
    rows = table_rows(md, "Translation")
    # 3 sizes x 2 directions x (scan, floor) + 2 bulk sizes x 2 baselines
    assert len(rows) == 3 * 2 * 2 + 2 * 2
    for row in rows:
        assert len(row) == 9, row
        assert RATIO.match(row[5]), row
        assert re.match(r"^range \d", row[6]), row  # 2 rounds: min-max
        assert row[8] in ("yes", "NO", ""), row
    cases = [r[0] for r in rows]
    assert cases[:4] == ["to_host, 1 extent"] * 2 + ["to_container, 1 extent"] * 2
    assert "to_host, 340 extents" in cases
    # the 340-extent scan row carries the 15x target, the floor rows the 1.5x one
    scan340 = [r for r in rows if r[0] == "to_host, 340 extents" and r[2] == "linear scan"]
    assert scan340[0][7] == "≥ 15x faster" and scan340[0][8] in ("yes", "NO")
    assert all(r[7] == "within 1.5x" for r in rows if r[2] == "bisect floor")
    assert "== Translation" in stdout  # the terminal table too
    assert "## Allocation" not in md  # only the chosen section ran


def test_every_section_reports(tmp_path: Path) -> None:
    _, md = run_bench(
        tmp_path, "--extents", "1", "--rounds", "1", "--bulk-ids", "0",
        "--owners", "20", "--alloc-rounds", "1",
        "--tree-size", "300", "--tree-sizes", "200", "--tree-rounds", "1",
    )
    for name in ("Translation", "Allocation", "Shifting"):
        part = md.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        if part.lstrip().startswith("not available: "):
            reason = part.strip().removeprefix("not available: ")
            assert len(reason) > 10  # says why
        else:
            rows = table_rows(md, name)
            assert rows and all(len(r) == 9 for r in rows)
            assert all(RATIO.match(r[5]) for r in rows)


def test_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--extents", "a,b", "--no-write"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "comma-separated integers" in proc.stderr


def test_ratio_and_compare(bench: None) -> None:
    from _harness import Ratio, Timing, compare, ratio

    r = Ratio.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert r.median == 3.0 and (r.low, r.high) == (2.0, 4.0)  # IQR ignores the outlier
    assert Ratio.of([0.25]).text() == "4.00x slower"
    assert Ratio.of([12.345]).text() == "12.3x faster"
    order: list[str] = []

    def note(name: str) -> Callable[[], None]:
        return lambda: order.append(name)

    out = compare({n: note(n) for n in "abc"}, rounds=3)
    assert order == list("abc" "bca" "cab")  # interleaved, rotating
    assert all(len(t.times) == 3 for t in out.values())
    # per-unit ratio: 10 units in 2 s against 1 unit in 1 s is 5x faster
    assert ratio(Timing("c", [2.0], units=10), Timing("b", [1.0], units=1)).median == 5.0


def test_translation_variants_agree(bench: None) -> None:
    from translation import make_floor, make_scan, make_triples

    from userns import IDMap

    rng = random.Random(3)
    for n in (1, 5, 340):
        triples = make_triples(n, rng)
        m = IDMap.from_triples(triples)
        scan, floor = make_scan(triples), make_floor(triples)
        for c, h, s in triples:
            for x in (c, c + s - 1, c + s // 2):
                assert scan(x) == floor(x) == m.to_host(x) == h + (x - c)


@pytest.mark.skipif(os.geteuid() != 0, reason="building the tree chowns files: needs root")
def test_tree_build_check_reset(tmp_path: Path, bench: None) -> None:
    import tree

    root = tmp_path / "t"
    info = tree.build(root, 400, random.Random(5))
    assert info.entries == 400 == 1 + sum(len(d) + len(f) for _, d, f in os.walk(root))
    assert info.hardlinks > 0 and info.symlinks > 0 and info.special_mode and info.caps
    assert tree.check(root, info, 0).owners_wrong == 0
    shifted = tree.check(root, info, 100000)
    assert shifted.owners_wrong == len(info.owners)  # nothing is shifted yet
    assert shifted.acl_ids_wrong == shifted.acl_ids > 0
    assert tree.reset(root, info, 100000) == len(info.owners)
    after = tree.check(root, info, 100000)
    assert (after.owners_wrong, after.special_lost, after.caps_lost, after.acl_ids_wrong) == (
        0, 0, 0, 0)


@pytest.mark.parametrize("name", ["_harness", "translation", "allocation", "shifting", "tree"])
def test_benchmark_doctests(name: str, bench: None) -> None:
    import doctest
    import importlib

    if name == "tree" and os.geteuid() != 0:
        pytest.skip("tree's doctest chowns files: needs root")
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
    assert result.attempted > 0
