"""Charts of the experiments (notebooks 06, 07 and 09); ``viz`` imports them too.

- :func:`plot_leave_one_out`: the final model minus one idea, a bar per configuration, error bars the
  standard deviation over seeds (``results/ablation.json``).
- :func:`plot_rate_grid`: each model's score against its peak learning rate (``results/peer_unet.json``).
- :func:`plot_sweep`: a sweep's score against each knob, every trial a dot (``results/sweep.json``).
- :func:`plot_lr_range`, :func:`smooth`: the learning-rate range test (notebook 09).
- :func:`plot_maps`: an image beside maps of probabilities over it (notebook 09).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def plot_leave_one_out(
    runs: dict[str, list[float]], reference: str = "final", xlabel: str = "validation mean IoU"
) -> plt.Figure:
    """The final model minus one idea: each configuration's mean score over its seeds, one bar each.

    Args:
        runs: {configuration: its per-seed scores}, configurations named ``"no <idea>"`` (drawn as
            ``- <idea>``) or otherwise (e.g. the article's FCN, drawn by name); ``reference`` (the final
            model) is drawn first, in green, with a dashed line at its mean.
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
    for yi, m, sd, k in zip(y, means, stds, names):
        seeds = f"{len(runs[k])} seed{'s' if len(runs[k]) != 1 else ''}"
        ax.text(m + sd + 0.015, yi, f"{m:.3f} ({seeds})", va="center", fontsize=8)
    ax.set_yticks(y, [f"- {k[3:]}" if k.startswith("no ") else k for k in names], fontsize=9)
    ax.set_xlim(0, 1.25)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def plot_rate_grid(
    scores: dict[str, dict[float, float]],
    reference: tuple[str, list[float]] | None = None,
    ylabel: str = "validation mean IoU",
) -> plt.Figure:
    """Each model's score against its peak learning rate (log scale), its best rate ringed.

    Args:
        scores: {model: {learning rate: score}}, one line per model.
        reference: (label, scores over seeds) of a model trained at one rate, drawn as a horizontal line at
            its mean with a band of one standard deviation either side.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, by_rate in scores.items():
        rates = sorted(by_rate)
        values = [by_rate[r] for r in rates]
        (line,) = ax.plot(rates, values, marker="o", label=name)
        best = rates[int(np.argmax(values))]
        ax.plot([best], [by_rate[best]], marker="o", ms=13, mfc="none", color=line.get_color())
    if reference is not None:
        label, values = reference
        mean, std = float(np.mean(values)), float(np.std(values))
        ax.axhline(mean, color="tab:green", lw=1.5, ls="--", label=f"{label} (mean over {len(values)} seeds)")
        ax.axhspan(mean - std, mean + std, color="tab:green", alpha=0.15, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate (Adam)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def plot_sweep(
    trials: list[dict], knobs: list[str], score: str = "val_mean_iou", ylabel: str = "validation mean IoU"
) -> plt.Figure:
    """A sweep's score against each knob: one panel per knob, every trial a dot, the best trial ringed.

    A line joins the best score at each value of the knob (over the other knobs' values): how far each knob
    can take the score. Knobs whose values are all positive numbers spanning a factor of 4 or more are drawn
    on a log scale.
    """
    fig, axes = plt.subplots(1, len(knobs), figsize=(3.1 * len(knobs), 3.2), sharey=True, squeeze=False)
    best = max(trials, key=lambda t: t[score])
    for ax, knob in zip(axes[0], knobs):
        values = sorted({t[knob] for t in trials})
        ax.scatter([t[knob] for t in trials], [t[score] for t in trials], s=18, color="tab:blue", alpha=0.7)
        tops = [max(t[score] for t in trials if t[knob] == v) for v in values]
        ax.plot(values, tops, color="tab:blue", lw=1, label="best at each value")
        ring = {"marker": "o", "ms": 13, "mfc": "none", "color": "tab:red"}
        ax.plot([best[knob]], [best[score]], **ring, label="best trial")
        if min(values) > 0 and max(values) / min(values) >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(values, [f"{v:g}" for v in values], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel(knob.replace("_", " "))
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def smooth(values: np.ndarray, window: int = 15) -> np.ndarray:
    """The trailing mean of the last ``window`` values (fewer at the start): the range test's noisy losses."""
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def plot_lr_range(
    rates: np.ndarray, losses: np.ndarray, marks: dict[str, float], window: int = 15
) -> plt.Figure:
    """The learning-rate range test (notebook 09): each batch's loss against its rate (log scale), the
    trailing mean of ``window`` batches over it, and a dashed line at each rate of ``marks``
    ({label: rate})."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.plot(rates, losses, color="tab:blue", alpha=0.3, lw=0.8, label="loss of each batch")
    ax.plot(rates, smooth(losses, window), color="tab:blue", lw=2, label=f"mean of the last {window} batches")
    for (label, rate), color in zip(marks.items(), ["tab:red", "tab:green", "tab:orange", "tab:purple"]):
        ax.axvline(rate, color=color, ls="--", lw=1.2, label=f"{label}: {rate:g}")
    ax.set_xscale("log")
    ax.set_ylim(
        0, min(float(np.nanmax(losses)), 3 * float(np.nanmax(smooth(losses, window)[:window]))) * 1.05
    )
    ax.set_xlabel("learning rate (rising every batch)")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def plot_maps(image: np.ndarray, maps: dict[str, np.ndarray], title: str | None = None) -> plt.Figure:
    """An image beside maps of values in [0, 1] over it (e.g. each model's foreground probability)."""
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2.6 * (len(maps) + 1), 2.5), squeeze=False)
    axes[0, 0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title("input", fontsize=9)
    for ax, (label, values) in zip(axes[0, 1:], maps.items()):
        shown = ax.imshow(values, cmap="magma", vmin=0, vmax=1)
        ax.set_title(label, fontsize=9)
    fig.colorbar(shown, ax=axes[0, -1], fraction=0.046, pad=0.04)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
