"""Shared fixtures. The unit tests never touch the repository's data/ or models/ (see M2NIST_HOME)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from m2nist_utils import classifier, config, mnist

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` imported as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def sample_pools() -> dict[str, mnist.DigitPool]:
    """The real offline sample, split once per test session (hypothesis tests call this directly)."""
    return mnist.split_pools("sample")


@pytest.fixture(scope="session")
def pools() -> dict[str, mnist.DigitPool]:
    return sample_pools()


@pytest.fixture(scope="session")
def trained_cnn(pools):
    """The article's classifier after a few epochs: good enough features for the FCN tests.

    Seeded (``config.seed_everything``): on a CPU the seed alone gives the same weights on every run of one
    machine, however loaded it is; op determinism is switched on only on a GPU (test accuracy 0.958 on the
    2-core CPU of issue 10).
    """
    config.seed_everything(0)
    cnn = classifier.build_cnn()
    classifier.train_cnn(cnn, pools, epochs=4, verbose=0)
    return cnn


@pytest.fixture
def fake_mnist() -> tuple[mnist.DigitPool, mnist.DigitPool]:
    """Small synthetic MNIST-like (train, test) sets: a filled square whose size encodes the label."""
    rng = np.random.default_rng(0)

    def make(n: int) -> mnist.DigitPool:
        labels = np.arange(n, dtype=np.uint8) % 10
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):
            images[i, 4 : 10 + label, 4 : 10 + label] = rng.integers(1, 256)
        return mnist.DigitPool(images, labels)

    return make(200), make(50)


def centre_of_mass(images: np.ndarray) -> np.ndarray:
    """float64 (N, 2): the (row, column) centre of each (N, 28, 28) digit's ink, weighted by grey level."""
    yy, xx = np.mgrid[:28, :28]
    mass = images.astype(np.float64)
    total = mass.sum(axis=(1, 2))
    return np.stack([(mass * yy).sum(axis=(1, 2)) / total, (mass * xx).sum(axis=(1, 2)) / total], axis=1)
