"""The statistics of the verdict: contrasts between systems' corpus NLL with replicate and sentence uncertainty
(crossed random effects), Holm over a family, equivalence (TOST), each decision's smallest detectable effect, and
the paper's claim tested as stated.

Pure on purpose (numpy, scipy.stats, stdlib): the verdict must be checkable without the training stack, and the
calibration tests run it thousands of times.

Conventions. A system's scores are `nll[S, N]`: the summed token NLL of the reference of each of N test sentences
for each of S training seeds, the same seeds (paired) and sentences for every system. A contrast is a dict
{system: weight} with weights summing to 0; its value for seed s is sum_k w_k * nll_k[s].sum() / tokens.sum()
(nats/token). Contrasts are built so that POSITIVE means the claimed system is better (lower NLL): the gain of A
over B is {B: +1, A: -1}.

Replicates. The independent unit of a training is what it does not share with another: a seed that fine-tunes the
same warm start as another seed is not a new replicate of the warm start's noise. `units[s]` names the replicate of
seed s (its warm start, or the seed itself when every seed has its own); the seeds of one unit are averaged first,
and the variance and degrees of freedom count units (`estimate`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

# Error rate of every decision: the field's convention, and what the calibration tests hold it to.
ALPHA = 0.05
# Power the smallest detectable effect is quoted at: the usual planning convention (a 1-in-5 miss rate).
POWER = 0.8
# The smallest effect of interest (nats/token, about 1% perplexity): a direct gain of one student over another below
# it is practically nil. Recorded with the analysis plan (docs/analysis-plan.md) before the verdict's data are read;
# half the spread of the eight methods' gains measured on earlier releases (0.018), so that a difference of the size
# the methods actually differ by is not called "nil".
EQUIVALENCE_BOUND = 0.01
# The verdict needs two independent replicates (warm starts or seeds): without them a claim about new trainings has
# no uncertainty for training noise.
MIN_REPLICATES = 2
# Degrees of freedom of the t reference: "replicates" takes U-1 (the replicate term's own df): exact when training
# noise dominates, conservative when sentences do. Satterthwaite's df for the crossed-effects sum was the alternative:
# on simulated null contrasts (2,000 each, heavy-tailed sentences; docs/verdict.md) its 95% intervals missed the true
# value in 6.9% (3 replicates x 100 sentences) and 5.4% (5 x 600) of experiments where the replicate term is noisy and
# not negligible; U-1 missed 2.3% and 3.9% there, 0.5% where sentences dominate and 5.3% where replicates do.
DF_RULE = "replicates"  # or "satterthwaite" (floored at U-1)
# Weights must sum to zero (a contrast, not a level); tolerance for float round-off of user-built weights.
WEIGHT_SUM_TOLERANCE = 1e-9
# Null experiments simulated for each decision's smallest detectable effect (`decision_mdes`): the 80th percentile of
# 2,000 draws has a Monte Carlo error of about 1% of its value.
MDE_EXPERIMENTS = 2000

# The paper's claim: each of these three methods teaches more than each of the five below.
PAPER_TOP = ("attention", "value_zeroing", "layer_gradient_x_activation")
PAPER_REST = ("saliency", "integrated_gradients", "deeplift", "input_x_gradient", "gradient_shap")

# The answers of the claim, in the report's words.
HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
NOT_RELEVANT = "not by a practically relevant margin"
INCONCLUSIVE = "inconclusive"

Contrast = dict[str, float]
Pair = tuple[str, str]


@dataclass(frozen=True)
class VarianceSplit:
    """The crossed random-effects components of a contrast, in (nats/token)^2 per sentence-and-replicate cell:
    between sentences, between replicates (training noise), and their interaction."""

    sentence: float
    replicate: float
    interaction: float
    replicates: int
    sentences: int

    @property
    def variance(self) -> float:
        """Variance of the contrast's mean over replicates and sentences: each term once (no double count)."""
        return (self.sentence / self.sentences + self.replicate / self.replicates
                + self.interaction / (self.replicates * self.sentences))

    def shares(self) -> dict[str, float]:
        """Each term's share of the mean's variance."""
        total = self.variance
        parts = {
            "sentence": self.sentence / self.sentences,
            "replicate": self.replicate / self.replicates,
            "interaction": self.interaction / (self.replicates * self.sentences),
        }
        return {name: (value / total if total > 0 else math.nan) for name, value in parts.items()}


@dataclass
class Estimate:
    """A contrast's mean over replicates with an uncertainty that covers new trainings AND new sentences."""

    mean: float
    se: float
    df: float
    low: float
    high: float
    p_value: float
    per_seed: list[float]
    seeds: int
    replicates: int = 0  # independent units (warm starts) behind the seeds
    split: VarianceSplit | None = None
    usable: bool = True
    reason: str = ""


@dataclass
class ClaimVerdict:
    """The answer to the paper's claim, with the numbers that decided it."""

    answer: str  # HOLDS | DOES_NOT_HOLD | NOT_RELEVANT | INCONCLUSIVE
    reason: str
    adjusted_p: dict[Pair, float] = field(default_factory=dict)  # Holm over the 15 two-sided p-values
    equivalence_adjusted_p: dict[Pair, float] = field(default_factory=dict)  # Holm over the 15 TOST p-values
    mdes: dict[str, float] = field(default_factory=dict)  # per decision, `decision_mdes`

    @property
    def mde(self) -> float:
        """The smallest detectable effect of "holds", the decision the paper's claim needs."""
        return self.mdes.get(HOLDS, math.nan)


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


def unusable(reason: str, per_seed: Sequence[float] = (), seeds: int = 0) -> Estimate:
    """An estimate that carries no decision: NaN interval and p, with the reason."""
    mean = float(np.mean(per_seed)) if len(per_seed) else math.nan
    nan = math.nan
    return Estimate(mean, nan, nan, nan, nan, nan, list(per_seed), seeds, usable=False, reason=reason)


def mean_squares(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean squares of a two-way crossed design without replication, `values[..., U, N]` (replicates x sentences):
    (MS_sentence, MS_replicate, MS_interaction), batched over leading axes so that simulations run many experiments
    at once."""
    n_units, n_sentences = values.shape[-2:]
    unit_means = values.mean(axis=-1)
    sentence_means = values.mean(axis=-2)
    grand = unit_means.mean(axis=-1)
    ms_unit = n_sentences * unit_means.var(axis=-1, ddof=1)
    ms_sentence = n_units * sentence_means.var(axis=-1, ddof=1)
    residual = values - unit_means[..., :, None] - sentence_means[..., None, :] + grand[..., None, None]
    ms_interaction = (residual**2).sum(axis=(-2, -1)) / ((n_units - 1) * (n_sentences - 1))
    return ms_sentence, ms_unit, ms_interaction


def crossed_components(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Method-of-moments components (sentence, replicate, interaction) from E[MS_sentence] = s_int + U s_sent,
    E[MS_replicate] = s_int + N s_rep, E[MS_interaction] = s_int, clamped at 0 for display: the variance of the mean
    is taken from the mean squares directly (`crossed_variance`), since clamping each term biases their sum up."""
    n_units, n_sentences = values.shape[-2:]
    ms_sentence, ms_unit, ms_interaction = mean_squares(values)
    sentence = np.maximum(0.0, (ms_sentence - ms_interaction) / n_units)
    replicate = np.maximum(0.0, (ms_unit - ms_interaction) / n_sentences)
    return sentence, replicate, ms_interaction


def crossed_variance(values: np.ndarray, df_rule: str = DF_RULE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, variance of the mean and degrees of freedom of `values[..., U, N]` under crossed random effects:
    var = s_sent/N + s_rep/U + s_int/(UN) = (MS_sentence + MS_replicate - MS_interaction) / (UN), each term once and
    unbiased; where chance makes it non-positive (both main mean squares far below the interaction's), the interaction
    term alone (MS_interaction/(UN)). The df
    is U-1, or Satterthwaite's floored at U-1 (`DF_RULE`)."""
    n_units, n_sentences = values.shape[-2:]
    ms_sentence, ms_unit, ms_interaction = mean_squares(values)
    cells = n_units * n_sentences
    unbiased = (ms_sentence + ms_unit - ms_interaction) / cells
    variance = np.where(unbiased > 0, unbiased, ms_interaction / cells)
    floor = float(n_units - 1)
    if df_rule == "replicates":
        df = np.full_like(variance, floor)
    elif df_rule == "satterthwaite":
        terms = (ms_sentence / cells, ms_unit / cells, ms_interaction / cells)
        dfs = (n_sentences - 1, n_units - 1, (n_units - 1) * (n_sentences - 1))
        denominator = sum(term**2 / d for term, d in zip(terms, dfs, strict=True))
        with np.errstate(divide="ignore", invalid="ignore"):
            df = np.where(denominator > 0, variance**2 / np.where(denominator > 0, denominator, 1.0), floor)
        df = np.maximum(df, floor)
    else:
        raise ValueError(f"unknown df rule {df_rule!r}")
    return values.mean(axis=(-2, -1)), variance, df


def linearised(per_sentence: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Per-(replicate, sentence) values whose plain mean is the ratio-of-sums contrast and whose crossed variance is
    the delta-method variance of that ratio: theta + (d_ui - theta * t_i) / mean(t)."""
    theta = per_sentence.sum(axis=-1, keepdims=True).mean(axis=-2, keepdims=True) / tokens.sum()
    return theta + (per_sentence - theta * tokens) / tokens.mean()


def estimate(
    scores: Mapping[str, np.ndarray],
    tokens: np.ndarray,
    weights: Mapping[str, float],
    units: Sequence | None = None,
    df_rule: str = DF_RULE,
) -> Estimate:
    """The contrast's mean over replicates with se from the crossed random-effects variance (sentences x replicates,
    the interaction counted once) and a two-sided 1-ALPHA t interval, for a claim that should hold for new trainings
    and new sentences.

    `units[s]`: the replicate unit of seed s (its warm start); seeds of one unit are averaged before the variance, so
    that the df and the replicate term count units, not seeds (default: every seed its own unit). A contrast with a
    non-finite score, fewer than MIN_REPLICATES units, fewer than 2 sentences or seed counts that differ between
    systems is unusable (NaN interval) with the reason.
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
        return unusable(f"seed counts differ, cannot pair seeds ({detail})", [], min(seed_counts.values()))

    per_sentence = sum(weight * arrays[system] for system, weight in weights.items())
    n_seeds, n_sentences = per_sentence.shape
    per_seed = [float(value) for value in per_sentence.sum(axis=1) / tokens.sum()]
    if not np.all(np.isfinite(per_sentence)) or not np.all(np.isfinite(tokens)):
        bad = [system for system, nll in arrays.items() if not np.all(np.isfinite(nll))]
        return unusable(f"non-finite scores ({', '.join(bad) or 'tokens'})", per_seed, n_seeds)
    units = list(range(n_seeds)) if units is None else list(units)
    if len(units) != n_seeds:
        raise ValueError(f"{len(units)} units for {n_seeds} seeds")
    names = list(dict.fromkeys(units))
    if len(names) < MIN_REPLICATES:
        return unusable(f"fewer than {MIN_REPLICATES} independent replicates ({len(names)})", per_seed, n_seeds)
    if n_sentences < 2:
        return unusable(f"fewer than 2 test sentences ({n_sentences})", per_seed, n_seeds)
    by_unit = np.stack([per_sentence[[s for s, u in enumerate(units) if u == name]].mean(axis=0) for name in names])
    values = linearised(by_unit, tokens)
    mean, variance, df = (float(x) for x in crossed_variance(values, df_rule))
    split = VarianceSplit(*(float(c) for c in crossed_components(values)), len(names), n_sentences)
    se = math.sqrt(variance)
    if se > 0:
        half = float(stats.t.ppf(1 - ALPHA / 2, df)) * se
        p_value = float(2 * stats.t.sf(abs(mean) / se, df))
    else:  # identical systems: nothing to detect
        if mean != 0:
            return unusable("zero variance with a non-zero difference", per_seed, n_seeds)
        half, p_value = 0.0, 1.0
    return Estimate(mean, se, df, mean - half, mean + half, p_value, per_seed, n_seeds, len(names), split)


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


def family(estimates: Mapping) -> dict:
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
    """Smallest effect a two-sided t test at alpha/tests (Bonferroni, Holm's first step) detects with `power`: the
    noncentrality at which the noncentral t exceeds the critical value with that probability."""
    if not (se > 0 and df > 0):
        return math.nan
    critical = float(stats.t.ppf(1 - alpha / (2 * tests), df))
    if math.isinf(df):
        return (critical + float(stats.norm.ppf(power))) * se
    low, high = 0.0, critical + 10 * float(stats.t.ppf(power, df)) + 10
    for _ in range(60):  # bisection on the noncentrality: the power is monotone in it
        middle = (low + high) / 2
        if stats.nct.sf(critical, df, middle) < power:
            low = middle
        else:
            high = middle
    return high * se


def significant(estimate: Estimate, adjusted_p: float, alpha: float = ALPHA) -> bool:
    """A display mark: usable and Holm-adjusted p below alpha (no sign rule: the interval carries the seeds)."""
    return estimate.usable and adjusted_p < alpha


def decision_mdes(split: VarianceSplit, experiments: int = MDE_EXPERIMENTS, seed: int = 0, df_rule: str = DF_RULE,
                  sentence_tail_df: float = 4.0) -> dict[str, float]:
    """Each decision's smallest detectable effect, by simulating the decision rule on null experiments of the 8
    methods with the measured variance split (each pairwise contrast gets `split`'s components: every system carries
    half of each; sentence effects Student-t with `sentence_tail_df` df, heavy-tailed as real sentences are):

    - HOLDS: the common gain of the three over the five at which all 15 lower bounds exceed 0 with POWER (an effect
      shifts every contrast's mean, not its se, so it is the POWER quantile of max_k(t_k se_k - mean_k));
    - DOES_NOT_HOLD: the negative gain of one contrast that Holm's first step (alpha/15) finds with POWER;
    - NOT_RELEVANT: the margin within which some contrast is shown equivalent (Holm TOST) with POWER when all are
      0; equivalence is reachable when it is below the bound.
    """
    rng = np.random.default_rng(seed)
    systems = PAPER_TOP + PAPER_REST
    pairs = list(itertools.product(range(len(PAPER_TOP)), range(len(PAPER_TOP), len(systems))))
    units, sentences = split.replicates, split.sentences
    scale_t = math.sqrt((sentence_tail_df - 2) / sentence_tail_df) if sentence_tail_df > 2 else 1.0
    need_holds, need_refute, need_equivalent = [], [], []
    chunk = max(1, 2_000_000 // (len(systems) * units * sentences))
    for start in range(0, experiments, chunk):
        n = min(chunk, experiments - start)
        shape = (n, len(systems))
        sentence = rng.standard_t(sentence_tail_df, (*shape, 1, sentences)) * scale_t * math.sqrt(split.sentence / 2)
        replicate = rng.normal(0.0, math.sqrt(split.replicate / 2), (*shape, units, 1))
        interaction = rng.normal(0.0, math.sqrt(split.interaction / 2), (*shape, units, sentences))
        values = sentence + replicate + interaction
        contrasts = np.stack([values[:, rest] - values[:, top] for top, rest in pairs], axis=1)  # [n, 15, U, N]
        mean, variance, df = crossed_variance(contrasts, df_rule)
        se = np.sqrt(variance)
        need_holds.append((stats.t.ppf(1 - ALPHA / 2, df) * se - mean).max(axis=1))
        tests = len(pairs)
        need_refute.append((mean + stats.t.ppf(1 - ALPHA / (2 * tests), df) * se).ravel())
        need_equivalent.append((np.abs(mean) + stats.t.ppf(1 - ALPHA / tests, df) * se).min(axis=1))
    return {
        HOLDS: float(np.quantile(np.concatenate(need_holds), POWER)),
        DOES_NOT_HOLD: float(np.quantile(np.concatenate(need_refute), POWER)),
        NOT_RELEVANT: float(np.quantile(np.concatenate(need_equivalent), POWER)),
    }


def median_split(estimates: Sequence[Estimate]) -> VarianceSplit | None:
    """The typical contrast's variance split: the median of each component over usable estimates."""
    splits = [e.split for e in estimates if e.usable and e.split is not None]
    if not splits:
        return None
    return VarianceSplit(
        float(np.median([s.sentence for s in splits])),
        float(np.median([s.replicate for s in splits])),
        float(np.median([s.interaction for s in splits])),
        splits[0].replicates,
        splits[0].sentences,
    )


def _interval(estimate: Estimate) -> str:
    return f"[{estimate.low:+.4f}, {estimate.high:+.4f}]"


def _name(pair: Pair) -> str:
    return f"{pair[0]} vs {pair[1]}"


def _listing(pairs: Sequence[Pair], contrasts: Mapping[Pair, Estimate], extra: Mapping[Pair, str]) -> str:
    return "; ".join(f"{_name(p)} {contrasts[p].mean:+.4f} {_interval(contrasts[p])}{extra.get(p, '')}" for p in pairs)


def claim_verdict(contrasts: Mapping[Pair, Estimate], bound: float = EQUIVALENCE_BOUND,
                  mde_experiments: int = MDE_EXPERIMENTS) -> ClaimVerdict:
    """Test 'each of PAPER_TOP gains more than each of PAPER_REST' as stated: 15 contrasts (top, rest), positive
    supporting the claim, read in this order:

    - DOES_NOT_HOLD when one contrast is significantly negative (Holm over the 15 two-sided p-values: a union of
      refutations needs the family-wise correction). One refuted pair suffices: the claim is about every pair, so a
      strong method cannot carry its group.
    - NOT_RELEVANT when one contrast is shown equivalent to 0 within +/-`bound` (Holm over the 15 TOST p-values): it
      cannot then exceed 0 by a practically relevant margin, even if it is significantly positive.
    - HOLDS when all 15 two-sided 95% intervals lie above 0: an intersection-union test (Berger 1982), whose size is
      at most ALPHA/2 without any multiplicity correction, since every one of the 15 must reject.
    - otherwise, and whenever a contrast is missing or unusable, INCONCLUSIVE with the reason in numbers.
    """
    required = list(itertools.product(PAPER_TOP, PAPER_REST))
    missing = [pair for pair in required if pair not in contrasts]
    if missing:
        present = {method for pair in required if pair in contrasts for method in pair}
        absent = [method for method in PAPER_TOP + PAPER_REST if method not in present]
        what = f"methods without results: {', '.join(absent)}; " if absent else ""
        names = ", ".join(_name(pair) for pair in missing)
        return ClaimVerdict(INCONCLUSIVE, f"{what}{len(missing)} of {len(required)} contrasts missing: {names}")
    unusable_pairs = [pair for pair in required if not contrasts[pair].usable]
    if unusable_pairs:
        names = "; ".join(f"{_name(pair)} ({contrasts[pair].reason})" for pair in unusable_pairs)
        return ClaimVerdict(INCONCLUSIVE, f"{len(unusable_pairs)} of {len(required)} contrasts unusable: {names}")

    estimates = [contrasts[pair] for pair in required]
    adjusted = dict(zip(required, holm([e.p_value for e in estimates]), strict=True))
    tost = dict(zip(required, holm([equivalence_p(e, bound) for e in estimates]), strict=True))
    split = median_split(estimates)
    mdes = decision_mdes(split, experiments=mde_experiments) if split and mde_experiments else {}

    def verdict(answer: str, reason: str) -> ClaimVerdict:
        return ClaimVerdict(answer, reason, adjusted, tost, mdes)

    negative = [pair for pair in required if adjusted[pair] < ALPHA and contrasts[pair].mean < 0]
    if negative:
        holm_p = {pair: f", Holm p {adjusted[pair]:.3g}" for pair in negative}
        return verdict(DOES_NOT_HOLD, f"significantly negative: {_listing(negative, contrasts, holm_p)}")
    equivalent = [pair for pair in required if tost[pair] < ALPHA]
    if equivalent:
        tost_p = {pair: f", Holm TOST p {tost[pair]:.3g}" for pair in equivalent}
        return verdict(NOT_RELEVANT, f"equivalent to zero within +/-{bound} nats/token: "
                                     f"{_listing(equivalent, contrasts, tost_p)}")
    above = [pair for pair in required if contrasts[pair].low > 0]
    if len(above) == len(required):
        weakest = min(required, key=lambda pair: contrasts[pair].low)
        return verdict(
            HOLDS,
            f"all {len(required)} 95% intervals lie above 0 (intersection-union test); the lowest bound "
            f"{contrasts[weakest].low:+.4f} ({_name(weakest)}, gain {contrasts[weakest].mean:+.4f})",
        )
    widest = max(required, key=lambda pair: contrasts[pair].high - contrasts[pair].low)
    width = contrasts[widest].high - contrasts[widest].low
    needed = f"; the smallest gain \"holds\" detects with power {POWER}: {mdes[HOLDS]:.4f} nats/token" if mdes else ""
    return verdict(
        INCONCLUSIVE,
        f"{len(above)} of {len(required)} intervals lie above 0, none significantly negative or shown equivalent; "
        f"the widest interval {_interval(contrasts[widest])} ({_name(widest)}, width {width:.4f}){needed}, against "
        f"the equivalence bound {bound}",
    )


def spearman_with_interval(
    x: list[float], y: list[float], samples: int = 1000, seed: int = 0
) -> tuple[float, list[float]]:
    """Spearman rho across methods and a 95% bootstrap interval (methods resampled; degenerate resamples skipped)."""
    x, y = np.asarray(x), np.asarray(y)
    rho = float(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(samples):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            draws.append(stats.spearmanr(x[i], y[i]).statistic)
    return rho, [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else [float("nan")] * 2
