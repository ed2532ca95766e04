"""Same seed, same machine, same weights: config.seed_everything (every notebook's setup, issue 10)."""

from __future__ import annotations

from m2nist_utils import artifacts, classifier, config, m2nist, segmenter, training
from m2nist_utils._tf import tf
from m2nist_utils.mnist import DigitPool

import numpy as np
import pytest
from tensorflow.python.framework import config as tf_config

pytestmark = pytest.mark.slow  # trains networks or starts processes: not in `make test-fast`


@pytest.fixture(scope="module")
def few_digits(pools) -> dict[str, DigitPool]:
    """320 training digits of every class (the pool is sorted by label) and 64 validation digits."""
    train, val = pools["train"], pools["val"]
    step = len(train.labels) // 320
    return {
        "train": DigitPool(train.images[::step][:320], train.labels[::step][:320]),
        "val": DigitPool(val.images[::8][:64], val.labels[::8][:64]),
    }


def trained_cnn_weights(pools: dict[str, DigitPool], seed: int) -> list[np.ndarray]:
    config.seed_everything(seed)
    cnn = classifier.build_cnn()
    classifier.train_cnn(cnn, pools, epochs=1, seed=seed, verbose=0)  # shuffled and shifted: random draws
    return cnn.get_weights()


def trained_fcn(pool: DigitPool, seed: int):
    config.seed_everything(seed)
    fcn = segmenter.build_fcn()
    training.train_fcn(
        fcn, pool, epochs=1, images_per_epoch=128, batch_size=32, distort=True, seed=seed, verbose=0
    )
    return fcn


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_seed_everything_turns_op_determinism_on_only_with_a_gpu(monkeypatch):
    calls = []
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: calls.append("on"))
    real = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: [] if kind == "GPU" else real(kind)
    )
    config.seed_everything(0)
    assert calls == []  # a CPU: the seed is enough, op determinism would cost ~3x
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: ["gpu:0"] if kind == "GPU" else []
    )
    config.seed_everything(0)
    assert calls == ["on"]


def test_cnn_trained_twice_with_one_seed_has_identical_weights(few_digits):
    first = trained_cnn_weights(few_digits, seed=0)
    assert same(first, trained_cnn_weights(few_digits, seed=0))  # bit for bit, not approximately
    assert not same(first, trained_cnn_weights(few_digits, seed=1))


def test_fcn_trained_twice_with_one_seed_has_identical_weights_and_scores(pools):
    test = m2nist.compose_images(pools["test"], 32, seed=0)
    runs = []
    for seed in (0, 0, 1):
        fcn = trained_fcn(pools["train"], seed)
        runs.append((fcn.get_weights(), segmenter.evaluate_fcn(fcn, test.images, test.class_maps)))
    (first, first_scores), (again, again_scores), (other, _) = runs
    assert same(first, again) and first_scores == again_scores
    assert not same(first, other)


@pytest.fixture
def fresh_process():
    """Op determinism off, as a notebook's or the CLI's process starts (seed_everything leaves it on)."""
    was = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    if was:
        tf_config.enable_op_determinism()


def test_the_cached_cnn_trains_the_same_weights_again(fresh_process, few_digits, tmp_path, monkeypatch):
    # load_or_create_cnn seeds itself: a deleted cnn.keras comes back bit for bit (one short epoch here).
    monkeypatch.setattr(config, "MODELS_DIR", tmp_path)
    monkeypatch.setattr(artifacts, "split_pools", lambda source, seed=0: few_digits)
    monkeypatch.setitem(classifier.CNN_RECIPE, "epochs", 1)
    first = artifacts.load_or_create_cnn(source="sample").get_weights()
    artifacts.cnn_path().unlink()
    assert same(first, artifacts.load_or_create_cnn(source="sample").get_weights())
