"""A measured peer: the Keras example's U-Net-like network, trained as long as our FCN, on the same data.

The peer is the network of the Keras example "Image segmentation with a U-Net-like architecture"
(F. Chollet, https://keras.io/examples/vision/oxford_pets_image_segmentation/): an Xception-style encoder
(a 32-filter stride-2 entry convolution, then blocks of 64, 128 and 256 filters with separable convolutions,
batch normalisation and strided 1x1 residual projections) and a decoder of 256, 128, 64 and 32 filters
(transposed convolutions, 2x upsampling, upsampled 1x1 residuals), about 2M parameters. Adapted here to
M2NIST: one input channel, 11 classes, the 64x84 image zero-padded to 64x96 (four halvings need a width
divisible by 16) and the output cropped back to 64x84.

One run, one machine, one data stream: the script first trains our FCN (``segmenter.build_fcn`` with
``training.FCN_RECIPE``) and measures its wall time T, then trains the U-Net on the same stream (fresh images
of freshly distorted training digits every epoch, sparse categorical cross-entropy, Adam) and stops it at the
first step that ends after T seconds. Both are scored on the same test split; the figures go to
``results/peer_unet.json`` and a table is printed.

Run with ``make bench-peer`` (full mode: several minutes, on an otherwise idle machine). ``--quick`` trains
both for a few seconds in quick mode, in a throw-away ``M2NIST_HOME`` unless one is set, to check the script.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

SCORES = ("mean_iou", "background_iou", "digit_iou", "pixel_accuracy", "per_class_iou")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds of training, to check the script")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unet-lr", type=float, default=1e-4, help="the U-Net's Adam learning rate")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.quick:
        # Before m2nist_utils.config is imported: it reads both once. A quick run must never replace the
        # full-mode data splits or results of the repository, hence a temporary home unless one is given.
        os.environ["M2NIST_QUICK"] = "1"
        os.environ.setdefault("M2NIST_HOME", tempfile.mkdtemp(prefix="m2nist-peer-"))
    run(args)


def run(args: argparse.Namespace) -> None:
    from m2nist_utils import artifacts, config, mnist, pipeline, results, segmenter, training
    from m2nist_utils._tf import keras

    print(f"device: {config.describe_device()} | {config.describe()} | {config.describe_versions()}")
    recipe = dict(training.FCN_RECIPE)
    if args.quick:
        recipe.update(epochs=1, images_per_epoch=512)
    pool = mnist.split_pools("auto", seed=0)["train"]
    test = artifacts.load_or_create_split("test")
    cnn = artifacts.load_or_create_cnn()

    # Ours, exactly as notebook 05 trains the final model (on a fresh copy: models/fcn.keras stays as it is).
    keras.utils.set_random_seed(args.seed)
    with training.distribution_strategy().scope():
        ours = segmenter.build_fcn(cnn)
    ours_log = step_log(recipe["images_per_epoch"], recipe["batch_size"])
    start = time.perf_counter()
    training.train_fcn(ours, pool, seed=args.seed, verbose=2, callbacks=[ours_log], **recipe)
    budget = time.perf_counter() - start
    print(f"ours: {budget:.1f} s -> the U-Net trains for as long")

    keras.utils.set_random_seed(args.seed)
    with training.distribution_strategy().scope():
        unet = build_unet()
        unet.compile(
            optimizer=keras.optimizers.Adam(args.unet_lr), loss=keras.losses.SparseCategoricalCrossentropy()
        )
    unet_log = step_log(recipe["images_per_epoch"], recipe["batch_size"], budget_seconds=budget)
    data = pipeline.training_dataset(
        pool, recipe["images_per_epoch"], recipe["batch_size"], fresh=True, seed=args.seed, distort=True
    )
    start = time.perf_counter()
    unet.fit(data, epochs=10**6, verbose=2, callbacks=[unet_log], shuffle=False)
    unet_seconds = time.perf_counter() - start

    record = {"device": config.describe_device(), "budget_seconds": budget, "test_images": len(test.images)}
    rows = []
    for name, model, seconds, log, extra in (
        ("ours", ours, budget, ours_log, {"learning_rate": recipe["learning_rate"], "schedule": "cosine"}),
        ("unet", unet, unet_seconds, unet_log, {"learning_rate": args.unet_lr, "schedule": "constant"}),
    ):
        scores = segmenter.evaluate_fcn(model, test.images, test.class_maps)
        record[name] = {
            "params": model.count_params(),
            "train_seconds": seconds,
            "images_seen": log.images,
            "steps": log.steps,
            **extra,
            **{k: scores[k] for k in SCORES},
        }
        rows.append(
            {
                "model": "ours (FCN)" if name == "ours" else "U-Net (Keras example)",
                "parameters": f"{model.count_params():,}",
                "train s": f"{seconds:.0f}",
                "images seen": f"{log.images:,}",
                "mean IoU": f"{scores['mean_iou']:.4f}",
                "background IoU": f"{scores['background_iou']:.4f}",
            }
        )
    path = results.save_results("peer_unet", record)
    print(results.format_table(rows))
    print(f"scored on {len(test.images):,} test images; written to {path}")


def step_log(images_per_epoch: int, batch_size: int, budget_seconds: float | None = None):
    """A Keras callback counting steps and images; with ``budget_seconds``, it stops training after that.

    Training stops at the end of the first step that finishes after the budget (Keras checks
    ``stop_training`` after every step), so the U-Net gets at least our FCN's wall time, never less.
    """
    from m2nist_utils._tf import keras

    class StepLog(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.steps, self.images, self._start = 0, 0, time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self._in_epoch = 0

        def on_train_batch_end(self, batch, logs=None):
            # The last batch of an epoch may be short: count the images it really held.
            size = min(batch_size, images_per_epoch - self._in_epoch)
            self._in_epoch += size
            self.steps += 1
            self.images += size
            if budget_seconds is not None and time.perf_counter() - self._start >= budget_seconds:
                self.model.stop_training = True

    return StepLog()


def build_unet(n_classes: int = 11, input_shape: tuple[int, int, int] = (64, 84, 1), width: int = 96):
    """The Keras example's U-Net-like network: image (None, 64, 84, 1) -> probabilities (None, 64, 84, 11).

    The input is zero-padded on the right to ``width`` (a multiple of 16) and the output cropped back.
    """
    from m2nist_utils._tf import keras

    layers = keras.layers
    pad = width - input_shape[1]
    inputs = keras.Input(input_shape, name="image")
    x = layers.ZeroPadding2D(((0, 0), (0, pad)), name="pad")(inputs)  # 64x96

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
    x = layers.Conv2D(n_classes, 3, activation="softmax", padding="same")(x)
    outputs = layers.Cropping2D(((0, 0), (0, pad)), name="probabilities")(x)  # 64x84
    return keras.Model(inputs, outputs, name="unet_keras_example")


if __name__ == "__main__":
    sys.exit(main())
