"""Training-time augmentation: the CNN's shifts (notebook 02) and the FCN's distortion (notebook 05)."""

from __future__ import annotations

import inspect

from m2nist_utils import classifier, pipeline, training
from m2nist_utils.mnist import DigitPool

import keras
import numpy as np
import pytest
from conftest import centre_of_mass


def margin_at_least(images: np.ndarray, margin: int) -> np.ndarray:
    """bool (N,): digits with no ink in their outer ``margin`` rows and columns."""
    inner = np.zeros(images.shape[1:], bool)
    inner[margin:-margin, margin:-margin] = True
    return ~(images.astype(bool) & ~inner).any(axis=(1, 2))


def find_shift(shifted: np.ndarray, original: np.ndarray, max_shift: int) -> tuple[int, int] | None:
    """The (dy, dx) that turns ``original`` (28, 28) into ``shifted`` (zero fill), or None if none does."""
    padded = np.pad(original, max_shift)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            window = padded[max_shift - dy : max_shift - dy + 28, max_shift - dx : max_shift - dx + 28]
            if np.array_equal(window, shifted):
                return dy, dx
    return None


@pytest.fixture(scope="module")
def roomy_digits(pools) -> DigitPool:
    """64 training digits of every class with 2 px of empty border: a 2 px shift cannot crop their ink."""
    pool = pools["train"]  # sorted by label: draw from all of it
    order = np.random.default_rng(0).permutation(len(pool.labels))
    keep = order[margin_at_least(pool.images[order], 2)][:64]
    return DigitPool(pool.images[keep], pool.labels[keep])


def test_cnn_shifts_move_each_digit_whole_and_keep_its_label(roomy_digits):
    images, labels = next(iter(classifier.digit_dataset(roomy_digits, batch_size=64, max_shift=2)))
    images = images.numpy()[..., 0]
    assert np.array_equal(labels.numpy(), roomy_digits.labels)
    originals = roomy_digits.images.astype(np.float32) / 255.0
    shifts = [find_shift(s, o, 2) for s, o in zip(images, originals)]
    # Every digit is its original, translated by at most 2 px: no ink lost, nothing else changed.
    assert None not in shifts
    assert np.allclose(images.sum(axis=(1, 2)), originals.sum(axis=(1, 2)))
    # ... and the shifts are random: most digits moved, in several directions.
    assert sum(s != (0, 0) for s in shifts) > 48 and len(set(shifts)) > 8


def test_cnn_digits_are_not_shifted_without_max_shift(roomy_digits):
    images, _ = next(iter(classifier.digit_dataset(roomy_digits, batch_size=64)))
    assert np.array_equal(images.numpy()[..., 0], roomy_digits.images.astype(np.float32) / 255.0)


@pytest.mark.slow
def test_train_cnn_shifts_the_training_digits_only(monkeypatch, roomy_digits):
    real = classifier.digit_dataset
    seen = []

    def spy(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)
        bound.apply_defaults()
        seen.append((len(bound.arguments["pool"].labels), bound.arguments["max_shift"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(classifier, "digit_dataset", spy)
    val = DigitPool(roomy_digits.images[:16], roomy_digits.labels[:16])
    classifier.train_cnn(classifier.build_cnn(), {"train": roomy_digits, "val": val}, epochs=1, verbose=0)
    assert seen == [(64, 2), (16, 0)]  # the default max_shift of 2 on train, none on validation


@pytest.fixture(scope="module")
def digits(pools) -> DigitPool:
    """300 training digits of every class, in no particular order."""
    keep = np.random.default_rng(1).permutation(len(pools["train"].labels))[:300]
    return DigitPool(pools["train"].images[keep], pools["train"].labels[keep])


def test_distortion_changes_every_digit_keeps_labels_and_ink(digits):
    warped = training.distort_digits(digits, seed=0)
    assert warped.images.shape == digits.images.shape and warped.images.dtype == np.uint8
    assert np.array_equal(warped.labels, digits.labels)
    assert (warped.images != digits.images).any(axis=(1, 2)).all()
    # At most 12 degrees, 10% and a shear of 0.2 about the centre: the digit stays where it was (measured:
    # its centre of mass moves about 0.3 px at most) and keeps its ink in the frame (the total ink changes
    # like the area: 0.81-1.21 measured, as a scale of 0.9-1.1 allows).
    assert np.abs(centre_of_mass(warped.images) - centre_of_mass(digits.images)).max() < 1
    ratio = warped.images.sum(axis=(1, 2)) / digits.images.sum(axis=(1, 2))
    assert 0.75 < ratio.min() and ratio.max() < 1.3


def test_distortion_is_seeded_and_strength_zero_is_the_identity(digits):
    first = training.distort_digits(digits, seed=1).images
    assert np.array_equal(first, training.distort_digits(digits, seed=1).images)
    assert not np.array_equal(first, training.distort_digits(digits, seed=2).images)
    assert np.array_equal(training.distort_digits(digits, seed=1, strength=0).images, digits.images)


def first_batch(pool: DigitPool, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    dataset = pipeline.training_dataset(pool, images_per_epoch=8, batch_size=8, seed=0, **kwargs)
    images, maps = next(iter(dataset))
    return images.numpy()[..., 0], maps.numpy()


@pytest.mark.slow
def test_training_dataset_distorts_its_digits_when_asked(digits):
    plain_images, _ = first_batch(digits)
    images, maps = first_batch(digits, distort=True)
    assert not np.array_equal(images, plain_images)
    # The class maps follow the distorted ink: background exactly where there is none, digits elsewhere.
    assert np.array_equal(maps == 10, images == 0)


@pytest.mark.slow
def test_train_fcn_passes_distort_to_its_data(monkeypatch, digits):
    real = pipeline.training_dataset
    seen = []

    def spy(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)
        bound.apply_defaults()
        seen.append(bound.arguments["distort"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "training_dataset", spy)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 84, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(11, 1, activation="softmax")(inputs))
    # The final recipe's own settings, shrunk to one batch of four images.
    recipe = {**training.FCN_RECIPE, "epochs": 1, "images_per_epoch": 4, "batch_size": 4}
    training.train_fcn(model, digits, verbose=0, **recipe)
    training.train_fcn(model, digits, verbose=0, **{**recipe, "distort": False})
    assert seen == [True, False]
