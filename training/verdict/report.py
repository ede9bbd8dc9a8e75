"""Write `report.md` and its PNG plots from `results/results.jsonl`: which attribution methods teach a student.

The first screen is the verdict: per teacher, pair, target kind, init (`scratch`/`warm`) and split, the sentence on
the paper's finding (holds, does not hold, inconclusive or cannot be checked, with the reason in numbers) under the
leak-free primary design (`PRIMARY_DESIGN`, fixed in code before any result is read, and why), the positive
control's smallest detectable effect, and per method its gain on the primary metric over no map, over its own
shuffled twin and over the diagonal control, its gain in the paper's `gold` setting and the leak between the two,
with intervals over seeds and sentences and Holm-corrected marks (`training/verdict/statistics.py`), and one chart. Then
the positive control (`agkd instrument`), the controls and every other leak-free design, every protocol's methods x
operators tables (primary metric, BLEU / chrF), example map heatmaps (`--attributions`), Attributor fidelity
against gain and the students' learning curves (`--models_dir`).

This stage only composes the report: the verdict's rules are in `design.py`, its numbers in `statistics.py`, its
tables in `tables.py`, its plots in `plots.py` and its positive control in `control.py`.

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

import numpy as np

from agkd.datasets_scripts.attribution.configs import BASELINE
from agkd.datasets_scripts.attribution.methods import CONTROLS, shuffled_control
from agkd.datasets_scripts.release_layout import (
    BASELINE_PROTOCOL,
    INSTRUMENT_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    VERDICT_FILE,
    protocol_order,
    read_results,
    split_curve_rows,
)
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.training.evaluation.scoring import METRICS, PRIMARY_METRIC
from agkd.training.presets import ALL_METHODS, PRESETS, SCALE_FAIR_NORMALIZATION
from agkd.training.triangulation.agreement import Criterion
from agkd.training.triangulation.table import UTILITY, triangulation_section
from agkd.training.triangulation.table import load as load_triangulations
from agkd.training.verdict import statistics as verdict
from agkd.training.verdict.control import instrument_section
from agkd.training.verdict.curve import curve_section
from agkd.training.verdict.design import (
    ANSWER_WORDS,
    CONTRASTS,
    GOLD_PROTOCOL,
    LEAK_FREE_PROTOCOLS,
    PRIMARY_DESIGN,
    Design,
    DesignVerdict,
    Preconditions,
    Scores,
    control_regime_differences,
    format_estimate,
    judge_design,
    primary_scores,
    reference_system,
    system,
    verdict_sentence,
)
from agkd.training.verdict.plan import AnalysisPlan, plan_for, plan_line
from agkd.training.verdict.plots import plot_design, plot_example_maps, plot_fidelity, plot_learning_curves
from agkd.training.verdict.tables import (
    claim_table,
    control_lines,
    group_rows,
    method_gains,
    method_order,
    method_table,
    results_table,
)

logger = logging.getLogger(__name__)


@dataclass
class ReportArguments:
    results_dir: str = field(metadata={"help": "folder with results.jsonl (written by agkd evaluate)"})
    attributions: str | None = field(default=None, metadata={"help": "agkd-attributions folder: example heatmaps"})
    models_dir: str | None = field(
        default=None, metadata={"help": "folder with attributor-* models: fidelity vs gain (table and scatter plot)"}
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "where report.md and plots go (default: results_dir)"}
    )


# ================================================================================================ the verdict
def power_lines(result: DesignVerdict) -> list[str]:
    """The seeds and warm starts used, the variance split of the typical contrast and each decision's MDE."""
    units = sorted(set(result.units.values()))
    lines = [
        f"Scored on {result.sentence_count} test sentences ({result.tokens} reference tokens; "
        f"{'the whole test split' if result.sentences == 'all' else 'the map-annotated test pairs'}); seeds "
        f"{', '.join(map(str, result.seeds)) or 'none'} on {len(units)} independent warm start(s) "
        f"({', '.join(f'seed {s}: {result.units[s]}' for s in result.seeds)}); the seeds of one warm start are "
        "averaged into one replicate.",
    ]
    split = result.split
    if split is not None:
        shares = split.shares()
        lines += [
            "",
            f"Variance of the typical contrast's mean (median over the 15; crossed random effects, each term once): "
            f"sentences {shares['sentence']:.0%}, replicates (training) {shares['replicate']:.0%}, their interaction "
            f"{shares['interaction']:.0%}; se {math.sqrt(split.variance):.4f} nats/token with "
            f"{split.replicates - 1} df.",
        ]
    if result.claim.mdes:
        mdes = result.claim.mdes
        lines += [
            "",
            f"Smallest effects each decision detects with {verdict.POWER:.0%} power here (simulated through the "
            f"decision rule with this variance split): \"holds\" {mdes[verdict.HOLDS]:.4f} (every one of the three "
            f"better than every one of the five by that much), \"does not hold\" {mdes[verdict.DOES_NOT_HOLD]:.4f} "
            f"(one pair reversed by that much), equivalence within {mdes[verdict.NOT_RELEVANT]:.4f} "
            f"(reachable when below the bound {verdict.EQUIVALENCE_BOUND}).",
        ]
        if mdes[verdict.HOLDS] > verdict.EQUIVALENCE_BOUND:
            lines += [
                "",
                f"At this size even \"holds\" cannot detect an effect of the bound ({mdes[verdict.HOLDS]:.4f}, "
                f"{mdes[verdict.HOLDS] / verdict.EQUIVALENCE_BOUND:.1f} times {verdict.EQUIVALENCE_BOUND}): more "
                "independent replicates (seeds, each its own warm start) shrink the training term and the t "
                "quantile; `benchmarks/bench_verdict_power.py --results_dir` on this folder prints each decision's "
                "smallest detectable effect for other numbers of replicates and sentences (docs/verdict.md, "
                "\"Power\").",
            ]
    return lines


def design_section(result: DesignVerdict, problems: list[str], primary: bool, plot: Path, out: Path,
                   plan_line: str | None = None) -> list[str]:
    """One design's verdict: the sentence, the content check, the power, the claim's contrasts, the method table,
    the controls and the chart. Below a "cannot be checked" sentence the claim's numbers are printed for the record."""
    role = "carries the verdict" if primary else "reported beside the verdict, carries nothing"
    content = (f"Content check (the same 15 pairs on each method's gain over its own shuffled twin: same values, "
               f"no alignment): {verdict_words(result.content)}: {result.content.reason}.")
    if problems:
        content = "For the record (the verdict cannot be checked): " + content
    elif (disagreement := result.disagreement()) is not None:
        content = f"**The two disagree**: {disagreement}{content}"
    lines = [
        f"### Design {result.design} ({role})",
        "",
        verdict_sentence(result, problems),
        "",
        *([plan_line, ""] if plan_line else []),
        content,
        "",
        *power_lines(result),
        "",
        *claim_table(result),
        "",
        f"Gains on `{PRIMARY_METRIC}` in nats/token (positive = the student is better), mean over replicates [95% "
        "interval over trainings and test sentences, `training/verdict/statistics.py`]; `*`: significant after Holm "
        "over the family of every method-vs-control comparison of this design. The leak is how much more the method "
        "gains when its test-time map is the teacher's map of the reference (on the map-annotated pairs).",
        "",
        *method_table(result),
        "",
        *control_lines(result),
        "",
    ]
    plot_design(result, plot)
    return [*lines, f"![gains by method]({plot.relative_to(out)})", ""]


def verdict_words(claim: verdict.ClaimVerdict) -> str:
    return ANSWER_WORDS[claim.answer].removesuffix(" here")


@dataclass
class GroupVerdict:
    """What `verdict_lines` found for one group: the body's sections, the first screen's, the primary design's verdict,
    and the group's scores on the map-annotated pairs (the yardsticks' sentences: the triangulation reads the utility
    from them)."""

    body: list[str]
    first_screen: list[str]
    primary: DesignVerdict | None = None
    scores: Scores | None = None
    record: dict | None = None  # the primary design's `verdict_record`


def verdict_lines(rows: list[dict], baseline: list[dict], preconditions: Preconditions, results_dir: Path,
                  title: str, plots: Path, out: Path, plan_line: str | None = None) -> GroupVerdict:
    """The verdict of one group: the primary design's section (for the report's first screen) and the sections of
    every other leak-free design (for the body); gold rows enter as each method's leak."""
    annotated = Scores.load(rows, baseline, results_dir)
    designs = sorted({Design.of(r) for r in rows}, key=lambda d: (d.operator, d.normalization, d.protocol))
    leak_free = [d for d in designs if d.leak_free]
    if not leak_free:
        return GroupVerdict([f"No leak-free rows (protocols {', '.join(LEAK_FREE_PROTOCOLS)}): no verdict.", ""], [])
    primary = next((d for d in leak_free if (d.operator, d.protocol) == PRIMARY_DESIGN
                    and d.normalization == SCALE_FAIR_NORMALIZATION), None)
    primary = primary or next((d for d in leak_free if (d.operator, d.protocol) == PRIMARY_DESIGN), None)
    methods = [m for m in ALL_METHODS if any(r["method"] == m for r in rows)]
    lines, first_screen, primary_result, record = [], [], None, None
    for design in sorted(leak_free, key=lambda d: d != primary):
        gold = next((d for d in designs if d.protocol == GOLD_PROTOCOL and d.normalization == design.normalization),
                    None)
        present = {r["method"] for r in rows if Design.of(r) == design}
        controls = [c for c in (*CONTROLS, *map(shuffled_control, methods)) if c in present]
        scores = primary_scores(rows, baseline, results_dir, design)
        result = judge_design(scores, design, methods, controls, gold, gold_scores=annotated)
        problems = preconditions.failures(design, [m for m in methods if m in present], len(set(result.units.values())))
        slug = f"{design.operator}-{design.normalization}-{design.protocol}"
        section = design_section(result, problems, design == primary, plots / f"gains-{title}-{slug}.png", out,
                                 plan_line if design == primary else None)
        if design == primary:
            first_screen, primary_result = section, result
            record = verdict_record(result, problems, verdict_sentence(result, problems))
        else:
            lines += section
    # The triangulation pairs the utility with the yardsticks sentence by sentence: the map-annotated pairs they share.
    return GroupVerdict(lines, first_screen, primary_result, annotated, record)


# Each method's utility beside the yardsticks: its gain over no map in the primary design, the per-method quantity
# whose pairwise differences are the claim's direct contrasts.
UTILITY_CONTRAST = "baseline"


def utility_of(group: GroupVerdict, methods: list[str]) -> tuple[Criterion | None, dict[str, str]]:
    """Each method's utility for the triangulation: its primary-design gain on `UTILITY_CONTRAST`, per seed and
    map-annotated sentence (the yardsticks' sentences; the agreement resamples both), and the verdict's own estimate
    (on its whole test split) as table cells."""
    result, scores = group.primary, group.scores
    if result is None or scores is None or scores.tokens is None:
        return None, {}
    cells = {m: format_estimate(result.contrasts[m][UTILITY_CONTRAST], result.adjusted[m, UTILITY_CONTRAST])
             for m in methods if m in result.contrasts}
    systems = [(system(m, result.design), reference_system(m, UTILITY_CONTRAST, result.design)) for m in methods]
    seeds = sorted(set.intersection(*(set(scores.by_system.get(k, {})) for pair in systems for k in pair)))
    if not seeds:
        return None, cells
    numerator = np.stack([[scores.by_system[reference][s] - scores.by_system[method][s] for s in seeds]
                          for method, reference in systems])
    tokens = np.broadcast_to(scores.tokens.astype(np.float64), (len(methods), len(scores.tokens)))
    return Criterion(UTILITY, numerator, tokens.copy(), group="test"), cells


# ================================================================================================ fidelity vs gain


def fidelity_section(models_dir: Path, groups: dict, plots: Path, out: Path) -> list[str]:
    """Per teacher, pair and init: each method's Attributor fidelity (held-out Spearman with the teacher's rows)
    against its students' mean gain on the primary metric in the primary design (scale-fair where both exist), the
    Spearman rho across methods with a bootstrap interval, and a scatter plot."""
    operator, main_protocol = PRIMARY_DESIGN
    lines = []
    attributors = [
        json.loads((d / "agkd_run.json").read_text())
        for d in sorted(models_dir.glob("attributor-*"))
        if (d / "agkd_run.json").exists()
    ]
    for teacher, pair, design in sorted({(k[0], k[1], k[3]) for k in groups}):
        rows = [r for r in groups.get((teacher, pair, "reference", design, "test", main_protocol), [])
                if r["operator"] == operator]
        fair = [r for r in rows if r["map_normalization"] == SCALE_FAIR_NORMALIZATION] or rows
        gains = method_gains(fair, PRIMARY_METRIC)
        points = [
            (a["method"], a["fidelity"]["spearman"], statistics.mean(gains[a["method"]]))
            for a in attributors
            if (a["teacher_name"], a["pair"]) == (teacher, pair)
            and a["method"] in gains
            and "spearman" in a["fidelity"]
        ]
        if not points:
            continue
        lines += [
            f"## Attributor fidelity vs gain: {teacher} {pair}, `{design}`, design `{operator}` (protocol "
            f"`{main_protocol}`)",
            "",
            f"| method | Attributor Spearman with the teacher's rows (held out) | mean gain on `{PRIMARY_METRIC}` |",
            "|---|---|---|",
            *(f"| {m} | {f:.3f} | {g:+.4f} |" for m, f, g in points),
            "",
        ]
        if len(points) >= 3:
            rho, interval = verdict.spearman_with_interval([p[1] for p in points], [p[2] for p in points])
            plot = plot_fidelity(
                points,
                f"{teacher} {pair} ({design}): rho = {rho:.2f}",
                plots / f"fidelity-{teacher}-{pair}-{design}.png",
            )
            lines += [
                f"Spearman rho between fidelity and gain across {len(points)} methods: {rho:.2f} "
                f"(95% bootstrap interval {interval[0]:.2f} to {interval[1]:.2f}).",
                "",
                f"![fidelity vs gain]({plot.relative_to(out)})",
                "",
            ]
        else:
            lines += [
                f"Only {len(points)} method(s) with both an Attributor and students: no correlation computed.",
                "",
            ]
    return lines


def learning_curves_section(models_dir: Path, plots: Path, out: Path) -> list[str]:
    """Validation loss over training steps, per teacher and pair: the no-map baseline and each method's students in
    the primary design (its operator; the scale-fair normalisation where it exists), mean over seeds at each
    evaluation step (over the seeds that reached it: early stopping ends some sooner), controls thin and grey. Whether
    a map speeds learning up or only shifts where it ends shows here, not in the final scores.

    Read from the run records (`validation_history` in each student's `agkd_run.json`), not from the trackers' event
    files: a record ships in every model folder whatever `--report_to` was (none, wandb, a machine without
    TensorBoard), while event files are optional and stay where the job ran; the numbers are the same evaluations."""
    operator = PRIMARY_DESIGN[0]
    records = [json.loads((d / "agkd_run.json").read_text()) for d in sorted(models_dir.glob("student-*"))
               if (d / "agkd_run.json").exists()]
    records = [r for r in records if r.get("validation_history") and r.get("target_kind", "reference") == "reference"]
    figures = []
    for teacher, pair in sorted({(r["teacher_name"], r["pair"]) for r in records}):
        cell = [r for r in records if (r["teacher_name"], r["pair"]) == (teacher, pair)]
        designed = [r for r in cell if r["method"] != BASELINE and r["operator"] == operator]
        chosen = [r for r in designed if r["map_normalization"] == SCALE_FAIR_NORMALIZATION] or designed
        if not chosen:
            continue
        chosen += [r for r in cell if r["method"] == BASELINE]
        inits = {r.get("student_init", "scratch") for r in chosen}
        curves = defaultdict(lambda: defaultdict(list))  # method (init) -> step -> validation losses over seeds
        for r in chosen:
            label = r["method"] + (f" ({r.get('student_init', 'scratch')})" if len(inits) > 1 else "")
            for point in r["validation_history"]:
                curves[label][point["step"]].append(point["validation_loss"])
        figures.append(plot_learning_curves(curves, f"{teacher} {pair}: validation loss, operator {operator}",
                                            plots / f"learning-curves-{teacher}-{pair}.png"))
    if not figures:
        return []
    return [
        "## Learning curves",
        "",
        f"Validation loss (nats per target token) over training steps of the no-map baseline and of each method's "
        f"students under operator `{operator}`, mean over seeds, from the run records (`agkd_run.json`); every curve "
        "of every model: `tensorboard --logdir` on the run's `logs/` folder.",
        "",
        *(f"![learning curves]({plot.relative_to(out)})" for plot in figures),
        "",
    ]


# ================================================================================================ map scale
def map_scale_lines(attributions: str, teacher: str, pair: str, split: str = "train") -> list[str]:
    """Per method and control (shuffled twins included) the medians of its raw rows on `split` from the dataset's
    `meta/` (written at extraction): row L1 sum, row max |A| and normalised entropy, so the sharpness and scale each
    method brings sit beside its gains. Empty for a Hub id (only a local folder has `meta/` at hand)."""
    meta_dir = Path(attributions) / "meta"
    rows = []
    for path in sorted(meta_dir.glob(f"{teacher}.{pair}.*.json")) if meta_dir.is_dir() else []:
        meta = json.loads(path.read_text())
        scale = meta.get("splits", {}).get(split, {}).get("scale")
        if meta.get("target_kind", "reference") != "reference" or not scale:
            continue
        medians = [scale.get(stat, {}).get("q50") for stat in ("row_l1", "row_max_abs", "row_entropy")]
        rows.append((meta.get("method", path.stem.split(".", 2)[2]), medians))
    if not rows:
        return []
    order = method_order({method for method, _ in rows})
    lines = [
        f"## Map scale: {teacher} {pair} (`{split}` rows, medians)",
        "",
        "Normalised entropy of |A| / sum |A| over log S: 1 = flat, 0 = one-hot. A shuffled twin has its method's "
        "values.",
        "",
        "| map | row L1 sum | row max abs | normalised entropy |",
        "|---|---|---|---|",
    ]
    for method, medians in sorted(rows, key=lambda r: order.index(r[0])):
        lines.append(f"| {method} | " + " | ".join("-" if m is None else f"{m:.3g}" for m in medians) + " |")
    return [*lines, ""]


# ================================================================================================ report
def instrument_lines(results_dir: Path) -> tuple[list[str], dict | None]:
    """The positive control's section from `instrument_check.json` (written by `agkd instrument`), and its result."""
    path = results_dir / INSTRUMENT_FILE
    if not path.exists():
        return [
            "## Positive control",
            "",
            f"Not run: no `{path}` (run `agkd instrument --results_dir {results_dir}`).",
            "",
        ], None
    result = json.loads(path.read_text())
    if "checks" not in result:  # written by an older `agkd instrument`: no content checks to read
        return [
            "## Positive control",
            "",
            f"`{path}` predates the content checks in the students' regime: run `agkd instrument` again.",
            "",
        ], None
    return [*instrument_section(result), ""], result


def baseline_line(baseline: list[dict]) -> str:
    seeds = sorted(baseline, key=lambda b: b["seed"])
    primary = [b.get(PRIMARY_METRIC) for b in seeds]
    return (
        "Baseline (no map): BLEU "
        + ", ".join(f"{b['bleu']:.2f}" for b in seeds)
        + " / chrF " + ", ".join(f"{b['chrf']:.2f}" for b in seeds)
        + (f" / `{PRIMARY_METRIC}` " + ", ".join(f"{v:.4f}" for v in primary) if None not in primary else "")
        + f" (seeds {', '.join(str(b['seed']) for b in seeds)}, {seeds[0]['examples']} map-annotated sentences, "
        f"`{seeds[0]['bleu_signature']}`)."
    )


def current_plan(rows: list[dict]) -> AnalysisPlan | None:
    """The plan the rows were made under, as far as they tell: their preset, seeds and init."""
    presets = {r.get("preset") for r in rows}
    if len(presets) != 1 or next(iter(presets)) not in PRESETS:
        return None
    inits = {r.get("student_init", "scratch") for r in rows}
    return plan_for(next(iter(presets)), sorted({r["seed"] for r in rows}), next(iter(inits)) if len(inits) == 1
                    else None)


def student_records(models_dir: str, rows: list[dict], design: tuple[str, str]) -> list[dict]:
    """The run records (`agkd_run.json` in `models_dir`) of the students of `design`."""
    records = []
    for row in rows:
        record = Path(models_dir) / row["student"] / "agkd_run.json"
        if (row["operator"], row["protocol"]) == design and record.exists():
            records.append(json.loads(record.read_text()))
    return records


def student_regime(records: list[dict], test_sentences: int | None) -> dict:
    """The students' regime in the positive control's terms (`InstrumentConfig.regime`), where every record agrees."""
    if not records:
        return {}
    values: dict[str, set] = defaultdict(set)
    for record in records:
        hyper = record.get("hyperparameters", {})
        values["operator"].add(record["operator"])
        values["student_init"].add(record.get("student_init", "scratch"))
        values["supervision_weight"].add(record.get("supervision_weight"))
        values["finetune_steps"].add(hyper.get("max_steps"))
        values["finetune_pairs"].add(record.get("train_examples"))
        for key in ("d_model", "layers", "heads", "ffn_dim", "dropout", "learning_rate", "warmup_steps",
                    "eval_steps", "patience", "batch_size"):
            values[key].add(hyper.get(key))
    regime = {key: next(iter(found)) for key, found in values.items() if len(found) == 1}
    units = {record.get("init_from") or f"seed {record['seed']}" for record in records}
    regime["replicates"] = len(units)
    if test_sentences:
        regime["test_sentences"] = test_sentences
    return regime


def design_reason(instrument: dict | None) -> str:
    """Why the primary design carries the verdict, and what its positive control measured."""
    operator, protocol = PRIMARY_DESIGN
    control = (
        "the positive control was not run"
        if instrument is None
        else "its positive control in the students' regime "
        f"{'passed' if instrument['passed'] else 'failed'}; smallest gain of planted content it detects there (MDE): "
        f"{instrument['mde']:.4f} nats/token"
    )
    return (
        f"Primary design: operator `{operator}`, protocol `{protocol}`: the student's cross-attention is trained "
        "toward the map's rows and no map is used at test time, so nothing the student sees at test time was computed "
        "from the reference, and every method and control can be judged alike (`training/verdict/design.py`; the "
        "paper's own `gold` setting leaks the reference and is shown beside it as each method's leak). The claim is "
        "tested on direct contrasts between students trained identically but for the map, with each method's gain "
        f"over its own shuffled twin as the content check ({control})."
    )


def regime_lines(instrument: dict | None, regime: dict) -> list[str]:
    """The control's whole configuration against the students' run records: what differs."""
    if instrument is None or not regime or "regime" not in instrument:
        return []
    voiding, listed = control_regime_differences(instrument["regime"], regime)
    same = sorted(key for key in set(instrument["regime"]) & set(regime) if instrument["regime"][key] == regime[key])
    lines = [f"The positive control against the students' run records: the same {', '.join(same) or 'nothing'}."]
    if voiding or listed:
        lines.append("Differences: " + "; ".join(voiding + listed) + ".")
    return [*lines, ""]


def verdict_record(result: DesignVerdict, problems: list[str], sentence: str) -> dict:
    """The primary design's verdict as data (`results/verdict.json`): what the Space, the cards and the README quote,
    so that every place says what the report says, with its marks."""

    def entry(estimate: verdict.Estimate | None, adjusted: float | None = None) -> dict | None:
        if estimate is None:
            return None
        return {"mean": estimate.mean, "low": estimate.low, "high": estimate.high, "usable": estimate.usable,
                "mark": bool(adjusted is not None and verdict.significant(estimate, adjusted)),
                "text": format_estimate(estimate, adjusted)}

    return {
        "design": list(PRIMARY_DESIGN), "normalization": result.design.normalization, "sentence": sentence,
        "answer": "cannot be checked" if problems else result.claim.answer, "problems": problems,
        "content_check": result.content.answer, "mdes": result.claim.mdes, "seeds": result.seeds,
        "warm_starts": sorted(set(result.units.values())), "sentences": result.sentence_count,
        "methods": {m: {c: entry(result.contrasts[m][c], result.adjusted[(m, c)]) for c in CONTRASTS}
                    for m in result.contrasts},
    }


def write_report(args: ReportArguments) -> Path:
    results_dir = Path(args.results_dir)
    rows, curve_rows = split_curve_rows(read_results(results_dir / RESULTS_FILE))
    if not rows:
        raise FileNotFoundError(f"no results in {results_dir / RESULTS_FILE}: run `agkd evaluate` first")
    out = Path(args.output_dir or results_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    groups = group_rows(rows)
    instrument, instrument_result = instrument_lines(results_dir)
    triangulations, shown = load_triangulations(results_dir), set()
    first_screen, body, verdicts = [], [], {}
    for teacher, pair, kind, design, split in sorted({key[:5] for key in groups}):
        group = (teacher, pair, kind, design, split)
        baseline = groups.get((*group, BASELINE_PROTOCOL), [])
        title = f"{teacher} {pair}, targets `{kind}`, init `{design}`, split `{split}`"
        body += [f"## {title}", ""]
        baseline_lines = [baseline_line(baseline), ""] if baseline else []
        map_rows = [r for key, rs in groups.items() if key[:5] == group and key[5] != BASELINE_PROTOCOL for r in rs]
        records = student_records(args.models_dir, map_rows, PRIMARY_DESIGN) if args.models_dir else []
        whole = [r["whole_split"]["examples"] for r in baseline if "whole_split" in r]
        regime = student_regime(records, whole[0] if whole else None)
        preconditions = Preconditions(instrument_result, [b["bleu"] for b in baseline], student_regime=regime,
                                      student_best_steps=[r["best_step"] for r in records])
        current = current_plan(map_rows + baseline)
        found = verdict_lines(map_rows, baseline, preconditions, results_dir, "-".join(map(str, group)), plots, out,
                              plan_line(results_dir, current))
        body += found.body
        if found.first_screen:
            first_screen += [f"## Verdict: {title}", "", *baseline_lines, *regime_lines(instrument_result, regime),
                             *found.first_screen]
            verdicts[title] = found.record
            measured = triangulations.get(f"{teacher}.{pair}")
            if measured and kind == "reference" and split == measured[0]["split"]:
                utility, cells = utility_of(found, measured[0]["methods"])
                first_screen += triangulation_section(
                    *measured, measured[0]["methods"], utility, cells,
                    plots / f"triangulation-{teacher}-{pair}-{design}.png", out,
                )
                shown.add(f"{teacher}.{pair}")
        else:
            body += baseline_lines
        for protocol in sorted(
            {key[5] for key in groups if key[:5] == group} - {BASELINE_PROTOCOL}, key=protocol_order
        ):
            body += [
                f"### Protocol `{protocol}`: all cells",
                "",
                f"Gain on `{PRIMARY_METRIC}` / `agreement_reference` / `agreement_teacher` per student against its own "
                "baseline on the map-annotated pairs (mean over seeds ± their standard deviation; unmarked: only the "
                "verdict's rules above mark a difference):",
                "",
                results_table(groups[(*group, protocol)], (PRIMARY_METRIC, "agreement_reference", "agreement_teacher")),
                "",
                "ΔBLEU / ΔchrF:",
                "",
                results_table(groups[(*group, protocol)]),
                "",
            ]
    lines = [
        "# AGKD report: which attribution methods teach a student",
        "",
        f"{len(rows)} result rows from `{results_dir / RESULTS_FILE}`; primary metric `{PRIMARY_METRIC}` "
        f"({METRICS[PRIMARY_METRIC].description}), fixed in code before any result was read.",
        "",
        design_reason(instrument_result),
        "",
        *first_screen,
        *instrument,
        *body,
    ]
    lines += curve_section(curve_rows, groups, results_dir, plots, out)
    for key in sorted(set(triangulations) - shown):  # measured, but no verdict of that teacher and pair to set it by
        summary = triangulations[key][0]
        lines += triangulation_section(*triangulations[key], summary["methods"], None, {},
                                       plots / f"triangulation-{key}.png", out)
    if args.models_dir:
        lines += fidelity_section(Path(args.models_dir), groups, plots, out)
        lines += learning_curves_section(Path(args.models_dir), plots, out)
    if args.attributions:
        for teacher, pair in sorted({(k[0], k[1]) for k in groups}):
            lines += map_scale_lines(args.attributions, teacher, pair)
            plot = plot_example_maps(args.attributions, teacher, pair, "test", plots / f"maps-{teacher}-{pair}.png")
            if plot:
                lines += [f"## Example maps: {teacher} {pair}", "", f"![example maps]({plot.relative_to(out)})", ""]
    path = out / REPORT_FILE
    path.write_text("\n".join(lines) + "\n")
    (out / VERDICT_FILE).write_text(json.dumps(verdicts, indent=2) + "\n")
    logger.info("wrote %s and %d plots", path, len(list(plots.glob("*.png"))))
    return path


main = stage_main(ReportArguments, write_report, prog="agkd report", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
