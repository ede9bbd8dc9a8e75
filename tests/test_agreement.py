"""The rank agreement between criteria (training/triangulation/agreement.py) on synthetic data whose answer is known,
including agreement that one sentence fakes."""

import numpy as np
import pytest

from agkd.training.triangulation.agreement import Criterion, agreements, kendall, kendall_rows

METHODS, SENTENCES = 8, 100


def _criterion(name, effects, noise, rng, group="test"):
    per_sentence = np.asarray(effects)[:, None] + noise * rng.standard_normal((len(effects), SENTENCES))
    return Criterion.mean(name, per_sentence, group)


def test_a_ratio_of_sums_is_not_a_mean_of_ratios():
    c = Criterion("aer", np.array([[1.0, 3.0]]), np.array([[1.0, 9.0]]), "g")
    assert c.value() == pytest.approx([0.4])
    assert c.value(np.array([1, 1])) == pytest.approx([1 / 3])


def test_identical_and_reversed_rankings():
    rng = np.random.default_rng(0)
    effects = np.arange(METHODS, dtype=float)
    a = _criterion("a", effects, 0.1, rng)
    same = Criterion("same", a.numerator * 2, a.denominator, "test")
    reverse = Criterion("reverse", -a.numerator, a.denominator, "test")
    by_pair = {(x.first, x.second): x for x in agreements([a, same, reverse], samples=200)}
    assert (
        by_pair["a", "same"].tau == pytest.approx(1)
        and by_pair["a", "same"].low == pytest.approx(1)
        and by_pair["a", "same"].reading == "agree"
    )
    assert by_pair["a", "reverse"].tau == pytest.approx(-1) and by_pair["a", "reverse"].reading == "disagree"


def test_independent_criteria_of_equal_methods_rarely_claim_agreement():
    """Null: every method equal on both criteria. The interval should exclude 0 in few experiments."""
    claims = 0
    for experiment in range(40):
        rng = np.random.default_rng(100 + experiment)
        a = _criterion("a", np.zeros(METHODS), 1.0, rng)
        b = _criterion("b", np.zeros(METHODS), 1.0, rng)
        claims += agreements([a, b], samples=200, seed=experiment)[0].reading != "unresolved"
    assert claims <= 4  # 10% of 40: a 95% interval should be near 5%


def test_real_shared_ranking_is_found():
    rng = np.random.default_rng(1)
    effects = np.linspace(0, 1, METHODS)
    result = agreements([_criterion("a", effects, 0.5, rng), _criterion("b", effects, 0.5, rng)], samples=300)[0]
    assert result.tau > 0.6 and result.reading == "agree"


def test_agreement_made_by_one_sentence_is_not_trusted():
    """Both criteria are noise except one sentence that orders the methods identically with a huge value: the point
    tau is 1, but the interval (which drops that sentence in about a third of the resamples) must not say agree."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((METHODS, SENTENCES)), rng.standard_normal((METHODS, SENTENCES))
    a[:, 0] = b[:, 0] = 1000 * np.arange(METHODS)
    result = agreements([Criterion.mean("a", a, "t"), Criterion.mean("b", b, "t")], samples=300)[0]
    assert result.tau == pytest.approx(1)
    assert result.reading == "unresolved" and result.low < 0.2


def test_groups_are_resampled_on_their_own_and_checked():
    rng = np.random.default_rng(3)
    a = _criterion("a", np.arange(METHODS), 0.1, rng, group="test")
    gold = Criterion.mean("gold", rng.standard_normal((METHODS, 30)) + np.arange(METHODS)[:, None], "gold")
    assert agreements([a, gold], samples=100)[0].reading == "agree"
    with pytest.raises(ValueError, match="group test"):
        agreements([a, Criterion.mean("b", np.zeros((METHODS, 7)), "test")], samples=10)


def test_too_few_methods_or_a_constant_criterion_have_no_tau():
    assert np.isnan(kendall(np.arange(3.0), np.arange(3.0)))
    assert np.isnan(kendall(np.ones(8), np.arange(8.0)))
    nan_sentences = np.full((METHODS, 5), np.nan)
    assert agreements([Criterion.mean("a", nan_sentences, "t"), Criterion.mean("b", nan_sentences, "t")],
                      samples=10)[0].reading == "undefined"


def test_vectorised_tau_equals_scipy():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((20, METHODS)), rng.standard_normal((20, METHODS))
    b[:, 0] = b[:, 1]  # ties
    assert kendall_rows(a, b) == pytest.approx([kendall(x, y) for x, y in zip(a, b, strict=True)])


def test_a_ranking_that_training_seeds_make_is_not_read_as_agreement():
    """Utility that is pure training noise (per-seed method offsets, three seeds, little sentence noise) beside a
    criterion with a real ranking: the two are independent, so the table should rarely claim either reading. A
    sentence bootstrap alone sees only the small sentence noise and claims one most of the time."""
    seeds, claims, claims_sentences_only = 3, 0, 0
    for experiment in range(30):
        rng = np.random.default_rng(300 + experiment)
        numerator = rng.normal(0, 1.0, (METHODS, seeds))[:, :, None] + 0.05 * rng.standard_normal(
            (METHODS, seeds, SENTENCES))
        utility = Criterion("utility", numerator, np.ones((METHODS, SENTENCES)), "test")
        real = _criterion("real", np.linspace(0, 1, METHODS), 0.3, rng)
        claims += agreements([utility, real], samples=400, seed=experiment)[0].reading != "unresolved"
        sentences_only = Criterion("utility", numerator.mean(axis=1), np.ones((METHODS, SENTENCES)), "test")
        reading = agreements([sentences_only, real], samples=400, seed=experiment)[0].reading
        claims_sentences_only += reading != "unresolved"
    assert claims <= 3
    assert claims_sentences_only >= 10  # what the seed noise prevents


def test_intervals_hold_together_over_the_table():
    """Five criteria of equal methods (10 pairs): with Bonferroni the whole table should rarely claim anything."""
    claims = 0
    for experiment in range(10):
        rng = np.random.default_rng(200 + experiment)
        found = [_criterion(name, np.zeros(METHODS), 1.0, rng) for name in "abcde"]
        claims += any(a.reading != "unresolved" for a in agreements(found, samples=800, seed=experiment))
    assert claims <= 2
