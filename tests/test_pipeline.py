"""The tf.data training pipeline: its contract, determinism, and scenes drawn by compose_images' rules."""

from __future__ import annotations

from m2nist_utils import m2nist, mnist, pipeline, training
from m2nist_utils._tf import tf

import numpy as np
import pytest
from conftest import centre_of_mass, sample_pools


@pytest.fixture(scope="module")
def pool():
    return sample_pools()["train"]


# Each dataset costs a tracing of its graph (~0.5 s), so most tests share these two streams of scenes: the
# same plans (seed), with the digits as they are and distorted.
@pytest.fixture(scope="module")
def plain(pool):
    return scenes(pool, n=300, max_digits=4, seed=2, distort=False)


@pytest.fixture(scope="module")
def warped(pool):
    return scenes(pool, n=300, max_digits=4, seed=2, distort=True)


def batches(dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    """One pass over a dataset of (images, class maps)."""
    return [(images.numpy(), class_maps.numpy()) for images, class_maps in dataset]


def scenes(pool, n=96, **kwargs) -> dict[str, np.ndarray]:
    """One pass of training_scenes, concatenated over its batches."""
    parts = list(pipeline.training_scenes(pool, n, batch_size=32, **kwargs))
    return {key: np.concatenate([part[key].numpy() for part in parts]) for key in parts[0]}


def render(s, pool, i) -> tuple[np.ndarray, np.ndarray]:
    """Image i of a plan drawn again with numpy: each digit's ink box pasted at its corner."""
    image = np.zeros((m2nist.HEIGHT, m2nist.WIDTH))
    class_map = np.full(image.shape, m2nist.BACKGROUND)
    for k in np.flatnonzero(s["sources"][i] >= 0):
        (t, left, h, w), (y, x) = s["boxes"][i, k], s["corners"][i, k]
        ink = s["digits"][i, k, t : t + h, left : left + w]
        image[y : y + h, x : x + w] += ink
        class_map[y : y + h, x : x + w][ink > 0] = pool.labels[s["sources"][i, k]]
    return image, class_map


def test_contract_shapes_dtypes_and_steps(pool):
    # 600 = 18 x 32 + 24 images, drawn in chunks of 256, 256 and 88.
    dataset = pipeline.training_dataset(pool, 600, batch_size=32, distort=True)
    assert dataset.cardinality().numpy() == 19
    got = batches(dataset)
    assert [len(images) for images, _ in got] == [32] * 18 + [24]
    assert {images.shape[1:] for images, _ in got} == {(64, 84, 1)}
    assert {maps.shape[1:] for _, maps in got} == {(64, 84)} and [len(m) for _, m in got] == [32] * 18 + [24]
    images, class_maps = got[0]
    assert images.dtype == np.float32 and class_maps.dtype == np.int32
    assert images.min() == 0 and images.max() == 1
    # Grey levels are whole numbers scaled as the network reads them everywhere else (m2nist.to_input).
    np.testing.assert_array_equal(images, m2nist.to_input(np.round(images[..., 0] * 255).astype(np.uint8)))
    assert set(np.unique(class_maps)) <= set(range(11)) and len(np.unique(class_maps)) > 5


def test_same_seed_same_batches_other_seed_others(pool):
    first = batches(pipeline.training_dataset(pool, 600, seed=3, distort=True))
    # The same again on a single thread: the batches must not depend on who draws them.
    serial = tf.data.Options()
    serial.threading.private_threadpool_size = 1
    serial.threading.max_intra_op_parallelism = 1
    again = batches(pipeline.training_dataset(pool, 600, seed=3, distort=True).with_options(serial))
    other = batches(pipeline.training_dataset(pool, 600, seed=4, distort=True))
    for (a, am), (b, bm), (c, _) in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(am, bm)
        assert not np.array_equal(a, c)


def test_fresh_scenes_every_pass_fixed_ones_repeat(pool):
    fresh = pipeline.training_dataset(pool, 64, fresh=True, distort=True)
    fixed = pipeline.training_dataset(pool, 64, fresh=False, distort=True)
    fresh_passes = [batches(fresh) for _ in range(2)]
    fixed_passes = [batches(fixed) for _ in range(2)]
    for (a, am), (b, bm) in zip(*fresh_passes):
        assert not np.array_equal(a, b) and not np.array_equal(am, bm)
    for (a, am), (b, bm) in zip(*fixed_passes):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(am, bm)
    # The first pass of a fresh stream is the fixed one: the epoch number is all that differs.
    np.testing.assert_array_equal(fresh_passes[0][0][0], fixed_passes[0][0][0])


def test_class_maps_label_the_ink_and_nothing_else(pool, warped):
    s = warped
    ink = s["images"][..., 0] > 0
    assert ((s["class_maps"] != m2nist.BACKGROUND) == ink).all()
    for i in range(len(s["images"])):
        image, class_map = render(s, pool, i)
        np.testing.assert_array_equal(s["class_maps"][i], class_map)
        np.testing.assert_array_equal(np.round(s["images"][i, ..., 0] * 255), image)


def test_digits_are_pool_digits_distinct_with_their_ink_boxes(pool, plain):
    s = plain
    for i, sources in enumerate(s["sources"]):
        used = sources[sources >= 0]
        assert len(set(used)) == len(used)
        for k, source in enumerate(sources):
            if source >= 0:
                np.testing.assert_array_equal(s["digits"][i, k], pool.images[source])
                np.testing.assert_array_equal(
                    s["boxes"][i, k], m2nist.ink_boxes(pool.images[source : source + 1])[0]
                )
            else:
                assert source == -1 and not s["digits"][i, k].any()  # -1 marks an empty slot
    # Each digit's ink, cut out of the finished image at its corner, is the pool digit's ink.
    for i in range(len(s["images"])):
        for k in np.flatnonzero(s["sources"][i] >= 0):
            (t, left, h, w), (y, x) = s["boxes"][i, k], s["corners"][i, k]
            cut = np.round(s["images"][i, y : y + h, x : x + w, 0] * 255)
            np.testing.assert_array_equal(cut, pool.images[s["sources"][i, k], t : t + h, left : left + w])


def test_digits_distinct_and_drawn_uniformly_from_a_small_pool(pool):
    # Six pool digits for four slots: any repeat or any favoured index shows at once.
    small = mnist.DigitPool(pool.images[:6], pool.labels[:6])
    s = scenes(small, n=600, max_digits=4, seed=1)
    for sources in s["sources"]:
        used = sources[sources >= 0]
        assert len(set(used)) == len(used)
    shares = np.bincount(s["sources"][s["sources"] >= 0], minlength=6) / (s["sources"] >= 0).sum()
    np.testing.assert_allclose(shares, 1 / 6, atol=0.03)


@pytest.mark.parametrize("max_digits", [1, 4])
def test_one_to_max_digits_per_image(pool, warped, max_digits):
    s = warped if max_digits == 4 else scenes(pool, n=64, max_digits=max_digits)
    counts = (s["sources"] >= 0).sum(axis=1)
    assert s["sources"].shape[1] == max_digits
    # Filled slots come first, and every count from 1 to max_digits turns up about equally often.
    assert ((s["sources"] >= 0) == (np.arange(max_digits) < counts[:, None])).all()
    shares = np.bincount(counts, minlength=max_digits + 1)[1:] / len(counts)
    np.testing.assert_allclose(shares, 1 / max_digits, atol=0.08)


@pytest.mark.parametrize("gap", [0, 1, 4])
def test_ink_boxes_gap_apart_and_inside_the_frame(pool, warped, gap):
    s = warped if gap == 1 else scenes(pool, n=200, max_digits=4, gap=gap, distort=True)
    closest, only_by = [], [[], [], [], []]
    for i in range(len(s["images"])):
        placed = [(*s["corners"][i, k], *s["boxes"][i, k, 2:]) for k in np.flatnonzero(s["sources"][i] >= 0)]
        for y, x, h, w in placed:
            assert 0 <= y and y + h <= m2nist.HEIGHT and 0 <= x and x + w <= m2nist.WIDTH
        for a, (y, x, h, w) in enumerate(placed):
            for py, px, ph, pw in placed[:a]:
                # Background pixels between the boxes: this one above, below, left of, right of the other.
                apart = (py - (y + h), y - (py + ph), px - (x + w), x - (px + pw))
                closest.append(max(apart))
                for side, pixels in enumerate(apart):
                    if all(between < gap for other, between in enumerate(apart) if other != side):
                        only_by[side].append(pixels)
    assert min(closest) == gap  # never closer, and the rule is not stricter than asked
    # Nor stricter on any one side: boxes apart only above, only below, only left or only right come as
    # close as the gap.
    assert [min(by) for by in only_by] == [gap] * 4


def test_boxes_reach_every_edge_of_the_frame(warped):
    used = warped["sources"] >= 0
    y, x = warped["corners"][used].T
    h, w = warped["boxes"][used][:, 2:].T
    assert (y == 0).any() and (x == 0).any()
    assert (y + h == m2nist.HEIGHT).any() and (x + w == m2nist.WIDTH).any()


def test_distortion_changes_every_digit_keeps_labels_and_ink_boxes(pool, plain, warped):
    for i, sources in enumerate(warped["sources"]):
        for k in np.flatnonzero(sources >= 0):
            digit = warped["digits"][i, k]
            assert not np.array_equal(digit, pool.images[sources[k]])
            np.testing.assert_array_equal(
                warped["boxes"][i, k], m2nist.ink_boxes(digit[None].astype(np.uint8))[0]
            )
            labels = set(np.unique(warped["class_maps"][i])) - {m2nist.BACKGROUND}
            assert labels == set(pool.labels[sources[sources >= 0]])
    # The plan is the same with and without distortion, the pixels not.
    np.testing.assert_array_equal(plain["sources"], warped["sources"])
    assert not np.array_equal(plain["images"], warped["images"])


def test_a_blank_digit_distorted_gets_the_box_m2nist_gives_it(pool):
    # Distorted digits are boxed by the pipeline itself; a blank one, beside digits with ink, gets the 1x1 box
    # at the centre that m2nist.ink_boxes gives it.
    blank = np.zeros((3, 28, 28), np.uint8)
    mixed = mnist.DigitPool(np.concatenate([pool.images[:3], blank]), pool.labels[:6])
    s = scenes(mixed, n=32, max_digits=3, distort=True)
    used = s["sources"] >= 0
    is_blank = used & (s["sources"] >= 3)
    assert is_blank.any() and (used & ~is_blank).any()
    np.testing.assert_array_equal(
        s["boxes"][is_blank], np.repeat(m2nist.ink_boxes(blank[:1]), is_blank.sum(), 0)
    )


def test_distortion_as_strong_as_distort_digits(pool, warped):
    # Weaker rotations, scales or shears change fewer pixels: compare with distort_digits on the same digits.
    s = warped
    used = s["sources"] >= 0
    originals = pool.images[s["sources"][used]]
    change = np.abs(s["digits"][used] - originals).mean()
    expected = training.distort_digits(mnist.DigitPool(originals, pool.labels[s["sources"][used]]), 2).images
    reference = np.abs(expected.astype(float) - originals).mean()
    assert 0.9 < change / reference < 1.1


def ink_moments(digits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per digit (N, 28, 28): its ink's principal axis (degrees), elongation (0 round .. 1 a line) and spread
    (root mean square distance from its centre of mass)."""
    d = digits.astype(float)
    ys, xs = np.mgrid[:28, :28]
    mass = d.sum((1, 2))
    centre = centre_of_mass(digits)
    dy, dx = ys - centre[:, 0, None, None], xs - centre[:, 1, None, None]
    a, b, c = ((d * v).sum((1, 2)) for v in (dx * dx, dy * dy, dx * dy))
    axis = 0.5 * np.degrees(np.arctan2(2 * c, a - b))
    return axis, np.sqrt((a - b) ** 2 + 4 * c**2) / (a + b), np.sqrt((a + b) / mass)


def test_distortion_turns_both_ways_alike_and_apart_from_the_scale(pool, warped):
    # The rotation, read from each elongated digit's principal axis: about as often one way as the other
    # (a one-sided range moves the mean 5 degrees or more), and not tied to how much the digit grew (a
    # rotation and scale drawn from one random number correlate below -0.4; apart, above 0).
    used = warped["sources"] >= 0
    axis, elongation, spread = ink_moments(pool.images[warped["sources"][used]])
    warped_axis, _, warped_spread = ink_moments(warped["digits"][used])
    clear = elongation > 0.3
    turn = ((warped_axis - axis + 90) % 180 - 90)[clear]
    assert clear.sum() > 300 and abs(turn.mean()) < 2.5
    assert np.corrcoef(turn, (warped_spread / spread)[clear])[0, 1] > -0.2


def test_placement_that_cannot_succeed_fails_loudly(pool, monkeypatch):
    monkeypatch.setattr(pipeline, "RESTARTS", 10)  # read when the graph is traced; 1,000 would take seconds
    dataset = pipeline.training_dataset(pool, 4, batch_size=4, max_digits=6, gap=70)
    with pytest.raises(tf.errors.InvalidArgumentError, match="could not place"):
        batches(dataset)


def test_streams_without_composing_the_epoch_first(pool):
    # A billion images per epoch: composing the epoch before its first batch would never finish.
    dataset = pipeline.training_dataset(pool, 10**9, batch_size=8, distort=True)
    assert dataset.cardinality().numpy() == 10**9 // 8
    images, class_maps = next(iter(dataset))
    assert images.shape == (8, 64, 84, 1) and (class_maps.numpy() != m2nist.BACKGROUND).any()


def test_bad_arguments_are_named(pool):
    with pytest.raises(ValueError, match="max_digits"):
        pipeline.training_dataset(pool, 10, max_digits=7)
    with pytest.raises(ValueError, match=r"\(M, 28, 28\)"):
        pipeline.training_dataset(mnist.DigitPool(pool.images[:, :20], pool.labels), 10)
    with pytest.raises(ValueError, match=r"got \(10, 28, 28\) and \(9,\)"):
        pipeline.training_dataset(mnist.DigitPool(pool.images[:10], pool.labels[:9]), 10)
    with pytest.raises(ValueError, match="2 digits cannot fill 3 distinct slots"):
        pipeline.training_dataset(mnist.DigitPool(pool.images[:2], pool.labels[:2]), 10, max_digits=3)
    for bad in ({"images_per_epoch": 0}, {"batch_size": 0}, {"gap": -1}):
        with pytest.raises(ValueError, match="^need images_per_epoch >= 1, batch_size >= 1, gap >= 0, got"):
            pipeline.training_dataset(pool, **{"images_per_epoch": 10, **bad})


def test_the_smallest_arguments_allowed_draw_a_scene(pool):
    # One image, in batches of one, from a pool with exactly as many digits as slots, no gap.
    small = mnist.DigitPool(pool.images[:3], pool.labels[:3])
    ((images, class_maps),) = batches(pipeline.training_dataset(small, 1, batch_size=1, max_digits=3, gap=0))
    assert images.shape == (1, 64, 84, 1) and (class_maps != m2nist.BACKGROUND).any()


def test_measure_throughput_counts_the_images_of_batches_after_the_warm_up(pool, monkeypatch):
    # A clock that reads 100 s, then 102 s: the rate is the number of images counted over 2 seconds.
    ticks = iter(range(100, 10**6, 2))
    monkeypatch.setattr(pipeline.time, "perf_counter", lambda: float(next(ticks)))
    # Batches of 4, 4 and 2 images, repeated: after the warm-up batch (4), 7 batches hold 4+2+4+4+2+4+4 = 24.
    assert pipeline.measure_throughput(pipeline.training_dataset(pool, 10, batch_size=4), 7) == 12.0


@pytest.mark.parametrize(
    "settings",
    [{}, {"batch_size": 16, "fresh": False, "seed": 3, "distort": True, "gap": 3, "max_digits": 2}],
)
def test_training_scenes_are_the_training_batches_with_their_plan(pool, settings):
    """Same arguments and defaults, same batches, over two passes (the second fresh or not)."""
    scenes = pipeline.training_scenes(pool, 48, **settings)
    dataset = pipeline.training_dataset(pool, 48, **settings)
    for _ in range(2):
        for scene, (images, class_maps) in zip(scenes, dataset, strict=True):
            np.testing.assert_array_equal(scene["images"].numpy(), images.numpy())
            np.testing.assert_array_equal(scene["class_maps"].numpy(), class_maps.numpy())
