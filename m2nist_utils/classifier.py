"""The article's MNIST classifier (notebook 02): the network, its training data and its training.

- :data:`CNN_EPOCHS`, :data:`CNN_RECIPE`: the training recipe (fewer epochs in quick mode).
- :func:`build_cnn`: conv 8@5x5 - maxpool - conv 8@3x3 - maxpool - dense 32 - dense 10.
- :func:`shape_table`: the layer-by-layer shape walk-through that notebooks print.
- :func:`digit_dataset`, :func:`train_cnn`, :func:`predict_digits`: data, training, labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import config
from ._keras import keras, require_tensorflow
from .m2nist import to_input
from .mnist import DigitPool

if TYPE_CHECKING:
    import tensorflow as tf

CNN_EPOCHS = 6 if config.QUICK else 40
#: The classifier's training recipe (notebook 02): the defaults of :func:`train_cnn`, and part of the key
#: of the cached ``models/cnn.keras`` (``artifacts``).
CNN_RECIPE: dict[str, object] = {
    "epochs": CNN_EPOCHS,
    "batch_size": 64,
    "max_shift": 2,
    "learning_rate": 1e-2,
}


def build_cnn() -> keras.Model:
    """The article's MNIST classifier, layer for layer (about 7.5k parameters; notebook 02).

    Input ``image`` float32 (None, 28, 28, 1) in [0, 1]; output: 10 logits, from ``dense10``.
    """
    x = inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(8, 5, activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="dense32")(x)
    logits = keras.layers.Dense(10, name="dense10")(x)
    return keras.Model(inputs, logits, name="cnn")


def shape_table(model: keras.Model, input_shape: tuple[int, ...] | None = None) -> list[dict[str, str]]:
    """Rows (layer, kernel, stride, output H x W x C) computed from the layers themselves.

    ``input_shape`` (H, W, C) re-runs the shape arithmetic for another input size, e.g. (64, 84, 1)
    through the convolutional part of a classifier (a chain of layers only).
    """
    shape = tuple(input_shape or model.input_shape[1:])
    rows = [{"layer": "input", "kernel": "", "stride": "", "output": _fmt(shape)}]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
        stride = getattr(layer, "strides", None)
        if input_shape is None:
            shape = tuple(layer.output.shape[1:])  # works for branching models too
        else:
            shape = tuple(layer.compute_output_shape((None, *shape))[1:])
        rows.append(
            {
                "layer": layer.name,
                "kernel": "x".join(map(str, kernel)) if kernel else "",
                "stride": "x".join(map(str, stride)) if stride else "",
                "output": _fmt(shape),
            }
        )
    return rows


def _fmt(shape: tuple) -> str:
    return " x ".join("?" if d is None else str(d) for d in shape)


def digit_dataset(
    pool: DigitPool, batch_size: int = 64, max_shift: int = 0, shuffle: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """Batches of (images float32 (B, 28, 28, 1) in [0, 1], labels int32 (B,)), as a ``tf.data`` pipeline.

    ``max_shift`` > 0 moves each digit by up to that many pixels in each direction, drawn afresh every
    epoch (zero-padded, then randomly cropped back to 28x28).
    """
    require_tensorflow("the classifier's training data (tf.data)")
    from ._tf import tf

    x = to_input(pool.images)
    ds = tf.data.Dataset.from_tensor_slices((x, pool.labels.astype(np.int32)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if max_shift:
        pad = [[max_shift, max_shift], [max_shift, max_shift], [0, 0]]

        def shift(image, label):
            padded = tf.pad(image, pad)
            return tf.image.random_crop(padded, (28, 28, 1)), label

        # A serial map: its random crops are drawn in element order, so a seed gives the same shifts.
        ds = ds.map(shift)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def train_cnn(
    model: keras.Model,
    pools: dict[str, DigitPool],
    epochs: int = CNN_RECIPE["epochs"],
    batch_size: int = CNN_RECIPE["batch_size"],
    max_shift: int = CNN_RECIPE["max_shift"],
    learning_rate: float = CNN_RECIPE["learning_rate"],
    seed: int = 0,
    verbose: int = 2,
) -> keras.callbacks.History:
    """Train the classifier on the train pool, validating on the val pool (notebook 02).

    Adam with a cosine-decaying learning rate; random shifts of up to ``max_shift`` pixels, because the
    FCN built from this network later looks at digits that are not centred. TensorFlow only (its data is a
    ``tf.data`` pipeline): on another backend, load the classifier that TensorFlow trained (``.keras``).
    """
    train = digit_dataset(pools["train"], batch_size, max_shift=max_shift, shuffle=True, seed=seed)
    val = digit_dataset(pools["val"], 256)
    steps = epochs * int(np.ceil(len(pools["train"].labels) / batch_size))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # The dataset shuffles itself; shuffle=False only stops Keras from warning about it.
    return model.fit(train, validation_data=val, epochs=epochs, verbose=verbose, shuffle=False)


def predict_digits(model: keras.Model, pool: DigitPool, batch_size: int = 512) -> np.ndarray:
    """Predicted labels int (N,) for a pool of 28x28 digits."""
    logits = model.predict(to_input(pool.images), batch_size=batch_size, verbose=0)
    return np.argmax(logits, axis=-1)
