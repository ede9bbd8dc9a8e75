"""The verdict's statistics on synthetic experiments: every path of the claim, Holm by hand, the crossed
random-effects variance against the estimator's true spread, the noncentral-t MDE, and the decision rules.

The calibration of the whole verdict, through the report's own `judge_design`, is in tests/test_calibration.py.
Seeds: rules and tolerances were explored on numpy seeds 0..299; the asserted simulations use seeds from 1000 on.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from agkd.training.verdict import statistics as verdict
from agkd.training.verdict.plan import plan_for

SYSTEMS = verdict.PAPER_TOP + verdict.PAPER_REST


def simulate(
    rng: np.random.Generator,
    effects: dict[str, float] | None = None,
    seeds: int = 3,
    sentences: int = 100,
    seed_sd: float = 0.02,
    sentence_sd: float = 0.05,
    cross_sd: float = 0.05,
    difficulty_sd: float = 0.5,
    systems: tuple[str, ...] = SYSTEMS,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Summed NLL per (seed, sentence) for each system, from per-token parts: a base rate, the system's true
    effect (negative = better), a sentence difficulty shared by all systems, a system-specific sentence noise, a
    per-(system, seed) training offset and a per-(system, seed, sentence) interaction."""
    effects = effects or {}
    tokens = rng.integers(5, 40, sentences).astype(float)
    difficulty = rng.normal(0.0, difficulty_sd, sentences)
    scores = {}
    for system in systems:
        offset = rng.normal(0.0, seed_sd, (seeds, 1))
        own = rng.normal(0.0, sentence_sd, sentences)
        cross = rng.normal(0.0, cross_sd, (seeds, sentences))
        per_token = 2.0 + effects.get(system, 0.0) + difficulty + own + offset + cross
        scores[system] = per_token * tokens
    return scores, tokens


def claim_contrasts(scores, tokens, **kwargs):
    """The 15 direct contrasts 'top gains more than rest' (rest's NLL minus top's)."""
    return {
        (top, rest): verdict.estimate(scores, tokens, verdict.gain(top, over=rest), **kwargs)
        for top in verdict.PAPER_TOP
        for rest in verdict.PAPER_REST
        if top in scores and rest in scores
    }


def top_better(effect: float) -> dict[str, float]:
    return {top: -effect for top in verdict.PAPER_TOP}


def judged(scores, tokens, **kwargs) -> verdict.ClaimVerdict:
    return verdict.claim_verdict(claim_contrasts(scores, tokens), mde_experiments=kwargs.pop("mde_experiments", 0),
                                 **kwargs)


def test_gain_and_gain_difference():
    assert verdict.gain("saliency", over="baseline") == {"baseline": 1.0, "saliency": -1.0}
    assert verdict.gain_difference("attention", "saliency", "baseline", "baseline") == {
        "attention": -1.0,
        "saliency": 1.0,
    }
    with pytest.raises(ValueError):
        verdict.gain("a", over="a")


def test_holm_against_hand_computed_case():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    assert verdict.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert verdict.holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])
    assert verdict.holm([]) == []


def test_estimate_mean_per_seed_and_interval_against_direct_computation():
    rng = np.random.default_rng(4)
    scores, tokens = simulate(rng, {"saliency": -0.1}, systems=("baseline", "saliency"))
    result = verdict.estimate(scores, tokens, verdict.gain("saliency", over="baseline"))
    direct = [(scores["baseline"][s].sum() - scores["saliency"][s].sum()) / tokens.sum() for s in range(3)]
    assert result.per_seed == pytest.approx(direct)
    assert result.mean == pytest.approx(np.mean(direct))
    assert result.usable and result.seeds == 3 and result.replicates == 3 and result.df == 2
    half = stats.t.ppf(0.975, 2) * result.se
    assert (result.low, result.high) == pytest.approx((result.mean - half, result.mean + half))
    assert result.se**2 == pytest.approx(result.split.variance)
    with pytest.raises(ValueError):
        verdict.estimate(scores, tokens, {"baseline": 1.0, "saliency": -0.5})


def test_crossed_components_against_a_hand_computed_two_way_table():
    values = np.array([[1.0, 2.0, 6.0], [3.0, 2.0, 4.0]])  # 2 replicates x 3 sentences
    # grand 3; replicate means 3, 3; sentence means 2, 2, 5; residuals: [[0,1,1],[0,-1,-1]] -> SS 4, df 2: MS_int 2
    # MS_sentence = 2 * var([2, 2, 5], ddof=1) = 6; MS_replicate = 3 * 0 = 0
    sentence, replicate, interaction = verdict.crossed_components(values)
    assert interaction == pytest.approx(2.0)
    assert sentence == pytest.approx((6.0 - 2.0) / 2)
    assert replicate == pytest.approx(0.0)  # (0 - 2) / 3 < 0: clamped
    _, variance, df = verdict.crossed_variance(values)
    assert variance == pytest.approx((6.0 + 0.0 - 2.0) / 6)  # from the mean squares: the clamped terms would sum to 1
    assert df == 1


@pytest.mark.parametrize("regime", ["interaction", "replicate", "sentence"])
def test_the_variance_counts_each_term_once(regime):
    """Against the estimator's true spread over many experiments: the old seed + sentence-bootstrap sum counted the
    interaction twice (up to 2x the variance where it dominates); the crossed estimate is unbiased in every corner."""
    sd = {"interaction": (0.01, 0.002, 0.2), "replicate": (0.01, 0.05, 0.01), "sentence": (0.3, 0.002, 0.01)}[regime]
    rng = np.random.default_rng(1000)
    means, variances = [], []
    for _ in range(1500):
        scores, tokens = simulate(rng, seeds=4, sentences=60, sentence_sd=sd[0], seed_sd=sd[1], cross_sd=sd[2],
                                  systems=("a", "b"))
        result = verdict.estimate(scores, tokens, verdict.gain("a", over="b"))
        means.append(result.mean)
        variances.append(result.se**2)
    assert np.mean(variances) / np.var(means, ddof=1) == pytest.approx(1.0, abs=0.12)


def test_seeds_of_one_warm_start_are_one_replicate():
    rng = np.random.default_rng(5)
    scores, tokens = simulate(rng, seeds=4, systems=("a", "b"))
    units = ["warm 0", "warm 1", "warm 0", "warm 1"]
    result = verdict.estimate(scores, tokens, verdict.gain("a", over="b"), units=units)
    assert result.seeds == 4 and result.replicates == 2 and result.df == 1
    by_unit = {u: np.mean([result.per_seed[s] for s in range(4) if units[s] == u]) for u in set(units)}
    assert result.mean == pytest.approx(np.mean(list(by_unit.values())))
    one = verdict.estimate(scores, tokens, verdict.gain("a", over="b"), units=["w"] * 4)
    assert not one.usable and "fewer than 2 independent replicates (1)" in one.reason


def test_non_finite_scores_and_one_seed_are_unusable():
    scores, tokens = simulate(np.random.default_rng(6), systems=("a", "b"))
    scores["a"][1, 3] = np.inf
    result = verdict.estimate(scores, tokens, verdict.gain("a", over="b"))
    assert not result.usable and "non-finite" in result.reason and math.isnan(result.p_value)
    scores, tokens = simulate(np.random.default_rng(6), seeds=1, systems=("a", "b"))
    result = verdict.estimate(scores, tokens, verdict.gain("a", over="b"))
    assert not result.usable and math.isnan(result.low) and math.isnan(verdict.equivalence_p(result))


def test_a_non_finite_contrast_makes_the_claim_inconclusive_not_decided():
    scores, tokens = simulate(np.random.default_rng(7), top_better(0.5))
    scores["deeplift"][0, 0] = np.nan  # a diverged student
    result = judged(scores, tokens)
    assert result.answer == verdict.INCONCLUSIVE and "non-finite" in result.reason and "deeplift" in result.reason


def test_mde_is_the_noncentral_t_effect():
    assert verdict.mde(1.0, math.inf) == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    exact = verdict.mde(1.0, 2, tests=15)  # the review's L1: 21.97 se, not the 18.34 of added quantiles
    assert exact == pytest.approx(21.97, abs=0.05)
    critical = stats.t.ppf(1 - 0.05 / 30, 2)
    assert stats.nct.sf(critical, 2, exact) == pytest.approx(verdict.POWER, abs=1e-6)


def test_equivalence_p():
    tight = verdict.Estimate(0.001, 0.001, 50.0, -0.001, 0.003, 0.3, [0.001, 0.001], 2)
    assert verdict.equivalence_p(tight, bound=0.01) < 1e-6
    wide = verdict.Estimate(0.0, 0.05, 50.0, -0.1, 0.1, 1.0, [0.0, 0.0], 2)
    assert verdict.equivalence_p(wide, bound=0.01) > 0.3


def test_claim_holds_when_all_fifteen_intervals_lie_above_zero():
    scores, tokens = simulate(np.random.default_rng(10), top_better(0.5))
    result = judged(scores, tokens)
    assert result.answer == verdict.HOLDS, result.reason
    assert "intersection-union" in result.reason


def test_holds_needs_no_sign_rule():
    """Every interval above 0 while one seed of attention points the other way: holds (the interval carries the
    seeds; an all-seeds-agree rule made extra seeds self-defeating)."""
    rng = np.random.default_rng(11)
    scores, tokens = simulate(rng, top_better(0.1), seeds=10, seed_sd=0.01, sentence_sd=0.05, cross_sd=0.05)
    scores["attention"][3] += 0.15 * tokens  # that seed of attention trains worse than the rest
    contrasts = claim_contrasts(scores, tokens)
    result = verdict.claim_verdict(contrasts, mde_experiments=0)
    assert max(contrasts[("attention", rest)].per_seed[3] for rest in verdict.PAPER_REST) < 0
    assert all(e.low > 0 for e in contrasts.values())
    assert result.answer == verdict.HOLDS, result.reason


def test_claim_does_not_hold_when_one_rest_method_is_clearly_better():
    effects = top_better(0.5) | {"saliency": -1.0}
    result = judged(*simulate(np.random.default_rng(12), effects))
    assert result.answer == verdict.DOES_NOT_HOLD, result.reason
    assert "significantly negative" in result.reason and "saliency" in result.reason


def test_equivalence_reads_not_by_a_practically_relevant_margin():
    scores, tokens = simulate(np.random.default_rng(13), seed_sd=0.0005, sentence_sd=0.001, cross_sd=0.001)
    result = judged(scores, tokens)
    assert result.answer == verdict.NOT_RELEVANT, result.reason
    assert "equivalent to zero within" in result.reason


def test_significantly_positive_but_tiny_is_not_a_relevant_margin():
    """All 15 above 0 and one of them shown within the bound: not "holds" (M6a)."""
    effects = {"attention": -0.002, "value_zeroing": -0.3, "layer_gradient_x_activation": -0.3}
    scores, tokens = simulate(np.random.default_rng(14), effects, seeds=5, seed_sd=0.0002, sentence_sd=0.0005,
                              cross_sd=0.0005, difficulty_sd=0.0)
    contrasts = claim_contrasts(scores, tokens)
    assert all(e.low > 0 for e in contrasts.values())
    result = verdict.claim_verdict(contrasts, mde_experiments=0)
    assert result.answer == verdict.NOT_RELEVANT, result.reason


def test_claim_is_inconclusive_when_noise_is_wide_around_zero():
    result = judged(*simulate(np.random.default_rng(15), seed_sd=0.05, sentence_sd=0.2, cross_sd=0.2),
                    mde_experiments=200)
    assert result.answer == verdict.INCONCLUSIVE, result.reason
    assert "intervals lie above 0" in result.reason and "widest interval" in result.reason
    assert result.mde > verdict.EQUIVALENCE_BOUND and "detects with power" in result.reason


def test_one_strong_method_cannot_carry_its_group():
    effects = {"attention": -1.0, "layer_gradient_x_activation": -1.0}  # value_zeroing equals the rest
    result = judged(*simulate(np.random.default_rng(16), effects))
    assert result.answer != verdict.HOLDS, result.reason


def test_missing_method_and_missing_seeds_are_inconclusive_and_named():
    scores, tokens = simulate(np.random.default_rng(17), top_better(0.5))
    del scores["deeplift"]
    result = judged(scores, tokens)
    assert result.answer == verdict.INCONCLUSIVE
    assert "methods without results: deeplift" in result.reason and "3 of 15 contrasts missing" in result.reason
    scores, tokens = simulate(np.random.default_rng(18), top_better(0.5))
    scores["gradient_shap"] = scores["gradient_shap"][:1]
    result = judged(scores, tokens)
    assert "3 of 15 contrasts unusable" in result.reason and "gradient_shap" in result.reason


def test_decision_mdes_are_what_the_rules_detect_with_power():
    """Each decision's MDE from the simulated null, checked by running the decision rule itself on new experiments
    at that effect: "holds" about POWER of the time at 1x, nearly always at 2x."""
    split = verdict.VarianceSplit(sentence=0.004, replicate=0.00002, interaction=0.002, replicates=4, sentences=120)
    mdes = verdict.decision_mdes(split, experiments=1000, seed=1000)
    assert mdes[verdict.HOLDS] < mdes[verdict.DOES_NOT_HOLD]  # one pair at alpha/15 needs more than 15 at alpha/2
    rng = np.random.default_rng(1001)

    def holds_rate(effect: float, n: int = 150) -> float:
        hits = 0
        for _ in range(n):
            values = {}
            for k, system in enumerate(SYSTEMS):
                sentence = rng.standard_t(4, (1, split.sentences)) * math.sqrt(0.5) * math.sqrt(split.sentence / 2)
                replicate = rng.normal(0, math.sqrt(split.replicate / 2), (split.replicates, 1))
                interaction = rng.normal(0, math.sqrt(split.interaction / 2), (split.replicates, split.sentences))
                values[system] = 5.0 - (effect if k < 3 else 0.0) + sentence + replicate + interaction
            tokens = np.ones(split.sentences)
            hits += judged(values, tokens).answer == verdict.HOLDS
        return hits / n

    assert holds_rate(mdes[verdict.HOLDS]) == pytest.approx(verdict.POWER, abs=0.12)
    assert holds_rate(2 * mdes[verdict.HOLDS]) > 0.97


# The plans recorded in docs/analysis-plan.md before their runs, by preset.
RECORDED_PLANS = {  # (preset, seeds: None for the preset's own) -> hash, as docs/analysis-plan.md records them
    ("demo", (0, 1, 2, 3)): "e841941e73a5182d02f5fe2d5ff3615f1b4865eab42a99a6ddbcd4d7ec457c8b",  # the grid's demo run
    ("demo", None): "c1d8d6b627fff55a875d21009d3ced4a4ce38bf469d5d7afd1f7327fea98a8b3",  # cut to its budget
    ("demo-power", None): "a0e8416464bd4246de36d41001a75cb4f30903b4e81528483a927d33a9d4bb38",
    ("demo-answer", None): "4109704cb778a36ff09770b6a35ed837188e7c8a7c8cd088c3a7b0393a186d2c",
}


@pytest.mark.parametrize("preset, seeds", sorted(RECORDED_PLANS, key=str), ids=str)
def test_recorded_plans_rebuild_to_their_hashes(preset, seeds):
    """A run's report compares its written plan with the plan the code rebuilds: a code change that moves a recorded
    plan would make every report of that preset say "another plan". Only a preset that departs from the students'
    control size records it (the earlier plans keep their hashes)."""
    plan = plan_for(preset, seeds=list(seeds) if seeds else None)
    assert plan.sha256() == RECORDED_PLANS[preset, seeds]
    assert RECORDED_PLANS[preset, seeds] in (Path(__file__).parents[1] / "docs" / "analysis-plan.md").read_text()
    assert ("control" in plan.as_dict()) == (preset == "demo-answer")
