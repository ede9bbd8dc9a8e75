"""The report's PNG plots: one design's gains with their intervals, Attributor fidelity against gain, the students'
learning curves, the gains against the map-annotated pairs and example maps.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np

from agkd.datasets_scripts.attribution.configs import BASELINE, config_name
from agkd.datasets_scripts.attribution.methods import CONTROLS
from agkd.datasets_scripts.release_layout import config_names, load_config
from agkd.training.evaluation.scoring import PRIMARY_METRIC
from agkd.training.verdict import statistics as verdict
from agkd.training.verdict.design import CONTRASTS, DesignVerdict, is_control
from agkd.training.verdict.tables import method_order


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (reports are written on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path, dpi: int = 120) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


def plot_design(result: DesignVerdict, path: Path) -> Path:
    """Per method its gains over no map, its shuffled twin and diagonal, and its gold gain, with 95% intervals."""
    plt = _pyplot()

    methods = list(result.contrasts)
    series = {f"over {c}": [result.contrasts[m][c] for m in methods] for c in CONTRASTS}
    if result.gold:
        series["gold gain (leaks)"] = [result.gold.get(m) for m in methods]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.0 * len(methods)), 4))
    for k, (label, estimates) in enumerate(series.items()):
        xs, means, errors = [], [], [[], []]
        for i, e in enumerate(estimates):
            if e is None or math.isnan(e.mean):
                continue
            xs.append(i - 0.4 + width * (k + 0.5))
            means.append(e.mean)
            errors[0].append(e.mean - e.low if e.usable else 0.0)
            errors[1].append(e.high - e.mean if e.usable else 0.0)
        ax.bar(xs, means, width=width, yerr=errors, capsize=2, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(methods)), [m.replace("_", "\n") for m in methods], fontsize=8)
    ax.set_ylabel(f"gain on {PRIMARY_METRIC} (nats/token, 95%)")
    ax.set_title(f"design {result.design.operator} / {result.design.protocol}", fontsize=10)
    ax.legend(fontsize=7)
    return _save_figure(fig, path)


def plot_fidelity(points: list[tuple[str, float, float]], title: str, path: Path) -> Path:
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, fid, gain in points:
        ax.scatter(fid, gain, color="tab:blue" if method in verdict.PAPER_TOP else "tab:orange")
        ax.annotate(method, (fid, gain), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("Attributor fidelity (held-out Spearman with the teacher's rows)")
    ax.set_ylabel(f"mean gain on {PRIMARY_METRIC} over the no-map baseline")
    ax.set_title(title, fontsize=10)
    return _save_figure(fig, path)


def plot_learning_curves(curves: dict[str, dict[int, list[float]]], title: str, path: Path) -> Path:
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    order = method_order({key.split(" (")[0] for key in curves})
    control_labelled = False
    for key in sorted(curves, key=lambda k: (order.index(k.split(" (")[0]), k)):
        method, steps = key.split(" (")[0], sorted(curves[key])
        means = [statistics.mean(curves[key][step]) for step in steps]
        seeds = max(len(losses) for losses in curves[key].values())
        if method == BASELINE:
            ax.plot(steps, means, color="black", linewidth=2.2, label=f"{key}: no map ({seeds} seeds)")
        elif is_control(method):
            ax.plot(steps, means, color="grey", linewidth=0.8, linestyle=":",
                    label=None if control_labelled else "controls (random, uniform, diagonal, shuffled twins)")
            control_labelled = True
        else:
            ax.plot(steps, means, linewidth=1.4, linestyle="-" if method in verdict.PAPER_TOP else "--",
                    label=f"{key} ({seeds} seeds)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation loss (mean over seeds)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    return _save_figure(fig, path)


def plot_annotated_pairs_curve(points: dict[str, dict[str, verdict.Estimate]], methods: list[str], path: Path) -> Path:
    """Each method's gain over no map against the map-annotated pairs it trained on (points in order, 95% intervals;
    the paper's three in colour)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = list(range(len(points)))
    for i, method in enumerate(methods):
        estimates = [p.get(method) for p in points.values()]
        means = [e.mean if e is not None else math.nan for e in estimates]
        errors = [[e.mean - e.low if e is not None and e.usable else 0 for e in estimates],
                  [e.high - e.mean if e is not None and e.usable else 0 for e in estimates]]
        top = method in verdict.PAPER_TOP
        ax.errorbar([v + 0.03 * (i - len(methods) / 2) for v in x], means, yerr=errors, marker="o", capsize=2,
                    label=method, linewidth=2 if top else 1, alpha=1.0 if top else 0.5, color=None if top else "grey")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, list(points))
    ax.set_xlabel("map-annotated pairs the students trained on")
    ax.set_ylabel("gain over no map (nats/token)")
    ax.legend(fontsize=7, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save_figure(fig, path)


def plot_example_maps(attributions: str, teacher: str, pair: str, split: str, path: Path) -> Path | None:
    """One heatmap per method of the first `split` pair, tokens on the axes (target rows, source columns)."""
    plt = _pyplot()

    configs = [
        c for c in config_names(attributions) if c.startswith(f"{teacher}.{pair}.") and not c.endswith(".teacher")
    ]
    methods = [m for m in method_order({c.split(".", 2)[2] for c in configs}) if m not in CONTROLS]
    if not methods:
        return None
    columns = min(4, len(methods))
    rows_n = -(-len(methods) // columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(4.2 * columns, 3.8 * rows_n), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, method in zip(axes.flat, methods, strict=False):
        data = load_config(attributions, config_name(teacher, pair, method))
        if split not in data or len(data[split]) == 0:
            continue
        row = data[split][0]
        attribution = np.asarray(row["attribution"], dtype=np.float32)
        ax.axis("on")
        ax.imshow(attribution, aspect="auto", cmap="viridis")
        ax.set_title(method, fontsize=9)
        ax.set_xticks(range(len(row["source_tokens"])), row["source_tokens"], rotation=90, fontsize=6)
        ax.set_yticks(range(len(row["target_tokens"])), row["target_tokens"], fontsize=6)
    fig.suptitle(
        f"{teacher} {pair}: example maps ({split} pair 0; rows = target tokens, columns = source tokens)", fontsize=10
    )
    return _save_figure(fig, path, dpi=110)
