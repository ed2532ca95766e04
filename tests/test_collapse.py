"""A collapsed training run (one class everywhere) is detected and refused, not committed (issue 18 §3)."""

from __future__ import annotations

from m2nist_utils import m2nist, stability, training
from m2nist_utils.__main__ import main as cli
from m2nist_utils._keras import keras

import numpy as np
import pytest


def constant_model(logits: np.ndarray) -> keras.Model:
    """A 1x1 convolution that ignores its input and gives every pixel ``logits`` (11,)."""
    inputs = keras.Input((64, 84, 1))
    layer = keras.layers.Conv2D(11, 1, activation="softmax")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.zeros((1, 1, 1, 11), np.float32), np.asarray(logits, np.float32)])
    return model


def ink_model() -> keras.Model:
    """Background where there is no ink, digit 1 where there is: a network that has not collapsed."""
    logits = np.zeros(11, np.float32)
    logits[10] = 0.5
    model = constant_model(logits)
    kernel = np.zeros((1, 1, 1, 11), np.float32)
    kernel[..., 1] = 1000.0  # the faintest ink, 1/255, outweighs the background's 0.5
    model.layers[-1].set_weights([kernel, logits])
    return model


@pytest.fixture(scope="module")
def images(pools):
    return m2nist.compose_images(pools["val"], 40, seed=1).images


def test_background_everywhere_is_refused_by_name(images):
    logits = np.zeros(11)
    logits[10] = 1.0
    with pytest.raises(
        stability.TrainingCollapsed, match=r"class 10 \(background\) on 100\.0% of the pixels"
    ):
        stability.check_not_collapsed(constant_model(logits), images)


def test_a_network_of_nan_weights_answers_class_0_and_is_refused(images):
    with pytest.raises(stability.TrainingCollapsed, match=r"class 0 \(digit 0\) on 100\.0%.*40 images"):
        stability.check_not_collapsed(constant_model(np.full(11, np.nan)), images)


def test_a_working_network_passes_with_its_shares(images):
    shares = stability.check_not_collapsed(ink_model(), images)
    ink = (images > 0).mean()
    assert shares.sum() == pytest.approx(1.0)
    assert shares[1] == pytest.approx(ink, abs=1e-6) and shares[10] == pytest.approx(1 - ink, abs=1e-6)
    assert 0.9 < shares[10] < 0.97  # M2NIST's truth is about 94% background, below the 99% of a collapse
    with pytest.raises(stability.TrainingCollapsed):  # the limit is the share at which it refuses
        stability.check_not_collapsed(ink_model(), images, max_share=shares[10])


def test_shares_pool_every_batch(images):
    whole = stability.predicted_shares(ink_model(), images)
    assert np.allclose(stability.predicted_shares(ink_model(), images, batch_size=7), whole)


@pytest.mark.slow
def test_the_train_command_refuses_a_collapsed_network_and_writes_nothing(tmp_path, capsys, monkeypatch):
    def collapse(model, *args, **kwargs):
        model.set_weights([np.zeros_like(w) for w in model.get_weights()])  # the same answer everywhere

    monkeypatch.setattr(training, "train_fcn", collapse)
    out = tmp_path / "out"
    status = cli(
        ["train", "--out", str(out), "--epochs", "1", "--images-per-epoch", "32", "--source", "sample"]
    )
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: training collapsed: the network answers class "), err
    assert not (out / "fcn.keras").exists() and not (out / "fcn_frozen.pb").exists()
