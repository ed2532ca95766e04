"""Training the FCN (notebook 05): the device strategy, the data stream and augmentation, the fit.

- :func:`distribution_strategy`, :func:`build_scope`: what the model is built and trained in.
- :func:`distort_digits`: slightly rotated, scaled and sheared copies of a digit pool (from ``stream``).
- :func:`train_fcn`: per-pixel cross-entropy, Adam and a cosine learning rate, on any Keras backend.
- :data:`FCN_RECIPE`, :data:`ABLATION_BUDGET`: the final recipe and a short budget (the article's baseline and
  the exercises of notebook 05); :data:`STABLE_RECIPE`: the recipe that does not collapse (notebook 09).
- :func:`training_data`, :func:`compile_fcn`: the batches and the compiled model :func:`train_fcn` fits.
- :func:`model_scope`: where a model is compiled and fitted.
- :func:`split_cpu`, :class:`EpochTimer`, :func:`time_configuration`: logical CPU devices, epoch timing
  and one timed configuration (notebook 07).
- :func:`measure_input`, :func:`measure_step`: images per second of the input path alone and of the
  training step alone, on any backend (notebook 07: does the input keep the device busy?).
- :func:`data_parallel`: Keras' ``DataParallel`` over several devices (JAX; notebook 07).

TensorFlow only: the strategies, :func:`split_cpu`, :func:`time_configuration` and the ``tf.data`` stream
(the default on TensorFlow). On JAX or PyTorch, :func:`train_fcn` trains on ``stream.TrainingStream``.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import TYPE_CHECKING

import numpy as np

from . import config
from ._keras import keras, model_scope, on_tensorflow, require_tensorflow
from .m2nist import N_CLASSES, Clutter, to_input
from .mnist import DigitPool
from .segmenter import build_fcn, digits_only_loss, evaluate_fcn
from .stability import learning_rate_schedule
from .stream import TrainingStream, distort_digits

if TYPE_CHECKING:  # TensorFlow's parts import it where they run
    import tensorflow as tf

__all__ = ["distort_digits"]  # re-exported: notebook 05 distorts digits through training


@functools.cache
def distribution_strategy() -> tf.distribute.Strategy:
    """Mirrored over all GPUs when there are several, the single device (GPU or CPU) otherwise.

    One object per session: a model built in its scope must be compiled and trained in the same one.
    """
    require_tensorflow("tf.distribute")
    from ._tf import tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")


def split_cpu(n_devices: int = 2) -> list[str]:
    """Split the CPU into ``n_devices`` logical devices, so that ``MirroredStrategy`` runs that many replicas.

    For teaching and testing data parallelism without GPUs (notebook 07). Must run before TensorFlow
    first uses a device; returns the logical CPU names.
    """
    require_tensorflow("splitting the CPU into logical devices")
    from ._tf import tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n_devices)
    return [d.name for d in tf.config.list_logical_devices("CPU")]


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of every epoch (``seconds``) and of the training images it saw (notebook 07)."""

    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def build_scope():
    """What to build a model in: :func:`distribution_strategy`'s scope on TensorFlow, nothing otherwise."""
    return distribution_strategy().scope() if on_tensorflow() else contextlib.nullcontext()


def train_fcn(
    model: keras.Model,
    train_pool: DigitPool,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = 10,
    images_per_epoch: int = 10_000,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    fresh: bool = True,
    distort: bool = False,
    seed: int = 0,
    verbose: int = 2,
    callbacks: list[keras.callbacks.Callback] | None = None,
    loss=None,
    jit_compile: bool | str = "auto",
    stream: str = "auto",
    clutter: Clutter | None = None,
    warmup_epochs: float = 0.0,
    clipnorm: float | None = None,
) -> keras.callbacks.History:
    """Train a segmentation network with per-pixel cross-entropy, Adam and a cosine learning rate.

    Build the model inside ``distribution_strategy().scope()`` to use every GPU; training follows the
    model's own strategy.

    Args:
        model: outputs per-pixel probabilities (B, 64, 84, C), C = 11 (or 10 for the article's design,
            trained on the digit pixels' classes with background pixels counted as no class at all).
        validation: (images uint8 (N, 64, 84), class maps uint8 (N, 64, 84)) scored after each epoch.
        loss: ``loss(class maps int32 (B, 64, 84), probabilities (B, 64, 84, C))``; by default sparse
            cross-entropy for 11 classes and :func:`digits_only_loss` for 10.
        batch_size: the global batch, split over the strategy's replicas.
        jit_compile: compile the training step with XLA (``True``), not (``False``), or let Keras decide
            (``"auto"``: XLA only with a GPU, and never for a model built in a ``tf.distribute`` scope).
            Under op determinism (``config.seed_everything``) Keras turns XLA off, with a warning.
            On JAX Keras always compiles with XLA.
        stream: ``"tf.data"`` (``pipeline.training_dataset``), ``"numpy"`` (``stream.TrainingStream``, any
            backend) or ``"auto"``: ``tf.data`` on TensorFlow, NumPy otherwise.
        clutter: train on images with fragments of other digits on the background (:class:`m2nist.Clutter`);
            both streams compose them, ``"auto"`` picks the NumPy one.
        warmup_epochs: raise the rate linearly from 0 to ``learning_rate`` over this many epochs first
            (:func:`learning_rate_schedule`).
        clipnorm: scale each weight's gradient down to this norm when it is longer (Adam's ``clipnorm``).
    """
    per_epoch = int(np.ceil(images_per_epoch / batch_size))
    schedule = learning_rate_schedule(learning_rate, epochs * per_epoch, round(warmup_epochs * per_epoch))
    data = training_data(train_pool, images_per_epoch, batch_size, fresh, seed, distort, stream, clutter)
    val = None
    if validation is not None:
        images, class_maps = validation
        val = (to_input(images), class_maps.astype(np.int32))
    compile_fcn(model, schedule, loss=loss, jit_compile=jit_compile, clipnorm=clipnorm)
    with model_scope(model):
        return model.fit(
            data, validation_data=val, epochs=epochs, verbose=verbose, shuffle=False, callbacks=callbacks
        )


def training_data(
    train_pool: DigitPool,
    images_per_epoch: int,
    batch_size: int = 32,
    fresh: bool = True,
    seed: int = 0,
    distort: bool = False,
    stream: str = "auto",
    clutter: Clutter | None = None,
    **unused,
):
    """The batches :func:`train_fcn` fits on (its arguments of the same names; ``unused`` takes the rest of
    a recipe): a ``tf.data`` dataset or a ``stream.TrainingStream``."""
    if stream == "auto":
        # Cluttered runs keep the NumPy stream that results/clutter.json and notebook 09 were measured on.
        stream = "tf.data" if on_tensorflow() and clutter is None else "numpy"
    if stream == "tf.data":
        from . import pipeline

        # Composed and distorted by tf.data on every core, streaming from the first batch (pipeline.py).
        return pipeline.training_dataset(
            train_pool, images_per_epoch, batch_size, fresh=fresh, seed=seed, distort=distort, clutter=clutter
        )
    if stream == "numpy":
        return TrainingStream(
            train_pool, images_per_epoch, batch_size, fresh=fresh, seed=seed, distort=distort, clutter=clutter
        )
    raise ValueError(f"stream={stream!r}: expected 'auto', 'tf.data' or 'numpy'")


def compile_fcn(
    model: keras.Model, learning_rate, loss=None, jit_compile: bool | str = "auto", clipnorm=None
) -> None:
    """Compile ``model`` as :func:`train_fcn` does: Adam at ``learning_rate`` (a number or a schedule;
    gradients clipped to ``clipnorm`` when given) and per-pixel cross-entropy (``loss``; by default sparse
    cross-entropy for 11 classes and :func:`digits_only_loss` for 10), in the strategy the model was built
    in."""
    with model_scope(model):
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate, clipnorm=clipnorm),
            loss=loss or _default_loss(model.output_shape[-1]),
            jit_compile=jit_compile,
        )


def _default_loss(n_classes: int):
    return keras.losses.SparseCategoricalCrossentropy() if n_classes == N_CLASSES else digits_only_loss


def data_parallel(devices: list[str] | None = None) -> list[str]:
    """Build and train every model from now on with Keras' ``DataParallel`` over ``devices`` (by default
    all of them): one replica of the weights per device, each global batch split between them and their
    gradients averaged. On JAX only (the lesson on TensorFlow is ``tf.distribute``; Keras' TensorFlow version
    of this API is a prototype). Returns the devices."""
    if keras.backend.backend() != "jax":
        raise RuntimeError(f"data_parallel runs on JAX here; Keras runs on {keras.backend.backend()}")
    devices = devices or keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return devices


def measure_input(data, epochs: int = 1) -> float:
    """Images per second an input path delivers over ``epochs`` whole epochs, no model in the way.

    ``data`` is what :func:`train_fcn` fits on: a ``tf.data`` dataset (one pass per epoch, after one
    warm-up batch that traces its functions) or a ``keras.utils.PyDataset`` (every batch read, then the
    next epoch drawn, as ``fit`` does at each epoch's end).
    """
    if not isinstance(data, keras.utils.PyDataset):
        next(iter(data))
    images, start = 0, time.perf_counter()
    for _ in range(epochs):
        if isinstance(data, keras.utils.PyDataset):
            images += sum(len(data[index][0]) for index in range(len(data)))
            data.on_epoch_end()
        else:
            images += sum(int(batch.shape[0]) for batch, _ in data)
    return images / (time.perf_counter() - start)


def measure_step(model: keras.Model, images: np.ndarray, class_maps: np.ndarray, steps: int = 20) -> float:
    """Images per second of ``model``'s compiled training step alone, on one batch held in memory
    (images float32 (B, 64, 84, 1), class maps int32 (B, 64, 84)): the input path left out. Two untimed
    steps first trace and compile it. The model's weights move: measure on a copy you do not need."""
    with model_scope(model):
        for _ in range(2):
            model.train_on_batch(images, class_maps)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(images, class_maps)  # returns the loss as NumPy: the step has finished
    return steps * len(images) / (time.perf_counter() - start)


#: The final training recipe (notebook 05): fresh images of freshly distorted digits every epoch.
FCN_RECIPE: dict[str, object] = {
    "epochs": 3 if config.QUICK else 12,
    "images_per_epoch": 3_000 if config.QUICK else 8_000,
    "batch_size": 32,
    "learning_rate": 8e-3,
    "distort": True,
}


#: The stable recipe (notebook 09): the final recipe with its peak rate reached by one epoch of linear
#: warm-up and each weight's gradient clipped to norm 1, so that neither Adam's first steps nor one bad
#: batch can throw the network off the edge the range test shows (benchmarks/clutter.py measures it at half
#: and twice its rate, on clean and on cluttered images).
STABLE_RECIPE: dict[str, object] = {**FCN_RECIPE, "warmup_epochs": 1.0, "clipnorm": 1.0}


#: A short budget (notebook 05's article baseline and exercises): one fixed set of images, digits as they
#: are, the final recipe's learning rate. Models trained this long are still moving: the leave-one-out
#: ablation (benchmarks/ablation.py) trains at the final recipe's budget instead.
ABLATION_BUDGET: dict[str, object] = {
    "epochs": 1 if config.QUICK else 3,
    "images_per_epoch": 800 if config.QUICK else 3_000,
    "batch_size": FCN_RECIPE["batch_size"],
    "learning_rate": FCN_RECIPE["learning_rate"],
    "fresh": False,
}


def time_configuration(
    cnn: keras.Model,
    train_pool: DigitPool,
    validation: tuple[np.ndarray, np.ndarray],
    strategy: tf.distribute.Strategy | None = None,
    precision: str = "float32",
    jit_compile: bool | str = False,
    epochs: int = 3,
    images_per_epoch: int = 4_000,
    per_replica_batch: int = 32,
    learning_rate: float | None = None,
    seed: int = 0,
) -> dict[str, object]:
    """Train a fresh ``build_fcn(cnn)`` under one configuration and time its epochs (notebook 07; TensorFlow).

    The global batch is ``per_replica_batch`` x the strategy's replicas, and by default the final recipe's
    learning rate is scaled by the same factor (linear scaling: one step stands for that many). The
    dtype policy ``precision`` holds while the model is built and trained, then goes back to float32.

    Args:
        validation: (images uint8 (N, 64, 84), class maps uint8 (N, 64, 84)), scored once after training.
        strategy: the model is built and trained in its scope; by default the current (default) one.
        precision: a Keras dtype policy, ``"float32"`` or ``"mixed_float16"``.
        learning_rate: the peak learning rate; by default ``FCN_RECIPE["learning_rate"]`` x replicas.

    Returns:
        ``replicas``, ``global_batch``, ``learning_rate``, ``precision``, ``xla`` (whether Keras really
        compiled with XLA: it turns ``jit_compile=True`` off, with a warning, under op determinism),
        ``epoch_s`` (the fastest epoch after the first, which also traces and compiles), ``images_per_s``
        and ``val_mean_iou``.
    """
    require_tensorflow("time_configuration (tf.distribute)")
    from ._tf import error_line, tf

    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if learning_rate is None:
        learning_rate = float(FCN_RECIPE["learning_rate"]) * replicas
    timer = EpochTimer()
    row: dict[str, object] = {
        "replicas": replicas,
        "global_batch": per_replica_batch * replicas,
        "learning_rate": learning_rate,
        "precision": precision,
    }
    config.seed_everything(seed)  # every configuration starts from the same initial weights
    keras.mixed_precision.set_global_policy(precision)
    try:
        with strategy.scope():
            model = build_fcn(cnn)
        train_fcn(
            model, train_pool, epochs=epochs, images_per_epoch=images_per_epoch,
            batch_size=per_replica_batch * replicas, learning_rate=learning_rate, distort=True, seed=seed,
            verbose=0, callbacks=[timer], jit_compile=jit_compile,
        )  # fmt: skip
    except tf.errors.InvalidArgumentError as error:  # e.g. XLA with replicas on logical CPU devices
        return {**row, "xla": bool(model.jit_compile), "error": error_line(error.message)}
    finally:
        keras.mixed_precision.set_global_policy("float32")
    epoch_s = min(timer.seconds[1:] or timer.seconds)
    return {
        **row,
        "xla": bool(model.jit_compile),
        "epoch_s": round(epoch_s, 2),
        "images_per_s": round(images_per_epoch / epoch_s),
        "val_mean_iou": round(float(evaluate_fcn(model, *validation)["mean_iou"]), 4),
    }
