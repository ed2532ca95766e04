"""The workarounds of m2nist_utils.compat: each bug is shown still there, and each workaround shown to work.

When ``test_..._still_fails_...`` fails after a Keras or TensorFlow upgrade, the bug it names is fixed:
drop the workaround as compat's docstring says (the cluster run of test_train_cli checks the result).
"""

from __future__ import annotations

from m2nist_utils import compat
from m2nist_utils._tf import keras, tf

import numpy as np
import pytest


def taken_for_a_cluster(strategy_class):
    """A one-process ``strategy_class`` that Keras takes for one worker of a cluster.

    Keras' ``fit`` reduces the loss the faulty way only when ``strategy.extended._in_multi_worker_mode()``
    (keras/src/backend/tensorflow/trainer.py); saying so here avoids starting a real cluster.
    """
    strategy = strategy_class()
    strategy.extended._in_multi_worker_mode = lambda: True
    return strategy


def fit_losses(strategy) -> list[float]:
    """The losses of one short ``fit`` (two steps of a one-weight-layer model) built in ``strategy``."""
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="zeros")])
        model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 3), np.float32), np.ones((8, 1), np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    return model.fit(data, epochs=2, verbose=0, shuffle=False).history["loss"]


def test_keras_fit_still_fails_under_the_plain_multi_worker_strategy():
    # keras-team/keras#20585: each step's scalar loss is reduced with axis=0.
    plain = taken_for_a_cluster(tf.distribute.MultiWorkerMirroredStrategy)
    with pytest.raises(ValueError, match="Invalid reduction dimension 0"):
        fit_losses(plain)


def test_keras_fits_under_the_workaround_with_the_losses_of_one_device():
    fixed = taken_for_a_cluster(compat.MultiWorkerMirroredStrategy)
    assert fit_losses(fixed) == pytest.approx(fit_losses(tf.distribute.get_strategy()))


def test_the_workaround_reduces_a_structure_value_by_value_and_a_scalar_without_its_axis():
    fixed = compat.MultiWorkerMirroredStrategy()
    reduced = fixed.reduce("MEAN", {"batch": tf.constant([1.0, 3.0]), "loss": tf.constant(2.5)}, axis=0)
    assert {name: float(value) for name, value in reduced.items()} == {"batch": 2.0, "loss": 2.5}
