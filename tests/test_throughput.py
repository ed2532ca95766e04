"""training.measure_input and training.measure_step: what notebook 07 and benchmarks/backends.py divide.

A clock that advances one second per reading makes each rate the number of images counted, so these tests
check what is counted (whole epochs, the step's batch, nothing of the warm-up) and not this machine's speed.
"""

from __future__ import annotations

import itertools

from m2nist_utils import pipeline, stream, training
from m2nist_utils._keras import keras

import numpy as np
import pytest
from conftest import sample_pools


@pytest.fixture(scope="module")
def pool():
    return sample_pools()["train"]


@pytest.fixture
def one_second_per_reading(monkeypatch):
    ticks = itertools.count()
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(ticks)))


def test_measure_input_counts_whole_epochs_of_a_tf_data_dataset(pool, one_second_per_reading):
    # 10 images a pass (batches of 4, 4, 2); the warm-up batch is not counted: 3 passes, 30 images.
    assert training.measure_input(pipeline.training_dataset(pool, 10, batch_size=4), epochs=3) == 30.0


def test_measure_input_reads_every_batch_and_draws_the_next_epoch_of_a_stream(pool, one_second_per_reading):
    data = stream.TrainingStream(pool, 10, batch_size=4, seed=0)
    first = data.images.copy()
    assert training.measure_input(data, epochs=2) == 20.0
    # Two epochs read, two drawn after them, as fit would: the stream now holds its third epoch.
    assert data.epoch == 2
    assert not np.array_equal(data.images, first)


class CountingModel(keras.Model):
    """A one-weight model whose training steps are counted (the clock is read only around them)."""

    def __init__(self):
        super().__init__()
        self.scale = keras.layers.Dense(1)
        self.steps = 0

    def call(self, images):
        return self.scale(images)

    def train_on_batch(self, x, y, **kwargs):
        self.steps += 1
        return 0.0


def test_measure_step_times_the_steps_after_two_untimed_ones(one_second_per_reading):
    model = CountingModel()
    images = np.zeros((8, 64, 84, 1), np.float32)
    class_maps = np.zeros((8, 64, 84), np.int32)
    # 5 timed steps of 8 images over the one second between two clock readings.
    assert training.measure_step(model, images, class_maps, steps=5) == 40.0
    assert model.steps == 7


def test_data_parallel_refuses_tensorflow_naming_the_backend():
    # On TensorFlow the lesson is tf.distribute (notebook 07); the JAX path runs in test_sweep_and_backends.
    with pytest.raises(RuntimeError, match="runs on JAX here; Keras runs on tensorflow"):
        training.data_parallel()
