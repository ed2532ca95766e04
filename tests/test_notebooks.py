"""Static checks of the committed notebooks (nbval re-executes them; see the Makefile)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_are_numbered_in_sequence():
    assert [int(p.name[:2]) for p in NOTEBOOKS] == list(range(1, len(NOTEBOOKS) + 1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_executed_and_complete(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c["execution_count"] for c in code]
    assert None not in counts, "run the notebook top to bottom before committing"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), "execution counts out of order"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert markdown.lstrip().startswith("# "), "a notebook opens with its H1 title"
    for section in ("## Setup", "## Summary", "## Exercises"):
        assert section in markdown
    source = "\n".join("".join(c["source"]) for c in code)
    assert "sys.path" not in source and "!pip" not in source and "allow_pickle=True" not in source


@pytest.mark.slow
def test_a_notebook_runs_alone_in_a_fresh_home(tmp_path, monkeypatch):
    """Notebook 04 needs the CNN of 02 and the frozen graph of 03; alone, it must rebuild both.

    Run once here: nbval runs it again (``make test``), in a home where 02 and 03 left what it reuses.
    """
    import nbformat
    from nbclient import NotebookClient

    path = next(p for p in NOTEBOOKS if p.name.startswith("04_"))
    monkeypatch.setenv("M2NIST_QUICK", "1")
    monkeypatch.setenv("M2NIST_HOME", str(tmp_path))  # the kernel inherits this environment
    nb = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": path.parent}}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources).execute()
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert (tmp_path / "models" / "cnn.keras").is_file() and (tmp_path / "models" / "cnn_frozen.pb").is_file()
    assert not list(tmp_path.rglob(".*.tmp-*")), "a temporary file was left behind"
