"""Mask panels as pixels: input, truth, prediction and error map side by side (notebook 08).

The interactive viewer in ``widgets`` shows these RGB arrays; :func:`plot_error_maps` draws them as a
figure.

- :func:`render_masks`: one row of panels for one image, all digits or one channel.
- :func:`error_map`, :func:`plot_error_maps`: each pixel's kind of error (:data:`ERROR_NAMES`, drawn in
  :data:`ERROR_COLORS`).
- :func:`plot_channel_grid`: a model's probability map per class channel, one row per model (notebook 05;
  ``viz.plot_channel_grid`` is the same function).
- :data:`CLASS_COLORS`, :data:`CLASS_NAMES`, :func:`colorize`, :func:`class_legend`, :func:`to_rgb8`: class
  colours and names, as RGB in [0, 1] or uint8, and their legend.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .m2nist import BACKGROUND

#: One colour per digit class (matplotlib's tab10) and near-black for background, as RGB in [0, 1].
CLASS_COLORS = np.vstack([plt.get_cmap("tab10").colors, [[0.08, 0.08, 0.1]]])
CLASS_NAMES = [str(d) for d in range(10)] + ["background"]


def colorize(class_map: np.ndarray) -> np.ndarray:
    """Class map uint8 (H, W) with 10 = background -> RGB float (H, W, 3), one colour per class."""
    return CLASS_COLORS[np.asarray(class_map, dtype=np.intp)]


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


def class_legend(ax: plt.Axes, classes=range(10), **kwargs) -> None:
    """A legend of class colours on ``ax``."""
    from matplotlib.patches import Patch

    handles = [Patch(color=CLASS_COLORS[c], label=CLASS_NAMES[c]) for c in classes]
    ax.legend(
        handles=handles, **{"loc": "center left", "bbox_to_anchor": (1.01, 0.5), "frameon": False, **kwargs}
    )


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

    Introduced in notebook 08 (the interactive viewer of ``widgets``), which shows it without a figure.

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

    Introduced in notebook 08, which counts each kind over the test split (``np.bincount``).

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

    Introduced in notebook 08, for readers who see the notebook without a live kernel (widgets need one).
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


def plot_channel_grid(image: np.ndarray, rows: dict[str, np.ndarray]) -> plt.Figure:
    """The input, then one probability map per digit channel, one row per model (notebook 05).

    Reproduces the article's figure of a 10-class FCN's channels; grey level = probability, from black (0) to
    white (1), as the colour bar shows.

    Args:
        image: uint8 (64, 84). rows: {row title: probabilities float (64, 84, C)}, C = 10 or 11.
    """
    n_channels = max(p.shape[-1] for p in rows.values())
    fig, axes = plt.subplots(
        len(rows),
        n_channels + 1,
        figsize=(1.45 * (n_channels + 1) + 0.6, 1.3 * len(rows) + 0.4),
        squeeze=False,
    )
    shown = None
    for r, (title, probabilities) in enumerate(rows.items()):
        axes[r, 0].imshow(image, cmap="gray")
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
        for c in range(n_channels):
            ax = axes[r, c + 1]
            if c < probabilities.shape[-1]:
                shown = ax.imshow(probabilities[..., c], cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(CLASS_NAMES[c] if c < 10 else "bg", fontsize=9)
        if r == 0:
            axes[r, 0].set_title("input", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if shown is not None:
        # A bar of its own to the right of the grid, as tall as the rows (tight_layout ignores it).
        top, bottom = axes[0, -1].get_position().y1, axes[-1, -1].get_position().y0
        right = axes[0, -1].get_position().x1
        bar = fig.add_axes((right + 0.008, bottom, 0.006, top - bottom))
        fig.colorbar(shown, cax=bar, ticks=[0, 0.5, 1])
        bar.set_ylabel("probability", fontsize=8)
        bar.tick_params(labelsize=8)
    return fig
