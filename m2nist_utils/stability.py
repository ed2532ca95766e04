"""Training that does not fall off the edge (notebook 09): the rate of every recipe, how to choose its peak,
and a check that refuses a collapsed network.

- :func:`learning_rate_schedule`: an optional linear warm-up, then a cosine decay (``training.train_fcn``).
- :func:`lr_range_test`: the learning-rate range test (Smith, 2017), each batch's loss as the rate rises.
- :func:`check_not_collapsed`, :func:`predicted_shares`, :class:`TrainingCollapsed`: refuse a network that
  answers one class (nearly) everywhere, after every ``fit`` whose model is kept (``artifacts``, the
  ``train`` command, notebook 09).
"""

from __future__ import annotations

import numpy as np

from ._keras import keras, model_scope
from .m2nist import N_CLASSES, to_input
from .segmenter import compiled_predictor


def learning_rate_schedule(learning_rate: float, steps: int, warmup_steps: int = 0):
    """The rate of every recipe: a linear warm-up from 0 over ``warmup_steps`` (none by default), then a
    cosine decay from ``learning_rate`` to 1% of it at step ``steps``."""
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)
    if not 0 < warmup_steps < steps:
        raise ValueError(f"warm-up of {warmup_steps} steps: expected fewer than the run's {steps} steps")
    return keras.optimizers.schedules.CosineDecay(
        0.0, steps - warmup_steps, alpha=0.01, warmup_target=learning_rate, warmup_steps=warmup_steps
    )


class _BatchLosses(keras.callbacks.Callback):
    """Each batch's own loss (Keras reports the epoch's running mean) and a stop once it diverges."""

    def __init__(self, diverged: float):
        super().__init__()
        self.diverged, self.losses, self._total = diverged, [], 0.0

    def on_train_batch_end(self, batch, logs=None):
        # The running mean after k equal batches is the sum of their losses / k.
        total = float(logs["loss"]) * (batch + 1)
        loss = total - self._total if batch else total
        self._total = total
        self.losses.append(loss)
        if not np.isfinite(loss) or loss > self.diverged * min(self.losses):
            self.model.stop_training = True


def lr_range_test(
    model: keras.Model,
    batches,
    steps: int,
    start: float = 1e-5,
    stop: float = 1.0,
    diverged: float = 4.0,
    loss=None,
) -> tuple[np.ndarray, np.ndarray]:
    """The learning-rate range test (Smith, 2017): one short run whose rate rises exponentially from
    ``start`` to ``stop`` over ``steps`` batches, the loss of each batch recorded.

    The loss first stays flat (the rate is too small to move anything), then falls (the useful range), then
    turns up and explodes (too large): a good peak rate sits well below where it turns. Stops early once a
    batch's loss exceeds ``diverged`` times the lowest so far (or is not finite).

    Args:
        model: a fresh network of the kind to be trained (the test trains it); compiled here with Adam and
            ``loss`` (by default sparse cross-entropy over its classes).
        batches: at least ``steps`` training batches, e.g. ``training.training_data(pool, steps * 32, 32)``.

    Returns:
        (rates, losses): float arrays (S,), S <= ``steps``, the rate and the loss of each batch run.
    """
    schedule = keras.optimizers.schedules.ExponentialDecay(start, steps, stop / start)
    recorder = _BatchLosses(diverged)
    with model_scope(model):
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=loss or keras.losses.SparseCategoricalCrossentropy(),
        )
        model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[recorder])
    rates = start * (stop / start) ** (np.arange(len(recorder.losses)) / steps)
    return rates, np.asarray(recorder.losses)


class TrainingCollapsed(RuntimeError):
    """Training ended in a network answering one class (nearly) everywhere (:func:`check_not_collapsed`)."""


def predicted_shares(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """float (C,): the share of the pixels of ``images`` uint8 (N, 64, 84) that ``model`` gives each class."""
    predict = compiled_predictor(model)
    counts = np.zeros(model.output_shape[-1], np.int64)
    for start in range(0, len(images), batch_size):
        scores = predict(to_input(images[start : start + batch_size]))
        counts += np.bincount(scores.argmax(-1).ravel(), minlength=len(counts))
    return counts / counts.sum()


def check_not_collapsed(
    model: keras.Model, images: np.ndarray, max_share: float = 0.99, where: str = "the validation images"
) -> np.ndarray:
    """Raise :class:`TrainingCollapsed` when ``model`` gives one class ``max_share`` or more of the pixels.

    A run that falls off the edge of stable training ends predicting background everywhere (or, with NaN
    weights, class 0): its loss may look tame and its file loads fine, so it is refused here, after
    ``fit`` and before anything is saved. M2NIST's truth is about 94% background, so a working network
    stays below 99%. Returns the shares per class (see :func:`predicted_shares`).
    """
    shares = predicted_shares(model, images)
    top = int(shares.argmax())
    if shares[top] >= max_share:
        name = "background" if top == N_CLASSES - 1 else f"digit {top}"
        raise TrainingCollapsed(
            f"training collapsed: the network answers class {top} ({name}) on {shares[top]:.1%} of the "
            f"pixels of {where} ({len(images)} images; {max_share:.0%} or more counts as one class "
            "everywhere). "
            "Try a lower learning rate, a warm-up or gradient clipping (notebook 09)."
        )
    return shares
