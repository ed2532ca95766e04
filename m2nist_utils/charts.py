"""Charts of the experiments that read ``results/*.json`` (notebooks 06 and 07); ``viz`` imports them too.

- :func:`plot_leave_one_out`: the final model minus one idea, a bar per configuration, error bars the
  standard deviation over seeds (``results/ablation.json``).
- :func:`plot_rate_grid`: each model's score against its peak learning rate (``results/peer_unet.json``).
- :func:`plot_sweep`: a sweep's score against each knob, every trial a dot (``results/sweep.json``).
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
