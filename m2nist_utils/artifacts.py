"""Artifacts: where the series keeps its data and models, and the caches that rebuild them (every notebook).

- :func:`load_or_create`, :func:`store`, :func:`key_path`, :func:`file_digest`: the one cache rule. An
  artifact is reused only when the key recorded beside it (``<file>.key.json``: everything that made it)
  equals the key asked for and the file loads; otherwise it is rebuilt and saved with its key. A missing,
  damaged or stale artifact is therefore rebuilt, never silently reused: a quick-mode model is not a
  full-mode one, and a frozen graph whose ``.keras`` file was retrained is frozen again.
- :func:`dataset_path`, :func:`load_or_create_split`: the cached M2NIST splits in ``data/``.
- :func:`save_model`, :func:`load_model`: Keras models, written atomically, with errors that name the file.
- :func:`cnn_path`, :func:`cnn_key`, :func:`save_cnn`, :func:`load_or_create_cnn`: the pretrained
  classifier (notebook 02).
- :func:`cnn_frozen_path`, :func:`load_or_create_frozen_cnn`: its frozen graph (notebook 03).
- :func:`fcn_path`, :func:`fcn_frozen_path`, :func:`fcn_key`, :func:`save_fcn`, :func:`load_or_create_fcn`:
  our FCN and its frozen twin (notebook 05).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from . import config
from .files import atomic_save, atomic_save_to_path
from .m2nist import CLUTTERED, MAX_DIGITS, Clutter, Split, compose_images
from .mnist import SPLITS, resolve_source, split_pools

if TYPE_CHECKING:  # imported where used: the data caches need no Keras
    import keras

T = TypeVar("T")


def key_path(path: str | os.PathLike) -> Path:
    """The file that records what made the artifact at ``path``: ``<path>.key.json``."""
    path = Path(path)
    return path.with_name(path.name + ".key.json")


def load_or_create(
    path: str | os.PathLike,
    key: dict[str, object],
    create: Callable[[], T],
    save: Callable[[T, Path], object],
    load: Callable[[Path], T],
) -> T:
    """The artifact at ``path`` if it was made from ``key`` and loads; else ``create()`` it and save it.

    ``key`` must name everything the artifact depends on (source, seeds, counts, quick/full mode, recipe,
    the files it was made from). A rebuild of a file that exists says why on stderr.
    """
    path = Path(path)
    wanted = _canonical(key)
    reason = "missing"
    if path.exists():
        try:
            recorded = json.loads(key_path(path).read_text())
        except (OSError, ValueError):
            recorded = None
        if recorded != wanted:
            reason = "made from other settings" if recorded else "has no record of what made it"
        else:
            try:
                return load(path)
            # A truncated .npz raises BadZipFile, which is none of the others.
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                reason = f"unreadable ({exc})"
        print(f"{path.name}: {reason}; rebuilding it", file=sys.stderr)
    value = create()
    store(path, key, value, save)
    return value


def store(
    path: str | os.PathLike, key: dict[str, object], value: T, save: Callable[[T, Path], object]
) -> Path:
    """``save(value, path)``, then record ``key`` beside it (see :func:`load_or_create`)."""
    path = Path(path)
    # Key last, after the artifact: a crash in between leaves no key, so the next run rebuilds.
    key_path(path).unlink(missing_ok=True)
    save(value, path)
    text = json.dumps(_canonical(key), sort_keys=True, indent=1)
    atomic_save(key_path(path), lambda f: f.write(text.encode()))
    return path


def _canonical(key: dict[str, object]) -> object:
    return json.loads(json.dumps(key, sort_keys=True))  # as it reads back: tuples become lists


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file: the key of whatever is derived from it (a frozen graph from its ``.keras``)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ----------------------------------------------------------------------------------------------------
# Data (notebook 01)
# ----------------------------------------------------------------------------------------------------
def dataset_path(split: str, folder: str | os.PathLike | None = None) -> Path:
    """The project's cached split: ``data/m2nist_<split>.npz``."""
    return Path(folder or config.DATA_DIR) / f"m2nist_{split}.npz"


def load_or_create_split(
    split: str,
    n_images: int | None = None,
    source: str | os.PathLike | None = "auto",
    seed: int = 0,
    folder: str | os.PathLike | None = None,
    max_digits: int = MAX_DIGITS,
    gap: int = 1,
    clutter: Clutter | None = None,
) -> Split:
    """One split (images, class maps, sources; see :func:`m2nist.compose_images`), cached in ``data/``.

    Rebuilt when missing, unreadable or made with other settings, so any notebook can call this first
    thing. Each split draws only from its own digit pool, with its own seed. ``n_images`` defaults to
    ``config.N_IMAGES[split]`` (smaller in quick mode). With ``clutter`` the same digits get fragments on
    their background (:class:`m2nist.Clutter`), cached as ``m2nist_<split>_clutter<fragments>x<size>.npz``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
    n_images = config.N_IMAGES[split] if n_images is None else n_images
    source = resolve_source(source)
    key = {"split": split, "n_images": n_images, "source": source, "seed": seed}
    key.update(max_digits=max_digits, gap=gap)
    if clutter is not None:  # clean splits keep the key (and the cache) they always had
        key.update(clutter=list(clutter))

    def create() -> Split:
        pool = split_pools(source, seed=seed)[split]
        image_seed = seed * 3 + SPLITS.index(split) + 1
        return compose_images(
            pool, n_images, max_digits=max_digits, seed=image_seed, gap=gap, clutter=clutter
        )

    def save(data: Split, path: Path) -> None:
        atomic_save(path, lambda f: np.savez_compressed(f, **data._asdict()))

    def load(path: Path) -> Split:
        with np.load(path, allow_pickle=False) as f:
            return Split(f["images"], f["class_maps"], f["sources"])

    name = split if clutter is None else f"{split}_clutter{clutter.fragments}x{clutter.size}"
    return load_or_create(dataset_path(name, folder), key, create, save, load)


# ----------------------------------------------------------------------------------------------------
# Models (notebooks 02, 03 and 05)
# ----------------------------------------------------------------------------------------------------
def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """``model.save`` to a temporary ``.keras`` file, then rename: never half a model on disk."""
    return atomic_save_to_path(path, model.save)


def load_model(path: str | os.PathLike) -> keras.Model:
    """``keras.models.load_model`` with a clear error naming a missing or unreadable file."""
    from ._keras import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    # A .keras file is a zip: check it whole first, since Keras calls a damaged one "file not found".
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise ValueError(f"{path}: not a readable .keras archive, truncated or damaged ({exc})") from exc
    if damaged is not None:
        raise ValueError(f"{path}: damaged .keras archive ({damaged} fails its checksum)")
    try:
        return keras.models.load_model(path)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad archive
        raise ValueError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {exc})") from exc


def cnn_path() -> Path:
    return config.MODELS_DIR / "cnn.keras"


def cnn_frozen_path() -> Path:
    return config.MODELS_DIR / "cnn_frozen.pb"


def fcn_path() -> Path:
    return config.MODELS_DIR / "fcn.keras"


def fcn_frozen_path() -> Path:
    return config.MODELS_DIR / "fcn_frozen.pb"


def cnn_key(source: str | None = "auto", seed: int = 0) -> dict[str, object]:
    """What makes ``models/cnn.keras``: digit source, seed, mode and :data:`classifier.CNN_RECIPE`."""
    from . import classifier

    return {"model": "cnn", "source": resolve_source(source), "seed": seed, "mode": config.mode()} | {
        "recipe": classifier.CNN_RECIPE
    }


def save_cnn(model: keras.Model, source: str | None = "auto", seed: int = 0) -> Path:
    """Save a classifier trained with :data:`classifier.CNN_RECIPE` as ``models/cnn.keras``, with its key."""
    return store(cnn_path(), cnn_key(source, seed), model, save_model)


def load_or_create_cnn(source: str | None = "auto", seed: int = 0, verbose: int = 0) -> keras.Model:
    """``models/cnn.keras``, trained with :data:`classifier.CNN_RECIPE` (and saved) first when needed."""
    from . import classifier

    def create() -> keras.Model:
        config.seed_everything(seed)  # the same weights whenever it is rebuilt
        model = classifier.build_cnn()
        pools = split_pools(source, seed=seed)
        classifier.train_cnn(model, pools, seed=seed, verbose=verbose, **classifier.CNN_RECIPE)
        return model

    return load_or_create(cnn_path(), cnn_key(source, seed), create, save_model, load_model)


def load_or_create_frozen_cnn(source: str | None = "auto", seed: int = 0) -> Path:
    """``models/cnn_frozen.pb``, frozen from the current ``models/cnn.keras`` (trained if needed)."""
    load_or_create_cnn(source, seed)
    return _load_or_create_frozen(cnn_path(), cnn_frozen_path(), "logits")


def fcn_key(source: str | None = "auto", seed: int = 0, variant: str = "final") -> dict[str, object]:
    """What makes ``models/fcn.keras`` (or a variant's file): source, seed, mode, recipe and the CNN file."""
    from . import training
    from ._keras import on_tensorflow

    recipe, build, clutter = _VARIANTS[variant]
    model = "fcn" if variant == "final" else f"fcn_{variant}"
    key = {"model": model, "source": resolve_source(source), "seed": seed, "mode": config.mode()} | {
        "recipe": getattr(training, recipe),
        "cnn": file_digest(cnn_path()),
    }
    if variant != "final":  # the final model's key stays what it always was
        key |= {"build": build, "clutter": list(clutter) if clutter else None}
    # Another backend's kernels add in another order: its model is not the TensorFlow one.
    return key if on_tensorflow() else key | {"backend": training.keras.backend.backend()}


#: The FCNs the series trains and caches: variant -> (the recipe in ``training``, build_fcn's flags,
#: clutter). ``clutter`` is notebook 09's model: the decoder's foreground logit, the stable recipe, clutter.
_VARIANTS: dict[str, tuple[str, dict[str, bool], object]] = {
    "final": ("FCN_RECIPE", {}, None),
    "clutter": ("STABLE_RECIPE", {"coarse_where": True}, CLUTTERED),
}


def save_fcn(model: keras.Model, source: str | None = "auto", seed: int = 0) -> Path:
    """Save an FCN trained with :data:`training.FCN_RECIPE` as ``models/fcn.keras`` (with its key) and
    freeze it to ``models/fcn_frozen.pb``; a collapsed network (``stability.check_not_collapsed``) is refused
    and nothing is written."""
    _refuse_collapsed(model, source, seed)
    load_or_create_cnn(source, seed)
    store(fcn_path(), fcn_key(source, seed), model, save_model)
    _load_or_create_frozen(fcn_path(), fcn_frozen_path(), "probabilities")
    return fcn_path()


def load_or_create_fcn(
    source: str | None = "auto", seed: int = 0, verbose: int = 0, variant: str = "final"
) -> keras.Model:
    """``models/fcn.keras`` and its frozen twin, trained with :data:`training.FCN_RECIPE` first if needed.

    ``variant="clutter"``: notebook 09's model, ``models/fcn_clutter.keras`` (and ``fcn_clutter_frozen.pb``):
    ``build_fcn(coarse_where=True)`` trained with :data:`training.STABLE_RECIPE` on cluttered images
    (:data:`m2nist.CLUTTERED`). Training ends with ``stability.check_not_collapsed``: a collapsed network is
    refused, not cached. On JAX or PyTorch (``KERAS_BACKEND``) the model is trained and cached on that
    backend, without the frozen twin; the classifier must exist (its training is TensorFlow's).
    """
    from . import segmenter, training
    from ._keras import on_tensorflow

    if variant not in _VARIANTS:
        raise ValueError(f"unknown FCN variant {variant!r}; expected one of {sorted(_VARIANTS)}")
    recipe, build, clutter = _VARIANTS[variant]
    load_or_create_cnn(source, seed)
    path = fcn_path() if variant == "final" else config.MODELS_DIR / f"fcn_{variant}.keras"

    def create() -> keras.Model:
        cnn = load_model(cnn_path())
        config.seed_everything(seed)
        with training.build_scope():
            model = segmenter.build_fcn(cnn, **build)
        pools = split_pools(source, seed=seed)
        settings = getattr(training, recipe) | ({"clutter": clutter} if clutter else {})
        training.train_fcn(model, pools["train"], seed=seed, verbose=verbose, **settings)
        _refuse_collapsed(model, source, seed)
        return model

    model = load_or_create(path, fcn_key(source, seed, variant), create, save_model, load_model)
    if on_tensorflow():  # a frozen graph is TensorFlow's
        _load_or_create_frozen(path, path.with_name(f"{path.stem}_frozen.pb"), "probabilities")
    return model


def _refuse_collapsed(model: keras.Model, source: str | None, seed: int) -> None:
    """``stability.check_not_collapsed`` on 256 validation images: enough to see one class everywhere."""
    from . import stability

    val = compose_images(split_pools(source, seed=seed)["val"], 256, seed=seed)
    stability.check_not_collapsed(model, val.images)


def _load_or_create_frozen(keras_file: Path, frozen_file: Path, output_name: str) -> Path:
    """``frozen_file``, frozen again whenever ``keras_file`` changed since it was made."""
    from . import freeze

    def create() -> Path:
        return keras_file

    def save(source: Path, path: Path) -> None:
        freeze.freeze_model(load_model(source), path, output_name=output_name)

    def load(path: Path) -> Path:
        freeze.read_graph_def(path)  # a damaged graph raises ValueError: frozen again
        return path

    load_or_create(frozen_file, {"frozen_from": file_digest(keras_file)}, create, save, load)
    return frozen_file
