"""Speed of the FCN's training input: the tf.data pipeline against the Python generator it replaces.

Run with `make bench` (or `.venv/bin/python benchmarks/bench_pipeline.py`). Both deliver batches of distorted
64x84 images with their class maps, no model, with the final recipe's epoch size and batch size. Prints
`input pipeline: N images/s` (median of rounds), the old generator's figure and how long each takes to
deliver its first batch, and writes them to ``results/input_pipeline.json``; asserts nothing.
Target (issue 11): at least 10,000 images/s on 2 CPU cores.
The old generator distorts the whole pool every epoch, so its figure falls as the pool grows (the offline
sample holds 3,500 training digits, MNIST 54,000); the pipeline distorts only the digits it places.
"""

from __future__ import annotations

import argparse
import os
import time

from m2nist_utils import config, m2nist, mnist, pipeline, results, training
from m2nist_utils._tf import tf

import numpy as np


def generator_dataset(pool: mnist.DigitPool, images_per_epoch: int, batch_size: int) -> tf.data.Dataset:
    """The generator this pipeline replaces: per epoch, distort the whole pool and compose every image in
    Python (``m2nist.compose_images``) before the first batch, then yield batches (as training did)."""
    epochs = iter(range(10**9))

    def scenes():
        epoch = next(epochs)
        data = m2nist.compose_images(training.distort_digits(pool, epoch), images_per_epoch, seed=epoch)
        for start in range(0, images_per_epoch, batch_size):
            yield (
                m2nist.to_input(data.images[start : start + batch_size]),
                data.class_maps[start : start + batch_size].astype(np.int32),
            )

    signature = (
        tf.TensorSpec((None, m2nist.HEIGHT, m2nist.WIDTH, 1), tf.float32),
        tf.TensorSpec((None, m2nist.HEIGHT, m2nist.WIDTH), tf.int32),
    )
    return tf.data.Dataset.from_generator(scenes, output_signature=signature).prefetch(tf.data.AUTOTUNE)


def first_batch_seconds(dataset: tf.data.Dataset) -> float:
    start = time.perf_counter()
    next(iter(dataset))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=float, default=3.0, help="epochs of batches per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of the pipeline (median)")
    args = parser.parse_args()

    recipe = training.FCN_RECIPE
    images, batch_size = int(recipe["images_per_epoch"]), int(recipe["batch_size"])
    pool = mnist.split_pools("auto")["train"]
    print(f"device: {config.describe_device()} | {config.describe()} | {os.cpu_count()} CPU cores")
    print(f"{len(pool.images):,} pool digits, {images:,} distorted images per epoch, batches of {batch_size}")
    # Batches spanning several epochs, so the old generator pays its per-epoch composition in the timing.
    batches = int(args.epochs * images / batch_size)

    new = pipeline.training_dataset(pool, images, batch_size, distort=True)
    new_first = first_batch_seconds(pipeline.training_dataset(pool, images, batch_size, distort=True))
    rate = float(np.median([pipeline.measure_throughput(new, batches) for _ in range(args.rounds)]))
    old = generator_dataset(pool, images, batch_size)
    old_first = first_batch_seconds(generator_dataset(pool, images, batch_size))
    old_rate = pipeline.measure_throughput(old, batches)

    print(f"input pipeline: {rate:,.0f} images/s")
    print(f"old generator: {old_rate:,.0f} images/s (the pipeline is {rate / old_rate:.1f}x as fast)")
    print(f"first batch after {new_first:.2f} s (old generator: {old_first:.2f} s)")
    print("target: at least 10,000 images/s on 2 CPU cores")
    path = results.save_results(
        "input_pipeline",
        {
            "mode": config.mode(),
            "device": config.describe_device(),
            "pool_digits": len(pool.images),
            "images_per_epoch": images,
            "batch_size": batch_size,
            "images_per_s": round(rate),
            "old_generator_images_per_s": round(old_rate),
            "first_batch_s": new_first,
            "old_first_batch_s": old_first,
        },
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
