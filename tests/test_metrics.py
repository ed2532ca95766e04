"""Metrics against hand-computed cases (m2nist_utils.metrics, notebooks 02 and 05)."""

from __future__ import annotations

from m2nist_utils import metrics

import numpy as np
import pytest


def maps(*rows):
    return np.array([rows], dtype=np.uint8)


def test_confusion_matrix_counts():
    cm = metrics.confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), n_classes=3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]


def test_iou_by_hand():
    # Truth: two pixels of 3, two of 7, the rest background.
    # Prediction: one 3 right, one 3 called 7, one 7 missed.
    true = maps([3, 3, 7, 7, 10, 10])
    pred = maps([3, 7, 7, 10, 10, 10])
    scores = metrics.segmentation_scores(true, pred)
    iou = scores["per_class_iou"]
    assert iou[3] == pytest.approx(1 / 2)  # TP 1, FN 1
    assert iou[7] == pytest.approx(1 / 3)  # TP 1, FP 1, FN 1
    assert iou[10 - 10] != iou[10 - 10]  # digit 0 absent from truth and prediction: NaN
    assert scores["mean_iou"] == pytest.approx((1 / 2 + 1 / 3) / 2)  # only the classes that occur
    assert scores["background_iou"] == pytest.approx(2 / 3)  # TP 2, FP 1 (the missed 7)
    assert scores["digit_iou"] == pytest.approx(3 / 4)  # digit vs background: TP 3, FN 1
    assert scores["pixel_accuracy"] == pytest.approx(4 / 6)


def test_class_absent_from_truth_but_predicted_scores_zero():
    scores = metrics.segmentation_scores(maps([1, 10]), maps([2, 10]))
    assert scores["per_class_iou"][1] == 0 and scores["per_class_iou"][2] == 0
    assert scores["mean_iou"] == 0


def test_pooling_sums_before_dividing():
    # Image A: class 5 perfect on 1 pixel. Image B: class 5 with 1 TP and 3 FN.
    # Pooled: 2 / 5, not mean(1, 1/4).
    true = np.array([[5, 10, 10, 10], [5, 5, 5, 5]], np.uint8)
    pred = np.array([[5, 10, 10, 10], [5, 10, 10, 10]], np.uint8)
    assert metrics.segmentation_scores(true, pred)["per_class_iou"][5] == pytest.approx(2 / 5)


def test_perfect_prediction():
    true = np.random.default_rng(0).integers(0, 11, (4, 64, 84)).astype(np.uint8)
    scores = metrics.segmentation_scores(true, true)
    assert scores["mean_iou"] == 1 and scores["background_iou"] == 1 and scores["pixel_accuracy"] == 1


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(2,\) but prediction \(3,\)"):
        metrics.confusion_matrix(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="outside 0..10"):
        metrics.confusion_matrix(np.array([11]), np.array([0]))
    with pytest.raises(ValueError, match="11x11"):
        metrics.scores_from_confusion(np.zeros((10, 10)))
