"""Interactive views for JupyterLab: a per-digit mask viewer over a set of images.

Introduced in notebook 06 (and used on the dataset alone in notebook 01). The viewer draws with
:func:`viz.render_masks` into one ``ipywidgets.Image`` that it updates in place, so redraws neither flicker
nor leave matplotlib figures open.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
from PIL import Image

from . import m2nist, metrics, viz

#: The channel control's choices: (label, value) for every class and "all digits".
CHANNEL_OPTIONS = [("all", "all")] + [(str(d), d) for d in range(10)] + [("bg", "background")]


class MaskViewer(widgets.VBox):
    """Browse images with their true (and predicted) masks, all digits at once or one channel at a time.

    Introduced in notebook 06 (and used on the dataset alone in notebook 01).

    Args:
        images: uint8 (N, 64, 84).
        true_masks, pred_masks: one-hot uint8 (N, 64, 84, 11), or class maps uint8 (N, 64, 84) with
            10 = background; ``pred_masks`` may be omitted (then only input and truth are shown).
        scale: integer enlargement of each panel.

    Attributes:
        slider (IntSlider), prev_button / next_button (Button), channel (ToggleButtons with values
        ``"all"``, 0-9 and ``"background"``), image (Image, PNG), info (HTML: digits and per-class IoU),
        legend (HTML). Setting ``slider.value`` or ``channel.value`` redraws; so does :meth:`render`.
    """

    def __init__(
        self,
        images: np.ndarray,
        true_masks: np.ndarray,
        pred_masks: np.ndarray | None = None,
        scale: int = 3,
    ) -> None:
        images = np.asarray(images)
        if images.ndim != 3 or len(images) == 0:
            raise ValueError(
                f"images must have shape (N, H, W) with N >= 1, e.g. (N, 64, 84), got {images.shape}"
            )
        self.images = images
        self.true_maps = _as_class_maps("true_masks", true_masks, images.shape)
        self.pred_maps = (
            None if pred_masks is None else _as_class_maps("pred_masks", pred_masks, images.shape)
        )
        self.scale = scale

        self.slider = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image")
        self.prev_button = widgets.Button(
            icon="chevron-left", tooltip="previous image", layout={"width": "3em"}
        )
        self.next_button = widgets.Button(icon="chevron-right", tooltip="next image", layout={"width": "3em"})
        self.channel = widgets.ToggleButtons(
            options=CHANNEL_OPTIONS,
            value="all",
            description="mask",
            tooltips=["all digits"] + [f"digit {d} only" for d in range(10)] + ["background only"],
            style={"button_width": "2.6em"},
        )
        self.image = widgets.Image(format="png")
        self.info = widgets.HTML()
        self.legend = widgets.HTML(_legend_html(self.pred_maps is not None))

        self.prev_button.on_click(lambda _: self._step(-1))
        self.next_button.on_click(lambda _: self._step(1))
        self.slider.observe(lambda _: self.render(), names="value")
        self.channel.observe(lambda _: self.render(), names="value")
        controls = widgets.HBox([self.prev_button, self.slider, self.next_button])
        super().__init__([controls, self.channel, self.image, self.info, self.legend])
        self.render()

    def _step(self, delta: int) -> None:
        self.slider.value = (self.slider.value + delta) % (self.slider.max + 1)

    def render(self) -> None:
        """Draw the current image and channel into ``image`` and describe it in ``info``."""
        i = self.slider.value
        pred = None if self.pred_maps is None else self.pred_maps[i]
        pixels = viz.render_masks(self.images[i], self.true_maps[i], pred, self.channel.value, self.scale)
        self.image.value = png_bytes(pixels)
        self.info.value = _info_html(i, len(self.images), self.true_maps[i], pred)


def mask_viewer(
    images: np.ndarray, true_masks: np.ndarray, pred_masks: np.ndarray | None = None, scale: int = 3
) -> MaskViewer:
    """An interactive per-digit mask viewer (a :class:`MaskViewer`); display it as a cell's last line.

    Introduced in notebook 06 (and used on the dataset alone in notebook 01).

    Args:
        images: uint8 (N, 64, 84).
        true_masks, pred_masks: one-hot uint8 (N, 64, 84, 11) or class maps uint8 (N, 64, 84) with
            10 = background; without ``pred_masks`` the viewer shows the dataset alone.
        scale: integer enlargement of each panel.
    """
    return MaskViewer(images, true_masks, pred_masks, scale)


def png_bytes(rgb: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) -> PNG file contents, for ``ipywidgets.Image.value``."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, format="png")
    return buffer.getvalue()


def _as_class_maps(name: str, masks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """One-hot (N, H, W, 11) or class maps (N, H, W) -> class maps uint8 (N, H, W)."""
    masks = np.asarray(masks)
    if masks.shape == shape + (m2nist.N_CLASSES,):
        return m2nist.to_class_map(masks)
    if masks.shape == shape:
        return masks.astype(np.uint8)
    raise ValueError(
        f"{name} must have shape {shape + (m2nist.N_CLASSES,)} (one-hot) or {shape} (class maps) "
        f"to match the images, got {masks.shape}"
    )


def _digits(class_map: np.ndarray) -> list[int]:
    return [int(c) for c in np.unique(class_map) if c != m2nist.BACKGROUND]


def _info_html(i: int, n: int, true_map: np.ndarray, pred_map: np.ndarray | None) -> str:
    """The image's number and digits and, given a prediction, its digits and per-class IoU."""
    true_digits = _digits(true_map)
    text = f"<b>image {i}</b> of {n} &middot; digits: {', '.join(map(str, true_digits)) or 'none'}"
    if pred_map is not None:
        pred_digits = _digits(pred_map)
        iou = metrics.per_class_iou(metrics.confusion_matrix(true_map, pred_map))
        shown = sorted(set(true_digits) | set(pred_digits))
        scores = ", ".join(f"{d}: {iou[d]:.3f}" for d in shown) or "no digits"
        text += f" &middot; predicted: {', '.join(map(str, pred_digits)) or 'none'} &middot; IoU {scores}"
    return text


def _swatch(rgb: np.ndarray, label: str) -> str:
    r, g, b = viz.to_rgb8(np.asarray(rgb))
    box = f"display:inline-block;width:0.9em;height:0.9em;background:rgb({r},{g},{b});border:1px solid #888"
    return f'<span style="margin-right:0.8em;white-space:nowrap"><span style="{box}"></span> {label}</span>'


def _legend_html(with_prediction: bool) -> str:
    """Panel names, class colours and, with a prediction, the error colours."""
    panels = "input | truth | prediction | errors" if with_prediction else "input | truth"
    lines = [
        f"<b>panels:</b> {panels} &middot; a single channel shows its mask in white",
        "<b>classes:</b> " + "".join(_swatch(c, n) for c, n in zip(viz.CLASS_COLORS, viz.CLASS_NAMES)),
    ]
    if with_prediction:
        lines.append(
            "<b>errors:</b> " + "".join(_swatch(c, n) for c, n in zip(viz.ERROR_COLORS, viz.ERROR_NAMES))
        )
    return "<br>".join(lines)
