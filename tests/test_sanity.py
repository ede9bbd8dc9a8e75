"""Model randomisation on the tiny trained Marian: stages re-initialise what they say, on a copy; maps of real methods
change; two negative controls fail at the decision stage: an input-only map (the random control, built from the pair's
id and shape) and a map of the learned input embeddings only (their norms); an undefined or mostly degenerate
similarity is undetermined, never a pass; the maps come from the engine extraction would use."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from agkd.training.triangulation import sanity
from agkd.training.triangulation.sanity import (
    DECISION_STAGE,
    FAILS,
    FULL_STAGE,
    PASSES,
    RANDOMISATION_STAGES,
    UNDETERMINED,
    Randomisation,
    compare_maps,
    randomisation_similarity,
    randomised_teacher,
    row_spearman,
    sanity_verdict,
)
from tests.tiny_teachers import encoded_test_rows

pytest_plugins = ["tests.tiny_teachers"]  # the tiny_marian_teacher fixture


@pytest.fixture(scope="module")
def teacher(tiny_marian_teacher):
    return tiny_marian_teacher


@pytest.fixture(scope="module")
def rows(teacher):
    return encoded_test_rows(teacher, 6)


def _changed(before: dict, model) -> set[str]:
    return {name for name, p in model.state_dict().items() if not torch.equal(before[name], p)}


def test_stages_reinitialise_a_copy_cumulatively(teacher):
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    changed = {
        stage: _changed(before, randomised_teacher(teacher, stage, seed=0).model) for stage in RANDOMISATION_STAGES
    }
    assert _changed(before, teacher.model) == set()  # the trained teacher is untouched
    last = f"model.decoder.layers.{teacher.model.config.decoder_layers - 1}."
    assert changed["decoder_top"] and all(name.startswith(last) for name in changed["decoder_top"])
    assert all(name.startswith("model.decoder.layers.") for name in changed["decoder"])
    assert any(name.startswith("model.encoder.layers.") for name in changed["decoder+encoder"])
    assert not any("embed_tokens" in name or "shared" in name for name in changed["decoder+encoder"])
    assert "model.shared.weight" in changed[FULL_STAGE]
    for smaller, larger in pairwise(RANDOMISATION_STAGES):
        assert changed[smaller] < changed[larger]
    seeded = randomised_teacher(teacher, "decoder", seed=0).model.state_dict()
    again = randomised_teacher(teacher, "decoder", seed=0).model.state_dict()
    assert all(torch.equal(seeded[k], again[k]) for k in seeded)


@pytest.mark.parametrize("method", ["attention", "saliency"])
def test_randomisation_changes_the_maps_of_methods(teacher, rows, method):
    result = randomisation_similarity(teacher, method, rows, stages=("decoder_top", DECISION_STAGE))
    assert set(result.similarity) == set(result.degenerate) == {"decoder_top", DECISION_STAGE}
    assert result.similarity[DECISION_STAGE].shape == (len(rows),)
    assert result.mean(DECISION_STAGE) < 0.99
    assert result.degenerate_share(DECISION_STAGE) == 0.0
    if method == "attention":  # saliency sits near the threshold on this 2-layer teacher: not decided here
        assert sanity_verdict(result) == PASSES


def test_maps_that_randomisation_flattens_are_undetermined(teacher, rows):
    """Value zeroing's maps of a randomised teacher fall under its threshold (every row constant): that used to score
    0 and pass."""
    result = randomisation_similarity(teacher, "value_zeroing", rows, stages=(DECISION_STAGE,))
    assert result.degenerate_share(DECISION_STAGE) > 0.5
    assert sanity_verdict(result) == UNDETERMINED


def test_an_input_only_map_keeps_spearman_one_and_fails(teacher, rows):
    result = randomisation_similarity(teacher, "random", rows, stages=(DECISION_STAGE,))
    assert np.allclose(result.similarity[DECISION_STAGE], 1.0)
    assert sanity_verdict(result) == FAILS


def _embedding_norm_maps(teacher, rows) -> list[np.ndarray]:
    """[T][S]: every row the norm of each source piece's learned input embedding (a function of the embeddings only,
    not of the computation the teacher learnt)."""
    embeddings = teacher.model.get_input_embeddings().weight.detach()
    return [np.tile(embeddings[r["source_ids"]].norm(dim=-1).numpy(), (len(r["target_ids"]), 1)) for r in rows]


def test_a_map_of_the_input_embeddings_only_fails_at_the_decision_stage(teacher, rows):
    """Review M6: `full` randomisation re-draws the input embeddings, so an embedding-norm map changes there and
    passed; at `decoder+encoder` (every layer random, the embeddings kept) it stays the same and fails."""
    trained = _embedding_norm_maps(teacher, rows)
    randomised = {stage: _embedding_norm_maps(randomised_teacher(teacher, stage, seed=0), rows)
                  for stage in (DECISION_STAGE, FULL_STAGE)}
    result = compare_maps(trained, randomised)
    assert np.allclose(result.similarity[DECISION_STAGE], 1.0)
    assert result.mean(FULL_STAGE) < 0.5  # what deciding at `full` would have read: a pass
    assert sanity_verdict(result) == FAILS


def test_an_undefined_or_degenerate_similarity_is_undetermined_not_a_pass():
    """Review M5: an all-NaN similarity (every trained row constant) and maps that randomisation makes constant (as
    value zeroing's) passed by rule; the verdict is undetermined, and a decision stage not run decides nothing."""
    varied = [np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])] * 4
    constant = [np.zeros((2, 3))] * 4
    all_nan = compare_maps(constant, {DECISION_STAGE: varied})
    assert np.isnan(all_nan.similarity[DECISION_STAGE]).all()
    assert sanity_verdict(all_nan) == UNDETERMINED
    flattened = compare_maps(varied, {DECISION_STAGE: constant})
    assert flattened.degenerate_share(DECISION_STAGE) == 1.0
    assert sanity_verdict(flattened) == UNDETERMINED
    nan = Randomisation({DECISION_STAGE: np.full(3, np.nan)}, {DECISION_STAGE: np.zeros(3)}, np.full(3, 2))
    assert sanity_verdict(nan) == UNDETERMINED
    unchanged = compare_maps(varied, {FULL_STAGE: varied})
    assert unchanged.mean(FULL_STAGE) == 1.0 and sanity_verdict(unchanged) == UNDETERMINED
    # a minority of degenerate rows is reported and the rest decides
    mixed = compare_maps(varied, {DECISION_STAGE: [np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])] * 4})
    assert mixed.degenerate_share(DECISION_STAGE) == 0.5 and sanity_verdict(mixed) == FAILS


def test_maps_come_from_the_engine_extraction_would_use(teacher, rows, monkeypatch):
    """Review M9: the fast engine's refusal of a method on a teacher sends its maps to Inseq, here as in extraction."""
    from agkd.datasets_scripts.attribution import fast_engine

    engines = []

    def fake_attribute(engine, teacher, method, rows, **kwargs):
        engines.append(engine)
        return [{"attribution": np.ones((len(r["target_ids"]), len(r["source_ids"]))).tolist()} for r in rows]

    monkeypatch.setattr(sanity, "attribute", fake_attribute)
    monkeypatch.setattr(fast_engine, "refusal", lambda model, method: "refused in this test")
    randomisation_similarity(teacher, "saliency", rows[:1], stages=(DECISION_STAGE,), engine="fast")
    assert engines == ["inseq", "inseq"]


def test_row_spearman_is_the_mean_over_rows_and_leaves_degenerate_rows_out():
    trained = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [3.0, 2.0, 1.0]])
    randomised = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    assert row_spearman(trained, randomised) == pytest.approx(0.0)  # rows +1 and -1; the trained constant row left out
    assert np.isnan(row_spearman(np.ones((2, 3)), randomised[:2]))
    assert np.isnan(row_spearman(trained[:1], np.zeros((1, 3))))  # randomisation flattened the row: nothing to compare
