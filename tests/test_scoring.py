"""Teacher-forced simulation metrics against hand-computed values; the token bootstrap and the seed interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agkd.training.evaluation import scoring


def test_sentence_statistics_by_hand():
    # Sentence 0: two tokens, then padding; sentence 1: one token. Vocabulary of 3.
    logits = torch.tensor(
        [
            [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]],
            [[0.0, 0.0, 3.0], [9.0, 9.0, 9.0], [9.0, 9.0, 9.0]],
        ]
    )
    labels = torch.tensor([[0, 2, -100], [1, -100, -100]])
    nll, correct, tokens = scoring.sentence_statistics(logits, labels)

    def neg_log_softmax(row, k):
        return -(row[k] - math.log(sum(math.exp(v) for v in row)))

    expected_0 = neg_log_softmax([2.0, 0.0, 0.0], 0) + neg_log_softmax([0.0, 1.0, 0.0], 2)
    expected_1 = neg_log_softmax([0.0, 0.0, 3.0], 1)
    assert nll.tolist() == pytest.approx([expected_0, expected_1])
    assert correct.tolist() == [1, 0]  # argmax 0 = label 0; argmax 1 != label 2; argmax 2 != label 1
    assert tokens.tolist() == [2, 1]
    stats = scoring.TokenStatistics(nll.numpy(), correct.numpy(), tokens.numpy())
    assert stats.corpus() == pytest.approx({"nll": (expected_0 + expected_1) / 3, "agreement": 1 / 3})


def test_teacher_forced_statistics_restore_order_and_match_the_model_loss():
    from student_utils import tiny_batch, tiny_student

    model = tiny_student()
    batch = tiny_batch(batch_size=4, target_length=5)
    batch["labels"][1, 3:] = -100
    loss = model(**{k: v for k, v in batch.items() if k != "attribution_map"}).loss
    # Two batches in reversed order: the statistics come back in index order.
    first = {k: v[2:] for k, v in batch.items() if k != "attribution_map"} | {"index": torch.tensor([2, 3])}
    second = {k: v[:2] for k, v in batch.items() if k != "attribution_map"} | {"index": torch.tensor([0, 1])}
    stats = scoring.teacher_forced_statistics(model, [first, second], 4)
    assert stats.tokens.tolist() == [5, 3, 5, 5]
    assert stats.corpus()["nll"] == pytest.approx(loss.item(), rel=1e-5)  # mean token cross-entropy


def test_token_bootstrap_sees_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, 30, 200)
    baseline = scoring.TokenStatistics(tokens * 3.0 + rng.normal(0, 5, 200), (tokens * 0.3).astype(int), tokens)
    better = scoring.TokenStatistics(baseline.nll - tokens * 0.2, baseline.correct + 1, tokens)
    result = scoring.paired_bootstrap_tokens(better, baseline, samples=500, seed=1)
    assert result["nll"]["delta"] < 0 and result["nll"]["ci95"][1] < 0 and result["nll"]["p_value"] < 0.01
    assert result["agreement"]["delta"] > 0 and result["agreement"]["ci95"][0] > 0
    same = scoring.paired_bootstrap_tokens(baseline, baseline, samples=500, seed=1)
    assert same["nll"]["delta"] == 0 and same["nll"]["ci95"] == [0, 0] and same["nll"]["p_value"] == 1.0
    noisy = scoring.TokenStatistics(baseline.nll + rng.normal(0, 5, 200), baseline.correct, tokens)
    result = scoring.paired_bootstrap_tokens(noisy, baseline, samples=500, seed=1)
    assert result["nll"]["ci95"][0] < result["nll"]["delta"] < result["nll"]["ci95"][1]
    with pytest.raises(ValueError, match="same targets"):
        scoring.paired_bootstrap_tokens(scoring.TokenStatistics(tokens * 1.0, tokens, tokens + 1), baseline, 10, 0)


def test_statistics_round_trip(tmp_path):
    stats = scoring.TokenStatistics(np.array([1.5, 2.0]), np.array([1, 2]), np.array([3, 4]))
    loaded = scoring.TokenStatistics.load(stats.save(tmp_path / "a" / "s.npz"))
    assert loaded.corpus() == stats.corpus() and loaded.tokens.tolist() == [3, 4]


def test_gain_signs():
    assert scoring.improvement("nll_reference", -0.1) == 0.1  # lower NLL is a gain
    assert scoring.improvement("agreement_teacher", 0.1) == 0.1
    assert scoring.improvement("bleu", 1.5) == 1.5
    assert scoring.PRIMARY_METRIC in scoring.METRICS
