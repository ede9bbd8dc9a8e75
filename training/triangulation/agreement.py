"""How far the criteria rank the methods alike: Kendall's tau between every two criteria, with simultaneous intervals
from a bootstrap over sentences and, for a criterion measured on several trained students, over their seeds.

Pure on purpose (numpy, scipy.stats): like the verdict, the agreement must be checkable without the training stack.

A criterion's value for a method is a ratio of sums over sentences, `sum(numerator[m, idx]) / sum(denominator[m,
idx])` (a mean when the denominator is 1 per sentence; a corpus AER or nats per token otherwise), oriented so that
HIGHER is better. A criterion with seeds (the utility: one student per seed) has a numerator [M, S, N] and its value
is the mean over seeds of the per-seed ratio. Its resamples carry the seeds' noise too, because the methods'
utilities differ by less than the seeds do and a sentence bootstrap alone would call a seed's accident an agreement.
Resampling 3 seeds with replacement would understate that noise (a resample always holds one of the seeds the ranking
came from), so a resample instead adds a draw of what new seeds would give: the methods' seed deviations (each seed's
shared offset removed: seed s of every method fine-tuned the same warm start) with normal weights, scaled like a
t with S-1 degrees of freedom, as the verdict's intervals are (`verdict/statistics.py`, CONSERVATIVE_DF). Criteria on
the same sentences (the same `group`) are resampled with the same indices, so their agreement keeps its pairing;
criteria of other sentence sets (the gold alignments of another corpus) are resampled on their own. What no resample
covers: the draws of a criterion's own procedure (the silver aligner's sampler, the randomised weights).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Bootstrap resamples of the tau intervals: the simultaneous intervals read tails of 0.05 / (2 K) (0.25% for the
# 10 pairs of 5 criteria), so 4000 resamples put about 10 draws beyond each bound.
AGREEMENT_SAMPLES = 4000
# Family-wise level of the intervals of one table: every pair of criteria is read at once, so each interval is a
# Bonferroni interval at 1 - (1 - level) / K for K pairs (the project's 95%, held over the whole table).
AGREEMENT_LEVEL = 0.95
# Fewer methods than this leave tau meaningless (3 methods: tau takes only the values -1, -1/3, 1/3, 1).
MIN_METHODS = 4


@dataclass
class Criterion:
    """One yardstick over the same methods: per-method, per-sentence numerators and denominators ([M, N]), or per
    method, seed and sentence ([M, S, N]) with denominators [M, N] for a criterion measured on trained students."""

    name: str
    numerator: np.ndarray
    denominator: np.ndarray
    group: str  # the sentence set; criteria of one group are resampled together

    def per_seed(self, idx: np.ndarray | None = None) -> np.ndarray:
        """The ratio per method ([M]) or per method and seed ([M, S]) over the sentences `idx` (all: None)."""
        num = self.numerator if idx is None else self.numerator[..., idx]
        den = self.denominator if idx is None else self.denominator[:, idx]
        total = den.sum(axis=-1)
        total = total[:, None] if self.seeded else total
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total != 0, num.sum(axis=-1) / total, np.nan)

    def value(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Per method, over the sentences `idx` (all: None), the mean over seeds of a seeded criterion."""
        ratio = self.per_seed(idx)
        return ratio.mean(axis=1) if self.seeded else ratio

    def resample(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One bootstrap replicate per method: the value over the resampled sentences `idx`, plus, for a seeded
        criterion, a draw of the seed noise (module docstring)."""
        ratio = self.per_seed(idx)
        if not self.seeded or self.seeds < 2:
            return ratio if not self.seeded else ratio.mean(axis=1)
        deviations = ratio - ratio.mean(axis=0, keepdims=True)  # each seed's offset shared by every method removed
        deviations -= deviations.mean(axis=1, keepdims=True)
        df = self.seeds - 1
        scale = np.sqrt(df / rng.chisquare(df)) / np.sqrt(df * self.seeds)
        return ratio.mean(axis=1) + scale * deviations @ rng.standard_normal(self.seeds)

    @property
    def seeded(self) -> bool:
        return self.numerator.ndim == 3

    @property
    def seeds(self) -> int:
        return self.numerator.shape[1] if self.seeded else 1

    @property
    def sentences(self) -> int:
        return self.numerator.shape[-1]

    @classmethod
    def mean(cls, name: str, per_sentence: np.ndarray, group: str) -> Criterion:
        """A criterion that is the mean of per-sentence values (NaN sentences left out of every mean)."""
        per_sentence = np.asarray(per_sentence, dtype=np.float64)
        valid = ~np.isnan(per_sentence)
        return cls(name, np.where(valid, per_sentence, 0.0), valid.astype(np.float64), group)


@dataclass
class Agreement:
    """Kendall's tau between two criteria's rankings of the methods, with its bootstrap interval."""

    first: str
    second: str
    tau: float
    low: float
    high: float
    methods: int

    @property
    def reading(self) -> str:
        """What the interval allows one to say, in words."""
        if math.isnan(self.tau):
            return "undefined"
        if self.low > 0:
            return "agree"
        if self.high < 0:
            return "disagree"
        return "unresolved"


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b over the methods both criteria score (NaN where fewer than `MIN_METHODS` or a constant)."""
    keep = ~(np.isnan(a) | np.isnan(b))
    if keep.sum() < MIN_METHODS or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return math.nan
    return float(stats.kendalltau(a[keep], b[keep]).statistic)


def kendall_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`kendall` of every row pair of `a`, `b` ([B, M], no NaN) at once: tau-b from the pairwise sign products
    (scipy's per-call overhead would dominate thousands of 8-method resamples)."""
    i, j = np.triu_indices(a.shape[1], k=1)
    sa, sb = np.sign(a[:, i] - a[:, j]), np.sign(b[:, i] - b[:, j])
    denominator = np.sqrt((sa != 0).sum(1) * (sb != 0).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (sa * sb).sum(1) / denominator, np.nan)


def agreements(criteria: list[Criterion], samples: int = AGREEMENT_SAMPLES, seed: int = 0) -> list[Agreement]:
    """Tau for every pair of criteria, with simultaneous intervals (`AGREEMENT_LEVEL` over all pairs) from `samples`
    resamples of each group's sentences, with the seed noise of seeded criteria (`Criterion.resample`)."""
    for c in criteria:
        if c.denominator.shape != (c.numerator.shape[0], c.sentences):
            raise ValueError(f"criterion {c.name}: numerator {c.numerator.shape} vs denominator {c.denominator.shape}")
    methods = {c.numerator.shape[0] for c in criteria}
    if len(methods) > 1:
        raise ValueError(f"criteria score different numbers of methods: {sorted(methods)}")
    sizes = {}
    for c in criteria:
        if sizes.setdefault(c.group, c.sentences) != c.sentences:
            raise ValueError(f"group {c.group}: {c.name} has {c.sentences} sentences, others {sizes[c.group]}")
    rng = np.random.default_rng(seed)
    boot = {c.name: np.empty((samples, c.numerator.shape[0])) for c in criteria}
    for i in range(samples):
        idx = {group: rng.integers(0, n, n) for group, n in sizes.items()}
        for c in criteria:
            boot[c.name][i] = c.resample(idx[c.group], rng)
    pairs = list(itertools.combinations(criteria, 2))
    alpha = (1 - AGREEMENT_LEVEL) / max(len(pairs), 1) / 2
    out = []
    for a, b in pairs:
        tau = kendall(a.value(), b.value())
        x, y = boot[a.name], boot[b.name]
        usable = ~(np.isnan(a.value()) | np.isnan(b.value()))  # methods both score in the full sample
        taus = kendall_rows(x[:, usable], y[:, usable]) if usable.sum() >= MIN_METHODS else np.array([])
        taus = taus[~np.isnan(taus)]
        low, high = (np.quantile(taus, [alpha, 1 - alpha]) if len(taus) else (math.nan, math.nan))
        out.append(Agreement(a.name, b.name, tau, float(low), float(high), int(usable.sum())))
    return out


__all__ = ["AGREEMENT_LEVEL", "AGREEMENT_SAMPLES", "Agreement", "Criterion", "agreements", "kendall", "kendall_rows"]
