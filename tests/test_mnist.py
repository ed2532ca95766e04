"""MNIST sources and the digit-pool split (m2nist_utils.mnist, notebook 01)."""

from __future__ import annotations

import gzip
import socket
import struct

from m2nist_utils import mnist

import numpy as np
import pytest


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def write_idx_folder(folder, train: mnist.DigitPool, test: mnist.DigitPool, compress: bool) -> None:
    folder.mkdir(exist_ok=True)
    ext = ".gz" if compress else ""
    write_idx(folder / f"train-images-idx3-ubyte{ext}", train.images, compress)
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", train.labels, compress)
    write_idx(folder / f"t10k-images-idx3-ubyte{ext}", test.images, compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", test.labels, compress)


def write_npz(path, train: mnist.DigitPool, test: mnist.DigitPool) -> None:
    np.savez(path, x_train=train.images, y_train=train.labels, x_test=test.images, y_test=test.labels)


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything opens a socket."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.slow
def test_sample_is_real_mnist_sample(no_network):
    train, test = mnist.load_source("sample")
    assert test is None
    assert train.images.shape == (5000, 28, 28) and train.images.dtype == np.uint8
    assert np.bincount(train.labels).tolist() == [500] * 10
    assert train.images.max() == 255 and 0.1 < (train.images > 0).mean() < 0.3


@pytest.mark.slow
def test_sample_pools_are_disjoint_stratified_and_deterministic(pools):
    sizes = {name: len(p.labels) for name, p in pools.items()}
    assert sizes == {"train": 3500, "val": 500, "test": 1000}
    assert np.bincount(pools["test"].labels).tolist() == [100] * 10
    seen = {name: {d.tobytes() for d in p.images} for name, p in pools.items()}
    assert (
        not seen["train"] & seen["val"]
        and not seen["train"] & seen["test"]
        and not seen["val"] & seen["test"]
    )
    again = mnist.split_pools("sample")
    assert all(np.array_equal(again[n].images, pools[n].images) for n in mnist.SPLITS)
    other = mnist.split_pools("sample", seed=1)
    assert not np.array_equal(other["test"].images, pools["test"].images)


def test_npz_source_keeps_its_test_set(tmp_path, fake_mnist, no_network):
    train, test = fake_mnist
    write_npz(tmp_path / "mnist.npz", train, test)
    split = mnist.split_pools(tmp_path / "mnist.npz")
    assert np.array_equal(split["test"].images, test.images)
    assert len(split["train"].labels) + len(split["val"].labels) == len(train.labels)
    assert len(split["val"].labels) == 20


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_idx_folder_source(tmp_path, fake_mnist, compress, no_network):
    train, test = fake_mnist
    write_idx_folder(tmp_path / "idx", train, test, compress)
    got_train, got_test = mnist.load_source(tmp_path / "idx")
    assert np.array_equal(got_train.images, train.images) and np.array_equal(got_train.labels, train.labels)
    assert np.array_equal(got_test.images, test.images) and np.array_equal(got_test.labels, test.labels)


def test_auto_uses_keras_cache_when_present(tmp_path, monkeypatch, fake_mnist, no_network):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    write_npz(tmp_path / "datasets" / "mnist.npz", *fake_mnist)
    assert mnist.resolve_source("auto") == "keras"
    train, test = mnist.load_source("auto")
    assert np.array_equal(test.images, fake_mnist[1].images)


@pytest.mark.slow
def test_auto_without_keras_cache_uses_sample_and_no_network(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert mnist.resolve_source("auto") == "sample"
    train, test = mnist.load_source("auto")
    assert len(train.labels) == 5000 and test is None
    with pytest.raises(FileNotFoundError, match="mnist.npz"):
        mnist.load_keras(download=False)


def test_failed_keras_download_explains_the_offline_ways(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(RuntimeError, match="pass its path as the source"):
        mnist.load_source("keras")


def test_bad_npz_names_file_and_missing_arrays(tmp_path):
    path = tmp_path / "broken.npz"
    np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"broken\.npz.*missing arrays"):
        mnist.load_npz(path)


def test_npz_of_wrong_shape_names_file_and_shapes(tmp_path):
    path = tmp_path / "shape.npz"
    bad = mnist.DigitPool(np.zeros((3, 32, 32), np.uint8), np.zeros(3, np.uint8))
    write_npz(path, bad, bad)
    with pytest.raises(ValueError, match=r"shape\.npz.*\(N, 28, 28\).*\(3, 32, 32\)"):
        mnist.load_npz(path)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    objects = np.empty(2, dtype=object)
    np.savez(path, x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    with pytest.raises(ValueError, match=r"pickled\.npz"):
        mnist.load_npz(path)


def test_label_count_mismatch(tmp_path, fake_mnist):
    train, test = fake_mnist
    write_npz(tmp_path / "m.npz", mnist.DigitPool(train.images, train.labels[:-1]), test)
    with pytest.raises(ValueError, match="200 images but 199 labels"):
        mnist.load_npz(tmp_path / "m.npz")


def test_idx_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="bad.*not an unsigned-byte IDX"):
        mnist.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 28, 28), np.uint8), compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"short.*\(4, 28, 28\)"):
        mnist.read_idx(tmp_path / "short")


def test_idx_folder_missing_files_lists_what_is_there(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match="readme.txt"):
        mnist.load_idx_folder(tmp_path)


def test_unknown_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="unknown MNIST source"):
        mnist.load_source(tmp_path / "nothing.csv")
    with pytest.raises(FileNotFoundError, match="not found"):
        mnist.load_source(tmp_path / "nothing.npz")
