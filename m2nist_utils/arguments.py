"""Argument types shared by the commands of the command line (``__main__`` and ``distributed``).

- :func:`number`: an int or float within bounds, refused by argparse with a message naming the flag.
"""

from __future__ import annotations

import argparse
import math


def number(kind: type = int, low: float = 0, high: float | None = None, above: bool = False):
    """An argparse type: an int (or float) from ``low`` to ``high``, or above ``low`` with ``above``.

    Raising ``ArgumentTypeError`` lets argparse name the flag in its one-line error
    (``argument --seed: must be at least 0, got -1``). Introduced with the command line (notebook 01).
    """

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            whole = "whole " if kind is int else ""
            raise argparse.ArgumentTypeError(f"expected a {whole}number, got {text!r}") from None
        too_high = high is not None and value > high
        if not math.isfinite(value) or value < low or (above and value == low) or too_high:
            if high is not None:
                bounds = f"from {low} to {high}"
            else:
                bounds = f"{'above' if above else 'at least'} {low}"
            # An int as read (007 gives 7), a float as typed (0, not 0.0; nan).
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value if kind is int else text}")
        return value

    return parse
