"""How far the criteria rank the methods alike: Kendall's tau between every two criteria, with intervals from a
bootstrap over sentences.

Pure on purpose (numpy, scipy.stats): like the verdict, the agreement must be checkable without the training stack.

A criterion's value for a method is a ratio of sums over sentences, `sum(numerator[m, idx]) / sum(denominator[m,
idx])` (a mean when the denominator is 1 per sentence; a corpus AER or nats per token otherwise), oriented so that
HIGHER is better. Criteria measured on the same sentences (the same `group`) are resampled with the same indices, so
their agreement keeps its pairing; criteria of other sentence sets (the gold alignments of another corpus) are
resampled on their own.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Bootstrap resamples of the tau intervals: enough for stable 2.5/97.5 percentiles (~2% Monte Carlo error).
AGREEMENT_SAMPLES = 1000
# Central interval of tau: the two-sided 95% every interval of the project quotes.
AGREEMENT_LEVEL = 0.95
# Fewer methods than this leave tau meaningless (3 methods: tau takes only the values -1, -1/3, 1/3, 1).
MIN_METHODS = 4


@dataclass
class Criterion:
    """One yardstick over the same methods: per-method, per-sentence numerators and denominators ([M, N])."""

    name: str
    numerator: np.ndarray
    denominator: np.ndarray
    group: str  # the sentence set; criteria of one group are resampled together

    def value(self, idx: np.ndarray | None = None) -> np.ndarray:
        num = self.numerator if idx is None else self.numerator[:, idx]
        den = self.denominator if idx is None else self.denominator[:, idx]
        total = den.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total != 0, num.sum(axis=1) / total, np.nan)

    @property
    def sentences(self) -> int:
        return self.numerator.shape[1]

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
    """Tau for every pair of criteria, its interval from `samples` resamples of each group's sentences."""
    for c in criteria:
        if c.numerator.shape != c.denominator.shape:
            raise ValueError(f"criterion {c.name}: numerator {c.numerator.shape} != denominator {c.denominator.shape}")
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
            boot[c.name][i] = c.value(idx[c.group])
    alpha = (1 - AGREEMENT_LEVEL) / 2
    out = []
    for a, b in itertools.combinations(criteria, 2):
        tau = kendall(a.value(), b.value())
        x, y = boot[a.name], boot[b.name]
        usable = ~(np.isnan(x) | np.isnan(y)).any(axis=0)  # methods both score in the full sample
        taus = kendall_rows(x[:, usable], y[:, usable]) if usable.sum() >= MIN_METHODS else np.array([])
        taus = taus[~np.isnan(taus)]
        low, high = (np.quantile(taus, [alpha, 1 - alpha]) if len(taus) else (math.nan, math.nan))
        n = int((~(np.isnan(a.value()) | np.isnan(b.value()))).sum())
        out.append(Agreement(a.name, b.name, tau, float(low), float(high), n))
    return out


__all__ = ["AGREEMENT_LEVEL", "AGREEMENT_SAMPLES", "Agreement", "Criterion", "agreements", "kendall", "kendall_rows"]
