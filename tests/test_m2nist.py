"""The M2NIST generator, its files and its cache (m2nist_utils.m2nist, notebook 01)."""

from __future__ import annotations

import os

from m2nist_utils import article_generator, artifacts, files, m2nist, mnist
from m2nist_utils.__main__ import main as cli

import numpy as np
import pytest
from conftest import sample_pools
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=25, deadline=None)
@given(
    n_images=st.integers(1, 40),
    max_digits=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
    split=st.sampled_from(mnist.SPLITS),
)
def test_generator_invariants(n_images, max_digits, seed, split):
    pool = sample_pools()[split]
    data = m2nist.compose_images(pool, n_images, max_digits=max_digits, seed=seed)
    assert data.images.shape == (n_images, 64, 84) and data.images.dtype == np.uint8
    assert data.class_maps.shape == (n_images, 64, 84) and data.class_maps.dtype == np.uint8
    counts = (data.sources >= 0).sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= max_digits
    assert all(m2nist.check_invariants(data, pool).values())
    masks = m2nist.to_one_hot(data.class_maps)
    assert masks.shape == (n_images, 64, 84, 11) and set(np.unique(masks)) <= {0, 1}
    assert (masks.sum(-1) == 1).all()
    # Every placed digit's ink appears unchanged somewhere: no stroke was clipped or overwritten.
    assert (data.images > 0).sum() == sum((pool.images[k] > 0).sum() for k in data.sources[data.sources >= 0])
    again = m2nist.compose_images(pool, n_images, max_digits=max_digits, seed=seed)
    assert np.array_equal(again.images, data.images) and np.array_equal(again.class_maps, data.class_maps)


def test_check_invariants_catches_an_overlap(pools):
    data = m2nist.compose_images(pools["train"], 50, seed=0)
    broken = data.images.copy(), data.class_maps.copy(), data.sources
    two = np.flatnonzero((data.sources >= 0).sum(1) >= 2)[0]
    # Paste the image's second digit onto its first: strokes now collide.
    first, second = (
        np.argwhere(data.class_maps[two] == pools["train"].labels[k]) for k in data.sources[two, :2]
    )
    broken[0][two][tuple(first[: len(second)].T)] = 0
    assert not m2nist.check_invariants(m2nist.Split(*broken), pools["train"])["no_overlap"]


def test_every_digit_count_occurs(pools):
    data = m2nist.compose_images(pools["train"], 300, seed=3)
    assert np.bincount((data.sources >= 0).sum(1), minlength=4)[1:].min() > 50


def test_class_map_one_hot_round_trip():
    maps = np.random.default_rng(0).integers(0, 11, (3, 64, 84)).astype(np.uint8)
    assert np.array_equal(m2nist.to_class_map(m2nist.to_one_hot(maps)), maps)
    with pytest.raises(ValueError, match="0..10"):
        m2nist.to_one_hot(np.full((1, 64, 84), 11, np.uint8))


def test_compose_rejects_bad_arguments(pools):
    with pytest.raises(ValueError, match="min_digits"):
        m2nist.compose_images(pools["train"], 2, max_digits=2, min_digits=3)
    with pytest.raises(ValueError, match="empty"):
        m2nist.compose_images(pools["train"]._replace(images=pools["train"].images[:0]), 2)


def test_public_format_round_trip(tmp_path, pools):
    data = m2nist.compose_images(pools["test"], 20, seed=1)
    m2nist.save_m2nist(tmp_path, data.images, m2nist.to_one_hot(data.class_maps))
    images, masks = m2nist.load_m2nist(tmp_path)
    assert images.shape == (20, 64, 84) and masks.shape == (20, 64, 84, 11)
    assert np.array_equal(images, data.images) and np.array_equal(m2nist.to_class_map(masks), data.class_maps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["combined.npy", "segmented.npy"]


def write_pair(folder, images, masks):
    folder.mkdir(exist_ok=True)
    np.save(folder / "combined.npy", images)
    np.save(folder / "segmented.npy", masks)


@pytest.mark.parametrize(
    "images, masks, message",
    [
        (
            np.zeros((2, 64, 80)),
            np.zeros((2, 64, 84, 11)),
            r"combined\.npy: expected shape \(N, 64, 84\), got \(2, 64, 80\)",
        ),
        (
            np.zeros((2, 64, 84)),
            np.zeros((2, 64, 84, 10)),
            r"segmented\.npy: expected shape \(N, 64, 84, 11\), got \(2, 64, 84, 10\)",
        ),
        (np.zeros((3, 64, 84)), np.zeros((2, 64, 84, 11)), "3 images but segmented.npy 2 masks"),
        (np.full((1, 64, 84), 300.0), np.zeros((1, 64, 84, 11)), r"combined\.npy: values must lie in 0..255"),
    ],
    ids=["image-shape", "channels", "count", "range"],
)
def test_bad_public_files_are_named(tmp_path, images, masks, message):
    write_pair(tmp_path, images, masks)
    with pytest.raises(ValueError, match=message):
        m2nist.load_m2nist(tmp_path)


def test_missing_and_pickled_public_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="combined.npy"):
        m2nist.load_m2nist(tmp_path)
    write_pair(tmp_path, np.empty(2, dtype=object), np.zeros((2, 64, 84, 11)))
    with pytest.raises(ValueError, match=r"combined\.npy: not a readable"):
        m2nist.load_m2nist(tmp_path)


def test_save_refuses_mismatched_arrays_and_keeps_old_files(tmp_path, pools):
    data = m2nist.compose_images(pools["test"], 5, seed=1)
    m2nist.save_m2nist(tmp_path, data.images, m2nist.to_one_hot(data.class_maps))
    before = (tmp_path / "combined.npy").read_bytes()
    with pytest.raises(ValueError, match=r"masks must have shape \(5, 64, 84, 11\)"):
        m2nist.save_m2nist(tmp_path, data.images, np.zeros((5, 64, 84, 10), np.uint8))
    assert (tmp_path / "combined.npy").read_bytes() == before


def test_interrupted_write_leaves_old_file(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def crash(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_save(target, crash)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


@pytest.mark.slow
def test_split_cache_is_reused_and_rebuilt(tmp_path):
    first = artifacts.load_or_create_split("val", n_images=30, source="sample", folder=tmp_path)
    path = artifacts.dataset_path("val", tmp_path)
    stamp = path.stat().st_mtime_ns
    again = artifacts.load_or_create_split("val", n_images=30, source="sample", folder=tmp_path)
    assert path.stat().st_mtime_ns == stamp and np.array_equal(first.images, again.images)
    bigger = artifacts.load_or_create_split("val", n_images=40, source="sample", folder=tmp_path)
    assert len(bigger.images) == 40
    path.write_bytes(b"corrupted")
    rebuilt = artifacts.load_or_create_split("val", n_images=40, source="sample", folder=tmp_path)
    assert np.array_equal(rebuilt.images, bigger.images)
    with pytest.raises(ValueError, match="unknown split"):
        artifacts.load_or_create_split("holdout", folder=tmp_path)


@pytest.mark.slow
def test_splits_use_their_own_pools(tmp_path, pools):
    test = artifacts.load_or_create_split("test", n_images=50, source="sample", folder=tmp_path)
    assert all(m2nist.check_invariants(test, pools["test"]).values())


@pytest.mark.slow
def test_cli_generate(tmp_path, capsys):
    assert (
        cli(
            [
                "generate",
                "--out",
                str(tmp_path / "out"),
                "--n-images",
                "12",
                "--source",
                "sample",
                "--split",
                "test",
            ]
        )
        == 0
    )
    images, masks = m2nist.load_m2nist(tmp_path / "out")
    assert images.shape == (12, 64, 84) and masks.shape == (12, 64, 84, 11)
    assert "wrote 12 images" in capsys.readouterr().out


def test_cli_bad_source_exits_2(tmp_path, capsys):
    assert (
        cli(["generate", "--out", str(tmp_path), "--n-images", "3", "--source", str(tmp_path / "none.npz")])
        == 2
    )
    assert "error:" in capsys.readouterr().err


def test_place_boxes_keeps_the_gap_and_repeats_with_the_seed(pools):
    boxes = m2nist.ink_boxes(pools["train"].images[:3])
    corners = m2nist.place_boxes(boxes, np.random.default_rng(5), gap=4)
    assert corners == m2nist.place_boxes(boxes, np.random.default_rng(5), gap=4)
    spans = [(y, x, h, w) for (y, x), (_, _, h, w) in zip(corners, boxes)]
    for a, (ya, xa, ha, wa) in enumerate(spans):
        assert 0 <= ya <= 64 - ha and 0 <= xa <= 84 - wa
        for yb, xb, hb, wb in spans[a + 1 :]:
            assert ya + ha + 4 <= yb or yb + hb + 4 <= ya or xa + wa + 4 <= xb or xb + wb + 4 <= xa


def test_article_generator_draws_two_or_three_and_never_places_one(pools):
    draw = article_generator.compose_like_article(pools["train"], 400, seed=1)
    drawn = (draw.sources >= 0).sum(1)
    assert set(np.unique(drawn)) == {2, 3}
    assert draw.placed[:, :2].all() and draw.placed.sum(1).min() == 2
    stats = article_generator.article_generator_stats(draw, pools["train"])
    assert stats["digits_per_image"][1] == 0 and stats["digits_drawn"][1] == 0
    # digit i's patch starts at x in [28i, 28i + 9]
    for i in range(3):
        x = draw.offsets[drawn > i, i, 1]
        assert x.min() >= 28 * i and x.max() <= 28 * i + 9


def test_article_generator_drops_the_third_digit_iff_its_offset_exceeds_56(pools):
    draw = article_generator.compose_like_article(pools["train"], 400, seed=2)
    three = (draw.sources >= 0).sum(1) == 3
    x = draw.offsets[three, 2, 1]
    assert np.array_equal(draw.placed[three, 2], x <= 56)
    assert 0 < (x <= 56).sum() < (x > 56).sum()  # both cases occur; about 9 in 10 are dropped
    # A dropped digit leaves nothing behind: the image holds exactly the placed patches' columns.
    dropped = np.flatnonzero(three)[~draw.placed[three, 2]]
    assert not draw.images[dropped][:, :, 66:].any()  # the second patch ends at column 65 at the latest
    stats = article_generator.article_generator_stats(draw, pools["train"])
    assert stats["third_dropped_pct"] == round(100 * float((x > 56).mean()), 2)


def test_article_generator_wipes_strokes_under_a_later_patch_of_the_same_class():
    # Two digits of class 3: the first all ink, the second a single stroke pixel in the middle.
    first, second = np.full((28, 28), 200, np.uint8), np.zeros((28, 28), np.uint8)
    second[14, 14] = 255
    pool = m2nist.DigitPool(np.stack([first, second]), np.array([3, 3], np.uint8))
    draw = article_generator.compose_like_article(pool, 300, seed=0)
    order = draw.sources[:, :2]
    cases = np.flatnonzero(
        (order[:, 0] == 0) & (order[:, 1] == 1) & ((draw.sources[:, 2] < 0) | ~draw.placed[:, 2])
    )
    assert len(cases) > 10
    for n in cases:
        y, x = draw.offsets[n, 1]
        later = draw.masks[n, y : y + 28, x : x + 28, 3]
        assert np.array_equal(later, second)  # the first digit's ink under the later patch is gone
    stats = article_generator.article_generator_stats(draw, pool)
    assert stats["ink_wiped_pct"] > 0 and stats["ink_lost_pct"] >= stats["ink_wiped_pct"]


def test_article_stats_count_strokes_of_two_classes_as_overlap_not_wiped():
    block = np.full((28, 28), 200, np.uint8)
    pool = m2nist.DigitPool(np.stack([block, block]), np.array([1, 2], np.uint8))
    draw = article_generator.compose_like_article(pool, 200, seed=0)
    two_classes = np.array(
        [len({pool.labels[k] for k in s[p]}) == 2 for s, p in zip(draw.sources, draw.placed)]
    )
    assert two_classes.any()
    kept = article_generator.ArticleDraw(*(a[two_classes] for a in draw))
    stats = article_generator.article_generator_stats(kept, pool)
    assert stats["ink_wiped_pct"] == 0 and stats["stroke_overlap_pct"] > 0 and stats["ink_lost_pct"] > 0


def test_our_generator_stats_find_no_overlap_and_catch_one(pools):
    data = m2nist.compose_images(pools["train"], 200, seed=0)
    stats = m2nist.generator_stats(data, pools["train"])
    assert stats["stroke_overlap_pct"] == 0 and stats["ink_lost_pct"] == 0 and stats["dropped_pct"] == 0
    assert sum(stats["digits_per_image"].values()) == 200
    # Erase one digit's ink from the image and class map: both measures must notice.
    images, class_maps = data.images.copy(), data.class_maps.copy()
    k = data.sources[0, 0]
    hit = class_maps[0] == pools["train"].labels[k]
    images[0][hit], class_maps[0][hit] = 0, m2nist.BACKGROUND
    broken = m2nist.generator_stats(m2nist.Split(images, class_maps, data.sources), pools["train"])
    assert broken["stroke_overlap_pct"] > 0 and broken["ink_lost_pct"] > 0


def block_pool() -> m2nist.DigitPool:
    """Ten 'digits', labels 0-9, each a solid rectangle of ink: its class's pixels are exactly its ink box."""
    images = np.zeros((10, 28, 28), np.uint8)
    for k in range(10):
        images[k, 2 + k % 5 : 12 + k, 3 + k % 4 : 10 + k] = 50 + 20 * k
    return m2nist.DigitPool(images, np.arange(10, dtype=np.uint8))


def box_separations(data: m2nist.Split) -> list[int]:
    """Background pixels between the ink boxes of each pair of digits in an image (< 0: they overlap)."""
    separations = []
    for class_map in data.class_maps:
        boxes = []
        for label in np.unique(class_map[class_map < 10]):
            ys, xs = np.nonzero(class_map == label)
            boxes.append((ys.min(), xs.min(), ys.max() + 1, xs.max() + 1))
        for a, (t1, l1, b1, r1) in enumerate(boxes):
            for t2, l2, b2, r2 in boxes[a + 1 :]:
                separations.append(int(max(t2 - b1, t1 - b2, l2 - r1, l1 - r2)))
    return separations


@pytest.mark.parametrize("gap", [0, 1, 4, 9])
def test_ink_boxes_are_exactly_gap_apart_at_least(gap):
    data = m2nist.compose_images(block_pool(), 150, max_digits=3, min_digits=3, seed=gap, gap=gap)
    separations = box_separations(data)
    assert len(separations) == 3 * 150
    # Never closer than the gap, and the gap itself occurs: the rule is the one asked for, not a wider one.
    assert min(separations) == gap


def test_max_digits_limits_the_count_and_every_count_occurs(pools):
    for max_digits in (1, 2, 4, 5):
        data = m2nist.compose_images(pools["train"], 60, max_digits=max_digits, seed=max_digits)
        counts = (data.sources >= 0).sum(axis=1)
        assert data.sources.shape == (60, max_digits)
        assert set(counts.tolist()) == set(range(1, max_digits + 1))
    exact = m2nist.compose_images(pools["train"], 10, max_digits=4, min_digits=4, seed=0)
    assert ((exact.sources >= 0).sum(axis=1) == 4).all()
    with pytest.raises(ValueError, match="at most 6 digits"):
        m2nist.compose_images(pools["train"], 1, max_digits=7)


def test_impossible_placement_raises():
    # Five 28x28 boxes one pixel apart need 86 columns for three side by side, or three rows: no room.
    full = m2nist.DigitPool(np.full((5, 28, 28), 255, np.uint8), np.arange(5, dtype=np.uint8))
    with pytest.raises(RuntimeError, match="could not place 5 digits"):
        m2nist.compose_images(full, 1, max_digits=5, min_digits=5, seed=0)
    with pytest.raises(RuntimeError, match="could not place 2 digits"):
        m2nist.place_boxes(np.array([[0, 0, 40, 60]] * 2), np.random.default_rng(0), gap=0)


def broken_split(data: m2nist.Split, pool: m2nist.DigitPool, fault: str) -> m2nist.Split:
    """``data`` with one promise of the format broken, and only that one."""
    images, class_maps, sources = data.images.copy(), data.class_maps.copy(), data.sources.copy()
    labels = pool.labels[sources[0][sources[0] >= 0]]
    digit = class_maps[0] == labels[0]
    if fault == "one_hot":  # a pixel of class 11: no channel of the 11-channel mask holds it
        class_maps[0][np.argwhere(digit)[0][0], np.argwhere(digit)[0][1]] = 11
    elif fault == "background_is_complement":  # a background pixel labelled as the image's own digit
        y, x = np.argwhere(images[0] == 0)[0]
        class_maps[0, y, x] = labels[0]
    elif fault == "no_overlap":  # one stroke pixel lost (image and mask agree that it is background)
        y, x = np.argwhere(digit)[0]
        images[0, y, x], class_maps[0, y, x] = 0, m2nist.BACKGROUND
    elif fault == "labels_match":  # one stroke pixel painted as a class that was not placed
        y, x = np.argwhere(digit)[0]
        class_maps[0, y, x] = next(c for c in range(10) if c not in labels)
    elif fault == "labels_match_missing":  # a placed digit painted as its neighbour: its class is missing
        class_maps[0][digit] = labels[1]
    elif fault == "digit_count_in_range":  # an image with no digit at all (and nothing in it)
        images[0], class_maps[0], sources[0] = 0, m2nist.BACKGROUND, -1
    return m2nist.Split(images, class_maps, sources)


@pytest.mark.parametrize(
    "fault",
    [
        "one_hot",
        "background_is_complement",
        "no_overlap",
        "labels_match",
        "labels_match_missing",
        "digit_count_in_range",
    ],
)
def test_each_invariant_catches_its_own_fault(pools, fault):
    data = m2nist.compose_images(pools["train"], 20, seed=4)
    first = pools["train"].labels[data.sources[0][data.sources[0] >= 0]]
    assert len(set(first)) >= 2  # image 0 holds two digits of two classes (labels_match_missing needs it)
    assert all(m2nist.check_invariants(data, pools["train"]).values())
    report = m2nist.check_invariants(broken_split(data, pools["train"], fault), pools["train"])
    assert report == {key: key != fault.removesuffix("_missing") for key in report}


def test_four_digits_break_the_count_invariant_only(pools):
    data = m2nist.compose_images(pools["train"], 10, max_digits=4, min_digits=4, seed=0)
    report = m2nist.check_invariants(data, pools["train"])
    assert report == {key: key != "digit_count_in_range" for key in report}


def test_dataset_stats_by_hand():
    # Two 4x5 maps (40 pixels): one digit 3 of 4 pixels (pool index 0); three digits, a 7 of 2 pixels,
    # a 0 of 1 and another 7 of 1. Small maps, so that every count moves the rounded percentages.
    class_maps = np.full((2, 4, 5), m2nist.BACKGROUND, np.uint8)
    class_maps[0, :2, :2] = 3
    class_maps[1, 0, :2] = 7
    class_maps[1, 2, 2] = 0
    class_maps[1, 3, 4] = 7
    sources = np.array([[0, -1, -1], [8, 9, 4]], np.int32)
    stats = m2nist.dataset_stats(m2nist.Split((class_maps != 10).astype(np.uint8), class_maps, sources))
    expected_share = [0.0] * 10
    expected_share[3], expected_share[7], expected_share[0] = 10.0, 7.5, 2.5
    assert stats == {
        "images": 2,
        "digits_per_image": {1: 1, 2: 0, 3: 1},
        "pixel_share_per_digit_pct": expected_share,
        "background_pct": 80.0,
    }


def test_generator_stats_by_hand():
    # Three digits: a 1 of 4 ink pixels, a 2 of 6, another 1 of 3.
    digits = np.zeros((3, 28, 28), np.uint8)
    digits[0, 10, 10:14] = 200
    digits[1, 12, 8:14] = 90
    digits[2, 5:8, 3] = 255
    pool = m2nist.DigitPool(digits, np.array([1, 2, 1], np.uint8))
    # Image 0: the 2 pasted over two pixels of the first 1 (8 ink pixels left of 10); image 1: the other 1.
    images = np.zeros((2, 64, 84), np.uint8)
    class_maps = np.full((2, 64, 84), m2nist.BACKGROUND, np.uint8)
    images[0, 0, 0:4], class_maps[0, 0, 0:4] = 200, 1
    images[0, 0, 2:8], class_maps[0, 0, 2:8] = 90, 2
    images[1, 5:8, 3], class_maps[1, 5:8, 3] = 255, 1
    sources = np.array([[0, 1, -1], [2, -1, -1]], np.int32)
    stats = m2nist.generator_stats(m2nist.Split(images, class_maps, sources), pool)
    assert stats == {
        "images": 2,
        "digits_per_image": {1: 1, 2: 1, 3: 0},
        "dropped_pct": 0.0,
        "ink_pixels": 11,
        "stroke_overlap_pixels": 2,  # 4 + 6 + 3 placed, 11 seen
        "stroke_overlap_pct": round(100 * 2 / 11, 4),
        "ink_lost_pct": round(100 * 2 / 13, 4),  # class 1: 7 ink pixels placed, 5 in the class maps
    }


def _generate_argv(out, seed: int, *extra: str) -> list[str]:
    sizes = ["--n-images", "50", "--source", "sample", "--seed", str(seed)]
    return ["generate", "--out", str(out), *sizes, *extra]


@pytest.mark.slow
def test_cli_generate_refuses_an_existing_dataset_without_force(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(_generate_argv(out, 1)) == 0
    before = {name: (out / name).read_bytes() for name in ("combined.npy", "segmented.npy")}
    capsys.readouterr()
    assert cli(_generate_argv(out, 2)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {out}: already holds an M2NIST dataset")
    assert "--force" in err
    assert {name: (out / name).read_bytes() for name in before} == before
    assert cli(_generate_argv(out, 2, "--force")) == 0
    assert (out / "combined.npy").read_bytes() != before["combined.npy"]


# Runs generate and slows every np.save by 50 ms, so that a kill often lands between the two files (the
# moment that tore the pair when they were renamed into place one after the other). "saving" on stdout
# marks the first write, so half the kills can aim at the writes and half at any point of the run.
_SLOW_GENERATE = """
import sys, time
import numpy as np
real_save = np.save
def slow_save(*args, **kwargs):
    print("saving", flush=True)
    real_save(*args, **kwargs)
    time.sleep(0.05)
np.save = slow_save
from m2nist_utils.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_killed_generate_leaves_the_old_pair_or_the_new_one(tmp_path):
    import os
    import random
    import subprocess
    import sys
    import time

    ref_old, ref_new, out = tmp_path / "old", tmp_path / "new", tmp_path / "out"
    assert cli(_generate_argv(ref_old, 1)) == 0 and cli(_generate_argv(ref_new, 2)) == 0
    old, new = m2nist.load_m2nist(ref_old), m2nist.load_m2nist(ref_new)
    assert not np.array_equal(old[0], new[0]) and not np.array_equal(old[1], new[1])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    rng = random.Random(12)
    # Six kills aimed at the writes, one random delay in each sixth of the first 0.3 s after "saving"
    # (which covers both writes, the fsyncs and the swap); two at random points of the whole run.
    delays = [("aimed", (i + rng.random()) * 0.05) for i in range(6)]
    delays += [("any", rng.uniform(0.0, 3.0)) for _ in range(2)]
    seen: list[str] = []
    for attempt, (aim, delay) in enumerate(delays):
        m2nist.save_m2nist(out, *old)
        proc = subprocess.Popen(
            [sys.executable, "-c", _SLOW_GENERATE, *_generate_argv(out, 2, "--force")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        if aim == "aimed":
            proc.stdout.readline()  # "saving": the first file is being written
        time.sleep(delay)
        proc.kill()
        proc.wait()
        proc.stdout.close()
        images, masks = m2nist.load_m2nist(out)
        if np.array_equal(images, old[0]) and np.array_equal(masks, old[1]):
            seen.append(f"old@{delay:.3f}")
        elif np.array_equal(images, new[0]) and np.array_equal(masks, new[1]):
            seen.append(f"new@{delay:.3f}")
        else:
            pytest.fail(f"kill {attempt} ({aim}, {delay:.3f} s) left a mixed pair (after {seen})")
    # The next save cleans what the kills left beside the folder.
    m2nist.save_m2nist(out, *new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old", "out"], seen
    print("kills left:", seen)


def test_dataset_stats_round_shares_to_two_decimals():
    # 30 pixels: one pixel is 3.333...% and the 28 background pixels 93.333...%.
    class_maps = np.full((2, 3, 5), m2nist.BACKGROUND, np.uint8)
    class_maps[0, 0, 0], class_maps[1, 2, 4] = 5, 9
    sources = np.array([[0, -1, -1], [1, -1, -1]], np.int32)
    stats = m2nist.dataset_stats(m2nist.Split((class_maps != 10).astype(np.uint8), class_maps, sources))
    assert stats["pixel_share_per_digit_pct"][5] == 3.33 and stats["pixel_share_per_digit_pct"][9] == 3.33
    assert stats["background_pct"] == 93.33


def test_place_boxes_keeps_one_pixel_apart_by_default():
    boxes = np.tile([[0, 0, 28, 26]], (3, 1))  # three large digits: some draws are rejected
    default = m2nist.place_boxes(boxes, np.random.default_rng(1))
    assert default == m2nist.place_boxes(boxes, np.random.default_rng(1), gap=1)
    # With these draws a gap of 2 rejects a corner that 1 accepts: the default is not merely some gap.
    assert default != m2nist.place_boxes(boxes, np.random.default_rng(1), gap=2)


def test_save_m2nist_names_the_folder_and_the_wrong_shape(tmp_path):
    images = np.zeros((2, 28, 28), np.uint8)  # MNIST-sized, with masks to match them
    masks = np.zeros((2, 28, 28, 11), np.uint8)
    folder = tmp_path / "pair"
    with pytest.raises(
        ValueError, match=rf"^{folder}: images must have shape \(N, 64, 84\), got \(2, 28, 28\)$"
    ):
        m2nist.save_m2nist(folder, images, masks)
    assert not folder.exists()


def test_save_m2nist_writes_uint8_files_whatever_integer_type_it_is_given(tmp_path):
    data = m2nist.compose_images(sample_pools()["test"], 3, seed=0)
    m2nist.save_m2nist(
        tmp_path / "pair", data.images.astype(np.int64), m2nist.to_one_hot(data.class_maps).astype(np.int32)
    )
    for name in ("combined.npy", "segmented.npy"):
        assert np.load(tmp_path / "pair" / name).dtype == np.uint8, name


def test_invariants_read_the_label_of_pool_digit_zero():
    train = sample_pools()["train"]
    first_four, first_seven = (
        int(np.flatnonzero(train.labels == 4)[0]),
        int(np.flatnonzero(train.labels == 7)[0]),
    )
    pool = mnist.DigitPool(train.images[[first_four, first_seven]], np.array([4, 7], np.uint8))
    data = m2nist.compose_images(pool, 8, max_digits=1, seed=0)
    assert (data.sources[:, 0] == 0).any()  # digit 0 of the pool is placed somewhere
    assert m2nist.check_invariants(data, pool)["labels_match"]


def test_ink_lost_is_never_negative_when_maps_paint_more_than_the_ink(pools):
    data = m2nist.compose_images(pools["test"], 4, seed=0)
    grown = data.class_maps.copy()
    grown[:, :, 1:][data.class_maps[:, :, :-1] != m2nist.BACKGROUND] = data.class_maps[:, :, :-1][
        data.class_maps[:, :, :-1] != m2nist.BACKGROUND
    ]  # every digit's mask widened by a pixel to the right
    stats = m2nist.generator_stats(m2nist.Split(data.images, grown, data.sources), pools["test"])
    assert stats["ink_lost_pct"] == 0.0


def test_to_class_map_gives_uint8():
    assert m2nist.to_class_map(np.eye(11, dtype=np.float32)[None, None]).dtype == np.uint8


def test_a_mask_value_of_two_is_named_as_such(tmp_path):
    data = m2nist.compose_images(sample_pools()["test"], 2, seed=0)
    masks = m2nist.to_one_hot(data.class_maps)
    masks[0, 0, 0] *= 2  # one pixel's channel set to 2 instead of 1
    np.save(tmp_path / "combined.npy", data.images)
    np.save(tmp_path / "segmented.npy", masks)
    with pytest.raises(
        ValueError, match=r"segmented\.npy: masks are not one-hot: values up to 2; expected 0 or 1$"
    ):
        m2nist.load_m2nist(tmp_path)


def test_to_one_hot_gives_uint8_and_refuses_floats_by_name():
    assert m2nist.to_one_hot(np.array([[3]], np.uint8)).dtype == np.uint8
    with pytest.raises(ValueError, match=r"^class maps must be integers 0\.\.10, got dtype float32$"):
        m2nist.to_one_hot(np.zeros((1, 2), np.float32))


def _save_raw(folder, images, masks):
    folder.mkdir(exist_ok=True)
    np.save(folder / "combined.npy", images)
    np.save(folder / "segmented.npy", masks)


def test_load_m2nist_says_what_each_file_should_hold(tmp_path):
    data = m2nist.compose_images(sample_pools()["test"], 2, seed=0)
    masks = m2nist.to_one_hot(data.class_maps)
    _save_raw(tmp_path / "a", data.images / 255.0, masks)
    with pytest.raises(
        ValueError, match=r"combined\.npy: holds fractional values .*; expected grey levels 0\.\.255 \("
    ):
        m2nist.load_m2nist(tmp_path / "a")
    _save_raw(tmp_path / "b", data.images, masks * 0.5)
    with pytest.raises(
        ValueError, match=r"segmented\.npy: holds fractional values .*; expected one-hot masks of 0 and 1$"
    ):
        m2nist.load_m2nist(tmp_path / "b")


def test_a_mask_error_counts_both_faults_and_names_the_first_pixel(tmp_path):
    data = m2nist.compose_images(sample_pools()["test"], 2, seed=0)
    masks = m2nist.to_one_hot(data.class_maps)
    masks[0, 0, 0, :] = 0  # no channel set
    masks[1, 5, 7, :] = 0
    masks[1, 5, 7, :2] = 1  # exactly two channels set
    _save_raw(tmp_path, data.images, masks)
    with pytest.raises(
        ValueError, match=r"1 pixels have no channel set and 1 several \(first: image 0, row 0, column 0\)"
    ):
        m2nist.load_m2nist(tmp_path)


def test_a_pair_replaced_during_every_read_is_given_up_after_five(tmp_path, monkeypatch):
    pair = tmp_path / "pair"
    data = m2nist.compose_images(sample_pools()["test"], 2, seed=0)
    m2nist.save_m2nist(pair, data.images, m2nist.to_one_hot(data.class_maps))
    real_read, reads = np.lib.format.read_array, []

    def read_then_replace(file, *args, **kwargs):
        array = real_read(file, *args, **kwargs)
        reads.append(os.path.basename(file.name))
        if len(reads) % 2 == 1:  # a writer swaps the pair in between the reader's two files, every time
            m2nist.save_m2nist(pair, data.images, m2nist.to_one_hot(data.class_maps))
        return array

    monkeypatch.setattr(np.lib.format, "read_array", read_then_replace)
    with pytest.raises(RuntimeError, match=rf"^{pair}: replaced while being read, five times in a row$"):
        m2nist.load_m2nist(pair)
    assert len(reads) == 10


def test_a_file_gone_because_the_pair_was_replaced_is_read_again(tmp_path, monkeypatch):
    pair = tmp_path / "pair"
    old = m2nist.compose_images(sample_pools()["test"], 2, seed=0)
    new = m2nist.compose_images(sample_pools()["test"], 3, seed=1)
    m2nist.save_m2nist(pair, old.images, m2nist.to_one_hot(old.class_maps))
    real_open, opened = open, []

    def replaced_then_gone(path, *args, **kwargs):
        if str(path).endswith(".npy") and args[:1] == ("rb",):  # the reader's, not the writer's
            opened.append(os.path.basename(path))
            if len(opened) == 1:  # the pair is replaced just before the reader opens its first file
                m2nist.save_m2nist(pair, new.images, m2nist.to_one_hot(new.class_maps))
                raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", replaced_then_gone)
    images, _ = m2nist.load_m2nist(pair)
    assert np.array_equal(images, new.images)
    assert opened == ["combined.npy", "combined.npy", "segmented.npy"]


def test_compose_images_defaults_to_seed_0_and_a_gap_of_1():
    pool = sample_pools()["test"]
    default = m2nist.compose_images(pool, 300)
    assert np.array_equal(default.images, m2nist.compose_images(pool, 300, seed=0, gap=1).images)
    for other in ({"seed": 1}, {"gap": 2}):
        assert not np.array_equal(default.images, m2nist.compose_images(pool, 300, **other).images), other
