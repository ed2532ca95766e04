"""Figures for the series: masks in colour, example grids, learning curves, and ``save_fig``.

Introduced in notebook 01; each notebook adds the plots it needs. Every function returns its
``matplotlib`` Figure so that a notebook cell is one line, and ``save_fig`` writes the ones the README shows.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import config

BACKGROUND = 10
#: One colour per digit class (matplotlib's tab10) and near-black for background, as RGB in [0, 1].
CLASS_COLORS = np.vstack([plt.get_cmap("tab10").colors, [[0.08, 0.08, 0.1]]])
CLASS_NAMES = [str(d) for d in range(10)] + ["background"]
FIG_DPI = 100


def save_fig(fig: plt.Figure, name: str, folder: str | Path | None = None) -> Path:
    """Write ``fig`` as ``img/<name>.png`` at a fixed dpi and without volatile metadata.

    Fixed settings keep reruns from churning the committed files; ``M2NIST_HOME`` (tests) moves the
    folder along with ``data/`` and ``models/``.
    """
    folder = Path(folder or config.IMG_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    tmp = path.with_suffix(".png.tmp")
    fig.savefig(tmp, format="png", dpi=FIG_DPI, bbox_inches="tight", metadata={"Software": None})
    tmp.replace(path)
    return path


def colorize(class_map: np.ndarray) -> np.ndarray:
    """Class map uint8 (H, W) with 10 = background -> RGB float (H, W, 3), one colour per class."""
    return CLASS_COLORS[np.asarray(class_map, dtype=np.intp)]


def overlay(image: np.ndarray, class_map: np.ndarray) -> np.ndarray:
    """The image in grey with each digit's pixels tinted in its class colour: RGB float (H, W, 3)."""
    grey = np.repeat((np.asarray(image, np.float32) / 255.0)[..., None], 3, axis=-1)
    tint = colorize(class_map)
    digit = (np.asarray(class_map) != BACKGROUND)[..., None]
    return np.where(digit, 0.35 * grey + 0.65 * tint, 0.6 * grey)


def class_legend(ax: plt.Axes, classes=range(10), **kwargs) -> None:
    """A legend of class colours on ``ax``."""
    from matplotlib.patches import Patch

    handles = [Patch(color=CLASS_COLORS[c], label=CLASS_NAMES[c]) for c in classes]
    ax.legend(
        handles=handles, **{"loc": "center left", "bbox_to_anchor": (1.01, 0.5), "frameon": False, **kwargs}
    )


def plot_examples(
    images: np.ndarray, class_maps: np.ndarray, n: int = 6, title: str | None = None
) -> plt.Figure:
    """A grid of ``n`` M2NIST images (top row) over their coloured masks (bottom row).

    Args:
        images: uint8 (N, 64, 84). class_maps: uint8 (N, 64, 84) with 10 = background.
    """
    n = min(n, len(images))
    fig, axes = plt.subplots(2, n, figsize=(2.1 * n, 3.6), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i], cmap="gray", vmin=0, vmax=255)
        axes[1, i].imshow(colorize(class_maps[i]), interpolation="nearest")
        digits = sorted(set(np.unique(class_maps[i])) - {BACKGROUND})
        axes[0, i].set_title(" ".join(map(str, digits)), fontsize=10)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("mask")
    class_legend(axes[1, -1], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_channels(image: np.ndarray, mask: np.ndarray) -> plt.Figure:
    """One image and its 11 mask channels side by side (the article's channel picture, with background).

    Args:
        image: uint8 (64, 84). mask: uint8 (64, 84, 11) one-hot.
    """
    fig, axes = plt.subplots(2, 6, figsize=(13, 4.2))
    axes = axes.ravel()
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("input")
    for c in range(11):
        axes[c + 1].imshow(mask[..., c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[c + 1].set_title(f"channel {c}" + (" (bg)" if c == BACKGROUND else ""), fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_bars(values: dict[str, float] | list[float], title: str, ylabel: str, labels=None) -> plt.Figure:
    """A small bar chart with the values written on the bars (class shares, per-class IoU, ablations)."""
    if isinstance(values, dict):
        labels, values = list(values), list(values.values())
    labels = labels if labels is not None else [str(i) for i in range(len(values))]
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(values) + 2), 3.2))
    bars = ax.bar(labels, values, color=[CLASS_COLORS[i % 10] for i in range(len(values))])
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
