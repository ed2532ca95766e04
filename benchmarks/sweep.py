"""A seeded sweep of the FCN's learning rate, batch size and width at a short budget (Optuna; notebook 07).

The article closes by saying that a network this small makes hundreds of experiments affordable. This script
runs a factorial grid (:data:`SPACE`: 4 learning rates x 3 batch sizes x 2 context widths = 24 trials) through
Optuna's ``GridSampler`` (seeded, so the order of the trials repeats), each trial the final model
(``segmenter.build_fcn(cnn, width=...)``) trained at :data:`BUDGET` and scored on the validation split. The
learning rate is the peak of the recipe's cosine schedule, as given (not scaled with the batch).

Resumable: the study lives in Optuna's journal file ``results/sweep.journal`` (JSON lines), so an interrupted
sweep goes on where it stopped (a trial cut short runs again last); after every trial the readable record,
``results/sweep.json``, is written again (atomically) from the journal. ``--quick`` checks the script in a
minute (quick mode, a throw-away ``M2NIST_HOME`` unless one is set, 2 trials of a tiny budget).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

#: The grid: every combination is one trial.
SPACE = {
    "learning_rate": [0.002, 0.004, 0.008, 0.016],
    "batch_size": [16, 32, 64],
    "width": [16, 32],
}
#: A short budget: the final recipe's fresh, distorted images, 3 epochs of 3,000 (the recipe: 12 of 8,000).
BUDGET = {"epochs": 3, "images_per_epoch": 3_000, "fresh": True, "distort": True}
QUICK_BUDGET = {"epochs": 1, "images_per_epoch": 128, "fresh": True, "distort": True}
NAME = "sweep"


def objective(trial, cnn, pool, val, budget: dict) -> float:
    """Train one configuration of the grid; its validation mean IoU (the figures go to the trial's attrs)."""
    from m2nist_utils import config, segmenter, training

    rate = trial.suggest_categorical("learning_rate", SPACE["learning_rate"])
    batch = trial.suggest_categorical("batch_size", SPACE["batch_size"])
    width = trial.suggest_categorical("width", SPACE["width"])
    config.seed_everything(0)  # every trial starts from the same draw of its fresh weights
    with training.build_scope():
        model = segmenter.build_fcn(cnn, width=width)
    start = time.perf_counter()
    history = training.train_fcn(
        model, pool, batch_size=batch, learning_rate=rate, seed=0, verbose=0, **budget
    )
    seconds = time.perf_counter() - start
    scores = segmenter.evaluate_fcn(model, val.images, val.class_maps)
    trial.set_user_attr("params", int(model.count_params()))
    trial.set_user_attr("train_seconds", round(seconds, 1))
    trial.set_user_attr("final_train_loss", round(float(history.history["loss"][-1]), 4))
    trial.set_user_attr("val_background_iou", round(float(scores["background_iou"]), 4))
    return float(scores["mean_iou"])


def record(study, budget: dict) -> dict:
    """The readable summary of the study: every finished trial, the best, the grid and the budget."""
    from m2nist_utils import config

    trials = [
        {
            "number": t.number,
            **t.params,
            "val_mean_iou": round(t.value, 4),
            **t.user_attrs,
        }
        for t in study.trials
        if t.state.name == "COMPLETE"
    ]
    best = max(trials, key=lambda t: t["val_mean_iou"]) if trials else None
    return {
        "kind": "sweep",
        "sampler": "optuna.samplers.GridSampler(seed=0)",
        "space": SPACE,
        "budget": budget,
        "device": config.describe_device(),
        "trials": trials,
        "best": best,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="quick mode, 2 trials, to check the script")
    args = parser.parse_args(argv)
    if args.quick:
        # Before m2nist_utils.config is imported: it reads both once.
        os.environ["M2NIST_QUICK"] = "1"
        os.environ.setdefault("M2NIST_HOME", tempfile.mkdtemp(prefix="m2nist-sweep-"))
    from m2nist_utils import artifacts, config, mnist, results

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = QUICK_BUDGET if config.QUICK else BUDGET
    journal = config.RESULTS_DIR / f"{NAME}.journal"
    journal.parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(
        study_name=f"fcn-{config.mode()}",
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.GridSampler(SPACE, seed=0),
    )
    n_grid = 2 if config.QUICK else math.prod(len(values) for values in SPACE.values())
    finished = sum(t.state.name == "COMPLETE" for t in study.trials)
    print(f"{config.describe()} | device: {config.describe_device()}")
    print(f"{finished} of {n_grid} trial(s) already in {journal}", flush=True)
    if finished >= n_grid:
        return
    cnn = artifacts.load_or_create_cnn(seed=0)
    pool = mnist.split_pools("auto", seed=0)["train"]
    val = artifacts.load_or_create_split("val")

    def report(study, trial) -> None:
        results.save_results(NAME, record(study, budget))
        attrs, params = trial.user_attrs, trial.params
        print(
            f"trial {trial.number:>2}: lr {params['learning_rate']:<6g} batch {params['batch_size']:<3} "
            f"width {params['width']:<3} val mean IoU {trial.value:.4f} "
            f"(loss {attrs['final_train_loss']:.4f}, {attrs['train_seconds']:.0f} s)",
            flush=True,
        )

    study.optimize(
        lambda trial: objective(trial, cnn, pool, val, budget), n_trials=n_grid - finished, callbacks=[report]
    )
    best = record(study, budget)["best"]
    print(f"best: {best}")


if __name__ == "__main__":
    main()
