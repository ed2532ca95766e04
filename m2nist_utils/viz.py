"""Figures for the series: masks in colour, example grids, learning curves, and ``save_fig``.

Introduced in notebook 01; each notebook adds the plots it needs. Every function returns its
``matplotlib`` Figure so that a notebook cell is one line, and ``save_fig`` writes the ones the README shows.

- :func:`save_fig`: the one way a figure reaches ``img/``.
- Data: :func:`plot_examples`, :func:`plot_channels`, :func:`plot_digits`, :func:`plot_bars`.
- Training and models: :func:`plot_history`, :func:`plot_confusion`, :func:`plot_feature_maps`,
  :func:`plot_score_map`, :func:`plot_predictions`, :func:`plot_channel_grid`,
  :func:`plot_leave_one_out`, :func:`plot_table`. Class colours and error maps live in ``panels``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import config
from .m2nist import BACKGROUND
from .panels import CLASS_COLORS, CLASS_NAMES, class_legend, colorize

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


def plot_confusion(confusion: np.ndarray, labels=None, title: str = "Confusion matrix") -> plt.Figure:
    """A confusion matrix (rows = truth, columns = prediction) with counts written in the cells."""
    n = len(confusion)
    labels = labels if labels is not None else [str(i) for i in range(n)]
    fig, ax = plt.subplots(figsize=(0.5 * n + 2, 0.5 * n + 1.5))
    ax.imshow(np.log1p(confusion), cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            color = "white" if confusion[i, j] > confusion.max() / 3 else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color=color)
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


def plot_score_map(image: np.ndarray, scores: np.ndarray, title: str | None = None) -> plt.Figure:
    """A sliding-window classifier's output: the input, the winning class per window, and its confidence.

    Args:
        image: uint8 (H, W). scores: float (h, w, 10) class scores (logits) per window position.
    """
    probabilities = np.exp(scores - scores.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    fig, axes = plt.subplots(1, 3, figsize=(11, 2.9))
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("input")
    axes[1].imshow(colorize(probabilities.argmax(-1)), interpolation="nearest")
    axes[1].set_title(f"winning class per window ({scores.shape[0]}x{scores.shape[1]})")
    shown = axes[2].imshow(probabilities.max(-1), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    axes[2].set_title("its probability")
    fig.colorbar(shown, ax=axes[2], fraction=0.035)
    for ax in axes:
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


def plot_channel_grid(image: np.ndarray, rows: dict[str, np.ndarray]) -> plt.Figure:
    """The input, then one probability map per digit channel, one row per model (notebook 05).

    Reproduces the article's figure of a 10-class FCN's channels; white = probability 1.

    Args:
        image: uint8 (64, 84). rows: {row title: probabilities float (64, 84, C)}, C = 10 or 11.
    """
    n_channels = max(p.shape[-1] for p in rows.values())
    fig, axes = plt.subplots(
        len(rows), n_channels + 1, figsize=(1.45 * (n_channels + 1), 1.3 * len(rows) + 0.4), squeeze=False
    )
    for r, (title, probabilities) in enumerate(rows.items()):
        axes[r, 0].imshow(image, cmap="gray")
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
        for c in range(n_channels):
            ax = axes[r, c + 1]
            if c < probabilities.shape[-1]:
                ax.imshow(probabilities[..., c], cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(CLASS_NAMES[c] if c < 10 else "bg", fontsize=9)
        if r == 0:
            axes[r, 0].set_title("input", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_leave_one_out(
    runs: dict[str, list[float]], reference: str = "final", xlabel: str = "validation mean IoU"
) -> plt.Figure:
    """The final model minus one idea: each configuration's mean score over its seeds, one bar each.

    Args:
        runs: {configuration: its per-seed scores}; ``reference`` (the final model) is drawn first, and a
            band of its mean +- twice the larger spread shows where a difference is not distinguishable.
    Error bars are the standard deviation over the seeds (their number is written beside each bar).
    """
    names = [reference] + sorted((k for k in runs if k != reference), key=lambda k: -np.mean(runs[k]))
    means = np.array([np.mean(runs[k]) for k in names])
    stds = np.array([np.std(runs[k]) for k in names])
    y = np.arange(len(names))[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(names) + 1.2))
    colors = ["tab:green"] + ["tab:blue"] * (len(names) - 1)
    ax.barh(y, means, xerr=stds, color=colors, capsize=3, height=0.6, label="mean; error bar: std over seeds")
    ax.axvline(means[0], color="tab:green", lw=1, ls="--")
    for yi, m, k in zip(y, means, names):
        ax.text(min(m, 1.0) + 0.01, yi, f"{m:.3f}  ({len(runs[k])} seed{'s' if len(runs[k]) != 1 else ''})",
                va="center", fontsize=8)  # fmt: skip
    ax.set_yticks(y, [k if k == reference else f"- {k.removeprefix('no ')}" for k in names], fontsize=9)
    ax.set_xlim(0, 1.25)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
