"""Metrics against hand-computed cases (m2nist_utils.metrics, notebooks 02 and 05)."""

from __future__ import annotations

import warnings

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


def test_per_image_iou_by_hand():
    true = np.full((4, 2, 3), 10, np.uint8)
    pred = true.copy()
    # Image 0: perfect on a 3 of two pixels.  Image 1: 5 (two pixels) half found, 6 predicted but absent.
    true[0, 0, :2] = pred[0, 0, :2] = 3
    true[1, 0, :2], pred[1, 0, 0], pred[1, 1, 0] = 5, 5, 6
    # Image 2: a 1 called 2: both classes score 0.  Image 3: no digit in truth or prediction.
    true[2, 1, 1], pred[2, 1, 1] = 1, 2
    scores = metrics.per_image_iou(true, pred)
    # Image 1: IoU(5) = 1 / 2, IoU(6) = 0 / 1; background is not averaged in.
    assert scores.tolist() == pytest.approx([1.0, 1 / 4, 0.0, 1.0])
    assert np.argsort(scores, kind="stable")[:2].tolist() == [2, 1]  # worst first, as notebook 08 ranks


def test_digit_borders_by_hand():
    class_maps = np.full((1, 5, 6), 10, np.uint8)
    class_maps[0, 1:4, 1:4] = 8  # a 3x3 square of 8 ...
    class_maps[0, 2, 2] = 5  # ... around a 5, whose neighbours are all digits: not a border
    class_maps[0, 0:2, 5] = 2  # a stroke of 2 against the right edge, background on its left
    expected = np.zeros((5, 6), bool)
    expected[1:4, 1:4] = True
    expected[2, 2] = False
    expected[0:2, 5] = True
    got = metrics.digit_borders(class_maps)
    assert got.shape == (1, 5, 6) and got.dtype == bool
    assert np.array_equal(got[0], expected), got[0].astype(int)
    # The frame counts as background: a digit filling the image is bordered by its outer ring.
    full = metrics.digit_borders(np.ones((1, 4, 5), np.uint8))[0]
    ring = np.ones((4, 5), bool)
    ring[1:-1, 1:-1] = False
    assert np.array_equal(full, ring)


def test_top_confusions_by_hand():
    confusion = np.zeros((11, 11), np.int64)
    np.fill_diagonal(confusion, 1000)  # correct pixels never count
    confusion[3, 5], confusion[10, 7], confusion[4, 9], confusion[9, 10] = 35, 90, 40, 7
    assert metrics.top_confusions(confusion, k=3) == [("bg", "7", 90), ("4", "9", 40), ("3", "5", 35)]
    # Fewer errors than k: only the real ones, no zero entries.
    assert metrics.top_confusions(confusion, k=10) == [
        ("bg", "7", 90),
        ("4", "9", 40),
        ("3", "5", 35),
        ("9", "bg", 7),
    ]


def test_hand_written_iou_agrees_with_keras():
    import keras

    rng = np.random.default_rng(0)
    true = rng.integers(0, 11, (6, 64, 84)).astype(np.uint8)
    pred = np.where(rng.random(true.shape) < 0.6, true, rng.integers(0, 11, true.shape)).astype(np.uint8)
    pred[pred == 4] = 10  # a class never predicted
    true[true == 2], pred[pred == 2] = 10, 10  # a class absent from both: no IoU at all
    ours = metrics.per_class_iou(metrics.confusion_matrix(true, pred))
    for c in range(11):
        reference = keras.metrics.IoU(num_classes=11, target_class_ids=[c])
        reference.update_state(true.ravel(), pred.ravel())
        if c == 2:
            assert np.isnan(ours[c])  # keras calls an empty class 0; ours leaves it out of the mean
        else:
            assert ours[c] == pytest.approx(float(reference.result()), abs=1e-6), c
    assert ours[4] == 0


def test_segmentation_scores_agree_with_keras():
    import keras

    rng = np.random.default_rng(1)
    true = rng.integers(0, 11, (4, 64, 84)).astype(np.uint8)
    true[true == 6] = 10  # a digit class absent from the truth, sometimes predicted: IoU 0, in the mean
    pred = np.where(rng.random(true.shape) < 0.7, true, rng.integers(0, 11, true.shape)).astype(np.uint8)
    true[true == 8], pred[pred == 8] = 10, 10  # absent from both: left out of the mean, by keras too

    def keras_iou(t, p, num_classes, ids):
        metric = keras.metrics.IoU(num_classes=num_classes, target_class_ids=ids)
        metric.update_state(t.ravel(), p.ravel())
        return float(metric.result())

    scores = metrics.segmentation_scores(true, pred)
    assert scores["mean_iou"] == pytest.approx(keras_iou(true, pred, 11, list(range(10))), abs=1e-6)
    assert scores["background_iou"] == pytest.approx(keras_iou(true, pred, 11, [10]), abs=1e-6)
    digit_iou = keras_iou((true < 10).astype(int), (pred < 10).astype(int), 2, [1])
    assert scores["digit_iou"] == pytest.approx(digit_iou, abs=1e-6)
    assert scores["per_class_iou"][6] == 0 and np.isnan(scores["per_class_iou"][8])


def test_top_confusions_gives_five_by_default():
    confusion = np.zeros((11, 11), np.int64)
    for i in range(7):
        confusion[i, i + 1] = 10 + i
    assert [count for _, _, count in metrics.top_confusions(confusion)] == [16, 15, 14, 13, 12]


def test_digit_iou_counts_digit_pixels_lost_and_background_taken_separately():
    confusion = np.zeros((11, 11), np.int64)
    confusion[3, 3], confusion[3, 10], confusion[10, 3], confusion[10, 10] = 60, 30, 10, 900
    confusion[3, 5] = 20  # a digit read as another digit is still a digit pixel
    # digit vs background: 80 digit pixels found, 30 lost to background, 10 of background taken.
    assert metrics.scores_from_confusion(confusion)["digit_iou"] == pytest.approx(80 / (80 + 30 + 10))


class RecordingPredictor:
    """Predicts each pixel's class from its grey level (bright: digit 1, dark: background) and records the
    batches it was given."""

    def __init__(self):
        self.batches = []

    def __call__(self, batch):
        self.batches.append(batch)
        scores = np.zeros((*batch.shape[:3], 11), np.float32)
        scores[..., 1] = batch[..., 0] > 0.5
        scores[..., 10] = 0.5
        return scores


def test_evaluate_segmentation_feeds_scaled_float32_batches_and_pools_all_of_them():
    images = np.zeros((5, 64, 84), np.uint8)
    images[:, :10, :10] = 255
    images[:, 10:20, :10] = 128  # 128/255 > 0.5: predicted digit 1
    truth = np.full((5, 64, 84), 10, np.uint8)
    truth[:, :20, :10] = 1
    truth[4, :20, :10] = 2  # the last image's digit is a 2: only it is wrong
    predict = RecordingPredictor()
    scores = metrics.evaluate_segmentation(predict, images, truth, batch_size=2)
    assert [len(b) for b in predict.batches] == [2, 2, 1]
    assert all(b.dtype == np.float32 and b.shape[1:] == (64, 84, 1) for b in predict.batches)
    assert np.array_equal(np.concatenate(predict.batches)[..., 0], images / np.float32(255))
    # Digit 1: 4 images right, the fifth's 200 pixels predicted 1 where the truth is 2.
    assert scores["per_class_iou"][1] == pytest.approx(800 / 1000)
    assert scores["n_images"] == 5 and scores["pixel_accuracy"] == pytest.approx(1 - 200 / (5 * 64 * 84))


def test_evaluate_segmentation_predicts_256_images_at_a_time_by_default():
    images = np.zeros((300, 64, 84), np.uint8)
    truth = np.full((300, 64, 84), 10, np.uint8)
    images[:, :5, :5], truth[:, :5, :5] = 255, 1
    predict = RecordingPredictor()
    assert metrics.evaluate_segmentation(predict, images, truth)["per_class_iou"][1] == 1.0
    assert [len(b) for b in predict.batches] == [256, 44]


def test_evaluate_segmentation_names_both_counts_when_they_differ():
    with pytest.raises(ValueError, match=r"^3 images but 2 masks$"):
        metrics.evaluate_segmentation(
            RecordingPredictor(), np.zeros((3, 64, 84), np.uint8), np.zeros((2, 64, 84), np.uint8)
        )


def test_an_absent_class_is_nan_without_a_warning():
    confusion = np.zeros((11, 11), np.int64)
    confusion[10, 10] = 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iou = metrics.per_class_iou(confusion)
    assert np.isnan(iou[:10]).all() and iou[10] == 1.0


@pytest.mark.parametrize(
    "true, pred, message",
    [
        ([0, 11], [0, 1], r"^truth holds values outside 0\.\.10: 0\.\.11$"),
        ([0, 1], [-1, 1], r"^prediction holds values outside 0\.\.10: -1\.\.1$"),
        ([0, 1], [0], r"^truth has shape \(2,\) but prediction \(1,\)$"),
    ],
)
def test_confusion_matrix_names_the_bad_input(true, pred, message):
    with pytest.raises(ValueError, match=message):
        metrics.confusion_matrix(np.array(true), np.array(pred))
