"""Segmentation and classification metrics, computed from confusion matrices (notebooks 02 and 05).

Segmentation IoU is **pooled**: intersections and unions are summed over all evaluated pixels of all images
before dividing. ``mean_iou`` is the mean over the ten digit classes, background excluded; a class absent
from both truth and prediction has no IoU (NaN) and is left out of the mean.

- :func:`confusion_matrix`, :func:`per_class_iou`, :func:`scores_from_confusion`: the building blocks.
- :func:`segmentation_scores`, :func:`evaluate_segmentation`: the series' scores of class maps, of a model.
- :func:`per_image_iou`, :func:`digit_borders`, :func:`top_confusions`: where the errors are (notebook 08).
"""

from __future__ import annotations

import numpy as np

from .m2nist import BACKGROUND, N_CLASSES


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """int64 (n_classes, n_classes): rows = true class, columns = predicted class.

    Args:
        true, pred: integer arrays of the same shape (class maps (N, 64, 84), or labels (N,)).
    """
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(f"truth has shape {true.shape} but prediction {pred.shape}")
    for name, a in (("truth", true), ("prediction", pred)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} holds values outside 0..{n_classes - 1}: {a.min()}..{a.max()}")
    flat = true.astype(np.int64).ravel() * n_classes + pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU per class from a confusion matrix: TP / (TP + FP + FN); NaN where the union is empty."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore"):  # tp <= union, so only 0 / 0 divides by zero: NaN, as documented
        return tp / union


def scores_from_confusion(confusion: np.ndarray) -> dict[str, object]:
    """The series' segmentation report from an 11x11 pixel confusion matrix.

    Returns ``per_class_iou`` (10 floats, digits 0-9), ``mean_iou`` (their mean), ``background_iou``,
    ``digit_iou`` (any digit vs background, ignoring which digit) and ``pixel_accuracy``.
    """
    if confusion.shape != (N_CLASSES, N_CLASSES):
        raise ValueError(f"expected an 11x11 confusion matrix, got {confusion.shape}")
    iou = per_class_iou(confusion)
    digit = np.arange(N_CLASSES) != BACKGROUND
    binary = np.array(
        [
            [confusion[digit][:, digit].sum(), confusion[digit][:, ~digit].sum()],
            [confusion[~digit][:, digit].sum(), confusion[~digit][:, ~digit].sum()],
        ]
    )
    return {
        "per_class_iou": [float(v) for v in iou[:BACKGROUND]],
        "mean_iou": float(np.nanmean(iou[:BACKGROUND])),
        "background_iou": float(iou[BACKGROUND]),
        "digit_iou": float(per_class_iou(binary)[0]),
        "pixel_accuracy": float(np.trace(confusion) / confusion.sum()),
    }


def segmentation_scores(true_maps: np.ndarray, pred_maps: np.ndarray) -> dict[str, object]:
    """:func:`scores_from_confusion` for class maps uint8 (N, 64, 84), 10 = background."""
    return scores_from_confusion(confusion_matrix(true_maps, pred_maps))


def evaluate_segmentation(predict, images: np.ndarray, class_maps: np.ndarray, batch_size: int = 256) -> dict:
    """Run ``predict`` over a data set in batches and score it (notebook 05, ``evaluate`` command).

    Args:
        predict: float32 (B, 64, 84, 1) in [0, 1] -> class scores (B, 64, 84, 11) (numpy or tensor).
        images: uint8 (N, 64, 84). class_maps: uint8 (N, 64, 84), 10 = background.

    Returns:
        :func:`scores_from_confusion` plus ``n_images``. A model whose output is not (B, 64, 84, 11)
        raises ``ValueError``.
    """
    if len(images) != len(class_maps):
        raise ValueError(f"{len(images)} images but {len(class_maps)} masks")
    confusion = np.zeros((N_CLASSES, N_CLASSES), np.int64)
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size, ..., None].astype(np.float32) / 255.0
        scores = np.asarray(predict(batch))
        expected = (len(batch), *images.shape[1:], N_CLASSES)
        if scores.shape != expected:
            raise ValueError(f"the model's output has shape {scores.shape}; expected {expected}")
        confusion += confusion_matrix(class_maps[start : start + batch_size], scores.argmax(-1))
    return {**scores_from_confusion(confusion), "n_images": int(len(images))}


def per_image_iou(true_maps: np.ndarray, pred_maps: np.ndarray) -> np.ndarray:
    """Mean IoU of each image over the digit classes present in its truth or prediction: float (N,).

    Used to rank images from worst to best (notebook 08). An image with no digit anywhere scores 1.
    """
    scores = np.ones(len(true_maps))
    for i, (true, pred) in enumerate(zip(true_maps, pred_maps)):
        iou = per_class_iou(confusion_matrix(true, pred))[:BACKGROUND]
        if not np.all(np.isnan(iou)):
            scores[i] = np.nanmean(iou)
    return scores


def digit_borders(class_maps: np.ndarray) -> np.ndarray:
    """bool (N, H, W): digit pixels with at least one background pixel among their 4 neighbours."""
    background = np.pad(class_maps == BACKGROUND, ((0, 0), (1, 1), (1, 1)), constant_values=True)
    near = (
        background[:, :-2, 1:-1]
        | background[:, 2:, 1:-1]
        | background[:, 1:-1, :-2]
        | background[:, 1:-1, 2:]
    )
    return near & (class_maps != BACKGROUND)


def top_confusions(confusion: np.ndarray, k: int = 5) -> list[tuple[str, str, int]]:
    """The ``k`` largest off-diagonal entries as (true class, predicted class, pixels), names with 'bg'."""
    names = [str(c) for c in range(BACKGROUND)] + ["bg"]
    off = confusion.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:k]
    return [
        (names[i], names[j], int(off[i, j])) for i, j in zip(*np.unravel_index(order, off.shape)) if off[i, j]
    ]
