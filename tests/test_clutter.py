"""Cluttered M2NIST (issue 18): fragments of other digits on the background, labelled background."""

from __future__ import annotations

from m2nist_utils import artifacts, clutter, m2nist
from m2nist_utils.__main__ import main as cli

import numpy as np
import pytest
from conftest import sample_pools
from hypothesis import given, settings
from hypothesis import strategies as st

CLUTTER = m2nist.Clutter(6, 8)


def background_ink(data: m2nist.Split) -> np.ndarray:
    return (data.images > 0) & (data.class_maps == m2nist.BACKGROUND)


def distance_to_digits(class_map: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Chebyshev distance from each (y, x) of ``points`` to the nearest digit pixel of ``class_map``."""
    digits = np.argwhere(class_map != m2nist.BACKGROUND)
    return np.abs(points[:, None, :] - digits[None, :, :]).max(-1).min(1)


def test_clutter_changes_only_the_background(pools):
    clean = m2nist.compose_images(pools["val"], 40, seed=7)
    cluttered = m2nist.compose_images(pools["val"], 40, seed=7, clutter=CLUTTER)
    assert np.array_equal(cluttered.class_maps, clean.class_maps)
    assert np.array_equal(cluttered.sources, clean.sources)
    digit = clean.class_maps != m2nist.BACKGROUND
    assert np.array_equal(cluttered.images[digit], clean.images[digit])
    assert not background_ink(clean).any()
    # Nearly every image gets fragments (a crop can miss the ink it was centred on only at a frame's edge).
    assert background_ink(cluttered).any(axis=(1, 2)).mean() > 0.9
    assert all(m2nist.check_invariants(cluttered, pools["val"], clutter=True).values())


@settings(max_examples=15, deadline=None)
@given(
    fragments=st.integers(0, 12),
    size=st.integers(1, 14),
    gap=st.integers(0, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_fragments_keep_the_gap_from_every_digit(fragments, size, gap, seed):
    pool = sample_pools()["test"]
    data = m2nist.compose_images(pool, 6, seed=seed, gap=gap, clutter=m2nist.Clutter(fragments, size))
    assert all(m2nist.check_invariants(data, pool, clutter=True).values())
    for class_map, ink in zip(data.class_maps, background_ink(data)):
        if ink.any():
            # gap background pixels (one at least) between a fragment and a digit: a Chebyshev distance of
            # gap + 1 or more.
            assert distance_to_digits(class_map, np.argwhere(ink)).min() >= max(gap, 1) + 1
    if fragments == 0:
        assert not background_ink(data).any()


def crops(pool: m2nist.DigitPool, size: int) -> set[bytes]:
    """Every size x size window of every digit of ``pool``, as bytes."""
    windows = np.lib.stride_tricks.sliding_window_view(pool.images, (size, size), axis=(1, 2))
    return {w.tobytes() for w in windows.reshape(-1, size, size)}


def one_fragment_sources(data: m2nist.Split, own: set[bytes], other: set[bytes]) -> tuple[int, int, int]:
    """Of images holding one 8x8 fragment: how many are windows of ``own``'s digits, of ``other``'s, and
    how many images hold background ink at all."""
    in_own = in_other = 0
    for image, ink in zip(data.images, background_ink(data)):
        ys, xs = np.nonzero(ink)
        if len(ys) == 0:
            continue
        # The fragment's 8x8 square holds all the background ink: try every origin that can hold it.
        origins = [
            (y, x)
            for y in range(max(ys.max() - 7, 0), min(ys.min(), 64 - 8) + 1)
            for x in range(max(xs.max() - 7, 0), min(xs.min(), 84 - 8) + 1)
        ]
        windows = [image[y : y + 8, x : x + 8].tobytes() for y, x in origins]
        in_own += any(w in own for w in windows)
        in_other += any(w in other for w in windows)
    return in_own, in_other, int(background_ink(data).any(axis=(1, 2)).sum())


def test_fragments_are_crops_of_the_images_own_pool_only(pools):
    """A test image's clutter is cut from test digits: every fragment is a window of a test-pool digit."""
    data = m2nist.compose_images(pools["test"], 30, seed=1, clutter=m2nist.Clutter(1, 8))
    in_own, in_other, with_ink = one_fragment_sources(data, crops(pools["test"], 8), crops(pools["train"], 8))
    assert in_own == with_ink > 20
    assert in_other < in_own / 2  # the check can tell the pools apart


def test_no_clutter_and_zero_fragments_give_the_clean_images(pools):
    clean = m2nist.compose_images(pools["train"], 20, seed=3)
    none = m2nist.compose_images(pools["train"], 20, seed=3, clutter=m2nist.Clutter(0, 8))
    assert np.array_equal(none.images, clean.images)


def test_clutter_repeats_with_the_seed_and_changes_with_it(pools):
    first, again, other = (
        m2nist.compose_images(pools["train"], 10, seed=s, clutter=CLUTTER) for s in (4, 4, 5)
    )
    assert np.array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)


@pytest.mark.parametrize("clutter", [m2nist.Clutter(-1, 8), m2nist.Clutter(6, 0), m2nist.Clutter(6, 29)])
def test_bad_clutter_is_refused_by_name(pools, clutter):
    with pytest.raises(ValueError, match=r"clutter needs fragments >= 0 and a size of 1 to 28"):
        m2nist.compose_images(pools["train"], 2, clutter=clutter)


def test_cluttered_invariants_catch_touching_clutter_and_missing_ink(pools):
    pool = pools["train"]
    data = m2nist.compose_images(pool, 10, seed=2, clutter=CLUTTER)
    assert not m2nist.check_invariants(data, pool)["background_is_complement"]  # clutter is not clean data
    touching = data.images.copy()
    y, x = np.argwhere(data.class_maps[0] != m2nist.BACKGROUND)[0]
    beside = next(
        (y + dy, x + dx)
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if data.class_maps[0, y + dy, x + dx] == m2nist.BACKGROUND
    )
    for grey in (255, 1):  # the faintest ink counts as ink
        touching[0][beside] = grey
        checks = m2nist.check_invariants(
            m2nist.Split(touching, data.class_maps, data.sources), pool, clutter=True
        )
        assert not checks["clutter_apart_from_digits"] and checks["digits_are_ink"]
    unlit = data.images.copy()
    unlit[0][y, x] = 0
    checks = m2nist.check_invariants(m2nist.Split(unlit, data.class_maps, data.sources), pool, clutter=True)
    assert not checks["digits_are_ink"] and not checks["no_overlap"] and checks["clutter_apart_from_digits"]


def test_a_full_image_leaves_no_room_and_gets_no_fragment():
    digit = np.full((1, 28, 28), 200, np.uint8)
    pool = m2nist.DigitPool(digit, np.zeros(1, np.uint8))
    images = np.zeros((2, 64, 84), np.uint8)
    digits = np.zeros((2, 64, 84), bool)
    digits[0] = True  # every pixel of the first image a digit's; the second one empty
    clutter.scatter_fragments(images, digits, pool, CLUTTER, np.random.default_rng(0))
    assert not images[0].any() and images[1].any()  # the full image is skipped, not the rest


def test_a_fragment_as_large_as_a_digit_is_allowed():
    pool = m2nist.DigitPool(np.full((1, 28, 28), 9, np.uint8), np.zeros(1, np.uint8))
    images = np.zeros((1, 64, 84), np.uint8)
    clutter.scatter_fragments(
        images, np.zeros_like(images, bool), pool, m2nist.Clutter(1, 28), np.random.default_rng(0)
    )
    assert (images == 9).sum() == 28 * 28


@pytest.mark.parametrize("size", [8, 5])
@pytest.mark.parametrize("y, x", [(10, 10), (0, 0), (27, 27), (3, 25)])
def test_a_fragment_is_centred_on_an_ink_pixel_where_the_frame_allows(size, y, x):
    digit = np.zeros((28, 28), np.uint8)
    digit[y, x] = 1  # the faintest ink is ink
    crop = clutter._fragment(digit, size, np.random.default_rng(0))
    top, left = (int(np.clip(v - size // 2, 0, 28 - size)) for v in (y, x))
    assert crop.shape == (size, size) and crop[y - top, x - left] == 1
    if size // 2 <= min(y, x) and max(y, x) < 28 - size + size // 2:
        assert crop[size // 2, size // 2] == 1  # in the middle when the frame allows


def test_a_digit_without_ink_gives_a_blank_fragment():
    crop = clutter._fragment(np.zeros((28, 28), np.uint8), 8, np.random.default_rng(0))
    assert crop.shape == (8, 8) and not crop.any()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 3), st.integers(1, 9))
def test_grow_and_box_any_match_their_definitions(seed, radius, size):
    mask = np.random.default_rng(seed).random((2, 12, 15)) < 0.05
    grown = clutter.grow(mask, radius)
    padded = np.pad(mask, ((0, 0), (radius, radius), (radius, radius)))
    expected = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            expected |= padded[:, dy : dy + 12, dx : dx + 15]
    assert np.array_equal(grown, expected)
    boxes = clutter._box_any(mask[0], size)
    brute = [
        [mask[0, y : y + size, x : x + size].any() for x in range(15 - size + 1)]
        for y in range(12 - size + 1)
    ]
    assert np.array_equal(boxes, np.array(brute, bool).reshape(boxes.shape))


def test_fragments_may_come_two_pixels_from_a_digit_by_default(pools):
    """The default gap is one background pixel between a fragment's square and any digit."""
    data = m2nist.compose_images(pools["val"], 60, seed=4)
    images = data.images.copy()
    digits = data.class_maps != m2nist.BACKGROUND
    clutter.scatter_fragments(images, digits, pools["val"], CLUTTER, np.random.default_rng(4))
    nearest = min(
        distance_to_digits(class_map, np.argwhere((image > 0) & ~digit)).min()
        for image, class_map, digit in zip(images, data.class_maps, digits)
        if (image[~digit] > 0).any() and digit.any()
    )
    assert nearest == 2


def test_cluttered_split_is_cached_beside_the_clean_one(tmp_path):
    clean = artifacts.load_or_create_split("val", 12, source="sample", folder=tmp_path)
    cluttered = artifacts.load_or_create_split("val", 12, source="sample", folder=tmp_path, clutter=CLUTTER)
    assert artifacts.dataset_path("val_clutter6x8", tmp_path).is_file()
    harder = artifacts.load_or_create_split(
        "val", 12, source="sample", folder=tmp_path, clutter=m2nist.Clutter(9, 5)
    )
    assert artifacts.dataset_path("val_clutter9x5", tmp_path).is_file() and not np.array_equal(
        harder.images, cluttered.images
    )
    assert np.array_equal(cluttered.class_maps, clean.class_maps) and background_ink(cluttered).any()
    again = artifacts.load_or_create_split("val", 12, source="sample", folder=tmp_path)
    assert np.array_equal(again.images, clean.images)


def test_cli_generates_cluttered_files(tmp_path, capsys):
    out = tmp_path / "cluttered"
    argv = ["generate", "--out", str(out), "--n-images", "8", "--source", "sample", "--split", "test"]
    assert cli([*argv, "--clutter", "4", "--clutter-size", "6"]) == 0
    assert "4 fragments of 6x6 each" in capsys.readouterr().out
    images, masks = m2nist.load_m2nist(out)
    class_maps = m2nist.to_class_map(masks)
    assert ((images > 0) & (class_maps == m2nist.BACKGROUND)).any()
    assert cli([*argv, "--clutter", "-1"]) == 2
    assert "argument --clutter" in capsys.readouterr().err


def test_the_training_stream_draws_cluttered_images_every_epoch(pools):
    from m2nist_utils import stream, training

    data = training.training_data(pools["train"], 8, 4, seed=0, stream="numpy", clutter=CLUTTER)
    assert isinstance(data, stream.TrainingStream)
    images, class_maps = data[0]
    assert ((images[..., 0] > 0) & (class_maps == m2nist.BACKGROUND)).any()
    first = data.images.copy()
    data.on_epoch_end()
    assert not np.array_equal(data.images, first)
    assert ((data.images > 0) & (data.class_maps == m2nist.BACKGROUND)).any()


def first_batches(dataset, n=2):
    return [tuple(np.asarray(t) for t in batch) for batch in dataset.take(n)]


def test_the_tf_data_pipeline_scatters_fragments_on_the_clean_scenes_only(pools):
    from m2nist_utils import pipeline, training

    args = (pools["train"], 16, 8)
    clean = first_batches(pipeline.training_dataset(*args, seed=3, distort=True))
    data = training.training_data(*args, seed=3, distort=True, stream="tf.data", clutter=CLUTTER)
    cluttered = first_batches(data)
    for (clean_x, clean_y), (x, y) in zip(clean, cluttered):
        assert np.array_equal(y, clean_y)  # the same scenes and masks
        digit = y != m2nist.BACKGROUND
        assert np.array_equal(x[..., 0][digit], clean_x[..., 0][digit])
        added = x[..., 0] != clean_x[..., 0]
        assert added.any(axis=(1, 2)).mean() > 0.9 and not (added & clutter.grow(digit, 1)).any()
        assert np.array_equal(np.rint(x * 255) / 255, x)  # still whole grey levels
    # The same seed gives the same fragments (their generator is seeded from the chunk's key).
    again = first_batches(
        training.training_data(*args, seed=3, distort=True, stream="tf.data", clutter=CLUTTER)
    )
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(again, cluttered))


def test_tf_data_fragments_keep_the_gap_asked_for_and_the_image_shape(pools):
    from m2nist_utils import pipeline

    gap = 4
    dataset = pipeline.training_dataset(pools["train"], 32, 32, seed=2, gap=gap, clutter=CLUTTER)
    # Keras builds the model from the element spec: the NumPy scatter must not hide the images' shape.
    assert dataset.element_spec[0].shape.as_list() == [None, 64, 84, 1]
    ((x, y),) = first_batches(dataset, 1)
    fragments = (x[..., 0] > 0) & (y == m2nist.BACKGROUND)
    assert fragments.any(axis=(1, 2)).mean() > 0.5
    assert not (fragments & clutter.grow(y != m2nist.BACKGROUND, gap)).any()


def test_tf_data_fragments_come_from_the_pool_given(pools):
    from m2nist_utils import pipeline

    dataset = pipeline.training_dataset(pools["val"], 32, 32, seed=1, clutter=m2nist.Clutter(1, 8))
    ((x, y),) = first_batches(dataset, 1)
    data = m2nist.Split(np.rint(x[..., 0] * 255).astype(np.uint8), y, None)
    in_own, in_other, with_ink = one_fragment_sources(data, crops(pools["val"], 8), crops(pools["train"], 8))
    assert in_own == with_ink > 20
    assert in_other < in_own / 2


def test_the_clutter_benchmark_changes_one_thing_at_a_time():
    from conftest import load_benchmark

    bench = load_benchmark("clutter")
    final, stable = bench.recipe_of("final, clean"), bench.recipe_of("coarse where, stable, clutter")
    assert final["clutter"] is None and stable["clutter"] == bench.CLUTTER
    # The stable recipe is the final one with a warm-up and clipping: the same peak rate.
    assert {k: v for k, v in stable.items() if final.get(k) != v} == {
        "warmup_epochs": 1.0,
        "clipnorm": 1.0,
        "clutter": bench.CLUTTER,
    }
    for factor, name in [(0.5, "stable x0.5, clutter"), (2, "stable x2, clutter")]:
        assert bench.recipe_of(name) == {**stable, "learning_rate": stable["learning_rate"] * factor}
    assert bench.recipe_of("stable x2, clean") == {**bench.recipe_of("stable x2, clutter"), "clutter": None}


@pytest.mark.slow
def test_quick_clutter_model_learns_that_fragments_are_not_digits():
    """A floor for notebook 09's model at the quick budget (3 epochs): it leaves nearly every fragment alone.

    Trained in this session's M2NIST_HOME, where nbval's run of notebook 09 finds it cached.
    """
    from m2nist_utils import segmenter

    model = artifacts.load_or_create_fcn(variant="clutter")
    val = artifacts.load_or_create_split("val", clutter=m2nist.CLUTTERED)
    predicted = segmenter.predict_class_maps(model, val.images)
    fragments = background_ink(val)
    assert (predicted[fragments] != m2nist.BACKGROUND).mean() < 0.2  # the final FCN: over 0.9
    scores = segmenter.evaluate_fcn(model, val.images, val.class_maps)
    assert scores["background_iou"] > 0.97 and scores["mean_iou"] > 0.2
