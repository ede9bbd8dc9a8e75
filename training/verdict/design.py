"""The verdict's design and rules: which students carry it, which contrasts test the paper's claim, what must hold
before it may speak, and its sentence. The statistics are in `statistics.py`; the report only lays this out.

The paper's claim, as stated: attention, value zeroing and layer gradient x activation each yield larger gains than
each of the five other methods. Tested here on DIRECT contrasts between students trained identically but for the map
(same warm start, seed, batch order and budget), in the leak-free primary design (`supervise`: the map trains the
cross-attention, no map at test time), on the primary metric over the whole test split. Each method's gain over its
own shuffled twin (its row values permuted: same scale and sharpness, no alignment) is the content check, reported
beside the claim with its own answer; the report says when the two disagree.
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agkd.datasets_scripts.attribution.configs import BASELINE
from agkd.datasets_scripts.attribution.methods import CONTROLS, shuffled_control, shuffled_source
from agkd.datasets_scripts.release_layout import MAP_FREE_PROTOCOL, token_statistics_path
from agkd.training.evaluation.scoring import METRICS, PRIMARY_METRIC, TokenStatistics
from agkd.training.presets import ALL_METHODS
from agkd.training.verdict import statistics as verdict

logger = logging.getLogger(__name__)

# The leak-free design that carries the verdict. Every map that reaches a student at test time must be computable
# without the answer: `supervise` uses no map at test time (evaluated `train-only`), so every method AND every control
# can be judged in it, while the `attributor` protocol would need an Attributor per control. This replaces the paper's
# test-time injection, and the verdict's sentence says so.
PRIMARY_DESIGN = ("supervise", MAP_FREE_PROTOCOL)  # (operator, protocol)
# The claim is tested on direct contrasts (the paper's wording: larger gains relative to the same baseline, i.e.
# student against student); `CONTENT_CONTRAST` (each gain over the method's shuffled twin) is the content check.
CLAIM_CONTRAST = "direct"
CONTENT_CONTRAST = "shuffled"
LEAK_FREE_PROTOCOLS = (MAP_FREE_PROTOCOL, "attributor")  # no test-time map computed from the reference
GOLD_PROTOCOL = "gold"  # the paper's setting: the teacher's maps of the reference, which leak it
# Below this test BLEU the no-map baseline does not translate, and what a map teaches cannot show.
MIN_BASELINE_BLEU = 5.0
# The control's settings that must equal the students' for it to certify them; any other difference is listed.
CONTROL_MUST_MATCH = ("operator", "student_init", "finetune_steps", "supervision_weight")
CONTRASTS = ("baseline", "shuffled", "diagonal")  # what a method's gain is measured over, in the table's order


def is_control(method: str) -> bool:
    return method in CONTROLS or shuffled_source(method) is not None


@dataclass(frozen=True)
class Design:
    """How a map reaches the students of a result row: operator, map normalisation and test-time protocol."""

    operator: str
    normalization: str
    protocol: str

    @classmethod
    def of(cls, row: dict) -> Design:
        return cls(row["operator"], row["map_normalization"], row["protocol"])

    def __str__(self) -> str:
        return f"`{self.operator}` (`{self.normalization}`), protocol `{self.protocol}`"

    @property
    def leak_free(self) -> bool:
        return self.protocol in LEAK_FREE_PROTOCOLS

    @property
    def map_free(self) -> bool:
        """No map at test time: the students can be scored on every test sentence, not only the annotated ones."""
        return self.protocol == MAP_FREE_PROTOCOL


def system(method: str, design: Design) -> str:
    """The key of a method's (or control's) students under a design in `Scores`."""
    return f"{method} | {design.operator} | {design.normalization} | {design.protocol}"


@dataclass
class Scores:
    """Per-sentence reference NLL sums of every student of one teacher, pair, target kind, init and split, by system
    (`system(...)`, or BASELINE) and seed, on one sentence set, with each seed's replicate unit (its warm start)."""

    by_system: dict[str, dict[int, np.ndarray]]
    tokens: np.ndarray | None
    units: dict[int, str] = field(default_factory=dict)  # seed -> warm start (a seed of its own when absent)
    sentences: str = "annotated"

    @classmethod
    def load(cls, rows: list[dict], baseline: list[dict], results_dir: Path, sentences: str = "annotated") -> Scores:
        """The rows' sums on `sentences`; a row without them is left out (and logged)."""
        target = METRICS[PRIMARY_METRIC].target
        by_system: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
        tokens, units = None, {}
        for row in [*baseline, *rows]:
            path = token_statistics_path(results_dir, row["student"], row["split"], row["protocol"], target, sentences)
            if not path.exists():
                logger.info("no per-sentence sums %s: %s left out of the %s set", path, row["student"], sentences)
                continue
            sums = TokenStatistics.load(path)
            if tokens is not None and not np.array_equal(tokens, sums.tokens):
                raise ValueError(f"{path}: scored on other targets than the rest of its group")
            tokens = sums.tokens
            key = BASELINE if row["method"] == BASELINE else system(row["method"], Design.of(row))
            by_system[key][row["seed"]] = sums.nll
            if row.get("init_from"):
                units[row["seed"]] = row["init_from"]
        return cls(dict(by_system), tokens, units, sentences)

    def has(self, key: str) -> bool:
        return key in self.by_system

    def unit(self, seed: int) -> str:
        return self.units.get(seed, f"seed {seed}")

    def common_seeds(self, keys: list[str]) -> tuple[list[int], list[str]]:
        """The seeds every system of `keys` has, and what is missing (a system, or a system's seeds)."""
        missing = [f"{key} (no results)" for key in keys if key not in self.by_system]
        present = [key for key in keys if key in self.by_system]
        if not present:
            return [], missing
        every = set.union(*(set(self.by_system[key]) for key in present))
        common = set.intersection(*(set(self.by_system[key]) for key in present))
        missing += [f"{key} (seeds {', '.join(map(str, sorted(every - set(self.by_system[key]))))})"
                    for key in present if set(self.by_system[key]) != every]
        return sorted(common), missing

    def estimate(self, weights: dict[str, float], seeds: list[int] | None = None) -> verdict.Estimate:
        """`verdict.estimate` of a contrast on `seeds` (default: those every system of it has), seeds of one warm
        start averaged into one replicate."""
        missing = [key for key in weights if key not in self.by_system]
        if missing or self.tokens is None:
            return verdict.unusable(f"no results for {', '.join(missing) or 'any system'}")
        seeds = seeds if seeds is not None else self.common_seeds(list(weights))[0]
        lacking = [key for key in weights if not set(seeds) <= set(self.by_system[key])]
        if lacking:
            return verdict.unusable(f"seeds {seeds} missing for {', '.join(lacking)}")
        if not seeds:
            return verdict.unusable("no seed common to its systems")
        scores = {key: np.stack([self.by_system[key][s] for s in seeds]) for key in weights}
        return verdict.estimate(scores, self.tokens, weights, units=[self.unit(s) for s in seeds])


def primary_scores(rows: list[dict], baseline: list[dict], results_dir: Path, design: Design) -> Scores:
    """The primary design's scores on the whole test split when every one of its rows and baselines has them (a
    map-free design needs no map at test time), else on the map-annotated pairs."""
    if design.map_free:
        selected = [r for r in rows if Design.of(r) == design]
        everything = Scores.load(selected, baseline, results_dir, "all")
        if sum(len(seeds) for seeds in everything.by_system.values()) == len(selected) + len(baseline):
            return everything
        logger.warning("not every row of %s has per-sentence sums on the whole test split: the verdict is scored on "
                       "the map-annotated pairs", design)
    return Scores.load([r for r in rows if Design.of(r) == design], baseline, results_dir)


def reference_system(method: str, over: str, design: Design) -> str:
    """What a method's gain is measured over (`CONTRASTS`): the no-map baseline, its own shuffled twin or a control."""
    if over == "baseline":
        return BASELINE
    return system(shuffled_control(method) if over == "shuffled" else over, design)


def contrast_weights(method: str, over: str, design: Design) -> dict[str, float]:
    """A method's gain under `design` over the no-map baseline, its own shuffled twin or the diagonal control."""
    return verdict.gain(system(method, design), over=reference_system(method, over, design))


def claim_weights(top: str, rest: str, design: Design, contrast: str) -> dict[str, float]:
    """'top gains more than rest': directly (`CLAIM_CONTRAST`, rest's NLL minus top's), or by their gains over
    their shuffled twins (`CONTENT_CONTRAST`)."""
    if contrast == "direct":
        return verdict.gain(system(top, design), over=system(rest, design))
    return verdict.gain_difference(system(top, design), system(rest, design),
                                   over_a=reference_system(top, contrast, design),
                                   over_b=reference_system(rest, contrast, design))


@dataclass
class DesignVerdict:
    """What one design's rows say: per method its contrasts (Holm over the whole method-vs-control family), the
    controls' gains over the baseline, the paper's claim on direct contrasts and the content check on the twins, the
    gold leak per method, and the seeds and warm starts the claim used."""

    design: Design
    contrasts: dict[str, dict[str, verdict.Estimate]]  # method -> contrast name -> estimate
    adjusted: dict[tuple[str, str], float]  # Holm over every (method, contrast)
    controls: dict[str, verdict.Estimate]  # control -> gain over the baseline
    controls_adjusted: dict[str, float]
    claim: verdict.ClaimVerdict
    content: verdict.ClaimVerdict  # the same claim on gains over the shuffled twins
    claim_contrasts: dict[tuple[str, str], verdict.Estimate]
    content_contrasts: dict[tuple[str, str], verdict.Estimate]
    gold: dict[str, verdict.Estimate]  # method -> gold gain over the baseline (the paper's setting)
    leak: dict[str, verdict.Estimate]  # method -> gold gain minus this design's gain over the baseline
    gold_design: Design | None
    seeds: list[int] = field(default_factory=list)
    units: dict[int, str] = field(default_factory=dict)
    sentences: str = "annotated"
    tokens: int = 0
    sentence_count: int = 0
    untrained: list[str] = field(default_factory=list)  # contrasts (`CONTRASTS`) whose reference no method has

    @property
    def split(self) -> verdict.VarianceSplit | None:
        return verdict.median_split(list(self.claim_contrasts.values()))

    def disagreement(self) -> str | None:
        """A sentence when the direct claim and the content check answer differently."""
        if self.claim.answer == self.content.answer:
            return None
        return (f"the direct contrasts say \"{self.claim.answer}\", the gains over the shuffled twins \""
                f"{self.content.answer}\": ")


def judge_design(scores: Scores, design: Design, methods: list[str], controls: list[str],
                 gold_design: Design | None, gold_scores: Scores | None = None,
                 mde_experiments: int = verdict.MDE_EXPERIMENTS) -> DesignVerdict:
    """The design's verdict from `scores` (its sentence set); `gold_scores` (the annotated set, where gold rows have
    maps) gives the leak, `scores` itself when None."""
    claim_systems = [system(m, design) for m in (*verdict.PAPER_TOP, *verdict.PAPER_REST)]
    twin_systems = [system(shuffled_control(m), design) for m in (*verdict.PAPER_TOP, *verdict.PAPER_REST)]
    seeds, missing = scores.common_seeds(claim_systems)
    contrasts = {m: {c: scores.estimate(contrast_weights(m, c, design)) for c in CONTRASTS} for m in methods}
    keys = [(m, c) for m in methods for c in CONTRASTS]
    adjusted = verdict.family({(m, c): contrasts[m][c] for m, c in keys})
    control_gains = {c: scores.estimate(verdict.gain(system(c, design), over=BASELINE)) for c in controls}
    pairs = list(itertools.product(verdict.PAPER_TOP, verdict.PAPER_REST))
    claimed = {pair: scores.estimate(claim_weights(*pair, design, CLAIM_CONTRAST), seeds) for pair in pairs}
    if missing:
        claim = verdict.ClaimVerdict(verdict.INCONCLUSIVE, "not every method on one common seed set: missing "
                                     + "; ".join(missing))
    else:
        claim = verdict.claim_verdict(claimed, mde_experiments=mde_experiments)
    twin_seeds, twin_missing = scores.common_seeds(claim_systems + twin_systems)
    content_contrasts = {pair: scores.estimate(claim_weights(*pair, design, CONTENT_CONTRAST), twin_seeds)
                         for pair in pairs}
    if twin_missing:
        content = verdict.ClaimVerdict(verdict.INCONCLUSIVE, "missing " + "; ".join(twin_missing))
    else:
        content = verdict.claim_verdict(content_contrasts, mde_experiments=mde_experiments)
    gold, leak = {}, {}
    paired = gold_scores or scores
    if gold_design is not None:
        for m in methods:
            if paired.has(system(m, gold_design)):
                gold[m] = paired.estimate(verdict.gain(system(m, gold_design), over=BASELINE))
                leak[m] = paired.estimate({system(m, design): 1.0, system(m, gold_design): -1.0})
    tokens = int(scores.tokens.sum()) if scores.tokens is not None else 0
    untrained = [c for c in CONTRASTS if not any(scores.has(reference_system(m, c, design)) for m in methods)]
    return DesignVerdict(design, contrasts, adjusted, control_gains, verdict.family(control_gains), claim, content,
                         claimed, content_contrasts, gold, leak, gold_design, seeds, {s: scores.unit(s) for s in seeds},
                         scores.sentences, tokens, len(scores.tokens) if scores.tokens is not None else 0, untrained)


# ================================================================================================ preconditions
def control_failures(result: dict) -> list[str]:
    """Why the positive control (`instrument_check.json`) failed, one phrase per reason."""
    reasons = []
    for check in result.get("checks", []):
        if not check["passed"]:
            reasons.append(check["reason"])
    return reasons


def control_regime_differences(control: dict, students: dict) -> tuple[list[str], list[str]]:
    """The positive control's configuration against the students' (run records): (differences that void it, every
    other difference). Keys missing on either side are not compared."""
    voiding, listed = [], []
    for key in sorted(set(control) & set(students)):
        if control[key] != students[key]:
            line = f"{key}: control {control[key]!r}, students {students[key]!r}"
            (voiding if key in CONTROL_MUST_MATCH else listed).append(line)
    return voiding, listed


@dataclass
class Preconditions:
    """What the verdict needs before it can say anything: a positive control that sees planted alignment content in
    this regime, students that translate, every method, and replicates for intervals."""

    instrument: dict | None  # instrument_check.json, None: not run
    baseline_bleu: list[float]
    min_baseline_bleu: float = MIN_BASELINE_BLEU
    # The real students' regime from their run records (`student_regime`): what the control's config is compared
    # with; the steps whose weights they kept. Empty: not checked.
    student_regime: dict = field(default_factory=dict)
    student_best_steps: list[int] = field(default_factory=list)

    def regime_mismatch(self) -> str | None:
        """Why the passed control does not certify these students, or None: a setting that must match differs, or
        the control's cells kept later steps than the real students did (a regime they did not reach)."""
        voiding, _ = control_regime_differences(self.instrument.get("regime", {}), self.student_regime)
        if voiding:
            return "the positive control ran another regime than the students (" + "; ".join(voiding) + ")"
        control = [c["best_step"] for c in self.instrument.get("cells", []) if c["map"] == "oracle@0"
                   and "best_step" in c]
        if not control or not self.student_best_steps:
            return None
        students, planted = statistics.median(self.student_best_steps), statistics.median(control)
        if students >= planted:
            return None
        judged = self.control_at_student_step()
        if judged is not None:
            step, result = judged
            if result["passed"]:
                return None
            return (f"the positive control passed with its cells at step {planted:g} (median), but at step {step}, "
                    f"whose weights the real students kept (median {students:g}), it does not see planted content ("
                    + "; ".join(control_failures(result)) + ")")
        return (
            f"the positive control passed with its students at step {planted:g} (median), but the real students kept "
            f"the weights of step {students:g}: a regime they did not reach (more map-annotated pairs would give them "
            "that room)"
        )

    def control_at_student_step(self) -> tuple[int, dict] | None:
        """The control judged on its cells' weights at the last evaluated step not after the real students' median
        best step (`by_step` of instrument_check.json), or None where it was not recorded."""
        by_step = {int(step): result for step, result in (self.instrument or {}).get("by_step", {}).items()}
        if not by_step or not self.student_best_steps:
            return None
        students = statistics.median(self.student_best_steps)
        reached = [step for step in by_step if step <= students]
        return (max(reached), by_step[max(reached)]) if reached else None

    def failures(self, design: Design, methods: list[str], replicates: int) -> list[str]:
        problems = []
        if self.instrument is None:
            problems.append("the positive control was not run (`agkd instrument`)")
        elif self.instrument["config"]["operator"] != design.operator:
            problems.append(f"the positive control measured `{self.instrument['config']['operator']}`, not this design")
        elif not self.instrument["passed"]:
            reasons = "; ".join(control_failures(self.instrument))
            problems.append(f"this design cannot detect planted alignment content at this budget ({reasons}; smallest "
                            f"detectable effect there {self.instrument['mde']:.4f} nats/token)")
        elif mismatch := self.regime_mismatch():
            problems.append(mismatch)
        if not self.baseline_bleu:
            problems.append("there is no baseline result")
        elif min(self.baseline_bleu) < self.min_baseline_bleu:
            problems.append(
                f"the no-map baseline reaches only BLEU {min(self.baseline_bleu):.2f} (< {self.min_baseline_bleu:g}): "
                "students that do not translate cannot show what a map teaches"
            )
        missing = [m for m in ALL_METHODS if m not in methods]
        if missing:
            problems.append(f"no results for {', '.join(missing)}")
        if replicates < verdict.MIN_REPLICATES:
            problems.append(f"{replicates} independent replicate(s): no interval across trainings")
        return problems


# ================================================================================================ the sentence
VERDICT_LEAD = "**The paper's ranking"  # how every verdict sentence starts: the Space quotes the lines that do
MECHANISM = "tested leak-free under attention supervision (the map trains the cross-attention; no map at test time) " \
            "rather than the paper's test-time injection"
ANSWER_WORDS = {
    verdict.HOLDS: "holds here",
    verdict.DOES_NOT_HOLD: "does not hold here",
    verdict.NOT_RELEVANT: f"does not hold here by a practically relevant margin (+/-{verdict.EQUIVALENCE_BOUND})",
    verdict.INCONCLUSIVE: "is inconclusive here",
}


def verdict_sentence(result: DesignVerdict, problems: list[str]) -> str:
    """The paper's ranking (attention, value zeroing and layer gradient x activation each teach more than each of the
    other five), tested in this design: holds, does not hold, not by a relevant margin, inconclusive or cannot be
    checked, with the reason in numbers."""
    if problems:
        return f"{VERDICT_LEAD}, {MECHANISM}, cannot be checked here**: " + "; ".join(problems) + "."
    claim = result.claim
    return (
        f"{VERDICT_LEAD}, {MECHANISM}, {ANSWER_WORDS[claim.answer]}** (each of {', '.join(verdict.PAPER_TOP)} "
        f"against each of the other five, student against student: 15 direct contrasts): {claim.reason}."
    )


def format_estimate(estimate: verdict.Estimate | None, adjusted_p: float | None = None, digits: int = 4) -> str:
    """`+0.0123* [+0.0050, +0.0196]`: mean, a mark when Holm-significant, the 95% interval."""
    if estimate is None:
        return "-"
    if not estimate.usable:
        return (
            f"n/a ({estimate.reason})"
            if math.isnan(estimate.mean)
            else f"{estimate.mean:+.{digits}f} ({estimate.reason})"
        )
    star = "*" if adjusted_p is not None and verdict.significant(estimate, adjusted_p) else ""
    return f"{estimate.mean:+.{digits}f}{star} [{estimate.low:+.{digits}f}, {estimate.high:+.{digits}f}]"
