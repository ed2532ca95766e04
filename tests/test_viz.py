"""viz.plot_leave_one_out: the final model first, each bar the mean over seeds, its error bar the std."""

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
