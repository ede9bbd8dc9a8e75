"""Model randomisation on the tiny trained Marian: stages re-initialise what they say, on a copy; maps of real methods
change; an input-only map (the random control, built from the pair's id and shape) keeps Spearman 1 and fails."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from agkd.training.triangulation.sanity import (
    FULL_STAGE,
    RANDOMISATION_STAGES,
    fails_sanity,
    randomisation_similarity,
    randomised_teacher,
    row_spearman,
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
    similarity = randomisation_similarity(teacher, method, rows, stages=("decoder_top", FULL_STAGE))
    assert set(similarity) == {"decoder_top", FULL_STAGE}
    assert similarity[FULL_STAGE].shape == (len(rows),)
    assert np.nanmean(similarity[FULL_STAGE]) < 0.99


def test_an_input_only_map_keeps_spearman_one_and_fails(teacher, rows):
    similarity = randomisation_similarity(teacher, "random", rows, stages=(FULL_STAGE,))
    assert np.allclose(similarity[FULL_STAGE], 1.0)
    assert fails_sanity(similarity)
    assert not fails_sanity({FULL_STAGE: np.array([0.1, -0.2, np.nan])})


def test_row_spearman_is_the_mean_over_rows_and_scores_a_flattened_row_zero():
    trained = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [3.0, 2.0, 1.0]])
    randomised = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    assert row_spearman(trained, randomised) == pytest.approx(0.0)  # rows +1 and -1; the trained constant row left out
    assert np.isnan(row_spearman(np.ones((2, 3)), randomised[:2]))
    assert row_spearman(trained[:1], np.zeros((1, 3))) == 0.0  # randomisation flattened the row: no ranking kept
