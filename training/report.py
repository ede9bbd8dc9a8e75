"""Write `report.md` and its PNG plots from `results/results.jsonl` (issue #6).

For every teacher, pair, target kind, split and protocol: a table of methods (and controls) x operators with the
BLEU and chrF deltas over the no-map baseline (mean over seeds, with the spread when there are several seeds and
significance marks from the paired bootstrap: `*` p < 0.05, `**` p < 0.01); a bar chart of the gains by method; a
heatmap figure of one example map per method (when `--attributions` is given); a ranking of the methods and
whether the paper's finding holds here (attention, value zeroing and layer gradient x activation ahead of the
other gradient methods).

    agkd report --results_dir runs/demo/results --attributions runs/demo/hub/datasets/agkd-attributions
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from datasets_scripts.attribution_methods import CONTROLS
from training.cli import run_as_script, stage_main
from training.evaluate import BASELINE_PROTOCOL, RESULTS_FILE, read_results
from training.presets import ALL_METHODS, ALL_OPERATORS

logger = logging.getLogger(__name__)

PAPER_TOP = ("attention", "value_zeroing", "layer_gradient_x_activation")


@dataclass
class ReportArguments:
    results_dir: str = field(metadata={"help": "folder with results.jsonl (written by agkd evaluate)"})
    attributions: str | None = field(default=None, metadata={"help": "agkd-attributions folder: example heatmaps"})
    models_dir: str | None = field(
        default=None, metadata={"help": "folder with attributor-* models: fidelity vs gain (table and scatter plot)"}
    )
    output_dir: str | None = field(default=None, metadata={"help": "where report.md and plots go (default: results_dir)"})
    main_protocol: str = field(default="gold", metadata={"help": "protocol used for the ranking and the bar chart"})


# ================================================================================================ tables
def significance(p_value: float | None) -> str:
    if p_value is None:
        return ""
    return "**" if p_value < 0.01 else "*" if p_value < 0.05 else ""


def mean_spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:+.2f}"
    return f"{statistics.mean(values):+.2f}±{statistics.stdev(values):.2f}"


def group_rows(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Rows by (teacher, pair, target kind, split, protocol); baselines kept under protocol `none`."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row["teacher_name"], row["pair"], row["target_kind"], row["split"], row["protocol"])].append(row)
    return groups


def cell(rows: list[dict]) -> str:
    """`ΔBLEU / ΔchrF` over seeds; the marks need every seed significant in the same direction."""
    bleu = [r["bootstrap"]["bleu"]["delta"] for r in rows if r.get("bootstrap")]
    chrf = [r["bootstrap"]["chrf"]["delta"] for r in rows if r.get("bootstrap")]
    if not bleu:
        return "n/a"
    marks_bleu = min((significance(r["bootstrap"]["bleu"]["p_value"]) for r in rows), key=len)
    marks_chrf = min((significance(r["bootstrap"]["chrf"]["p_value"]) for r in rows), key=len)
    return f"{mean_spread(bleu)}{marks_bleu} / {mean_spread(chrf)}{marks_chrf}"


def method_order(methods: set[str]) -> list[str]:
    known = [m for m in (*ALL_METHODS, *CONTROLS) if m in methods]
    return known + sorted(methods - set(known))


def results_table(rows: list[dict]) -> str:
    """Markdown table methods x operators of one group of rows (one teacher, pair, kind, split, protocol)."""
    methods = method_order({r["method"] for r in rows})
    operators = [o for o in ALL_OPERATORS if any(r["operator"] == o for r in rows)]
    normalisations = sorted({r["map_normalization"] for r in rows})
    lines = []
    for normalisation in normalisations:
        header = "| method | " + " | ".join(operators) + " |"
        if len(normalisations) > 1:
            lines.append(f"\nMap normalisation `{normalisation}`:\n")
        lines += [header, "|---|" + "---|" * len(operators)]
        for method in methods:
            cells = []
            for operator in operators:
                selected = [r for r in rows if (r["method"], r["operator"], r["map_normalization"]) == (method, operator, normalisation)]
                cells.append(cell(selected) if selected else "")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def method_gains(rows: list[dict]) -> dict[str, list[float]]:
    """ΔBLEU of every run of a method (all operators, normalisations and seeds)."""
    gains = defaultdict(list)
    for row in rows:
        if row.get("bootstrap"):
            gains[row["method"]].append(row["bootstrap"]["bleu"]["delta"])
    return gains


def significant_gainers(rows: list[dict], alpha: float = 0.05) -> set[str]:
    """Methods with at least one run whose ΔBLEU is positive and significant (paired bootstrap p < alpha)."""
    return {
        r["method"] for r in rows
        if r.get("bootstrap") and r["bootstrap"]["bleu"]["delta"] > 0 and r["bootstrap"]["bleu"]["p_value"] < alpha
    }


def paper_finding(gains: dict[str, list[float]], significant: set[str] | None = None) -> str:
    """Do attention, value zeroing and layer gradient x activation lead the other gradient methods here?

    The check needs gains to compare: when no method improves on the baseline significantly (`significant`, from
    `significant_gainers`), or every mean gain rounds to the same 0.01 BLEU, the verdict is that it cannot be told."""
    missing = [m for m in ALL_METHODS if m not in gains]
    if missing:
        return f"cannot be checked: no results for {', '.join(missing)}"
    if significant is not None and not significant & set(ALL_METHODS):
        return (
            "cannot be checked here: no attribution method improves on the no-map baseline significantly "
            "(paired bootstrap p < 0.05), so there is no gain to rank"
        )
    mean = {m: statistics.mean(gains[m]) for m in ALL_METHODS}
    top = [mean[m] for m in PAPER_TOP]
    others = [mean[m] for m in ALL_METHODS if m not in PAPER_TOP]
    if max(mean.values()) - min(mean.values()) < 0.005:
        return (
            f"cannot be checked here: every method's mean gain rounds to {statistics.mean(mean.values()):+.2f} BLEU, "
            "so the methods cannot be told apart"
        )
    if min(top) > max(others):
        return "holds: each of attention, value zeroing and layer gradient x activation gains more than every other gradient method"
    if statistics.mean(top) > statistics.mean(others):
        return (
            f"holds on average only: the three gain {statistics.mean(top):+.2f} BLEU on average vs "
            f"{statistics.mean(others):+.2f} for the other gradient methods, but not each of them leads"
        )
    return (
        f"does not hold: the three gain {statistics.mean(top):+.2f} BLEU on average vs "
        f"{statistics.mean(others):+.2f} for the other gradient methods"
    )


def control_comparison(gains: dict[str, list[float]]) -> str | None:
    """Which methods teach more than the best control map (random, uniform, diagonal) does; None without controls."""
    controls = {m: statistics.mean(gains[m]) for m in CONTROLS if m in gains}
    if not controls:
        return None
    best = max(controls, key=controls.get)
    ahead = [m for m in method_order(set(gains) - set(CONTROLS)) if statistics.mean(gains[m]) > controls[best]]
    return (
        f"Best control map: {best} ({controls[best]:+.2f} BLEU). "
        + (f"Methods ahead of it: {', '.join(ahead)}." if ahead else "No attribution method is ahead of it.")
    )


# ================================================================================================ fidelity vs gain
def spearman_with_interval(x: list[float], y: list[float], samples: int = 1000, seed: int = 0) -> tuple[float, list[float]]:
    """Spearman rho across methods and a 95% bootstrap interval (methods resampled; degenerate resamples skipped)."""
    import numpy as np
    from scipy.stats import spearmanr

    x, y = np.asarray(x), np.asarray(y)
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(samples):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            draws.append(spearmanr(x[i], y[i]).statistic)
    return rho, [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else [float("nan")] * 2


def fidelity_section(models_dir: Path, groups: dict, main_protocol: str, plots: Path, out: Path) -> list[str]:
    """Per teacher and pair: each method's Attributor fidelity (held-out Spearman with the teacher's rows) against
    its students' mean ΔBLEU under the main protocol, the Spearman rho across methods and a scatter plot."""
    import json

    lines = []
    attributors = [json.loads((d / "agkd_run.json").read_text()) for d in sorted(models_dir.glob("attributor-*")) if (d / "agkd_run.json").exists()]
    for teacher, pair in sorted({(a["teacher_name"], a["pair"]) for a in attributors}):
        gains = method_gains(groups.get((teacher, pair, "reference", "test", main_protocol), []))
        points = [
            (a["method"], a["fidelity"]["spearman"], statistics.mean(gains[a["method"]]))
            for a in attributors
            if (a["teacher_name"], a["pair"]) == (teacher, pair) and a["method"] in gains and "spearman" in a["fidelity"]
        ]
        if not points:
            continue
        lines += [
            f"## Attributor fidelity vs gain: {teacher} {pair} (protocol `{main_protocol}`)",
            "",
            "| method | Attributor Spearman with the teacher's rows (held out) | mean ΔBLEU |",
            "|---|---|---|",
            *(f"| {m} | {f:.3f} | {g:+.2f} |" for m, f, g in points),
            "",
        ]
        if len(points) >= 3:
            rho, interval = spearman_with_interval([p[1] for p in points], [p[2] for p in points])
            plot = plot_fidelity(points, f"{teacher} {pair}: rho = {rho:.2f}", plots / f"fidelity-{teacher}-{pair}.png")
            lines += [
                f"Spearman rho between fidelity and gain across {len(points)} methods: {rho:.2f} "
                f"(95% bootstrap interval {interval[0]:.2f} to {interval[1]:.2f}).",
                "",
                f"![fidelity vs gain]({plot.relative_to(out)})",
                "",
            ]
        else:
            lines += [f"Only {len(points)} method(s) with both an Attributor and students: no correlation computed.", ""]
    return lines


# ================================================================================================ plots
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


def plot_fidelity(points: list[tuple[str, float, float]], title: str, path: Path) -> Path:
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, fid, gain in points:
        ax.scatter(fid, gain, color="tab:blue" if method in PAPER_TOP else "tab:orange")
        ax.annotate(method, (fid, gain), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("Attributor fidelity (held-out Spearman with the teacher's rows)")
    ax.set_ylabel("mean ΔBLEU over the no-map baseline")
    ax.set_title(title, fontsize=10)
    return _save_figure(fig, path)


def plot_gains(gains: dict[str, list[float]], title: str, path: Path) -> Path:
    plt = _pyplot()

    methods = method_order(set(gains))
    means = [statistics.mean(gains[m]) for m in methods]
    spreads = [statistics.stdev(gains[m]) if len(gains[m]) > 1 else 0.0 for m in methods]
    colours = ["tab:blue" if m in PAPER_TOP else "tab:grey" if m in CONTROLS else "tab:orange" for m in methods]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(methods)), 4))
    ax.bar(range(len(methods)), means, yerr=spreads, color=colours, capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(methods)), [m.replace("_", "\n") for m in methods], fontsize=8)
    ax.set_ylabel("ΔBLEU over the no-map baseline")
    ax.set_title(title, fontsize=10)
    return _save_figure(fig, path)


def plot_example_maps(attributions: str, teacher: str, pair: str, split: str, path: Path) -> Path | None:
    """One heatmap per method of the first `split` pair, tokens on the axes (target rows, source columns)."""
    plt = _pyplot()
    import numpy as np

    from training.common import dataset_configs, load_dataset_config

    configs = [c for c in dataset_configs(attributions) if c.startswith(f"{teacher}.{pair}.") and not c.endswith(".teacher")]
    methods = [m for m in method_order({c.split(".", 2)[2] for c in configs}) if m not in CONTROLS]
    if not methods:
        return None
    columns = min(4, len(methods))
    rows_n = -(-len(methods) // columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(4.2 * columns, 3.8 * rows_n), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, method in zip(axes.flat, methods, strict=False):
        data = load_dataset_config(attributions, f"{teacher}.{pair}.{method}")
        if split not in data or len(data[split]) == 0:
            continue
        row = data[split][0]
        attribution = np.asarray(row["attribution"], dtype=np.float32)
        ax.axis("on")
        ax.imshow(attribution, aspect="auto", cmap="viridis")
        ax.set_title(method, fontsize=9)
        ax.set_xticks(range(len(row["source_tokens"])), row["source_tokens"], rotation=90, fontsize=6)
        ax.set_yticks(range(len(row["target_tokens"])), row["target_tokens"], fontsize=6)
    fig.suptitle(f"{teacher} {pair}: example maps ({split} pair 0; rows = target tokens, columns = source tokens)", fontsize=10)
    return _save_figure(fig, path, dpi=110)


# ================================================================================================ report
def write_report(args: ReportArguments) -> Path:
    results_dir = Path(args.results_dir)
    rows = read_results(results_dir / RESULTS_FILE)
    if not rows:
        raise FileNotFoundError(f"no results in {results_dir / RESULTS_FILE}: run `agkd evaluate` first")
    out = Path(args.output_dir or results_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    groups = group_rows(rows)
    lines = [
        "# AGKD report: which attribution methods teach a student best",
        "",
        f"{len(rows)} result rows from `{results_dir / RESULTS_FILE}`. Cells are ΔBLEU / ΔchrF of the student over the "
        "no-map baseline of the same teacher, pair, target kind and seed (mean over seeds, ± their standard deviation "
        "when there are several); `*` p < 0.05, `**` p < 0.01 by paired bootstrap resampling (for every seed). "
        "Protocols: `gold` (teacher maps on the reference: leaks it), `teacher` (maps of the teacher's own translation), "
        "`train-only` (no map at test time), `attributor` (maps predicted by the Attributor).",
        "",
    ]
    for (teacher, pair, kind, split, protocol), group in sorted(groups.items()):
        if protocol == BASELINE_PROTOCOL:
            continue
        baseline = groups.get((teacher, pair, kind, split, BASELINE_PROTOCOL), [])
        lines.append(f"## {teacher} {pair}, targets `{kind}`, split `{split}`, protocol `{protocol}`\n")
        if baseline:
            lines.append(
                "Baseline (no map): BLEU "
                + ", ".join(f"{b['bleu']:.2f}" for b in baseline)
                + " / chrF "
                + ", ".join(f"{b['chrf']:.2f}" for b in baseline)
                + f" (seeds {', '.join(str(b['seed']) for b in baseline)}, {baseline[0]['examples']} sentences, "
                f"`{baseline[0]['bleu_signature']}`).\n"
            )
        lines += [results_table(group), ""]
        gains = method_gains(group)
        if protocol == args.main_protocol and gains:
            plot = plot_gains(gains, f"{teacher} {pair} ({kind}, {split}, {protocol})", plots / f"gains-{teacher}-{pair}-{kind}-{split}.png")
            ranking = sorted(gains, key=lambda m: statistics.mean(gains[m]), reverse=True)
            lines += [
                f"![gains by method]({plot.relative_to(out)})",
                "",
                "Ranking by mean ΔBLEU (all operators and seeds): "
                + ", ".join(f"{i + 1}. {m} ({statistics.mean(gains[m]):+.2f})" for i, m in enumerate(ranking)),
                "",
                f"**The paper's finding {paper_finding(gains, significant_gainers(group))}.**",
                "",
            ]
            versus_controls = control_comparison(gains)
            if versus_controls:
                lines += [versus_controls, ""]
    if args.models_dir:
        lines += fidelity_section(Path(args.models_dir), groups, args.main_protocol, plots, out)
    if args.attributions:
        for teacher, pair in sorted({(k[0], k[1]) for k in groups}):
            plot = plot_example_maps(args.attributions, teacher, pair, "test", plots / f"maps-{teacher}-{pair}.png")
            if plot:
                lines += [f"## Example maps: {teacher} {pair}", "", f"![example maps]({plot.relative_to(out)})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    logger.info("wrote %s and %d plots", path, len(list(plots.glob("*.png"))))
    return path


main = stage_main(ReportArguments, write_report, prog="agkd report", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
