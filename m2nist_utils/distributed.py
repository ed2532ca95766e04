"""Training outside the notebooks: ``python -m m2nist_utils train`` on one machine or on a cluster.

The command runs the final recipe (:data:`training.FCN_RECIPE`, notebook 05) in a ``tf.distribute``
strategy: ``training.distribution_strategy()`` on one machine, or TensorFlow's own
``MultiWorkerMirroredStrategy`` when the standard ``TF_CONFIG`` environment variable names a cluster.
Every worker runs the same command; each one computes the gradients of its share of every global batch,
and an all-reduce keeps the weights identical everywhere. Only the chief writes ``--out``.

- :class:`ClusterTask`, :func:`read_tf_config`, :func:`check_port_free`: ``TF_CONFIG`` and this task's
  port, checked before TensorFlow starts (one clear error instead of a hang or a traceback).
- :func:`cluster_strategy`: the strategy that ``TF_CONFIG`` asks for, or the single-machine one.
- :func:`weights_digest`: a fingerprint of a model's weights, printed by every worker.
- :func:`run_train`, :func:`add_train_parser`: the ``train`` command.

On JAX or PyTorch (``KERAS_BACKEND``) the same command trains on one device of that backend, on the NumPy
stream (``stream``), and writes ``fcn.keras`` only: clusters and frozen graphs are TensorFlow's.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .arguments import number
from .files import check_folder_target

#: The jobs of a MultiWorkerMirroredStrategy cluster: an optional chief and the workers.
JOBS = ("chief", "worker")


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a ``TF_CONFIG`` cluster."""

    task_type: str  # "chief" or "worker"
    index: int
    address: str  # "host:port" this task's server listens on
    n_tasks: int  # chief + workers
    has_chief: bool  # whether the cluster has a "chief" job

    @property
    def is_chief(self) -> bool:
        """The task that writes the model: the chief, or worker 0 in a cluster without one."""
        return self.task_type == "chief" or (not self.has_chief and self.index == 0)


def read_tf_config(environ: dict[str, str] | None = None) -> ClusterTask | None:
    """This task's place in the cluster that ``TF_CONFIG`` describes; None when it is unset or empty.

    Raises ``ValueError`` naming ``TF_CONFIG`` and the fault: not JSON, no ``cluster`` or ``task``, a job
    other than chief/worker, more than one chief, an address that is not ``host:port``, the same address
    twice, or a task index outside its job.
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        return None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"TF_CONFIG: not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG: expected a JSON object with 'cluster' and 'task', got {text[:60]!r}")
    for key in ("cluster", "task"):
        if not isinstance(config.get(key), dict) or not config[key]:
            raise ValueError(f"TF_CONFIG: missing '{key}' (expected {{'cluster': {{...}}, 'task': {{...}}}})")
    cluster, task = config["cluster"], config["task"]
    seen: set[str] = set()
    for job, addresses in cluster.items():
        if job not in JOBS:
            expected = " and/or ".join(JOBS)
            raise ValueError(
                f"TF_CONFIG: cluster job {job!r} is not used by MultiWorkerMirroredStrategy "
                f"(expected {expected})"
            )
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(f"TF_CONFIG: cluster job {job!r} must list one or more 'host:port' addresses")
        for address in addresses:
            _parse_address(address, f"cluster job {job!r}")
            if address in seen:
                raise ValueError(f"TF_CONFIG: address {address} appears twice in the cluster")
            seen.add(address)
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG: a cluster has one chief at most, got {len(cluster['chief'])}")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        jobs = ", ".join(cluster)
        raise ValueError(f"TF_CONFIG: task type {task_type!r} is not a job of the cluster ({jobs})")
    n = len(cluster[task_type])
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        where = f"job {task_type!r} has {n} task(s), indices 0 to {n - 1}"
        raise ValueError(f"TF_CONFIG: task index {index!r} is out of range: {where}")
    return ClusterTask(
        task_type, index, cluster[task_type][index], sum(map(len, cluster.values())), "chief" in cluster
    )


def _parse_address(address: object, where: str) -> tuple[str, int]:
    """(host, port) of ``host:port`` or ``[v6 host]:port``; ValueError naming the address otherwise."""
    host, _, port = str(address).rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not isinstance(address, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"TF_CONFIG: {where}: bad address {address!r} (expected 'host:port', port 1-65535)")
    return host, int(port)


def check_port_free(task: ClusterTask) -> None:
    """Refuse to start when this task's port is taken: TensorFlow's server would fail or wait unhelpfully.

    TensorFlow's gRPC server listens on every interface at the address's port, so that is what is tried
    (a port taken between this check and TensorFlow's start is not caught).
    """
    host, port = _parse_address(task.address, "this task")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket's TIME_WAIT is no owner
        try:
            probe.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            why = "is already in use" if busy else f"cannot be opened ({exc.strerror})"
            who = f"{task.task_type} {task.index}, {task.address}"
            raise ValueError(f"TF_CONFIG: port {port} of this task ({who}) {why}") from None


def cluster_strategy(task: ClusterTask | None):
    """``MultiWorkerMirroredStrategy`` for a ``TF_CONFIG`` task, else ``training.distribution_strategy()``.

    Call it before any other TensorFlow work: collective ops can only be set up at program start.
    """
    if task is None:
        from . import training

        return training.distribution_strategy()

    from . import compat
    from ._tf import tf

    class MultiWorkerMirroredStrategy(compat.MultiWorkerMirroredStrategy):
        """TensorFlow's strategy, with :mod:`compat`'s fix for Keras' ``fit``, sharding data by batch."""

        def experimental_distribute_dataset(self, dataset, options=None):
            """Shard by data, said explicitly: every worker draws the same stream of global batches
            (from the seed) and keeps its replicas' share of each. TensorFlow's default (AUTO) would try
            to shard by input file first, and the FCN's data are composed on the fly, not read from files.
            """
            policy = tf.data.experimental.AutoShardPolicy
            if dataset.options().experimental_distribute.auto_shard_policy == policy.AUTO:
                by_data = tf.data.Options()
                by_data.experimental_distribute.auto_shard_policy = policy.DATA
                dataset = dataset.with_options(by_data)
            return super().experimental_distribute_dataset(dataset, options)

    # TFConfigClusterResolver (the default) reads TF_CONFIG itself; it was checked above.
    return MultiWorkerMirroredStrategy()


def weights_digest(model) -> str:
    """SHA-256 of every weight of ``model`` (shapes, dtypes and values, in layer order), as hex."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(f"{weight.dtype.str}{weight.shape}".encode())
        digest.update(weight.tobytes())
    return digest.hexdigest()


def run_train(args: argparse.Namespace) -> None:
    """The ``train`` command (see the module's docstring); bad input raises ValueError before TensorFlow."""
    out = Path(args.out)
    check_folder_target(out, f"--out {out}")  # refused before any work is done
    task = read_tf_config()
    from ._keras import keras, on_tensorflow

    tensorflow = on_tensorflow()
    if task is not None:
        if not tensorflow:
            backend = keras.backend.backend()
            raise ValueError(f"TF_CONFIG: a cluster needs TensorFlow; Keras runs on {backend} here")
        check_port_free(task)
    # Before any other TensorFlow work (see cluster_strategy); another backend trains on its one device.
    strategy = cluster_strategy(task) if tensorflow else None

    from . import artifacts, config, mnist, segmenter, stability, training

    recipe = training.FCN_RECIPE
    epochs = args.epochs or recipe["epochs"]
    images_per_epoch = args.images_per_epoch or recipe["images_per_epoch"]
    replicas = strategy.num_replicas_in_sync if strategy else 1
    global_batch = (args.batch_size or recipe["batch_size"]) * replicas
    learning_rate = args.learning_rate or _scaled_learning_rate(recipe, global_batch)
    where = (
        "one machine" if task is None else f"{task.task_type} {task.index} of a {task.n_tasks}-task cluster"
    )
    print(f"{config.describe()} | {config.describe_device()}", flush=True)
    scaled = "" if args.learning_rate else " (the recipe's, scaled with the global batch)"
    steps = math.ceil(images_per_epoch / global_batch)
    running = f"{type(strategy).__name__} on {where}" if strategy else f"Keras on {keras.backend.backend()}"
    settings = [
        f"{running}: {replicas} replica(s) in sync",
        f"global batch {global_batch} = {global_batch // replicas} per replica x {replicas}",
        f"learning rate {learning_rate:.4g}{scaled}",
        f"{epochs} epoch(s) of {images_per_epoch} images ({steps} steps each)",
        f"mixed precision {'on' if args.mixed_precision else 'off'}; "
        f"XLA {'on' if args.jit or keras.backend.backend() == 'jax' else 'off'}",
    ]
    print("; ".join(settings), flush=True)
    cnn = artifacts.load_or_create_cnn(args.source, args.seed)  # float32: only its weights are used
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    config.seed_everything(args.seed)
    with strategy.scope() if strategy else training.build_scope():
        model = segmenter.build_fcn(cnn)
    if task is not None:
        _start_from_the_chiefs_weights(model, strategy)
    pool = mnist.split_pools(args.source, seed=args.seed)["train"]
    training.train_fcn(
        model,
        pool,
        epochs=epochs,
        images_per_epoch=images_per_epoch,
        batch_size=global_batch,
        learning_rate=learning_rate,
        distort=recipe["distort"],
        seed=args.seed,
        verbose=2,
        jit_compile=args.jit if tensorflow else "auto",  # on JAX, "auto" is XLA
    )
    # A network that answers one class everywhere is refused before anything is written (every worker
    # holds the same weights, so each comes to the same verdict).
    val = artifacts.load_or_create_split("val", source=args.source, seed=args.seed)
    stability.check_not_collapsed(model, val.images)
    digest = weights_digest(model)
    # Saving reads every variable, which may all-reduce: every worker saves, only the chief into --out.
    if task is None or task.is_chief:
        keras_file, frozen_file = out / "fcn.keras", out / "fcn_frozen.pb"
        out.mkdir(parents=True, exist_ok=True)
        frozen_file.unlink(missing_ok=True)  # a crash below leaves no frozen graph of older weights
        artifacts.save_model(model, keras_file)
        # Frozen from the file just written: a plain model, outside the strategy's mirrored variables.
        saved = artifacts.load_model(keras_file)
        written = f"{keras_file} (no frozen graph: TensorFlow's)"
        if tensorflow:
            from . import freeze

            freeze.freeze_model(saved, frozen_file, output_name="probabilities")
            written = f"{keras_file} and {frozen_file}"
        scores = segmenter.evaluate_fcn(saved, val.images, val.class_maps)
        print(
            f"wrote {written}; validation mean IoU {scores['mean_iou']:.4f} "
            f"({len(val.images)} images); weights sha256 {digest}",
            flush=True,
        )
    else:
        scratch = Path(tempfile.mkdtemp(prefix="m2nist-train-"))
        try:
            artifacts.save_model(model, scratch / "fcn.keras")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(
            f"{task.task_type} {task.index} done (the chief writes {out}); weights sha256 {digest}",
            flush=True,
        )


def _start_from_the_chiefs_weights(model, strategy) -> None:
    """Give every worker the chief's initial weights, whatever CNN each machine holds.

    TensorFlow broadcasts a variable's initial value from the chief, but ``build_fcn`` then assigns the
    CNN's weights on each worker alone, and machines that each trained their own ``cnn.keras`` hold
    different ones. Replica 0 (the chief's first device) sends its weights and every other replica zeros:
    their all-reduced sum is the chief's weights, exactly.
    """
    from ._tf import tf

    weights = model.get_weights()

    def share(context):
        chief = context.replica_id_in_sync_group == 0
        return [tf.constant(w) if chief else tf.zeros(w.shape, w.dtype) for w in weights]

    shares = strategy.experimental_distribute_values_from_function(share)
    model.set_weights([strategy.reduce("SUM", s, axis=None).numpy() for s in shares])


def _scaled_learning_rate(recipe: dict[str, object], global_batch: int) -> float:
    """The recipe's learning rate x (global batch / the recipe's batch): linear scaling, as in notebook 07.

    A step over k times the images stands for k steps, so it takes a k times longer stride.
    """
    return float(recipe["learning_rate"]) * global_batch / int(recipe["batch_size"])


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``train`` command on the command line's subparsers (``m2nist_utils.__main__``)."""
    recipe = "default: the final recipe's (training.FCN_RECIPE)"
    train = subparsers.add_parser(
        "train",
        help="train the final FCN; joins a MultiWorkerMirroredStrategy cluster when TF_CONFIG is set",
        description="Train the final FCN (notebook 05's recipe); write DIR/fcn.keras and DIR/fcn_frozen.pb.",
    )
    out = "folder for fcn.keras and fcn_frozen.pb (written by the chief)"
    train.add_argument("--out", metavar="DIR", required=True, help=out)
    for flag, metavar, text in [
        ("--epochs", "E", recipe),
        ("--images-per-epoch", "N", f"training images per epoch; {recipe}"),
        ("--batch-size", "B", f"per replica; global batch = this x replicas; {recipe}"),
    ]:
        train.add_argument(flag, metavar=metavar, type=number(int, 1), help=text)
    seed = "seed of the digit split, CNN and FCN"
    train.add_argument("--seed", metavar="S", type=number(int, 0), default=0, help=seed)
    scaling = "default: the recipe's, x global batch / the recipe's batch (32): linear scaling"
    train.add_argument("--learning-rate", metavar="LR", type=number(float, 0, above=True), help=scaling)
    train.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (pays off on GPUs)")
    xla = "compile the training step with XLA (off by default, as Keras leaves it under a strategy)"
    train.add_argument("--jit", action="store_true", help=xla)
    source = "MNIST digits: sample | keras | auto | PATH"
    train.add_argument("--source", metavar="SRC", default="auto", help=source)
    train.set_defaults(run=run_train)
    return train
