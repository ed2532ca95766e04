"""The FCN's training data as a tf.data pipeline that streams, on every core (notebook 05).

Each batch is planned and drawn by TensorFlow ops inside a parallel ``Dataset.map``: which pool digits
(1..max_digits distinct ones per image), their distortion, their ink boxes, corners that keep the boxes
``gap`` pixels apart inside the 64x84 frame (the rule of :func:`m2nist_utils.m2nist.compose_images`), then
the pasting and the class maps. Every chunk of batches draws from a stateless random key made of the seed,
the epoch and the chunk's number, so the batches do not depend on which thread draws them or when.

- :func:`training_dataset`: batches (images, class maps) that ``training.train_fcn`` trains on.
- :func:`training_scenes`: the same batches with their plan (pool index, corner and ink box of each digit).
- :func:`distort_with`: the augmentation of ``training.distort_digits`` for given angles, scales and shears.
- :func:`measure_throughput`: images per second a dataset delivers.
"""

from __future__ import annotations

import time

import numpy as np

from ._tf import tf
from .clutter import Clutter, scatter_fragments
from .m2nist import BACKGROUND, HEIGHT, MAX_DIGITS, PIXEL_MAX, WIDTH, ink_boxes
from .mnist import DigitPool
from .stream import DIGIT, ROTATION, SCALE, SHEAR, sampling_rows

#: Corners tried per digit before the image's placement starts over, and how often it may start over
#: (the bounds of ``m2nist._place``, so that the placements follow the same distribution).
TRIES, RESTARTS = 50, 1000
#: Images drawn per parallel call (rounded down to whole batches).
CHUNK_IMAGES = 256
# Pixel values and class codes share one float channel while pasting: value + 256 * (label + 1) on ink.
# Ink boxes never overlap, so a canvas pixel sums at most one digit's entry and both parts decode exactly.
_SHIFT = 8
_CODE = float(1 << _SHIFT)
#: The number a chunk's key is folded with for its clutter: a stream apart from the scenes' own.
_CLUTTER_STREAM = 1 << 20


def training_dataset(
    pool: DigitPool,
    images_per_epoch: int,
    batch_size: int = 32,
    fresh: bool = True,
    seed: int = 0,
    distort: bool = False,
    max_digits: int = MAX_DIGITS,
    gap: int = 1,
    clutter: Clutter | None = None,
) -> tf.data.Dataset:
    """Training batches of images float32 (B, 64, 84, 1) in [0, 1] and class maps int32 (B, 64, 84).

    Class maps hold each pixel's digit, 10 for background. Streams from the first batch and draws batches
    in parallel. The cardinality is the number of steps per epoch, ceil(images_per_epoch / batch_size);
    the last batch holds the remainder.

    Args:
        pool: the digits to draw from (``images`` uint8 (M, 28, 28), ``labels`` uint8 (M,)).
        fresh: every pass over the dataset (Keras makes one per epoch) draws new scenes; with False every
            pass repeats the first one.
        seed: the same seed gives the same batches, in every run and at any parallelism.
        distort: rotate (up to 12 degrees), scale (10%) and shear (0.2) every placed digit afresh.
        max_digits, gap: each image holds 1..max_digits distinct pool digits, their ink boxes at least
            ``gap`` pixels apart, as in :func:`m2nist_utils.m2nist.compose_images`.
        clutter: fragments of the pool's digits on the background (``clutter.scatter_fragments``, NumPy in
            the parallel map, seeded apart from the scenes: the clean dataset's scenes, fragments added).
    """
    return _batches(
        pool, images_per_epoch, batch_size, fresh, seed, distort, max_digits, gap, plan=False, clutter=clutter
    )


def training_scenes(
    pool: DigitPool,
    images_per_epoch: int,
    batch_size: int = 32,
    fresh: bool = True,
    seed: int = 0,
    distort: bool = False,
    max_digits: int = MAX_DIGITS,
    gap: int = 1,
) -> tf.data.Dataset:
    """The batches of :func:`training_dataset` (same arguments) as dicts that also hold their plan.

    Keys, for a batch of B images and D = max_digits slots: ``images`` float32 (B, 64, 84, 1),
    ``class_maps`` int32 (B, 64, 84), ``sources`` int32 (B, D) pool index per slot (-1: empty slot),
    ``digits`` float32 (B, D, 28, 28) the grey levels pasted per slot (distorted ones with ``distort``),
    ``boxes`` int32 (B, D, 4) their ink boxes (top, left, height, width) and ``corners`` int32 (B, D, 2)
    where each box's top-left corner lands in the image.
    """
    return _batches(pool, images_per_epoch, batch_size, fresh, seed, distort, max_digits, gap, plan=True)


def _batches(
    pool, images_per_epoch, batch_size, fresh, seed, distort, max_digits, gap, plan, clutter=None
) -> tf.data.Dataset:
    _check_arguments(pool, images_per_epoch, batch_size, max_digits, gap)
    steps = -(-images_per_epoch // batch_size)
    # Each map call draws a chunk of whole batches: TensorFlow's cost per op call, not per pixel, dominates
    # a batch of 32, and a chunk of ~256 images draws about twice as many images per CPU second.
    chunk = batch_size * max(1, CHUNK_IMAGES // batch_size)
    digits = tf.constant(pool.images, tf.uint8)  # a quarter of float32's memory for a 60,000-digit pool
    labels = tf.constant(pool.labels, tf.int32)
    boxes = tf.constant(ink_boxes(pool.images), tf.int32)

    # Plain Python loops over slots unroll at tracing; autograph would only slow the tracing down.
    @tf.autograph.experimental.do_not_convert
    def draw(epoch, index):
        key = _fold(_fold(tf.constant([seed, 0], tf.int64), epoch), index)
        size = tf.cast(tf.minimum(tf.constant(chunk, tf.int64), images_per_epoch - index * chunk), tf.int32)
        batch = _draw_batch(digits, labels, boxes, key, size, distort, max_digits, gap, plan)
        return (
            batch if clutter is None else _cluttered(*batch, _fold(key, _CLUTTER_STREAM), pool, clutter, gap)
        )

    if fresh:
        # The epoch number lives in the pipeline, so each new iterator (one per Keras epoch) takes the next
        # one.
        with tf.init_scope():
            counter = tf.Variable(-1, dtype=tf.int64, trainable=False, name="training_dataset_epoch")
        epochs = tf.data.Dataset.range(1).map(lambda _: counter.assign_add(1))
    else:
        epochs = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    chunks = -(-images_per_epoch // chunk)
    indices = epochs.flat_map(lambda e: tf.data.Dataset.range(chunks).map(lambda i: (e, i)))
    # Every chunk but the last holds whole batches, so cutting chunks ends each epoch with the remainder.
    # Not Dataset.rebatch: a strategy's auto-sharding (OneDeviceStrategy's too) rewrites every rebatch into
    # a split by the number of replicas, and whole chunks then reached the model as batches.
    drawn = indices.map(draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = drawn.flat_map(_cut_into_batches(batch_size))
    # A known length lets Keras count steps per epoch instead of warning that the data "ran out".
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)


def distort_with(digits, angle, scale, shear) -> tf.Tensor:
    """Digits rotated by ``angle`` degrees, scaled and sheared about their centre, as uint8 grey levels.

    The transform of ``training.distort_digits`` (bilinear, rounded to whole grey levels) for given
    parameters. Args: digits (N, 28, 28) grey levels 0..255 (any numeric dtype); angle, scale, shear (N,).
    Returns float32 (N, 28, 28) holding whole numbers 0..255.
    """
    angle = tf.cast(angle, tf.float64) * (np.pi / 180)
    scale, shear = tf.cast(scale, tf.float64), tf.cast(shear, tf.float64)
    rows = sampling_rows(tf.cos(angle), tf.sin(angle), scale, shear)
    zeros = tf.zeros_like(rows[0])
    transforms = tf.cast(tf.stack([*rows, zeros, zeros], axis=1), tf.float32)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(digits, tf.float32)[..., None],
        transforms=transforms,
        output_shape=[DIGIT, DIGIT],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.clip_by_value(tf.round(warped[..., 0]), 0.0, PIXEL_MAX)


def measure_throughput(dataset: tf.data.Dataset, batches: int) -> float:
    """Images per second that ``dataset`` delivers over ``batches`` batches, after one warm-up batch.

    The dataset repeats when it has fewer batches; its elements are (images, class maps) batches.
    """
    iterator = iter(dataset.repeat())
    next(iterator)  # tracing and thread start-up are paid once per dataset, not per batch
    images, start = 0, time.perf_counter()
    for _ in range(batches):
        images += int(next(iterator)[0].shape[0])
    return images / (time.perf_counter() - start)


def _draw_batch(digits, labels, pool_boxes, key, size, distort, max_digits, gap, plan):
    """One batch of ``size`` scenes from the stateless random ``key``: (images, class maps) or, with
    ``plan``, the dict of :func:`training_scenes`."""
    k_count, k_pick, k_warp, k_place = tf.unstack(tf.random.experimental.stateless_split(key, 4))
    counts = tf.random.stateless_uniform([size], k_count, 1, max_digits + 1, tf.int32)
    active = tf.range(max_digits)[None, :] < counts[:, None]
    sources = _distinct_indices(tf.shape(digits)[0], size, max_digits, k_pick)
    # The heavy work (distortion, pasting) runs on the placed digits only, about 2/3 of the slots.
    slots = tf.where(active)
    placed = tf.gather_nd(sources, slots)
    ink = tf.cast(tf.gather(digits, placed), tf.float32)
    if distort:
        shape = [size, max_digits]
        angle = tf.random.stateless_uniform(shape, _fold(k_warp, 0), -ROTATION, ROTATION, tf.float64)
        scale = 1 + tf.random.stateless_uniform(shape, _fold(k_warp, 1), -SCALE, SCALE, tf.float64)
        shear = tf.random.stateless_uniform(shape, _fold(k_warp, 2), -SHEAR, SHEAR, tf.float64)
        ink = distort_with(ink, *(tf.gather_nd(p, slots) for p in (angle, scale, shear)))
        boxes = _ink_boxes(ink)
    else:
        boxes = tf.gather(pool_boxes, placed)
    all_boxes = tf.scatter_nd(slots, boxes, [size, max_digits, 4])
    corners = _place(all_boxes, active, k_place, gap)
    origin = tf.gather_nd(corners, slots) - boxes[:, :2]  # where each 28x28 digit's top-left pixel lands
    value = ink + tf.where(
        ink > 0, _CODE * tf.cast(tf.gather(labels, placed) + 1, tf.float32)[:, None, None], 0
    )
    canvas = _paste(value, origin, tf.cast(slots[:, 0], tf.int32), size)
    whole = tf.cast(canvas, tf.int32)
    code = tf.bitwise.right_shift(whole, _SHIFT)
    class_maps = (code + BACKGROUND) % (BACKGROUND + 1)  # code 0 (no ink) -> 10, code c -> digit c - 1
    images = (tf.cast(tf.bitwise.bitwise_and(whole, 255), tf.float32) / PIXEL_MAX)[..., None]
    if not plan:
        return images, class_maps
    return {
        "images": images,
        "class_maps": class_maps,
        "sources": tf.where(active, sources, -1),
        "digits": tf.scatter_nd(slots, ink, [size, max_digits, DIGIT, DIGIT]),
        "boxes": all_boxes,
        "corners": corners,
    }


def _cluttered(images, class_maps, key, pool, clutter, gap):
    """(images, class maps) with fragments on the images' background: NumPy, seeded by ``key``."""

    def scatter(images, class_maps, key):
        pixels = np.rint(images[..., 0] * PIXEL_MAX).astype(np.uint8)  # exact: images hold grey level / 255
        rng = np.random.default_rng(key.astype(np.uint64))
        scatter_fragments(pixels, class_maps != BACKGROUND, pool, clutter, rng, gap)
        return (pixels.astype(np.float32) / PIXEL_MAX)[..., None]

    cluttered = tf.numpy_function(scatter, [images, class_maps, key], tf.float32, stateful=False)
    return tf.ensure_shape(cluttered, images.shape), class_maps


def _distinct_indices(n, size, count, key) -> tf.Tensor:
    """int32 (size, count): per row, ``count`` distinct indices drawn uniformly from 0..n-1 in order."""
    chosen = []
    for k in range(count):
        # The k-th draw picks among the n - k indices not taken yet: skip past each taken one in order.
        index = tf.random.stateless_uniform([size], _fold(key, k), 0, n - k, tf.int32)
        if chosen:
            taken = tf.sort(tf.stack(chosen, axis=1), axis=1)
            for j in range(k):
                index += tf.cast(index >= taken[:, j], tf.int32)
        chosen.append(index)
    return tf.stack(chosen, axis=1)


def _ink_boxes(digits) -> tf.Tensor:
    """int32 (N, 4) (top, left, height, width) of float (N, 28, 28) digits, as ``m2nist.ink_boxes`` says."""
    # Rows and columns with ink side by side (N, 2, 28): one set of ops finds both spans.
    lines = tf.cast(
        tf.stack([tf.reduce_max(digits, axis=2), tf.reduce_max(digits, axis=1)], axis=1) > 0, tf.int32
    )
    first = tf.argmax(lines, axis=2, output_type=tf.int32)
    end = DIGIT - tf.argmax(lines[..., ::-1], axis=2, output_type=tf.int32)
    # An empty digit gets a 1x1 box at the centre, like m2nist.ink_boxes.
    has = tf.reduce_any(lines > 0, axis=2)
    return tf.concat([tf.where(has, first, DIGIT // 2), tf.where(has, end - first, 1)], axis=1)


def _place(boxes, active, key, gap) -> tf.Tensor:
    """int32 (B, D, 2) top-left corners of the ink boxes (B, D, 4), by the rule of ``m2nist._place``.

    Digits are placed in slot order, each at the first of ``TRIES`` uniform corners that keeps ``gap``
    pixels from the boxes already placed; an image where some digit finds no such corner starts over.
    """
    size, slots = tf.shape(boxes)[0], boxes.shape[1]
    h, w = boxes[..., 2], boxes[..., 3]
    # Per-slot columns (B, 1), cut once: slicing inside the loops below would multiply the tracing time.
    hs, ws = tf.unstack(h[..., None], axis=1), tf.unstack(w[..., None], axis=1)
    empty = tf.unstack(~active[..., None], axis=1)

    def attempt(n):
        u = tf.random.stateless_uniform([size, slots, TRIES, 2], _fold(key, n), dtype=tf.float64)
        room = tf.stack([HEIGHT - h + 1, WIDTH - w + 1], axis=-1)[:, :, None, :]
        tries = tf.minimum(tf.cast(u * tf.cast(room, tf.float64), tf.int32), room - 1)
        ys, xs = tf.unstack(tries[..., 0], axis=1), tf.unstack(tries[..., 1], axis=1)
        placed, ok = [], tf.ones([size, 1], tf.bool)
        for k in range(slots):
            y, x = ys[k], xs[k]
            free = tf.ones_like(y, tf.bool)
            for j, (py, px) in enumerate(placed):
                apart = (
                    (y + hs[k] + gap <= py)
                    | (py + hs[j] + gap <= y)
                    | (x + ws[k] + gap <= px)
                    | (px + ws[j] + gap <= x)
                )
                free &= apart | empty[j]
            first = tf.argmax(tf.cast(free, tf.int32), axis=1, output_type=tf.int32)[:, None]
            placed.append((tf.gather(y, first, batch_dims=1), tf.gather(x, first, batch_dims=1)))
            ok &= tf.reduce_any(free, axis=1, keepdims=True) | empty[k]
        corners = tf.stack(
            [tf.concat([py for py, _ in placed], 1), tf.concat([px for _, px in placed], 1)], -1
        )
        return corners, ok[:, 0]

    def retry(n, corners, ok):
        again, again_ok = attempt(n)
        return n + 1, tf.where(ok[:, None, None], corners, again), ok | again_ok

    start = (tf.constant(0, tf.int64), tf.zeros([size, slots, 2], tf.int32), tf.zeros([size], tf.bool))
    _, corners, ok = tf.while_loop(lambda n, _, ok: (n < RESTARTS) & ~tf.reduce_all(ok), retry, start)
    message = f"could not place up to {slots} digits {gap} px apart in {RESTARTS} tries; use fewer digits"
    with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(ok), [message])]):
        return tf.identity(corners)


def _cut_into_batches(batch_size: int):
    """A ``flat_map`` function: a chunk (tuple or dict of tensors, images first on axis 0) as batches of
    ``batch_size``, the last one shorter. Slices, one per batch: no copy per image."""

    def cut(*parts):
        chunk = parts if len(parts) > 1 else parts[0]  # a dict arrives as one argument
        size = tf.shape(tf.nest.flatten(chunk)[0], out_type=tf.int64)[0]
        starts = tf.data.Dataset.range(0, size, batch_size)
        return starts.map(lambda s: tf.nest.map_structure(lambda t: t[s : s + batch_size], chunk))

    return cut


def _fold(key, number):
    """A new stateless random key from ``key`` and a whole number: one stream per (key, number)."""
    return tf.random.experimental.stateless_fold_in(key, tf.cast(number, tf.int64))


def _paste(value, origin, image, size) -> tf.Tensor:
    """float32 (size, 64, 84): the sum of (N, 28, 28) digits, each moved so its top-left pixel lands at
    ``origin`` (N, 2) of image ``image`` (N,).

    A product with a 0/1 shift matrix moves each digit's rows along the image's width (exact for whole
    grey levels, and faster on a CPU than gathering pixels); adding its 28 rows into the image's rows does
    the rest. Rows that fall outside the frame hold no ink, so clamping them into the frame adds zeros.
    """
    cols = tf.range(DIGIT)[None, :, None] == tf.range(WIDTH)[None, None, :] - origin[:, 1, None, None]
    rows = value @ tf.cast(cols, tf.float32)
    at = tf.clip_by_value(origin[:, 0, None] + tf.range(DIGIT)[None, :], 0, HEIGHT - 1)
    where = tf.stack([tf.broadcast_to(image[:, None], tf.shape(at)), at], axis=-1)
    return tf.scatter_nd(where, rows, tf.stack([size, HEIGHT, WIDTH]))


def _check_arguments(pool: DigitPool, images_per_epoch: int, batch_size: int, max_digits: int, gap: int):
    images = np.asarray(pool.images)
    if images.ndim != 3 or images.shape[1:] != (DIGIT, DIGIT) or len(pool.labels) != len(images):
        raise ValueError(
            f"pool: expected images (M, 28, 28) and labels (M,), "
            f"got {images.shape} and {np.shape(pool.labels)}"
        )
    if not 1 <= max_digits <= 6:
        raise ValueError(f"max_digits must lie in 1..6 (6 fit a 64x84 image), got {max_digits}")
    if len(images) < max_digits:
        raise ValueError(f"pool: {len(images)} digits cannot fill {max_digits} distinct slots")
    if images_per_epoch < 1 or batch_size < 1 or gap < 0:
        raise ValueError(
            "need images_per_epoch >= 1, batch_size >= 1, gap >= 0, "
            f"got {images_per_epoch}, {batch_size}, {gap}"
        )
