"""The article's CNN and the models around it: layers, shapes, training, saving (classifier, surgery,
segmenter, training; notebooks 02-05). The caches are tested in test_artifacts."""

from __future__ import annotations

from m2nist_utils import artifacts, classifier, config, segmenter, surgery, training

import keras
import numpy as np
import pytest
import tensorflow as tf


def test_cnn_layers_and_parameters():
    cnn = classifier.build_cnn()
    names = ["conv1", "pool1", "conv2", "pool2", "flatten", "dense32", "dense10"]
    assert [layer.name for layer in cnn.layers[1:]] == names
    assert cnn.input_shape == (None, 28, 28, 1) and cnn.output_shape == (None, 10)
    assert cnn.count_params() == 208 + 584 + 6432 + 330


def test_shape_table_walks_28_and_64x84():
    cnn = classifier.build_cnn()
    outputs = [row["output"] for row in classifier.shape_table(cnn)]
    assert outputs == [
        "28 x 28 x 1",
        "24 x 24 x 8",
        "12 x 12 x 8",
        "10 x 10 x 8",
        "5 x 5 x 8",
        "200",
        "32",
        "10",
    ]
    encoder = keras.Model(cnn.input, cnn.get_layer("pool2").output)
    outputs = [row["output"] for row in classifier.shape_table(encoder, (64, 84, 1))]
    assert outputs == ["64 x 84 x 1", "60 x 80 x 8", "30 x 40 x 8", "28 x 38 x 8", "14 x 19 x 8"]
    assert classifier.shape_table(cnn)[1]["kernel"] == "5x5"


def test_short_training_beats_chance_by_far(trained_cnn, pools):
    accuracy = np.mean(classifier.predict_digits(trained_cnn, pools["test"]) == pools["test"].labels)
    assert accuracy > 0.85, accuracy


def test_save_and_load_round_trip(trained_cnn, tmp_path, pools):
    path = artifacts.save_model(trained_cnn, tmp_path / "cnn.keras")
    again = artifacts.load_model(path)
    x = pools["test"].images[:8, ..., None].astype(np.float32) / 255
    assert np.allclose(again(x), trained_cnn(x), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.keras"]


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.keras"):
        artifacts.load_model(tmp_path / "nothing.keras")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.keras"):
        artifacts.load_model(tmp_path / "broken.keras")


def test_device_is_described():
    gpus = len(tf.config.list_physical_devices("GPU"))
    expected = f"{gpus} GPU(s): " if gpus else f"CPU ({config.usable_cores()} cores visible)"
    assert config.describe_device().startswith(expected)
    # One replica per GPU when there are several, else the one device.
    assert training.distribution_strategy().num_replicas_in_sync == max(1, gpus)


def pool2_like():
    """The classifier's convolutional part as a stand-in for the frozen pool2 features (64x84 -> 14x19x8)."""
    return keras.Sequential(
        [
            keras.layers.Conv2D(8, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
        ],
        name="features",
    )


def test_article_fcn_has_the_articles_head():
    keras.utils.set_random_seed(0)
    fcn = surgery.build_article_fcn(pool2_like())
    assert fcn.output_shape == (None, 64, 84, 10)
    assert fcn.get_layer("score").activation is keras.activations.relu
    assert fcn.get_layer("score32").activation is keras.activations.relu
    # tf.contrib.layers.l2_regularizer(1e-3) on both transposed kernels: 1e-3 * sum(w ** 2) / 2.
    kernels = [fcn.get_layer(name).kernel.numpy() for name in ("upsample1", "upsample2")]
    expected = sum(1e-3 * (k**2).sum() / 2 for k in kernels)
    assert np.isclose(float(sum(fcn.losses)), expected, rtol=1e-5) and expected > 0
    assert fcn.get_layer("score").kernel_regularizer is None


def test_article_fcn_flags_and_classes():
    plain = surgery.build_article_fcn(pool2_like(), n_classes=11, score_relu=False, l2_scale=0)
    assert plain.output_shape == (None, 64, 84, 11) and not plain.losses
    assert plain.get_layer("score").activation is keras.activations.linear


def tiny_segmenter(n_classes: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 84, 1), name="image")
    return keras.Model(inputs, keras.layers.Conv2D(n_classes, 1, activation="softmax")(inputs))


@pytest.mark.slow
@pytest.mark.parametrize("n_classes", [10, 11])
def test_train_fcn_trains_ten_classes_on_the_digits_only(pools, n_classes):
    model = tiny_segmenter(n_classes)
    history = training.train_fcn(model, pools["train"], epochs=1, images_per_epoch=4, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    if n_classes == 10:  # the article's design: background pixels count as no class at all
        assert model.loss is segmenter.digits_only_loss
    else:
        assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)


def test_context_layers_are_dilated_and_the_field_counts_it():
    fcn = segmenter.build_fcn()  # no classifier needed: only the architecture is looked at
    assert [fcn.get_layer(f"context{i}").dilation_rate for i in (0, 1)] == [(2, 2), (4, 4)]
    assert [fcn.get_layer(f"context{i}").kernel_size for i in (0, 1)] == [(3, 3), (3, 3)]
    fields = {row["layer"]: row["receptive field"] for row in surgery.receptive_fields(fcn)}
    # 28 px after the head; a 3x3 kernel at rate r on a 4 px grid adds 2 * r * 4 px: 28 + 16 + 32.
    assert (fields["context_in"], fields["context0"], fields["context1"]) == ("28 px", "44 px", "76 px")


def test_receptive_field_of_a_dilated_convolution():
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(1, 3, dilation_rate=3, name="dilated")(inputs)
    x = keras.layers.Conv2D(1, 2, strides=2, name="strided")(x)
    x = keras.layers.Conv2D(1, 3, dilation_rate=2, name="dilated_on_2px")(x)
    fields = [(r["receptive field"], r["jump"]) for r in surgery.receptive_fields(keras.Model(inputs, x))]
    assert fields == [("7 px", "1 px"), ("8 px", "2 px"), ("16 px", "2 px")]
