"""The instrument check: planted maps are right, the default check passes, and a broken instrument fails it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.instrument import (
    EOS_ID,
    INSTRUMENT_FILE,
    MAPS,
    NULL_MAPS,
    ORACLE_MIN_GAIN,
    InstrumentConfig,
    PlantedTask,
    build_task,
    instrument_section,
    main,
    planted_maps,
    run_instrument_check,
    sample_sentences,
    seed_gains,
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
    oracle = planted_maps(task, sentences, "oracle", rng)
    broken = planted_maps(task, sentences, "oracle", rng, broken=True)
    assert all(a.shape == b.shape for a, b in zip(oracle, broken, strict=True))
    assert sum(np.array_equal(a, b) for a, b in zip(oracle, broken, strict=True)) < 10


def test_config_is_checked():
    with pytest.raises(ValueError, match="pass_operators"):
        InstrumentConfig(operators=("replace",))
    with pytest.raises(ValueError, match="injection_operator"):
        InstrumentConfig(operators=("add", "subtract"))


@pytest.fixture(scope="module")
def default_check() -> dict:
    return run_instrument_check(InstrumentConfig())


@pytest.mark.parametrize("operator", ["add", "multiply"])
def test_oracle_gains_on_every_seed(default_check, operator):
    cells = [c for c in default_check["cells"] if c["operator"] == operator and c["map"] == "oracle"]
    assert len(cells) == len(InstrumentConfig().seeds) >= 3
    assert all(seed_gains(cell, ORACLE_MIN_GAIN) for cell in cells), cells
    assert default_check["operators"][operator]["maps"]["oracle"]["gains"]


@pytest.mark.parametrize("operator", ["add", "multiply"])
@pytest.mark.parametrize("kind", NULL_MAPS)
def test_null_maps_do_not_gain(default_check, operator, kind):
    assert not default_check["operators"][operator]["maps"][kind]["gains"]


def test_default_check_passes(default_check):
    assert default_check["passed"] and not default_check["confounds"]
    assert json.loads(json.dumps(default_check))["config"]["seeds"] == [0, 1, 2]
    assert {(c["operator"], c["map"]) for c in default_check["cells"]} == {("none", "none")} | {
        (operator, kind) for operator in ("add", "multiply") for kind in MAPS
    }
    lines = instrument_section(default_check)
    assert lines[0] == "## Instrument check"
    assert any(line.startswith("**The instrument can see a planted alignment**") for line in lines)


def test_broken_instrument_is_not_reported_as_passing():
    """Oracle maps of other sentences (same layout, no information about their own sentence) must fail the check."""
    result = run_instrument_check(InstrumentConfig(seeds=(0,), broken_oracle=True))
    for operator in ("add", "multiply"):
        assert not result["operators"][operator]["maps"]["oracle"]["gains"]
        assert not result["operators"][operator]["passed"]
    assert not result["passed"]
    assert any(
        line.startswith("**The instrument cannot see a planted alignment**") for line in instrument_section(result)
    )


def test_cli_writes_the_check(tmp_path):
    argv = ["--results_dir", str(tmp_path), "--seeds", "0", "--steps", "2", "--operators", "add"]
    assert main([*argv, "--pass_operators", "add", "--train_pairs", "64", "--test_pairs", "16"]) == 0
    result = json.loads((tmp_path / INSTRUMENT_FILE).read_text())
    assert result["config"]["steps"] == 2 and result["passed"] is False  # 2 steps teach nothing
    assert instrument_section(result)[0] == "## Instrument check"
