"""benchmarks/sweep.py and benchmarks/backends.py in quick mode: what they record, and that a re-run resumes
(issue 17). Both write under this test session's throw-away M2NIST_HOME."""

from __future__ import annotations

from m2nist_utils import config, results

import pytest
from conftest import load_benchmark

pytestmark = pytest.mark.slow  # trains networks or starts processes: not in `make test-fast`


def test_sweep_records_every_trial_and_the_best_and_resumes(capsys):
    sweep = load_benchmark("sweep")
    sweep.main(["--quick"])
    record = results.load_results("sweep")
    trials = record["trials"]
    assert len(trials) == 2 and record["budget"] == sweep.QUICK_BUDGET
    for trial in trials:
        assert all(trial[knob] in values for knob, values in sweep.SPACE.items())
        assert 0 <= trial["val_mean_iou"] <= 1 and trial["train_seconds"] > 0
    assert len({(t["learning_rate"], t["batch_size"], t["width"]) for t in trials}) == 2  # grid points differ
    assert record["best"] == max(trials, key=lambda t: t["val_mean_iou"])
    capsys.readouterr()
    sweep.main(["--quick"])  # everything done: nothing runs again
    assert "2 of 2 trial(s) already" in capsys.readouterr().out
    assert results.load_results("sweep")["trials"] == trials


def test_backends_runs_jax_without_tensorflow_on_two_devices_and_resumes(capsys):
    backends = load_benchmark("backends")
    argv = ["--quick", "--runs", "jax/numpy", "--devices", "2", "--out", "backends_test"]
    backends.main(argv)
    (row,) = results.load_results("backends_test")["runs"]
    assert row["backend"] == "jax" and row["stream"] == "numpy" and row["xla"] is True
    assert "JAX" in row["versions"] and "TensorFlow" not in row["versions"]
    assert row["epochs"] == len(row["epoch_seconds"]) and row["epoch_s"] > 0
    assert 0 <= row["val"]["mean_iou"] <= 1
    # DataParallel over the two host devices XLA made of the CPU; the rate scaled with the global batch.
    assert row["devices"] == 2 and row["device_list"] == ["cpu:0", "cpu:1"] and row["weight_devices"] == 2
    assert row["global_batch"] == 2 * row["batch_size"] and row["learning_rate"] == 2 * 8e-3
    assert row["input_images_per_s"] > 0 and row["step_images_per_s"] > 0
    assert results.load_results("backends_test")["mode"] == config.mode()
    capsys.readouterr()
    backends.main(argv)
    out = capsys.readouterr().out
    assert "1 run(s) already" in out and "0 to go" in out
