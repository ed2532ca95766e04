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
``M2NIST_HOME`` unless one is set).

Every run also measures what a device needs fed: the images per second of its input path alone
(``training.measure_input``, one epoch) and of its compiled training step alone (``training.measure_step``, on
one batch in memory). ``--devices N`` trains on JAX with ``keras.distribution.DataParallel`` over N devices
(on a CPU, N host devices that XLA makes of it), the global batch N times the per-device one.
``--epochs``/``--images-per-epoch`` shorten the recipe for speed comparisons. ``--tools`` (``make
backends-tools``) is the comparison of notebook 07 on a CPU, :data:`TOOLS`. On a GPU machine with JAX and no
TensorFlow: ``benchmarks/gpu_speed.sh``.
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
#: What each tool does to JAX's speed (``--tools``): float32 or mixed_bfloat16, one device or two, batch 32 or
#: 128, at a short budget, into results/backends_tools.json.
TOOLS = (
    "--runs jax/numpy --precisions float32 mixed_bfloat16 --devices 1 2 --batch-sizes 32 128 "
    "--epochs 3 --images-per-epoch 2000 --out backends_tools"
).split()
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
    parser.add_argument("--devices", nargs="+", type=int, default=[1], help="data-parallel devices (JAX)")
    parser.add_argument("--epochs", type=int, help="instead of the recipe's")
    parser.add_argument("--images-per-epoch", type=int, help="instead of the recipe's")
    parser.add_argument("--out", default=NAME, help="results/<out>.json")
    parser.add_argument("--quick", action="store_true", help="quick mode, to check the script")
    parser.add_argument("--tools", action="store_true", help="notebook 07's comparison of tools on JAX")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one run, as JSON: in the backend's process
    return parser.parse_args(argv)


def child(spec: dict) -> dict:
    """One run in this process (its ``KERAS_BACKEND`` already set): train, time, score; the row."""
    from m2nist_utils import artifacts, config, mnist, segmenter, training
    from m2nist_utils._keras import keras

    import numpy as np

    recipe = dict(training.FCN_RECIPE)
    recipe.update({k: spec[k] for k in ("epochs", "images_per_epoch") if spec.get(k)})
    if config.QUICK:  # checks the script, not the backends: two tiny epochs
        recipe.update(epochs=2, images_per_epoch=128)
    devices = spec.get("devices", 1)
    if devices > 1:  # one replica of the weights per device, every batch split between them
        training.data_parallel(keras.distribution.list_devices()[:devices])
    batch = spec["batch_size"] * devices  # the global batch; spec's is per device
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
        # The step is timed on a second network, so that the measured one trains as the recipe says.
        probe = segmenter.build_fcn(cnn)
    data = training.training_data(pool, seed=spec["seed"], stream=spec["stream"], **recipe)
    data_per_s = training.measure_input(data)
    images, class_maps = data[0] if spec["stream"] == "numpy" else next(iter(data))
    training.compile_fcn(probe, learning_rate)
    step_per_s = training.measure_step(probe, np.asarray(images), np.asarray(class_maps))
    del data, probe
    config.seed_everything(spec["seed"])  # the model's training starts where it would have alone
    start = time.perf_counter()
    history = training.train_fcn(
        model, pool, seed=spec["seed"], verbose=0, callbacks=[timer], stream=spec["stream"], **recipe
    )
    train_seconds = time.perf_counter() - start
    keras.mixed_precision.set_global_policy("float32")
    scores = segmenter.evaluate_fcn(model, val.images, val.class_maps)
    later = sorted(timer.seconds[1:]) or timer.seconds
    sharding = getattr(model.weights[0].value, "sharding", None)
    return {
        **spec,
        "device": config.describe_device(),
        "versions": config.describe_versions(),
        "xla": bool(model.jit_compile),
        "devices": devices,
        "global_batch": batch,
        "device_list": [str(d) for d in keras.distribution.list_devices()][:devices],
        # Where the weights really live: a JAX array knows its devices (DataParallel replicates them).
        "weight_devices": len(sharding.device_set) if sharding is not None else None,
        "learning_rate": learning_rate,
        "epochs": recipe["epochs"],
        "images_per_epoch": recipe["images_per_epoch"],
        "epoch_seconds": [round(s, 2) for s in timer.seconds],
        # The first epoch also traces and compiles: the median of the others is the steady pace.
        "first_epoch_s": round(timer.seconds[0], 2),
        "epoch_s": round(later[len(later) // 2], 2),
        "images_per_s": round(recipe["images_per_epoch"] / later[len(later) // 2]),
        "train_seconds": round(train_seconds, 1),
        "peak_device_mib": peak_device_mib(),
        # What the device needs fed: the input path alone, the training step alone (images/s).
        "input_images_per_s": round(data_per_s),
        "step_images_per_s": round(step_per_s),
        "final_train_loss": round(float(history.history["loss"][-1]), 4),
        "val": {k: scores[k] for k in ("mean_iou", "background_iou", "digit_iou", "pixel_accuracy")},
        "date": datetime.date.today().isoformat(),
    }


def peak_device_mib() -> float | None:
    """The most memory this process held on its first accelerator (JAX; None on a CPU or another backend)."""
    if os.environ.get("KERAS_BACKEND") != "jax":
        return None
    import jax

    stats = jax.devices()[0].memory_stats()  # None for a CPU
    return round(stats["peak_bytes_in_use"] / 2**20, 1) if stats and "peak_bytes_in_use" in stats else None


def run_in_backend(spec: dict) -> dict:
    """:func:`child` in a fresh process whose ``KERAS_BACKEND`` is the run's (TensorFlow blocked for JAX)."""
    env = dict(os.environ, KERAS_BACKEND=spec["backend"], TF_CPP_MIN_LOG_LEVEL="2")
    if spec.get("devices", 1) > 1:  # XLA makes that many devices of the CPU (a GPU's are its own)
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={spec['devices']}".strip()
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    rows = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode != 0 or not rows:
        raise RuntimeError(f"{spec}: the run failed\n{done.stderr[-3000:]}")
    return json.loads(rows[-1])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.tools:
        args = parse_args([*TOOLS, *(a for a in (argv or sys.argv[1:]) if a != "--tools")])
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
    keys = ("backend", "stream", "batch_size", "precision", "devices", "seed")
    budget = {"epochs": args.epochs, "images_per_epoch": args.images_per_epoch}
    done = {tuple(r.get(k, 1) for k in keys) for r in runs}  # rows from before --devices ran on one
    todo = [
        {**dict(zip(keys, (*run.split("/"), batch, precision, devices, seed))), **budget}
        for seed in args.seeds
        for devices in args.devices
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
            f"x{row['devices']} seed {row['seed']}: {row['epoch_s']:.2f} s/epoch "
            f"(first {row['first_epoch_s']:.1f} s), "
            f"input {row['input_images_per_s']} / step {row['step_images_per_s']} images/s, "
            f"val mean IoU {row['val']['mean_iou']:.4f}, {row['train_seconds']:.0f} s | {row['device']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
