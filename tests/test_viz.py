"""viz.plot_leave_one_out (the final model first, each bar the mean over seeds, its error bar the std) and
viz.plot_rate_grid (a line per model over its learning rates, its best rate ringed, a reference band)."""

import matplotlib
import matplotlib.container

matplotlib.use("Agg")

from m2nist_utils import viz  # noqa: E402

import numpy as np  # noqa: E402


def test_leave_one_out_bars_are_means_with_std_error_bars_final_on_top():
    runs = {
        "no context": [0.90, 0.92],
        "final": [0.93, 0.94, 0.98],  # not the best, and its median is not its mean
        "no fine-tuning": [0.96],
        "article FCN": [0.05],
    }
    fig = viz.plot_leave_one_out(runs)
    ax = fig.axes[0]
    bars = sorted(ax.patches, key=lambda p: -p.get_y())  # top to bottom
    assert [round(b.get_width(), 4) for b in bars] == [0.95, 0.96, 0.91, 0.05]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["final", "- fine-tuning", "- context", "article FCN"]
    errorbars = next(c for c in ax.containers if isinstance(c, matplotlib.container.ErrorbarContainer))
    segments = errorbars.lines[2][0].get_segments()  # one horizontal segment per bar
    half_widths = sorted(round((s[1][0] - s[0][0]) / 2, 4) for s in segments)
    assert half_widths == sorted(round(float(np.std(v)), 4) for v in runs.values())
    assert "2 seeds" in " ".join(t.get_text() for t in ax.texts)


def test_rate_grid_draws_each_model_over_its_rates_and_rings_the_best():
    scores = {"unet": {1e-3: 0.5, 1e-4: 0.1, 3e-3: 0.2}, "small": {1e-3: 0.3, 3e-4: 0.7}}
    fig = viz.plot_rate_grid(scores, reference=("ours", [0.90, 0.94]))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = {tuple(line.get_xdata()): list(line.get_ydata()) for line in ax.get_lines()}
    assert lines[(1e-4, 1e-3, 3e-3)] == [0.1, 0.5, 0.2]  # sorted by rate
    assert lines[(3e-4, 1e-3)] == [0.7, 0.3]
    assert lines[(1e-3,)] == [0.5] and lines[(3e-4,)] == [0.7]  # the rings: each model's best rate
    reference = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(reference) == 1 and [round(y, 4) for y in reference[0].get_ydata()] == [0.92, 0.92]
    band = ax.patches[0]  # mean +- one standard deviation
    assert (round(band.get_y(), 4), round(band.get_y() + band.get_height(), 4)) == (0.9, 0.94)


def test_sweep_draws_every_trial_per_knob_and_rings_the_best():
    trials = [
        {"learning_rate": lr, "batch_size": b, "val_mean_iou": score}
        for lr, b, score in [(0.002, 16, 0.5), (0.008, 16, 0.9), (0.002, 64, 0.6), (0.008, 64, 0.7)]
    ]
    fig = viz.plot_sweep(trials, ["learning_rate", "batch_size"])
    assert len(fig.axes) == 2
    for ax, knob in zip(fig.axes, ["learning_rate", "batch_size"]):
        dots = ax.collections[0].get_offsets()
        assert sorted(map(tuple, dots.tolist())) == sorted((t[knob], t["val_mean_iou"]) for t in trials)
        tops, ring = ax.get_lines()
        best_at = {v: max(t["val_mean_iou"] for t in trials if t[knob] == v) for v in (tops.get_xdata())}
        assert list(tops.get_ydata()) == [best_at[v] for v in sorted(best_at)]
        assert list(ring.get_ydata()) == [0.9]  # the best trial, ringed in every panel
        assert ax.get_xscale() == "log"  # 0.002..0.008 and 16..64 span a factor of 4


def test_smooth_is_the_trailing_mean_of_the_last_window_values():
    from m2nist_utils import charts

    assert charts.smooth([1.0, 2.0, 3.0, 4.0, 6.0], window=2).tolist() == [1.0, 1.5, 2.5, 3.5, 5.0]
    assert charts.smooth([3.0, 1.0, 2.0], window=5).tolist() == [3.0, 2.0, 2.0]
