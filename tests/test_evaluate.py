"""The evaluate command on good and bad input (m2nist_utils.__main__, notebook 05)."""

from __future__ import annotations

import json

from m2nist_utils import artifacts, freeze, m2nist, metrics
from m2nist_utils.__main__ import main as cli

import keras
import numpy as np
import pytest


def tiny_segmenter(n_classes: int = 11) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 84, 1), name="image")
    outputs = keras.layers.Conv2D(n_classes, 3, padding="same", activation="softmax")(inputs)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, pools):
    folder = tmp_path_factory.mktemp("m2nist")
    data = m2nist.compose_images(pools["test"], 20, seed=0)
    m2nist.save_m2nist(folder, data.images, m2nist.to_one_hot(data.class_maps))
    return folder


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    model = tiny_segmenter()
    artifacts.save_model(model, folder / "fcn.keras")
    freeze.freeze_model(model, folder / "fcn_frozen.pb", output_name="probabilities", pbtxt=False)
    return folder, model


def run(capsys, *args):
    status = cli(["evaluate", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("name", ["fcn.keras", "fcn_frozen.pb"])
def test_evaluate_prints_one_json_object(capsys, data_dir, model_files, name):
    folder, model = model_files
    status, out, err = run(capsys, "--model", folder / name, "--data", data_dir)
    assert status == 0, err
    report = json.loads(out)
    assert set(report) == {
        "per_class_iou",
        "mean_iou",
        "background_iou",
        "digit_iou",
        "pixel_accuracy",
        "n_images",
        "params",
    }
    assert len(report["per_class_iou"]) == 10 and report["n_images"] == 20
    assert report["params"] == model.count_params() == 11 * 9 + 11
    # The scores are the model's: its own argmax against the masks, rounded to 4 decimals.
    images, masks = m2nist.load_m2nist(data_dir)
    predicted = model.predict(images[..., None].astype(np.float32) / 255, verbose=0).argmax(-1)
    assert report["pixel_accuracy"] == round(float((predicted == m2nist.to_class_map(masks)).mean()), 4)


def test_keras_and_frozen_agree(capsys, data_dir, model_files):
    folder, _ = model_files
    keras_report = json.loads(run(capsys, "--model", folder / "fcn.keras", "--data", data_dir)[1])
    frozen_report = json.loads(run(capsys, "--model", folder / "fcn_frozen.pb", "--data", data_dir)[1])
    assert keras_report == frozen_report


def test_perfect_predictor_scores_one(data_dir):

    images, masks = m2nist.load_m2nist(data_dir)
    scores = metrics.evaluate_segmentation(
        lambda x: masks[: len(x)].astype(np.float32), images[:8], m2nist.to_class_map(masks[:8])
    )
    assert scores["mean_iou"] == scores["background_iou"] == scores["pixel_accuracy"] == 1


def bad_dir(tmp_path, images, masks):
    tmp_path.mkdir(exist_ok=True)
    np.save(tmp_path / "combined.npy", images)
    np.save(tmp_path / "segmented.npy", masks)
    return tmp_path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nowhere", "combined.npy"),
        (
            lambda p: bad_dir(p, np.zeros((2, 64, 84), np.uint8), np.zeros((2, 64, 84, 10), np.uint8)),
            "segmented.npy",
        ),
        (
            lambda p: bad_dir(p, np.zeros((2, 28, 28), np.uint8), np.zeros((2, 64, 84, 11), np.uint8)),
            "(N, 64, 84)",
        ),
        (
            lambda p: bad_dir(p, np.zeros((3, 64, 84), np.uint8), np.zeros((2, 64, 84, 11), np.uint8)),
            "3 images",
        ),
    ],
    ids=["missing", "channels", "image-shape", "count"],
)
def test_bad_data_gives_one_line_and_status_2(capsys, tmp_path, model_files, make, message):
    folder, _ = model_files
    status, out, err = run(capsys, "--model", folder / "fcn.keras", "--data", make(tmp_path / "data"))
    assert status == 2 and out == ""
    assert err.startswith("error:") and message in err and err.count("\n") == 1


def test_wrong_model_output_is_refused(capsys, tmp_path, data_dir):
    artifacts.save_model(tiny_segmenter(10), tmp_path / "ten.keras")
    status, _, err = run(capsys, "--model", tmp_path / "ten.keras", "--data", data_dir)
    assert status == 2 and "expected (20, 64, 84, 11)" in err and err.count("\n") == 1


def test_missing_or_foreign_model(capsys, tmp_path, data_dir, model_files):
    status, _, err = run(capsys, "--model", tmp_path / "none.keras", "--data", data_dir)
    assert status == 2 and "none.keras" in err
    folder, _ = model_files
    freeze.freeze_model(tiny_segmenter(), tmp_path / "other.pb", output_name="logits", pbtxt=False)
    status, _, err = run(capsys, "--model", tmp_path / "other.pb", "--data", data_dir)
    assert status == 2 and "probabilities" in err and err.count("\n") == 1
    (tmp_path / "model.h5").write_bytes(b"")
    status, _, err = run(capsys, "--model", tmp_path / "model.h5", "--data", data_dir)
    assert status == 2 and ".keras" in err


def test_frozen_params_equal_keras_with_layer_constants(capsys, data_dir, tmp_path):
    # Rescaling's scale and offset are float constants of the frozen graph, but no parameters.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 84, 1), name="image")
    x = keras.layers.Rescaling(2.0, offset=-0.5)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2DTranspose(11, 4, strides=2, padding="same")(x)
    model = keras.Model(inputs, keras.layers.Dense(11, activation="softmax")(x))
    freeze.freeze_model(model, tmp_path / "m.pb", output_name="probabilities", pbtxt=False)
    status, out, err = run(capsys, "--model", tmp_path / "m.pb", "--data", data_dir)
    assert status == 0, err
    assert json.loads(out)["params"] == model.count_params() == 40 + 715 + 132


def test_a_graph_that_writes_a_file_is_refused_and_never_runs(capsys, tmp_path, data_dir):
    import tensorflow as tf

    target = tmp_path / "written.txt"
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (None, 64, 84, 1), name="image")
        write = tf.io.write_file(str(target), "pwned", name="evil")
        with tf.control_dependencies([write]):
            # Passes for 11-class probabilities, so that only the op check stands in the way.
            tf.identity(tf.tile(image * 0 + 1 / 11, [1, 1, 1, 11]), name="probabilities")
    (tmp_path / "hostile.pb").write_bytes(graph.as_graph_def().SerializeToString())
    status, out, err = run(capsys, "--model", tmp_path / "hostile.pb", "--data", data_dir)
    assert not target.exists()
    assert (status, out) == (2, "") and err.count("\n") == 1
    assert err == f"error: {tmp_path / 'hostile.pb'}: op WriteFile in node evil is not allowed\n"


def test_evaluate_scores_cluttered_files_like_any_others(capsys, tmp_path, pools, model_files):
    """Cluttered files are the public format too: evaluate scores them, fragments counted as background."""
    folder, model = model_files
    data = m2nist.compose_images(pools["test"], 20, seed=0, clutter=m2nist.CLUTTERED)
    m2nist.save_m2nist(tmp_path, data.images, m2nist.to_one_hot(data.class_maps))
    status, out, err = run(capsys, "--model", folder / "fcn.keras", "--data", tmp_path)
    assert status == 0, err
    expected = metrics.evaluate_segmentation(lambda x: model(x, training=False), data.images, data.class_maps)
    assert json.loads(out)["mean_iou"] == pytest.approx(expected["mean_iou"], abs=1e-4)
