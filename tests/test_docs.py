"""The docs site builds with ``mkdocs build --strict``, and its examples run.

The build needs the ``docs`` extra (mkdocs-material, mkdocstrings[python]); the examples
(the ``pycon`` blocks of the pages) only need userns.
"""

from __future__ import annotations

import doctest
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Pages whose examples are doctested here (other pages are tested by their owners).
EXAMPLE_PAGES = [
    "index.md",
    "getting-started.md",
    "concepts.md",
    "howto/explain-refused-map.md",
]
FENCE = re.compile(r"^```pycon\n(.*?)^```$", re.MULTILINE | re.DOTALL)


# -- the examples -------------------------------------------------------------------------


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_page_examples_run(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = FENCE.findall(text)
    assert blocks, f"{page} has no pycon example"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict[str, object] = {}  # one namespace per page, as a reader would type it
    tried = 0
    for i, block in enumerate(blocks, 1):
        test = parser.get_doctest(block, globs, f"{page}[{i}]", page, 0)
        report: list[str] = []
        result = runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs  # get_doctest copies the namespace: carry it to the next block
        tried += result.attempted
        assert result.failed == 0, f"{page}: example block {i} failed\n" + "".join(report)
    assert tried >= len(blocks)


# -- the pictures embedded in the pages ----------------------------------------------------

FIGURE = re.compile(r'(<!-- figure (\S+) -->\n<div class="userns-figure">)(.*?)(</div>)', re.DOTALL)


def figures() -> dict[str, str]:
    """The drawings the pages embed, by name, as display.map_svg draws them now."""
    from userns import IDMap
    from userns.display import map_svg
    from userns.runtimes import docker_remap, podman_maps
    from userns.subid import Accounts

    testuser = Accounts.from_pairs([("testuser", 1001)], [("testuser", 1001)])
    text = "testuser:250000:65516\ntestuser:200000:20\n"
    docker = docker_remap(text, text, "testuser", accounts=testuser).uid
    podman = podman_maps(text, text, "testuser", accounts=testuser, rootless=False).uid
    assert docker is not None and podman is not None
    return {
        "seed": map_svg(IDMap.single(0, 231072, 65536)),
        "docker": map_svg(docker),
        "podman": map_svg(podman),
    }


def refresh_figures(text: str) -> str:
    drawn = figures()
    return FIGURE.sub(lambda m: m[1] + drawn[m[2]] + m[4], text)


def test_embedded_pictures_are_current() -> None:
    text = (DOCS / "concepts.md").read_text(encoding="utf-8")
    names = [m[2] for m in FIGURE.finditer(text)]
    assert names == ["seed", "docker", "podman"]
    assert refresh_figures(text) == text, (
        "docs/concepts.md has stale pictures: refresh with python -m tests.test_docs"
    )


# -- the Griffe extension -----------------------------------------------------------------


def load_extension() -> ModuleType:
    pytest.importorskip("griffe", reason="the docs extra (mkdocstrings[python]) is not installed")
    spec = importlib.util.spec_from_file_location("_griffe_doctests",
                                                  DOCS / "_griffe_doctests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extension_fences_doctests_and_rewrites_roles() -> None:
    markdown = load_extension().markdown
    doc = (
        "Raises :class:`~userns.errors.InvalidMapError` or :func:`userns.parse_proc`.\n"
        "\n"
        "    >>> m = IDMap.single(0, 1, 2)\n"
        "    >>> m.to_host(0)\n"
        "    1\n"
        "\n"
        "After."
    )
    assert markdown(doc) == (
        "Raises `InvalidMapError` or `userns.parse_proc`.\n"
        "\n"
        "    ```pycon\n"
        "    >>> m = IDMap.single(0, 1, 2)\n"
        "    >>> m.to_host(0)\n"
        "    1\n"
        "    ```\n"
        "\n"
        "After."
    )
    # Idempotent: a fenced block is left alone, roles inside code fences too.
    assert markdown(markdown(doc)) == markdown(doc)
    fenced = "```python\n>>> x = ':class:`A`'\n```"
    assert markdown(fenced) == fenced
    # An RST literal block keeps its indented body and loses one colon of its intro.
    assert markdown("Grammar (``x.c``)::\n\n    a = b\n") == "Grammar (``x.c``):\n\n    a = b"
    # A doctest at the very end is closed too.
    assert markdown(">>> 1\n1") == "```pycon\n>>> 1\n1\n```"


# -- the site -----------------------------------------------------------------------------


def nav_pages(config: str) -> list[str]:
    """The .md files the nav of mkdocs.yml names."""
    nav = config.split("\nnav:\n", 1)[1]
    return re.findall(r":\s*(\S+\.md)\s*$", nav, re.MULTILINE)


def test_nav_names_only_existing_pages() -> None:
    pages = nav_pages((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert "index.md" in pages and "reference/api.md" in pages
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing


DIRECTIVE = re.compile(r"^::: (\S+)\n((?:[ \t]+\S.*\n)*)", re.MULTILINE)


def rendered_objects() -> list[tuple[str, str, bool]]:
    """(page, object, with members) for every mkdocstrings directive of the site."""
    out = []
    for page in sorted(DOCS.rglob("*.md")):
        for m in DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            out.append((str(page.relative_to(DOCS)), m[1], "members: false" not in m[2]))
    return out


def test_each_module_is_rendered_once() -> None:
    # Twice would give autorefs two primary URLs for each name: a warning, so a failure.
    seen: dict[str, str] = {}
    for page, name, _ in rendered_objects():
        assert name not in seen, f"{name} is rendered on {seen[name]} and on {page}"
        seen[name] = page


def test_every_public_module_is_documented() -> None:
    src = ROOT / "src"
    modules = sorted(
        ".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        for p in (src / "userns").rglob("*.py")
        if not any(part.startswith("_") and part != "__init__.py"
                   for part in p.relative_to(src).parts)
    )
    rendered = rendered_objects()
    named = {name for _, name, _ in rendered}
    with_members = {name for _, name, members in rendered if members}
    # A module counts when it is rendered itself, or inside a package rendered with members.
    missing = [m for m in modules
               if m not in named and not any(m.startswith(c + ".") for c in with_members)]
    assert not missing, f"not in the API reference (add to docs/reference/api.md): {missing}"


def test_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra (mkdocs-material) is not installed")
    pytest.importorskip("mkdocstrings_handlers.python",
                        reason="the docs extra (mkdocstrings[python]) is not installed")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    for page in nav_pages((ROOT / "mkdocs.yml").read_text(encoding="utf-8")):
        html = "index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html"
        assert (site / html).is_file(), html
    api = (site / "reference/api/index.html").read_text(encoding="utf-8")
    for anchor in ("userns.maps.IDMap.to_host", "userns.ranges.IDSet.find_free",
                   "userns.formats.proc.validate_map_write", "userns.errors.UsernsError",
                   "userns.display.map_svg"):
        assert f'id="{anchor}"' in api, anchor
    # The pictures reach the page untouched by Markdown.
    concepts = (site / "concepts/index.html").read_text(encoding="utf-8")
    for name, svg in figures().items():
        assert svg in concepts, name
    # Docstring doctests are code blocks, not nested quotes, and no Sphinx role leaks.
    assert "<blockquote>" not in api
    assert ":class:" not in api and ":func:" not in api
    assert '<span class="gp">&gt;&gt;&gt; </span>' in api  # highlighted as a console session


if __name__ == "__main__":
    page = DOCS / "concepts.md"
    page.write_text(refresh_figures(page.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"refreshed the pictures of {page.name}")
