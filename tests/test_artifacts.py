"""The caches (m2nist_utils.artifacts): reused only when made from the same inputs, rebuilt otherwise.

Training is replaced by stubs that count their calls: what is tested is when the caches rebuild, not how
well a model trains (test_models, test_fcn).
"""

from __future__ import annotations

import functools
import json

from m2nist_utils import artifacts, classifier, config, freeze, m2nist, mnist, segmenter, stability, training

import numpy as np
import pytest
import tensorflow as tf


@pytest.fixture
def home(tmp_path, monkeypatch):
    """data/ and models/ in a fresh temporary folder; each digit source read once per test session."""
    monkeypatch.setattr(config, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(config, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setattr(artifacts, "split_pools", _split_pools)
    return tmp_path


@functools.cache
def _split_pools(source, seed=0):
    return mnist.split_pools(source, seed=seed)


@pytest.fixture
def composed(monkeypatch):
    """Counts the splits composed (each rebuild composes one)."""
    calls = []
    real = artifacts.compose_images

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(artifacts, "compose_images", spy)
    return calls


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def split(**settings):
    return artifacts.load_or_create_split("val", **{"n_images": 12, "source": "sample", **settings})


@pytest.mark.slow
def test_a_split_is_reused_with_its_settings(home, composed):
    first = split()
    again = split()
    assert len(composed) == 1 and np.array_equal(first.images, again.images)


@pytest.mark.parametrize(
    "change", [{"seed": 1}, {"n_images": 13}, {"max_digits": 2}, {"gap": 3}], ids=lambda c: next(iter(c))
)
@pytest.mark.slow
def test_a_changed_setting_rebuilds_the_split(home, composed, capsys, change):
    split()
    changed = split(**change)
    assert len(composed) == 2, "reused a split made with other settings"
    assert "m2nist_val.npz: made from other settings; rebuilding it" in capsys.readouterr().err
    # The rebuilt split is the one asked for, and it is the one kept.
    key = json.loads(artifacts.key_path(artifacts.dataset_path("val")).read_text())
    name, value = next(iter(change.items()))
    assert key[name] == value
    if name == "n_images":
        assert len(changed.images) == 13
    if name == "max_digits":
        assert changed.sources.shape[1] == 2 and composed[-1]["max_digits"] == 2
    if name == "gap":
        assert composed[-1]["gap"] == 3
    split(**change)
    assert len(composed) == 2


def test_another_source_rebuilds_the_split(home, composed, pools):
    # A keras-style mnist.npz holding other digits than the sample: a different source.
    train, test = pools["train"], pools["test"]
    npz = home / "mnist.npz"
    arrays = {"x_train": train.images[::-1], "y_train": train.labels[::-1]}
    np.savez(npz, **arrays, x_test=test.images, y_test=test.labels)
    sample = split()
    other = split(source=str(npz))
    assert len(composed) == 2 and not np.array_equal(sample.images, other.images)


def test_a_damaged_split_is_rebuilt(home, composed):
    first = split()
    truncate(artifacts.dataset_path("val"))
    again = split()
    assert len(composed) == 2 and np.array_equal(first.images, again.images)


def test_a_split_without_its_key_is_rebuilt(home, composed, capsys):
    # A kill between writing the artifact and its key leaves the artifact alone: it is not trusted.
    split()
    artifacts.key_path(artifacts.dataset_path("val")).unlink()
    split()
    assert len(composed) == 2 and "has no record of what made it" in capsys.readouterr().err
    assert artifacts.key_path(artifacts.dataset_path("val")).is_file()


# ----------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------
@pytest.fixture
def trainings(monkeypatch):
    """Stubs for train_cnn and train_fcn: each call records which model it trained and bumps a weight."""
    calls = []

    def stub(kind):
        def train(model, *args, **kwargs):
            calls.append(kind)
            recipe = classifier.CNN_RECIPE if kind == "cnn" else training.FCN_RECIPE
            # The recipe in the key is the one trained with (not defaults bound when the module loaded).
            assert {name: kwargs.get(name) for name in recipe} == recipe
            first = model.trainable_weights[0]
            first.assign(first + len(calls))  # a different model each time, as a real training gives

        return train

    monkeypatch.setattr(classifier, "train_cnn", stub("cnn"))
    monkeypatch.setattr(training, "train_fcn", stub("fcn"))
    return calls


def cnn():
    return artifacts.load_or_create_cnn(source="sample")


def test_an_existing_cnn_loads_instead_of_retraining(home, trainings):
    trained = cnn()
    loaded = cnn()
    assert trainings == ["cnn"]
    assert all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), loaded.get_weights()))


def test_a_quick_cnn_is_not_a_full_one(home, trainings, monkeypatch):
    monkeypatch.setattr(config, "QUICK", True)
    cnn()
    monkeypatch.setattr(config, "QUICK", False)
    cnn()
    assert trainings == ["cnn", "cnn"]
    assert json.loads(artifacts.key_path(artifacts.cnn_path()).read_text())["mode"] == "full"


def test_another_recipe_or_seed_retrains_the_cnn(home, trainings, monkeypatch):
    cnn()
    monkeypatch.setitem(classifier.CNN_RECIPE, "max_shift", 0)
    cnn()
    artifacts.load_or_create_cnn(source="sample", seed=1)
    assert trainings == ["cnn"] * 3


def test_a_damaged_or_keyless_cnn_is_retrained(home, trainings, capsys):
    cnn()
    truncate(artifacts.cnn_path())
    cnn()
    assert "cnn.keras: unreadable" in capsys.readouterr().err
    artifacts.key_path(artifacts.cnn_path()).unlink()
    cnn()
    assert trainings == ["cnn"] * 3


def test_a_retrained_cnn_is_frozen_again(home, trainings):
    frozen = artifacts.load_or_create_frozen_cnn(source="sample")
    before = frozen.read_bytes()
    artifacts.load_or_create_frozen_cnn(source="sample")
    assert frozen.read_bytes() == before  # nothing changed: the frozen graph is kept
    # Another training writes another cnn.keras: its frozen graph must follow it.
    model = artifacts.load_model(artifacts.cnn_path())
    model.trainable_weights[0].assign(model.trainable_weights[0] + 1)
    artifacts.save_cnn(model, source="sample")
    artifacts.load_or_create_frozen_cnn(source="sample")
    digits = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    logits = freeze.load_frozen_graph(frozen)(digits).numpy()
    assert np.allclose(logits, model(digits).numpy(), atol=1e-5)
    key = json.loads(artifacts.key_path(frozen).read_text())
    assert key == {"frozen_from": artifacts.file_digest(artifacts.cnn_path())}
    assert trainings == ["cnn"]


def test_a_damaged_frozen_graph_is_frozen_again(home, trainings):
    frozen = artifacts.load_or_create_frozen_cnn(source="sample")
    before = frozen.read_bytes()
    truncate(frozen)
    artifacts.load_or_create_frozen_cnn(source="sample")
    assert len(frozen.read_bytes()) == len(before)  # whole again (freezing twice orders its bytes anew)
    digits = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    model = artifacts.load_model(artifacts.cnn_path())
    assert np.allclose(freeze.load_frozen_graph(frozen)(digits).numpy(), model(digits).numpy(), atol=1e-5)


def freeze_stub(model, path, **kwargs):
    """A one-node GraphDef in place of the real frozen FCN (freezing is tested in test_freeze)."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.node.add(name=model.name, op="Const")
    path.write_bytes(graph_def.SerializeToString())


@pytest.mark.slow
def test_the_fcn_cache_follows_mode_recipe_and_its_cnn(home, trainings, monkeypatch):
    monkeypatch.setattr(freeze, "freeze_model", freeze_stub)
    artifacts.load_or_create_fcn(source="sample")
    artifacts.load_or_create_fcn(source="sample")
    assert trainings == ["cnn", "fcn"]
    monkeypatch.setattr(config, "QUICK", not config.QUICK)
    artifacts.load_or_create_fcn(source="sample")  # the other mode: both models again
    assert trainings == ["cnn", "fcn", "cnn", "fcn"]
    monkeypatch.setitem(training.FCN_RECIPE, "distort", not training.FCN_RECIPE["distort"])
    artifacts.load_or_create_fcn(source="sample")  # another recipe: the FCN only
    assert trainings[4:] == ["fcn"]
    # A retrained classifier: the FCN built on the old one is stale.
    model = artifacts.load_model(artifacts.cnn_path())
    model.trainable_weights[0].assign(model.trainable_weights[0] + 1)
    artifacts.save_cnn(model, source="sample")
    artifacts.load_or_create_fcn(source="sample")
    assert trainings[5:] == ["fcn"]


def test_the_clutter_fcn_is_its_own_model_recipe_and_file(home, monkeypatch):
    monkeypatch.setattr(freeze, "freeze_model", freeze_stub)
    monkeypatch.setattr(classifier, "train_cnn", lambda model, *args, **kwargs: None)
    seen = []
    monkeypatch.setattr(training, "train_fcn", lambda model, pool, **kwargs: seen.append(kwargs))
    model = artifacts.load_or_create_fcn(source="sample", variant="clutter")
    assert "where32" in [layer.name for layer in model.layers]
    assert {k: v for k, v in seen[0].items() if k in training.STABLE_RECIPE} == training.STABLE_RECIPE
    assert seen[0]["clutter"] == m2nist.CLUTTERED
    assert (config.MODELS_DIR / "fcn_clutter.keras").is_file() and not artifacts.fcn_path().exists()
    artifacts.load_or_create_fcn(source="sample", variant="clutter")
    assert len(seen) == 1  # cached
    with pytest.raises(ValueError, match="unknown FCN variant 'noisy'"):
        artifacts.load_or_create_fcn(source="sample", variant="noisy")


def test_a_collapsed_fcn_is_refused_not_cached(home, monkeypatch):
    monkeypatch.setattr(classifier, "train_cnn", lambda model, *args, **kwargs: None)

    def collapse(model, pool, **kwargs):
        model.set_weights([np.zeros_like(w) for w in model.get_weights()])

    monkeypatch.setattr(training, "train_fcn", collapse)
    with pytest.raises(stability.TrainingCollapsed):
        artifacts.load_or_create_fcn(source="sample")
    assert not artifacts.fcn_path().exists()


def test_save_fcn_refuses_a_collapsed_network_and_writes_nothing(home, monkeypatch):
    monkeypatch.setattr(classifier, "train_cnn", lambda model, *args, **kwargs: None)
    model = segmenter.build_fcn(artifacts.load_or_create_cnn(source="sample"))
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    with pytest.raises(stability.TrainingCollapsed):
        artifacts.save_fcn(model, source="sample")
    assert not artifacts.fcn_path().exists() and not artifacts.fcn_frozen_path().exists()
