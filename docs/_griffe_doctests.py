"""A Griffe extension for the docs site: userns docstrings, read as Markdown.

The docstrings are written for ``help()`` and doctest: bare ``>>>`` blocks and Sphinx
roles such as :class:`IDMap`. Markdown would fold a doctest into a nested quote and show
the roles verbatim, so before rendering this extension

- fences every doctest block (from a ``>>>`` line to the next blank line) as ``pycon``;
- turns ``:role:`~pkg.Name``` into the code span ``Name`` (``pkg.Name`` without ``~``);
- ends a paragraph that introduces an RST literal block (``Grammar::``) with one colon:
  the indented block after it is already a Markdown code block.

It only changes the text handed to mkdocstrings, never the source. mkdocs.yml loads it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|exc|data|mod|obj|const):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    target = match[2]
    if match[1]:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def markdown(text: str) -> str:
    """The docstring with doctest blocks fenced and Sphinx roles as code spans."""
    out: list[str] = []
    lines = text.splitlines()
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or not stripped.startswith(">>>"):
            if not in_fence:
                line = _ROLE.sub(_role, line)
                if line.endswith("::") and not line.endswith(" ::"):
                    line = line[:-1]
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Rewrite each docstring once, when Griffe creates its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
