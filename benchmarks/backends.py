"""The final recipe on Keras' TensorFlow and JAX backends, side by side: epoch time and quality (notebook 07).

Each run trains ``segmenter.build_fcn(cnn)`` with ``training.FCN_RECIPE`` from the pretrained classifier
(``models/cnn.keras``, which TensorFlow trained; a ``.keras`` file loads on any backend) in a fresh process
whose ``KERAS_BACKEND`` is set, times every epoch and scores the model on the validation split. The runs:

- ``tensorflow`` / ``tf.data``: the series' default, the input pipeline of ``pipeline``;
- ``tensorflow`` / ``numpy``: the same backend on the NumPy stream of ``stream``, which separates the
  backend's share of a difference from the stream's;
- ``jax`` / ``numpy``: JAX (always compiled with XLA), TensorFlow blocked from import in that process.

Resumable, as ``benchmarks/ablation.py``: each finished run goes to the results file at once (atomically),
and a re-run skips the runs it holds. ``--quick`` checks the script in a minute (quick mode, a throw-away
``M2NIST_HOME`` unless one is set). On a GPU machine with JAX and no TensorFlow (``benchmarks/gpu_speed.sh``):
``--runs jax/numpy --batch-sizes 32 256 --precisions float32 mixed_bfloat16 --out backends_gpu``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

#: The runs (backend/stream) of the CPU comparison, in order.
RUNS = ("tensorflow/tf.data", "tensorflow/numpy", "jax/numpy")
NAME = "backends"
KIND = "backends"


class NoTensorFlow:
    """An import hook that refuses ``tensorflow``: a JAX run measures nothing of it."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: a JAX run)", name=name)
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), help="backend/stream pairs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32], help="the learning rate scales")
    parser.add_argument("--precisions", nargs="+", default=["float32"], help="Keras dtype policies")
    parser.add_argument("--out", default=NAME, help="results/<out>.json")
    parser.add_argument("--quick", action="store_true", help="quick mode, to check the script")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one run, as JSON: in the backend's process
    return parser.parse_args(argv)


def child(spec: dict) -> dict:
    """One run in this process (its ``KERAS_BACKEND`` already set): train, time, score; the row."""
    from m2nist_utils import artifacts, config, mnist, segmenter, training
    from m2nist_utils._keras import keras

    recipe = dict(training.FCN_RECIPE)
    if config.QUICK:  # checks the script, not the backends: two tiny epochs
        recipe.update(epochs=2, images_per_epoch=128)
    batch = spec["batch_size"]
    # Linear scaling, as the train command: a step over k times the images stands for k steps.
    learning_rate = float(recipe["learning_rate"]) * batch / int(recipe["batch_size"])
    recipe.update(batch_size=batch, learning_rate=learning_rate)
    cnn = artifacts.load_model(artifacts.cnn_path())
    pool = mnist.split_pools("auto", seed=0)["train"]
    val = artifacts.load_or_create_split("val")
    config.seed_everything(spec["seed"])
    keras.mixed_precision.set_global_policy(spec["precision"])
    timer = training.EpochTimer()
    with training.build_scope():
        model = segmenter.build_fcn(cnn)
    start = time.perf_counter()
    history = training.train_fcn(
        model, pool, seed=spec["seed"], verbose=0, callbacks=[timer], stream=spec["stream"], **recipe
    )
    train_seconds = time.perf_counter() - start
    keras.mixed_precision.set_global_policy("float32")
    scores = segmenter.evaluate_fcn(model, val.images, val.class_maps)
    later = sorted(timer.seconds[1:]) or timer.seconds
    return {
        **spec,
        "device": config.describe_device(),
        "versions": config.describe_versions(),
        "xla": bool(model.jit_compile),
        "learning_rate": learning_rate,
        "epochs": recipe["epochs"],
        "images_per_epoch": recipe["images_per_epoch"],
        "epoch_seconds": [round(s, 2) for s in timer.seconds],
        # The first epoch also traces and compiles: the median of the others is the steady pace.
        "first_epoch_s": round(timer.seconds[0], 2),
        "epoch_s": round(later[len(later) // 2], 2),
        "images_per_s": round(recipe["images_per_epoch"] / later[len(later) // 2]),
        "train_seconds": round(train_seconds, 1),
        "final_train_loss": round(float(history.history["loss"][-1]), 4),
        "val": {k: scores[k] for k in ("mean_iou", "background_iou", "digit_iou", "pixel_accuracy")},
        "date": datetime.date.today().isoformat(),
    }


def run_in_backend(spec: dict) -> dict:
    """:func:`child` in a fresh process whose ``KERAS_BACKEND`` is the run's (TensorFlow blocked for JAX)."""
    env = dict(os.environ, KERAS_BACKEND=spec["backend"], TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    rows = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode != 0 or not rows:
        raise RuntimeError(f"{spec}: the run failed\n{done.stderr[-3000:]}")
    return json.loads(rows[-1])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        if spec["backend"] != "tensorflow":
            sys.meta_path.insert(0, NoTensorFlow())  # before anything imports Keras
        print("ROW " + json.dumps(child(spec)), flush=True)
        return
    if args.quick:
        # Before m2nist_utils.config is imported (here and in the runs' processes, which inherit both).
        os.environ["M2NIST_QUICK"] = "1"
        os.environ.setdefault("M2NIST_HOME", tempfile.mkdtemp(prefix="m2nist-backends-"))
    from m2nist_utils import artifacts, config, results

    artifacts.load_or_create_cnn(seed=0)  # trained by TensorFlow first when missing (quick mode)
    try:
        previous = results.load_results(args.out)
        same_kind = previous.get("kind") == KIND and previous.get("mode") == config.mode()
        runs = previous["runs"] if same_kind else []
    except FileNotFoundError:
        runs = []
    keys = ("backend", "stream", "batch_size", "precision", "seed")
    done = {tuple(r[k] for k in keys) for r in runs}
    todo = [
        dict(zip(keys, (*run.split("/"), batch, precision, seed)))
        for seed in args.seeds
        for batch in args.batch_sizes
        for precision in args.precisions
        for run in args.runs
    ]
    todo = [spec for spec in todo if tuple(spec[k] for k in keys) not in done]
    print(f"{len(runs)} run(s) already in {results.results_path(args.out)}; {len(todo)} to go", flush=True)
    for spec in todo:
        row = run_in_backend(spec)
        runs.append(row)
        results.save_results(args.out, {"kind": KIND, "runs": runs})
        print(
            f"{row['backend']:<10} {row['stream']:<7} batch {row['batch_size']:<4} {row['precision']:<14} "
            f"seed {row['seed']}: {row['epoch_s']:.2f} s/epoch (first {row['first_epoch_s']:.1f} s), "
            f"val mean IoU {row['val']['mean_iou']:.4f}, {row['train_seconds']:.0f} s | {row['device']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
