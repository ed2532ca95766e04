"""The per-digit mask viewer: ``panels.render_masks`` by value on hand-made maps, and the widget headless."""

from __future__ import annotations

import io
import re

from m2nist_utils import m2nist, mnist, panels, viz, widgets

import matplotlib.pyplot as plt
import numpy as np
import pytest

H, W, BG = 64, 84, 10
SCALE, GAP = 3, panels.PANEL_GAP
CORRECT, MISSED, WRONG, FALSE_ALARM, CORRECT_BG = (panels.to_rgb8(c) for c in panels.ERROR_COLORS)
WHITE, BLACK = np.array([255, 255, 255], np.uint8), np.array([0, 0, 0], np.uint8)


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 7 drawn as a vertical stroke at x = 40, rows 10-29, and a prediction with three known mistakes."""
    image = np.zeros((H, W), np.uint8)
    true = np.full((H, W), BG, np.uint8)
    image[10:30, 40] = 200
    true[10:30, 40] = 7
    pred = true.copy()
    pred[10, 40] = BG  # missed digit
    pred[11, 40] = 1  # wrong digit
    pred[50, 5] = 3  # false alarm
    return image, true, pred


def pixel(rendered: np.ndarray, panel: int, y: int, x: int) -> np.ndarray:
    """The colour of source pixel (y, x) in the given panel; checks the whole upscaled block is uniform."""
    top, left = y * SCALE, panel * (W * SCALE + GAP) + x * SCALE
    block = rendered[top : top + SCALE, left : left + SCALE]
    assert (block == block[0, 0]).all()
    return block[0, 0]


def test_panel_count_and_size(scene):
    image, true, pred = scene
    assert panels.render_masks(image, true).shape == (H * SCALE, 2 * W * SCALE + GAP, 3)
    rendered = panels.render_masks(image, true, pred)
    assert rendered.shape == (H * SCALE, 4 * W * SCALE + 3 * GAP, 3)
    assert rendered.dtype == np.uint8
    for k in range(1, 4):
        gap = rendered[:, k * W * SCALE + (k - 1) * GAP : k * (W * SCALE + GAP)]
        assert gap.shape[1] == GAP and (gap == panels.PANEL_GAP_COLOR).all()
    assert panels.render_masks(image, true, pred, scale=1, gap=0).shape == (H, 4 * W, 3)


def test_input_and_truth_panels(scene):
    image, true, pred = scene
    rendered = panels.render_masks(image, true, pred)
    assert (pixel(rendered, 0, 15, 40) == 200).all()
    assert (pixel(rendered, 0, 0, 0) == 0).all()
    assert (pixel(rendered, 1, 15, 40) == panels.to_rgb8(viz.CLASS_COLORS[7])).all()
    assert (pixel(rendered, 1, 0, 0) == panels.to_rgb8(viz.CLASS_COLORS[BG])).all()
    assert (pixel(rendered, 2, 11, 40) == panels.to_rgb8(viz.CLASS_COLORS[1])).all()
    assert (pixel(rendered, 2, 50, 5) == panels.to_rgb8(viz.CLASS_COLORS[3])).all()


def test_error_panel_all_digits(scene):
    image, true, pred = scene
    rendered = panels.render_masks(image, true, pred)
    assert (pixel(rendered, 3, 10, 40) == MISSED).all()
    assert (pixel(rendered, 3, 11, 40) == WRONG).all()
    assert (pixel(rendered, 3, 50, 5) == FALSE_ALARM).all()
    assert (pixel(rendered, 3, 12, 40) == CORRECT).all()
    assert (pixel(rendered, 3, 0, 0) == CORRECT_BG).all()
    errors = rendered[:, 3 * (W * SCALE + GAP) :: SCALE][::SCALE]
    colours, counts = np.unique(errors.reshape(-1, 3), axis=0, return_counts=True)
    expected = {tuple(CORRECT): 18, tuple(MISSED): 1, tuple(WRONG): 1, tuple(FALSE_ALARM): 1}
    expected[tuple(CORRECT_BG)] = H * W - 21
    assert dict(zip(map(tuple, colours), counts.tolist())) == expected


def test_error_map_counts_each_kind(scene):
    image, true, pred = scene
    counts = np.bincount(panels.error_map(true, pred).ravel(), minlength=5)
    assert counts.tolist() == [18, 1, 1, 1, H * W - 21]
    assert panels.error_map(true, pred).dtype == np.uint8
    batch = panels.error_map(np.stack([true, pred]), np.stack([pred, pred]))
    assert batch.shape == (2, H, W)
    assert (batch[0] == panels.error_map(true, pred)).all()
    assert set(np.unique(batch[1]).tolist()) == {0, 4}  # a prediction against itself: no errors
    seven = panels.error_map(true, pred, channel=7)
    assert np.bincount(seven.ravel(), minlength=5).tolist() == [18, 2, 0, 0, H * W - 20]
    with pytest.raises(ValueError, match="one shape"):
        panels.error_map(true, pred[1:])


def test_plot_error_maps_draws_the_error_colours(scene):
    image, true, pred = scene
    fig = panels.plot_error_maps(
        np.stack([image, image]), np.stack([true, true]), np.stack([pred, true]), ["a", "b"]
    )
    axes = np.array(fig.axes[:8]).reshape(4, 2)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == list(panels.PANEL_TITLES)
    drawn = axes[3, 0].images[0].get_array()
    assert np.allclose(drawn, panels.ERROR_COLORS[panels.error_map(true, pred)])
    assert np.allclose(axes[3, 1].images[0].get_array()[10, 40], panels.ERROR_COLORS[0])  # truth vs itself
    legend = [t.get_text() for t in axes[3, 1].get_legend().get_texts()]
    assert legend == list(panels.ERROR_NAMES)
    plt.close(fig)


def test_plot_error_maps_rings_every_miss_and_false_alarm():
    true = np.full((1, 64, 84), 10, np.uint8)
    true[0, 10:20, 10:14] = 4
    pred = true.copy()
    pred[0, 12, 11] = 10  # one missed digit pixel
    pred[0, 40, 60] = 7  # one false alarm
    pred[0, 15, 12] = 2  # one wrong digit: not ringed, it is visible in red among the stroke
    fig = panels.plot_error_maps(np.zeros((1, 64, 84), np.uint8), true, pred)
    rings = fig.axes[3].collections[0].get_offsets()
    assert sorted(map(tuple, np.asarray(rings).tolist())) == [(11.0, 12.0), (60.0, 40.0)]
    assert fig.axes[3].get_xlim() == (-0.5, 83.5)
    plt.close(fig)


def test_error_colours_are_distinct():
    assert len(panels.ERROR_NAMES) == len(panels.ERROR_COLORS) == 5
    assert len({tuple(c) for c in panels.to_rgb8(panels.ERROR_COLORS)}) == 5


def test_single_digit_channel(scene):
    image, true, pred = scene
    rendered = panels.render_masks(image, true, pred, channel=7)
    assert (pixel(rendered, 1, 15, 40) == WHITE).all()
    assert (pixel(rendered, 1, 0, 0) == BLACK).all()
    assert (pixel(rendered, 2, 11, 40) == BLACK).all()  # predicted 1: not in channel 7
    assert (pixel(rendered, 3, 10, 40) == MISSED).all()
    assert (pixel(rendered, 3, 11, 40) == MISSED).all()  # a wrong digit is a miss for channel 7
    assert (pixel(rendered, 3, 12, 40) == CORRECT).all()
    assert (pixel(rendered, 3, 50, 5) == CORRECT_BG).all()  # the false alarm is a 3, not a 7

    other = panels.render_masks(image, true, pred, channel=1)
    assert (pixel(other, 2, 11, 40) == WHITE).all()
    assert (pixel(other, 3, 11, 40) == FALSE_ALARM).all()
    assert (pixel(other, 3, 12, 40) == CORRECT_BG).all()


@pytest.mark.parametrize("channel", ["background", 10, np.uint8(10)])
def test_background_channel(scene, channel):
    image, true, pred = scene
    rendered = panels.render_masks(image, true, pred, channel=channel)
    assert (pixel(rendered, 1, 0, 0) == WHITE).all()
    assert (pixel(rendered, 1, 15, 40) == BLACK).all()
    assert (pixel(rendered, 3, 0, 0) == CORRECT).all()
    assert (pixel(rendered, 3, 10, 40) == FALSE_ALARM).all()  # predicted background on the stroke
    assert (pixel(rendered, 3, 11, 40) == CORRECT_BG).all()  # 7 vs 1: neither is background
    assert (pixel(rendered, 3, 50, 5) == MISSED).all()
    # Two white masks side by side: the strip between them must still show where one panel ends.
    strip = rendered[:, 2 * W * SCALE + GAP : 2 * (W * SCALE + GAP)]
    assert (pixel(rendered, 1, 0, W - 1) == WHITE).all() and (pixel(rendered, 2, 0, 0) == WHITE).all()
    assert (np.abs(strip.astype(int) - 255).sum(-1) >= 3 * 60).all()


@pytest.mark.parametrize("channel", ["all", "background", *range(11)])
def test_empty_image_every_channel(channel):
    image, empty = np.zeros((H, W), np.uint8), np.full((H, W), BG, np.uint8)
    alone = panels.render_masks(image, empty, channel=channel)
    assert alone.shape == (H * SCALE, 2 * W * SCALE + GAP, 3)
    rendered = panels.render_masks(image, empty, empty, channel=channel)
    assert (rendered[:, : alone.shape[1]] == alone).all()
    errors = rendered[:, 3 * (W * SCALE + GAP) :]
    assert (errors == (CORRECT if channel in ("background", 10) else CORRECT_BG)).all()
    mask = rendered[:, W * SCALE + GAP : 2 * W * SCALE + GAP]
    if channel == "all":
        assert (mask == panels.to_rgb8(viz.CLASS_COLORS[BG])).all()
    else:
        assert (mask == (WHITE if channel in ("background", 10) else BLACK)).all()


def test_bad_inputs_raise(scene):
    image, true, pred = scene
    with pytest.raises(ValueError, match=r"\(64, 84\).*\(64, 84, 11\)"):
        panels.render_masks(image, m2nist.to_one_hot(true))
    with pytest.raises(ValueError, match=r"pred_map.*\(64, 84\).*\(63, 84\)"):
        panels.render_masks(image, true, pred[1:])
    with pytest.raises(ValueError, match=r"image.*\(1, 64, 84\)"):
        panels.render_masks(image[None], true)
    with pytest.raises(ValueError, match="0..10"):
        panels.render_masks(image, np.full((H, W), 11, np.uint8))
    for channel in ("digits", 11, -1, True, 2.0):
        with pytest.raises(ValueError, match="channel"):
            panels.render_masks(image, true, channel=channel)
    with pytest.raises(ValueError, match="scale"):
        panels.render_masks(image, true, scale=0)


# ----------------------------------------------------------------------------------------------------
# The widget, headless
# ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> m2nist.Split:
    return m2nist.compose_images(mnist.split_pools("sample")["test"], 5, seed=0)


def decode(png: bytes) -> np.ndarray:
    """PNG bytes -> RGB uint8 (H, W, 3) (matplotlib reads PNGs as floats in [0, 1])."""
    rgb = plt.imread(io.BytesIO(png), format="png")[..., :3]
    return np.round(rgb * 255).astype(np.uint8)


def digits_of(class_map: np.ndarray) -> list[int]:
    return [int(d) for d in np.unique(class_map) if d != BG]


@pytest.mark.slow
def test_viewer_on_the_dataset_alone(data):
    viewer = widgets.mask_viewer(data.images, m2nist.to_one_hot(data.class_maps))
    assert isinstance(viewer, widgets.MaskViewer)
    assert (viewer.slider.min, viewer.slider.max, viewer.channel.value) == (0, 4, "all")
    assert (decode(viewer.image.value) == panels.render_masks(data.images[0], data.class_maps[0])).all()
    before = viewer.image.value
    viewer.slider.value = 3
    assert viewer.image.value != before
    assert (decode(viewer.image.value) == panels.render_masks(data.images[3], data.class_maps[3])).all()
    assert "digits: " + ", ".join(map(str, digits_of(data.class_maps[3]))) in viewer.info.value
    assert "IoU" not in viewer.info.value and "errors" not in viewer.legend.value


def test_viewer_with_predictions(data):
    pred = data.class_maps.copy()
    pred[3][pred[3] != BG] = 9 if digits_of(data.class_maps[3])[0] != 9 else 0
    viewer = widgets.mask_viewer(data.images, data.class_maps, pred)
    viewer.slider.value = 3
    digit = digits_of(data.class_maps[3])[0]
    before = viewer.image.value
    viewer.channel.value = digit
    assert viewer.image.value != before
    expected = panels.render_masks(data.images[3], data.class_maps[3], pred[3], channel=digit)
    assert (decode(viewer.image.value) == expected).all()
    assert f"{digit}: 0.000" in viewer.info.value  # every pixel of it predicted as another digit
    viewer.channel.value = "background"
    expected = panels.render_masks(data.images[3], data.class_maps[3], pred[3], channel="background")
    assert (decode(viewer.image.value) == expected).all()

    viewer.slider.value = 0
    for d in digits_of(data.class_maps[0]):
        assert f"{d}: 1.000" in viewer.info.value
    assert all(name in viewer.legend.value for name in panels.ERROR_NAMES)


def test_viewer_buttons_wrap_around(data):
    viewer = widgets.mask_viewer(data.images, data.class_maps)
    viewer.prev_button.click()
    assert viewer.slider.value == 4
    viewer.next_button.click()
    assert viewer.slider.value == 0


def test_viewer_leaves_no_figures(data):
    plt.close("all")
    viewer = widgets.mask_viewer(data.images, data.class_maps, data.class_maps[::-1])
    for i in range(30):
        viewer.slider.value = i % 5
        viewer.channel.value = widgets.CHANNEL_OPTIONS[i % len(widgets.CHANNEL_OPTIONS)][1]
    assert plt.get_fignums() == []


def test_viewer_rejects_mismatched_masks(data):
    with pytest.raises(ValueError, match=r"true_masks.*\(5, 64, 84, 11\).*\(4, 64, 84\)"):
        widgets.mask_viewer(data.images, data.class_maps[:4])
    with pytest.raises(ValueError, match="pred_masks"):
        widgets.mask_viewer(data.images, data.class_maps, data.class_maps[..., :80])
    with pytest.raises(ValueError, match="images"):
        widgets.mask_viewer(data.images[0], data.class_maps[0])


# The viewer as a browser shows it (JupyterLab pads each button by 12 px a side, at a 13 px font).
BUTTON_PADDING_EM, CHAR_EM = 24 / 13, 0.62
CONTENT_WIDTHS = ("auto", "fit-content", "max-content")


def button_fits(width: str, label: str) -> bool:
    """Whether a button of CSS ``width`` shows ``label`` whole (a generous estimate of the text's width)."""
    if width in CONTENT_WIDTHS:
        return True
    needed = CHAR_EM * len(label) + BUTTON_PADDING_EM
    if width.endswith("em"):
        return float(width[:-2]) >= needed
    if width.endswith("px"):
        return float(width[:-2]) >= 13 * needed
    return False  # "" = ipywidgets' default of about 72 px: too narrow for "background"


def test_channel_buttons_show_whole_labels(data):
    viewer = widgets.mask_viewer(data.images, data.class_maps)
    labels = list(viewer.channel.options)
    assert [label for label, _ in labels] == ["all", *map(str, range(10)), "background"]
    assert [value for _, value in labels] == ["all", *range(10), "background"]
    width = viewer.channel.style.button_width
    assert all(button_fits(width, label) for label, _ in labels), f"button width {width!r} cuts labels"
    assert not button_fits("2.6em", "all") and not button_fits("", "background")  # the estimate can fail


def title_cells(html: str) -> list[tuple[str, float, float]]:
    """(title, width %, left margin %) of each panel title in the viewer's title row."""
    cells = re.findall(r'style="width:([\d.]+)%;margin-left:([\d.]+)%;[^"]*"><b>([^<]*)</b>', html)
    return [(name, float(width), float(margin)) for width, margin, name in cells]


def test_viewer_titles_every_panel(data):
    viewer = widgets.mask_viewer(data.images, data.class_maps, data.class_maps)
    panels = viewer.children[2]
    assert panels.children == (viewer.titles, viewer.image)  # titles directly above the image
    cells = title_cells(viewer.titles.value)
    assert [name for name, _, _ in cells] == ["input", "truth", "prediction", "errors"]
    width = decode(viewer.image.value).shape[1]
    assert panels.layout.width == f"{width}px"
    for k, (_, share, margin) in enumerate(cells):
        assert share == pytest.approx(100 * W * SCALE / width, abs=1e-3)  # each title spans its panel
        assert margin == pytest.approx(100 * GAP / width if k else 0, abs=1e-3)
    assert sum(share + margin for _, share, margin in cells) == pytest.approx(100, abs=1e-2)

    viewer.channel.value = 7
    assert [name for name, _, _ in title_cells(viewer.titles.value)][1:] == [
        "truth: 7 only",
        "prediction: 7 only",
        "errors: 7 only",
    ]
    alone = widgets.mask_viewer(data.images, data.class_maps)
    assert [name for name, _, _ in title_cells(alone.titles.value)] == ["input", "truth"]
    assert title_cells(alone.titles.value)[0][1] == pytest.approx(100 * W * SCALE / (2 * W * SCALE + GAP))
