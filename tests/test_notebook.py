"""docs/explore.ipynb runs from top to bottom, and says what its saved outputs say.

Needs nbclient, nbformat and ipykernel (the test extra). After changing the notebook or
what it prints, refresh its saved outputs with ``python -m tests.test_notebook``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "explore.ipynb"


def execute() -> Any:
    """The notebook, executed in a fresh kernel with docs/ as working directory."""
    nbformat = pytest.importorskip("nbformat", reason="nbformat (the test extra) is needed")
    nbclient = pytest.importorskip("nbclient", reason="nbclient (the test extra) is needed")
    pytest.importorskip("ipykernel", reason="ipykernel (the test extra) is needed")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    return nb


def text_outputs(nb: Any) -> list[str]:
    """Per code cell: its printed text, then the plain-text form of its results.

    A kernel may deliver one print as one stream message or several, so the printed text
    is compared as one string, not message by message.
    """
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        printed, results = [], []
        for o in cell.get("outputs", []):
            if o.output_type == "stream" and o.name == "stdout":
                printed.append(o.text)
            elif o.output_type in ("execute_result", "display_data"):
                results.append(o.data.get("text/plain", ""))
            elif o.output_type == "error":
                results.append(f"{o.ename}: {o.evalue}")
        out.append("".join(printed) + "\n".join(results))
    return out


@pytest.fixture(scope="module")
def executed() -> Any:
    return execute()


def test_every_cell_runs_without_error(executed: Any) -> None:
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert len(code) >= 15
    for cell in code:
        assert cell.execution_count is not None
        assert all(o.output_type != "error" for o in cell.outputs), cell.source


def test_values_display_as_table_and_picture(executed: Any) -> None:
    html = [o.data["text/html"] for c in executed.cells if c.cell_type == "code"
            for o in c.outputs if "data" in o and "text/html" in o.data]
    # The seed map, multi, rootless, nested, Docker, Podman, pair, sets: all drawn.
    assert len(html) >= 8
    assert all("<svg" in h and "<table" in h for h in html)
    # The pair of two different maps draws both.
    assert html[-1].count("<svg") == 2


def test_the_story_it_tells(executed: Any) -> None:
    printed = "\n".join(text_outputs(executed))
    for fact in (
        "'231072.231072'",
        "container     0 (root      ) = host 231072",
        "container    33 (www-data  ) = host 231105",
        "host root (0) seen from inside: 65534",
        "(200000, 200019, 250000, 20)",
        "IDMap([Extent(0, 100000, 65536)])",
        "alice's own files (host 1000) seen from the container: 65534",
        "[not-in-parent]",
        "container root:   Docker host 250000 | Podman host 200000",
        "host 250000 (root under Docker) is container 20 under Podman",
        "kernel      u0:k231072:r65536",
        "lxc.idmap = g 0 231072 65536",
        "- docker and podman give testuser different uid maps: container uid 0 is host "
        "250000 under docker and host 200000 under podman",
    ):
        assert fact in printed, fact


def test_saved_outputs_are_current(executed: Any) -> None:
    nbformat = pytest.importorskip("nbformat")
    saved = nbformat.read(NOTEBOOK, as_version=4)
    assert text_outputs(saved) == text_outputs(executed), (
        "docs/explore.ipynb has stale outputs: refresh with python -m tests.test_notebook"
    )


if __name__ == "__main__":
    import nbformat as _nbformat

    _nbformat.write(execute(), NOTEBOOK)  # type: ignore[no-untyped-call]
    print(f"refreshed {NOTEBOOK.name}")
