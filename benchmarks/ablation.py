"""Leave-one-out ablation of the final FCN at the final budget: what each idea contributes (notebook 06).

Run with `make ablation` (or `.venv/bin/python benchmarks/ablation.py`). Every configuration is the final
model and recipe (`segmenter.build_fcn`, `training.FCN_RECIPE`) with exactly one idea taken out, trained with
3 seeds and scored on the validation split; the article's FCN at the same budget is the starting point. In
full mode that is 30 runs of about 4 minutes each on 2 CPU cores (about 2 hours).

Resumable: every finished run is appended to results/ablation.json at once (written atomically), and a re-run
skips the (configuration, seed) pairs the file already holds, so an interrupted run loses at most the run in
progress. Runs go seed by seed (every configuration at seed 0 first), so a partial file already covers every
idea once. `--only NAME` and `--seeds 0 1` restrict a run; `--list` prints the configurations.
The final configuration is also scored on the test split (the headline over seeds, notebook 05); design
decisions read the validation scores only.
"""

from __future__ import annotations

import argparse
import datetime
import time

from m2nist_utils import artifacts, config, freeze, mnist, results, segmenter, surgery, training

#: Every configuration: what it takes out of the final model, how to build it, and what it changes in the
#: recipe. Built with the pretrained CNN ``cnn`` and the frozen ``pool2`` features ``features``.
CONFIGURATIONS: dict[str, dict[str, object]] = {
    "final": {"removes": "nothing: the final model and recipe", "build": {}, "recipe": {}},
    "no pretrained head": {
        "removes": "dense32/dense10 as 5x5/1x1 convolutions carrying their trained weights (fresh 1x1 head)",
        "build": {"conv_head": False},
        "recipe": {},
    },
    "no pretraining": {
        "removes": "the classifier's weights altogether (every layer starts fresh)",
        "build": {"pretrained": False},
        "recipe": {},
    },
    "no fine-tuning": {
        "removes": "training conv1/conv2 (kept frozen)",
        "build": {"finetune": False},
        "recipe": {},
    },
    "no context": {"removes": "the two dilated context layers", "build": {"context": False}, "recipe": {}},
    "no skip decoder": {
        "removes": "the pool1 skip and the 32x42 decoder (the article's two transposed convolutions instead)",
        "build": {"skips": False},
        "recipe": {},
    },
    "no pixel path": {
        "removes": "the full-resolution foreground (an 11-class softmax at 32x42, doubled)",
        "build": {"pixel_path": False},
        "recipe": {},
    },
    "no fresh images": {
        "removes": "new scenes every epoch (one fixed set, seen every epoch)",
        "build": {},
        "recipe": {"fresh": False},
    },
    "no distortion": {"removes": "the distorted training digits", "build": {}, "recipe": {"distort": False}},
    "article FCN": {
        "removes": "everything: the article's 10-class FCN on frozen pool2 features, same budget",
        "build": {"article": True},
        "recipe": {},
    },
}
SEEDS = (0, 1, 2)
SCORES = ("mean_iou", "background_iou", "digit_iou", "pixel_accuracy")
NAME = "ablation"


def build(configuration: str, cnn, features):
    """The model of one configuration (see :data:`CONFIGURATIONS`)."""
    flags = dict(CONFIGURATIONS[configuration]["build"])
    if flags.pop("article", False):
        return surgery.build_article_fcn(features, n_classes=10)
    pretrained = flags.pop("pretrained", True)
    return segmenter.build_fcn(cnn if pretrained else None, **flags)


def run_one(configuration: str, seed: int, cnn, features, pools, val, test) -> dict[str, object]:
    """Train and score one configuration with one seed; the row results/ablation.json keeps."""
    recipe = {**training.FCN_RECIPE, **CONFIGURATIONS[configuration]["recipe"]}
    config.seed_everything(seed)
    with training.distribution_strategy().scope():
        model = build(configuration, cnn, features)
    start = time.perf_counter()
    history = training.train_fcn(model, pools["train"], seed=seed, verbose=0, **recipe)
    seconds = time.perf_counter() - start
    own = segmenter.evaluate_fcn(model, val.images, val.class_maps)
    prior = segmenter.evaluate_fcn(model, val.images, val.class_maps, ink_prior=True)
    row = {
        "configuration": configuration,
        "seed": seed,
        "val": {key: own[key] for key in SCORES},
        "val_ink_prior": {"mean_iou": prior["mean_iou"]},
        "val_per_class_iou": own["per_class_iou"],
        "train_loss": history.history["loss"],
        "params": model.count_params(),
        "train_seconds": seconds,
        "device": config.describe_device(),
        "date": datetime.date.today().isoformat(),
    }
    if configuration == "final":
        final = segmenter.evaluate_fcn(model, test.images, test.class_maps)
        row["test"] = {key: final[key] for key in SCORES}
        row["test_per_class_iou"] = final["per_class_iou"]
    return row


def load_inputs() -> tuple:
    """The pretrained CNN, its frozen ``pool2`` features, the digit pools, the validation and test splits."""
    cnn = artifacts.load_or_create_cnn(seed=0)
    frozen = artifacts.load_or_create_frozen_cnn()
    pool2 = freeze.load_frozen_graph(frozen, "image", "pool2", input_shape=(64, 84, 1))
    features = surgery.FrozenFeatures(pool2, (14, 19, 8))
    pools = mnist.split_pools("auto", seed=0)
    return cnn, features, pools, artifacts.load_or_create_split("val"), artifacts.load_or_create_split("test")


def load_runs(name: str = NAME) -> list[dict[str, object]]:
    """The runs already in ``results/<name>.json`` of this mode (none when missing or of another kind)."""
    try:
        previous = results.load_results(name)
    except FileNotFoundError:
        return []
    if previous.get("kind") != "leave-one-out" or previous.get("mode") != config.mode():
        return []
    return list(previous["runs"])


def save_runs(runs: list[dict[str, object]], name: str = NAME) -> None:
    results.save_results(
        name,
        {
            "kind": "leave-one-out",
            "recipe": training.FCN_RECIPE,
            "seeds": list(SEEDS),
            "configurations": {key: value["removes"] for key, value in CONFIGURATIONS.items()},
            "runs": runs,
        },
    )


def main(argv: list[str] | None = None) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--only", nargs="+", choices=list(CONFIGURATIONS), help="these configurations only")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="seeds (default 0 1 2)")
    parser.add_argument("--list", action="store_true", help="print the configurations and exit")
    args = parser.parse_args(argv)
    if args.list:
        for key, value in CONFIGURATIONS.items():
            print(f"{key:<18} takes out {value['removes']}")
        return

    runs = load_runs()
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
            f"{configuration:<18} seed {seed}: val mean IoU {row['val']['mean_iou']:.4f} "
            f"(ink prior {row['val_ink_prior']['mean_iou']:.4f}), "
            f"background IoU {row['val']['background_iou']:.4f}, "
            f"final loss {row['train_loss'][-1]:.4f}, {row['train_seconds']:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
