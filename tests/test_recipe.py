"""The learning-rate schedule, the range test and the coarse foreground (issue 18 §2-3)."""

from __future__ import annotations

from m2nist_utils import m2nist, segmenter, stability, training
from m2nist_utils._keras import keras

import numpy as np
import pytest


def rates(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_without_warm_up_the_rate_decays_from_its_peak_to_one_percent():
    schedule = stability.learning_rate_schedule(0.01, 100)
    values = rates(schedule, [0, 50, 100, 150])
    assert values == pytest.approx([0.01, 0.00505, 1e-4, 1e-4], rel=1e-4)


def test_warm_up_rises_linearly_to_the_peak_then_decays():
    schedule = stability.learning_rate_schedule(0.01, 100, warmup_steps=20)
    values = rates(schedule, [0, 10, 20, 60, 100])
    assert values == pytest.approx([0.0, 0.005, 0.01, 0.00505, 1e-4], rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("warmup", [-1, 100, 101])
def test_a_warm_up_as_long_as_the_run_is_refused(warmup):
    with pytest.raises(ValueError, match=f"warm-up of {warmup} steps: expected fewer than the run's 100"):
        stability.learning_rate_schedule(0.01, 100, warmup_steps=warmup)


class Rates(keras.callbacks.Callback):
    """The optimizer's rate at the start of every batch."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))


def test_train_fcn_warms_up_and_clips(pools):
    model, seen = segmenter.build_fcn(width=4), Rates()
    training.train_fcn(
        model, pools["train"], epochs=2, images_per_epoch=8, batch_size=4, stream="numpy", verbose=0,
        learning_rate=0.01, warmup_epochs=1, clipnorm=0.5, callbacks=[seen],
    )  # fmt: skip
    assert model.optimizer.clipnorm == 0.5
    # 2 steps per epoch, one epoch of warm-up from 0, then a cosine over the other 2 steps to 1% of the peak.
    assert seen.rates == pytest.approx([0.0, 0.005, 0.01, 0.00505], abs=1e-7)


def test_range_test_records_each_batch_as_the_rate_rises(pools):
    model = segmenter.build_fcn(width=4)
    batches = training.training_data(pools["train"], 6 * 4, 4, stream="numpy")
    rates_, losses = stability.lr_range_test(model, batches, steps=6, start=1e-4, stop=1e-2, diverged=1e9)
    assert rates_ == pytest.approx(1e-4 * 100 ** (np.arange(6) / 6))
    assert len(losses) == 6 and np.isfinite(losses).all()
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-2)  # the rate after the last batch


def test_range_test_recovers_each_batch_loss_from_keras_running_mean():
    """Keras reports the epoch's running mean: batch losses 1, 3, 2 are reported as 1, 2, 2."""
    recorder = stability._BatchLosses(diverged=1e9)
    recorder.set_model(keras.Sequential())
    for batch, mean in enumerate([1.0, 2.0, 2.0]):
        recorder.on_train_batch_end(batch, {"loss": mean})
    assert recorder.losses == pytest.approx([1.0, 3.0, 2.0])


def feed(losses, diverged=4.0) -> bool:
    """Whether the range test's recorder stops training, fed these batch losses as Keras reports them."""
    recorder, model = stability._BatchLosses(diverged), keras.Sequential()
    recorder.set_model(model)
    model.stop_training = False
    for batch in range(len(losses)):
        recorder.on_train_batch_end(batch, {"loss": float(np.mean(losses[: batch + 1]))})
    return model.stop_training


def test_range_test_stops_once_the_loss_diverges():
    assert not feed([2.0, 1.0, 3.9])  # under 4 x the lowest loss so far
    assert feed([2.0, 1.0, 3.9, 4.5])
    assert feed([2.0, float("nan")])


def test_coarse_where_starts_as_the_network_without_it(pools):
    images = m2nist.to_input(m2nist.compose_images(pools["val"], 4, seed=0).images)
    keras.utils.set_random_seed(3)
    plain = segmenter.build_fcn(width=4)
    keras.utils.set_random_seed(3)
    coarse = segmenter.build_fcn(width=4, coarse_where=True)
    assert coarse.count_params() == plain.count_params() + 17  # a 1x1 convolution of 16 channels, + bias
    np.testing.assert_allclose(coarse(images), plain(images), atol=1e-6)
    kernel, bias = coarse.get_layer("where32").get_weights()
    coarse.get_layer("where32").set_weights([kernel, bias - 5.0])  # the coarse map says: background
    assert np.asarray(coarse(images))[..., -1].mean() > np.asarray(plain(images))[..., -1].mean() + 0.3
