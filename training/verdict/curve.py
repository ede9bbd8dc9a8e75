"""Where maps teach: the learning curve over map-annotated pairs (a preset's `curve_pairs`), real and planted.

The real curve: the primary design's students of every method, and their no-map baseline, trained on the first N
map-annotated pairs only (`train_student --train_pairs`: nested subsets), each point scored as the verdict scores its
rows (`design.primary_scores`: the whole test split, replicates x sentences); the preset's own count is the last point
(the verdict's own rows). The planted curve: the positive control at the same counts (`agkd instrument
--curve_pairs`). Shown beside the verdict, never read by it: no decision rule looks at a curve.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from agkd.datasets_scripts.attribution.configs import BASELINE
from agkd.datasets_scripts.release_layout import INSTRUMENT_FILE
from agkd.training.presets import PRESETS
from agkd.training.verdict import statistics as verdict
from agkd.training.verdict.control import check_interval
from agkd.training.verdict.design import (
    PRIMARY_DESIGN,
    Design,
    contrast_weights,
    format_estimate,
    primary_scores,
    system,
)
from agkd.training.verdict.plots import plot_annotated_pairs_curve

TOP_OVER_REST = "top three over the other five"  # the claim's contrasts in one number: mean(rest) - mean(top) NLL


def curve_check_file(pairs: int | str) -> str:
    """The planted curve's point at `pairs` annotated pairs, beside the control's own file in `results/`."""
    return INSTRUMENT_FILE.replace(".json", f"-p{pairs}.json")


def top_over_rest(design: Design) -> dict[str, float]:
    """Weights of 'the paper's three gain more than the other five, on average' (positive when they do)."""
    weights = {system(m, design): 1.0 / len(verdict.PAPER_REST) for m in verdict.PAPER_REST}
    return weights | {system(m, design): -1.0 / len(verdict.PAPER_TOP) for m in verdict.PAPER_TOP}


def point_estimates(rows: list[dict], results_dir: Path, design: Design, methods: list[str]
                    ) -> dict[str, verdict.Estimate]:
    """Each method's gain over no map at one point (its rows and their baselines, scored as the verdict is), and the
    top three's mean gain over the other five."""
    scores = primary_scores([r for r in rows if r["method"] != BASELINE],
                            [r for r in rows if r["method"] == BASELINE], results_dir, design)
    estimates = {m: scores.estimate(contrast_weights(m, "baseline", design)) for m in methods}
    if all(scores.has(system(m, design)) for m in (*verdict.PAPER_TOP, *verdict.PAPER_REST)):
        estimates[TOP_OVER_REST] = scores.estimate(top_over_rest(design))
    return estimates


def curve_section(curve_rows: list[dict], groups: dict[tuple, list[dict]], results_dir: Path, plots: Path,
                  out: Path) -> list[str]:
    """The report's learning-curve section (nothing without curve rows): per group a table and a plot of each
    method's gain over no map against the annotated pairs, then the planted curve."""
    if not curve_rows:
        return []
    lines = [
        "## Where maps teach: the learning curve over map-annotated pairs",
        "",
        f"The primary design (`{PRIMARY_DESIGN[0]}`, no map at test time) trained on the first N map-annotated pairs "
        "(nested subsets), each point with its own no-map baseline on the same pairs and scored as the verdict is; "
        "the last point is the verdict's own rows. Gains on the reference NLL in nats/token, mean [95% interval over "
        "replicates and sentences]; shown, not decided (no rule of the verdict reads this curve).",
        "",
    ]
    by_group: dict[tuple, list[dict]] = defaultdict(list)
    for row in curve_rows:
        by_group[(row["teacher_name"], row["pair"], row["target_kind"], row.get("student_init", "scratch"),
                  row["split"])].append(row)
    for group, rows in sorted(by_group.items()):
        design = next(Design.of(r) for r in rows if r["method"] != BASELINE)
        methods = sorted({r["method"] for r in rows if r["method"] != BASELINE},
                         key=lambda m: [*verdict.PAPER_TOP, *verdict.PAPER_REST, m].index(m))
        points = {str(pairs): point_estimates([r for r in rows if r["train_pairs"] == pairs], results_dir, design,
                                              methods)
                  for pairs in sorted({r["train_pairs"] for r in rows})}
        full = [r for key, rs in groups.items() if key[:5] == group for r in rs]
        if any(Design.of(r) == design for r in full if r["method"] != BASELINE):
            preset = PRESETS.get(rows[0]["preset"])
            annotated = preset.extract.max_pairs.get("train") if preset else None
            points[f"{annotated or 'all'} (the verdict's)"] = point_estimates(full, results_dir, design, methods)
        columns = [*([TOP_OVER_REST] if any(TOP_OVER_REST in p for p in points.values()) else []), *methods]
        lines += [
            f"### {' '.join(map(str, group[:2]))}, targets `{group[2]}`, init `{group[3]}`, split `{group[4]}`",
            "",
            "| annotated pairs | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|",
            *(f"| {label} | " + " | ".join(format_estimate(estimates.get(c)) for c in columns) + " |"
              for label, estimates in points.items()),
            "",
        ]
        plot = plot_annotated_pairs_curve(points, methods, plots / f"curve-{'-'.join(map(str, group))}.png")
        lines += [f"![learning curve]({plot.relative_to(out)})", ""]
    return lines + planted_curve_lines(results_dir)


def planted_curve_lines(results_dir: Path) -> list[str]:
    """The positive control at each annotated-pair count it was run at (`agkd instrument --curve_pairs`)."""
    checks = [json.loads(p.read_text()) for p in sorted(results_dir.glob(curve_check_file("*")))]
    main = results_dir / INSTRUMENT_FILE
    checks += [json.loads(main.read_text())] if main.exists() and checks else []
    if not checks:
        return []
    lines = [
        "Planted (the positive control at each count, the same regime and replicates; content gains in nats/token):",
        "",
        "| annotated pairs | content over layout | over the twin | slope over corruption | passes | MDE |",
        "|---|---|---|---|---|---|",
    ]
    for check in sorted(checks, key=lambda c: c["config"]["finetune_pairs"]):
        twin = check["levels"][0]["over_shuffled"]
        cells = [check_interval(check["content_over_layout"]), check_interval(twin), check_interval(check["slope"])]
        lines.append(f"| {check['config']['finetune_pairs']} | " + " | ".join(cells)
                     + f" | {'yes' if check['passed'] else 'no'} | {check['mde']:.4f} |")
    return [*lines, ""]
