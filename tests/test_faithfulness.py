"""Deletion/insertion curves and their AOPC on the tiny trained Marian, where the right order is measured (an oracle
map of single-piece deletion effects), the two removals (`<unk>`, masked out of attention), special tokens on the
tiny mBART (its language codes), and the Hub metric module that scores them, loaded offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agkd.training.metrics.attribution_aopc.attribution_aopc import aopc_scores
from agkd.training.triangulation.faithfulness import (
    FRACTIONS,
    aopc,
    deletion_insertion_curves,
    evaluation_subset,
    n_top,
    random_orders,
    removable_positions,
    replacement_id,
    special_ids,
    top_order,
)
from tests.tiny_teachers import encoded_test_rows

pytest_plugins = ["tests.tiny_teachers"]  # the tiny_marian_teacher and tiny_mbart_dir fixtures

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
    # log_softmax against the log of a float32 softmax: equal to float32 precision of p (absolute, near p = 1)
    close = {"rtol": 0, "atol": 1e-5}
    plain = np.log(teacher.probabilities([row["source_ids"]], [row["target_ids"]])[0])
    assert np.allclose(curve["full"], plain, **close)
    unk = replacement_id(teacher)
    empty = [unk] * (len(row["source_ids"]) - 1) + [row["source_ids"][-1]]  # `</s>` kept, length kept
    assert np.allclose(curve["empty"], np.log(teacher.probabilities([empty], [row["target_ids"]])[0]), **close)


def test_random_orders_are_seeded_per_sentence_and_ties_follow_the_rows_random_order():
    assert np.array_equal(random_orders("a", 3, 5, 0), random_orders("a", 3, 5, 0))
    assert not np.array_equal(random_orders("a", 3, 5, 0), random_orders("b", 3, 5, 0))
    assert sorted(random_orders("a", 3, 5, 0)[1]) == list(range(5))
    # ties go in the order of the tie order (2 first, then 0, 3, 1), not in source order
    assert top_order(np.array([0.5, 1.0, 0.5, 1.0]), np.array([2, 0, 3, 1])).tolist() == [3, 1, 2, 0]
    assert top_order(np.zeros(4), np.array([2, 0, 3, 1])).tolist() == [2, 0, 3, 1]
    assert [n_top(k, 7) for k in FRACTIONS] == [1, 2, 3, 4]
    assert n_top(0.3, 10) == 3


def test_a_constant_map_scores_zero(teacher, rows, oracle_curves):
    """Review L1: ties broken by source order gave the uniform control a positional prior (+0.156 deletion, -0.349
    insertion in the demo); broken by the row's random order, a constant map is the random order itself."""
    uniform = aopc(deletion_insertion_curves(teacher, rows, [np.ones((len(r["target_ids"]), len(r["source_ids"])))
                                                              for r in rows], random_curves=oracle_curves))
    for key in ("deletion", "insertion"):
        assert np.allclose(uniform[f"{key}_per_sentence"], 0.0, atol=1e-4), key


def test_subsets_are_seeded_samples_in_evaluation_order():
    """Review L2: the AOPC and sanity pairs are a seeded sample of the evaluation pairs, not the first N."""
    subset = evaluation_subset(100, 10, seed=0)
    assert subset == sorted(subset) and len(set(subset)) == 10 and subset != list(range(10))
    assert subset == evaluation_subset(100, 10, seed=0) != evaluation_subset(100, 10, seed=1)
    assert evaluation_subset(5, 10, seed=0) == evaluation_subset(5, None, seed=0) == list(range(5))


def _direct_log_probs(teacher, source_ids, mask, target_ids) -> np.ndarray:
    """log p(y_t) of one pair by a plain forward pass with the given source attention mask."""
    import torch

    model = teacher.model
    start = model.config.decoder_start_token_id
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([source_ids]), attention_mask=torch.tensor([mask]),
                       decoder_input_ids=torch.tensor([[start, *target_ids[:-1]]])).logits[0]
    return logits.double().log_softmax(-1)[range(len(target_ids)), target_ids].numpy()


def test_the_mask_removal_masks_attention_and_keeps_ids_and_positions(teacher, rows, oracle_curves):
    """Review M4: the second removal sets the attention mask of the removed pieces to 0 (ids and positions kept)."""
    maps = oracle_maps(teacher, rows[:3])
    masked = deletion_insertion_curves(teacher, rows[:3], maps, removal="mask")
    for row, amap, curve, unk_curve in zip(rows[:3], maps, masked, oracle_curves, strict=False):
        src, tgt = row["source_ids"], row["target_ids"]
        everything = [0] * (len(src) - 1) + [1]  # `</s>` kept
        assert np.allclose(curve["empty"], _direct_log_probs(teacher, src, everything, tgt), atol=1e-4)
        assert np.allclose(curve["full"], _direct_log_probs(teacher, src, [1] * len(src), tgt), atol=1e-4)
        assert not np.allclose(curve["empty"], unk_curve["empty"], atol=1e-3)  # not the `<unk>` removal
        t = 0
        order = top_order(amap[t, :-1], random_orders(row["id"], len(tgt), len(src) - 1, 0)[t])
        top = set(order[: n_top(FRACTIONS[0], len(src) - 1)].tolist())
        top_masked = [0 if s in top else 1 for s in range(len(src))]
        assert curve["deletion"][t][0] == pytest.approx(_direct_log_probs(teacher, src, top_masked, tgt)[t], abs=1e-4)
    assert aopc(masked)["deletion"] > 0.5  # the oracle order is faithful under this removal too


@pytest.fixture(scope="module")
def mbart_teacher(tiny_mbart_dir):
    from agkd.datasets_scripts.attribution.teacher import Teacher

    return Teacher(str(tiny_mbart_dir), "de-en", "cpu", compat=True)


def test_special_tokens_are_never_removed_nor_scored(mbart_teacher):
    """Reviews M9 and L3: mBART's source language code and `</s>` are never removed, whatever the map says of them,
    and the rows whose label is the forced language code or `</s>` are left out of the AOPC means."""
    teacher = mbart_teacher
    rows = encoded_test_rows(teacher, 3)
    special = special_ids(teacher)
    code = teacher.tokenizer.convert_tokens_to_ids("de_DE")
    for row in rows:
        assert row["source_ids"][0] == code and row["target_ids"][0] == teacher.tokenizer.convert_tokens_to_ids("en_XX")
        assert removable_positions(row["source_ids"], special) == list(range(1, len(row["source_ids"]) - 1))
    rng = np.random.default_rng(0)
    maps = [rng.random((len(r["target_ids"]), len(r["source_ids"]))) for r in rows]
    loud = [np.concatenate([np.full((len(m), 1), 100.0), m[:, 1:]], axis=1) for m in maps]  # the code on top
    quiet = [np.concatenate([np.full((len(m), 1), -100.0), m[:, 1:]], axis=1) for m in maps]
    for removal in ("unk", "mask"):
        first = deletion_insertion_curves(teacher, rows, loud, removal=removal)
        second = deletion_insertion_curves(teacher, rows, quiet, removal=removal, random_curves=first)
        for a, b in zip(first, second, strict=True):
            assert a["scored"][0] is False and a["scored"][-1] is False and all(a["scored"][1:-1])
            for name in ("deletion", "insertion"):
                # equal up to float32 noise of other batch compositions
                assert np.allclose(a[name], b[name], rtol=0, atol=1e-5, equal_nan=True), (removal, name)
                assert np.isnan(a[name][0]).all() and np.isnan(a[name][-1]).all()
        scores = aopc(first)
        expected = [float(np.mean((np.asarray(c["random_deletion"]) - np.asarray(c["deletion"]))[1:-1]))
                    for c in first]
        assert np.allclose(scores["deletion_per_sentence"], expected)


def test_the_hub_module_loads_offline_and_matches_the_function(oracle_curves, monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = evaluate.load(str(REPO / "training" / "metrics" / "attribution_aopc"))
    names = ("full", "empty", "deletion", "insertion", "random_deletion", "random_insertion")
    result = module.compute(**{name: [c[name] for c in oracle_curves] for name in names},
                            scored=[c["scored"] for c in oracle_curves])
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
    # a row left out of `scored` (a special label) does not move the means, even with NaN curves
    nan = float("nan")
    masked = aopc_scores(full=[[-1.0, nan]], empty=[[-5.0, nan]], deletion=[[[-4.0], [nan]]],
                         insertion=[[[-1.5], [nan]]], random_deletion=[[[-2.0], [nan]]],
                         random_insertion=[[[-3.0], [nan]]], scored=[[True, False]])
    assert masked["deletion"] == 2.0 and masked["insertion"] == 1.5 and masked["source_effect"] == 4.0


def test_aopc_runs_on_the_teachers_own_translations_beside_the_reference(teacher, rows):
    """Review M3: the faithfulness part also scores the `.teacher` configs (forced on the teacher's own greedy
    translation, y_t its own prediction), beside the reference ones; where y differs, so do the figures."""
    from agkd.datasets_scripts.attribution.engines import attribute
    from agkd.training.triangulation.triangulate import TriangulateArguments, faithfulness_part, table_figures

    # the tiny teacher translates its toy test pairs exactly: every other pair gets another pair's reference, so
    # there the reference differs from what the teacher predicts (as for a real teacher of BLEU 10)
    swapped = []
    for k, row in enumerate(rows[:8]):
        target = rows[k + 1]["target"] if k % 2 == 0 else row["target"]
        source_ids, target_ids = teacher.encode(row["source"], target)
        swapped.append({**row, "target": target, "source_ids": source_ids, "target_ids": target_ids})
    rows = swapped
    own = []
    for row, target in zip(rows, teacher.translate([r["source"] for r in rows], 48, 1), strict=True):
        source_ids, target_ids = teacher.encode(row["source"], target)
        own.append({**row, "target": target, "target_kind": "teacher", "source_ids": source_ids,
                    "target_ids": target_ids})
    differs = [r["target_ids"] != o["target_ids"] for r, o in zip(rows, own, strict=True)]
    assert any(differs) and not all(differs)
    args = TriangulateArguments(teacher="tiny", pair="de-en", results_dir="unused", faithfulness_removals=["unk"])
    part = faithfulness_part(args, teacher, {"attention": attribute("fast", teacher, "attention", rows)},
                             {"attention": attribute("fast", teacher, "attention", own)})
    assert part["target_kinds"] == ["reference", "teacher"] and part["positions"]["teacher"] == list(range(8))
    reference = part["readings"]["reference"]["unk"]["attention"]["deletion_per_sentence"]
    teachers = part["readings"]["teacher"]["unk"]["attention"]["deletion_per_sentence"]
    for k, differ in enumerate(differs):
        assert (abs(reference[k] - teachers[k]) > 1e-6) == differ, k
    row = table_figures({"names": ["attention"], "faithfulness": part})["attention"]
    assert row["aopc_deletion"] == part["configs"]["attention"]["deletion"]
    assert row["aopc_deletion_teacher"] == part["readings"]["teacher"]["unk"]["attention"]["deletion"]
