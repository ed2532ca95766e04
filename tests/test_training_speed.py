"""training.time_configuration, the timing helper of notebook 07 (issue 11).

The training itself is replaced by a stand-in that records what it was asked to do, so that these tests check
the helper's own logic (batch and learning rate scaled with the replicas, the policy restored, a failure
reported as a row) in well under a second per test; the real training runs in notebook 07 through nbval.
"""

from __future__ import annotations

import contextlib

from m2nist_utils import config, m2nist, training
from m2nist_utils._tf import keras, tf

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains networks or starts processes: not in `make test-fast`

XLA_FAILURE = "\n".join(
    [
        "Graph execution error:",
        "",
        "2 root error(s) found.",
        "  (0) INVALID_ARGUMENT:  Trying to access resource conv1/kernel/replica_1/600"
        " (defined @ /x/core.py:43)"
        " located in device /job:localhost/replica:0/task:0/device:CPU:1"
        " from device /job:localhost/replica:0/task:0/device:CPU:0",
        " Cf. https://www.tensorflow.org/xla/known_issues#tfvariable_on_a_differen",
    ]
)


class FakeStrategy:
    """Stands for a strategy with ``replicas`` replicas; builds in the default scope."""

    def __init__(self, replicas: int):
        self.num_replicas_in_sync = replicas

    def scope(self):
        return contextlib.nullcontext()


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """Replace train_fcn: record its arguments and the policy in force, report epochs of 0.5, 2 and 1 s."""
    recorded = []

    def fake_train_fcn(model, pool, **kwargs):
        recorded.append({**kwargs, "policy": keras.mixed_precision.global_policy().name, "model": model})
        timer = kwargs["callbacks"][0]
        timer.on_train_begin()
        timer.seconds += [0.5, 2.0, 1.0]

    monkeypatch.setattr(training, "train_fcn", fake_train_fcn)
    return recorded


@pytest.fixture
def validation(pools):
    data = m2nist.compose_images(pools["val"], 4, seed=0)
    return data.images, data.class_maps


def test_batch_and_learning_rate_scale_with_the_replicas(pools, validation, calls):
    row = training.time_configuration(
        None, pools["train"], validation, strategy=FakeStrategy(3), epochs=2, images_per_epoch=300
    )
    assert calls[0]["batch_size"] == 96 and row["global_batch"] == 96
    assert calls[0]["learning_rate"] == pytest.approx(3 * training.FCN_RECIPE["learning_rate"])
    assert row["learning_rate"] == pytest.approx(3 * training.FCN_RECIPE["learning_rate"])
    assert row["replicas"] == 3
    # The first epoch traces and compiles: the row keeps the fastest one after it, not the first (0.5 s).
    assert row["epoch_s"] == 1.0 and row["images_per_s"] == 300
    assert 0 <= row["val_mean_iou"] <= 1 or np.isnan(row["val_mean_iou"])


def test_an_explicit_learning_rate_is_not_scaled(pools, validation, calls):
    two = FakeStrategy(2)
    row = training.time_configuration(None, pools["train"], validation, strategy=two, learning_rate=0.01)
    assert calls[0]["learning_rate"] == 0.01 and row["learning_rate"] == 0.01


def test_mixed_precision_holds_while_training_and_float32_returns(pools, validation, calls):
    row = training.time_configuration(None, pools["train"], validation, precision="mixed_float16")
    assert calls[0]["policy"] == "mixed_float16" and row["precision"] == "mixed_float16"
    assert calls[0]["model"].get_layer("conv1").compute_dtype == "float16"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_every_configuration_is_seeded_through_seed_everything(pools, validation, calls, monkeypatch):
    seeds = []
    monkeypatch.setattr(config, "seed_everything", seeds.append)
    training.time_configuration(None, pools["train"], validation, seed=3)
    assert seeds == [3]


def test_a_failed_configuration_is_a_row_naming_the_cause(pools, validation, monkeypatch):
    def failing_train_fcn(model, pool, **kwargs):
        raise tf.errors.InvalidArgumentError(None, None, XLA_FAILURE)

    monkeypatch.setattr(training, "train_fcn", failing_train_fcn)
    row = training.time_configuration(None, pools["train"], validation, precision="mixed_float16")
    assert row["error"] == (
        "Trying to access resource conv1/kernel/replica_1/600 located in device /device:CPU:1 "
        "from device /device:CPU:0"
    )
    assert "epoch_s" not in row
    assert keras.mixed_precision.global_policy().name == "float32"
