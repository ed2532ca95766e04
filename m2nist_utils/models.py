"""The networks of the series and how they are trained.

- :func:`build_cnn`, :func:`train_cnn`, :func:`load_or_create_cnn`: the article's MNIST classifier
  (notebook 02).
- :func:`shape_table`: the layer-by-layer shape walk-through that notebooks print.
- :func:`describe_device`, :func:`distribution_strategy`: what TensorFlow trains on.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from . import config
from ._tf import keras, tf
from .files import atomic_save_to_path
from .mnist import DigitPool, split_pools

BACKGROUND_CLASS = 10
CNN_LAYERS = ("conv1", "pool1", "conv2", "pool2", "flatten", "dense32", "dense10")
CNN_EPOCHS = 6 if config.QUICK else 40


# ----------------------------------------------------------------------------------------------------
# Devices
# ----------------------------------------------------------------------------------------------------
def describe_device() -> str:
    """One line naming what TensorFlow computes on: the visible GPUs, else the CPU and its cores."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return f"{len(gpus)} GPU(s): {', '.join(names)}"
    return f"CPU ({os.cpu_count()} cores visible)"


@functools.cache
def distribution_strategy() -> tf.distribute.Strategy:
    """Mirrored over all GPUs when there are several, the single device (GPU or CPU) otherwise.

    One object per session: a model built in its scope must be compiled and trained in the same one.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")


# ----------------------------------------------------------------------------------------------------
# The article's CNN
# ----------------------------------------------------------------------------------------------------
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


def format_table(rows: list[dict[str, object]]) -> str:
    """A plain-text table of dict rows with aligned columns, for printing in notebooks."""
    keys = list(rows[0])
    widths = {k: max(len(str(k)), *(len(str(r[k])) for r in rows)) for k in keys}
    lines = ["  ".join(str(k).ljust(widths[k]) for k in keys)]
    lines.append("  ".join("-" * widths[k] for k in keys))
    lines += ["  ".join(str(r[k]).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(lines)


def _fmt(shape: tuple) -> str:
    return " x ".join("?" if d is None else str(d) for d in shape)


def digit_dataset(
    pool: DigitPool, batch_size: int = 64, max_shift: int = 0, shuffle: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """Batches of (images float32 (B, 28, 28, 1) in [0, 1], labels int32 (B,)).

    ``max_shift`` > 0 moves each digit by up to that many pixels in each direction, drawn afresh every
    epoch (zero-padded, then randomly cropped back to 28x28).
    """
    x = pool.images[..., None].astype(np.float32) / 255.0
    ds = tf.data.Dataset.from_tensor_slices((x, pool.labels.astype(np.int32)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if max_shift:
        pad = [[max_shift, max_shift], [max_shift, max_shift], [0, 0]]

        def shift(image, label):
            padded = tf.pad(image, pad)
            return tf.image.random_crop(padded, (28, 28, 1)), label

        ds = ds.map(shift, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def train_cnn(
    model: keras.Model,
    pools: dict[str, DigitPool],
    epochs: int = CNN_EPOCHS,
    batch_size: int = 64,
    max_shift: int = 2,
    learning_rate: float = 1e-2,
    seed: int = 0,
    verbose: int = 2,
) -> keras.callbacks.History:
    """Train the classifier on the train pool, validating on the val pool (notebook 02).

    Adam with a cosine-decaying learning rate; random shifts of up to ``max_shift`` pixels, because the
    FCN built from this network later looks at digits that are not centred.
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
    logits = model.predict(
        pool.images[..., None].astype(np.float32) / 255.0, batch_size=batch_size, verbose=0
    )
    return np.argmax(logits, axis=-1)


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """``model.save`` to a temporary ``.keras`` file, then rename: never half a model on disk."""
    return atomic_save_to_path(path, model.save)


def load_model(path: str | os.PathLike) -> keras.Model:
    """``keras.models.load_model`` with a clear error naming a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        return keras.models.load_model(path)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad archive
        raise ValueError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {exc})") from exc


def cnn_path() -> Path:
    return config.MODELS_DIR / "cnn.keras"


def load_or_create_cnn(source: str | None = "auto", seed: int = 0, verbose: int = 0) -> keras.Model:
    """``models/cnn.keras``, trained (and saved) first when it is missing or unreadable."""
    try:
        return load_model(cnn_path())
    except (FileNotFoundError, ValueError):
        pass
    keras.utils.set_random_seed(seed)
    model = build_cnn()
    train_cnn(model, split_pools(source, seed=seed), seed=seed, verbose=verbose)
    save_model(model, cnn_path())
    return model


# ----------------------------------------------------------------------------------------------------
# FCN surgery (notebook 04)
# ----------------------------------------------------------------------------------------------------
class FrozenFeatures(keras.layers.Layer):
    """A frozen graph's intermediate tensor as a Keras layer (no trainable weights; notebook 04).

    Args:
        function: from :func:`m2nist_utils.freeze.load_frozen_graph`, float32 (N, H, W, 1) -> (N, h, w, C).
        output_shape: (h, w, C) of its output for the model's input size, e.g. (14, 19, 8) for ``pool2``.
    """

    def __init__(self, function, output_shape: tuple[int, int, int], **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.function = function
        self.feature_shape = tuple(output_shape)

    def call(self, images):
        features = self.function(images)
        return tf.ensure_shape(features, (None, *self.feature_shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.feature_shape)


def build_article_fcn(
    features: keras.layers.Layer, n_classes: int = 10, score_relu: bool = True, l2_scale: float = 1e-3
) -> keras.Model:
    """The article's FCN on top of frozen ``pool2`` features (14x19x8 for a 64x84 input; notebook 04).

    1x1 conv (32, ReLU) in place of ``dense32``, 1x1 conv to ``n_classes`` (ReLU, as the article has it) in
    place of ``dense10``, then two transposed convolutions, kernel 4 and 6, stride 2, 'valid':
    14x19 -> 30x40 -> 64x84, and a per-pixel softmax. The article used 10 classes (no background); pass 11
    to add it.

    Args:
        features: a layer mapping float32 images (N, 64, 84, 1) to (N, 14, 19, 8) (:class:`FrozenFeatures`).
        n_classes: output channels of the score layer and of both transposed convolutions.
        score_relu: the article's ReLU on the score layer; ``False`` leaves the scores linear.
        l2_scale: the article's ``tf.contrib.layers.l2_regularizer(l2_scale)`` on the transposed
            convolutions' kernels; 0 for none. (The article's own training loss never added it; notebook 04.)
    """
    # tf.contrib's regulariser is scale * sum(w**2) / 2 (tf.nn.l2_loss); Keras' L2(c) is c * sum(w**2).
    regularizer = keras.regularizers.L2(l2_scale / 2) if l2_scale else None
    x = inputs = keras.Input((64, 84, 1), name="image")
    x = features(x)
    x = keras.layers.Conv2D(32, 1, activation="relu", name="score32")(x)
    x = keras.layers.Conv2D(n_classes, 1, activation="relu" if score_relu else None, name="score")(x)
    for name, kernel in (("upsample1", 4), ("upsample2", 6)):
        x = keras.layers.Conv2DTranspose(
            n_classes, kernel, strides=2, padding="valid", kernel_regularizer=regularizer, name=name
        )(x)
    outputs = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"article_fcn_{n_classes}")


def convolutionalize(cnn: keras.Model, input_shape: tuple = (None, None, 1)) -> keras.Model:
    """The classifier as a fully-convolutional network carrying the same trained weights.

    ``dense32`` becomes a 5x5 convolution (its 200x32 kernel reshaped to 5x5x8x32, matching the row-major
    order in which ``flatten`` laid out the 5x5x8 ``pool2`` map) and ``dense10`` a 1x1 convolution. On a
    28x28 input the output is 1x1x10, the CNN's logits; on a larger input it is a map of class scores, one
    per 28x28 window at a stride of 4 pixels.
    """
    x = inputs = keras.Input(input_shape, name="image")
    for name in ("conv1", "pool1", "conv2", "pool2"):
        layer = cnn.get_layer(name)
        x = layer.__class__.from_config(layer.get_config())(x)
    x = keras.layers.Conv2D(32, 5, activation="relu", name="dense32_conv")(x)
    x = keras.layers.Conv2D(10, 1, name="dense10_conv")(x)
    fcn = keras.Model(inputs, x, name="cnn_convolutionalized")
    for name, weights in convolutionalized_weights(cnn).items():
        fcn.get_layer(name).set_weights(weights)
    return fcn


def convolutionalized_weights(cnn: keras.Model) -> dict[str, list[np.ndarray]]:
    """The classifier's trained weights by the name of the convolution that carries them.

    ``conv1`` and ``conv2`` as they are; ``dense32_conv`` 5x5x8x32 and ``dense10_conv`` 1x1x32x10, the dense
    kernels reshaped in the row-major order in which ``flatten`` laid out the 5x5x8 ``pool2`` map.
    """
    weights = {name: cnn.get_layer(name).get_weights() for name in ("conv1", "conv2")}
    kernel, bias = cnn.get_layer("dense32").get_weights()
    weights["dense32_conv"] = [kernel.reshape(5, 5, 8, 32), bias]
    kernel, bias = cnn.get_layer("dense10").get_weights()
    weights["dense10_conv"] = [kernel.reshape(1, 1, 32, 10), bias]
    return weights


def receptive_fields(model: keras.Model, start: tuple[float, float] = (1, 1)) -> list[dict[str, object]]:
    """Per layer: receptive field (pixels of the input one output pixel depends on) and stride (jump).

    Standard recurrence: r_out = r_in + (k - 1) * j_in, j_out = j_in * s. A transposed convolution with
    kernel k and stride s makes each output pixel depend on ceil(k / s) input pixels and divides the jump.
    ``start`` = (field, jump) of the model's input, for a model built on features (``pool2``: (12, 4)).
    """
    (field, jump), rows = start, []
    for layer in model.layers:
        kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
        if kernel is None:
            continue
        stride = getattr(layer, "strides", (1, 1))[0]
        dilation = getattr(layer, "dilation_rate", (1, 1))[0]
        if isinstance(layer, keras.layers.Conv2DTranspose):
            field += (int(np.ceil(kernel[0] / stride)) - 1) * jump
            jump /= stride
        else:
            field += (kernel[0] - 1) * dilation * jump
            jump *= stride
        rows.append({"layer": layer.name, "receptive field": f"{field:g} px", "jump": f"{jump:g} px"})
    return rows


# ----------------------------------------------------------------------------------------------------
# FCN training (notebook 05)
# ----------------------------------------------------------------------------------------------------
def distort_digits(pool: DigitPool, seed: int, strength: float = 1.0) -> DigitPool:
    """The pool's digits, each slightly rotated (up to 12 degrees), scaled (10%) and sheared (0.2).

    Training-time augmentation only: the test images keep their digits untransformed (notebook 05).
    """
    rng = np.random.default_rng(seed)
    n = len(pool.images)
    angle = np.deg2rad(rng.uniform(-12, 12, n) * strength)
    scale = 1 + rng.uniform(-0.1, 0.1, n) * strength
    shear = rng.uniform(-0.2, 0.2, n) * strength
    cos, sin = np.cos(angle), np.sin(angle)
    # Each row maps an output pixel back to the input pixel it samples, about the centre (13.5, 13.5).
    a0, a1 = cos / scale, (shear * cos - sin) / scale
    b0, b1 = sin / scale, (cos + shear * sin) / scale
    a2, b2 = 13.5 * (1 - a0 - a1), 13.5 * (1 - b0 - b1)
    zeros = np.zeros(n)
    transforms = np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1).astype(np.float32)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(pool.images[..., None], tf.float32),
        transforms=transforms,
        output_shape=[28, 28],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return DigitPool(np.clip(np.round(warped.numpy()[..., 0]), 0, 255).astype(np.uint8), pool.labels)


def m2nist_dataset(
    pool: DigitPool,
    images_per_epoch: int,
    batch_size: int = 32,
    fresh: bool = True,
    seed: int = 0,
    distort: bool = False,
) -> tf.data.Dataset:
    """Training batches (images float32 (B, 64, 84, 1) in [0, 1], class maps int32 (B, 64, 84)).

    With ``fresh=True`` every epoch composes new images from the digit pool (tf.data calls the generator
    again for each pass), so the network never sees the same scene twice; otherwise one fixed set repeats.
    ``distort=True`` also redraws a slightly rotated, scaled and sheared copy of each digit every epoch.
    """
    from .m2nist import compose_images

    epochs = iter(range(10**9))

    def scenes():
        epoch = next(epochs) if fresh else 0
        digits = distort_digits(pool, seed * 1_000_003 + epoch) if distort else pool
        data = compose_images(digits, images_per_epoch, seed=seed * 1_000_003 + epoch)
        order = np.random.default_rng(seed + epoch).permutation(images_per_epoch)
        for start in range(0, images_per_epoch, batch_size):
            idx = order[start : start + batch_size]
            images = data.images[idx, ..., None].astype(np.float32) / 255.0
            yield images, data.class_maps[idx].astype(np.int32)

    signature = (
        tf.TensorSpec((None, 64, 84, 1), tf.float32),
        tf.TensorSpec((None, 64, 84), tf.int32),
    )
    steps = int(np.ceil(images_per_epoch / batch_size))
    dataset = tf.data.Dataset.from_generator(scenes, output_signature=signature)
    # A known length lets Keras count steps per epoch instead of warning that the data "ran out".
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)


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
    """
    steps = epochs * int(np.ceil(images_per_epoch / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)
    n_classes = model.output_shape[-1]
    data = m2nist_dataset(train_pool, images_per_epoch, batch_size, fresh=fresh, seed=seed, distort=distort)
    val = None
    if validation is not None:
        images, class_maps = validation
        val = (images[..., None].astype(np.float32) / 255.0, class_maps.astype(np.int32))
    # Compile and fit in the strategy the model was built in (its variables live there).
    with model.distribute_strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=loss or _default_loss(n_classes),
        )
        return model.fit(
            data, validation_data=val, epochs=epochs, verbose=verbose, shuffle=False, callbacks=callbacks
        )


def _default_loss(n_classes: int):
    return keras.losses.SparseCategoricalCrossentropy() if n_classes == 11 else digits_only_loss


def digits_only_loss(y_true, y_pred):
    """The article's loss: softmax cross-entropy against 10-channel masks.

    Background pixels have an all-zero target and so contribute nothing: the network is never told what
    background is, and paints some digit everywhere (the article's "white background").
    """
    target = tf.one_hot(tf.cast(y_true, tf.int32), 11)[..., :10]
    # Written out on purpose: keras' categorical_crossentropy hands a softmax's logits to TensorFlow's fused
    # op, whose gradient (softmax - target) assumes targets that sum to 1. For an all-zero target it is not
    # zero, and would push every background pixel's logits down without bound - training then diverges.
    return -tf.reduce_sum(target * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)), axis=-1)


def fused_digits_loss(y_true, y_pred):
    """The article's loss as the library computes it: keras' categorical cross-entropy on 10-channel masks.

    Kept to show the pitfall of :func:`digits_only_loss` (notebook 05): for a softmax output Keras uses the
    fused op on its logits, whose gradient on an all-zero (background) target is the softmax itself.
    """
    target = tf.one_hot(tf.cast(y_true, tf.int32), 11)[..., :10]
    return keras.losses.categorical_crossentropy(target, y_pred)


def apply_ink_prior(probabilities: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Scores (N, 64, 84, 11) with the *ink prior*: the model's digit classes on ink, background elsewhere.

    A hand-coded prior, not something learnt: it holds for M2NIST only because its masks are defined by ink
    (a pixel is a digit exactly where the image is non-zero). It would fail on noisy scans or natural
    images. Notebook 05 reports every model with and without it; the article's 10-class model has no
    background output at all, and this is the only way it can say "background".

    Args:
        probabilities: float (N, 64, 84, C), C = 10 (the article's model) or 11 (channel 10 ignored).
        images: float or uint8 (N, 64, 84) or (N, 64, 84, 1).
    """
    ink = (np.asarray(images).reshape(probabilities.shape[:3]) > 0)[..., None]
    return np.concatenate([probabilities[..., :10] * ink, ~ink * 2.0], axis=-1)


# ----------------------------------------------------------------------------------------------------
# Our FCN (notebook 05)
# ----------------------------------------------------------------------------------------------------
def build_fcn(
    cnn: keras.Model | None = None,
    conv_head: bool = True,
    finetune: bool = True,
    context: bool = True,
    skips: bool = True,
    pixel_path: bool = True,
    width: int = 32,
    name: str = "fcn",
) -> keras.Model:
    """Our FCN for 64x84 M2NIST images, 11 classes; each flag is one idea of notebook 05's ablation.

    Args:
        cnn: the pretrained classifier whose weights initialise ``conv1``, ``conv2`` and the head.
        conv_head: ``dense32`` as a 5x5 convolution and ``dense10`` as a 1x1 convolution carrying their
            trained weights (receptive field 28 px, one digit), instead of fresh 1x1 convolutions.
        finetune: train the encoder's weights too, instead of keeping them frozen.
        context: two residual dilated 3x3 convolutions (rates 2 and 4) at 14x19, so that every pixel's
            prediction sees its whole digit and its neighbours (receptive field 76 px).
        skips: a decoder that joins finer maps: the article's first transposed convolution (14x19 ->
            30x40), ``pool1``'s 30x40 map beside it, and a 3x3 transposed convolution to 32x42, where an
            11-class softmax is doubled bilinearly to 64x84; otherwise the article's two transposed
            convolutions and a softmax over 11 classes.
        pixel_path: (with ``skips``) split *which digit* from *where*: a softmax over the ten digits at
            32x42, doubled bilinearly, times a full-resolution foreground probability learnt by a 3x3
            convolution over the input's pixels. The only learnt layer at 64x84 has 10 weights, so outlines
            are sharp at little cost.
        width: channels of the context layers.

    Returns:
        A Keras model: ``image`` float32 (None, 64, 84, 1) in [0, 1] -> ``probabilities`` (None, 64, 84, 11).
    """
    layers = keras.layers
    x = inputs = keras.Input((64, 84, 1), name="image")
    conv1 = layers.Conv2D(8, 5, activation="relu", name="conv1", trainable=finetune)(x)  # 60x80
    pool1 = layers.MaxPooling2D(2, name="pool1")(conv1)  # 30x40
    conv2 = layers.Conv2D(8, 3, activation="relu", name="conv2", trainable=finetune)(pool1)  # 28x38
    pool2 = layers.MaxPooling2D(2, name="pool2")(conv2)  # 14x19
    kernel = 5 if conv_head else 1
    head = layers.Conv2D(32, kernel, padding="same", activation="relu", name="dense32_conv")(pool2)
    scores = layers.Conv2D(11, 1, name="dense10_conv")(head)  # 10 digits from dense10, + background
    if not skips:
        features = head
        if context:
            features = _context(layers.Concatenate(name="head_and_scores")([head, scores]), width)
            scores = layers.Conv2D(11, 1, name="context_scores")(features)
        up = layers.Conv2DTranspose(11, 4, strides=2, name="upsample1")(scores)  # 30x40
        logits = layers.Conv2DTranspose(11, 6, strides=2, name="upsample2")(up)  # 64x84
        probabilities = layers.Softmax(name="probabilities")(logits)
        return _with_cnn_weights(keras.Model(inputs, probabilities, name=name), cnn, conv_head)
    features = layers.Concatenate(name="head_and_scores")([head, scores])
    if context:
        features = _context(features, width)
    features = layers.Conv2D(16, 1, activation="relu", name="squeeze")(features)
    # Kernel 4, stride 2 puts output pixel j exactly over pool1's pixel j: the two maps line up.
    up = layers.Conv2DTranspose(16, 4, strides=2, activation="relu", name="upsample1")(features)  # 30x40
    up = layers.Conv2DTranspose(16, 3, activation="relu", name="decode32")(
        layers.Concatenate(name="skip_pool1")([up, pool1])
    )  # 32x42: one pixel more on every side, so that doubling it covers the whole 64x84 image
    if not pixel_path:
        # Bilinear doubling of probability vectors gives probability vectors: a blend of two is still one.
        coarse = layers.Softmax(name="probabilities32")(layers.Conv2D(11, 1, name="scores32")(up))
        probabilities = layers.UpSampling2D(2, interpolation="bilinear", name="probabilities")(coarse)
        return _with_cnn_weights(keras.Model(inputs, probabilities, name=name), cnn, conv_head)
    # Which digit: a softmax over the ten digits at 32x42, a quarter of the cost of one at 64x84, doubled
    # bilinearly (a blend of probability vectors is still one).
    digits = layers.Softmax(name="digit_probabilities")(layers.Conv2D(10, 1, name="scores32")(up))
    digits = layers.UpSampling2D(2, interpolation="bilinear", name="upsample2")(digits)  # 64x84
    # Where: a foreground logit from a 3x3 convolution over the pixels themselves, at full resolution.
    # Adam moves every weight by about the learning rate per step, whatever the scale of its input; reading
    # the pixels as 8 x grey level lets these ten weights learn the faint edges of strokes (grey levels
    # 1-20 are 7% of the ink) within the budget: a per-layer learning rate, as a fixed input scale.
    pixels = layers.Rescaling(PIXEL_SCALE, name="grey_levels_x8")(x)
    small = keras.initializers.RandomNormal(stddev=0.01)  # starts near "no opinion" despite the x8 scale
    where = layers.Conv2D(1, 3, padding="same", kernel_initializer=small, name="pixels")(pixels)
    foreground = layers.Activation("sigmoid", name="foreground")(where)
    # p(digit k) = p(foreground) p(k | digit), p(background) = 1 - p(foreground): eleven that sum to one.
    on_digits = layers.Multiply(name="digits_on_foreground")([digits, foreground])
    background = layers.Rescaling(-1.0, offset=1.0, name="background")(foreground)
    probabilities = layers.Concatenate(name="probabilities")([on_digits, background])
    return _with_cnn_weights(keras.Model(inputs, probabilities, name=name), cnn, conv_head)


def _with_cnn_weights(model: keras.Model, cnn: keras.Model | None, conv_head: bool) -> keras.Model:
    """The pretrained classifier's weights into ``conv1``, ``conv2`` and (with ``conv_head``) the head."""
    if cnn is None:
        return model
    weights = convolutionalized_weights(cnn)
    for layer in ("conv1", "conv2", *(("dense32_conv",) if conv_head else ())):
        model.get_layer(layer).set_weights(weights[layer])
    if conv_head:
        # dense10's ten classes fill the first ten channels; background keeps its fresh weights.
        kernel, bias = model.get_layer("dense10_conv").get_weights()
        kernel[..., :10], bias[:10] = weights["dense10_conv"]
        model.get_layer("dense10_conv").set_weights([kernel, bias])
    return model


#: The pixel path's input scale (notebook 05): 8 units per grey level; see :func:`build_fcn`.
PIXEL_SCALE = 8 * 255.0


def _context(x, width: int):
    """Residual dilated 3x3 convolutions at 14x19 (rates 2 and 4): receptive field 28 -> 76 px."""
    x = keras.layers.Conv2D(width, 1, activation="relu", name="context_in")(x)
    for i, rate in enumerate((2, 4)):
        more = keras.layers.Conv2D(
            width, 3, padding="same", dilation_rate=rate, activation="relu", name=f"context{i}"
        )(x)
        x = keras.layers.Add(name=f"context{i}_add")([x, more])
    return x


def predict_class_maps(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class maps uint8 (N, 64, 84) (argmax per pixel) for images uint8 (N, 64, 84)."""
    predict = compiled_predictor(model)
    maps = [
        np.argmax(predict(images[i : i + batch_size, ..., None].astype(np.float32) / 255.0), axis=-1)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(maps).astype(np.uint8)


def compiled_predictor(model: keras.Model):
    """``model`` in inference mode as one traced ``tf.function`` (no per-call Keras overhead)."""
    # A fixed signature with an open batch size: one trace, whatever the size of the last batch.
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    function = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return lambda x: function(tf.convert_to_tensor(x, tf.float32)).numpy()


#: The final training recipe (notebook 05): fresh images of freshly distorted digits every epoch.
FCN_RECIPE: dict[str, object] = {
    "epochs": 3 if config.QUICK else 12,
    "images_per_epoch": 3_000 if config.QUICK else 8_000,
    "batch_size": 32,
    "learning_rate": 8e-3,
    "distort": True,
}
#: The shorter, equal budget of every ablation step (notebook 05): one fixed set of images, digits as they
#: are, the final recipe's learning rate.
ABLATION_BUDGET: dict[str, object] = {
    "epochs": 1 if config.QUICK else 3,
    "images_per_epoch": 800 if config.QUICK else 3_000,
    "batch_size": 32,
    "learning_rate": 8e-3,
    "fresh": False,
}


def evaluate_fcn(
    model: keras.Model, images: np.ndarray, class_maps: np.ndarray, ink_prior: bool = False
) -> dict[str, object]:
    """The series' scores of a segmentation model on images uint8 (N, 64, 84) and class maps (N, 64, 84).

    ``ink_prior=True`` scores the model's digit classes through :func:`apply_ink_prior` (background exactly
    where there is no ink); otherwise the model's own background decides. A 10-class model (the article's)
    has no background output, so without the prior it paints some digit on every pixel.
    """
    from . import metrics

    predict = compiled_predictor(model)
    if ink_prior:
        return metrics.evaluate_segmentation(lambda x: apply_ink_prior(predict(x), x), images, class_maps)
    if model.output_shape[-1] == 10:  # never background: a background channel that always scores zero
        return metrics.evaluate_segmentation(
            lambda x: np.pad(predict(x), [(0, 0)] * 3 + [(0, 1)]), images, class_maps
        )
    return metrics.evaluate_segmentation(predict, images, class_maps)


def fcn_path() -> Path:
    return config.MODELS_DIR / "fcn.keras"


def fcn_frozen_path() -> Path:
    return config.MODELS_DIR / "fcn_frozen.pb"


def load_or_create_fcn(source: str | None = "auto", seed: int = 0, verbose: int = 0) -> keras.Model:
    """``models/fcn.keras`` (and its frozen twin), trained with :data:`FCN_RECIPE` first when missing."""
    from . import freeze

    try:
        return load_model(fcn_path())
    except (FileNotFoundError, ValueError):
        pass
    cnn = load_or_create_cnn(source, seed=seed)
    keras.utils.set_random_seed(seed)
    with distribution_strategy().scope():
        model = build_fcn(cnn)
    train_fcn(model, split_pools(source, seed=seed)["train"], seed=seed, verbose=verbose, **FCN_RECIPE)
    save_model(model, fcn_path())
    freeze.freeze_model(model, fcn_frozen_path(), output_name="probabilities")
    return model
