"""The FCN's training data on any Keras backend: NumPy composition and distortion as a ``PyDataset``.

The ``tf.data`` pipeline (``pipeline``) is TensorFlow's; this stream is what JAX and PyTorch train on, and it
needs no TensorFlow. It draws what the pipeline draws, in a simpler order: each epoch distorts every digit of
the pool once (the pipeline distorts each placed copy of a digit on its own), then composes the epoch's
images with ``m2nist.compose_images``, the generator of the published files.

- :func:`sampling_rows`, :func:`warp_digits`: the distortion's affine map, and digits rotated, scaled and
  sheared with it (the transform of ``pipeline.distort_with``).
- :func:`distort_digits`: every digit of a pool distorted with freshly drawn parameters.
- :class:`TrainingStream`: batches of (images, class maps), fresh images every epoch.
"""

from __future__ import annotations

import math

import numpy as np

from ._keras import keras
from .m2nist import MAX_DIGITS, PIXEL_MAX, Clutter, compose_images, to_input
from .mnist import DigitPool

#: Side of an MNIST digit, in pixels.
DIGIT = 28
#: The distortion's ranges: rotation (degrees), scale, shear (``pipeline`` draws from the same).
ROTATION, SCALE, SHEAR = 12.0, 0.1, 0.2


def sampling_rows(cos, sin, scale, shear) -> tuple:
    """(a0, a1, a2, b0, b1, b2): output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2).

    The rotation (its cosine and sine), scale and shear about the digit's centre (13.5, 13.5), in arithmetic
    alone: NumPy arrays (:func:`warp_digits`) and TensorFlow tensors (``pipeline.distort_with``) share it.
    """
    a0, a1 = cos / scale, (shear * cos - sin) / scale
    b0, b1 = sin / scale, (cos + shear * sin) / scale
    centre = (DIGIT - 1) / 2
    return a0, a1, centre * (1 - a0 - a1), b0, b1, centre * (1 - b0 - b1)


def warp_digits(digits: np.ndarray, angle, scale, shear) -> np.ndarray:
    """Digits rotated by ``angle`` degrees, scaled and sheared about their centre, as whole grey levels.

    Bilinear sampling with zeros outside the digit, rounded: the arithmetic of TensorFlow's
    ``ImageProjectiveTransformV3`` (``pipeline.distort_with``) in float32, in NumPy.
    Args: digits (N, 28, 28) grey levels 0..255; angle, scale, shear (N,). Returns uint8 (N, 28, 28).
    """
    angle = np.asarray(angle, np.float64) * (np.pi / 180)
    scale, shear = np.asarray(scale, np.float64), np.asarray(shear, np.float64)
    rows = sampling_rows(np.cos(angle), np.sin(angle), scale, shear)
    a0, a1, a2, b0, b1, b2 = (v.astype(np.float32)[:, None, None] for v in rows)
    y, x = np.mgrid[:DIGIT, :DIGIT].astype(np.float32)
    source_x = a0 * x + a1 * y + a2
    source_y = b0 * x + b1 * y + b2
    x0, y0 = np.floor(source_x), np.floor(source_y)
    padded = np.pad(np.asarray(digits, np.float32), [(0, 0), (1, 1), (1, 1)])  # zeros outside

    def read(row, col):
        inside = (row >= -1) & (row <= DIGIT) & (col >= -1) & (col <= DIGIT)
        row = np.clip(row, -1, DIGIT).astype(np.int64) + 1
        col = np.clip(col, -1, DIGIT).astype(np.int64) + 1
        return np.where(inside, padded[np.arange(len(padded))[:, None, None], row, col], 0.0)

    top = (x0 + 1 - source_x) * read(y0, x0) + (source_x - x0) * read(y0, x0 + 1)
    bottom = (x0 + 1 - source_x) * read(y0 + 1, x0) + (source_x - x0) * read(y0 + 1, x0 + 1)
    warped = (y0 + 1 - source_y) * top + (source_y - y0) * bottom
    return np.clip(np.round(warped), 0, PIXEL_MAX).astype(np.uint8)


def distort_digits(pool: DigitPool, seed, strength: float = 1.0) -> DigitPool:
    """The pool's digits, each slightly rotated (up to 12 degrees), scaled (10%) and sheared (0.2).

    ``seed``: anything ``np.random.default_rng`` takes. Training-time augmentation only: the test images
    keep their digits untransformed (notebook 05).
    """
    rng = np.random.default_rng(seed)
    n = len(pool.images)
    angle = rng.uniform(-ROTATION, ROTATION, n) * strength
    scale = 1 + rng.uniform(-SCALE, SCALE, n) * strength
    shear = rng.uniform(-SHEAR, SHEAR, n) * strength
    return DigitPool(warp_digits(pool.images, angle, scale, shear), pool.labels)


class TrainingStream(keras.utils.PyDataset):
    """Batches of images float32 (B, 64, 84, 1) in [0, 1] and class maps int32 (B, 64, 84), on any backend.

    Args:
        pool: the training digits.
        images_per_epoch, batch_size: ``ceil(images_per_epoch / batch_size)`` batches per epoch.
        fresh: new images every epoch (else the first epoch's images again).
        seed: the same seed gives the same stream; epoch e draws from ``(seed, e)``.
        distort: distort the pool's digits afresh every epoch (:func:`distort_digits`).
        clutter: fragments of the pool's digits on the background (:class:`m2nist.Clutter`), or none.
    """

    def __init__(
        self,
        pool: DigitPool,
        images_per_epoch: int,
        batch_size: int = 32,
        fresh: bool = True,
        seed: int = 0,
        distort: bool = False,
        max_digits: int = MAX_DIGITS,
        gap: int = 1,
        clutter: Clutter | None = None,
    ):
        super().__init__()
        self.pool, self.images_per_epoch, self.batch_size = pool, images_per_epoch, batch_size
        self.fresh, self.seed, self.distort = fresh, seed, distort
        self.max_digits, self.gap, self.clutter = max_digits, gap, clutter
        self.epoch = 0
        self._draw()

    def _draw(self) -> None:
        epoch = self.epoch if self.fresh else 0
        pool = distort_digits(self.pool, (self.seed, epoch, 1)) if self.distort else self.pool
        split = compose_images(
            pool,
            self.images_per_epoch,
            max_digits=self.max_digits,
            seed=(self.seed, epoch),
            gap=self.gap,
            clutter=self.clutter,
        )
        self.images, self.class_maps = split.images, split.class_maps

    def __len__(self) -> int:
        return math.ceil(self.images_per_epoch / self.batch_size)

    def __getitem__(self, index: int):
        batch = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return to_input(self.images[batch]), self.class_maps[batch].astype(np.int32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        if self.fresh:
            self._draw()
