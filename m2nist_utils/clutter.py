"""Clutter: fragments of other digits scattered on an image's background (cluttered MNIST, Mnih et al. 2014).

Introduced in notebook 09; ``m2nist.compose_images(..., clutter=...)`` uses it, and ``m2nist`` re-exports
:class:`Clutter` and :data:`CLUTTERED`.

- :class:`Clutter`, :data:`CLUTTERED`: how many fragments of what size; the chapter's setting.
- :func:`scatter_fragments`: paste them on the background of images, in place; :func:`grow`: a mask grown by
  a number of pixels (also the invariant that no fragment touches a digit).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .mnist import DigitPool


class Clutter(NamedTuple):
    """Fragments of other digits scattered on the background (cluttered MNIST, Mnih et al. 2014).

    Each fragment is a ``size`` x ``size`` crop, centred on an ink pixel, of a digit drawn from the same
    pool as the image's digits (so a test split's clutter never comes from training digits). It lands only
    on background, ``gap`` or more background pixels away from every digit's ink, and stays labelled
    background: it is ink but not a digit, which no ink threshold can tell apart.
    """

    fragments: int = 6
    size: int = 8


#: The clutter of notebook 09: six fragments of 8x8 pixels per image (cluttered MNIST's patch size).
CLUTTERED = Clutter(6, 8)


def scatter_fragments(
    images: np.ndarray,
    digits: np.ndarray,
    pool: DigitPool,
    clutter: Clutter,
    rng: np.random.Generator,
    gap: int = 1,
) -> None:
    """Paste ``clutter.fragments`` crops of pool digits on each image's background, in place.

    A fragment goes where its whole square is background, ``gap`` or more background pixels from any digit
    ink and never touching one even with ``gap`` 0 (a stroke touching a digit would change the digit's
    shape); its corner is drawn uniformly among the places that allow it, and an image without one gets no
    fragment. Fragments may overlap one another (the brighter pixel wins). ``digits`` (bool, the shape of
    ``images``) marks the digit pixels: ``class_maps != BACKGROUND``.
    """
    if clutter.fragments < 0 or not 1 <= clutter.size <= 28:
        raise ValueError(f"clutter needs fragments >= 0 and a size of 1 to 28 pixels, got {tuple(clutter)}")
    size = clutter.size
    for image, digit in zip(images, digits):
        near_digit = grow(digit, max(gap, 1))
        blocked = _box_any(near_digit, size)
        free = np.argwhere(~blocked)
        if len(free) == 0:
            continue
        for _ in range(clutter.fragments):
            y, x = free[rng.integers(len(free))]
            crop = _fragment(pool.images[rng.integers(len(pool.images))], size, rng)
            np.maximum(image[y : y + size, x : x + size], crop, out=image[y : y + size, x : x + size])


def _fragment(digit: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` x ``size`` crop of a 28x28 digit, centred (where the frame allows) on one ink pixel."""
    ink = np.argwhere(digit > 0)
    y, x = ink[rng.integers(len(ink))] if len(ink) else (14, 14)
    top = int(np.clip(y - size // 2, 0, 28 - size))
    left = int(np.clip(x - size // 2, 0, 28 - size))
    return digit[top : top + size, left : left + size]


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` (..., H, W) grown by ``radius`` pixels in every direction of its last two axes (a square)."""
    grown = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            grown |= _shifted(mask, dy, dx)
    return grown


def _shifted(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _box_any(mask: np.ndarray, size: int) -> np.ndarray:
    """For each top-left corner (y, x) of a ``size`` square inside ``mask``: any True in the square."""
    table = np.pad(mask.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    return sums > 0
