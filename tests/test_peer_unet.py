"""benchmarks/bench_peer_unet.py: the peers' adaptations learn, and the rate grid is fair (issue 16)."""

from __future__ import annotations

import json

from m2nist_utils import config, segmenter
from m2nist_utils._tf import keras, tf

import numpy as np
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_peer_unet")


@pytest.fixture(scope="module")
def unet(bench):
    keras.utils.set_random_seed(0)
    return bench.build_unet()


def test_the_unet_gives_64x84x11_and_every_pixel_its_own_place(unet):
    assert unet.input_shape == (None, 64, 84, 1)
    assert unet.output_shape == (None, 64, 84, 11)
    # The padding the network adds is exactly what it cuts off: a known pixel maps to itself.
    image = np.zeros((1, 64, 84, 1), np.float32)
    image[0, 10, 0], image[0, 20, 83], image[0, 40, 41] = 1.0, 2.0, 3.0
    padded = unet.get_layer("pad")(image)
    assert padded.shape == (1, 64, 96, 1)
    assert np.array_equal(np.asarray(unet.get_layer("crop")(padded)), image)
    assert unet.get_layer("pad").padding == ((0, 0), (6, 6))  # centred: 6 + 6 columns


def _output_bias_gradient(model, true_class: int = 3) -> float:
    """d loss / d bias[true class] when every pixel gives its true class p ~ 1e-17, under Keras' 1e-7."""
    last = next(layer for layer in reversed(model.layers) if getattr(layer, "filters", None) == 11)
    kernel, bias = last.get_weights()
    bias = np.zeros_like(bias)
    bias[true_class] = -40.0
    last.set_weights([np.zeros_like(kernel), bias])
    images = tf.zeros((2, 64, 84, 1))
    labels = tf.fill((2, 64, 84), true_class)
    loss = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        value = loss(labels, model(images, training=True))
    gradient = tape.gradient(value, last.bias)
    assert value.numpy() > 15  # confidently wrong everywhere
    return float(gradient.numpy()[true_class])


@pytest.mark.slow
def test_a_confidently_wrong_pixel_still_sends_gradient(bench):
    # The bug of the earlier adaptation: with the softmax's output cropped, Keras' loss took the log of
    # probabilities clipped at 1e-7, whose gradient is 0 below it; digit pixels stopped learning for good.
    keras.utils.set_random_seed(0)
    assert _output_bias_gradient(bench.build_unet()) == pytest.approx(-1.0, abs=1e-3)
    assert _output_bias_gradient(bench.build_small_unet()) == pytest.approx(-1.0, abs=1e-3)
    assert abs(_output_bias_gradient(bench.build_unet(pad="right", crop="after_softmax"))) < 1e-6


def test_the_small_unet_is_our_size_and_starts_from_scratch(bench):
    keras.utils.set_random_seed(0)
    small = bench.build_small_unet()
    ours = segmenter.build_fcn(None).count_params()
    assert small.output_shape == (None, 64, 84, 11)
    assert small.count_params() == 37_712
    assert abs(small.count_params() - ours) / ours < 0.1  # "about 35k": ours is 35,783
    assert not {"conv1", "conv2", "dense32_conv"} & {layer.name for layer in small.layers}


def test_class_share_loss_is_the_entropy_of_the_class_shares(bench):
    maps = np.array([[10, 10, 10, 3]])
    assert bench.class_share_loss(maps) == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert bench.class_share_loss(np.full((4, 4), 10)) == 0.0


def _row(model, rate, seed, val):
    return {"model": model, "learning_rate": rate, "seed": seed, "val": {"mean_iou": val}}


def test_the_rate_is_chosen_on_validation_once_the_grid_is_done(bench):
    grid = (1e-4, 3e-4, 1e-3, 3e-3)
    runs = [_row("unet", 1e-4, 0, 0.2), _row("unet", 3e-4, 0, 0.6), _row("unet", 1e-3, 0, 0.5)]
    assert bench.chosen_rate(runs, "unet", grid) is None  # 3e-3 not trained yet
    runs.append(_row("unet", 3e-3, 0, 0.4))
    # A test score never enters the choice, nor does another seed's validation score.
    runs[3]["test"] = {"mean_iou": 0.99}
    runs.append(_row("unet", 3e-3, 1, 0.95))
    assert bench.chosen_rate(runs, "unet", grid) == 3e-4
    assert bench.chosen_rate([_row("unet", r, 0, 0.5) for r in grid], "unet", grid) == 1e-4  # ties: first


def test_runs_go_ours_first_then_the_grids_then_seeds_at_the_chosen_rates(bench):
    grids = {"ours": (8e-3,), "unet": (1e-3, 3e-3), "small_unet": (1e-3, 3e-3)}
    todo = bench.pending_runs([], grids, (0, 1))
    assert todo[0] == ("ours", 8e-3, 0)
    assert todo[1:] == [
        ("unet", 1e-3, 0),
        ("unet", 3e-3, 0),
        ("small_unet", 1e-3, 0),
        ("small_unet", 3e-3, 0),
    ]
    runs = [_row(m, r, 0, 0.5 + r) for m, r, _ in todo]
    assert bench.pending_runs(runs, grids, (0, 1)) == [
        ("ours", 8e-3, 1), ("unet", 3e-3, 1), ("small_unet", 3e-3, 1),
    ]  # fmt: skip


def test_a_rerun_skips_finished_runs_and_tests_only_the_chosen(bench, monkeypatch, tmp_path):
    monkeypatch.setattr(config, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(config, "MODELS_DIR", tmp_path / "models")
    split = type("Split", (), {"images": np.zeros((5, 64, 84), np.uint8)})()
    monkeypatch.setattr(bench, "load_inputs", lambda recipe: {"test": split})
    trained, tested = [], []

    def tiny(model=None, cnn=None):
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    val = {("unet", 1e-3): 0.3, ("unet", 3e-3): 0.5, ("small_unet", 1e-3): 0.6, ("small_unet", 3e-3): 0.2}

    def fake_train(model, rate, seed, inputs, budget):
        trained.append((model, rate, seed, budget))
        seconds = 7.0 if model == "ours" else budget + 0.5
        row = {"model": model, "label": model, "learning_rate": rate, "seed": seed, "params": 1,
               "schedule": "s", "train_seconds": seconds, "images_seen": 32, "steps": 1, "train_loss": [1.0],
               "final_train_loss": 0.1, "class_share_loss": 0.4, "batch_norm": "none",
               "val": {"mean_iou": val.get((model, rate), 0.9)}}  # fmt: skip
        return row, tiny()

    def fake_score(row, model, test):
        tested.append((row["model"], row["learning_rate"], row["seed"]))
        row["test"] = {"mean_iou": 0.5}

    monkeypatch.setattr(bench, "train_one", fake_train)
    monkeypatch.setattr(bench, "score_test", fake_score)
    monkeypatch.setattr(bench, "build", tiny)
    args = ["--grid", "1e-3", "3e-3", "--seeds", "0"]
    bench.main(args)
    assert [t[:3] for t in trained] == [("ours", 8e-3, 0), ("unet", 1e-3, 0), ("unet", 3e-3, 0),
                                        ("small_unet", 1e-3, 0), ("small_unet", 3e-3, 0)]  # fmt: skip
    assert all(budget == 7.0 for model, _, _, budget in trained if model != "ours")  # ours' wall time
    assert sorted(tested) == [("ours", 8e-3, 0), ("small_unet", 1e-3, 0), ("unet", 3e-3, 0)]
    bench.main([*args[:3], "--seeds", "0", "1"])
    assert [t[:3] for t in trained[5:]] == [("ours", 8e-3, 1), ("unet", 3e-3, 1), ("small_unet", 1e-3, 1)]
    saved = json.loads((tmp_path / "results" / "peer_unet.json").read_text())
    assert saved["kind"] == bench.KIND and saved["mode"] == config.mode() and len(saved["runs"]) == 8
    assert saved["unet"]["learning_rate"] == 3e-3 and saved["unet"]["test_mean_iou_seeds"] == [0.5, 0.5]
    assert saved["unet"]["chosen_at_edge_of_grid"] and not saved["ours"]["chosen_at_edge_of_grid"]
    assert {r["model"] for r in saved["runs"] if "test" not in r} == {"unet", "small_unet"}  # the others
    bench.main([*args[:3], "--seeds", "0", "1"])
    assert len(trained) == 8  # nothing trained again


def test_a_peer_decays_its_rate_over_the_wall_time_and_stops_after_it(bench, monkeypatch):
    class Clock:  # every reading of the clock is one second later
        now = 0.0

        @classmethod
        def perf_counter(cls):
            cls.now += 1.0
            return cls.now

    monkeypatch.setattr(bench, "time", Clock)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    x, y = np.zeros((64, 4), np.float32), np.zeros((64, 1), np.float32)
    log = bench.step_log(64, 4, budget_seconds=100, peak=0.1)
    model.fit(x, y, batch_size=4, epochs=100, verbose=0, callbacks=[log])
    # Two readings per step (its start sets the rate, its end checks the budget): 100 s are 50 steps.
    assert log.steps == 50 and log.images == 200
    expected = 0.1 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * 99 / 100)))  # the 50th step began at 99 s
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(expected, rel=1e-4)


def test_batch_norm_statistics_become_the_mean_over_training_batches(bench, pools):
    # A tiny network with one batch normalisation: after re-estimation its moving mean and variance are the
    # plain means of the batches' own means and variances, whatever they held before.
    inputs = keras.Input((64, 84, 1))
    norm = keras.layers.BatchNormalization(name="norm")
    model = keras.Model(inputs, norm(keras.layers.Conv2D(2, 3, name="conv")(inputs)))
    norm.moving_mean.assign([5.0, -5.0])  # stale statistics, far from any batch's
    recipe = {"batch_size": 8, "distort": False}
    assert bench.reestimate_batch_norm(model, pools["train"], recipe, seed=0, batches=3)
    conv = keras.Model(inputs, model.get_layer("conv").output)
    data = bench.stream_for_batch_norm(pools["train"], recipe, seed=0, batches=3)
    features = [conv(data[i][0]).numpy() for i in range(3)]
    means = np.mean([f.mean(axis=(0, 1, 2)) for f in features], axis=0)
    variances = np.mean([f.var(axis=(0, 1, 2)) for f in features], axis=0)
    np.testing.assert_allclose(norm.moving_mean.numpy(), means, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(norm.moving_variance.numpy(), variances, rtol=1e-3, atol=1e-6)
    assert norm.momentum == 0.99  # put back for training
    assert not bench.reestimate_batch_norm(segmenter.build_fcn(), pools["train"], recipe, seed=0, batches=1)
