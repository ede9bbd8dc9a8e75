"""The report's triangulation section: per method its utility (the verdict's gain) beside plausibility (silver and
gold AER), faithfulness (AOPC) and sanity, how far the criteria rank the methods alike, and one plot.

Reads `results/triangulation/<teacher>.<pair>.json` and `.npz` (`agkd triangulate`). Every ranked criterion is
oriented so that higher is better before ranks are compared: 1 - AER, AOPC as is, and the utility gain; the sanity
check stands in the table as pass/fail (the comment under `UTILITY` says why it is not ranked).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from agkd.datasets_scripts.release_layout import TRIANGULATION_DIR, TRIANGULATION_HEADING
from agkd.training.triangulation.agreement import AGREEMENT_LEVEL, Agreement, Criterion, agreements
from agkd.training.triangulation.alignment import LITERATURE_READING, PRIMARY_READING, SHIFT_NAMES
from agkd.training.triangulation.faithfulness import PRIMARY_REMOVAL, REMOVALS, aopc_key

UTILITY = "utility"
# The sanity check is a pass/fail rule (`SANITY_THRESHOLD`), not a scale that ranks methods: among methods that pass,
# the Spearman after full randomisation sits near 0 for all of them, and its order comes from one draw of random
# weights that no resample covers. So it stands in the table and stays out of the rank agreement. Decided after the
# first demo table (2026-12-02), where it alone produced `agree`/`disagree` readings from values within 0.2 of 0.
CRITERIA_LABELS = {
    UTILITY: "utility",
    "silver": "1 - silver AER",
    "gold": "1 - gold AER",
    "aopc_deletion": "AOPC deletion",
    "aopc_insertion": "AOPC insertion",
}


# Under every AER table (review M2): what a row of each kind of map may see at the step it is read at.
STEP_ACCESS_NOTE = (
    "Gradient-method rows (saliency, input x gradient, integrated gradients, DeepLIFT, GradientSHAP, layer gradient x "
    "activation) explain p(y_t) and so see the reference token y_t; attention and value-zeroing rows are computed from "
    "the prefix y_<t only: at the output step the former are told the word they are scored on, the latter must "
    "predict it."
)


def reading_text(reading: dict) -> str:
    """An AER reading in words (the table's caption)."""
    step = f"at the step whose {SHIFT_NAMES[reading['shift']]} is the target word"
    if {k: reading[k] for k in LITERATURE_READING} == LITERATURE_READING:
        return ("per target piece its argmax source piece, two words linked when any of their pieces are (the "
                "literature's piece-argmax-union convention: Chen et al. 2020, Zenkel et al. 2020, SimAlign), " + step)
    how = {"sum": "summed", "max": "merged by max", "union": "linked piece by piece, then united,"}[reading["merge"]]
    unit = "piece" if reading["merge"] == "union" else "word"
    links = {"argmax": f"the argmax source {unit} per target {unit}",
             "threshold": f"every source {unit} above an equal share",
             "argmax_null": f"the argmax source {unit} per target {unit} unless `</s>` wins (no link)"}
    return f"pieces {how} to words, {links[reading['extraction']]}, {step}"


def load(results_dir: Path) -> dict[str, tuple[dict, dict[str, np.ndarray]]]:
    """Every `<teacher>.<pair>` measured in `results_dir`: its summary and per-sentence arrays."""
    out = {}
    for path in sorted((Path(results_dir) / TRIANGULATION_DIR).glob("*.json")):
        with np.load(path.with_suffix(".npz")) as data:
            out[path.stem] = (json.loads(path.read_text()), {k: data[k] for k in data.files})
    return out


def criteria(
    summary: dict, arrays: dict[str, np.ndarray], methods: list[str], utility: Criterion | None
) -> list[Criterion]:
    """The criteria measured for all of `methods` (a criterion missing for any method is left out)."""
    out = [utility] if utility is not None else []

    def stack(prefix: str) -> np.ndarray | None:
        keys = [f"{prefix}.{m}" for m in methods]
        return np.stack([arrays[k] for k in keys]) if all(k in arrays for k in keys) else None

    for part in ("silver", "gold"):
        counts = stack(part)  # [M, N, 4]: |A∩S|, |A∩P|, |A|, |S|; silver over the evaluation sentences, in order
        if counts is not None:
            group = "test" if part == "silver" else part
            out.append(Criterion(part, counts[..., 0] + counts[..., 1], counts[..., 2] + counts[..., 3], group=group))
    for curve in ("aopc_deletion", "aopc_insertion"):
        values = stack(curve)
        if values is not None:
            out.append(Criterion.mean(curve, values, group="test"))
    return out


# The AOPC readings beside the primary one (reference targets, `PRIMARY_REMOVAL`), as the table names them: the
# teacher's own greedy output as targets (review M3), the mask removal (review M4).
TARGET_LABELS = {"reference": "reference", "teacher": "teacher's output"}
REMOVAL_LABELS = {"unk": "`<unk>`", "mask": "masked"}
OTHER_AOPC_READINGS = [(kind, removal) for kind in TARGET_LABELS for removal in REMOVALS
                       if (kind, removal) != ("reference", PRIMARY_REMOVAL)]


def _cell(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _pair_cell(row: dict, kind: str, removal: str) -> str:
    """`deletion / insertion` of one AOPC reading."""
    values = [row.get(aopc_key(curve, kind, removal)) for curve in ("deletion", "insertion")]
    return "-" if all(v is None for v in values) else " / ".join(_cell(v) for v in values)


def figures_table(summary: dict, utility_cells: dict[str, str]) -> list[str]:
    table = summary["table"]
    gold = "gold" in summary
    sanity = summary.get("sanity", {})
    faithfulness = summary.get("faithfulness", {})
    others = [(kind, removal) for kind, removal in OTHER_AOPC_READINGS
              if any(aopc_key("deletion", kind, removal) in row for row in table.values())]
    decision = sanity.get("decision_stage", "-")
    head = ["method", "utility (gain over no map, nats/token)", "silver AER"]
    head += [f"gold AER ({summary['gold']['name']})"] if gold else []
    head += ["AOPC deletion", "AOPC insertion"]
    head += [f"AOPC deletion / insertion ({TARGET_LABELS[k]}, {REMOVAL_LABELS[r]})" for k, r in others]
    head += [f"randomisation Spearman ({decision})", "randomisation Spearman (full)",
             f"constant rows ({decision})", "sanity"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in table.items():
        cells = [f"`{name}`", utility_cells.get(name, "-"), _cell(row.get("silver_aer"))]
        cells += [_cell(row.get("gold_aer"))] if gold else []
        cells += [_cell(row.get("aopc_deletion")), _cell(row.get("aopc_insertion"))]
        cells += [_pair_cell(row, kind, removal) for kind, removal in others]
        cells += [_cell(row.get("sanity_spearman_decision")), _cell(row.get("sanity_spearman_full"))]
        share = row.get("sanity_degenerate_share")
        cells.append("-" if share is None else f"{share:.0%}")
        verdict = row.get("sanity_verdict")
        cells.append("-" if verdict is None else ("**fails**" if verdict == "fails" else verdict))
        lines.append("| " + " | ".join(cells) + " |")
    if faithfulness and "readings" not in faithfulness:  # a results file written before 2026-12-05
        lines += ["", f"AOPC: the first {faithfulness['pairs']} evaluation pairs, measured under the earlier rules "
                  "(reference targets and `<unk>` only, ties by source position); re-run `agkd triangulate`."]
    elif faithfulness:
        teacher_pairs = faithfulness.get("teacher_pairs")
        lines += ["", f"AOPC: {faithfulness['pairs']} evaluation pairs (a seeded random sample, the same for every "
                  "config); the first two columns force the reference translation and replace removed source tokens "
                  "by `<unk>` (the baseline of integrated gradients, DeepLIFT and GradientSHAP); `masked` removes them "
                  "from attention instead (ids and positions kept), which is no method's baseline; `teacher's output` "
                  "forces the teacher's own greedy translation, so y_t is its prediction"
                  + (f" ({teacher_pairs} of the same pairs)" if teacher_pairs else "")
                  + ". Special tokens (`</s>`, language codes) are never removed, their label rows are not scored, "
                  "and ties in a map are broken by the row's random order (a constant map scores 0)."]
    if sanity and "verdicts" not in sanity:  # a results file written before the three-way verdict (2026-12-05)
        lines += ["", "Sanity: these results were measured under the earlier rule (decided at `full`, constant rows "
                  "scored 0); re-run `agkd triangulate` for the verdict at `decoder+encoder`."]
    elif sanity:
        lines += ["", f"Sanity: maps of {sanity['pairs']} evaluation pairs (a seeded random sample) from the teacher "
                  f"with its weights randomised (stages {', '.join(f'`{s}`' for s in sanity['stages'])}). The "
                  f"verdict is taken at `{decision}`, where every layer is random and the input embeddings are the "
                  f"trained ones: a method fails when its maps keep a mean row Spearman of at least "
                  f"{sanity['threshold']} with the trained teacher's (they do not depend on what the teacher's layers "
                  f"learnt), and is undetermined when that stage was not run, its Spearman is undefined, or more than "
                  f"{sanity['max_degenerate_share']:.0%} of its rows are constant in either map (no ranking to "
                  "compare; those rows are left out of the mean and counted). `full` also randomises the input "
                  "embeddings, which changes even a map of the embeddings alone: reported, not decided on. A "
                  "pass/fail rule, not a ranking: it stays out of the rank agreement below."]
    return lines


def agreement_table(results: list[Agreement]) -> list[str]:
    lines = [
        f"| criteria | Kendall tau | simultaneous {AGREEMENT_LEVEL:.0%} interval | methods | reading |",
        "|---|---|---|---|---|",
    ]
    for a in results:
        lines.append(f"| {CRITERIA_LABELS[a.first]} vs {CRITERIA_LABELS[a.second]} | {_cell(a.tau, 2)} | "
                     f"[{_cell(a.low, 2)}, {_cell(a.high, 2)}] | {a.methods} | {a.reading} |")
    return lines


def plot_ranks(found: list[Criterion], methods: list[str], title: str, path: Path) -> Path:
    """Each method's rank under each criterion (1 = best), as a heatmap with the ranks written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import rankdata

    ranks = np.stack([rankdata(-np.nan_to_num(c.value(), nan=-np.inf)) for c in found], axis=1)
    fig, ax = plt.subplots(figsize=(1.4 + 1.3 * len(found), 0.9 + 0.4 * len(methods)))
    ax.imshow(ranks, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(found)), [CRITERIA_LABELS[c.name] for c in found], rotation=30, ha="right")
    ax.set_yticks(range(len(methods)), methods)
    for i in range(len(methods)):
        for j in range(len(found)):
            bright = ranks[i, j] <= (len(methods) + 1) / 2  # the light half of the colour map
            color = "black" if bright else "white"
            ax.text(j, i, f"{ranks[i, j]:.0f}", ha="center", va="center", color=color, fontsize=9)
    ax.set_title(f"{title} (1 = best)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def triangulation_section(summary: dict, arrays: dict[str, np.ndarray], methods: list[str], utility: Criterion | None,
                          utility_cells: dict[str, str], plot: Path, out: Path) -> list[str]:
    """The report's section for one teacher and pair."""
    reading = PRIMARY_READING
    title = f"{summary['teacher_name']} {summary['pair']}"
    lines = [
        f"## {TRIANGULATION_HEADING}: plausibility, faithfulness, sanity ({title})",
        "",
        f"On the `{summary['split']}` pairs the verdict is measured on (`agkd triangulate`). AER (lower is better) of "
        f"links read from each map: {reading_text(reading)} (every other reading is in "
        f"`results/{TRIANGULATION_DIR}/`); silver links from eflomal trained on "
        f"{summary.get('silver', {}).get('train_pairs', '-')} train pairs, on words with punctuation split off. AOPC "
        "(higher is more faithful): the "
        "teacher's mean drop in log p(y_t) when the top-attributed source tokens are removed (deletion), or how "
        "close it stays with only them kept (insertion), minus the same for a random order of the row. Utility is "
        "the verdict's own estimate (primary design, with its interval and Holm mark): where the verdict above says "
        "the finding cannot be checked, the utility ranks below carry that caveat too.",
        "",
        *figures_table(summary, utility_cells),
        "",
        STEP_ACCESS_NOTE,
        "",
    ]
    in_table = [m for m in methods if m in summary["table"]]
    found = criteria(summary, arrays, in_table, utility)
    if len(found) >= 2:
        lines += [
            f"How far the criteria rank the {len(in_table)} methods alike (Kendall tau; intervals that hold "
            f"together at {AGREEMENT_LEVEL:.0%} over the table's pairs (Bonferroni), from resampling the test "
            "sentences and the utility's training seeds; two criteria of the same sentences are cross-fitted: each "
            "ranks the methods on its own random half of the sentences, so that noise they share is not read as "
            "agreement; `agree` or `disagree` only when the interval excludes 0; the silver aligner's own draws are "
            "not resampled):",
            "",
            *agreement_table(agreements(found)),
            "",
            "![ranks by "
            f"criterion]({plot_ranks(found, in_table, f'method ranks by criterion, {title}', plot).relative_to(out)})",
            "",
        ]
    return lines


__all__ = ["CRITERIA_LABELS", "UTILITY", "criteria", "load", "triangulation_section"]
