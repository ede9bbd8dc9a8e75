"""Write `report.md` and its PNG plots from `results/results.jsonl`: which attribution methods teach a student.

The report leads with the instrument check (`agkd instrument`: can this machinery see a planted alignment at all?),
then, per teacher, pair, target kind, design (`scratch`/`warm`) and split, the verdict on the primary metric
(`training.scoring.PRIMARY_METRIC`, fixed in code before any result is read) under the main protocol: per method its
gain over the no-map baseline with a 95% interval across seeds, how many seeds are significant on their own
(paired bootstrap over sentences), whether it teaches more than the best control map, in the scale-fair setting
(`row_sum`: every map row has the same mass, only its content differs) that carries the verdict and in the paper's
raw setting beside it, with both rankings and their rank agreement. The sentence on the paper's finding (attention,
value zeroing and layer gradient x activation teach more than the other gradient methods) says holds, does not hold
or cannot be checked, and why. Then every protocol's methods x operators tables (primary metric, BLEU / chrF),
gains charts, example map heatmaps (`--attributions`) and Attributor fidelity against gain (`--models_dir`).

    agkd report --results_dir runs/demo/results --attributions runs/demo/hub/datasets/agkd-attributions
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from datasets_scripts.attribution_configs import config_name
from datasets_scripts.attribution_methods import CONTROLS
from training.cli import run_as_script, stage_main
from training.evaluate import BASELINE_PROTOCOL
from training.layout import INSTRUMENT_FILE, RESULTS_FILE, read_results
from training.presets import ALL_METHODS, ALL_OPERATORS, SCALE_FAIR_NORMALIZATION
from training.scoring import METRICS, PRIMARY_METRIC, improvement, seed_interval

logger = logging.getLogger(__name__)

PAPER_TOP = ("attention", "value_zeroing", "layer_gradient_x_activation")
# Below this test BLEU the no-map baseline does not translate, and what a map teaches cannot show.
MIN_BASELINE_BLEU = 5.0
RAW_NORMALIZATION = "none"


@dataclass
class ReportArguments:
    results_dir: str = field(metadata={"help": "folder with results.jsonl (written by agkd evaluate)"})
    attributions: str | None = field(default=None, metadata={"help": "agkd-attributions folder: example heatmaps"})
    models_dir: str | None = field(
        default=None, metadata={"help": "folder with attributor-* models: fidelity vs gain (table and scatter plot)"}
    )
    output_dir: str | None = field(default=None, metadata={"help": "where report.md and plots go (default: results_dir)"})
    main_protocol: str = field(default="gold", metadata={"help": "protocol of the verdict, the rankings and the charts"})


# ================================================================================================ tables
def significance(p_value: float | None) -> str:
    if p_value is None:
        return ""
    return "**" if p_value < 0.01 else "*" if p_value < 0.05 else ""


def digits_of(metric: str) -> int:
    return 4 if metric in METRICS else 2


def mean_spread(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:+.{digits}f}"
    return f"{statistics.mean(values):+.{digits}f}±{statistics.stdev(values):.{digits}f}"


def group_rows(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Rows by (teacher, pair, target kind, design, split, protocol); baselines kept under protocol `none`."""
    groups = defaultdict(list)
    for row in rows:
        design = row.get("student_init", "scratch")
        groups[(row["teacher_name"], row["pair"], row["target_kind"], design, row["split"], row["protocol"])].append(row)
    return groups


def cell(rows: list[dict], metrics: tuple[str, ...] = ("bleu", "chrf")) -> str:
    """Gains on each metric over seeds, joined by ` / `; the marks need every seed significant in the same direction."""
    parts = []
    for metric in metrics:
        gains = [g for r in rows if (g := row_gain(r, metric)) is not None]
        if not gains:
            return "n/a"
        marks = min((significance(r["bootstrap"][metric]["p_value"]) for r in rows if row_gain(r, metric) is not None), key=len)
        parts.append(f"{mean_spread(gains, digits_of(metric))}{marks}")
    return " / ".join(parts)


def method_order(methods: set[str]) -> list[str]:
    known = [m for m in (*ALL_METHODS, *CONTROLS) if m in methods]
    return known + sorted(methods - set(known))


def results_table(rows: list[dict], metrics: tuple[str, ...] = ("bleu", "chrf")) -> str:
    """Markdown table methods x operators of one group of rows (one teacher, pair, kind, split, protocol): each
    cell the gains on `metrics` (positive = better than the baseline), one table per map normalisation."""
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
                cells.append(cell(selected, metrics) if selected else "")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def method_gains(rows: list[dict], metric: str = "bleu") -> dict[str, list[float]]:
    """Gains on `metric` (positive = better than the baseline) of every run of a method (all operators,
    normalisations and seeds)."""
    gains = defaultdict(list)
    for row in rows:
        gain = row_gain(row, metric)
        if gain is not None:
            gains[row["method"]].append(gain)
    return gains


def row_gain(row: dict, metric: str) -> float | None:
    """The row's gain over its baseline on `metric` (the bootstrap's delta, signed so that positive is better)."""
    entry = (row.get("bootstrap") or {}).get(metric)
    return None if entry is None else improvement(metric, entry["delta"])


def row_significant(row: dict, metric: str, alpha: float = 0.05) -> bool:
    """Whether the row gains on `metric` with paired-bootstrap p < alpha (a loss is not a gain)."""
    gain = row_gain(row, metric)
    return gain is not None and gain > 0 and row["bootstrap"][metric]["p_value"] < alpha


# ================================================================================================ the verdict
@dataclass
class MethodEvidence:
    """What the rows say about one method (or control) in one setting, on one metric, pooled over operators.

    `per_seed`: the seed's gain over its baseline (mean over the operators of the setting); `interval`: Student-t 95%
    interval of the mean across seeds; `significant_seeds`: seeds whose every row gains significantly on its own."""

    method: str
    per_seed: dict[int, float]
    significant_seeds: int
    versus_control: tuple[float, float, float] | None = None  # mean, low, high of (method - best control) per seed

    @property
    def mean(self) -> float:
        return seed_interval(list(self.per_seed.values()))[0]

    @property
    def interval(self) -> tuple[float, float]:
        _, low, high = seed_interval(list(self.per_seed.values()))
        return low, high

    @property
    def gains_significantly(self) -> bool:
        """The interval across seeds lies above zero."""
        low, _ = self.interval
        return not math.isnan(low) and low > 0

    @property
    def beats_best_control(self) -> bool:
        return self.versus_control is not None and not math.isnan(self.versus_control[1]) and self.versus_control[1] > 0


def method_evidence(rows: list[dict], metric: str) -> dict[str, MethodEvidence]:
    """Per method and control of one setting (protocol, normalisation): per-seed gains, significance, and the
    per-seed difference to the best control (the control with the highest mean gain)."""
    by_method: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row_gain(row, metric) is not None:
            by_method[row["method"]][row["seed"]].append(row)
    evidence = {
        method: MethodEvidence(
            method,
            {seed: statistics.mean(row_gain(r, metric) for r in seed_rows) for seed, seed_rows in sorted(seeds.items())},
            sum(all(row_significant(r, metric) for r in seed_rows) for seed_rows in seeds.values()),
        )
        for method, seeds in by_method.items()
    }
    controls = [evidence[c] for c in CONTROLS if c in evidence]
    if controls:
        best = max(controls, key=lambda e: e.mean)
        for item in evidence.values():
            if item.method in CONTROLS:
                continue
            seeds = sorted(set(item.per_seed) & set(best.per_seed))
            if seeds:
                item.versus_control = seed_interval([item.per_seed[s] - best.per_seed[s] for s in seeds])
    return evidence


def best_control(evidence: dict[str, MethodEvidence]) -> MethodEvidence | None:
    controls = [evidence[c] for c in CONTROLS if c in evidence]
    return max(controls, key=lambda e: e.mean) if controls else None


def format_interval(mean: float, low: float, high: float, digits: int = 4) -> str:
    if math.isnan(low):
        return f"{mean:+.{digits}f} (one seed: no interval)"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def evidence_table(evidence: dict[str, MethodEvidence], metric: str) -> list[str]:
    """Markdown: per method its mean gain with the 95% interval across seeds, seeds significant on their own, and
    whether it is distinguishable from the best control."""
    best = best_control(evidence)
    unit = "nats/token" if METRICS.get(metric, None) and METRICS[metric].statistic == "nll" else ""
    lines = [
        f"| method | gain on `{metric}` {unit}, mean [95% interval across seeds] | seeds significant alone | "
        f"vs best control ({best.method if best else 'none'}): difference [95%] | teaches more than the best control? |",
        "|---|---|---|---|---|",
    ]
    for method in method_order(set(evidence)):
        item = evidence[method]
        low, high = item.interval
        if method in CONTROLS:
            verdict = "control" + (": **gains significantly (a confound)**" if item.gains_significantly else "")
            versus = "-"
        else:
            verdict = "**yes**" if item.beats_best_control else "no"
            versus = format_interval(*item.versus_control) if item.versus_control else "-"
        lines.append(
            f"| {method} | {format_interval(item.mean, low, high)} | {item.significant_seeds}/{len(item.per_seed)} | "
            f"{versus} | {verdict} |"
        )
    return lines


@dataclass
class Preconditions:
    """What the verdict needs before it can say anything: an instrument that sees a planted map, students that
    translate, every method, and seeds for intervals."""

    instrument_passed: bool | None  # None: the check was not run
    baseline_bleu: list[float]
    min_baseline_bleu: float = MIN_BASELINE_BLEU

    def failures(self, evidence: dict[str, MethodEvidence]) -> list[str]:
        problems = []
        if self.instrument_passed is None:
            problems.append("the instrument check was not run (`agkd instrument`)")
        elif not self.instrument_passed:
            problems.append("the instrument check failed: the machinery did not see a planted alignment")
        if not self.baseline_bleu:
            problems.append("there is no baseline result")
        elif min(self.baseline_bleu) < self.min_baseline_bleu:
            problems.append(
                f"the no-map baseline reaches only BLEU {min(self.baseline_bleu):.2f} (< {self.min_baseline_bleu:g}): "
                "students that do not translate cannot show what a map teaches"
            )
        missing = [m for m in ALL_METHODS if m not in evidence]
        if missing:
            problems.append(f"no results for {', '.join(missing)}")
        if evidence and max(len(e.per_seed) for e in evidence.values()) < 2:
            problems.append("one seed only: no interval across seeds")
        return problems


def paper_claim(evidence: dict[str, MethodEvidence], preconditions: Preconditions, metric: str) -> str:
    """Does the paper's finding hold here: do attention, value zeroing and layer gradient x activation teach more
    than the other gradient methods? Returns "holds: ...", "does not hold: ..." or "cannot be checked: ...", each
    with its reason, following only from what the rows can show:

    - cannot be checked when a precondition fails, or when no method teaches more than the best control (then no
      method teaches, and there is nothing to rank);
    - otherwise per seed the mean gain of the three minus the mean gain of the other five; holds when its 95%
      interval across seeds lies above 0, does not hold otherwise (below 0: the others teach more; around 0: the
      two groups are not distinguishable)."""
    problems = preconditions.failures(evidence)
    if problems:
        return "cannot be checked: " + "; ".join(problems)
    if not any(evidence[m].beats_best_control for m in ALL_METHODS):
        best = best_control(evidence)
        return (
            "cannot be checked: no attribution method teaches more than the best control map"
            + (f" ({best.method})" if best else "")
            + " on the 95% interval across seeds, so there is no teaching to rank"
        )
    others = [m for m in ALL_METHODS if m not in PAPER_TOP]
    seeds = sorted(set.intersection(*(set(evidence[m].per_seed) for m in ALL_METHODS)))
    differences = [
        statistics.mean(evidence[m].per_seed[s] for m in PAPER_TOP) - statistics.mean(evidence[m].per_seed[s] for m in others)
        for s in seeds
    ]
    mean, low, high = seed_interval(differences)
    told = f"the three gain {format_interval(mean, low, high)} more on `{metric}` than the other five gradient methods"
    if low > 0:
        return f"holds: {told} (95% interval across {len(seeds)} seeds)"
    if high < 0:
        return f"does not hold: {told}; the other gradient methods teach more"
    return f"does not hold here: {told}, an interval that includes 0, so the two groups are not distinguishable"


def rank_agreement(fair: dict[str, MethodEvidence], raw: dict[str, MethodEvidence]) -> tuple[float, float, int] | None:
    """Spearman rho and Kendall tau between the methods' mean gains in the two settings (None below 3 methods)."""
    from scipy.stats import kendalltau, spearmanr

    methods = [m for m in ALL_METHODS if m in fair and m in raw]
    if len(methods) < 3:
        return None
    x, y = [fair[m].mean for m in methods], [raw[m].mean for m in methods]
    return float(spearmanr(x, y).statistic), float(kendalltau(x, y).statistic), len(methods)


def ranking(evidence: dict[str, MethodEvidence]) -> str:
    order = sorted((m for m in evidence if m not in CONTROLS), key=lambda m: evidence[m].mean, reverse=True)
    return ", ".join(f"{i + 1}. {m} ({evidence[m].mean:+.4f})" for i, m in enumerate(order))


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
    """Per teacher, pair and design: each method's Attributor fidelity (held-out Spearman with the teacher's rows)
    against its students' mean gain on the primary metric under the main protocol in the scale-fair setting, the
    Spearman rho across methods with a bootstrap interval, and a scatter plot."""
    lines = []
    attributors = [json.loads((d / "agkd_run.json").read_text()) for d in sorted(models_dir.glob("attributor-*")) if (d / "agkd_run.json").exists()]
    for teacher, pair, design in sorted({(k[0], k[1], k[3]) for k in groups}):
        rows = groups.get((teacher, pair, "reference", design, "test", main_protocol), [])
        fair = [r for r in rows if r["map_normalization"] == SCALE_FAIR_NORMALIZATION] or rows
        gains = method_gains(fair, PRIMARY_METRIC)
        points = [
            (a["method"], a["fidelity"]["spearman"], statistics.mean(gains[a["method"]]))
            for a in attributors
            if (a["teacher_name"], a["pair"]) == (teacher, pair) and a["method"] in gains and "spearman" in a["fidelity"]
        ]
        if not points:
            continue
        lines += [
            f"## Attributor fidelity vs gain: {teacher} {pair}, design `{design}` (protocol `{main_protocol}`)",
            "",
            f"| method | Attributor Spearman with the teacher's rows (held out) | mean gain on `{PRIMARY_METRIC}` |",
            "|---|---|---|",
            *(f"| {m} | {f:.3f} | {g:+.4f} |" for m, f, g in points),
            "",
        ]
        if len(points) >= 3:
            rho, interval = spearman_with_interval([p[1] for p in points], [p[2] for p in points])
            plot = plot_fidelity(points, f"{teacher} {pair} ({design}): rho = {rho:.2f}", plots / f"fidelity-{teacher}-{pair}-{design}.png")
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
    ax.set_ylabel(f"mean gain on {PRIMARY_METRIC} over the no-map baseline")
    ax.set_title(title, fontsize=10)
    return _save_figure(fig, path)


def plot_gains(settings: dict[str, dict[str, MethodEvidence]], metric: str, title: str, path: Path) -> Path:
    """Mean gain per method with its 95% interval across seeds, one bar per setting (normalisation) side by side."""
    plt = _pyplot()

    methods = method_order(set().union(*settings.values()))
    width = 0.8 / len(settings)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(methods)), 4))
    for k, (setting, evidence) in enumerate(settings.items()):
        xs, means, errors = [], [], [[], []]
        for i, method in enumerate(methods):
            if method not in evidence:
                continue
            low, high = evidence[method].interval
            mean = evidence[method].mean
            xs.append(i - 0.4 + width * (k + 0.5))
            means.append(mean)
            errors[0].append(0.0 if math.isnan(low) else mean - low)
            errors[1].append(0.0 if math.isnan(high) else high - mean)
        ax.bar(xs, means, width=width, yerr=errors, capsize=2, label=f"normalisation {setting}")
    for i, method in enumerate(methods):
        if method in CONTROLS:
            ax.axvspan(i - 0.45, i + 0.45, color="grey", alpha=0.12, linewidth=0)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(methods)), [m.replace("_", "\n") for m in methods], fontsize=8)
    ax.set_ylabel(f"gain on {metric} (95% interval across seeds)")
    ax.set_title(title + " (controls shaded)", fontsize=10)
    ax.legend(fontsize=8)
    return _save_figure(fig, path)


def plot_example_maps(attributions: str, teacher: str, pair: str, split: str, path: Path) -> Path | None:
    """One heatmap per method of the first `split` pair, tokens on the axes (target rows, source columns)."""
    plt = _pyplot()
    import numpy as np

    from training.data import dataset_configs, load_dataset_config

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
        data = load_dataset_config(attributions, config_name(teacher, pair, method))
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
def instrument_lines(results_dir: Path) -> tuple[list[str], bool | None]:
    """The instrument-check section from `instrument_check.json` (written by `agkd instrument`), and whether it passed."""
    from training.instrument import instrument_section

    path = results_dir / INSTRUMENT_FILE
    if not path.exists():
        return ["## Instrument check", "", f"Not run: no `{path}` (run `agkd instrument --results_dir {results_dir}`).", ""], None
    result = json.loads(path.read_text())
    return [*instrument_section(result), ""], bool(result["passed"])


def baseline_line(baseline: list[dict]) -> str:
    seeds = sorted(baseline, key=lambda b: b["seed"])
    primary = [b.get(PRIMARY_METRIC) for b in seeds]
    return (
        "Baseline (no map): BLEU "
        + ", ".join(f"{b['bleu']:.2f}" for b in seeds)
        + " / chrF " + ", ".join(f"{b['chrf']:.2f}" for b in seeds)
        + (f" / `{PRIMARY_METRIC}` " + ", ".join(f"{v:.4f}" for v in primary) if None not in primary else "")
        + f" (seeds {', '.join(str(b['seed']) for b in seeds)}, {seeds[0]['examples']} sentences, "
        f"`{seeds[0]['bleu_signature']}`)."
    )


def verdict_lines(rows: list[dict], baseline: list[dict], instrument_passed: bool | None, title: str, plot_path: Path, out: Path) -> list[str]:
    """The verdict of one group under the main protocol: evidence tables of the scale-fair and the raw setting,
    rankings and their agreement, confounds, the sentence on the paper's finding, and the gains chart."""
    settings = {
        normalization: method_evidence([r for r in rows if r["map_normalization"] == normalization], PRIMARY_METRIC)
        for normalization in sorted({r["map_normalization"] for r in rows}, key=lambda n: n != SCALE_FAIR_NORMALIZATION)
    }
    settings = {k: v for k, v in settings.items() if v}
    if not settings:
        return []
    preconditions = Preconditions(instrument_passed, [b["bleu"] for b in baseline])
    verdict_setting = SCALE_FAIR_NORMALIZATION if SCALE_FAIR_NORMALIZATION in settings else next(iter(settings))
    lines = [
        f"### Verdict on `{PRIMARY_METRIC}` ({METRICS[PRIMARY_METRIC].description})",
        "",
        "Gains are baseline minus student (positive = the map helps), per seed pooled over the operators of the setting; "
        "intervals are Student-t 95% across seeds; a seed is significant alone when every row of it gains with paired "
        "bootstrap p < 0.05; a method teaches more than the best control when the interval of its per-seed difference "
        "to that control lies above 0.",
        "",
    ]
    for normalization, evidence in settings.items():
        label = "scale-fair, carries the verdict" if normalization == SCALE_FAIR_NORMALIZATION else (
            "the paper's raw maps" if normalization == RAW_NORMALIZATION else "another normalisation")
        lines += [f"#### Map normalisation `{normalization}` ({label})", "", *evidence_table(evidence, PRIMARY_METRIC), ""]
        lines += [f"Ranking: {ranking(evidence)}.", ""]
        confounds = [c for c in CONTROLS if c in evidence and evidence[c].gains_significantly]
        if confounds:
            lines += [
                f"**Confound**: the control map(s) {', '.join(confounds)}, built without the teacher, gain significantly "
                "in this setting: that much of any map's gain comes without the teacher's knowledge, so only a gain "
                "beyond the best control (the column above) is evidence of teaching.", "",
            ]
        claim = paper_claim(evidence, preconditions, PRIMARY_METRIC)
        lines += [f"{'**' if normalization == verdict_setting else ''}The paper's finding {claim}"
                  f"{'.**' if normalization == verdict_setting else '.'}", ""]
    if SCALE_FAIR_NORMALIZATION in settings and RAW_NORMALIZATION in settings:
        agreement = rank_agreement(settings[SCALE_FAIR_NORMALIZATION], settings[RAW_NORMALIZATION])
        if agreement:
            rho, tau, n = agreement
            lines += [
                f"Rank agreement of the {n} methods between the scale-fair and the raw setting: Spearman rho {rho:.2f}, "
                f"Kendall tau {tau:.2f}" + (" (the raw scale changes the ranking)" if rho < 0.8 else "") + ".", "",
            ]
    plot = plot_gains(settings, PRIMARY_METRIC, title, plot_path)
    lines += [f"![gains by method]({plot.relative_to(out)})", ""]
    return lines


def write_report(args: ReportArguments) -> Path:
    results_dir = Path(args.results_dir)
    rows = read_results(results_dir / RESULTS_FILE)
    if not rows:
        raise FileNotFoundError(f"no results in {results_dir / RESULTS_FILE}: run `agkd evaluate` first")
    out = Path(args.output_dir or results_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    groups = group_rows(rows)
    instrument, instrument_passed = instrument_lines(results_dir)
    lines = [
        "# AGKD report: which attribution methods teach a student best",
        "",
        f"{len(rows)} result rows from `{results_dir / RESULTS_FILE}`. The primary metric, fixed in code before any "
        f"result was read, is `{PRIMARY_METRIC}`: {METRICS[PRIMARY_METRIC].description}, teacher-forced with the row's "
        "map injection (why: a proper scoring rule that rewards probability on every reference token, so it moves "
        "before BLEU or agreement do, on the targets the students learn and BLEU scores, independent of decoding "
        "choices); BLEU / chrF and the agreement metrics stand beside it. Every student is compared with the "
        "no-map baseline of the same teacher, pair, target kind, design and seed. Protocols: `gold` (teacher maps on the "
        "reference: leaks it), `teacher` (maps of the teacher's own translation), `train-only` (no map at test time), "
        "`attributor` (maps predicted by the Attributor). Designs: `scratch` (every student from random weights: the "
        "paper's) and `warm` (every cell, the baseline included, fine-tunes one shared no-map warm start: not the "
        "paper's).",
        "",
        *instrument,
    ]
    sections = sorted({key[:5] for key in groups})
    for teacher, pair, kind, design, split in sections:
        baseline = groups.get((teacher, pair, kind, design, split, BASELINE_PROTOCOL), [])
        lines += [f"## {teacher} {pair}, targets `{kind}`, design `{design}`, split `{split}`", ""]
        if baseline:
            lines += [baseline_line(baseline), ""]
        main_rows = groups.get((teacher, pair, kind, design, split, args.main_protocol), [])
        lines += verdict_lines(
            main_rows, baseline, instrument_passed, f"{teacher} {pair} ({kind}, {design}, {split}, {args.main_protocol})",
            plots / f"gains-{teacher}-{pair}-{kind}-{design}-{split}.png", out,
        )
        for protocol in sorted({key[5] for key in groups if key[:5] == (teacher, pair, kind, design, split)} - {BASELINE_PROTOCOL}):
            group = groups[(teacher, pair, kind, design, split, protocol)]
            lines += [
                f"### Protocol `{protocol}`: all cells",
                "",
                f"Gain on `{PRIMARY_METRIC}` / `agreement_reference` / `agreement_teacher` (mean over seeds ± their "
                "standard deviation; `*` p < 0.05, `**` p < 0.01 by paired bootstrap for every seed):",
                "",
                results_table(group, (PRIMARY_METRIC, "agreement_reference", "agreement_teacher")),
                "",
                "ΔBLEU / ΔchrF:",
                "",
                results_table(group),
                "",
            ]
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
