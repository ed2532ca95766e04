"""The article's losses (segmenter.digits_only_loss, fused_digits_loss; notebook 05) by hand."""

from __future__ import annotations

from m2nist_utils import segmenter
from m2nist_utils._tf import keras, tf

import numpy as np
import pytest

#: One pixel of digit 3, one of digit 0 and one of background (10), with hand-picked probabilities.
LABELS = np.array([[[3, 0, 10]]], np.int32)
PROBABILITIES = np.full((1, 1, 3, 10), 0.05, np.float32)
PROBABILITIES[0, 0, 0, 3] = 0.55
PROBABILITIES[0, 0, 1, :] = [0.0] + [1 / 9] * 9  # digit 0 given no probability at all
PROBABILITIES[0, 0, 2, 7] = 0.55


def test_digits_only_loss_is_the_log_loss_of_each_digit_pixel_and_zero_on_background():
    loss = keras.ops.convert_to_numpy(segmenter.digits_only_loss(LABELS, PROBABILITIES))
    assert loss.shape == (1, 1, 3)
    # -log p(true digit); a probability of 0 is clipped to 1e-7, so the loss stays finite.
    assert loss[0, 0] == pytest.approx([-np.log(0.55), -np.log(1e-7), 0.0], rel=1e-5)


def test_fused_loss_agrees_on_digits_but_pushes_background_pixels():
    fused = keras.ops.convert_to_numpy(segmenter.fused_digits_loss(LABELS, PROBABILITIES))
    written_out = keras.ops.convert_to_numpy(segmenter.digits_only_loss(LABELS, PROBABILITIES))
    assert fused[0, 0, 0] == pytest.approx(written_out[0, 0, 0], rel=1e-5)
    assert fused[0, 0, 2] == pytest.approx(0.0, abs=1e-6)  # no loss on background...
    logits = tf.Variable(np.log(PROBABILITIES[:, :, 2:] + 1e-3))
    with tf.GradientTape() as tape:
        loss = segmenter.fused_digits_loss(LABELS[:, :, 2:], keras.ops.softmax(logits))
    assert np.abs(tape.gradient(loss, logits).numpy()).sum() > 0.1  # ...yet a gradient: the pitfall


@pytest.mark.parametrize("loss", [segmenter.digits_only_loss, segmenter.fused_digits_loss])
def test_losses_take_class_maps_of_any_number_type(loss):
    # Keras may hand y_true over as floats; the class numbers must still pick the channels.
    expected = keras.ops.convert_to_numpy(loss(LABELS, PROBABILITIES))
    as_floats = keras.ops.convert_to_numpy(loss(LABELS.astype(np.float32), PROBABILITIES))
    assert np.allclose(as_floats, expected)
