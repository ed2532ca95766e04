"""The mutation score of the modules whose bugs would silently change a lesson's numbers (issue 19).

`mutmut <https://github.com/boxed/mutmut>`_ plants one small bug at a time (a ``<`` for a ``<=``, a constant
off by one, a call's argument dropped, ...) in a copy of the package (``mutants/``) and runs the fast lane's
tests that reach the mutated function; a mutant the tests fail on is *killed*, one they pass is *survived*.
Its settings are ``[tool.mutmut]`` in ``pyproject.toml``. The score of a module is killed / (killed +
survived), timeouts counted as killed (a mutant that makes the tests run over their time limit was noticed),
and the mutants listed in :data:`EQUIVALENT` left out with the reason they cannot be killed.

``make mutation`` checks every mutant of every target, :data:`TARGETS` (about an hour and a half on 2 CPU
cores), then writes ``results/mutation.json`` and prints a table. mutmut keeps every mutant's result in
``mutants/``: ``--resume`` checks only the mutants not checked yet (after an interruption), ``--survivors``
re-checks only the survivors (after adding tests), ``--targets arrays metrics`` some targets, and
``--report`` only reads what mutmut holds.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import fnmatch
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from m2nist_utils import results

REPO = Path(__file__).resolve().parent.parent

MUTMUT = str(Path(sys.executable).with_name("mutmut"))

#: Target -> the mutants it holds (mutmut names them module.x_function__mutmut_N; shell-style patterns).
TARGETS: dict[str, list[str]] = {
    "metrics": ["m2nist_utils.metrics.*"],
    "m2nist": ["m2nist_utils.m2nist.*"],
    "pipeline": ["m2nist_utils.pipeline.*"],
    "arrays": ["m2nist_utils.arrays.*"],
    # The losses of the network module, not the network's construction (notebooks 04-05 check that).
    "losses": [
        "m2nist_utils.segmenter.x_digits_only_loss__*",
        "m2nist_utils.segmenter.x_fused_digits_loss__*",
    ],
}

#: Mutants no test can kill, each with the reason: the mutated program behaves as the original does.
EQUIVALENT: dict[str, str] = {
    "m2nist_utils.metrics.x_per_class_iou__mutmut_2": "astype(None) is astype(float64)",
    "m2nist_utils.metrics.x_scores_from_confusion__mutmut_12": (
        "the digit-vs-background matrix's background-background cell does not enter the digit IoU, "
        "TP / (TP + FP + FN)"
    ),
    "m2nist_utils.metrics.x_evaluate_segmentation__mutmut_29": (
        "subtracting every batch's counts negates the whole confusion matrix, and every score is a ratio of "
        "its entries"
    ),
    "m2nist_utils.metrics.x_scores_from_confusion__mutmut_13": (
        "the digit-vs-background matrix's background-background cell does not enter the digit IoU, "
        "TP / (TP + FP + FN)"
    ),
    "m2nist_utils.metrics.x_top_confusions__mutmut_9": (
        "astype(None) counts in float64, exact below 2**53 pixels, and the counts are returned as int"
    ),
    "m2nist_utils.metrics.x_evaluate_segmentation__mutmut_6": (
        "a float64 confusion matrix (dtype None) counts exactly below 2**53 pixels; every score is a ratio"
    ),
    "m2nist_utils.metrics.x_evaluate_segmentation__mutmut_8": (
        "a float64 confusion matrix (no dtype) counts exactly below 2**53 pixels; every score is a ratio"
    ),
    "m2nist_utils.segmenter.x_digits_only_loss__mutmut_8": "keras.ops.one_hot casts its indices itself",
    "m2nist_utils.segmenter.x_fused_digits_loss__mutmut_7": "keras.ops.one_hot casts its indices itself",
    "m2nist_utils.segmenter.x_digits_only_loss__mutmut_27": (
        "clipping at 2.0 instead of 1.0: a softmax's probabilities never exceed 1"
    ),
    "m2nist_utils.arrays.x_load_npy__mutmut_77": "object arrays are refused by the header check first",
    "m2nist_utils.arrays.x_load_npy__mutmut_79": "object arrays are refused by the header check first",
    "m2nist_utils.arrays.x_load_npy__mutmut_80": "object arrays are refused by the header check first",
    "m2nist_utils.arrays.x_as_uint8__mutmut_7": "a dtype's kind is one letter, never X",
    "m2nist_utils.arrays.x__one_line__mutmut_9": "codec names are case-insensitive ('ASCII' is 'ascii')",
    "m2nist_utils.m2nist.x_dataset_stats__mutmut_12": (
        "every image holds background (class 10), so bincount reaches 11 classes without minlength"
    ),
    "m2nist_utils.m2nist.x_generator_stats__mutmut_39": (
        "every image holds background (class 10), so bincount reaches 11 classes without minlength"
    ),
    "m2nist_utils.m2nist.x_check_invariants__mutmut_32": (
        "an unplaced slot's label only has to be no digit class: None compares unequal to 0..9 as 10 does"
    ),
    "m2nist_utils.m2nist.x__check_one_hot__mutmut_7": (
        "after the check that values are 0 or 1 a pixel sums to at most 11 in any integer type; uint8 only "
        "keeps the sum's memory small"
    ),
    "m2nist_utils.m2nist.x__check_one_hot__mutmut_9": (
        "after the check that values are 0 or 1 a pixel sums to at most 11 in any integer type; uint8 only "
        "keeps the sum's memory small"
    ),
    "m2nist_utils.m2nist.x_to_one_hot__mutmut_4": "a dtype's kind is one letter, never X",
}

KILLED = {"killed", "timeout"}
SURVIVED = {"survived"}


def run_mutmut(patterns: list[str]) -> None:
    """Run mutmut on the mutants that match ``patterns`` (the ones already checked are skipped by mutmut),
    its tests in quick mode in a throw-away ``M2NIST_HOME``, as ``make test-fast``."""
    with tempfile.TemporaryDirectory(prefix="m2nist-mutation-") as home:
        env = dict(os.environ, M2NIST_QUICK="1", M2NIST_HOME=home, TF_CPP_MIN_LOG_LEVEL="2")
        subprocess.run([MUTMUT, "run", "--max-children", "2", *patterns], cwd=REPO, env=env, check=True)


def read_statuses() -> dict[str, str]:
    """Every mutant mutmut knows of and its status (``killed``, ``survived``, ``timeout``, ...)."""
    done = subprocess.run(
        [MUTMUT, "results", "--all", "true"], cwd=REPO, capture_output=True, text=True, check=True
    )
    statuses = {}
    for line in done.stdout.splitlines():
        name, _, status = line.strip().partition(": ")
        if status:
            statuses[name] = status
    return statuses


def matching(statuses: dict[str, str], patterns: list[str]) -> list[str]:
    """The mutants of ``statuses`` whose names match one of ``patterns``."""
    return [n for n in statuses if any(fnmatch.fnmatch(n, p) for p in patterns)]


def score(statuses: dict[str, str], patterns: list[str]) -> dict[str, object]:
    """Counts by status and the score of the mutants that match ``patterns``, equivalent ones left out."""
    names = matching(statuses, patterns)
    counts = collections.Counter(statuses[n] for n in names if n not in EQUIVALENT)
    killed = sum(counts[s] for s in KILLED)
    survived = sum(counts[s] for s in SURVIVED)
    return {
        "mutants": len(names),
        "equivalent": sorted(n for n in names if n in EQUIVALENT),
        "counts": dict(sorted(counts.items())),
        "killed": killed,
        "survived": survived,
        "score": round(killed / (killed + survived), 4) if killed + survived else None,
        "survivors": sorted(n for n in names if statuses[n] in SURVIVED and n not in EQUIVALENT),
    }


def merged_modules(statuses: dict[str, str], targets: list[str], commit: str) -> dict[str, dict]:
    """The rows of ``targets`` scored from ``statuses``; every other target keeps its committed row.

    mutmut's results live in the git-ignored ``mutants/``, lost with a fresh checkout: a run of some targets
    must not erase what an earlier run measured of the others. Each row says when and on which commit it
    was measured.
    """
    try:
        previous = results.load_results("mutation", REPO / "results")["modules"]
    except FileNotFoundError:
        previous = {}
    modules = {}
    for target in TARGETS:
        if target in targets or target not in previous:
            row = score(statuses, TARGETS[target])
            modules[target] = {**row, "date": datetime.date.today().isoformat(), "commit": commit}
        else:
            modules[target] = previous[target]
    return modules


def current_commit() -> str:
    """The checked-out commit (short hash), with ``+changes`` when the tree differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "m2nist_utils", "tests"], cwd=REPO)
    return head.stdout.strip() + ("+changes" if dirty.returncode else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--report", action="store_true", help="only read mutmut's results")
    parser.add_argument("--resume", action="store_true", help="check only the mutants not checked yet")
    parser.add_argument("--survivors", action="store_true", help="re-check only the survivors")
    args = parser.parse_args(argv)
    patterns = [pattern for target in args.targets for pattern in TARGETS[target]]
    if args.resume or args.survivors:
        wanted = {"not checked"} if args.resume else SURVIVED
        # mutmut checks every mutant it is given by name, done or not: name only the ones wanted.
        if (REPO / "mutants").exists():
            statuses = read_statuses()
            patterns = [n for n in matching(statuses, patterns) if statuses[n] in wanted]
    if not args.report and patterns:  # one mutmut run: each first runs the whole fast lane for its stats
        run_mutmut(patterns)
    statuses = read_statuses()
    modules = merged_modules(statuses, args.targets, commit=current_commit())
    record = {
        "tool": "mutmut "
        + subprocess.run([MUTMUT, "--version"], capture_output=True, text=True).stdout.split()[-1],
        "tests": "the fast lane (pytest -m 'not slow'), see [tool.mutmut] in pyproject.toml",
        "equivalent": EQUIVALENT,
        "modules": modules,
        "date": datetime.date.today().isoformat(),
    }
    results.save_results("mutation", record)
    for target, row in modules.items():
        shown = f"{row['score']:.1%}" if row["score"] is not None else "not run"
        print(f"{target:<9} {row['mutants']:>4} mutants  {row['counts']}  score {shown}")


if __name__ == "__main__":
    main()
