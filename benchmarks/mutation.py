"""The mutation score of the modules whose bugs would silently change a lesson's numbers (issue 19).

`mutmut <https://github.com/boxed/mutmut>`_ plants one small bug at a time (a ``<`` for a ``<=``, a constant
off by one, a call's argument dropped, ...) in a copy of the package (``mutants/``) and runs the fast lane's
tests that reach the mutated function; a mutant the tests fail on is *killed*, one they pass is *survived*.
Its settings are ``[tool.mutmut]`` in ``pyproject.toml``. The score of a module is killed / (killed +
survived), timeouts counted as killed (a mutant that makes the tests run over their time limit was noticed),
and the mutants listed in :data:`EQUIVALENT` left out with the reason they cannot be killed.

``make mutation`` checks every mutant of every target, :data:`TARGETS` (hours on 2 CPU cores), then writes
``results/mutation.json`` and prints a table. mutmut keeps every mutant's result in ``mutants/``: ``--resume``
checks only the mutants not checked yet (after an interruption), ``--survivors`` re-checks only the survivors
(after adding tests), ``--targets arrays metrics`` some targets, and ``--report`` only reads what mutmut
holds. ``--confirm`` runs each survivor against every fast-lane test in its target's test files
(:data:`TARGET_TESTS`): mutmut runs only the tests it saw reach a function, and it misses the tests that read
a module-scoped fixture built during another test; a survivor they kill counts as killed, and says so.
Targets not run keep their committed rows in the results file (``mutants/`` is lost with a fresh checkout).

Resumable across checkouts: after every run (and ``--report``) each mutant's result, each function's hash and
the confirmed survivors go to ``results/mutation_state.json``; before a run they are written back into a
fresh ``mutants/`` for every file whose source is unchanged since, and mutmut keeps the result of every
mutant whose function it finds unchanged. ``--resume`` then checks only what is left.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from m2nist_utils import config, files, results

REPO = Path(__file__).resolve().parent.parent

MUTMUT = str(Path(sys.executable).with_name("mutmut"))
#: mutmut's results, kept beside the score (``mutants/`` is git-ignored and lost with a checkout).
STATE = "mutation_state.json"

#: Target -> the mutants it holds (mutmut names them module.x_function__mutmut_N; shell-style patterns).
TARGETS: dict[str, list[str]] = {
    "metrics": ["m2nist_utils.metrics.*"],
    "m2nist": ["m2nist_utils.m2nist.*", "m2nist_utils.clutter.*"],
    "pipeline": ["m2nist_utils.pipeline.*"],
    "arrays": ["m2nist_utils.arrays.*"],
    # The losses of the network module, not the network's construction (notebooks 04-05 check that).
    "losses": [
        "m2nist_utils.segmenter.x_digits_only_loss__*",
        "m2nist_utils.segmenter.x_fused_digits_loss__*",
    ],
}

#: The test files of each target: a survivor is run against all their fast-lane tests (``--confirm``).
TARGET_TESTS: dict[str, list[str]] = {
    "metrics": ["tests/test_metrics.py"],
    "m2nist": ["tests/test_m2nist.py", "tests/test_clutter.py"],
    "pipeline": ["tests/test_pipeline.py", "tests/test_augmentation.py", "tests/test_clutter.py"],
    "arrays": ["tests/test_arrays.py"],
    "losses": ["tests/test_losses.py"],
}


def _same_reason(function: str, numbers: tuple[int, ...], reason: str) -> dict[str, str]:
    """EQUIVALENT entries for several mutants of one mutmut function (``module.x_name``) with one reason."""
    return {f"m2nist_utils.{function}__mutmut_{n}": reason for n in numbers}


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
    "m2nist_utils.m2nist.x_check_invariants__mutmut_33": (
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
    "m2nist_utils.pipeline.x_distort_with__mutmut_31": "rows[0] and rows[1] have the same shape: same zeros",
    "m2nist_utils.pipeline.x_distort_with__mutmut_48": "the transform op's fill_mode is CONSTANT by default",
    "m2nist_utils.pipeline.x_distort_with__mutmut_54": "the transform op's fill_mode is CONSTANT by default",
    "m2nist_utils.pipeline.x_measure_throughput__mutmut_11": (
        "an element's class maps have as many rows as its images: counting either counts the batch"
    ),
    **_same_reason(
        "pipeline.x__batches", (25, 27), "a DigitPool's images are uint8: tf.constant infers uint8"
    ),
    **_same_reason(
        "pipeline.x__batches",
        (30, 32),
        "labels in another integer type: gathered, plus one, cast to float32 alike",
    ),
    **_same_reason(
        "pipeline.x__batches", (41, 45, 63, 65), "an int32 epoch number: _fold casts it to int64 before use"
    ),
    **_same_reason(
        "pipeline.x__batches",
        (42, 46, 50),
        "the epoch counter only ever changes by assign_add; no model trains it",
    ),
    **_same_reason("pipeline.x__batches", (43, 47, 51, 52), "the epoch counter's name is never read"),
    **_same_reason(
        "pipeline.x__batches",
        (79, 82),
        "a sequential map draws the same chunks in the same order, only slower",
    ),
    **_same_reason(
        "pipeline.x__batches", (80, 83), "map's deterministic defaults to the dataset option, which is True"
    ),
    **_same_reason(
        "pipeline.x__batches",
        (88,),
        "prefetch's buffer size changes when batches are drawn, not what they hold",
    ),
    **_same_reason(
        "pipeline.x__cut_into_batches", (13,), "every part of a chunk has the same length on axis 0"
    ),
    **_same_reason(
        "pipeline.x__distinct_indices", (24,), "tf.sort's default axis -1 is axis 1 of the (size, k) stack"
    ),
    **_same_reason("pipeline.x_training_dataset", (14,), "plan=None is as false as plan=False"),
    **_same_reason("pipeline.x__place", (116, 119), "int64 indices gather the same corners"),
    **_same_reason(
        "pipeline.x__place",
        (65,),
        "floor(u * room) < room for every u < 1 and room <= 85 in float64: the clamp never acts",
    ),
    **_same_reason("pipeline.x__place", (85,), "ok's two columns are always equal and only column 0 is read"),
    **_same_reason(
        "pipeline.x__place",
        (182, 184),
        "an int32 attempt number: compared with RESTARTS and cast to int64 by _fold",
    ),
    **_same_reason(
        "pipeline.x__cluttered",
        (2,),
        "float64 pixels hold the same whole grey levels; scatter_fragments writes uint8 values into either",
    ),
    **_same_reason(
        "pipeline.x__cluttered",
        (28, 32, 33),
        "the scatter is a pure function of its inputs: stateful only limits graph rewrites",
    ),
}

#: A survivor of mutmut's selected tests that its target's test files kill (see :func:`confirm`).
CONFIRMED = "killed by its test files"
KILLED = {"killed", "timeout", CONFIRMED}
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


def confirmed_path() -> Path:
    """Where :func:`confirm` keeps its verdicts, beside mutmut's own results."""
    return REPO / "mutants" / "confirmed.json"


def read_confirmed() -> dict[str, str]:
    """{mutant: "killed" or "survived"} of the survivors :func:`confirm` ran, or none."""
    path = confirmed_path()
    return json.loads(path.read_text()) if path.exists() else {}


def confirm(survivors: list[str]) -> dict[str, str]:
    """Run each survivor against every fast-lane test of its target's test files (the current ones, copied
    into mutants/).

    mutmut runs only the tests it saw reach the mutated function, and it sees a call only in the test during
    which it happens: a function first called while a module-scoped fixture is built counts for that one
    test, not for the later tests that read the fixture (the tf.data pipeline's scenes). Returns
    {mutant: "killed" or "survived"}; kept in ``mutants/confirmed.json``.
    """
    shutil.copytree(REPO / "tests", REPO / "mutants" / "tests", dirs_exist_ok=True)
    path = confirmed_path()
    confirmed = read_confirmed()
    for name in survivors:
        target = next(t for t, patterns in TARGETS.items() if matching({name: ""}, patterns))
        with tempfile.TemporaryDirectory(prefix="m2nist-mutation-") as home:
            env = dict(os.environ, M2NIST_QUICK="1", M2NIST_HOME=home, TF_CPP_MIN_LOG_LEVEL="2")
            env["MUTANT_UNDER_TEST"] = name
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-x",
                "-q",
                "-p",
                "no:randomly",
                "-p",
                "no:cacheprovider",
                "-m",
                "not slow",  # the fast lane, as mutmut runs it
            ]
            done = subprocess.run(
                [*command, *TARGET_TESTS[target]], cwd=REPO / "mutants", env=env, capture_output=True
            )
        confirmed[name] = (
            "killed" if done.returncode == 1 else "survived" if done.returncode == 0 else "error"
        )
        print(f"{name}: {confirmed[name]} by {' '.join(TARGET_TESTS[target])}", flush=True)
        path.write_text(json.dumps(confirmed, indent=1))
    return confirmed


def with_confirmed(statuses: dict[str, str]) -> dict[str, str]:
    """``statuses`` with each survivor that its target's test files killed (:func:`confirm`) as
    ``killed by its test files``."""
    confirmed = read_confirmed()
    return {
        name: CONFIRMED if status in SURVIVED and confirmed.get(name) == "killed" else status
        for name, status in statuses.items()
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


def still_to_check(
    statuses: dict[str, str], patterns: list[str], wanted: set[str], unknown_whole: bool
) -> list[str]:
    """The names of the mutants matching ``patterns`` whose status is in ``wanted``; a pattern no known mutant
    matches (its file was never run, or changed since) stays whole when ``unknown_whole``.

    mutmut checks every mutant it is given by name or pattern, done or not: name only the ones wanted.
    """
    names = []
    for pattern in patterns:
        known = matching(statuses, [pattern])
        if known:
            names += [n for n in known if statuses[n] in wanted]
        elif unknown_whole:
            names.append(pattern)
    return names


def source_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes: a restored result must come from the same source."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_state() -> Path:
    """Keep what ``mutants/`` holds in ``results/mutation_state.json``: per mutated file, its source's digest,
    each mutant's exit code and each function's hash (mutmut's own records), and the confirmed survivors."""
    mutants = REPO / "mutants"
    state: dict[str, object] = {"mode": config.mode(), "files": {}}
    for meta in sorted(mutants.glob("m2nist_utils/*.py.meta")):
        source = meta.relative_to(mutants).with_suffix("")
        data = json.loads(meta.read_text())
        state["files"][source.as_posix()] = {
            "source_sha256": source_digest(REPO / source),
            "exit_code_by_key": data["exit_code_by_key"],
            "hash_by_function_name": data["hash_by_function_name"],
        }
    state["confirmed"] = read_confirmed()
    text = json.dumps(state, indent=1, sort_keys=True) + "\n"
    return files.atomic_save(REPO / "results" / STATE, lambda f: f.write(text.encode()))


def restore_state() -> list[str]:
    """Write the kept results back into ``mutants/`` where it has none: the meta file of each source file
    unchanged since (same digest) and the confirmed survivors of those files. Returns the files restored.

    mutmut regenerates the mutants beside a restored meta file and keeps each result whose function's hash
    it finds unchanged, so a fresh checkout resumes where the last run stopped.
    """
    path = REPO / "results" / STATE
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    restored = []
    for source, kept in state["files"].items():
        meta = REPO / "mutants" / f"{source}.meta"
        if meta.exists() or source_digest(REPO / source) != kept["source_sha256"]:
            continue
        meta.parent.mkdir(parents=True, exist_ok=True)
        # The keys mutmut's meta file must hold; durations are re-measured by the run.
        record = {
            "exit_code_by_key": kept["exit_code_by_key"],
            "hash_by_function_name": kept["hash_by_function_name"],
            "type_check_error_by_key": {},
            "durations_by_key": {},
            "estimated_durations_by_key": {},
        }
        meta.write_text(json.dumps(record, indent=4))
        restored.append(source)
    if restored and not confirmed_path().exists():
        prefixes = tuple(Path(s).with_suffix("").as_posix().replace("/", ".") + "." for s in restored)
        kept = {n: r for n, r in state["confirmed"].items() if n.startswith(prefixes)}
        confirmed_path().write_text(json.dumps(kept, indent=1))
    return restored


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
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="run each survivor against the fast lane of its target's test files",
    )
    args = parser.parse_args(argv)
    patterns = [pattern for target in args.targets for pattern in TARGETS[target]]
    restored = restore_state()
    if restored:
        print(f"results kept from an earlier run restored for {', '.join(restored)}", flush=True)
    if args.resume or args.survivors:
        wanted = {"not checked"} if args.resume else SURVIVED
        statuses = read_statuses() if (REPO / "mutants").exists() else {}
        patterns = still_to_check(statuses, patterns, wanted, unknown_whole=args.resume)
    if not args.report and not args.confirm and patterns:  # one run: it first runs the fast lane for stats
        run_mutmut(patterns)
    statuses = read_statuses()
    if args.confirm:
        survivors = [
            n for n in matching(statuses, patterns) if statuses[n] in SURVIVED and n not in EQUIVALENT
        ]
        confirm(survivors)
    save_state()
    statuses = with_confirmed(statuses)
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
