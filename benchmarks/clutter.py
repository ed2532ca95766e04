"""Cluttered M2NIST: what a network needs to tell digits from fragments of digits, and a recipe that does
not collapse (notebook 09, issue 18).

Run with `make clutter` (or `.venv/bin/python benchmarks/clutter.py`). Every configuration trains the final
FCN (or one variant of it) with 3 seeds and scores it on the clean and on the cluttered validation split (the
same digits, fragments of other digits added on the background, ``m2nist.Clutter(6, 8)``). One idea changes
at a time:

- the final model and recipe trained on clean images, then on cluttered ones;
- ``coarse where``: the foreground logit also reads the decoder's 32x42 map
  (``build_fcn(coarse_where=True)``);
- the ``stable`` recipe (``training.STABLE_RECIPE``): the final recipe's peak rate reached by one epoch of
  warm-up, gradients clipped to norm 1; then that recipe at 0.5x and 2x its rate, clean and cluttered.

A run that ends predicting one class everywhere is recorded as collapsed (``stability.check_not_collapsed``),
not refused: here a collapse is a finding. In full mode a run takes about 4 minutes on 2 CPU cores.

Resumable: every finished run is appended to results/clutter.json at once (written atomically), and a re-run
skips the (configuration, seed) pairs the file already holds. Runs go seed by seed, so a partial file covers
every configuration once. `--only NAME`, `--seeds 0 1` restrict a run; `--list` prints the configurations.
"""

from __future__ import annotations

import argparse
import datetime
import time

from m2nist_utils import artifacts, config, m2nist, mnist, results, segmenter, stability, training

import numpy as np

CLUTTER = m2nist.CLUTTERED
#: What the stable recipe changes in the final one (notebook 09).
STABLE = {k: v for k, v in training.STABLE_RECIPE.items() if training.FCN_RECIPE.get(k) != v}
RATE = training.STABLE_RECIPE["learning_rate"]

#: Every configuration: what it is, the model's flags, the recipe's changes, and whether it trains on clutter.
CONFIGURATIONS: dict[str, dict[str, object]] = {
    "final, clean": {"is": "the final model and recipe (notebook 05)", "build": {}, "recipe": {}},
    "final, clutter": {
        "is": "the same, trained on cluttered images",
        "build": {},
        "recipe": {"clutter": True},
    },
    "coarse where, clutter": {
        "is": "+ the decoder's foreground logit beside the pixels' one",
        "build": {"coarse_where": True},
        "recipe": {"clutter": True},
    },
    "coarse where, stable, clutter": {
        "is": "+ the stable recipe (one epoch of warm-up, gradients clipped to norm 1)",
        "build": {"coarse_where": True},
        "recipe": {**STABLE, "clutter": True},
    },
    "coarse where, stable, clean": {
        "is": "the same model and recipe trained on clean images",
        "build": {"coarse_where": True},
        "recipe": dict(STABLE),
    },
    "stable x0.5, clutter": {
        "is": "the stable recipe at half its rate",
        "build": {"coarse_where": True},
        "recipe": {**STABLE, "learning_rate": RATE / 2, "clutter": True},
    },
    "stable x2, clutter": {
        "is": "the stable recipe at twice its rate",
        "build": {"coarse_where": True},
        "recipe": {**STABLE, "learning_rate": RATE * 2, "clutter": True},
    },
    "stable x0.5, clean": {
        "is": "the stable recipe at half its rate, clean images",
        "build": {"coarse_where": True},
        "recipe": {**STABLE, "learning_rate": RATE / 2},
    },
    "stable x2, clean": {
        "is": "the stable recipe at twice its rate, clean images",
        "build": {"coarse_where": True},
        "recipe": {**STABLE, "learning_rate": RATE * 2},
    },
}
SEEDS = (0, 1, 2)
SCORES = ("mean_iou", "background_iou", "digit_iou")
NAME = "clutter"


def recipe_of(configuration: str) -> dict[str, object]:
    """The keyword arguments of ``training.train_fcn`` for one configuration."""
    changes = dict(CONFIGURATIONS[configuration]["recipe"])
    clutter = CLUTTER if changes.pop("clutter", False) else None
    return {**training.FCN_RECIPE, **changes, "clutter": clutter}


def run_one(configuration: str, seed: int, cnn, pool, val, val_clutter, test, test_clutter) -> dict:
    """Train and score one configuration with one seed; the row results/clutter.json keeps."""
    config.seed_everything(seed)
    with training.build_scope():
        model = segmenter.build_fcn(cnn, **CONFIGURATIONS[configuration]["build"])
    start = time.perf_counter()
    recipe = recipe_of(configuration)
    history = training.train_fcn(model, pool, seed=seed, verbose=0, **recipe)
    seconds = time.perf_counter() - start
    try:
        stability.check_not_collapsed(model, val.images)
        collapsed = False
    except stability.TrainingCollapsed:
        collapsed = True
    row = {
        "configuration": configuration,
        "seed": seed,
        "collapsed": collapsed,
        "background_share": float(stability.predicted_shares(model, val_clutter.images)[-1]),
        "val": pick(segmenter.evaluate_fcn(model, val.images, val.class_maps)),
        "val_clutter": pick(segmenter.evaluate_fcn(model, val_clutter.images, val_clutter.class_maps)),
        "val_clutter_ink_prior": pick(
            segmenter.evaluate_fcn(model, val_clutter.images, val_clutter.class_maps, ink_prior=True)
        ),
        "recipe": {
            key: recipe[key] for key in ("learning_rate", "warmup_epochs", "clipnorm") if key in recipe
        },
        "train_loss": history.history["loss"],
        "params": model.count_params(),
        "train_seconds": seconds,
        "device": config.describe_device(),
        "date": datetime.date.today().isoformat(),
    }
    if configuration in ("final, clean", "coarse where, stable, clutter"):
        row["test"] = pick(segmenter.evaluate_fcn(model, test.images, test.class_maps))
        row["test_clutter"] = pick(
            segmenter.evaluate_fcn(model, test_clutter.images, test_clutter.class_maps)
        )
    return row


def pick(scores: dict[str, object]) -> dict[str, object]:
    return {key: scores[key] for key in SCORES}


def load_inputs() -> tuple:
    """The pretrained CNN, the training digits, and the validation and test splits, clean and cluttered."""
    cnn = artifacts.load_or_create_cnn(seed=0)
    pool = mnist.split_pools("auto", seed=0)["train"]
    splits = [artifacts.load_or_create_split(s, clutter=c) for s in ("val", "test") for c in (None, CLUTTER)]
    return (cnn, pool, *splits)


def load_runs(name: str = NAME) -> list[dict[str, object]]:
    """The runs already in ``results/<name>.json`` of this mode (none when missing or of another mode)."""
    try:
        previous = results.load_results(name)
    except FileNotFoundError:
        return []
    return list(previous["runs"]) if previous.get("mode") == config.mode() else []


def slug(configuration: str) -> str:
    """A configuration's name as a key without spaces, commas or dots ("stable x0.5, clean" ->
    "stable_x0_5_clean"), for paths into the results file such as the README's markers."""
    return "_".join(configuration.replace(",", " ").replace(".", "_").split())


def summarize(runs: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Per configuration: seeds, collapsed runs, and mean and std over seeds of each score and the time."""
    summary = {}
    for configuration in CONFIGURATIONS:
        rows = [r for r in runs if r["configuration"] == configuration]
        if not rows:
            continue
        entry = {"seeds": len(rows), "collapsed": sum(r["collapsed"] for r in rows)}
        for split in ("val", "val_clutter", "val_clutter_ink_prior", "test", "test_clutter"):
            for score in SCORES:
                values = [r[split][score] for r in rows if split in r and score in r[split]]
                if values:
                    entry.setdefault(split, {})[score] = {
                        "mean": float(np.mean(values)),
                        "std": float(np.std(values)),
                    }
        entry["train_seconds"] = {"mean": float(np.mean([r["train_seconds"] for r in rows]))}
        summary[slug(configuration)] = entry
    return summary


def save_runs(runs: list[dict[str, object]], name: str = NAME) -> None:
    results.save_results(
        name,
        {
            "clutter": CLUTTER._asdict(),
            "recipe": training.FCN_RECIPE,
            "stable": STABLE,
            "seeds": list(SEEDS),
            "configurations": {key: value["is"] for key, value in CONFIGURATIONS.items()},
            "summary": summarize(runs),
            "runs": runs,
        },
    )


def main(argv: list[str] | None = None) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--only", nargs="+", choices=list(CONFIGURATIONS), help="these configurations only")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="seeds (default 0 1 2)")
    parser.add_argument("--list", action="store_true", help="print the configurations and exit")
    parser.add_argument(
        "--report", action="store_true", help="rewrite the summary of the runs held, run none"
    )
    args = parser.parse_args(argv)
    if args.list:
        for key, value in CONFIGURATIONS.items():
            print(f"{key:<30} {value['is']}")
        return
    runs = load_runs()
    if args.report:
        save_runs(runs)
        for key, entry in summarize(runs).items():
            print(f"{key:<30} {entry['seeds']} seed(s), {entry['collapsed']} collapsed")
        return
    done = {(r["configuration"], r["seed"]) for r in runs}
    todo = [(c, s) for s in args.seeds for c in (args.only or CONFIGURATIONS) if (c, s) not in done]
    print(f"{config.describe()} | device: {config.describe_device()}")
    print(f"{len(done)} run(s) already in {results.results_path(NAME)}; {len(todo)} to go", flush=True)
    if not todo:
        return
    inputs = load_inputs()
    for configuration, seed in todo:
        row = run_one(configuration, seed, *inputs)
        runs.append(row)
        save_runs(runs)
        print(
            f"{configuration:<30} seed {seed}: val mean IoU clean {row['val']['mean_iou']:.4f}, "
            f"cluttered {row['val_clutter']['mean_iou']:.4f} (background "
            f"{row['val_clutter']['background_iou']:.4f}; "
            f"ink prior {row['val_clutter_ink_prior']['mean_iou']:.4f})"
            f"{', COLLAPSED' if row['collapsed'] else ''}, {row['train_seconds']:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
