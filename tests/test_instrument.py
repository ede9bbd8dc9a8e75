"""The verdict's positive control: planted maps are right, the check takes each preset's students' regime, content
passes it and a layout alone does not, and a tiny real run writes its section."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from agkd.datasets_scripts.release_layout import INSTRUMENT_FILE
from agkd.training.evaluation.scoring import TokenStatistics
from agkd.training.presets import PRESETS
from agkd.training.verdict.control import (
    BASELINE,
    CHECK_TASK_SEED,
    CORRUPTION_LEVELS,
    EOS_ID,
    SHUFFLED,
    InstrumentConfig,
    PlantedTask,
    build_task,
    control_seeds,
    corrupted_maps,
    instrument_section,
    judge,
    oracle,
    run_instrument_check,
    sample_sentences,
    shuffled_maps,
    slope_weights,
)
from agkd.training.verdict.design import control_failures
from agkd.training.verdict.instrument import InstrumentArguments, config_of, main

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
    with pytest.raises(ValueError, match="replicates"):
        InstrumentConfig(seeds=(0,))
    demo = InstrumentConfig.for_preset("demo")
    student = PRESETS["demo"].student
    assert (demo.d_model, demo.layers, demo.heads, demo.ffn_dim, demo.dropout) == (
        student.d_model, student.layers, student.heads, student.ffn_dim, student.dropout)
    assert (demo.learning_rate, demo.warmup_steps, demo.batch_size) == (
        student.learning_rate, student.warmup_steps, student.batch_size)
    assert demo.finetune_steps == student.max_steps and (demo.eval_steps, demo.patience) == (
        student.eval_steps, student.patience)
    assert demo.finetune_pairs == PRESETS["demo"].extract.max_pairs["train"]
    assert demo.seeds == tuple(range(3, 3 + len(PRESETS["demo"].seeds)))  # not the seeds the budget was explored on
    assert demo.task_seed == CHECK_TASK_SEED != 0  # nor the planted task
    assert demo.student_init == "warm"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_its_control_in_its_students_regime(name):
    """The first lab run must not stop in its first minutes (the review's H2: lab's 20,000 map pairs against a
    4,000-pair planted corpus raised), and a scratch preset's control trains from scratch."""
    preset = PRESETS[name]
    config = InstrumentConfig.for_preset(name)
    assert config.student_init == preset.student_init
    assert config.finetune_pairs <= config.corpus_pairs
    assert config.d_model == preset.student.d_model and config.finetune_steps == preset.student.max_steps
    assert config.regime()["replicates"] >= 2


def test_a_preset_can_give_its_control_more_replicates_and_planted_pairs(tmp_path):
    """demo-answer's control: 24 replicates on training seeds none of the earlier presets' controls used, scored on
    2,000 planted pairs even when the pipeline names the corpus (whose test split would otherwise set the size)."""
    answer = InstrumentConfig.for_preset("demo-answer")
    assert answer.regime()["replicates"] == 24 and answer.test_pairs == 2000
    earlier = {seed for name in ("demo", "demo-power") for seed in InstrumentConfig.for_preset(name).seeds}
    assert not earlier & set(answer.seeds) and len(set(answer.seeds)) == 24
    assert control_seeds([0, 1], replicates=5) == (3, 4, 5, 6, 7) and control_seeds([0]) == (3, 4)
    args = InstrumentArguments(results_dir=str(tmp_path), preset="demo-answer", corpus=str(tmp_path / "none"),
                               pair="de-en", student_seeds=list(PRESETS["demo-answer"].seeds))
    assert config_of(args).test_pairs == 2000  # the corpus (not even there) is not read for the size
    assert config_of(replace(args, test_pairs=50)).test_pairs == 50  # the command line still wins


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


UNITS = ["warm start 0", "warm start 1", "warm start 2"]


def graded(effect: float, layout: float = 0.0) -> dict[str, float]:
    """Gains over no map: `layout` for any map of the right layout, plus `effect` times the uncorrupted share."""
    gains = {BASELINE: 0.0, SHUFFLED: 0.0}
    return gains | {oracle(q): layout + effect * (1 - q) for q in CORRUPTION_LEVELS}


def test_the_slope_contrast_is_the_least_squares_slope():
    weights = slope_weights()
    assert sum(weights.values()) == pytest.approx(0.0)
    gains = {oracle(q): 0.3 * (1 - q) for q in CORRUPTION_LEVELS}  # gain = 0.3 - 0.3 q: slope -0.3
    assert sum(w * -gains[k] for k, w in weights.items()) == pytest.approx(-0.3)  # NLL = -gain + const


def test_judge_passes_planted_content_and_reports_its_mde():
    result = judge(synthetic(graded(0.3)), UNITS)
    assert result["passed"] and [c["passed"] for c in result["checks"]] == [True, True, True]
    assert all("does not lie" not in c["reason"] for c in result["checks"])  # a passed check says so
    assert 0 < result["mde"] < 0.3
    assert result["content_over_layout"]["mean"] == pytest.approx(0.3, abs=0.01)
    assert result["slope"]["mean"] == pytest.approx(-0.3, abs=0.01)


def test_a_layout_that_helps_without_content_does_not_pass():
    """Built to fool the old rule (true map over its twin, no rise with corruption): every map of the right layout
    gains 0.2 over the twin, whatever sentence it belongs to. Not content: the control fails."""
    result = judge(synthetic(graded(0.0, layout=0.2)), UNITS)
    assert result["levels"][0]["over_shuffled"]["low"] > 0  # the old pass condition holds
    assert not result["passed"]
    failed = {c["name"] for c in result["checks"] if not c["passed"]}
    assert failed == {"content over layout", "graded"}
    assert any("another sentence's map" in reason for reason in control_failures(result))


def test_judge_fails_a_map_it_cannot_see():
    flat = judge(synthetic(graded(0.0)), UNITS)
    assert not flat["passed"] and not any(c["passed"] for c in flat["checks"])


def test_a_tiny_real_check_runs_and_writes_its_section(tmp_path):
    argv = ["--results_dir", str(tmp_path), "--seeds", "0", "1", "--warm_steps", "5", "--finetune_steps", "4"]
    assert main([*argv, "--finetune_pairs", "64", "--corpus_pairs", "128", "--test_pairs", "16"]) == 0
    result = json.loads((tmp_path / INSTRUMENT_FILE).read_text())
    assert result["config"]["finetune_steps"] == 4 and result["config"]["operator"] == "supervise"
    assert result["regime"]["d_model"] == PRESETS["demo"].student.d_model
    assert {(c["seed"], c["map"]) for c in result["cells"]} == {
        (s, k) for s in (0, 1) for k in (BASELINE, SHUFFLED, *map(oracle, CORRUPTION_LEVELS))
    }
    assert len({c["replicate"] for c in result["cells"]}) == 2  # each seed its own warm start: two replicates
    assert result["passed"] is False  # 4 steps teach nothing
    assert {c["best_step"] for c in result["cells"]} <= {4}  # the best validation step's weights, as real students
    assert set(result["by_step"]) == {"4"}
    lines = instrument_section(result)
    assert lines[0].startswith("## Positive control") and "MDE" in "\n".join(lines)
    assert any(line.startswith("**The design cannot see planted alignment content here**") for line in lines)


@pytest.mark.slow
def test_the_demo_regime_sees_planted_content():
    """The demo's check as the pipeline runs it (its students' regime, the check's task and training seeds): the
    design sees planted alignment content (docs/verdict.md)."""
    result = run_instrument_check(InstrumentConfig.for_preset("demo", test_pairs=600))
    assert result["passed"] is True, instrument_section(result)
