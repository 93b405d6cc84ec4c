"""The import layers of DESIGN.md, enforced: what each layer may import.

Read from the source with ``ast`` (every import, at module level or inside a function),
so a lazy import cannot slip past. The one arrow back up, allowed by the design: the core
imports ``userns.display`` lazily inside ``_repr_html_``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "userns"

CORE = {"userns.errors", "userns.ids", "userns.ranges", "userns.maps"}
#: I/O and faces: what the pure layers must never import.
IO = {"userns.kernel", "userns._kernel_spawn", "userns.shift", "userns.mount", "userns.access",
      "userns.doctor", "userns.cli", "userns.subid.edit"}
#: Standard modules that do I/O or read the process's environment.
IO_STDLIB = {"os", "io", "sys", "subprocess", "pathlib", "shutil", "socket", "ctypes",
             "fcntl", "tempfile", "glob", "signal", "mmap", "select"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int, str | None]]:
    """``(imported module, line, enclosing function or None)`` for each import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: list[tuple[str, int, str | None]] = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = func
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = child.name
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, inner) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append((target, child.lineno, inner))
                if child.level and not child.module:  # from . import x: each x a module
                    found.extend((f"{target}.{a.name}", child.lineno, inner)
                                 for a in child.names)
            visit(child, inner)

    visit(tree, None)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def _under(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_walk_sees_relative_and_lazy_imports() -> None:
    maps = _imports(PACKAGE / "maps.py")
    assert any(m == "userns.ranges" and f is None for m, _, f in maps)
    assert any(m == "userns.display" and f == "_repr_html_" for m, _, f in maps)


@pytest.mark.parametrize("path", [PACKAGE / f"{m.split('.')[1]}.py" for m in sorted(CORE)],
                         ids=lambda p: p.stem)
def test_the_core_imports_only_the_core(path: Path) -> None:
    for name, line, func in _imports(path):
        if name.startswith("userns"):
            if name == "userns.display" and func == "_repr_html_":
                continue  # the one allowed arrow back up: notebook display, lazily
            assert name in CORE, f"{path.name}:{line} imports {name}"
        elif path.name == "errors.py" and name == "os":
            # strerror only: errno's message table, for KernelError and ChildFailure.
            assert "from os import strerror as _strerror" in path.read_text()
        else:
            assert name.split(".")[0] not in IO_STDLIB, f"{path.name}:{line} imports {name}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "formats").glob("*.py")), ids=lambda p: p.stem)
def test_formats_are_pure(path: Path) -> None:
    for name, line, _ in _imports(path):
        assert not _under(name, IO), f"formats/{path.name}:{line} imports {name}"
        assert not _under(name, {"userns.runtimes", "userns.subid"}), \
            f"formats/{path.name}:{line} imports {name}: formats sit below them"
        assert name.split(".")[0] not in IO_STDLIB - {"sys"}, \
            f"formats/{path.name}:{line} imports {name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_only_the_cli_imports_the_cli(path: Path) -> None:
    here = _module_name(path)
    if _under(here, {"userns.cli"}) or here == "userns.__main__":
        return
    for name, line, _ in _imports(path):
        assert not _under(name, {"userns.cli"}), f"{here}:{line} imports the CLI"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_the_library_never_prints(path: Path) -> None:
    here = _module_name(path)
    if _under(here, {"userns.cli"}) or here in {"userns.__main__", "userns.display"}:
        return
    tree = ast.parse(path.read_text())
    prints = [n.lineno for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
    assert not prints, f"{here} calls print() at lines {prints}: the library returns values"


def test_shift_and_kernel_sit_below_the_faces() -> None:
    for path in [*sorted((PACKAGE / "shift").glob("*.py")), PACKAGE / "kernel.py"]:
        for name, line, _ in _imports(path):
            faces = {"userns.cli", "userns.display", "userns.access", "userns.doctor"}
            assert not _under(name, faces), f"{_module_name(path)}:{line} imports {name}"


# -- the architecture page's import table is the real one ------------------------------

ARCHITECTURE = SRC.parent / "docs" / "architecture.md"
_BEGIN, _END = "<!-- imports: begin -->", "<!-- imports: end -->"


def _unit(module: str) -> str:
    """The unit a module belongs to: ``userns.formats.oci`` -> ``formats``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_table() -> str:
    """The Markdown table of which unit imports which, lazy imports marked."""
    edges: dict[str, dict[str, bool]] = {}
    for path in MODULES:
        here = _unit(_module_name(path))
        for name, _, func in _imports(path):
            if not name.startswith("userns.") or name == "userns.__version__":
                continue
            there = _unit(name)
            if there != here:
                lazy = edges.setdefault(here, {}).get(there, True)
                edges[here][there] = lazy and func is not None
    rows = ["| module | imports (lazily: in italics) |", "|---|---|"]
    for here in sorted(edges):
        cells = [f"*{m}*" if lazy else m for m, lazy in sorted(edges[here].items())]
        rows.append(f"| `{here}` | {', '.join(cells)} |")
    return "\n".join(rows)


def test_the_architecture_page_shows_the_real_imports() -> None:
    text = ARCHITECTURE.read_text()
    shown = text.split(_BEGIN, 1)[1].split(_END, 1)[0].strip()
    assert shown == import_table(), (
        "docs/architecture.md's import table is stale; regenerate it with "
        "tests.test_layers.import_table()")
