"""The example notebooks: stored with their pictures for the docs, and run top to bottom."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "docs" / "examples").glob("*.ipynb"))


def _images(nb) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )


def _errors(nb) -> list[str]:
    return [
        f"{out.ename}: {out.evalue}"
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]


def test_there_is_an_example_notebook():
    assert [p.name for p in NOTEBOOKS] == ["radar-end-to-end.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_notebooks_carry_their_outputs_for_the_docs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "run the notebook before committing"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run in order"
    assert not _errors(nb)
    assert _images(nb) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    """Executes the notebook in a fresh kernel (about a minute on 2 cores)."""
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    stored = nbformat.read(path, as_version=4)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    assert not _errors(nb)
    assert _images(nb) == _images(stored)  # every picture is drawn again
    for old, new in zip(stored.cells, nb.cells, strict=True):
        if old.cell_type == "code":  # each cell shows the same kinds of output as stored
            kinds = {k for out in new.outputs for k in out.get("data", {})}
            assert {k for out in old.outputs for k in out.get("data", {})} <= kinds | {
                "application/vnd.jupyter.widget-view+json"
            }, old.source
    assert (tmp_path / "radar_downscaled.nc").exists()
