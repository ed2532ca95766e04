"""M2NIST: 64x84 images with 1-3 non-overlapping MNIST digits and their 11-channel masks.

Introduced in notebook 01. Array conventions used throughout the series:

- images: ``uint8 (N, 64, 84)``, 0..255;
- masks: ``uint8 (N, 64, 84, 11)`` one-hot, channel k = digit k, channel 10 = background;
- class maps: ``uint8 (N, 64, 84)``, the same information as one label per pixel, 10 = background.

A pixel belongs to a digit when that digit's MNIST image is non-zero there ("ink"); all other pixels are
background. Digits are placed untransformed so that their ink bounding boxes never touch, which keeps
strokes from overlapping; ``clutter`` adds fragments of other digits on the background (notebook 09), and
``article_generator`` re-implements the article's generator, for measuring it (notebook 01).

Contents: the facts (:data:`HEIGHT`, :data:`WIDTH`, :data:`N_CLASSES`, :data:`BACKGROUND`,
:data:`MAX_DIGITS`, :data:`PIXEL_MAX`, :func:`to_input`); the generator (:class:`Split`, :func:`ink_boxes`,
:func:`compose_images`, :func:`place_boxes`; :class:`Clutter` and :data:`CLUTTERED` from ``clutter``); the
format (:func:`to_one_hot`, :func:`to_class_map`, :func:`save_m2nist`, :func:`load_m2nist`); checks and
statistics (:func:`check_invariants`, :func:`dataset_stats`, :func:`generator_stats`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .arrays import as_uint8, load_npy
from .clutter import CLUTTERED, Clutter, grow, scatter_fragments  # noqa: F401 (m2nist.Clutter, .CLUTTERED)
from .files import atomic_save_folder, folder_identity
from .mnist import DigitPool

HEIGHT, WIDTH = 64, 84
N_CLASSES = 11
BACKGROUND = 10
MAX_DIGITS = 3
#: Grey level of full ink: networks read pixels as grey level / PIXEL_MAX, in [0, 1].
PIXEL_MAX = 255.0


def to_input(images: np.ndarray) -> np.ndarray:
    """Network input float32 (..., 1) in [0, 1] for images uint8 (...), e.g. (N, 64, 84) or (N, 28, 28)."""
    return np.asarray(images)[..., None].astype(np.float32) / PIXEL_MAX


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
    clutter: Clutter | None = None,
) -> Split:
    """Draw M2NIST images from a pool of MNIST digits.

    Args:
        pool: the digits to draw from (``images`` uint8 (M, 28, 28), ``labels`` uint8 (M,)).
        n_images: how many images to make.
        max_digits, min_digits: each image holds a uniformly drawn number of digits in this range.
        seed: the same seed and pool give the same images.
        gap: the least number of background pixels between the ink boxes of two digits.
        clutter: fragments of other digits on the background (:class:`Clutter`), or none; the digits and
            masks stay those of the same seed without.

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
    if clutter is not None:
        # A generator of its own: clutter leaves the digits' draws (and so the clean images) as they are.
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        scatter_fragments(images, class_maps != BACKGROUND, pool, clutter, rng, gap)
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
    class_maps = np.asarray(class_maps)
    if class_maps.dtype.kind not in "ui":
        raise ValueError(f"class maps must be integers 0..{N_CLASSES - 1}, got dtype {class_maps.dtype}")
    # A negative class would index np.eye from the end and pass as background.
    if class_maps.size and (class_maps.min() < 0 or class_maps.max() >= N_CLASSES):
        raise ValueError(
            f"class maps must hold values 0..{N_CLASSES - 1}, got {class_maps.min()}..{class_maps.max()}"
        )
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
        # asarray, not astype: a copy of 10,000 masks is another 600 MB.
        np.save(tmp / "combined.npy", np.asarray(images, np.uint8))
        np.save(tmp / "segmented.npy", np.asarray(masks, np.uint8))

    atomic_save_folder(folder, write, allowed=("combined.npy", "segmented.npy"))


def load_m2nist(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the public M2NIST format; returns images uint8 (N, 64, 84) and masks uint8 (N, 64, 84, 11).

    Nothing is trusted: each header is checked against its file's size before anything is allocated, values
    must convert to uint8 without loss (float images scaled to 0..1, or NaN, are refused, not cast to
    black), and every mask pixel must be one-hot. Errors are ``ValueError``/``FileNotFoundError`` naming
    the file.
    """
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
    _check_one_hot(masks, folder / "segmented.npy")
    return images, masks


def _load_npy(path: Path, tail: tuple[int, ...]) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"M2NIST file not found: {path}")
    array = load_npy(path)
    if array.ndim != len(tail) + 1 or array.shape[1:] != tail:
        raise ValueError(f"{path}: expected shape (N, {', '.join(map(str, tail))}), got {array.shape}")
    return as_uint8(array, str(path), "grey levels 0..255" if len(tail) == 2 else "one-hot masks of 0 and 1")


def _check_one_hot(masks: np.ndarray, path: Path) -> None:
    """Refuse masks (N, 64, 84, 11) where a pixel has no channel set, several, or a value other than 0/1."""
    if masks.size and masks.max() > 1:
        raise ValueError(f"{path}: masks are not one-hot: values up to {masks.max()}; expected 0 or 1")
    per_pixel = masks.sum(axis=-1, dtype=np.uint8)
    bad = per_pixel != 1
    if bad.any():
        n, y, x = np.argwhere(bad)[0]
        raise ValueError(
            f"{path}: masks are not one-hot: {int((per_pixel == 0).sum()):,} pixels have no channel set and "
            f"{int((per_pixel > 1).sum()):,} several (first: image {n}, row {y}, column {x}); expected "
            f"exactly one 1 among the {N_CLASSES} channels"
        )


def _check_pair(images: np.ndarray, masks: np.ndarray, where: str) -> None:
    if images.ndim != 3 or images.shape[1:] != (HEIGHT, WIDTH):
        raise ValueError(f"{where}: images must have shape (N, {HEIGHT}, {WIDTH}), got {images.shape}")
    if masks.shape != images.shape + (N_CLASSES,):
        raise ValueError(
            f"{where}: masks must have shape {images.shape + (N_CLASSES,)} to match the images, "
            f"got {masks.shape}"
        )


# ----------------------------------------------------------------------------------------------------
# Checks and statistics
# ----------------------------------------------------------------------------------------------------
def check_invariants(data: Split, pool: DigitPool, clutter: bool = False) -> dict[str, bool]:
    """The promises of the format, checked on real data (notebook 01 prints them).

    - ``one_hot``: the 11-channel mask has exactly one 1 per pixel;
    - ``background_is_complement``: background exactly where no digit has ink;
    - ``no_overlap``: every placed digit keeps all its ink pixels, none lost to a neighbour;
    - ``labels_match``: each mask shows exactly the digit classes placed in the image;
    - ``digit_count_in_range``: 1 to 3 digits per image.

    With ``clutter`` (fragments on the background): ``digits_are_ink`` and ``clutter_apart_from_digits`` (no
    background ink touches a digit) replace ``background_is_complement``; ``no_overlap`` counts digit ink.
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
    digit = class_maps != BACKGROUND
    if clutter:
        ink_rules = {"digits_are_ink": bool((images[digit] > 0).all())}
        ink_rules["clutter_apart_from_digits"] = not bool(((images > 0) & ~digit & grow(digit, 1)).any())
        digit_ink = (images > 0) & digit
    else:
        ink_rules = {"background_is_complement": bool(((class_maps == BACKGROUND) == (images == 0)).all())}
        digit_ink = images > 0
    return {
        "one_hot": bool((masks.sum(axis=-1) == 1).all()),
        **ink_rules,
        "no_overlap": bool((digit_ink.sum(axis=(1, 2)) == expected_ink).all()),
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


def generator_stats(data: Split, pool: DigitPool) -> dict[str, object]:
    """Our generator measured as ``article_generator_stats`` measures the article's (notebook 01).

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
