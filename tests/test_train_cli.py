"""The train command (m2nist_utils.distributed): one machine, a 2-worker cluster on 127.0.0.1, bad input.

The runs are real ``python -m m2nist_utils train`` processes in a temporary M2NIST_HOME, each a single tiny
epoch. An untrained classifier stands in for the pretrained CNN (it only lends the FCN its first weights),
so no CNN is trained here.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from m2nist_utils import artifacts, classifier, config, distributed, m2nist, pipeline, segmenter, training
from m2nist_utils.__main__ import main as cli

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains networks or starts processes: not in `make test-fast`

#: Each run: one epoch of 64 images, i.e. 2 steps of a global batch of 32.
TINY = ["--epochs", "1", "--images-per-epoch", "64", "--source", "sample", "--seed", "0"]
#: A hang (a worker waiting for a peer that died) fails the test instead of blocking CI.
TIMEOUT_S = 240


def make_home(folder: Path, offset: float = 0.0) -> Path:
    """An M2NIST_HOME holding a stand-in CNN (its weights shifted by ``offset``) and a tmp/ folder."""
    (folder / "tmp").mkdir(parents=True)
    cnn = classifier.build_cnn()
    cnn.set_weights([w + offset for w in cnn.get_weights()])
    # The key is this process's cnn_key, and the runs share this process's quick/full mode (environ below).
    keras_file = folder / "models" / "cnn.keras"
    keras_file.parent.mkdir()
    artifacts.store(keras_file, artifacts.cnn_key("sample", 0), cnn, artifacts.save_model)
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return make_home(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def other_home(tmp_path_factory) -> Path:
    """The second worker's machine, whose CNN differs: training must start from the chief's weights."""
    return make_home(tmp_path_factory.mktemp("other_home"), offset=0.01)


def environ(home: Path, tf_config: dict | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(M2NIST_HOME=str(home), M2NIST_QUICK="1" if config.QUICK else "0", TF_CPP_MIN_LOG_LEVEL="2")
    env["CUDA_VISIBLE_DEVICES"] = "-1"  # the workers share one machine: no fight over one GPU's memory
    env["TMPDIR"] = str(home / "tmp")
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def train_command(out: Path, batch_size: int) -> list[str]:
    command = [sys.executable, "-m", "m2nist_utils", "train", "--out", str(out)]
    return [*command, "--batch-size", str(batch_size), *TINY]


def printed_digest(stdout: str) -> str:
    found = re.findall(r"weights sha256 ([0-9a-f]{64})", stdout)
    assert len(found) == 1, stdout
    return found[0]


@pytest.fixture(scope="module")
def single_run(home):
    """One machine, a batch of 32: the reference for the cluster below."""
    out = home / "single"
    run = subprocess.run(
        train_command(out, 32), env=environ(home), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    return out, run


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def cluster_run(home, other_home):
    """Two workers on 127.0.0.1, 16 images per replica: a global batch of 32, as in ``single_run``.

    Worker 0 (the chief) shares ``single_run``'s home; worker 1 has its own, as on another machine.
    """
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    homes = [home, other_home]
    start = time.perf_counter()
    workers = [
        subprocess.Popen(
            train_command(folder / "cluster", 16),
            env=environ(folder, {"cluster": cluster, "task": {"type": "worker", "index": i}}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, folder in enumerate(homes)
    ]
    results = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=TIMEOUT_S - (time.perf_counter() - start))
            results.append((worker.returncode, stdout, stderr))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    print(f"2-worker train: {time.perf_counter() - start:.1f} s")
    return [folder / "cluster" for folder in homes], results


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory, pools):
    folder = tmp_path_factory.mktemp("val")
    data = m2nist.compose_images(pools["val"], 20, seed=1)
    m2nist.save_m2nist(folder, data.images, m2nist.to_one_hot(data.class_maps))
    return folder


def evaluate(capsys, model: Path, data: Path) -> dict:
    status = cli(["evaluate", "--model", str(model), "--data", str(data)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def check_scores(capsys, out: Path, stdout: str, home: Path, val_folder: Path) -> None:
    """The printed validation IoU is the saved model's on the run's split, and the frozen graph scores as
    the saved model does (a 2-step model has no quality floor to check)."""
    model = artifacts.load_model(out / "fcn.keras")
    printed = re.search(r"validation mean IoU (\d\.\d{4}) ", stdout)
    assert printed, stdout
    val = artifacts.load_or_create_split("val", source="sample", seed=0, folder=home / "data")
    expected = segmenter.evaluate_fcn(model, val.images, val.class_maps)["mean_iou"]
    assert float(printed.group(1)) == pytest.approx(expected, abs=5e-5)
    images, masks = m2nist.load_m2nist(val_folder)
    keras_iou = segmenter.evaluate_fcn(model, images, m2nist.to_class_map(masks))["mean_iou"]
    frozen_iou = evaluate(capsys, out / "fcn_frozen.pb", val_folder)["mean_iou"]
    assert frozen_iou == pytest.approx(keras_iou, abs=1e-4)


def test_each_step_gets_one_batch_of_the_pipeline(pools):
    """Under the single-machine strategy (the train command's and the notebooks'), step k trains on the
    pipeline's batch k. A strategy's auto-sharding once rewrote the pipeline's ``rebatch`` and handed the
    model whole chunks of 256 images as batches (fewer, larger steps than the recipe's)."""
    strategy = training.distribution_strategy()
    data = pipeline.training_dataset(pools["train"], 600, 32, fresh=False, seed=3)  # each pass alike
    expected = [images.numpy() for images, _ in data]
    got = [
        np.concatenate([x.numpy() for x in strategy.experimental_local_results(images)])
        for images, _ in strategy.experimental_distribute_dataset(data)
    ]
    assert [len(x) for x in got] == [32] * 18 + [24]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_one_machine_writes_the_model_and_its_frozen_graph(home, single_run, val_folder, capsys):
    out, run = single_run
    assert run.returncode == 0, run.stderr[-3000:]
    assert "1 replica(s) in sync; global batch 32 = 32 per replica x 1" in run.stdout
    assert re.search(r"2/2 - .*loss: \d", run.stdout), run.stdout  # Keras' line per epoch
    assert "ran out of data" not in run.stdout + run.stderr  # 2 steps of 32 images, not 1 of 64
    last = run.stdout.strip().splitlines()[-1]
    assert f"wrote {out / 'fcn.keras'} and {out / 'fcn_frozen.pb'}; validation mean IoU 0." in last
    model = artifacts.load_model(out / "fcn.keras")
    assert distributed.weights_digest(model) == printed_digest(run.stdout)
    check_scores(capsys, out, run.stdout, home, val_folder)


def test_two_workers_train_one_model_that_only_the_chief_writes(
    home, other_home, cluster_run, single_run, val_folder, capsys
):
    (out0, out1), results = cluster_run
    for index, (status, stdout, stderr) in enumerate(results):
        assert status == 0, f"worker {index}:\n{stdout}\n{stderr[-3000:]}"
        assert "2 replica(s) in sync; global batch 32 = 16 per replica x 2" in stdout
    digests = [printed_digest(stdout) for _, stdout, _ in results]
    assert digests[0] == digests[1], "the workers' weights differ"
    chief = artifacts.load_model(out0 / "fcn.keras")
    assert distributed.weights_digest(chief) == digests[0]
    assert not out1.exists(), "a worker other than the chief wrote --out"
    assert not list((other_home / "tmp").glob("m2nist-train-*")), "worker 1 left its temporary save behind"
    # Started from the chief's weights and sharded right (the two replicas' halves make up the global
    # batch), the cluster takes the same 2 steps as one machine does with the chief's CNN.
    reference = artifacts.load_model(single_run[0] / "fcn.keras")
    for a, b in zip(chief.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-4)
    check_scores(capsys, out0, results[0][1], home, val_folder)


# --------------------------------------------------------------------------------------------------
# Bad input: one error line, exit 2, before TensorFlow starts anything
# --------------------------------------------------------------------------------------------------
def tf_config(cluster=None, task=None) -> str:
    cluster = {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]} if cluster is None else cluster
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0} if task is None else task})


BAD_FLAGS = [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["--epochs", "-3"], "argument --epochs: must be at least 1"),
    (["--epochs", "two"], "argument --epochs: expected a whole number, got 'two'"),
    (["--images-per-epoch", "0"], "argument --images-per-epoch: must be at least 1"),
    (["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (["--seed", "-1"], "argument --seed: must be at least 0"),
    (["--learning-rate", "0"], "argument --learning-rate: must be above 0, got 0"),
    (["--learning-rate", "nan"], "argument --learning-rate: must be above 0, got nan"),
    (["--learning-rate", "fast"], "argument --learning-rate: expected a number"),
]

BAD_TF_CONFIGS = [
    ("{not json", "TF_CONFIG: not JSON"),
    ("[1, 2]", "TF_CONFIG: expected a JSON object"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), "TF_CONFIG: missing 'cluster'"),
    (json.dumps({"cluster": {"worker": ["127.0.0.1:23456"]}}), "TF_CONFIG: missing 'task'"),
    (tf_config(task={"type": "worker", "index": 2}), "TF_CONFIG: task index 2 is out of range"),
    (tf_config(task={"type": "worker", "index": -1}), "TF_CONFIG: task index -1 is out of range"),
    (tf_config(task={"type": "chief", "index": 0}), "TF_CONFIG: task type 'chief' is not a job"),
    (tf_config({"worker": ["127.0.0.1"]}), "bad address '127.0.0.1'"),
    (tf_config({"worker": ["127.0.0.1:99999"]}), "bad address '127.0.0.1:99999'"),
    (tf_config({"worker": [":23456"]}), "bad address ':23456'"),
    (tf_config({"worker": ["127.0.0.1:23456", "127.0.0.1:23456"]}), "appears twice"),
    (tf_config({"worker": ["127.0.0.1:23456"], "ps": ["127.0.0.1:23457"]}), "job 'ps' is not used"),
    (tf_config({"worker": "127.0.0.1:23456"}), "must list one or more 'host:port'"),
    (tf_config({"chief": ["h:1", "h:2"], "worker": ["h:3"]}), "one chief at most"),
]


@pytest.fixture
def no_training(monkeypatch, tmp_path):
    """Bad input must be refused before any strategy starts: starting one fails the test (never hangs)."""

    def refuse(task):
        raise AssertionError("bad input reached the strategy")

    monkeypatch.setattr(distributed, "cluster_strategy", refuse)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    return tmp_path


def run_train(capsys, *args):
    status = cli(["train", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error(status, out, err, expected):
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert expected in err, err


@pytest.mark.parametrize("flags, expected", BAD_FLAGS)
def test_bad_flags(no_training, capsys, flags, expected):
    assert_one_error(*run_train(capsys, "--out", no_training / "out", *flags), expected)


def test_missing_out(no_training, capsys):
    assert_one_error(*run_train(capsys, "--epochs", "1"), "the following arguments are required: --out")


def test_out_is_a_file(no_training, capsys):
    (no_training / "taken").write_text("x")
    assert_one_error(*run_train(capsys, "--out", no_training / "taken"), "exists and is not a folder")


@pytest.mark.parametrize("text, expected", BAD_TF_CONFIGS)
def test_bad_tf_config(no_training, capsys, monkeypatch, text, expected):
    monkeypatch.setenv("TF_CONFIG", text)
    assert_one_error(*run_train(capsys, "--out", no_training / "out"), expected)


def test_busy_port(no_training, capsys, monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("TF_CONFIG", tf_config({"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]}))
        result = run_train(capsys, "--out", no_training / "out")
    expected = f"TF_CONFIG: port {port} of this task (worker 0, 127.0.0.1:{port}) is already in use"
    assert_one_error(*result, expected)


def test_read_tf_config_names_the_chief():
    def task(cluster, task_type, index):
        config = {"cluster": cluster, "task": {"type": task_type, "index": index}}
        return distributed.read_tf_config({"TF_CONFIG": json.dumps(config)})

    workers = {"worker": ["a:1", "b:2", "c:3"]}
    assert [task(workers, "worker", i).is_chief for i in range(3)] == [True, False, False]
    with_chief = {"chief": ["z:9"], **workers}
    assert task(with_chief, "chief", 0).is_chief
    assert not any(task(with_chief, "worker", i).is_chief for i in range(3))
    assert task(with_chief, "worker", 2).n_tasks == 4 and task(with_chief, "worker", 2).address == "c:3"
    assert distributed.read_tf_config({"TF_CONFIG": " "}) is None and distributed.read_tf_config({}) is None
