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
t with S-1 degrees of freedom, as the verdict's intervals are (`verdict/statistics.py`, CONSERVATIVE_DF).

Two criteria on the same sentences (the same `group`) are cross-fitted: criterion A is scored on one half of the
sentences and B on the other, then the swap, and the two taus are averaged; the interval resamples inside each half.
Criteria read from the same maps on the same sentences share per-sentence noise (AOPC deletion and insertion remove
complementary sets of the same top-k; a sentence a map gets wrong costs it on silver AER and AOPC alike), and a
bootstrap that keeps the pairing reads that shared noise as agreement even when every method is equal. On disjoint
halves the two rankings share only what the methods really are (docs/triangulation.md has the rates measured). The
price: each ranking comes from half the sentences, so tau is attenuated and its interval wider than a paired one.
Criteria of other sentence sets (the gold alignments of another corpus) are independent already: their tau is on all
sentences, each resampled on its own. What no resample covers: the draws of a criterion's own procedure (the silver
aligner's sampler, the randomised weights).
"""

from __future__ import annotations

import itertools
import math
import warnings
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
# The split of a group's sentences into the cross-fit's two halves: random, because the evaluation split is in book
# order (first and second halves would be different books, i.e. different difficulty and style), and seeded and fixed,
# so that a table is reproducible and never depends on the bootstrap's seed.
SPLIT_SEED = 0
# Bootstrap replicates computed in one vectorised step (memory: methods x seeds x chunk x sentences floats).
_CHUNK = 250


@dataclass
class Criterion:
    """One yardstick over the same methods: per-method, per-sentence numerators and denominators ([M, N]), or per
    method, seed and sentence ([M, S, N]) with denominators [M, N] for a criterion measured on trained students."""

    name: str
    numerator: np.ndarray
    denominator: np.ndarray
    group: str  # the sentence set; two criteria of one group are cross-fitted on its two halves

    def per_seed(self, idx: np.ndarray | None = None) -> np.ndarray:
        """The ratio per method ([M]) or per method and seed ([M, S]) over the sentences `idx` (all: None); `idx` of
        shape [B, n] gives B replicates at once ([M, B] or [M, S, B])."""
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

    def seed_draw(self, rng: np.random.Generator,
                  replicates: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """One draw (or `replicates` draws) of what new training seeds would give (module docstring): the t scale and
        the seeds' normal weights; None for a criterion without seeds to draw."""
        if not self.seeded or self.seeds < 2:
            return None
        shape = () if replicates is None else (replicates,)
        df = self.seeds - 1
        scale = np.sqrt(df / rng.chisquare(df, shape)) / np.sqrt(df * self.seeds)
        return scale, rng.standard_normal((self.seeds, *shape))

    def resample(self, idx: np.ndarray, rng: np.random.Generator | None = None,
                 draw: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """One bootstrap replicate per method ([M]; [M, B] for `idx` of shape [B, n]): the value over the resampled
        sentences `idx`, plus, for a seeded criterion, the seed noise `draw` (`seed_draw`; drawn from `rng` when
        None). The cross-fit passes one draw to both halves: new seeds would be the same students on both."""
        ratio = self.per_seed(idx)
        if not self.seeded or self.seeds < 2:
            return ratio if not self.seeded else ratio.mean(axis=1)
        scale, weights = draw if draw is not None else self.seed_draw(rng, None if idx.ndim == 1 else idx.shape[0])
        deviations = ratio - ratio.mean(axis=0, keepdims=True)  # each seed's offset shared by every method removed
        deviations -= deviations.mean(axis=1, keepdims=True)
        return ratio.mean(axis=1) + scale * (deviations * weights).sum(axis=1)

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
    """Kendall's tau between two criteria's rankings of the methods, with its bootstrap interval; `cross_fitted` when
    the two share sentences (each ranked on its own half, module docstring)."""

    first: str
    second: str
    tau: float
    low: float
    high: float
    methods: int
    cross_fitted: bool = False

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


def halves(sentences: int) -> tuple[np.ndarray, np.ndarray]:
    """The cross-fit's two halves of a group's sentence indices: a random split seeded by `SPLIT_SEED`, sorted."""
    order = np.random.default_rng(SPLIT_SEED).permutation(sentences)
    return np.sort(order[: sentences // 2]), np.sort(order[sentences // 2:])


def _cross_tau(a1: np.ndarray, a2: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """The cross-fitted tau of replicate rows ([B, M]): A on the first half against B on the second, and the swap,
    averaged (the one defined where the other is not)."""
    taus = np.stack([kendall_rows(a1, b2), kendall_rows(a2, b1)])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # both undefined: NaN, dropped by the caller
        return np.nanmean(taus, axis=0)


def agreements(criteria: list[Criterion], samples: int = AGREEMENT_SAMPLES, seed: int = 0) -> list[Agreement]:
    """Tau for every pair of criteria, with simultaneous intervals (`AGREEMENT_LEVEL` over all pairs) from `samples`
    resamples of each group's sentences, with the seed noise of seeded criteria (`Criterion.resample`). Two criteria
    of one group are cross-fitted on its `halves` (module docstring); others are compared on all their sentences."""
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
    split = {group: halves(n) for group, n in sizes.items()}
    small = [group for group, (first, _) in split.items() if len(first) == 0]
    if small:
        raise ValueError(f"groups {small} have fewer than 2 sentences: no halves to cross-fit")
    rng = np.random.default_rng(seed)
    pairs = list(itertools.combinations(criteria, 2))
    parts = {c.name: set() for c in criteria}  # the replicates a criterion's pairs read: all sentences, or halves
    for a, b in pairs:
        for c in (a, b):
            parts[c.name] |= {"first", "second"} if a.group == b.group else {"all"}
    boot = {(c.name, part): np.empty((samples, c.numerator.shape[0])) for c in criteria for part in parts[c.name]}
    for start in range(0, samples, _CHUNK):
        size = min(_CHUNK, samples - start)
        idx = {}
        for group, n in sizes.items():
            first, second = split[group]
            idx[group] = {"all": rng.integers(0, n, (size, n)),
                          "first": first[rng.integers(0, len(first), (size, len(first)))],
                          "second": second[rng.integers(0, len(second), (size, len(second)))]}
        for c in criteria:
            draw = c.seed_draw(rng, size)  # one draw of new seeds per replicate, for every part
            for part in sorted(parts[c.name]):
                boot[c.name, part][start:start + size] = c.resample(idx[c.group][part], draw=draw).T
    alpha = (1 - AGREEMENT_LEVEL) / max(len(pairs), 1) / 2
    out = []
    for a, b in pairs:
        cross = a.group == b.group
        if cross:
            first, second = split[a.group]
            values = [a.value(first), a.value(second), b.value(first), b.value(second)]
        else:
            values = [a.value(), b.value()]
        usable = ~np.any(np.isnan(values), axis=0)  # methods both criteria score in the sample (every half)
        if usable.sum() < MIN_METHODS:
            out.append(Agreement(a.name, b.name, math.nan, math.nan, math.nan, int(usable.sum()), cross))
            continue
        if cross:
            tau = float(_cross_tau(*(v[None, usable] for v in values))[0])
            taus = _cross_tau(*(boot[c.name, part][:, usable] for c in (a, b) for part in ("first", "second")))
        else:
            tau = kendall(a.value()[usable], b.value()[usable])
            taus = kendall_rows(boot[a.name, "all"][:, usable], boot[b.name, "all"][:, usable])
        taus = taus[~np.isnan(taus)]
        low, high = (np.quantile(taus, [alpha, 1 - alpha]) if len(taus) else (math.nan, math.nan))
        out.append(Agreement(a.name, b.name, tau, float(low), float(high), int(usable.sum()), cross))
    return out


__all__ = [
    "AGREEMENT_LEVEL", "AGREEMENT_SAMPLES", "SPLIT_SEED", "Agreement", "Criterion", "agreements", "halves", "kendall",
    "kendall_rows",
]
