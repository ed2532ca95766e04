"""The original article's M2NIST generator, re-implemented for measurement only (notebook 01).

- :class:`ArticleDraw`: what it drew, with everything needed to measure it.
- :func:`compose_like_article`: its placement rule (digits dropped, strokes overlapping, ink wiped).
- :func:`article_generator_stats`: what that rule drops, overlaps and wipes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .m2nist import HEIGHT, WIDTH
from .mnist import DigitPool


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
