"""Keras on the backend that ``KERAS_BACKEND`` names (TensorFlow unless set), imported once.

The network, its losses and scores, and the NumPy training stream (``stream``) use Keras alone: they run on
TensorFlow, JAX or PyTorch. On the TensorFlow backend Keras comes through ``_tf``, which silences TensorFlow's
start-up messages; on the others TensorFlow is never imported, and need not be installed.

- :data:`BACKEND`, :func:`on_tensorflow`: which backend runs.
- :func:`require_tensorflow`: one clear error for a TensorFlow-only step on another backend.
- :func:`model_scope`: where a model is compiled and fitted.
"""

from __future__ import annotations

import contextlib
import os

#: The Keras backend of this process, read as Keras reads it (before Keras is imported).
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")

if BACKEND == "tensorflow":
    from ._tf import keras
else:
    import keras


def on_tensorflow() -> bool:
    """Whether Keras runs on TensorFlow: the frozen graphs, ``tf.data`` and ``tf.distribute`` need it."""
    return keras.backend.backend() == "tensorflow"


def require_tensorflow(what: str) -> None:
    """Refuse, naming ``what``, a TensorFlow-only step on another backend (one clear line, not an import
    error from deep inside)."""
    if not on_tensorflow():
        raise RuntimeError(
            f"{what} needs TensorFlow; Keras runs on {keras.backend.backend()} here (KERAS_BACKEND)"
        )


def model_scope(model):
    """Where ``model`` is compiled and fitted: the ``tf.distribute`` scope it was built in (its variables
    live there), or nothing on another backend."""
    return model.distribute_strategy.scope() if on_tensorflow() else contextlib.nullcontext()
