"""Deletion/insertion curves and their AOPC on the tiny trained Marian, where the right order is measured (an oracle
map of single-piece deletion effects), and the Hub metric module that scores them, loaded offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agkd.training.metrics.attribution_aopc.attribution_aopc import aopc_scores
from agkd.training.triangulation.faithfulness import (
    FRACTIONS,
    aopc,
    deletion_insertion_curves,
    n_top,
    random_orders,
    replacement_id,
    top_order,
)
from tests.tiny_teachers import encoded_test_rows

pytest_plugins = ["tests.tiny_teachers"]  # the tiny_marian_teacher fixture

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def teacher(tiny_marian_teacher):
    return tiny_marian_teacher


@pytest.fixture(scope="module")
def rows(teacher):
    return encoded_test_rows(teacher, 30)


def oracle_maps(teacher, rows) -> list[np.ndarray]:
    """[T][S]: the drop of log p(y_t) when source piece s alone is replaced (0 for `</s>`): the order that a
    one-piece deletion curve rewards, measured on the model itself."""
    unk = replacement_id(teacher)
    maps = []
    for r in rows:
        src, tgt = r["source_ids"], r["target_ids"]
        variants = [src] + [src[:s] + [unk] + src[s + 1 :] for s in range(len(src) - 1)]
        logp = np.log(np.stack(teacher.probabilities(variants, [tgt] * len(variants))))
        amap = np.zeros((len(tgt), len(src)))
        amap[:, :-1] = (logp[0][None] - logp[1:]).T
        maps.append(amap)
    return maps


@pytest.fixture(scope="module")
def oracle_curves(teacher, rows):
    return deletion_insertion_curves(teacher, rows, oracle_maps(teacher, rows))


def test_the_oracle_order_beats_its_reverse_and_random_scores_about_zero(teacher, rows, oracle_curves):
    oracle = aopc(oracle_curves)
    maps = oracle_maps(teacher, rows)
    reverse = aopc(deletion_insertion_curves(teacher, rows, [-m for m in maps], random_curves=oracle_curves))
    assert oracle["deletion"] > 0.5 > reverse["deletion"]
    assert oracle["deletion"] > reverse["deletion"] + 1.0
    assert oracle["insertion"] > reverse["insertion"]
    # a map that is itself a random order (other draws than the yardstick's) is as good as random: about 0
    random_maps = [
        random_orders(r["id"], len(m), m.shape[1], seed=99).argsort(axis=1) for r, m in zip(rows, maps, strict=True)
    ]
    chance = aopc(deletion_insertion_curves(teacher, rows, random_maps, random_curves=oracle_curves))
    for key in ("deletion", "insertion"):
        values = np.array(chance[f"{key}_per_sentence"])
        assert abs(values.mean()) < 3 * values.std(ddof=1) / np.sqrt(len(values)) + 0.05, key
        assert abs(values.mean()) < 0.2 * oracle["deletion"]


def test_curves_shape_full_and_empty_sources(teacher, rows, oracle_curves):
    curve, row = oracle_curves[0], rows[0]
    n_target = len(row["target_ids"])
    assert len(curve["full"]) == len(curve["empty"]) == n_target
    for name in ("deletion", "insertion", "random_deletion", "random_insertion"):
        assert np.asarray(curve[name]).shape == (n_target, len(FRACTIONS))
    assert np.allclose(curve["full"], np.log(teacher.probabilities([row["source_ids"]], [row["target_ids"]])[0]))
    unk = replacement_id(teacher)
    empty = [unk] * (len(row["source_ids"]) - 1) + [row["source_ids"][-1]]  # `</s>` kept, length kept
    assert np.allclose(curve["empty"], np.log(teacher.probabilities([empty], [row["target_ids"]])[0]))


def test_random_orders_are_seeded_per_sentence_and_ties_keep_source_order():
    assert np.array_equal(random_orders("a", 3, 5, 0), random_orders("a", 3, 5, 0))
    assert not np.array_equal(random_orders("a", 3, 5, 0), random_orders("b", 3, 5, 0))
    assert sorted(random_orders("a", 3, 5, 0)[1]) == list(range(5))
    assert top_order(np.array([0.5, 1.0, 0.5, 1.0])).tolist() == [1, 3, 0, 2]
    assert [n_top(k, 7) for k in FRACTIONS] == [1, 2, 3, 4]
    assert n_top(0.3, 10) == 3


def test_the_hub_module_loads_offline_and_matches_the_function(oracle_curves, monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = evaluate.load(str(REPO / "training" / "metrics" / "attribution_aopc"))
    names = ("full", "empty", "deletion", "insertion", "random_deletion", "random_insertion")
    result = module.compute(**{name: [c[name] for c in oracle_curves] for name in names})
    expected = aopc(oracle_curves)
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        assert np.allclose(result[key], value, rtol=1e-12, atol=0)


def test_aopc_signs_higher_is_more_faithful():
    # the map's top-1 removed costs 3 nats, a random piece 1 nat; keeping only the top-1 loses 0.5, a random one 2
    scores = aopc_scores(
        full=[[-1.0]], empty=[[-5.0]], deletion=[[[-4.0]]], insertion=[[[-1.5]]],
        random_deletion=[[[-2.0]]], random_insertion=[[[-3.0]]],
    )
    assert scores["deletion"] == 2.0 and scores["insertion"] == 1.5 and scores["source_effect"] == 4.0
    with pytest.raises(ValueError):
        aopc_scores(full=[[-1.0, -1.0]], empty=[[-5.0, -5.0]], deletion=[[[-4.0]]], insertion=[[[-1.5]]],
                    random_deletion=[[[-2.0]]], random_insertion=[[[-3.0]]])
