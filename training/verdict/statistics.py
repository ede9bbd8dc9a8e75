"""The statistics of the verdict: contrasts between systems' corpus NLL with seed and sentence uncertainty, Holm
over a family, equivalence (TOST), the smallest detectable effect, and the paper's claim tested as stated.

Pure on purpose (numpy, scipy.stats, stdlib): the verdict must be checkable without the training stack, and the
calibration tests run it thousands of times.

Conventions. A system's scores are `nll[S, N]`: the summed token NLL of the reference of each of N test sentences
for each of S training seeds, the same seeds (paired) and sentences for every system. A contrast is a dict
{system: weight} with weights summing to 0; its value for seed s is sum_k w_k * nll_k[s].sum() / tokens.sum()
(nats/token). Contrasts are built so that POSITIVE means the claimed system is better (lower NLL): the gain of A
over B is {B: +1, A: -1}.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

# Family-wise error rate of every verdict: the field's convention, and what the calibration tests hold it to.
ALPHA = 0.05
# Power the smallest detectable effect is quoted at: the usual planning convention (a 1-in-5 miss rate).
POWER = 0.8
# Gains smaller than this (nats/token, ~1% perplexity) are practically nil: no user would choose a method for them.
EQUIVALENCE_BOUND = 0.01
# Sentence bootstrap resamples: enough that the bootstrap variance's own Monte Carlo error (~sqrt(2/B)) is ~5%.
BOOTSTRAP_SAMPLES = 1000
# The seed variance needs two seeds; without it a claim about new trainings has no uncertainty for training noise.
MIN_SEEDS = 2
# t reference df: Hsu's lower bound min(S-1, N-1) of the Welch-Satterthwaite df, not the estimate itself. With 3
# seeds the seed variance has 2 df; when it comes out small by chance the Welch df jumps towards N-1 exactly when se
# is underestimated, and the 15-contrast claim then false-alarmed in ~10% of null experiments (tests/test_verdict.py).
CONSERVATIVE_DF = True
# Weights must sum to zero (a contrast, not a level); tolerance for float round-off of user-built weights.
WEIGHT_SUM_TOLERANCE = 1e-9

# The paper's claim: each of these three methods teaches more than each of the five below.
PAPER_TOP = ("attention", "value_zeroing", "layer_gradient_x_activation")
PAPER_REST = ("saliency", "integrated_gradients", "deeplift", "input_x_gradient", "gradient_shap")

Contrast = dict[str, float]
Pair = tuple[str, str]


@dataclass
class Estimate:
    """A contrast's mean over seeds with an uncertainty that covers new trainings AND new sentences."""

    mean: float
    se: float
    df: float
    low: float
    high: float
    p_value: float
    per_seed: list[float]
    seeds: int
    seed_variance: float = math.nan  # var(theta_s, ddof=1) / S: the training-noise share of se**2
    sentence_variance: float = math.nan  # bootstrap variance over sentences: the test-set share of se**2
    welch_df: float = math.nan  # Welch-Satterthwaite df; `df` is it only when conservative_df is off
    usable: bool = True
    reason: str = ""


@dataclass
class ClaimVerdict:
    """The answer to the paper's claim, with the numbers that decided it."""

    answer: str  # "holds" | "does not hold" | "inconclusive"
    reason: str
    adjusted_p: dict[Pair, float] = field(default_factory=dict)  # Holm over the 15 two-sided p-values
    equivalence_adjusted_p: dict[Pair, float] = field(default_factory=dict)  # Holm over the 15 TOST p-values
    mde: float = math.nan  # smallest effect the family detects with POWER, from the median se and df, tests=15


def gain(system: str, over: str) -> Contrast:
    """Weights of 'system gains over `over`': positive when `system` has the lower NLL."""
    if system == over:
        raise ValueError(f"a gain needs two different systems, got {system!r} twice")
    return {over: 1.0, system: -1.0}


def gain_difference(a: str, b: str, over_a: str, over_b: str) -> Contrast:
    """Weights of gain(a, over_a) - gain(b, over_b): positive when a gains more than b. Zero weights are dropped."""
    weights: dict[str, float] = {}
    for sign, contrast in ((1.0, gain(a, over_a)), (-1.0, gain(b, over_b))):
        for system, weight in contrast.items():
            weights[system] = weights.get(system, 0.0) + sign * weight
    return {system: weight for system, weight in weights.items() if weight != 0.0}


def _unusable(reason: str, per_seed: list[float], seeds: int) -> Estimate:
    mean = float(np.mean(per_seed)) if per_seed else math.nan
    nan = math.nan
    return Estimate(mean, nan, nan, nan, nan, nan, per_seed, seeds, usable=False, reason=reason)


def estimate(
    scores: Mapping[str, np.ndarray],
    tokens: np.ndarray,
    weights: Mapping[str, float],
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    conservative_df: bool = CONSERVATIVE_DF,
) -> Estimate:
    """The contrast's seed mean with se = sqrt(v_seed + v_sent) and a t interval, for a claim that should hold
    for new trainings and new sentences.

    v_seed = var over seeds of the per-seed contrast / S (training noise); v_sent = variance of the seed-mean
    contrast over a paired sentence bootstrap (one index set per resample for every system and seed), recomputed
    as a ratio of sums. Their sum is slightly conservative: the seed variance on a fixed test set already holds a
    share of the sentence-by-seed noise, which the bootstrap counts again. The t reference has Hsu's df
    min(S-1, N-1) unless conservative_df is off (see CONSERVATIVE_DF); the Welch-Satterthwaite df is always kept
    in `welch_df`. Fewer than MIN_SEEDS seeds, or seed counts that differ between systems, give an unusable
    Estimate (NaN interval) with the reason.
    """
    if not weights:
        raise ValueError("a contrast needs weights")
    if abs(sum(weights.values())) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(f"contrast weights must sum to 0, got {sum(weights.values())!r}: {dict(weights)}")
    missing = sorted(set(weights) - set(scores))
    if missing:
        raise KeyError(f"no scores for: {', '.join(missing)}")
    tokens = np.asarray(tokens, dtype=float)
    arrays = {system: np.atleast_2d(np.asarray(scores[system], dtype=float)) for system in weights}
    for system, nll in arrays.items():
        if nll.ndim != 2 or nll.shape[1] != tokens.shape[0]:
            raise ValueError(f"{system}: nll has shape {nll.shape}, expected [seeds, {tokens.shape[0]}]")
    seed_counts = {system: nll.shape[0] for system, nll in arrays.items()}
    if len(set(seed_counts.values())) > 1:
        detail = ", ".join(f"{system}: {count}" for system, count in sorted(seed_counts.items()))
        return _unusable(f"seed counts differ, cannot pair seeds ({detail})", [], min(seed_counts.values()))

    # per_sentence[s, i]: the contrast's summed NLL on sentence i for seed s.
    per_sentence = sum(weight * arrays[system] for system, weight in weights.items())
    total_tokens = tokens.sum()
    per_seed = per_sentence.sum(axis=1) / total_tokens
    n_seeds, n_sentences = per_sentence.shape
    per_seed_list = [float(value) for value in per_seed]
    if n_seeds < MIN_SEEDS:
        return _unusable(f"fewer than {MIN_SEEDS} seeds ({n_seeds})", per_seed_list, n_seeds)
    if n_sentences < 2:
        return _unusable(f"fewer than 2 test sentences ({n_sentences})", per_seed_list, n_seeds)

    mean = float(per_seed.mean())
    v_seed = float(per_seed.var(ddof=1)) / n_seeds
    seed_mean = per_sentence.mean(axis=0)
    index = np.random.default_rng(seed).integers(0, n_sentences, size=(samples, n_sentences))
    resampled = seed_mean[index].sum(axis=1) / tokens[index].sum(axis=1)
    v_sent = float(resampled.var(ddof=1))
    variance = v_seed + v_sent
    se = math.sqrt(variance)
    denominator = v_seed**2 / (n_seeds - 1) + v_sent**2 / (n_sentences - 1)
    welch_df = variance**2 / denominator if denominator > 0 else math.inf
    df = float(min(n_seeds - 1, n_sentences - 1)) if conservative_df else welch_df
    if se > 0:
        half = float(stats.t.ppf(1 - ALPHA / 2, df)) * se
        p_value = float(2 * stats.t.sf(abs(mean) / se, df))
    else:  # no variation at all: the contrast is exactly known
        half = 0.0
        p_value = 1.0 if mean == 0 else 0.0
    return Estimate(mean, se, df, mean - half, mean + half, p_value, per_seed_list, n_seeds, v_seed, v_sent, welch_df)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: family-wise error control with no assumption on dependence."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return [float(value) for value in adjusted]


def family(estimates: Mapping[str, Estimate]) -> dict[str, float]:
    """Holm-adjusted p-values of a family; an unusable estimate counts as p = 1 (the family keeps its size) and
    gets NaN."""
    names = list(estimates)
    raw = [estimates[name].p_value if estimates[name].usable else 1.0 for name in names]
    adjusted = holm(raw)
    return {name: (value if estimates[name].usable else math.nan) for name, value in zip(names, adjusted, strict=True)}


def equivalence_p(estimate: Estimate, bound: float = EQUIVALENCE_BOUND) -> float:
    """TOST p-value for |true contrast| < bound: the larger of the one-sided p-values against -bound and +bound."""
    if not estimate.usable:
        return math.nan
    if estimate.se == 0:
        return 0.0 if abs(estimate.mean) < bound else 1.0
    p_above_lower = float(stats.t.sf((estimate.mean + bound) / estimate.se, estimate.df))
    p_below_upper = float(stats.t.cdf((estimate.mean - bound) / estimate.se, estimate.df))
    return max(p_above_lower, p_below_upper)


def mde(se: float, df: float, tests: int = 1, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest effect a two-sided test at alpha/tests detects with `power` (Bonferroni level: conservative for
    Holm)."""
    return float((stats.t.ppf(1 - alpha / (2 * tests), df) + stats.t.ppf(power, df)) * se)


def star(estimate: Estimate, adjusted_p: float, alpha: float = ALPHA) -> bool:
    """Significant: adjusted p below alpha AND every seed agrees in sign with the mean, so that no result rests on
    seeds that point the other way."""
    if not estimate.usable or not adjusted_p < alpha or estimate.mean == 0:
        return False
    return all(np.sign(value) == np.sign(estimate.mean) for value in estimate.per_seed)


def _interval(estimate: Estimate) -> str:
    return f"[{estimate.low:+.4f}, {estimate.high:+.4f}]"


def _name(pair: Pair) -> str:
    return f"{pair[0]} vs {pair[1]}"


def claim_verdict(contrasts: Mapping[Pair, Estimate], bound: float = EQUIVALENCE_BOUND) -> ClaimVerdict:
    """Test 'each of PAPER_TOP gains more than each of PAPER_REST' as stated: 15 contrasts (top, rest), positive
    supporting the claim.

    - "does not hold" when one contrast is significantly negative (Holm over the 15 two-sided p-values, `star`), or
      one is shown equivalent to zero within `bound` (Holm over the 15 TOST p-values): it then cannot be positive by
      more than the bound. One refuted pair suffices: the claim is about every pair, so a strong method cannot carry
      its group.
    - "holds" only when all 15 are significantly positive after Holm (`star`: seeds agree in sign too).
    - otherwise, and whenever a contrast is missing or unusable, "inconclusive" with the reason in numbers.
    """
    required = list(itertools.product(PAPER_TOP, PAPER_REST))
    missing = [pair for pair in required if pair not in contrasts]
    if missing:
        present = {method for pair in required if pair in contrasts for method in pair}
        absent = [method for method in PAPER_TOP + PAPER_REST if method not in present]
        what = f"methods without results: {', '.join(absent)}; " if absent else ""
        names = ", ".join(_name(pair) for pair in missing)
        return ClaimVerdict("inconclusive", f"{what}{len(missing)} of {len(required)} contrasts missing: {names}")
    unusable = [pair for pair in required if not contrasts[pair].usable]
    if unusable:
        names = "; ".join(f"{_name(pair)} ({contrasts[pair].reason})" for pair in unusable)
        return ClaimVerdict("inconclusive", f"{len(unusable)} of {len(required)} contrasts unusable: {names}")

    estimates = [contrasts[pair] for pair in required]
    adjusted = dict(zip(required, holm([e.p_value for e in estimates]), strict=True))
    tost = dict(zip(required, holm([equivalence_p(e, bound) for e in estimates]), strict=True))
    family_mde = mde(
        float(np.median([e.se for e in estimates])), float(np.median([e.df for e in estimates])), tests=len(required)
    )

    def verdict(answer: str, reason: str) -> ClaimVerdict:
        return ClaimVerdict(answer, reason, adjusted, tost, family_mde)

    significant = {pair: star(contrasts[pair], adjusted[pair]) for pair in required}
    negative = [pair for pair in required if significant[pair] and contrasts[pair].mean < 0]
    if negative:
        names = "; ".join(
            f"{_name(pair)} {contrasts[pair].mean:+.4f} {_interval(contrasts[pair])}, Holm p {adjusted[pair]:.3g}"
            for pair in negative
        )
        return verdict("does not hold", f"significantly negative: {names}")
    equivalent = [pair for pair in required if tost[pair] < ALPHA]
    if equivalent:
        names = "; ".join(
            f"{_name(pair)} {contrasts[pair].mean:+.4f} {_interval(contrasts[pair])}, Holm TOST p {tost[pair]:.3g}"
            for pair in equivalent
        )
        return verdict("does not hold", f"equivalent to zero within +/-{bound} nats/token: {names}")
    positive = [pair for pair in required if significant[pair] and contrasts[pair].mean > 0]
    if len(positive) == len(required):
        weakest = min(required, key=lambda pair: contrasts[pair].mean)
        return verdict(
            "holds",
            f"all {len(required)} contrasts significantly positive after Holm (largest Holm p "
            f"{max(adjusted.values()):.3g}; smallest gain {contrasts[weakest].mean:+.4f} "
            f"{_interval(contrasts[weakest])}, {_name(weakest)})",
        )
    widest = max(required, key=lambda pair: contrasts[pair].high - contrasts[pair].low)
    width = contrasts[widest].high - contrasts[widest].low
    split = [pair for pair in required if adjusted[pair] < ALPHA and not significant[pair]]
    disagree = f"; {len(split)} significant by p but with seeds of both signs" if split else ""
    return verdict(
        "inconclusive",
        f"{len(positive)} of {len(required)} contrasts significantly positive after Holm{disagree}, none refuted; "
        f"the widest interval {_interval(contrasts[widest])} ({_name(widest)}, width {width:.4f}) and the "
        f"smallest detectable effect {family_mde:.4f} nats/token ({len(required)} tests, power {POWER}) against "
        f"the equivalence bound {bound}: more seeds or sentences are needed",
    )
