"""Conclusions checked in code: a sentence drawing one from numbers is followed by its check (every notebook).

A notebook that writes "context helps" follows it with ``claim(no_context < final - 2 * spread, "context
helps")``. In full mode (``make run``, whose outputs are committed) a claim that the numbers no longer support
raises :class:`ClaimError`, so a re-run fails instead of committing prose its own outputs contradict. In quick
mode (CI) the models train far less and the prose describes the full run, so a claim is reported, not raised.

- :func:`claim`: check one conclusion; :class:`ClaimError`: raised when it fails in full mode.
- :func:`mean_std`, :func:`gap`, :func:`distinguishable`: comparing runs over seeds (a gap smaller than twice
  the larger spread is "not distinguishable").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import config


class ClaimError(AssertionError):
    """A conclusion written in the series that its own numbers no longer support."""


def claim(condition: bool, statement: str, quick: bool | None = None) -> bool:
    """Check ``statement``; print it with its verdict, raise :class:`ClaimError` when false in full mode.

    Args:
        condition: the check, computed from the outputs the statement rests on.
        statement: the conclusion in words, as the prose says it.
        quick: whether to report rather than raise (default: ``config.QUICK``).
    Returns:
        ``condition`` as a bool (a quick-mode caller may branch on it).
    """
    quick = config.QUICK if quick is None else quick
    holds = bool(condition)
    if holds:
        print(f"claim holds: {statement}")
    elif quick:
        print(f"claim not supported in quick mode (checked in full mode only): {statement}")
    else:
        raise ClaimError(f"no longer supported by this run's numbers: {statement}")
    return holds


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation of runs over seeds."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std())


def gap(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and the threshold a difference must pass: twice the larger spread."""
    (mean_a, std_a), (mean_b, std_b) = mean_std(a), mean_std(b)
    return mean_a - mean_b, 2 * max(std_a, std_b)


def distinguishable(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two sets of runs differ by more than twice the larger standard deviation over seeds."""
    difference, threshold = gap(a, b)
    return abs(difference) > threshold
