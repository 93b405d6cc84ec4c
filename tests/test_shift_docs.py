"""The examples of the shift pages run (as root: they chown)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

from .test_shift_trees import need_root

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["howto/shift-volume.md", "reference/shift.md"]
FENCE = re.compile(r"^```pycon\n(.*?)^```$", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.skipif(need_root() is not None, reason=str(need_root()))


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page: str) -> None:
    blocks = FENCE.findall((DOCS / page).read_text(encoding="utf-8"))
    assert blocks, f"{page} has no pycon example"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict[str, object] = {}
    attempted = 0
    for i, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, globs, f"{page}[{i}]", page, 0)
        report: list[str] = []
        result = runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs
        attempted += result.attempted
        assert result.failed == 0, f"{page}: block {i} failed\n" + "".join(report)
    assert attempted > 2 * len(blocks)
