"""Speed of the final FCN: training time per epoch and inference throughput, Keras vs frozen graph.

Run with `make bench` (or `.venv/bin/python benchmarks/bench_fcn.py`). Prints a table and writes the figures
to results/bench.json (the README quotes them); asserts nothing.
Uses models/fcn.keras and models/fcn_frozen.pb, training and freezing them first when missing.
Target (issue 4): frozen-graph inference of at least 2,000 images/s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time

from m2nist_utils import artifacts, config, freeze, mnist, results, segmenter, training

import numpy as np


def throughput(predict, images: np.ndarray, batch_size: int, min_seconds: float) -> float:
    """Images per second of ``predict`` over batches of ``batch_size``: the median of repeated rounds.

    One round predicts every whole batch of ``images`` once; rounds repeat for at least ``min_seconds``
    after one warm-up call. The median keeps a shared machine's occasional stall out of the figure.
    """
    batches = [images[i : i + batch_size] for i in range(0, len(images) - batch_size + 1, batch_size)]
    predict(batches[0])
    rates, start = [], time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(rates) < 5:
        round_start = time.perf_counter()
        for batch in batches:
            np.asarray(predict(batch))
        rates.append(len(batches) * batch_size / (time.perf_counter() - round_start))
    return float(np.median(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="least time per throughput measurement")
    parser.add_argument("--train-images", type=int, default=2_000, help="images in the timed training epoch")
    args = parser.parse_args()

    print(f"device: {config.describe_device()} | {config.describe()}")
    fcn = artifacts.load_or_create_fcn()
    frozen_path = artifacts.fcn_frozen_path()
    if not frozen_path.is_file():
        freeze.freeze_model(fcn, frozen_path, output_name="probabilities")
    frozen = freeze.load_frozen_graph(frozen_path, "image", "probabilities", input_shape=(64, 84, 1))
    keras_call = segmenter.compiled_predictor(fcn)

    test = artifacts.load_or_create_split("test")
    images = test.images[:1024, ..., None].astype(np.float32) / 255.0

    rows, keras_rate, frozen_rate = [], {}, {}
    for batch_size in (1, 256):
        # Rounds of 1,024 images at batch 256, of 128 at batch 1 (a round should take well under a second).
        subset = images if batch_size > 1 else images[:128]
        k = throughput(keras_call, subset, batch_size, args.seconds)
        f = throughput(frozen, subset, batch_size, args.seconds)
        keras_rate[batch_size], frozen_rate[batch_size] = k, f
        rows.append(
            {
                "batch": batch_size,
                "keras img/s": f"{k:,.0f}",
                "frozen img/s": f"{f:,.0f}",
                "frozen/keras": f"{f / k:.2f}",
            }
        )

    # Two timed epochs on a fresh model, so the saved weights stay as they are; the first one also builds
    # the training graph, so the second one is the steady pace of training.
    trainee = segmenter.build_fcn(artifacts.load_or_create_cnn())
    pools = mnist.split_pools("auto")
    timer = training.EpochTimer()
    training.train_fcn(
        trainee, pools["train"], epochs=2, images_per_epoch=args.train_images, verbose=0, callbacks=[timer]
    )
    per_epoch = timer.seconds[-1] * training.FCN_RECIPE["images_per_epoch"] / args.train_images

    epochs = training.FCN_RECIPE["epochs"]
    print(results.format_table(rows))
    print(f"frozen inference at batch 256: {frozen_rate[256]:,.0f} images/s (target: at least 2,000)")
    print(
        f"training: {per_epoch:.1f} s per epoch of {training.FCN_RECIPE['images_per_epoch']:,} images "
        f"(extrapolated from a second epoch of {args.train_images:,}), "
        f"{epochs} epochs about {per_epoch * epochs:.0f} s (budget: 300 s)"
    )
    print(f"parameters: {fcn.count_params():,}")
    path = results.save_results(
        "bench",
        {
            "device": config.describe_device(),
            "params": fcn.count_params(),
            # Keys are batch sizes: the README cites e.g. results:bench.frozen_images_per_s.256
            "keras_images_per_s": {str(b): r for b, r in keras_rate.items()},
            "frozen_images_per_s": {str(b): r for b, r in frozen_rate.items()},
            "min_seconds_per_measurement": args.seconds,
            "train_seconds_per_epoch": per_epoch,
            "epoch_images": training.FCN_RECIPE["images_per_epoch"],
            "timed_epoch_images": args.train_images,
            "epochs": epochs,
            "train_seconds_estimate": per_epoch * epochs,
        },
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
