"""Figures for the series: masks in colour, example grids, learning curves, and ``save_fig``.

Introduced in notebook 01; each notebook adds the plots it needs. Every function returns its
``matplotlib`` Figure so that a notebook cell is one line, and ``save_fig`` writes the ones the README shows.

- :func:`save_fig`: the one way a figure reaches ``img/``.
- Data: :func:`plot_examples`, :func:`plot_channels`, :func:`plot_digits`, :func:`plot_bars`.
- Training and models: :func:`plot_history`, :func:`plot_confusion`, :func:`plot_feature_maps`,
  :func:`plot_score_map`, :func:`plot_predictions`, :func:`plot_table`.
- Experiments (notebooks 06, 07, 09): :func:`plot_leave_one_out`, :func:`plot_rate_grid`, :func:`plot_sweep`,
  :func:`plot_lr_range`, :func:`plot_maps` live in ``charts``.
  Class colours, error maps and ``plot_channel_grid`` (a model's probability per channel) live in ``panels``
  and are imported here too.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import config
from .charts import (  # noqa: F401 (viz API)
    plot_leave_one_out,
    plot_lr_range,
    plot_maps,
    plot_rate_grid,
    plot_sweep,
)
from .files import atomic_save
from .m2nist import BACKGROUND
from .panels import CLASS_COLORS, class_legend, colorize, plot_channel_grid  # noqa: F401 (viz API)

FIG_DPI = 100


def save_fig(fig: plt.Figure, name: str, folder: str | Path | None = None) -> Path:
    """Write ``fig`` as ``img/<name>.png`` at a fixed dpi and without volatile metadata.

    Fixed settings keep reruns from churning the committed files; ``M2NIST_HOME`` (tests) moves the
    folder along with ``data/`` and ``models/``.
    """
    path = Path(folder or config.IMG_DIR) / f"{name}.png"
    return atomic_save(
        path,
        lambda f: fig.savefig(f, format="png", dpi=FIG_DPI, bbox_inches="tight", metadata={"Software": None}),
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
    long_names = max(len(str(label)) for label in labels) > 3
    fig, ax = plt.subplots(
        figsize=(max(5, (1.1 if long_names else 0.6) * len(values) + 2), 3.6 if long_names else 3.2)
    )
    bars = ax.bar(labels, values, color=[CLASS_COLORS[i % 10] for i in range(len(values))])
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    if max(len(str(label)) for label in labels) > 3:
        # Long names (ablation steps) would overlap side by side.
        ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=9)
    fig.tight_layout()
    return fig


def plot_history(
    history: dict[str, list[float]], metrics: tuple[str, ...] = ("loss", "accuracy")
) -> plt.Figure:
    """Learning curves: one panel per metric, training and validation (``val_`` keys) per epoch."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.2), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion(
    confusion: np.ndarray, labels=None, title: str = "Confusion matrix", unit: str = "count"
) -> plt.Figure:
    """A confusion matrix (rows = truth, columns = prediction) with counts written in the cells.

    Colour is the count on a log scale (so that small off-diagonal counts show beside a large diagonal),
    read off the colour bar; empty cells are left white. ``unit`` names what is counted (digits, pixels).
    """
    from matplotlib.colors import ListedColormap, LogNorm

    n = len(confusion)
    labels = labels if labels is not None else [str(i) for i in range(n)]
    norm = LogNorm(vmin=1, vmax=max(int(confusion.max()), 2))
    blues = ListedColormap(plt.get_cmap("Blues")(np.linspace(0.15, 1, 256)))  # a count of 1 is not white
    fig, ax = plt.subplots(figsize=(0.5 * n + 3, 0.5 * n + 1.5))
    shown = ax.imshow(np.ma.masked_equal(confusion, 0), cmap=blues, norm=norm)
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            color = "white" if norm(count) > 0.6 else "black"
            size = 8 if count < 100_000 else 6
            ax.text(j, i, str(count), ha="center", va="center", fontsize=size, color=color)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, label=f"{unit} (log scale; empty cells: 0)")
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_digits(images: np.ndarray, titles: list[str], n_cols: int = 10) -> plt.Figure:
    """Small images in a grid, each with a title (e.g. "7 -> 1" for a misclassified digit)."""
    n = len(images)
    rows = max(1, int(np.ceil(n / n_cols)))
    fig, axes = plt.subplots(rows, n_cols, figsize=(1.2 * n_cols, 1.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images, titles):
        ax.imshow(image, cmap="gray_r")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_feature_maps(image: np.ndarray, features: np.ndarray, title: str | None = None) -> plt.Figure:
    """An input image beside each channel of a feature map.

    Args:
        image: uint8 (H, W). features: float (h, w, C), e.g. ``pool2`` (14, 19, 8).
    """
    n = features.shape[-1]
    cols = min(n + 1, 5)
    rows = int(np.ceil((n + 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows), squeeze=False)
    axes = axes.ravel()
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("input", fontsize=9)
    for c in range(n):
        axes[c + 1].imshow(features[..., c], cmap="magma", interpolation="nearest")
        axes[c + 1].set_title(f"channel {c}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_score_map(
    image: np.ndarray, scores: np.ndarray, title: str | None = None, window: int = 28, stride: int = 4
) -> plt.Figure:
    """A sliding-window classifier's output on its input: the winning class per window, and its probability.

    Each window's answer is drawn as a ``stride`` x ``stride`` cell at the centre of its input patch
    (window (i, j) covers rows ``stride * i`` to ``stride * i + window - 1``), on the input's own axes, with
    the outline of the ink drawn over it, so a window centred on a digit sits on that digit. The dashed frame
    is where window centres can be; the input panel outlines the first window.

    Args:
        image: uint8 (H, W). scores: float (h, w, 10) class scores (logits) per window position.
        window, stride: the classifier's window size and its step, in input pixels (28 and 4 for notebook 04's
            convolutionalized CNN).
    """
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    probabilities = np.exp(scores - scores.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    h, w = scores.shape[:2]
    centre = (window - 1) / 2
    # Cell (i, j) spans its window's centre +- stride / 2, in the input's pixel coordinates.
    extent = (centre - stride / 2, centre + stride * (w - 1) + stride / 2,
              centre + stride * (h - 1) + stride / 2, centre - stride / 2)  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.1))
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].add_patch(Rectangle((-0.5, -0.5), window, window, fill=False, ec="tab:orange", lw=1.2))
    axes[0].plot(centre, centre, "o", color="tab:orange", ms=3)
    axes[0].set_title(f"input: window (0, 0), {window}x{window}, and its centre", fontsize=10)
    axes[1].imshow(colorize(probabilities.argmax(-1)), extent=extent, interpolation="nearest")
    axes[1].set_title(f"winning class per window ({h}x{w})")
    shown = axes[2].imshow(
        probabilities.max(-1), extent=extent, cmap="viridis", vmin=0, vmax=1, interpolation="nearest"
    )
    axes[2].set_title("its probability")
    fig.colorbar(shown, ax=axes[2], fraction=0.035, label="probability")
    halo = [patheffects.withStroke(linewidth=2.2, foreground="black")]
    for ax in axes:
        if ax is not axes[0]:
            ax.set_facecolor("0.85")
            outline = ax.contour(image > 0, levels=[0.5], colors="white", linewidths=0.9)
            outline.set(path_effects=halo)
        frame = Rectangle((extent[0], extent[3]), extent[1] - extent[0], extent[2] - extent[3], fill=False)
        ax.add_patch(frame).set(ec="tab:orange" if ax is axes[0] else "0.3", ls="--", lw=0.9)
    for ax in axes:
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
    class_legend(axes[1], fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_predictions(
    images: np.ndarray,
    true_maps: np.ndarray,
    pred_maps: np.ndarray,
    n: int = 8,
    title: str | None = None,
    titles: list[str] | None = None,
) -> plt.Figure:
    """Rows: input, ground truth, prediction, for ``n`` images (class maps uint8 (N, 64, 84)).

    ``titles``: one per column (e.g. each image's IoU), above the inputs.
    """
    n = min(n, len(images))
    fig, axes = plt.subplots(3, n, figsize=(2.1 * n, 5.2), squeeze=False)
    for i in range(n):
        if titles:
            axes[0, i].set_title(titles[i], fontsize=9)
        axes[0, i].imshow(images[i], cmap="gray", vmin=0, vmax=255)
        axes[1, i].imshow(colorize(true_maps[i]), interpolation="nearest")
        axes[2, i].imshow(colorize(pred_maps[i]), interpolation="nearest")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for row, label in enumerate(("input", "truth", "prediction")):
        axes[row, 0].set_ylabel(label)
    class_legend(axes[2, -1], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_table(rows: list[dict[str, object]], title: str | None = None) -> plt.Figure:
    """A table of dict rows as a figure (the shape walk-through for the README)."""
    keys = list(rows[0])
    fig, ax = plt.subplots(figsize=(1.9 * len(keys) + 1, 0.32 * (len(rows) + 1) + 0.6))
    ax.axis("off")
    table = ax.table(
        cellText=[[str(r[k]) for k in keys] for r in rows], colLabels=keys, loc="center", cellLoc="left"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.25)
    for (row, _), cell in table.get_celld().items():
        cell.set_edgecolor("#dddddd")
        if row == 0:
            cell.set_text_props(weight="bold")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
