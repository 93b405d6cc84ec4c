"""The examples of the subid pages run and print what the pages say."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["reference/subid.md", "howto/allocate.md"]
FENCE = re.compile(r"^```pycon\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = FENCE.findall(text)
    assert blocks
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict[str, object] = {}
    attempted = 0
    for i, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, globs, f"{page}[{i}]", page, 0)
        out: list[str] = []
        result = runner.run(test, out=out.append, clear_globs=False)
        globs = test.globs
        attempted += result.attempted
        assert result.failed == 0, "".join(out)
    assert attempted >= len(blocks)
