"""The quick/full switch and the artifact folders, read once for the whole series.

Introduced in notebook 01. Environment variables:

- ``M2NIST_QUICK=1`` shrinks sample counts and epochs (CI and ``make test``).
- ``M2NIST_HOME`` moves ``data/``, ``models/``, ``img/`` and ``results/`` away from the repository root
  (tests point it at a temporary folder so that they never clobber a full run's artifacts). A relative
  ``M2NIST_HOME`` is taken relative to the repository root (the folder holding ``pyproject.toml``), not
  to the current directory, so that the notebooks (run in ``notebooks/``) and the command line (run at
  the root) mean the same folder; where the package is not installed from a checkout, the repository
  root is the current directory at import.

Contents: :data:`QUICK`, :data:`HOME` and the folders (:data:`DATA_DIR`, :data:`MODELS_DIR`,
:data:`IMG_DIR`, :data:`RESULTS_DIR`), :data:`N_IMAGES`; :func:`mode`, :func:`describe`,
:func:`describe_device`, :func:`usable_cores`, :func:`describe_versions`, :func:`seed_everything`.
"""

from __future__ import annotations

import os
from pathlib import Path


def _repo_root() -> Path:
    # An editable install keeps the package inside the checkout; anywhere else, work in the cwd.
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


REPO_ROOT: Path = _repo_root()
QUICK: bool = _truthy(os.environ.get("M2NIST_QUICK"))
HOME: Path = (REPO_ROOT / Path(os.environ.get("M2NIST_HOME") or ".").expanduser()).resolve()
DATA_DIR: Path = HOME / "data"
MODELS_DIR: Path = HOME / "models"
IMG_DIR: Path = HOME / "img"
RESULTS_DIR: Path = HOME / "results"

#: Number of M2NIST images per split, full mode vs quick mode.
N_IMAGES: dict[str, int] = (
    {"train": 2_000, "val": 300, "test": 500} if QUICK else {"train": 10_000, "val": 1_000, "test": 2_000}
)


def mode() -> str:
    """'quick' or 'full', for printing at the top of each notebook."""
    return "quick" if QUICK else "full"


def describe() -> str:
    """One line naming the mode and where artifacts go (relative to the repository when inside it)."""
    try:
        home = HOME.relative_to(REPO_ROOT)
        where = "the repository root" if str(home) == "." else str(home)
    except ValueError:
        where = "$M2NIST_HOME"
    return f"mode: {mode()} | artifacts (data/, models/, img/) under {where}"


def describe_device() -> str:
    """One line naming what Keras' backend computes on: the visible GPUs, else the CPU and its cores."""
    from ._keras import keras, on_tensorflow

    if on_tensorflow():
        from ._tf import tf

        gpus = tf.config.list_physical_devices("GPU")
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    elif keras.backend.backend() == "jax":
        import jax

        names = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    else:
        import torch

        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if names:
        return f"{len(names)} GPU(s): {', '.join(names)}"
    return f"CPU ({usable_cores()} cores visible)"


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity (``taskset``) where there is one, else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, Keras and its backend; on a GPU also make TensorFlow's ops deterministic.

    Guarantees: the same seed on the same machine and software (TensorFlow, CUDA, the number of GPUs)
    trains bit-identical weights, so a notebook run twice reports the same scores (``test_determinism``).
    Not across machines or versions, whose kernels may add in another order.

    On a CPU the seed is enough: the series' data pipelines draw their randomness from seeds in a fixed
    order (stateless ops, or a serial map), and TensorFlow's CPU kernels for our layers add in a fixed
    order. Op determinism is then left off, because on the CPU it serialises work and made the FCN's
    training epochs about 3x slower here. On a GPU, where cuDNN and atomic reductions add in a varying
    order, ``tf.config.experimental.enable_op_determinism()`` is switched on: for the rest of the process
    (it cannot be switched off), at the cost of slower deterministic kernels, and with Keras then turning
    XLA off (notebook 07). On JAX the seed alone makes a run repeatable; on PyTorch a GPU's cuDNN may not.
    """
    from ._keras import keras, on_tensorflow

    keras.utils.set_random_seed(seed)
    if on_tensorflow():
        from ._tf import tf

        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.enable_op_determinism()


def describe_versions() -> str:
    """One line with the versions a reader should quote in a bug report (every notebook's setup prints it)."""
    import platform

    import numpy

    from ._keras import keras, on_tensorflow

    backend = keras.backend.backend()
    if on_tensorflow():
        from ._tf import tf

        backend = f"TensorFlow {tf.__version__}"
    elif backend == "jax":
        import jax

        backend = f"JAX {jax.__version__}"
    else:
        import torch

        backend = f"PyTorch {torch.__version__}"
    versions = f"{backend} | Keras {keras.__version__} | numpy {numpy.__version__}"
    return f"Python {platform.python_version()} | {versions}"
