"""The leak of the `gold` map protocol, as a test: a gradient method's row t is a gradient of p(y_t), so it changes
with the reference token y_t itself (it reveals which source word y_t translates), while an attention row t is
computed from the decoder inputs [start] + y_<t only. Row t = the row of labels[t] (DESIGN.md, map orientation).

A random-weight tiny Marian (tests/tiny_teachers.py) suffices: the property is one of the computation, not of what
the teacher learnt; the fast engine is the one the extraction runs (same maps as Inseq, tests/test_fast_attribution.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agkd.datasets_scripts.attribution.engines import attribute
from agkd.datasets_scripts.attribution.teacher import Teacher
from tests.conftest import toy_pairs

pytest_plugins = ["tests.tiny_teachers"]  # untrained_marian_dir

T = 2  # the reference position changed: neither the first token nor the final </s>


@pytest.fixture(scope="module")
def teacher(untrained_marian_dir):
    torch.set_num_threads(1)
    return Teacher(str(untrained_marian_dir), "de-en", torch.device("cpu"), compat=True)


@pytest.fixture(scope="module")
def rows(teacher):
    """One toy pair and the same pair with only the reference token y_T replaced (the same length)."""
    pair = toy_pairs("de-en", 520, seed=5)[440]
    source_ids, target_ids = teacher.encode(pair["source"], pair["target"])
    assert len(target_ids) > T + 1
    special = set(teacher.tokenizer.all_special_ids)
    other = next(i for i in range(teacher.model.config.vocab_size) if i not in special and i != target_ids[T])
    changed = [*target_ids[:T], other, *target_ids[T + 1 :]]
    base = {**pair, "target_kind": "reference", "source_ids": source_ids}
    return {**base, "target_ids": target_ids}, {**base, "id": pair["id"] + "-changed", "target_ids": changed}


def _maps(teacher, method, rows):
    """Each pair attributed on its own (no padding), by the fast engine."""
    return [np.asarray(attribute("fast", teacher, method, [r], None, 0)[0]["attribution"]) for r in rows]


@pytest.mark.parametrize("method", ["saliency", "layer_gradient_x_activation"])
def test_gradient_rows_see_the_reference_token(teacher, rows, method):
    original, changed = _maps(teacher, method, rows)
    scale = np.abs(original).max()
    assert scale > 0
    np.testing.assert_allclose(changed[:T], original[:T], rtol=1e-5, atol=1e-7 * scale)  # rows of y_<t: unchanged
    assert np.abs(changed[T] - original[T]).max() > 1e-3 * scale  # row t: a gradient of p(y_t), so y_t leaks


def test_attention_rows_see_only_the_prefix(teacher, rows):
    original, changed = _maps(teacher, "attention", rows)
    np.testing.assert_allclose(changed[: T + 1], original[: T + 1], rtol=1e-5, atol=1e-7)  # row t included
    assert np.abs(changed[T + 1] - original[T + 1]).max() > 1e-4  # row t+1 reads y_t as its decoder input
