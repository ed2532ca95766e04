"""benchmarks/ablation.py: each configuration takes out its one idea, and a re-run resumes (issue 16)."""

from __future__ import annotations

import json

from m2nist_utils import classifier, config, training
from m2nist_utils._tf import keras

import numpy as np
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def ablation():
    return load_benchmark("ablation")


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(0)
    return classifier.build_cnn()


def _features():
    """Stands in for the frozen pool2 features: any layer mapping (N, 64, 84, 1) to (N, 14, 19, 8)."""
    return keras.Sequential([keras.layers.Resizing(14, 19), keras.layers.Conv2D(8, 1)])


def _names(model):
    return {layer.name for layer in model.layers}


def test_each_configuration_takes_out_its_idea(ablation, cnn):
    build = {name: ablation.build(name, cnn, _features()) for name in ablation.CONFIGURATIONS}
    final = _names(build["final"])
    assert {"context0", "skip_pool1", "pixels"} <= final
    assert "context0" not in _names(build["no context"])
    assert "pixels" not in _names(build["no pixel path"]) and "skip_pool1" in _names(build["no pixel path"])
    assert "skip_pool1" not in _names(build["no skip decoder"])
    assert build["no fine-tuning"].get_layer("conv1").trainable is False
    assert build["final"].get_layer("conv1").trainable is True
    assert build["no pretrained head"].get_layer("dense32_conv").kernel.shape[:2] == (1, 1)
    assert build["final"].get_layer("dense32_conv").kernel.shape[:2] == (5, 5)
    pretrained = cnn.get_layer("conv1").get_weights()[0]
    assert np.array_equal(build["final"].get_layer("conv1").get_weights()[0], pretrained)
    assert not np.array_equal(build["no pretraining"].get_layer("conv1").get_weights()[0], pretrained)
    assert build["article FCN"].output_shape == (None, 64, 84, 10)
    for name in ("no fresh images", "no distortion"):  # budget ideas: the network is the final one
        assert _names(build[name]) == final


@pytest.mark.slow
def test_each_configuration_trains_with_the_final_recipe_but_its_idea(ablation, cnn, monkeypatch, pools):
    seen = []

    def fake_train(model, pool, seed, verbose, **recipe):
        seen.append((seed, recipe))
        return type("History", (), {"history": {"loss": [1.0, 0.5]}})()

    scores = {
        "mean_iou": 0.5,
        "background_iou": 0.9,
        "digit_iou": 0.8,
        "pixel_accuracy": 0.9,
        "per_class_iou": [0.5] * 10,
    }
    monkeypatch.setattr(training, "train_fcn", fake_train)
    monkeypatch.setattr(ablation.segmenter, "evaluate_fcn", lambda *a, **k: scores)
    split = type("S", (), {"images": None, "class_maps": None})()
    rows = {
        name: ablation.run_one(name, 1, cnn, _features(), pools, split, split)
        for name in ablation.CONFIGURATIONS
    }
    recipes = [recipe for _, recipe in seen]
    assert recipes.count(training.FCN_RECIPE) == len(ablation.CONFIGURATIONS) - 2
    assert {**training.FCN_RECIPE, "fresh": False} in recipes
    assert {**training.FCN_RECIPE, "distort": False} in recipes
    assert all(seed == 1 for seed, _ in seen)
    assert "test" in rows["final"] and all("test" not in r for n, r in rows.items() if n != "final")
    assert rows["final"]["train_loss"] == [1.0, 0.5]


def test_a_rerun_skips_finished_runs_and_keeps_them(ablation, monkeypatch, tmp_path):
    monkeypatch.setattr(config, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(ablation, "load_inputs", lambda: ())
    calls = []

    def fake_run(configuration, seed):
        calls.append((configuration, seed))
        return {"configuration": configuration, "seed": seed, "val": {"mean_iou": 0.5, "background_iou": 0.9},
                "val_ink_prior": {"mean_iou": 0.5}, "train_loss": [0.1], "train_seconds": 1.0}  # fmt: skip

    monkeypatch.setattr(ablation, "run_one", fake_run)
    ablation.main(["--only", "final", "no context", "--seeds", "0"])
    assert calls == [("final", 0), ("no context", 0)]
    ablation.main(["--only", "final", "no context", "--seeds", "0", "1"])
    assert calls[2:] == [("final", 1), ("no context", 1)]  # seed 0 was not trained again
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert [(r["configuration"], r["seed"]) for r in saved["runs"]] == calls
    assert saved["kind"] == "leave-one-out" and saved["mode"] == config.mode()


def test_a_results_file_of_another_kind_or_mode_is_not_resumed(ablation, monkeypatch, tmp_path):
    monkeypatch.setattr(config, "RESULTS_DIR", tmp_path)
    run = {"configuration": "final", "seed": 0}
    other_mode = "full" if config.QUICK else "quick"
    for record in (
        {"mode": config.mode(), "steps": []},
        {"mode": other_mode, "kind": "leave-one-out", "runs": [run]},
    ):
        (tmp_path / "ablation.json").write_text(json.dumps(record))
        assert ablation.load_runs() == []
    (tmp_path / "ablation.json").write_text(
        json.dumps({"mode": config.mode(), "kind": "leave-one-out", "runs": [run]})
    )
    assert ablation.load_runs() == [run]
