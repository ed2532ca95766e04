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
    images: np.ndarray, true_maps: np.ndarray, pred_maps: np.ndarray, n: int = 8, title: str | None = None
) -> plt.Figure:
    """Rows: input, ground truth, prediction, for ``n`` images (class maps uint8 (N, 64, 84))."""
    n = min(n, len(images))
    fig, axes = plt.subplots(3, n, figsize=(2.1 * n, 5.2), squeeze=False)
    for i in range(n):
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


# ----------------------------------------------------------------------------------------------------
# Mask panels as pixels (the interactive viewer in ``widgets`` shows these; no figure is created)
# ----------------------------------------------------------------------------------------------------
#: What each pixel of an error map can be, in the order of the rows of ``ERROR_COLORS``.
ERROR_NAMES = ("correct digit", "missed digit", "wrong digit", "false alarm", "correct background")
#: Error map colours, RGB in [0, 1]: green = digit found with the right class, blue = digit predicted as
#: background, red = digit predicted as another digit, amber = background predicted as a digit, and the
#: background colour of ``CLASS_COLORS`` for background predicted as background.
ERROR_COLORS = np.array(
    [
        [0.2, 0.8, 0.2],
        [0.2, 0.45, 1.0],
        [0.9, 0.1, 0.1],
        [1.0, 0.75, 0.0],
        CLASS_COLORS[BACKGROUND],
    ]
)
#: Width of the grey strip between the panels of :func:`render_masks`, and its colour (RGB uint8): grey, so
#: that two white single-channel masks side by side stay two panels.
PANEL_GAP = 4
PANEL_GAP_COLOR = (160, 160, 160)
#: The panels of :func:`render_masks`, left to right (the first two alone without a prediction).
PANEL_TITLES = ("input", "truth", "prediction", "errors")


def to_rgb8(rgb: np.ndarray) -> np.ndarray:
    """RGB float (..., 3) in [0, 1] -> RGB uint8 (..., 3), rounding ``255 * x``."""
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def render_masks(
    image: np.ndarray,
    true_map: np.ndarray,
    pred_map: np.ndarray | None = None,
    channel: int | str = "all",
    scale: int = 3,
    gap: int = PANEL_GAP,
) -> np.ndarray:
    """Side-by-side panels as one RGB image: input, truth and, given a prediction, prediction and errors.

    Introduced in notebook 06 (the interactive viewer of ``widgets``), which shows it without a figure.

    Args:
        image: uint8 (H, W), e.g. (64, 84). true_map, pred_map: class maps uint8 (H, W), 10 = background.
        channel: ``"all"`` shows every class in its ``CLASS_COLORS`` colour; a digit 0-9, or
            ``"background"`` / 10, shows that channel's mask alone, white on black.
        scale: each panel is enlarged by this integer factor (nearest neighbour, so pixels stay crisp).
        gap: width of the ``PANEL_GAP_COLOR`` strip between panels.

    Returns:
        RGB uint8 (H * scale, n * W * scale + (n - 1) * gap, 3) with n = 2 panels, or 4 with a prediction.
        The error panel colours pixels by ``ERROR_COLORS`` (see ``ERROR_NAMES``); for a single channel it
        compares that channel's mask only, so a pixel is "correct digit" (in both masks), "missed digit",
        "false alarm" or "correct background" (in neither), never "wrong digit".
    """
    image, true_map = np.asarray(image), np.asarray(true_map)
    if image.ndim != 2:
        raise ValueError(f"image must have shape (H, W), e.g. (64, 84), got {image.shape}")
    _check_class_map("true_map", true_map, image.shape)
    if pred_map is not None:
        pred_map = np.asarray(pred_map)
        _check_class_map("pred_map", pred_map, image.shape)
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    index = _channel_index(channel)

    def mask(class_map: np.ndarray) -> np.ndarray:
        if index is None:
            return colorize(class_map)
        return np.repeat((class_map == index)[..., None], 3, axis=-1).astype(np.float64)

    panels = [np.repeat((image.astype(np.float64) / 255.0)[..., None], 3, axis=-1), mask(true_map)]
    if pred_map is not None:
        panels += [mask(pred_map), ERROR_COLORS[_error_codes(true_map, pred_map, index)]]
    height = image.shape[0] * scale
    strip = np.empty((height, gap, 3), np.uint8)
    strip[:] = PANEL_GAP_COLOR
    row: list[np.ndarray] = []
    for panel in panels:
        if row:
            row.append(strip)
        row.append(np.repeat(np.repeat(to_rgb8(panel), scale, axis=0), scale, axis=1))
    return np.concatenate(row, axis=1)


def _check_class_map(name: str, class_map: np.ndarray, shape: tuple[int, ...]) -> None:
    if class_map.shape != shape:
        raise ValueError(f"{name} must be a class map of the image's shape {shape}, got {class_map.shape}")
    if class_map.size and (class_map.min() < 0 or class_map.max() > BACKGROUND):
        raise ValueError(
            f"{name} must hold classes 0..{BACKGROUND}, got {class_map.min()}..{class_map.max()}"
        )


def _channel_index(channel: int | str) -> int | None:
    """``"all"`` -> None; ``"background"`` -> 10; a class 0-10 -> itself."""
    if isinstance(channel, str):
        if channel in ("all", "background"):
            return None if channel == "all" else BACKGROUND
    elif (
        isinstance(channel, int | np.integer) and not isinstance(channel, bool) and 0 <= channel <= BACKGROUND
    ):
        return int(channel)
    raise ValueError(f"channel must be 'all', a digit 0-9, or 'background' / 10, got {channel!r}")


def error_map(true_maps: np.ndarray, pred_maps: np.ndarray, channel: int | str = "all") -> np.ndarray:
    """Per pixel, what kind of pixel it is: an index into ``ERROR_NAMES`` (and ``ERROR_COLORS``).

    Introduced in notebook 06, which counts each kind over the test split (``np.bincount``).

    Args:
        true_maps, pred_maps: class maps uint8 of one shape, (H, W) or (N, H, W), 10 = background.
        channel: ``"all"`` (0 correct digit, 1 missed digit, 2 wrong digit, 3 false alarm, 4 correct
            background), or one channel (a digit 0-9, or ``"background"`` / 10), for which "wrong digit"
            cannot occur (see :func:`render_masks`).

    Returns:
        uint8 codes 0-4 of the maps' shape.
    """
    true_maps, pred_maps = np.asarray(true_maps), np.asarray(pred_maps)
    if true_maps.shape != pred_maps.shape:
        raise ValueError(f"true_maps {true_maps.shape} and pred_maps {pred_maps.shape} must have one shape")
    return _error_codes(true_maps, pred_maps, _channel_index(channel)).astype(np.uint8)


def _error_codes(true_map: np.ndarray, pred_map: np.ndarray, index: int | None) -> np.ndarray:
    """Per pixel, the row of ``ERROR_COLORS`` that describes it (see :func:`render_masks`)."""
    if index is None:
        true_in, pred_in = true_map != BACKGROUND, pred_map != BACKGROUND
        hit = true_in & (pred_map == true_map)
        wrong = true_in & pred_in & ~hit
    else:
        true_in, pred_in = true_map == index, pred_map == index
        hit = true_in & pred_in
        wrong = np.zeros_like(hit)
    return np.select([hit, true_in & ~pred_in, wrong, ~true_in & pred_in], [0, 1, 2, 3], default=4)


def plot_error_maps(
    images: np.ndarray,
    true_maps: np.ndarray,
    pred_maps: np.ndarray,
    titles: list[str] | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Columns of input, truth, prediction and error map (``ERROR_COLORS``): the viewer as a static figure.

    Introduced in notebook 06, for readers who see the notebook without a live kernel (widgets need one).
    Missed-digit and false-alarm pixels are ringed in white, so that single pixels stay visible.

    Args:
        images: uint8 (N, 64, 84). true_maps, pred_maps: class maps uint8 (N, 64, 84), 10 = background.
        titles: one column title per image (e.g. its index and what is wrong with it).
    """
    from matplotlib.patches import Patch

    n = len(images)
    fig, axes = plt.subplots(4, n, figsize=(2.1 * n + 1.6, 6.4), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i], cmap="gray", vmin=0, vmax=255)
        axes[1, i].imshow(colorize(true_maps[i]), interpolation="nearest")
        axes[2, i].imshow(colorize(pred_maps[i]), interpolation="nearest")
        kinds = error_map(true_maps[i], pred_maps[i])
        axes[3, i].imshow(ERROR_COLORS[kinds], interpolation="nearest")
        # Misses and false alarms are often single pixels, invisible at this size: ring each one.
        rows, cols = np.nonzero((kinds == 1) | (kinds == 3))
        axes[3, i].scatter(cols, rows, s=60, facecolors="none", edgecolors="white", linewidths=0.8)
        height, width = kinds.shape
        axes[3, i].set(xlim=(-0.5, width - 0.5), ylim=(height - 0.5, -0.5))  # rings must not widen the panel
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for row, label in enumerate(PANEL_TITLES):
        axes[row, 0].set_ylabel(label)
    class_legend(axes[1, -1], fontsize=7)
    axes[3, -1].legend(
        handles=[Patch(color=c, label=name) for c, name in zip(ERROR_COLORS, ERROR_NAMES)],
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
        fontsize=7,
    )
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


def plot_ablation(
    rows: list[dict[str, object]], columns: dict[str, str], budget_from: int | None = None, title: str = ""
) -> plt.Figure:
    """Ablation bars: the mean over seeds of each score column, with the seeds' spread as error bars.

    Args:
        rows: one per step, with ``step`` and, for each column key, a list of per-seed values.
        columns: {column key: legend label}, drawn side by side.
        budget_from: index of the first step that changes the training budget rather than the network;
            those steps are shaded and labelled, so that they are not read as architecture.
    """
    names = [str(r["step"]) for r in rows]
    x = np.arange(len(rows))
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(max(7, 1.05 * len(rows) + 2), 4.2))
    for i, (key, label) in enumerate(columns.items()):
        means = [float(np.mean(r[key])) for r in rows]
        spread = [float(np.std(r[key])) for r in rows]
        offset = (i - (len(columns) - 1) / 2) * width
        color = plt.get_cmap("tab10").colors[i]
        bars = ax.bar(x + offset, means, width, yerr=spread, capsize=2, label=label, color=color)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    if budget_from is not None:
        ax.axvspan(budget_from - 0.5, len(rows) - 0.5, color="0.92", zorder=0)
        ax.text(budget_from - 0.4, 1.1, "training budget, not the network", fontsize=8, color="0.35")
    ax.set_xticks(x, names, rotation=25, ha="right", fontsize=9)
    ax.set_ylim(0, 1.16)
    ax.set_ylabel("validation IoU")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
