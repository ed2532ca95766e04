"""Interactive views for JupyterLab: a per-digit mask viewer over a set of images.

Introduced in notebook 08 (and used on the dataset alone in notebook 01). The viewer draws with
:func:`panels.render_masks` into one ``ipywidgets.Image`` that it updates in place, so redraws neither flicker
nor leave matplotlib figures open; a row of HTML titles above it names the panels.

- :class:`MaskViewer`, :func:`mask_viewer`: the viewer; :func:`png_bytes`: an RGB array as PNG bytes.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
from PIL import Image

from . import m2nist, metrics, panels

#: The channel control's choices: (label, value) for "all digits" and every class, labels written in full.
CHANNEL_OPTIONS = [("all", "all")] + [(str(d), d) for d in range(10)] + [("background", "background")]
#: Each channel button as wide as its own label: a fixed width either cuts "all" and "background" to "a..."
#: and "b..." (JupyterLab pads a button by 12 px a side) or makes ten one-digit buttons needlessly wide.
CHANNEL_BUTTON_WIDTH = "auto"


class MaskViewer(widgets.VBox):
    """Browse images with their true (and predicted) masks, all digits at once or one channel at a time.

    Introduced in notebook 08 (and used on the dataset alone in notebook 01).

    Args:
        images: uint8 (N, 64, 84).
        true_masks, pred_masks: one-hot uint8 (N, 64, 84, 11), or class maps uint8 (N, 64, 84) with
            10 = background; ``pred_masks`` may be omitted (then only input and truth are shown).
        scale: integer enlargement of each panel.

    Attributes:
        slider (IntSlider), prev_button / next_button (Button), channel (ToggleButtons with values
        ``"all"``, 0-9 and ``"background"``), titles (HTML: one title above each panel), image (Image,
        PNG), info (HTML: digits and per-class IoU), legend (HTML). Setting ``slider.value`` or
        ``channel.value`` redraws; so does :meth:`render`.
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
            tooltips=["all digits"] + [f"digit {d} only" for d in range(10)] + ["background only"],
            style={"button_width": CHANNEL_BUTTON_WIDTH},
        )
        # Titles and image share one box at the image's natural width: when the page is narrower the
        # browser shrinks the image (max-width: 100%), and titles placed in percent shrink with it.
        n_panels = 2 if self.pred_maps is None else 4
        self._panel_width = images.shape[2] * scale
        self._row_width = n_panels * self._panel_width + (n_panels - 1) * panels.PANEL_GAP
        self.titles = widgets.HTML(layout={"width": "100%", "margin": "0"})
        self.image = widgets.Image(format="png", layout={"width": "100%", "margin": "0"})
        stack = widgets.VBox(
            [self.titles, self.image], layout={"width": f"{self._row_width}px", "max_width": "100%"}
        )
        self.info = widgets.HTML()
        self.legend = widgets.HTML(_legend_html(self.pred_maps is not None))

        self.prev_button.on_click(lambda _: self._step(-1))
        self.next_button.on_click(lambda _: self._step(1))
        self.slider.observe(lambda _: self.render(), names="value")
        self.channel.observe(lambda _: self.render(), names="value")
        controls = widgets.HBox([self.prev_button, self.slider, self.next_button])
        # ToggleButtons would put its own description on a line above the buttons: a label beside them.
        channels = widgets.HBox(
            [widgets.Label("mask", layout={"width": "auto", "margin": "0 0.6em 0 0.3em"}), self.channel]
        )
        super().__init__([controls, channels, stack, self.info, self.legend])
        self.render()

    def _step(self, delta: int) -> None:
        self.slider.value = (self.slider.value + delta) % (self.slider.max + 1)

    def render(self) -> None:
        """Draw the current image and channel into ``image`` and describe it in ``info``."""
        i = self.slider.value
        pred = None if self.pred_maps is None else self.pred_maps[i]
        pixels = panels.render_masks(self.images[i], self.true_maps[i], pred, self.channel.value, self.scale)
        self.image.value = png_bytes(pixels)
        self.titles.value = self._titles_html()
        self.info.value = _info_html(i, len(self.images), self.true_maps[i], pred)

    def _titles_html(self) -> str:
        """One centred title per panel, sized and spaced in percent of the image's width (long ones wrap)."""
        names = list(panels.PANEL_TITLES[: 2 if self.pred_maps is None else 4])
        if self.channel.value != "all":
            label = dict((value, label) for label, value in CHANNEL_OPTIONS)[self.channel.value]
            names[1:] = [f"{name}: {label} only" for name in names[1:]]
        width = 100 * self._panel_width / self._row_width
        gap = 100 * panels.PANEL_GAP / self._row_width
        cells = "".join(
            f'<div class="m2nist-panel-title" style="width:{width:.4f}%;'
            f'margin-left:{gap if k else 0:.4f}%;text-align:center;line-height:1.3">'
            f"<b>{name}</b></div>"
            for k, name in enumerate(names)
        )
        return f'<div style="display:flex;width:100%">{cells}</div>'


def mask_viewer(
    images: np.ndarray, true_masks: np.ndarray, pred_masks: np.ndarray | None = None, scale: int = 3
) -> MaskViewer:
    """An interactive per-digit mask viewer (a :class:`MaskViewer`); display it as a cell's last line.

    Introduced in notebook 08 (and used on the dataset alone in notebook 01).

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
    r, g, b = panels.to_rgb8(np.asarray(rgb))
    box = f"display:inline-block;width:0.9em;height:0.9em;background:rgb({r},{g},{b});border:1px solid #888"
    return f'<span style="margin-right:0.8em;white-space:nowrap"><span style="{box}"></span> {label}</span>'


def _legend_html(with_prediction: bool) -> str:
    """Class colours and, with a prediction, the error colours."""
    single = "a single channel shows its mask in white"
    if with_prediction:
        single += " and its errors alone (a wrong digit: missed in its own channel, a false alarm in another)"
    swatches = "".join(_swatch(c, n) for c, n in zip(panels.CLASS_COLORS, panels.CLASS_NAMES))
    lines = [f"<b>channels:</b> {single}", f"<b>classes:</b> {swatches}"]
    if with_prediction:
        lines.append(
            "<b>errors:</b> "
            + "".join(_swatch(c, n) for c, n in zip(panels.ERROR_COLORS, panels.ERROR_NAMES))
        )
    return "<br>".join(lines)
