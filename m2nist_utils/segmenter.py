"""Our FCN (notebook 05): the network, its losses, prediction and scoring, on any Keras backend.

- :func:`build_fcn`: the final network; each flag is one idea of notebook 06's ablation.
- :data:`PIXEL_SCALE`: the pixel path's input scale.
- :func:`digits_only_loss`, :func:`fused_digits_loss`: the article's 10-class loss, written out and fused.
- :func:`apply_ink_prior`: the dataset-specific ink prior, as optional post-processing.
- :func:`compiled_predictor`, :func:`predict_class_maps`, :func:`evaluate_fcn`: inference and scores.
"""

from __future__ import annotations

import numpy as np

from . import metrics
from ._keras import keras, on_tensorflow
from .m2nist import BACKGROUND, HEIGHT, N_CLASSES, PIXEL_MAX, WIDTH, to_input
from .surgery import convolutionalized_weights

#: The pixel path's input scale (notebook 05): 8 units per grey level; see :func:`build_fcn`.
PIXEL_SCALE = 8 * PIXEL_MAX
#: Softmaxes, sigmoids and everything after them compute in float32 even under a ``mixed_float16`` policy
#: (notebook 07): probabilities near 0 and 1 and their logarithms in the loss need float32's range.
F32 = "float32"


def build_fcn(
    cnn: keras.Model | None = None,
    conv_head: bool = True,
    finetune: bool = True,
    context: bool = True,
    skips: bool = True,
    pixel_path: bool = True,
    width: int = 32,
    name: str = "fcn",
    coarse_where: bool = False,
) -> keras.Model:
    """Our FCN for 64x84 M2NIST images, 11 classes; each flag is one idea of notebook 06's ablation.

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
        coarse_where: (with ``pixel_path``) add to the pixels' foreground logit one from the decoder's
            32x42 map, doubled bilinearly: *where* then also sees the digit-level context that tells a
            digit's stroke from a fragment of one (cluttered M2NIST, notebook 09). It starts at zero, so
            the network starts as the one without it.

    Returns:
        A Keras model: ``image`` float32 (None, 64, 84, 1) in [0, 1] -> ``probabilities`` (None, 64, 84, 11).
    """
    layers = keras.layers
    x = inputs = keras.Input((HEIGHT, WIDTH, 1), name="image")
    conv1 = layers.Conv2D(8, 5, activation="relu", name="conv1", trainable=finetune)(x)  # 60x80
    pool1 = layers.MaxPooling2D(2, name="pool1")(conv1)  # 30x40
    conv2 = layers.Conv2D(8, 3, activation="relu", name="conv2", trainable=finetune)(pool1)  # 28x38
    pool2 = layers.MaxPooling2D(2, name="pool2")(conv2)  # 14x19
    kernel = 5 if conv_head else 1
    head = layers.Conv2D(32, kernel, padding="same", activation="relu", name="dense32_conv")(pool2)
    scores = layers.Conv2D(N_CLASSES, 1, name="dense10_conv")(head)  # 10 digits from dense10, + background
    if not skips:
        features = head
        if context:
            features = _context(layers.Concatenate(name="head_and_scores")([head, scores]), width)
            scores = layers.Conv2D(N_CLASSES, 1, name="context_scores")(features)
        up = layers.Conv2DTranspose(N_CLASSES, 4, strides=2, name="upsample1")(scores)  # 30x40
        logits = layers.Conv2DTranspose(N_CLASSES, 6, strides=2, name="upsample2")(up)  # 64x84
        probabilities = layers.Softmax(name="probabilities", dtype=F32)(logits)
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
        scores = layers.Conv2D(N_CLASSES, 1, name="scores32")(up)
        coarse = layers.Softmax(name="probabilities32", dtype=F32)(scores)
        probabilities = layers.UpSampling2D(2, interpolation="bilinear", name="probabilities", dtype=F32)(
            coarse
        )
        return _with_cnn_weights(keras.Model(inputs, probabilities, name=name), cnn, conv_head)
    # Which digit: a softmax over the ten digits at 32x42, a quarter of the cost of one at 64x84, doubled
    # bilinearly (a blend of probability vectors is still one).
    scores = layers.Conv2D(BACKGROUND, 1, name="scores32")(up)
    digits = layers.Softmax(name="digit_probabilities", dtype=F32)(scores)
    digits = layers.UpSampling2D(2, interpolation="bilinear", name="upsample2", dtype=F32)(digits)  # 64x84
    # Where: a foreground logit from a 3x3 convolution over the pixels themselves, at full resolution.
    # Adam moves every weight by about the learning rate per step, whatever the scale of its input; reading
    # the pixels as 8 x grey level lets these ten weights learn the faint edges of strokes (grey levels
    # 1-20 are 7% of the ink) within the budget: a per-layer learning rate, as a fixed input scale.
    pixels = layers.Rescaling(PIXEL_SCALE, name="grey_levels_x8")(x)
    small = keras.initializers.RandomNormal(stddev=0.01)  # starts near "no opinion" despite the x8 scale
    where = layers.Conv2D(1, 3, padding="same", kernel_initializer=small, name="pixels")(pixels)
    if coarse_where:
        # A 3x3 window sees no more than a stroke; the 32x42 map sees the digit the stroke belongs to.
        coarse = layers.Conv2D(1, 1, kernel_initializer="zeros", name="where32")(up)
        coarse = layers.UpSampling2D(2, interpolation="bilinear", name="where32_up")(coarse)
        where = layers.Add(name="where")([where, coarse])
    foreground = layers.Activation("sigmoid", name="foreground", dtype=F32)(where)
    # p(digit k) = p(foreground) p(k | digit), p(background) = 1 - p(foreground): eleven that sum to one.
    on_digits = layers.Multiply(name="digits_on_foreground", dtype=F32)([digits, foreground])
    background = layers.Rescaling(-1.0, offset=1.0, name="background", dtype=F32)(foreground)
    probabilities = layers.Concatenate(name="probabilities", dtype=F32)([on_digits, background])
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


def _context(x, width: int):
    """Residual dilated 3x3 convolutions at 14x19 (rates 2 and 4): receptive field 28 -> 76 px."""
    x = keras.layers.Conv2D(width, 1, activation="relu", name="context_in")(x)
    for i, rate in enumerate((2, 4)):
        more = keras.layers.Conv2D(
            width, 3, padding="same", dilation_rate=rate, activation="relu", name=f"context{i}"
        )(x)
        x = keras.layers.Add(name=f"context{i}_add")([x, more])
    return x


def digits_only_loss(y_true, y_pred):
    """The article's loss: softmax cross-entropy against 10-channel masks.

    Background pixels have an all-zero target and so contribute nothing: the network is never told what
    background is, and paints some digit everywhere (the article's "white background").
    """
    ops = keras.ops
    target = ops.one_hot(ops.cast(y_true, "int32"), N_CLASSES)[..., :BACKGROUND]
    # Written out on purpose: keras' categorical_crossentropy hands a softmax's logits to TensorFlow's fused
    # op, whose gradient (softmax - target) assumes targets that sum to 1. For an all-zero target it is not
    # zero, and would push every background pixel's logits down without bound - training then diverges.
    return -ops.sum(target * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)


def fused_digits_loss(y_true, y_pred):
    """The article's loss as the library computes it: keras' categorical cross-entropy on 10-channel masks.

    Kept to show the pitfall of :func:`digits_only_loss` (notebook 05): for a softmax output Keras uses the
    fused op on its logits, whose gradient on an all-zero (background) target is the softmax itself.
    """
    target = keras.ops.one_hot(keras.ops.cast(y_true, "int32"), N_CLASSES)[..., :BACKGROUND]
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
    return np.concatenate([probabilities[..., :BACKGROUND] * ink, ~ink * 2.0], axis=-1)


def compiled_predictor(model: keras.Model):
    """``model`` in inference mode as one compiled function: NumPy float32 in, NumPy out.

    On TensorFlow one traced ``tf.function`` (no per-call Keras overhead); on JAX or PyTorch Keras' own
    compiled predict step (``predict_on_batch``).
    """
    if not on_tensorflow():
        return lambda x: keras.ops.convert_to_numpy(model.predict_on_batch(np.asarray(x, np.float32)))
    from ._tf import tf

    # A fixed signature with an open batch size: one trace, whatever the size of the last batch.
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    function = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return lambda x: function(tf.convert_to_tensor(x, tf.float32)).numpy()


def predict_class_maps(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class maps uint8 (N, 64, 84) (argmax per pixel) for images uint8 (N, 64, 84)."""
    predict = compiled_predictor(model)
    maps = [
        np.argmax(predict(to_input(images[i : i + batch_size])), axis=-1)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(maps).astype(np.uint8)


def evaluate_fcn(
    model: keras.Model, images: np.ndarray, class_maps: np.ndarray, ink_prior: bool = False
) -> dict[str, object]:
    """The series' scores of a segmentation model on images uint8 (N, 64, 84) and class maps (N, 64, 84).

    ``ink_prior=True`` scores the model's digit classes through :func:`apply_ink_prior` (background exactly
    where there is no ink); otherwise the model's own background decides. A 10-class model (the article's)
    has no background output, so without the prior it paints some digit on every pixel.
    """
    predict = compiled_predictor(model)
    if ink_prior:
        return metrics.evaluate_segmentation(lambda x: apply_ink_prior(predict(x), x), images, class_maps)
    if model.output_shape[-1] == BACKGROUND:  # never background: a background channel that always scores zero
        return metrics.evaluate_segmentation(
            lambda x: np.pad(predict(x), [(0, 0)] * 3 + [(0, 1)]), images, class_maps
        )
    return metrics.evaluate_segmentation(predict, images, class_maps)
