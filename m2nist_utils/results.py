"""Headline figures as committed JSON files: ``results/<name>.json`` (every notebook that measures one).

The README's tables and the notebooks' prose quote these files, and ``tests/test_results.py`` fails when they
drift apart. Written atomically under ``$M2NIST_HOME/results`` - the repository's ``results/`` in a full run,
a throw-away folder under ``make test``, so a quick run never overwrites the committed figures.
:func:`format_table` prints rows of figures as an aligned text table.

- :func:`results_path`, :func:`save_results`, :func:`load_results`: ``results/<name>.json``, written
  atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import config
from .files import atomic_save


def results_path(name: str) -> Path:
    """``$M2NIST_HOME/results/<name>.json``."""
    return config.RESULTS_DIR / f"{name}.json"


def save_results(name: str, figures: dict[str, object]) -> Path:
    """Write ``figures`` (JSON-serialisable; numpy scalars and arrays are converted) with the run's mode.

    Floats are rounded to 4 decimals, the precision at which the series prints them.
    """
    record = {"mode": config.mode(), **_plain(figures)}
    text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    return atomic_save(results_path(name), lambda f: f.write(text.encode()))


def load_results(name: str, folder: str | Path | None = None) -> dict[str, object]:
    """Read ``results/<name>.json`` (from ``folder`` when given), with an error naming a missing file."""
    path = Path(folder) / f"{name}.json" if folder is not None else results_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path} (run the notebook or benchmark writing it)")
    return json.loads(path.read_text())


def format_table(rows: list[dict[str, object]]) -> str:
    """A plain-text table of dict rows with aligned columns, for printing in notebooks."""
    keys = list(rows[0])
    widths = {k: max(len(str(k)), *(len(str(r[k])) for r in rows)) for k in keys}
    lines = ["  ".join(str(k).ljust(widths[k]) for k in keys)]
    lines.append("  ".join("-" * widths[k] for k in keys))
    lines += ["  ".join(str(r[k]).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(lines)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)
    return value
