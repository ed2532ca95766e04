"""The backend-neutral core (issue 17): the NumPy training stream, and the FCN trained on Keras' JAX backend
in a process where TensorFlow cannot be imported, then scored by TensorFlow.

The JAX runs are real subprocesses (``KERAS_BACKEND`` is read once, when Keras is imported), with an import
hook that refuses ``tensorflow``: anything in the core that still reaches TensorFlow fails them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from m2nist_utils import artifacts, classifier, config, m2nist, pipeline, stream
from m2nist_utils.__main__ import main as cli
from m2nist_utils.mnist import DigitPool

import numpy as np
import pytest

#: Prepended to every JAX subprocess: ``import tensorflow`` fails there, and is never half-imported.
BLOCK_TENSORFLOW = """
import sys

class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, _NoTensorFlow())
"""
TIMEOUT_S = 300


# ------------------------------------------------------------------------------------- the NumPy warp


def test_warp_digits_is_tensorflows_transform(pools):
    # The NumPy stream and the tf.data pipeline distort alike: equal grey levels, pixel for pixel, for the
    # training ranges and for transforms far outside them.
    digits = pools["train"].images[:300]
    rng = np.random.default_rng(4)
    for strength in (1.0, 5.0):
        angle = rng.uniform(-12, 12, 300) * strength
        scale = 1 + rng.uniform(-0.1, 0.1, 300) * strength / 2
        shear = rng.uniform(-0.2, 0.2, 300) * strength
        expected = pipeline.distort_with(digits, angle, scale, shear).numpy()
        np.testing.assert_array_equal(stream.warp_digits(digits, angle, scale, shear), expected)


def test_warp_moves_points_where_the_formula_says():
    # Output pixel (x, y) samples the input at (a0 x + a1 y + a2, b0 x + b1 y + b2) about the centre 13.5.
    dot = np.zeros((1, 28, 28), np.uint8)
    dot[0, 5, 20] = 200  # row 5, column 20
    # A quarter turn samples the input at (27 - y, x): the dot lands on row 27 - 20 = 7, column 5.
    turned = stream.warp_digits(dot, [90.0], [1.0], [0.0])[0]
    assert turned[7, 5] == 200 and turned.sum() == 200
    # Shear 0.4 samples row y at x + 0.4 (y - 13.5): row 16 moves one column left, row 11 one right.
    rows = np.zeros((1, 28, 28), np.uint8)
    rows[0, 16, 10] = rows[0, 11, 10] = 100
    sheared = stream.warp_digits(rows, [0.0], [1.0], [0.4])[0]
    assert sheared[16, 9] == 100 and sheared[11, 11] == 100 and sheared.sum() == 200
    # Scale 2 about the centre: the input's centre 2x2 block covers the output's centre 4x4, and more.
    block = np.zeros((1, 28, 28), np.uint8)
    block[0, 13:15, 13:15] = 255
    grown = stream.warp_digits(block, [0.0], [2.0], [0.0])[0]
    assert (grown[12:16, 12:16] > 0).all() and (grown > 0).sum() > 4
    assert grown[:10].sum() == grown[18:].sum() == 0


def test_distort_digits_keeps_labels_and_changes_digits(pools):
    pool = DigitPool(pools["train"].images[:200], pools["train"].labels[:200])
    warped = stream.distort_digits(pool, seed=3)
    assert np.array_equal(warped.labels, pool.labels) and warped.images.dtype == np.uint8
    changed = (warped.images != pool.images).reshape(200, -1).any(axis=1)
    assert changed.mean() > 0.95
    assert np.array_equal(stream.distort_digits(pool, seed=3).images, warped.images)
    assert np.array_equal(stream.distort_digits(pool, seed=3, strength=0).images, pool.images)


# ------------------------------------------------------------------------------------ the NumPy stream


def test_stream_batches_are_m2nist_images_and_their_class_maps(pools):
    data = stream.TrainingStream(pools["train"], images_per_epoch=100, batch_size=32, seed=1)
    assert len(data) == 4
    images, maps = data[0]
    assert images.shape == (32, 64, 84, 1) and images.dtype == np.float32
    assert maps.shape == (32, 64, 84) and maps.dtype == np.int32
    assert 0 <= images.min() and images.max() <= 1
    ink = images[..., 0] > 0
    assert np.array_equal(ink, maps != m2nist.BACKGROUND)  # a digit's class exactly where its ink is
    assert len(data[3][0]) == 100 - 3 * 32  # the last batch holds the rest


def test_stream_draws_fresh_images_each_epoch_and_repeats_from_its_seed(pools):
    def epochs(**kwargs):
        data = stream.TrainingStream(pools["train"], 64, 32, seed=2, **kwargs)
        first = data[0][0]
        data.on_epoch_end()
        return first, data[0][0]

    first, second = epochs()
    assert not np.array_equal(first, second)
    again, _ = epochs()
    assert np.array_equal(first, again)  # the same seed, the same stream
    same, still_same = epochs(fresh=False)
    assert np.array_equal(same, still_same) and np.array_equal(same, first)
    warped, _ = epochs(distort=True)
    assert not np.array_equal(warped, first)


# ------------------------------------------------------------------------------- JAX, TensorFlow absent


def run_without_tensorflow(code: str, home: Path, backend: str = "jax") -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND=backend, M2NIST_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
    env.update(M2NIST_QUICK="1" if config.QUICK else "0", JAX_PLATFORMS="cpu")
    script = BLOCK_TENSORFLOW + code + "\nassert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )


@pytest.mark.slow
def test_the_block_stops_tensorflow(tmp_path):
    run = run_without_tensorflow("import tensorflow", tmp_path)
    assert run.returncode != 0 and "blocked by the test" in run.stderr


@pytest.mark.slow
def test_the_data_tools_need_no_tensorflow(tmp_path):
    code = (
        # Notebook 01's imports, then the generate command and the split cache.
        "from m2nist_utils import article_generator, artifacts, claims, m2nist, metrics, mnist\n"
        "from m2nist_utils import results, viz, widgets\n"
        "from m2nist_utils.__main__ import main\n"
        f"assert main(['generate', '--out', {str(tmp_path / 'gen')!r}, '--n-images', '8', "
        "'--source', 'sample']) == 0\n"
        "split = artifacts.load_or_create_split('val', source='sample', seed=0)\n"
        "print(len(split.images))\n"
    )
    run = run_without_tensorflow(code, tmp_path, backend="tensorflow")  # the default backend, unused
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "gen" / "combined.npy").is_file()


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """``python -m m2nist_utils train`` on JAX with TensorFlow blocked, then ``evaluate`` of its model."""
    home = tmp_path_factory.mktemp("jax_home")
    (home / "models").mkdir()
    # An untrained classifier stands in for the pretrained CNN (it only lends the FCN its first weights).
    cnn_file, cnn = home / "models" / "cnn.keras", classifier.build_cnn()
    artifacts.store(cnn_file, artifacts.cnn_key("sample", 0), cnn, artifacts.save_model)
    data = home / "m2nist_val"
    generate = ["generate", "--out", str(data), "--n-images", "48", "--split", "val", "--source", "sample"]
    assert cli(generate) == 0
    out = home / "out"
    code = (
        "import json\n"
        "from m2nist_utils.__main__ import main\n"
        "from m2nist_utils import config\n"
        "print(config.describe_versions())\n"
        f"assert main(['train', '--out', {str(out)!r}, '--epochs', '1', '--images-per-epoch', '64', "
        "'--source', 'sample']) == 0\n"
        f"assert main(['evaluate', '--model', {str(out / 'fcn.keras')!r}, '--data', {str(data)!r}]) == 0\n"
    )
    return run_without_tensorflow(code, home), out, data


@pytest.mark.slow
def test_jax_trains_and_saves_without_tensorflow(jax_run):
    run, out, _ = jax_run
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| JAX " in run.stdout and "Keras on jax" in run.stdout
    assert (out / "fcn.keras").is_file() and not (out / "fcn_frozen.pb").exists()
    assert "no frozen graph" in run.stdout


@pytest.mark.slow
def test_tensorflow_scores_the_jax_model_as_jax_does(jax_run, capsys):
    run, out, data = jax_run
    assert run.returncode == 0, run.stderr[-3000:]
    on_jax = json.loads(run.stdout.strip().splitlines()[-1])
    capsys.readouterr()
    assert cli(["evaluate", "--model", str(out / "fcn.keras"), "--data", str(data)]) == 0
    on_tensorflow = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert on_tensorflow["params"] == on_jax["params"] == 35783
    # The same weights on two backends: the same argmax but for pixels whose top two scores nearly tie.
    assert abs(on_tensorflow["pixel_accuracy"] - on_jax["pixel_accuracy"]) < 1e-3
    assert abs(on_tensorflow["mean_iou"] - on_jax["mean_iou"]) < 1e-2
