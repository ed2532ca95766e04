"""M2NIST: 64x84 images with 1-3 non-overlapping MNIST digits and their 11-channel masks.

Introduced in notebook 01. Array conventions used throughout the series:

- images: ``uint8 (N, 64, 84)``, 0..255;
- masks: ``uint8 (N, 64, 84, 11)`` one-hot, channel k = digit k, channel 10 = background;
- class maps: ``uint8 (N, 64, 84)``, the same information as one label per pixel, 10 = background.

A pixel belongs to a digit when that digit's MNIST image is non-zero there ("ink"); all other pixels are
background. Digits are placed untransformed so that their ink bounding boxes never touch, which keeps
strokes from overlapping. :func:`compose_like_article` re-implements the original article's generator, for
measuring what it overlapped and dropped (notebook 01).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import config
from .files import atomic_save, atomic_save_folder, folder_identity
from .mnist import DigitPool, resolve_source, split_pools

HEIGHT, WIDTH = 64, 84
N_CLASSES = 11
BACKGROUND = 10
MAX_DIGITS = 3


class Split(NamedTuple):
    """One M2NIST split: images uint8 (N, 64, 84), class maps uint8 (N, 64, 84), sources int32 (N, D)."""

    images: np.ndarray
    class_maps: np.ndarray
    sources: np.ndarray


# ----------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------
def ink_boxes(digits: np.ndarray) -> np.ndarray:
    """Tight bounding boxes of the ink of each digit.

    Args:
        digits: uint8 (N, 28, 28).

    Returns:
        int (N, 4) rows of (top, left, height, width); an empty digit gets a 1x1 box at its centre.
    """
    rows, cols = digits.any(axis=2), digits.any(axis=1)
    top = np.where(rows.any(1), rows.argmax(1), 14)
    bottom = np.where(rows.any(1), 28 - rows[:, ::-1].argmax(1), 15)
    left = np.where(cols.any(1), cols.argmax(1), 14)
    right = np.where(cols.any(1), 28 - cols[:, ::-1].argmax(1), 15)
    return np.stack([top, left, bottom - top, right - left], axis=1)


def compose_images(
    pool: DigitPool,
    n_images: int,
    max_digits: int = MAX_DIGITS,
    min_digits: int = 1,
    seed: int = 0,
    gap: int = 1,
) -> Split:
    """Draw M2NIST images from a pool of MNIST digits.

    Args:
        pool: the digits to draw from (``images`` uint8 (M, 28, 28), ``labels`` uint8 (M,)).
        n_images: how many images to make.
        max_digits, min_digits: each image holds a uniformly drawn number of digits in this range.
        seed: the same seed and pool give the same images.
        gap: the least number of background pixels between the ink boxes of two digits.

    Returns:
        A :class:`Split`: ``images`` uint8 (N, 64, 84), ``class_maps`` uint8 (N, 64, 84) with
        10 = background, and ``sources`` int32 (N, max_digits), the pool index of each placed digit
        (-1 for an empty slot).
    """
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits} and {max_digits}")
    if max_digits > 6:
        raise ValueError(f"at most 6 digits fit a 64x84 image without touching, got max_digits={max_digits}")
    if len(pool.images) == 0:
        raise ValueError("the digit pool is empty")
    rng = np.random.default_rng(seed)
    boxes = ink_boxes(pool.images)
    images = np.zeros((n_images, HEIGHT, WIDTH), np.uint8)
    class_maps = np.full((n_images, HEIGHT, WIDTH), BACKGROUND, np.uint8)
    sources = np.full((n_images, max_digits), -1, np.int32)
    counts = rng.integers(min_digits, max_digits + 1, size=n_images)
    for i, count in enumerate(counts):
        chosen = rng.choice(len(pool.images), size=count, replace=False)
        for j, (k, (y, x)) in enumerate(zip(chosen, _place(boxes[chosen], rng, gap))):
            t, left, h, w = boxes[k]
            ink = pool.images[k, t : t + h, left : left + w]
            images[i, y : y + h, x : x + w] = ink
            class_maps[i, y : y + h, x : x + w][ink > 0] = pool.labels[k]
            sources[i, j] = k
    return Split(images, class_maps, sources)


def _place(boxes: np.ndarray, rng: np.random.Generator, gap: int) -> list[tuple[int, int]]:
    """Top-left corners for boxes (K, 4) such that no two boxes come closer than ``gap`` pixels."""
    # Rejection sampling with a bounded number of tries; MNIST ink fits 20x20, so three boxes almost
    # always fit at the first attempts, and a full restart handles the rare dead end.
    for _ in range(1000):
        placed: list[tuple[int, int, int, int]] = []
        for _, _, h, w in boxes:
            for _ in range(50):
                y = int(rng.integers(0, HEIGHT - h + 1))
                x = int(rng.integers(0, WIDTH - w + 1))
                if all(
                    y + h + gap <= py or py + ph + gap <= y or x + w + gap <= px or px + pw + gap <= x
                    for py, px, ph, pw in placed
                ):
                    placed.append((y, x, h, w))
                    break
            else:
                break
        if len(placed) == len(boxes):
            return [(y, x) for y, x, _, _ in placed]
    raise RuntimeError(f"could not place {len(boxes)} digits without overlap; use fewer digits")


def place_boxes(boxes: np.ndarray, rng: np.random.Generator, gap: int = 1) -> list[tuple[int, int]]:
    """The placement rule of :func:`compose_images`, on its own (notebook 01 writes it out and compares).

    Args:
        boxes: int (K, 4) ink boxes (top, left, height, width), as :func:`ink_boxes` returns them.
        rng: the generator to draw from; the same state gives the same corners.
        gap: the least number of background pixels between two boxes.

    Returns:
        K (y, x) top-left corners in the 64x84 image, drawn uniformly and rejected while a box comes closer
        than ``gap`` to one already placed.
    """
    return _place(np.asarray(boxes), rng, gap)


def to_one_hot(class_maps: np.ndarray) -> np.ndarray:
    """Class maps uint8 (..., 64, 84) with values 0..10 -> one-hot masks uint8 (..., 64, 84, 11)."""
    if class_maps.size and class_maps.max() >= N_CLASSES:
        raise ValueError(f"class maps must hold values 0..{N_CLASSES - 1}, got up to {class_maps.max()}")
    return np.eye(N_CLASSES, dtype=np.uint8)[class_maps]


def to_class_map(masks: np.ndarray) -> np.ndarray:
    """One-hot (or score) masks (..., 64, 84, 11) -> class maps uint8 (..., 64, 84) via argmax."""
    return np.argmax(masks, axis=-1).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# Files: the public M2NIST format and the project's own cache
# ----------------------------------------------------------------------------------------------------
def save_m2nist(folder: str | os.PathLike, images: np.ndarray, masks: np.ndarray) -> None:
    """Write the public M2NIST format into ``folder``; the pair is replaced as one unit.

    Both files are written into a temporary sibling folder that is then swapped in whole
    (``files.atomic_save_folder``), so a kill or a full disk leaves the old pair or the new one, never new
    images beside old masks. ``folder`` must be new or hold only ``combined.npy``/``segmented.npy``.

    Args:
        images: uint8 (N, 64, 84), written as ``combined.npy``.
        masks: uint8 (N, 64, 84, 11) one-hot, written as ``segmented.npy``.
    """
    folder = Path(folder)
    _check_pair(images, masks, str(folder))

    def write(tmp: Path) -> None:
        np.save(tmp / "combined.npy", images.astype(np.uint8))
        np.save(tmp / "segmented.npy", masks.astype(np.uint8))

    atomic_save_folder(folder, write, allowed=("combined.npy", "segmented.npy"))


def load_m2nist(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the public M2NIST format; returns images uint8 (N, 64, 84) and masks uint8 (N, 64, 84, 11)."""
    folder = Path(folder)
    # save_m2nist swaps in a new folder (new inode): read again if that happened between the two files.
    for _ in range(5):
        before = folder_identity(folder)
        try:
            images = _load_npy(folder / "combined.npy", (HEIGHT, WIDTH))
            masks = _load_npy(folder / "segmented.npy", (HEIGHT, WIDTH, N_CLASSES))
        except FileNotFoundError:
            if folder_identity(folder) == before:
                raise
            continue
        if folder_identity(folder) == before:
            break
    else:
        raise RuntimeError(f"{folder}: replaced while being read, five times in a row")
    if len(images) != len(masks):
        raise ValueError(
            f"{folder}: combined.npy holds {len(images)} images but segmented.npy {len(masks)} masks"
        )
    return images, masks


def _load_npy(path: Path, tail: tuple[int, ...]) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"M2NIST file not found: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from exc
    if array.ndim != len(tail) + 1 or array.shape[1:] != tail:
        raise ValueError(f"{path}: expected shape (N, {', '.join(map(str, tail))}), got {array.shape}")
    if array.dtype.kind not in "uif" and array.dtype != bool:
        raise ValueError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    if array.min() < 0 or array.max() > 255:
        raise ValueError(f"{path}: values must lie in 0..255, got {array.min()}..{array.max()}")
    return array.astype(np.uint8)


def _check_pair(images: np.ndarray, masks: np.ndarray, where: str) -> None:
    if images.ndim != 3 or images.shape[1:] != (HEIGHT, WIDTH):
        raise ValueError(f"{where}: images must have shape (N, {HEIGHT}, {WIDTH}), got {images.shape}")
    if masks.shape != images.shape + (N_CLASSES,):
        raise ValueError(
            f"{where}: masks must have shape {images.shape + (N_CLASSES,)} to match the images, "
            f"got {masks.shape}"
        )


def dataset_path(split: str, folder: str | os.PathLike | None = None) -> Path:
    """The project's cached split: ``data/m2nist_<split>.npz``."""
    return Path(folder or config.DATA_DIR) / f"m2nist_{split}.npz"


def load_or_create_split(
    split: str,
    n_images: int | None = None,
    source: str | os.PathLike | None = "auto",
    seed: int = 0,
    folder: str | os.PathLike | None = None,
) -> Split:
    """One split (images, class maps, sources; see :func:`compose_images`), cached in ``data/``.

    The cache is rebuilt when it is missing, unreadable or was made with other settings, so any notebook
    can call this first thing. Each split draws only from its own digit pool, with its own seed.
    ``n_images`` defaults to ``config.N_IMAGES[split]`` (smaller in quick mode).
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
    n_images = config.N_IMAGES[split] if n_images is None else n_images
    source = resolve_source(source)
    path = dataset_path(split, folder)
    settings = f"n={n_images} source={source} seed={seed}"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["settings"]) == settings:
                    return Split(f["images"], f["class_maps"], f["sources"])
        except (OSError, ValueError, KeyError, EOFError):
            pass  # unreadable or from other settings: rebuild below
    pool = split_pools(source, seed=seed)[split]
    data = compose_images(pool, n_images, seed=seed * 3 + ("train", "val", "test").index(split) + 1)
    atomic_save(path, lambda f: np.savez_compressed(f, **data._asdict(), settings=np.array(settings)))
    return data


# ----------------------------------------------------------------------------------------------------
# Checks and statistics
# ----------------------------------------------------------------------------------------------------
def check_invariants(data: Split, pool: DigitPool) -> dict[str, bool]:
    """The promises of the format, checked on real data (notebook 01 prints them).

    - ``one_hot``: the 11-channel mask has exactly one 1 per pixel;
    - ``background_is_complement``: background exactly where no digit has ink;
    - ``no_overlap``: every placed digit keeps all its ink pixels, none lost to a neighbour;
    - ``labels_match``: each mask shows exactly the digit classes placed in the image;
    - ``digit_count_in_range``: 1 to 3 digits per image.
    """
    images, class_maps, sources = data
    # Not to_one_hot, which refuses a class outside 0..10: such a pixel must show here as a mask without a 1.
    masks = class_maps[..., None] == np.arange(N_CLASSES)
    placed = sources >= 0
    ink_per_digit = (pool.images > 0).sum(axis=(1, 2))
    expected_ink = np.where(placed, ink_per_digit[np.maximum(sources, 0)], 0).sum(axis=1)
    labels = np.where(placed, pool.labels[np.maximum(sources, 0)], BACKGROUND)
    present = np.stack([(class_maps == c).any(axis=(1, 2)) for c in range(10)], axis=1)
    placed_classes = np.stack([(labels == c).any(axis=1) for c in range(10)], axis=1)
    return {
        "one_hot": bool((masks.sum(axis=-1) == 1).all()),
        "background_is_complement": bool(((class_maps == BACKGROUND) == (images == 0)).all()),
        "no_overlap": bool(((images > 0).sum(axis=(1, 2)) == expected_ink).all()),
        "labels_match": bool((present == placed_classes).all()),
        "digit_count_in_range": bool(((placed.sum(1) >= 1) & (placed.sum(1) <= MAX_DIGITS)).all()),
    }


def dataset_stats(data: Split) -> dict[str, object]:
    """Digits per image (counts for 1, 2, 3), pixel share per class 0-9 (%) and background share (%)."""
    counts = (data.sources >= 0).sum(axis=1)
    share = np.bincount(data.class_maps.ravel(), minlength=N_CLASSES) / data.class_maps.size * 100
    return {
        "images": len(data.images),
        "digits_per_image": {k: int((counts == k).sum()) for k in range(1, data.sources.shape[1] + 1)},
        "pixel_share_per_digit_pct": np.round(share[:10], 2).tolist(),
        "background_pct": round(float(share[BACKGROUND]), 2),
    }


# ----------------------------------------------------------------------------------------------------
# The original article's generator, for measurement only
# ----------------------------------------------------------------------------------------------------
class ArticleDraw(NamedTuple):
    """What :func:`compose_like_article` drew, with everything needed to measure it.

    ``images`` uint8 (N, 64, 84), the maximum over the mask channels (as the article builds them);
    ``masks`` uint8 (N, 64, 84, 10), channel d holding the grey values of the patches of digit d (no
    background channel); ``sources`` int32 (N, 3), the pool index of each drawn digit (-1: not drawn);
    ``offsets`` int32 (N, 3, 2), the (y, x) top-left corner drawn for each patch; ``placed`` bool (N, 3),
    whether that patch fitted in the image and was pasted.
    """

    images: np.ndarray
    masks: np.ndarray
    sources: np.ndarray
    offsets: np.ndarray
    placed: np.ndarray


def compose_like_article(pool: DigitPool, n_images: int, seed: int = 0) -> ArticleDraw:
    """Re-implement the article's generator (``segmented-generator.ipynb``), for measurement only.

    Its rule: 2 or 3 digits drawn with replacement; digit i's whole 28x28 patch goes at x uniform in
    [28i, 28i+9] and y uniform in [0, 36]; a patch is pasted only if it fits in the 84 columns (so the third,
    x >= 56, survives only at x = 56); mask channel d is *assigned* the patch, so a later patch of the same
    class wipes an earlier digit's strokes wherever the two patches overlap. Never use it to train.
    Introduced in notebook 01, which sets :func:`article_generator_stats` beside our generator's.

    Args:
        pool: digits to draw from (``images`` uint8 (M, 28, 28), ``labels`` uint8 (M,)).
        n_images: how many images to draw.
        seed: the same seed and pool give the same draw.

    Returns:
        An :class:`ArticleDraw`.
    """
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_images, HEIGHT, WIDTH, 10), np.uint8)
    sources = np.full((n_images, 3), -1, np.int32)
    offsets = np.zeros((n_images, 3, 2), np.int32)
    placed = np.zeros((n_images, 3), bool)
    for n in range(n_images):
        count = rng.integers(2, 4)  # the article's randint(low=2, high=3+1): never a single digit
        for i, k in enumerate(rng.integers(0, len(pool.images), count)):
            y, x = rng.integers(0, HEIGHT - 28 + 1), rng.integers(28 * i, 28 * i + 10)
            sources[n, i], offsets[n, i] = k, (y, x)
            if x + 28 <= WIDTH:
                masks[n, y : y + 28, x : x + 28, pool.labels[k]] = pool.images[k]
                placed[n, i] = True
    return ArticleDraw(masks.max(axis=-1), masks, sources, offsets, placed)


def article_generator_stats(draw: ArticleDraw, pool: DigitPool) -> dict[str, object]:
    """Measure an :class:`ArticleDraw` (notebook 01): what the article's rule drops, overlaps and wipes.

    Ink is counted digit by digit: each placed digit's non-zero pixels at the position it was pasted.

    Returns:
        ``digits_drawn`` and ``digits_per_image`` (placed): counts for 1, 2, 3;
        ``dropped_pct``: drawn digits not pasted; ``third_dropped_pct``: three-digit draws losing the third;
        ``stroke_overlap_pct``: share of the ink pixels (``ink_pixels``, the union over digits) covered by
        the strokes of two or more digits; ``ink_wiped_pct``: share of the digits' ink pixels (counted per
        digit) whose own mask channel is 0 (a later same-class patch); ``ink_lost_pct``: share of the
        digits' ink pixels the mask does not give to that digit alone (wiped, or a digit of another class
        has ink there too, so no one-hot class map can keep both). ``*_pixels``: the counts behind them.
    """
    drawn = draw.sources >= 0
    n_drawn, n_placed = drawn.sum(1), draw.placed.sum(1)
    cover_pixels = overlap_pixels = digit_pixels = wiped = lost = 0
    for n in range(len(draw.sources)):
        cover = np.zeros((HEIGHT, WIDTH), np.int32)
        for k, (y, x) in zip(draw.sources[n][draw.placed[n]], draw.offsets[n][draw.placed[n]]):
            cover[y : y + 28, x : x + 28] += pool.images[k] > 0
        cover_pixels += int((cover > 0).sum())
        overlap_pixels += int((cover > 1).sum())
        channels_with_ink = (draw.masks[n] > 0).sum(axis=-1)
        for k, (y, x) in zip(draw.sources[n][draw.placed[n]], draw.offsets[n][draw.placed[n]]):
            ink = pool.images[k] > 0
            own = draw.masks[n, y : y + 28, x : x + 28, pool.labels[k]] > 0
            others = channels_with_ink[y : y + 28, x : x + 28] - own
            digit_pixels += int(ink.sum())
            wiped += int((ink & ~own).sum())
            lost += int((ink & (~own | (others > 0))).sum())
    return {
        "images": len(draw.sources),
        "digits_drawn": {k: int((n_drawn == k).sum()) for k in (1, 2, 3)},
        "digits_per_image": {k: int((n_placed == k).sum()) for k in (1, 2, 3)},
        "dropped_pct": round(100 * float((drawn & ~draw.placed).sum() / drawn.sum()), 2),
        "third_dropped_pct": round(100 * float((~draw.placed[n_drawn == 3, 2]).mean()), 2),
        "ink_pixels": cover_pixels,
        "stroke_overlap_pixels": overlap_pixels,
        "stroke_overlap_pct": round(100 * overlap_pixels / cover_pixels, 4),
        "ink_wiped_pixels": wiped,
        "ink_wiped_pct": round(100 * wiped / digit_pixels, 4),
        "ink_lost_pixels": lost,
        "ink_lost_pct": round(100 * lost / digit_pixels, 4),
    }


def generator_stats(data: Split, pool: DigitPool) -> dict[str, object]:
    """Our generator measured as :func:`article_generator_stats` measures the article's (notebook 01).

    ``compose_images`` places every digit it draws or raises, so nothing is dropped by construction; the
    overlap and the ink lost are measured by counting: image ink against the placed digits' ink, and per
    class, class-map pixels against the ink of the placed digits of that class.
    """
    placed = data.sources >= 0
    keys = np.maximum(data.sources, 0)
    digit_ink = np.where(placed, (pool.images > 0).sum(axis=(1, 2))[keys], 0)
    image_ink = int((data.images > 0).sum())
    per_class = np.bincount(pool.labels[keys][placed], weights=digit_ink[placed], minlength=10)
    in_maps = np.bincount(data.class_maps.ravel(), minlength=N_CLASSES)[:10]
    n_placed = placed.sum(1)
    return {
        "images": len(data.sources),
        "digits_per_image": {k: int((n_placed == k).sum()) for k in range(1, data.sources.shape[1] + 1)},
        "dropped_pct": 0.0,
        "ink_pixels": image_ink,
        "stroke_overlap_pixels": int(digit_ink.sum()) - image_ink,
        "stroke_overlap_pct": round(100 * (int(digit_ink.sum()) - image_ink) / image_ink, 4),
        "ink_lost_pct": round(100 * float(np.clip(per_class - in_maps, 0, None).sum() / digit_ink.sum()), 4),
    }
