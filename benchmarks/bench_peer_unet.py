"""Measured peers at our FCN's wall time: the Keras example's U-Net and a U-Net of our size from scratch.

Two peers, trained on our data stream for as long as our FCN trains, each at its best learning rate:

- ``unet``: the network of the Keras example "Image segmentation with a U-Net-like architecture"
  (F. Chollet, https://keras.io/examples/vision/oxford_pets_image_segmentation/): an Xception-style encoder
  (a 32-filter stride-2 entry convolution, then blocks of 64, 128 and 256 filters with separable convolutions,
  batch normalisation and strided 1x1 residual projections), a decoder of 256, 128, 64 and 32 filters
  (transposed convolutions, 2x upsampling, upsampled 1x1 residuals) and the example's output layer, a 3x3
  convolution with a softmax over the classes; about 2M parameters. Adapted to M2NIST: one input channel,
  11 classes, and since four halvings need a width divisible by 16, the 64x84 image zero-padded to 64x96,
  6 columns on each side, and the decoder's 64x96 features cropped back to 64x84 *before* the output layer
  (:func:`build_unet`).
- ``small_unet``: a plain U-Net (Ronneberger et al., 2015) of our FCN's size, which never saw the classifier
  (:func:`build_small_unet`): two 3x3 convolutions (batch normalisation, ReLU) per level at 64x84, 32x42 and
  16x21 with 9, 18 and 36 filters, 2x2 max pooling down, 2x2 stride-2 transposed convolutions up,
  concatenated skips and a 1x1 softmax over the 11 classes. 37,712 parameters against our 35,783: base
  width 9 is the one whose count is nearest ours (8 gives 29,891, 10 gives 46,441). 84 = 4 x 21, so no
  padding. It asks whether the classifier's pretraining, the article's premise, pays off against a small
  network trained from scratch on the same data for the same time.

Why the earlier adaptation learnt nothing (measured with ``--diagnose 90``: 90 steps of Adam 1e-3 at seed 0
on our stream, and a probe batch of 64 images of another stream, whose class-share loss is 0.411; 2-core CPU,
2026-12-06). It padded the image on the right only and cropped *after* the softmax layer. Keras' cross-entropy
uses a softmax's logits when it is handed the softmax's own output; a cropped tensor is a new one, so the
loss took the log of probabilities clipped to [1e-7, 1 - 1e-7], whose gradient is exactly zero below 1e-7.
And the example's network in training mode (batch statistics) starts far from calibrated: its probe loss at
initialisation was 5.93 (2.40 with the moving statistics), 17.1% of the digit pixels already giving their
true class p < 1e-7. Those pixels sent no gradient, the others were pushed to background until they crossed
the clip too: after 90 steps all digit pixels sat there (99.9% with the moving statistics), each costing
-ln(1e-7) = 16.12, which makes the 1.12 the loss kept (digit pixels are about 7% of an image; background
pixels cost 0.000). Per-step losses, means of 15 steps: 1.58 1.17 1.14 1.20 1.22 1.16 - above the
class-share loss, and no digit is ever predicted. The same network with only the softmax moved after the
crop (same padding, labels and input scale): 1.83 0.46 0.31 0.30 0.26 0.21; the fixed adaptation below:
1.74 0.44 0.30 0.29 0.26 0.21, both with no digit pixel left at the clip (probe loss 0.19 with batch
statistics). The cause is the order of crop and softmax, not the architecture, the padding, the labels or
the input scale. These runs also show that batch normalisation's moving statistics (momentum 0.99) lag after
90 steps: the fixed network's probe loss in inference mode was 0.88 against 0.19 with batch statistics. The
full budget gives the U-Net a few hundred steps (0.99^400 leaves 2% of the initial statistics).

Fair to each model. Our FCN trains once per seed with ``training.FCN_RECIPE`` (``segmenter.build_fcn(cnn)``,
``training.train_fcn``); its wall time at seed 0 is the budget T. Each peer trains on the same stream (fresh
images of freshly distorted training digits every epoch, sparse categorical cross-entropy, Adam) with what
ours gets: a cosine decay of its learning rate to 1% of the peak, here over the wall time T instead of
over a number of steps, and it stops at the end of the first step that ends after T. Each peer's peak
learning rate is chosen from :data:`GRID` (:data:`SMALL_GRID` for the small U-Net) by the mean IoU on the
validation split at seed 0; the chosen one is then trained with the other seeds, and only the chosen runs (and
ours) are scored on the test split. A rate chosen at an end of the grid is flagged
(``chosen_at_edge_of_grid``): extend the grid with ``--grid`` (``--small-grid``).
After training, and before any scoring, a model's batch-normalisation statistics are re-estimated from
training batches (:func:`reestimate_batch_norm`: in inference mode the example U-Net's trailing moving
averages otherwise turn every prediction into background). Every run records its model, learning rate, seed,
seconds, images seen, steps, training loss (per epoch, and over its last 100 steps), the class-share loss of
its data stream, how its batch-normalisation statistics were set, and its validation scores.

Resumable, as ``benchmarks/ablation.py``: each finished run is written to ``results/peer_unet.json`` at
once (atomically), and a re-run skips the runs it holds. Weights of the runs that may still be scored on
the test split wait under ``models/peer_unet/`` (git-ignored). ``--seeds 0`` runs seed 0 only: ours, the
grids, and the test scores of the chosen rates.

Run with ``make bench-peer`` on an otherwise idle machine (the budget is wall time): about 15 runs of
4 minutes on 2 CPU cores, 1 hour. ``--quick`` checks the script in a few minutes (quick mode, a throw-away
``M2NIST_HOME`` unless one is set, a grid of two learning rates). ``--diagnose STEPS`` trains the earlier
and the fixed adaptations for STEPS steps on the same stream and prints their losses (nothing is written).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

#: Peak learning rates tried for each peer (Adam), chosen on the validation split. Our FCN's is 8e-3.
GRID = (3e-4, 1e-3, 3e-3, 1e-2)
#: The small U-Net's grid goes one step further: its best rate was the shared grid's largest (2026-12-06).
SMALL_GRID = (*GRID, 3e-2)
QUICK_GRID = (1e-3, 3e-3)
SEEDS = (0, 1, 2)
MODELS = {
    "ours": "ours (FCN, pretrained classifier)",
    "unet": "U-Net (Keras example)",
    "small_unet": "U-Net of our size (from scratch)",
}
PEERS = ("unet", "small_unet")
NAME = "peer_unet"
KIND = "peers at equal wall time"
SCORES = ("mean_iou", "background_iou", "digit_iou", "pixel_accuracy")
#: Keras clips probabilities to [EPSILON, 1 - EPSILON] before the log when the loss cannot see the logits.
EPSILON = 1e-7
#: The final training loss is the mean per-step loss over this many last steps.
LAST_STEPS = 100
#: Cosine decay to this fraction of the peak, as ``training.train_fcn``'s ``CosineDecay(alpha=0.01)``.
ALPHA = 0.01
#: Training batches whose statistics replace batch normalisation's moving averages after training.
BN_BATCHES = 100
#: How a run's batch-normalisation statistics were set (rows scored otherwise are scored again).
BN_RULE = "re-estimated over 100 training batches after training"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="quick mode, grid of two, to check the script")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds (default 0 1 2; quick: 0)")
    parser.add_argument(
        "--grid", nargs="+", type=float, default=None, help="peak learning rates of the peers"
    )
    parser.add_argument(
        "--small-grid", nargs="+", type=float, help="the small U-Net's rates (default: SMALL_GRID)"
    )
    parser.add_argument(
        "--diagnose", type=int, metavar="STEPS", help="compare the adaptations, write nothing"
    )
    parser.add_argument(
        "--diagnose-lr", type=float, default=1e-3, help="constant learning rate of --diagnose"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.quick:
        # Before m2nist_utils.config is imported: it reads both once. A quick run must never replace the
        # full-mode data splits or results of the repository, hence a temporary home unless one is given.
        os.environ["M2NIST_QUICK"] = "1"
        os.environ.setdefault("M2NIST_HOME", tempfile.mkdtemp(prefix="m2nist-peer-"))
    if args.diagnose:
        diagnose(args.diagnose, args.diagnose_lr, seed=(args.seeds or [0])[0])
    else:
        run(args)


# ----------------------------------------------------------------------------------------------- the models


def build_unet(
    n_classes: int = 11,
    input_shape: tuple[int, int, int] = (64, 84, 1),
    width: int = 96,
    pad: str = "symmetric",
    crop: str = "before_output",
):
    """The Keras example's U-Net-like network: image (None, 64, 84, 1) -> probabilities (None, 64, 84, 11).

    Args:
        width: the padded width, a multiple of 16 (four halvings).
        pad: ``"symmetric"`` (6 + 6 columns of zeros) or ``"right"`` (12 on the right).
        crop: where the padding is cut off again. ``"before_output"`` (the fix): the decoder's features are
            cropped and the example's output layer, a 3x3 convolution with a softmax, is the model's output,
            so Keras' loss reads its logits. ``"after_softmax"`` (the earlier adaptation, kept for
            ``--diagnose``): the softmax's output is cropped, and the loss takes the log of clipped
            probabilities. ``"before_softmax"``: the logits are cropped and a softmax follows.
    """
    from m2nist_utils._tf import keras

    layers = keras.layers
    extra = width - input_shape[1]
    columns = (extra // 2, extra - extra // 2) if pad == "symmetric" else (0, extra)
    inputs = keras.Input(input_shape, name="image")
    x = layers.ZeroPadding2D(((0, 0), columns), name="pad")(inputs)  # 64x96

    x = layers.Conv2D(32, 3, strides=2, padding="same")(x)  # 32x48
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    shortcut = x
    for filters in (64, 128, 256):  # 16x24, 8x12, 4x6
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(layers.SeparableConv2D(filters, 3, padding="same")(x))
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.add([x, layers.Conv2D(filters, 1, strides=2, padding="same")(shortcut)])
        shortcut = x
    for filters in (256, 128, 64, 32):  # 8x12, 16x24, 32x48, 64x96
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(layers.Conv2DTranspose(filters, 3, padding="same")(x))
        x = layers.UpSampling2D(2)(x)
        x = layers.add([x, layers.Conv2D(filters, 1, padding="same")(layers.UpSampling2D(2)(shortcut))])
        shortcut = x
    cut = layers.Cropping2D(((0, 0), columns), name="crop")
    if crop == "before_output":
        x = cut(x)  # 64x84
        outputs = layers.Conv2D(n_classes, 3, activation="softmax", padding="same", name="probabilities")(x)
    elif crop == "after_softmax":
        outputs = cut(layers.Conv2D(n_classes, 3, activation="softmax", padding="same")(x))
    elif crop == "before_softmax":
        logits = cut(layers.Conv2D(n_classes, 3, padding="same")(x))
        outputs = layers.Softmax(name="probabilities")(logits)
    else:
        raise ValueError(f"crop must be before_output, after_softmax or before_softmax, not {crop!r}")
    return keras.Model(inputs, outputs, name="unet_keras_example")


def build_small_unet(n_classes: int = 11, input_shape: tuple[int, int, int] = (64, 84, 1), width: int = 9):
    """A plain U-Net of our FCN's size: image (None, 64, 84, 1) -> probabilities (None, 64, 84, 11).

    Two 3x3 convolutions (no bias, batch normalisation, ReLU) per level, ``width``, 2 x ``width`` and
    4 x ``width`` filters at 64x84, 32x42 and 16x21; 2x2 max pooling down, 2x2 stride-2 transposed
    convolutions up, each joined by the encoder's map of the same size; a 1x1 softmax convolution.
    ``width=9``: 37,712 parameters. Height and width must be divisible by 4.
    """
    from m2nist_utils._tf import keras

    layers = keras.layers

    def block(x, filters, name):
        for i in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
            x = layers.Activation("relu")(layers.BatchNormalization(name=f"{name}_bn{i}")(x))
        return x

    inputs = keras.Input(input_shape, name="image")
    down1 = block(inputs, width, "down1")  # 64x84
    down2 = block(layers.MaxPooling2D(2)(down1), 2 * width, "down2")  # 32x42
    bottom = block(layers.MaxPooling2D(2)(down2), 4 * width, "bottom")  # 16x21
    up2 = layers.Conv2DTranspose(2 * width, 2, strides=2, name="up2")(bottom)  # 32x42
    up2 = block(layers.Concatenate(name="skip2")([up2, down2]), 2 * width, "decode2")
    up1 = layers.Conv2DTranspose(width, 2, strides=2, name="up1")(up2)  # 64x84
    up1 = block(layers.Concatenate(name="skip1")([up1, down1]), width, "decode1")
    outputs = layers.Conv2D(n_classes, 1, activation="softmax", name="probabilities")(up1)
    return keras.Model(inputs, outputs, name="small_unet")


def build(model: str, cnn=None):
    """A fresh model by its key in :data:`MODELS` (ours with the classifier's weights given ``cnn``)."""
    from m2nist_utils import segmenter

    if model == "ours":
        return segmenter.build_fcn(cnn)
    return {"unet": build_unet, "small_unet": build_small_unet}[model]()


# --------------------------------------------------------------------------------------- the plan of runs


def chosen_rate(runs: list[dict], model: str, grid) -> float | None:
    """The peak learning rate of ``model`` with the best validation mean IoU at seed 0, once the grid is done.

    Reads the validation scores only (never a test score); ties go to the first rate in ``grid``. Ours has
    one rate (the recipe's), chosen before. ``None`` while a rate of the grid is still untrained.
    """
    scores = {
        r["learning_rate"]: r["val"]["mean_iou"] for r in runs if r["model"] == model and r["seed"] == 0
    }
    if any(rate not in scores for rate in grid):
        return None
    return max(grid, key=lambda rate: (scores[rate], -list(grid).index(rate)))


def pending_runs(runs: list[dict], grids: dict[str, tuple], seeds) -> list[tuple[str, float, int]]:
    """The (model, learning rate, seed) runs still to train, in order: ours at seed 0 first (it sets the
    wall time), then each peer's grid at seed 0, then the other seeds at the chosen rates."""
    done = {(r["model"], r["learning_rate"], r["seed"]) for r in runs}
    todo = []
    if 0 in seeds:
        todo += [(model, rate, 0) for model in MODELS for rate in grids[model]]
    for seed in (s for s in seeds if s != 0):
        for model in MODELS:
            rate = chosen_rate(runs, model, grids[model])
            if rate is not None:
                todo.append((model, rate, seed))
    return [run for run in todo if run not in done]


def is_chosen(row: dict, runs: list[dict], grids: dict[str, tuple]) -> bool:
    """Whether a run is one that the test split scores: ours, or a peer's run at its chosen rate."""
    return row["learning_rate"] == chosen_rate(runs, row["model"], grids[row["model"]])


# ----------------------------------------------------------------------------------------------- training


def step_log(
    images_per_epoch: int,
    batch_size: int,
    budget_seconds: float | None = None,
    peak: float = 0.0,
    start: float | None = None,
):
    """A Keras callback counting steps and images and keeping each step's loss (``losses``).

    With ``budget_seconds`` it decays the learning rate from ``peak`` on a cosine of the elapsed fraction of
    the budget (to ``ALPHA`` x ``peak``, as ``train_fcn``'s schedule over its steps) and stops training at
    the end of the first step that finishes after the budget, so a peer gets at least our wall time. The
    clock runs from ``start`` (a ``time.perf_counter()`` reading; by default when training begins): our
    FCN's seconds include what Keras does before its first step (building the optimizer, tracing), so
    a peer's budget must too.
    """
    from m2nist_utils._tf import keras

    class StepLog(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.steps, self.images, self.losses = 0, 0, []
            self._start = time.perf_counter() if start is None else start

        def on_epoch_begin(self, epoch, logs=None):
            self._in_epoch, self._mean = 0, 0.0

        def on_train_batch_begin(self, batch, logs=None):
            if budget_seconds is not None:
                done = min(1.0, (time.perf_counter() - self._start) / budget_seconds)
                cosine = 0.5 * (1 + math.cos(math.pi * done))
                self.model.optimizer.learning_rate = peak * (ALPHA + (1 - ALPHA) * cosine)

        def on_train_batch_end(self, batch, logs=None):
            # The last batch of an epoch may be short: count the images it really held.
            size = min(batch_size, images_per_epoch - self._in_epoch)
            self._in_epoch += size
            self.steps += 1
            self.images += size
            # Keras logs the epoch's running mean; this step's own loss is what it added to it.
            n = batch + 1
            self.losses.append(n * float(logs["loss"]) - (n - 1) * self._mean)
            self._mean = float(logs["loss"])
            if budget_seconds is not None and time.perf_counter() - self._start >= budget_seconds:
                self.model.stop_training = True

    return StepLog()


def class_share_loss(class_maps: np.ndarray, n_classes: int = 11) -> float:
    """Cross-entropy of predicting every pixel's class shares everywhere: the entropy of the shares.

    A model whose training loss stays above it has learnt less than the class frequencies.
    """
    shares = np.bincount(np.asarray(class_maps).ravel(), minlength=n_classes) / np.asarray(class_maps).size
    shares = shares[shares > 0]
    return float(-(shares * np.log(shares)).sum())


def stream_class_share_loss(pool, recipe: dict, seed: int) -> float:
    """:func:`class_share_loss` over the first epoch of the training stream of ``seed``."""
    from m2nist_utils import pipeline

    data = pipeline.training_dataset(
        pool,
        recipe["images_per_epoch"],
        recipe["batch_size"],
        fresh=False,
        seed=seed,
        distort=recipe["distort"],
    )
    counts = sum(np.bincount(maps.numpy().ravel(), minlength=11) for _, maps in data)
    return class_share_loss(np.repeat(np.arange(11), counts))


def reestimate_batch_norm(model, pool, recipe: dict, seed: int, batches: int = BN_BATCHES) -> bool:
    """Set each batch normalisation's moving mean and variance to their mean over ``batches`` batches.

    Why: the moving averages (Keras' momentum 0.99) trail the weights. After a few hundred steps of a network
    that is still changing fast they describe an earlier network, and in inference mode the Keras example's
    U-Net then predicted background everywhere: validation mean IoU 0.0000 at learning rates 3e-4 and 1e-3,
    where the same weights scored 0.2562 and 0.3499 with each batch's own statistics, and 0.2655 and 0.3576
    with statistics re-estimated from 60 training batches (300 validation images, seed 0, 2-core CPU,
    2026-12-06). Re-estimating them after training ("precise BN": Wu and Johnson, "Rethinking 'Batch' in
    BatchNorm", 2021) is standard, costs forward passes only, and is done outside the timed budget, like
    scoring. A running mean: before batch i (from 0) the momentum is i / (i + 1), so each layer ends with the
    plain mean of the batches' means and variances. Returns whether the model has batch normalisation (our
    FCN has none).
    """
    from m2nist_utils._tf import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return False
    momenta = [layer.momentum for layer in layers]
    data = stream_for_batch_norm(pool, recipe, seed, batches)
    try:
        for i in range(len(data)):
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(data[i][0], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return True


def stream_for_batch_norm(pool, recipe: dict, seed: int, batches: int = BN_BATCHES):
    """The training batches of :func:`reestimate_batch_norm`: the recipe's stream, drawn afresh for it."""
    from m2nist_utils import stream

    batch = recipe["batch_size"]
    return stream.TrainingStream(pool, batches * batch, batch, seed=10_000 + seed, distort=recipe["distort"])


def score_val(row: dict, model, inputs: dict) -> None:
    """The run's validation scores, after :func:`reestimate_batch_norm` (the rule is recorded in the row)."""
    from m2nist_utils import segmenter

    recipe = inputs["recipe"]
    has_bn = reestimate_batch_norm(model, inputs["pool"], recipe, row["seed"])
    val = segmenter.evaluate_fcn(model, inputs["val"].images, inputs["val"].class_maps)
    row["batch_norm"] = BN_RULE if has_bn else "none"
    row["val"] = {key: val[key] for key in SCORES}
    row["val_per_class_iou"] = val["per_class_iou"]


def train_one(
    model_key: str, rate: float, seed: int, inputs: dict, budget: float | None
) -> tuple[dict, object]:
    """Train one run; returns its row (without test scores) and the trained model."""
    from m2nist_utils import config, pipeline, training
    from m2nist_utils._tf import keras

    recipe = inputs["recipe"]
    config.seed_everything(seed)
    with training.distribution_strategy().scope():
        model = build(model_key, inputs["cnn"])
    if model_key == "ours":
        log = step_log(recipe["images_per_epoch"], recipe["batch_size"])
        start = time.perf_counter()
        history = training.train_fcn(
            model, inputs["pool"], seed=seed, verbose=0, callbacks=[log], **{**recipe, "learning_rate": rate}
        )
        schedule = "cosine over the recipe's steps"
    else:
        start = time.perf_counter()  # as ours: the data pipeline and the compilation count
        data = pipeline.training_dataset(
            inputs["pool"], recipe["images_per_epoch"], recipe["batch_size"], fresh=True, seed=seed,
            distort=recipe["distort"],
        )  # fmt: skip
        with model.distribute_strategy.scope():
            model.compile(
                optimizer=keras.optimizers.Adam(rate), loss=keras.losses.SparseCategoricalCrossentropy()
            )
        log = step_log(
            recipe["images_per_epoch"], recipe["batch_size"], budget_seconds=budget, peak=rate, start=start
        )
        history = model.fit(data, epochs=10**6, verbose=0, callbacks=[log], shuffle=False)
        schedule = "cosine over the wall time"
    seconds = time.perf_counter() - start
    row = {
        "model": model_key,
        "label": MODELS[model_key],
        "learning_rate": rate,
        "schedule": schedule,
        "seed": seed,
        "params": model.count_params(),
        "train_seconds": seconds,
        "images_seen": log.images,
        "steps": log.steps,
        "train_loss": history.history["loss"],
        "final_train_loss": float(np.mean(log.losses[-LAST_STEPS:])),
        "class_share_loss": inputs["share_loss"](seed),
        "device": config.describe_device(),
        "date": datetime.date.today().isoformat(),
    }
    score_val(row, model, inputs)
    return row, model


def weights_path(row: dict):
    from m2nist_utils import config

    return config.MODELS_DIR / NAME / f"{row['model']}-lr{row['learning_rate']:g}-seed{row['seed']}.npz"


def save_weights(model, row: dict) -> None:
    from m2nist_utils.files import atomic_save

    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_save(weights_path(row), lambda f: f.write(buffer.getvalue()))


def load_weights(row: dict):
    """The trained model of a run from its weights file, or ``None`` when the file is missing."""
    path = weights_path(row)
    if not path.is_file():
        return None
    model = build(row["model"])
    with np.load(path) as saved:
        model.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
    return model


def score_test(row: dict, model, test) -> None:
    from m2nist_utils import segmenter

    scores = segmenter.evaluate_fcn(model, test.images, test.class_maps)
    row["test"] = {key: scores[key] for key in SCORES}
    row["test_per_class_iou"] = scores["per_class_iou"]


# ------------------------------------------------------------------------------------------------ results


def load_runs(recipe: dict, name: str = NAME) -> list[dict]:
    """The runs already in ``results/<name>.json`` of this mode and recipe (none when the file is missing, of
    another kind, or made with another recipe: its wall time and data would not be ours now)."""
    from m2nist_utils import config, results

    try:
        previous = results.load_results(name)
    except FileNotFoundError:
        return []
    if previous.get("kind") != KIND or previous.get("mode") != config.mode():
        return []
    if previous.get("recipe") != json.loads(json.dumps(recipe)):
        print(
            f"{results.results_path(name)} was made with the recipe {previous.get('recipe')}: starting over"
        )
        return []
    return list(previous["runs"])


def budget_of(runs: list[dict], grids: dict[str, tuple]) -> float | None:
    """The peers' wall time: our FCN's training seconds at seed 0 (``None`` before that run)."""
    ours = next(
        (r for r in runs if r["model"] == "ours" and r["seed"] == 0 and r["learning_rate"] in grids["ours"]),
        None,
    )
    return ours["train_seconds"] if ours else None


def summarise(
    runs: list[dict], grids: dict[str, tuple], recipe: dict, test_images: int | None = None
) -> dict:
    """The record: every run, each model's grid and chosen rate, and per model its headline (the seed-0 run
    at the chosen rate, with test scores when it has them) and the test mean IoU over seeds."""
    from m2nist_utils import claims, config

    record: dict[str, object] = {
        "kind": KIND,
        "device": config.describe_device(),
        "versions": config.describe_versions(),
        "budget_seconds": budget_of(runs, grids),
        "recipe": recipe,
        "grid": list(grids["unet"]),
        "grids": {model: list(grids[model]) for model in PEERS},
        "models": MODELS,
    }
    for model in MODELS:
        rate = chosen_rate(runs, model, grids[model])
        head = next(
            (r for r in runs if r["model"] == model and r["seed"] == 0 and r["learning_rate"] == rate), None
        )
        if head is None:
            continue
        tested = [
            r["test"]["mean_iou"]
            for r in runs
            if r["model"] == model and r["learning_rate"] == rate and "test" in r
        ]
        record[model] = {
            "params": head["params"],
            "learning_rate": rate,
            # The best rate at an end of a grid of several: a rate beyond it might be better still.
            "chosen_at_edge_of_grid": len(grids[model]) > 1
            and rate in (min(grids[model]), max(grids[model])),
            "schedule": head["schedule"],
            "train_seconds": head["train_seconds"],
            "images_seen": head["images_seen"],
            "steps": head["steps"],
            "final_train_loss": head["final_train_loss"],
            "class_share_loss": head["class_share_loss"],
            "val_mean_iou_by_rate": {
                f"{r['learning_rate']:g}": r["val"]["mean_iou"]
                for r in runs
                if r["model"] == model and r["seed"] == 0
            },
            **head.get("test", {}),
            "per_class_iou": head.get("test_per_class_iou"),
            "test_mean_iou_seeds": tested,
            "test_mean_iou_mean_std": list(claims.mean_std(tested)) if tested else None,
        }
    record["test_images"] = test_images
    record["runs"] = runs
    return record


def save(runs: list[dict], grids: dict[str, tuple], recipe: dict, test_images: int | None = None) -> None:
    from m2nist_utils import results

    results.save_results(NAME, summarise(runs, grids, recipe, test_images))


# ----------------------------------------------------------------------------------------------------- run


def load_inputs(recipe: dict) -> dict:
    from m2nist_utils import artifacts, mnist

    pool = mnist.split_pools("auto", seed=0)["train"]
    shares: dict[int, float] = {}

    def share_loss(seed: int) -> float:
        if seed not in shares:
            shares[seed] = stream_class_share_loss(pool, recipe, seed)
        return shares[seed]

    return {
        "recipe": recipe,
        "pool": pool,
        "val": artifacts.load_or_create_split("val"),
        "test": artifacts.load_or_create_split("test"),
        "cnn": artifacts.load_or_create_cnn(),
        "share_loss": share_loss,
    }


def run(args: argparse.Namespace) -> None:
    from m2nist_utils import claims, config, results, training

    print(f"device: {config.describe_device()} | {config.describe()} | {config.describe_versions()}")
    recipe = dict(training.FCN_RECIPE)
    if config.QUICK:
        recipe.update(epochs=1, images_per_epoch=512)
    grid = tuple(args.grid or (QUICK_GRID if config.QUICK else GRID))
    seeds = tuple(args.seeds if args.seeds is not None else ((0,) if config.QUICK else SEEDS))
    if any(round(rate, 4) != rate for rate in (*grid, *(args.small_grid or ()))):
        raise ValueError(f"learning rates are recorded to 4 decimals; got {grid} {args.small_grid or ''}")
    grids = {"ours": (float(recipe["learning_rate"]),), **{peer: grid for peer in PEERS}}
    if not config.QUICK:  # the small U-Net's own grid, extended past a best rate at the shared grid's end
        grids["small_unet"] = tuple(args.small_grid or (SMALL_GRID if args.grid is None else grid))
    runs = load_runs(recipe)
    print(f"{len(runs)} run(s) already in {results.results_path(NAME)}", flush=True)
    inputs = None
    for row in [r for r in runs if r.get("batch_norm") not in (BN_RULE, "none")]:
        if row["model"] == "ours":  # no batch normalisation: its scores stand
            row["batch_norm"] = "none"
            continue
        # Scored before batch normalisation's statistics were re-estimated: again from its weights, if kept.
        inputs = inputs or load_inputs(recipe)
        model = load_weights(row) if "test" not in row else None
        if model is None:
            runs.remove(row)
            continue
        before = row["val"]["mean_iou"]
        score_val(row, model, inputs)
        save_weights(model, row)  # with the re-estimated statistics, for the test split if it is chosen
        print(
            f"{row['label']} lr {row['learning_rate']:g} seed {row['seed']}: val mean IoU {before:.4f} -> "
            f"{row['val']['mean_iou']:.4f} (batch normalisation statistics re-estimated)",
            flush=True,
        )
        save(runs, grids, recipe, len(inputs["test"].images))
    while True:
        todo = pending_runs(runs, grids, seeds)
        untested = [r for r in runs if "test" not in r and r["seed"] in seeds and is_chosen(r, runs, grids)]
        if not todo and not untested:
            break
        inputs = inputs or load_inputs(recipe)
        if untested:  # a run whose rate is chosen now: score it on the test split from its saved weights
            row = untested[0]
            model = load_weights(row)
            if model is None:  # weights lost: train the run again
                print(f"no weights at {weights_path(row)}: {row['model']} lr {row['learning_rate']:g} again")
                runs.remove(row)
                continue
            score_test(row, model, inputs["test"])
        else:
            model_key, rate, seed = todo[0]
            budget = budget_of(runs, grids)
            if model_key != "ours" and budget is None:
                raise ValueError("the peers' wall time comes from ours at seed 0: run with seed 0 first")
            row, model = train_one(model_key, rate, seed, inputs, budget)
            runs.append(row)
            if is_chosen(row, runs, grids):
                score_test(row, model, inputs["test"])
            else:
                save_weights(model, row)  # until the grid chooses
            print(
                f"{row['label']:<34} lr {rate:<6g} seed {seed}: val mean IoU {row['val']['mean_iou']:.4f}, "
                f"final loss {row['final_train_loss']:.4f} (class shares {row['class_share_loss']:.4f}), "
                f"{row['steps']} steps, {row['images_seen']:,} images, {row['train_seconds']:.0f} s",
                flush=True,
            )
        save(runs, grids, recipe, len(inputs["test"].images))

    if not runs:
        return
    record = results.load_results(NAME)
    table = [
        {
            "model": r["label"],
            "lr": f"{r['learning_rate']:g}",
            "seed": r["seed"],
            "params": f"{r['params']:,}",
            "train s": f"{r['train_seconds']:.0f}",
            "steps": r["steps"],
            "final loss": f"{r['final_train_loss']:.4f}",
            "class-share loss": f"{r['class_share_loss']:.4f}",
            "val mean IoU": f"{r['val']['mean_iou']:.4f}",
            "test mean IoU": f"{r['test']['mean_iou']:.4f}" if "test" in r else "-",
        }
        for r in runs
    ]
    print(results.format_table(table))
    for model in MODELS:
        if model in record:
            mean, std = record[model]["test_mean_iou_mean_std"] or (float("nan"), float("nan"))
            n = len(record[model]["test_mean_iou_seeds"])
            print(
                f"{MODELS[model]}: lr {record[model]['learning_rate']:g} chosen on validation; "
                f"test mean IoU {mean:.4f} +- {std:.4f} over {n} seed(s)"
                + (
                    " (at an end of the grid: extend it with --grid)"
                    if record[model]["chosen_at_edge_of_grid"]
                    else ""
                )
            )
    ours = [r["test"]["mean_iou"] for r in runs if r["model"] == "ours" and "test" in r]
    small = [r["test"]["mean_iou"] for r in runs if r["model"] == "small_unet" and "test" in r]
    if len(ours) > 1 and len(small) > 1:
        difference, threshold = claims.gap(ours, small)
        verdict = (
            "not distinguishable" if not claims.distinguishable(ours, small)
            else "pretraining pays off" if difference > 0 else "the small U-Net from scratch does better"
        )  # fmt: skip
        print(
            f"ours - small U-Net: {difference:+.4f} test mean IoU "
            f"(twice the larger spread: {threshold:.4f}): {verdict}"
        )
    print(f"written to {results.results_path(NAME)}")


# ---------------------------------------------------------------------------------------------- diagnose


def clipped_share(model, images, class_maps, training: bool) -> tuple[float, float]:
    """(loss, share of digit pixels whose true class gets p < EPSILON) of ``model`` on one batch.

    The loss is Keras' on probabilities (clipped to [EPSILON, 1 - EPSILON]); in training mode batch
    normalisation uses the batch's statistics (the weights are restored afterwards).
    """
    weights = model.get_weights()
    p = np.asarray(model(images, training=training))
    model.set_weights(weights)
    maps = np.asarray(class_maps).astype(np.int64)
    true = np.take_along_axis(p, maps[..., None], axis=-1)[..., 0]
    loss = float(-np.log(np.clip(true, EPSILON, 1 - EPSILON)).mean())
    return loss, float(np.mean(true[maps < 10] < EPSILON))


def diagnose(steps: int, rate: float, seed: int = 0) -> None:
    """Train the earlier adaptation, the same with the softmax after the crop, and the fix, for ``steps``
    steps each at a constant ``rate`` on the same stream; print losses and clipped digit pixels."""
    from m2nist_utils import config, mnist, pipeline
    from m2nist_utils._tf import keras

    variants = {
        "earlier: right pad, crop after softmax": {"pad": "right", "crop": "after_softmax"},
        "only change: softmax after the crop": {"pad": "right", "crop": "before_softmax"},
        "fixed: 6 + 6 pad, crop before output": {"pad": "symmetric", "crop": "before_output"},
    }
    pool = mnist.split_pools("auto", seed=0)["train"]
    images, maps = next(iter(pipeline.training_dataset(pool, 64, 64, fresh=False, seed=99, distort=True)))
    print(f"{config.describe_device()} | {steps} steps at Adam {rate:g} | probe: 64 images of another stream")
    print(f"class-share loss of the probe: {class_share_loss(maps.numpy()):.3f}")
    for name, flags in variants.items():
        config.seed_everything(seed)
        model = build_unet(**flags)
        model.compile(
            optimizer=keras.optimizers.Adam(rate), loss=keras.losses.SparseCategoricalCrossentropy()
        )
        start = [clipped_share(model, images, maps, training=t) for t in (True, False)]
        log = step_log(8000, 32)
        data = pipeline.training_dataset(pool, steps * 32, 32, fresh=False, seed=seed, distort=True)
        began = time.perf_counter()
        model.fit(data, epochs=1, verbose=0, callbacks=[log], shuffle=False)
        end = [clipped_share(model, images, maps, training=t) for t in (True, False)]
        window = max(1, steps // 6)
        means = [f"{np.mean(log.losses[i : i + window]):.2f}" for i in range(0, steps, window)]
        print(
            f"{name}: per-step loss, means of {window} steps: {' '.join(means)} "
            f"({time.perf_counter() - began:.0f} s)"
        )
        for when, (batch, moving) in (("start", start), ("end", end)):
            print(
                f"    probe at the {when}: loss {batch[0]:.3f} with batch statistics ({batch[1]:.1%} of digit"
                f" pixels at p < 1e-7), {moving[0]:.3f} with moving statistics ({moving[1]:.1%})"
            )


if __name__ == "__main__":
    sys.exit(main())
