"""FCN surgery (notebook 04): the classifier's layers reused on 64x84 images.

- :class:`FrozenFeatures`: a frozen graph's intermediate tensor as a Keras layer.
- :func:`build_article_fcn`: the article's FCN on frozen ``pool2`` features.
- :func:`convolutionalize`, :func:`convolutionalized_weights`: dense layers as convolutions, same weights.
- :func:`receptive_fields`: receptive field and stride of every layer.
"""

from __future__ import annotations

import numpy as np

from ._keras import keras
from .m2nist import HEIGHT, WIDTH


class FrozenFeatures(keras.layers.Layer):
    """A frozen graph's intermediate tensor as a Keras layer (no trainable weights; notebook 04).

    TensorFlow only: the graph runs as a TensorFlow function.

    Args:
        function: from :func:`m2nist_utils.freeze.load_frozen_graph`, float32 (N, H, W, 1) -> (N, h, w, C).
        output_shape: (h, w, C) of its output for the model's input size, e.g. (14, 19, 8) for ``pool2``.
    """

    def __init__(self, function, output_shape: tuple[int, int, int], **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.function = function
        self.feature_shape = tuple(output_shape)

    def call(self, images):
        from ._tf import tf  # a frozen graph runs on TensorFlow only

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
    x = inputs = keras.Input((HEIGHT, WIDTH, 1), name="image")
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
