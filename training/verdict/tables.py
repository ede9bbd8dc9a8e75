"""The verdict's tables in markdown: result rows grouped and their gains per method and operator (the report's
all-cells tables, the Space's results table), and one design's verdict as tables (methods, the claim's contrasts,
the controls).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from agkd.datasets_scripts.attribution.methods import CONTROLS
from agkd.training.evaluation.scoring import METRICS, improvement
from agkd.training.presets import ALL_METHODS, GRID_OPERATORS
from agkd.training.verdict import statistics as verdict
from agkd.training.verdict.design import CONTRASTS, DesignVerdict, format_estimate


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
        groups[(row["teacher_name"], row["pair"], row["target_kind"], design, row["split"], row["protocol"])].append(
            row
        )
    return groups


def cell(rows: list[dict], metrics: tuple[str, ...] = ("bleu", "chrf")) -> str:
    """Gains on each metric over seeds (mean ± sd), joined by ` / `: no marks, since a per-row bootstrap on one seed
    is not the verdict's rule (only the verdict marks a difference)."""
    parts = []
    for metric in metrics:
        gains = [g for r in rows if (g := row_gain(r, metric)) is not None]
        if not gains:
            return "n/a"
        parts.append(mean_spread(gains, digits_of(metric)))
    return " / ".join(parts)


def method_order(methods: set[str]) -> list[str]:
    known = [m for m in (*ALL_METHODS, *CONTROLS) if m in methods]
    return known + sorted(methods - set(known))


def results_table(rows: list[dict], metrics: tuple[str, ...] = ("bleu", "chrf")) -> str:
    """Markdown table methods x operators of one group of rows (one teacher, pair, kind, split, protocol): each
    cell the gains on `metrics` (positive = better than the baseline), one table per map normalisation."""
    methods = method_order({r["method"] for r in rows})
    operators = [o for o in GRID_OPERATORS if any(r["operator"] == o for r in rows)]
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
                selected = [
                    r
                    for r in rows
                    if (r["method"], r["operator"], r["map_normalization"]) == (method, operator, normalisation)
                ]
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


CONTRAST_HEADINGS = {"baseline": "gain over no map", "shuffled": "over its shuffled twin", "diagonal": "over diagonal"}


def method_table(result: DesignVerdict) -> list[str]:
    """Per method its gains over no map, its shuffled twin and diagonal, its gold gain and the leak. A control that the
    grid did not train (the demo trades the diagonal) loses its column, and one line says so."""
    gold_label = f"gold gain ({result.gold_design.operator}, leaks)" if result.gold_design else "gold gain"
    shown = [c for c in CONTRASTS if c not in result.untrained]
    lines = [
        "| method | " + " | ".join(CONTRAST_HEADINGS[c] for c in shown) + f" | {gold_label} | leak (gold minus this "
        "design) |",
        "|---|" + "---|" * (len(shown) + 2),
    ]
    for method, contrasts in result.contrasts.items():
        cells = [format_estimate(contrasts[c], result.adjusted[(method, c)]) for c in shown]
        cells += [format_estimate(result.gold.get(method)), format_estimate(result.leak.get(method))]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if result.untrained:
        lines += ["", f"Not trained in this grid, so not a column: {', '.join(result.untrained)} (the preset's "
                  "`control_maps`; lab and paper train it)."]
    return lines


def claim_table(result: DesignVerdict) -> list[str]:
    """The 15 direct contrasts of the claim beside the same pairs over the shuffled twins (the content check)."""
    twin = result.content_contrasts
    lines = ["| top method | other method | top gains more (direct) | Holm p | by gains over the twins |",
             "|---|---|---|---|---|"]
    for pair, estimate in result.claim_contrasts.items():
        adjusted = result.claim.adjusted_p.get(pair)
        lines.append(f"| {pair[0]} | {pair[1]} | {format_estimate(estimate)} | "
                     f"{'-' if adjusted is None else f'{adjusted:.3g}'} | {format_estimate(twin.get(pair))} |")
    return lines


def control_lines(result: DesignVerdict) -> list[str]:
    if not result.controls:
        return []
    lines = ["| control | gain over no map |", "|---|---|"]
    lines += [f"| {c} | {format_estimate(e, result.controls_adjusted[c])} |" for c, e in result.controls.items()]
    confounds = [c for c, e in result.controls.items()
                 if verdict.significant(e, result.controls_adjusted[c]) and e.mean > 0]
    if confounds:
        lines += [
            "",
            f"**Confound**: {', '.join(confounds)}, built without the teacher's alignment, gain significantly over no "
            "map: that much of a method's gain over no map comes without the teacher's knowledge.",
        ]
    return lines
