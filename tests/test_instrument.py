"""The instrument check: planted maps are right, the default check passes, and a broken instrument fails it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agkd.training.evaluation.scoring import TokenStatistics
from agkd.training.instrument import (
    BASELINE,
    CORRUPTION_LEVELS,
    EOS_ID,
    INSTRUMENT_FILE,
    SHUFFLED,
    InstrumentConfig,
    PlantedTask,
    build_task,
    corrupted_maps,
    instrument_section,
    judge,
    main,
    oracle,
    run_instrument_check,
    sample_sentences,
    shuffled_maps,
)

torch.set_num_threads(1)


def test_planted_map_of_a_hand_written_sentence():
    # Units: word 3 -> 10, word 4 -> 11, phrase (5 6) -> 12; target order by rank: unit 1, unit 2, unit 0.
    task = PlantedTask(units=((3,), (4,), (5, 6)), targets=(10, 11, 12), rank=(2, 0, 1), vocab_size=13)
    input_ids, labels, alignment = task.pair([0, 2, 1])
    assert input_ids == [3, 5, 6, 4, EOS_ID]
    assert labels == [11, 12, 10, EOS_ID]
    expected = [
        [0, 0, 0, 1, 0],  # 11 <- source position 3 (word 4)
        [0, 0.5, 0.5, 0, 0],  # 12 <- the phrase at positions 1 and 2 (many-to-one)
        [1, 0, 0, 0, 0],  # 10 <- position 0 (word 3)
        [0, 0, 0, 0, 1],  # </s> <- </s>
    ]
    np.testing.assert_array_equal(alignment, np.array(expected, dtype=np.float32))
    with pytest.raises(ValueError, match="distinct"):
        task.pair([0, 0])


def test_default_task_and_its_maps():
    config = InstrumentConfig()
    task = build_task(config)
    source_ids = [i for unit in task.units for i in unit]
    assert len(source_ids) == len(set(source_ids)) == 40 and len(set(task.targets)) == 36
    assert not set(source_ids) & set(task.targets) and min(source_ids) > EOS_ID and max(task.targets) < task.vocab_size
    sentences = sample_sentences(task, config, 100, np.random.default_rng(0))
    assert len({tuple(s) for s in sentences}) == 100
    target_of = {unit: target for unit, target in zip(task.units, task.targets, strict=True)}
    for sentence in sentences:
        input_ids, labels, alignment = task.pair(sentence)
        assert alignment.shape == (len(labels), len(input_ids)) and np.allclose(alignment.sum(1), 1)
        for row, label in zip(alignment[:-1], labels[:-1], strict=True):  # each row reads exactly its unit
            assert target_of[tuple(input_ids[s] for s in np.flatnonzero(row))] == label
        assert alignment[-1, -1] == 1 and labels[-1] == input_ids[-1] == EOS_ID
    rng = np.random.default_rng(0)
    true = corrupted_maps(task, sentences, 0.0, rng)
    assert all(np.array_equal(t, task.pair(x)[2]) for t, x in zip(true, sentences, strict=True))
    for level in (0.5, 1.0):
        graded = corrupted_maps(task, sentences, level, rng)
        changed = [int((~np.isclose(g, t).all(1)).sum()) for g, t in zip(graded, true, strict=True)]
        assert all(g.shape == t.shape for g, t in zip(graded, true, strict=True))
        assert np.mean(changed) / np.mean([len(t) for t in true]) < level + 0.05  # some draws equal the true row
        assert np.mean(changed) > 0
    for shuffled, t in zip(shuffled_maps(task, sentences, rng), true, strict=True):
        np.testing.assert_array_equal(np.sort(shuffled, axis=1), np.sort(t, axis=1))  # each row keeps its values


def test_config_is_checked_and_takes_the_presets_regime():
    with pytest.raises(ValueError, match="injection_operator"):
        InstrumentConfig(operator="subtract")
    with pytest.raises(ValueError, match="seeds"):
        InstrumentConfig(seeds=(0,))
    demo = InstrumentConfig.for_preset("demo")
    from agkd.training.orchestration.presets import PRESETS

    assert demo.finetune_steps == PRESETS["demo"].student.max_steps
    assert demo.finetune_pairs == PRESETS["demo"].extract.max_pairs["train"]
    assert demo.seeds == (3, 4, 5)  # not the seeds its budget was chosen on
    assert (demo.eval_steps, demo.patience) == (PRESETS["demo"].student.eval_steps, PRESETS["demo"].student.patience)


def synthetic(gains: dict[str, float], noise: float = 0.01, seeds: int = 3, seed: int = 0) -> dict:
    """Per-seed TokenStatistics of every map kind with a planted gain over the baseline."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, 12, 100)
    base = rng.normal(2.0, 0.3, 100)
    return {
        kind: [
            TokenStatistics((base - gain + rng.normal(0, noise, 100)) * tokens, tokens * 0, tokens)
            for _ in range(seeds)
        ]
        for kind, gain in gains.items()
    }


def graded(effect: float, bump: float = 0.0) -> dict[str, float]:
    gains = {BASELINE: 0.0, SHUFFLED: 0.0}
    gains |= {oracle(q): effect * (1 - q) + (bump if q == 0.75 else 0.0) for q in CORRUPTION_LEVELS}
    return gains


def test_judge_passes_a_graded_map_and_reports_its_mde():
    result = judge(synthetic(graded(0.3)), InstrumentConfig())
    assert result["passed"] and result["detects"] and result["monotone"]
    assert 0 < result["mde"] < 0.3
    assert result["levels"][0]["over_shuffled"]["mean"] == pytest.approx(0.3, abs=0.01)


def test_judge_fails_a_map_it_cannot_see_and_gains_that_do_not_fall():
    flat = judge(synthetic(graded(0.0)), InstrumentConfig())
    assert not flat["passed"] and not flat["detects"]
    bumped = judge(synthetic(graded(0.3, bump=0.2)), InstrumentConfig())
    assert bumped["detects"] and not bumped["monotone"] and not bumped["passed"]
    assert "0.75 gains" in bumped["violations"][0]


def test_a_tiny_real_check_runs_and_writes_its_section(tmp_path):
    argv = ["--results_dir", str(tmp_path), "--seeds", "0", "1", "--warm_steps", "5", "--finetune_steps", "3"]
    assert main([*argv, "--finetune_pairs", "64", "--corpus_pairs", "128", "--test_pairs", "16"]) == 0
    result = json.loads((tmp_path / INSTRUMENT_FILE).read_text())
    assert result["config"]["finetune_steps"] == 3 and result["config"]["operator"] == "supervise"
    assert {(c["seed"], c["map"]) for c in result["cells"]} == {
        (s, k) for s in (0, 1) for k in (BASELINE, SHUFFLED, *map(oracle, CORRUPTION_LEVELS))
    }
    assert result["passed"] is False  # 3 steps teach nothing
    assert {c["best_step"] for c in result["cells"]} <= {3}  # the best validation step's weights, as real students
    lines = instrument_section(result)
    assert lines[0].startswith("## Instrument check") and "MDE" in "\n".join(lines)
    assert any(line.startswith("**The design cannot see a planted alignment at this budget**") for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize(("steps", "passes"), [(None, False), (240, True)])
def test_the_demo_regime_and_the_budget_that_would_pass(steps, passes):
    """The demo's check, on seeds other than those its budget was chosen on (0, 1, 2): at the demo's 80 fine-tuning
    steps `supervise` does not see a planted alignment, at 240 it does (docs/verdict.md)."""
    overrides = {"finetune_steps": steps} if steps else {}
    result = run_instrument_check(InstrumentConfig.for_preset("demo", **overrides))
    assert result["passed"] is passes, instrument_section(result)
