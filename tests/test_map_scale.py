"""The raw map scale recorded per split (`attribution_card.map_scale`) and shown in the dataset card."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agkd.datasets_scripts import attribution_card as ac
from agkd.datasets_scripts import extract_attributions as ex

pytest_plugins = ["tests.tiny_teachers"]  # the tiny_marian_dir fixture


def test_one_hot_row_has_entropy_zero_and_max_one():
    scale = ac.map_scale([[[0.0, 1.0, 0.0]]])
    assert scale["rows"] == 1
    assert scale["row_entropy"]["q50"] == 0.0
    assert scale["row_max_abs"]["q50"] == 1.0 and scale["row_sum"]["q50"] == 1.0
    assert (scale["min"], scale["max"], scale["share_negative"]) == (0.0, 1.0, 0.0)


def test_uniform_rows_have_entropy_one_and_sum_one():
    scale = ac.map_scale([np.full((3, 4), 0.25, dtype=np.float32)])
    assert scale["rows"] == 3
    for q in ("q05", "q25", "q50", "q75", "q95"):
        assert scale["row_sum"][q] == scale["row_l1"][q] == 1.0
        assert scale["row_entropy"][q] == 1.0
        assert scale["row_max_abs"][q] == 0.25


def test_signed_rows_give_share_negative_l1_and_quantiles_over_all_maps():
    signed = [[-1.0, 2.0, -3.0, 2.0]]  # sum 0, L1 8, max |A| 3, p = (1, 2, 3, 2) / 8
    p = np.array([1, 2, 3, 2]) / 8
    entropy = float(-(p * np.log(p)).sum() / np.log(4))
    scale = ac.map_scale([signed, np.array([[0.5, 0.5]]), [[7.0]]])  # the one-column row has no entropy
    assert scale["rows"] == 3
    assert scale["min"] == -3.0 and scale["max"] == 7.0
    assert scale["share_negative"] == pytest.approx(2 / 7, rel=1e-3)
    assert scale["row_l1"]["q50"] == 7.0 and scale["row_l1"]["q95"] == pytest.approx(7.9)  # linear interpolation
    assert scale["row_sum"]["q05"] == pytest.approx(0.1)
    assert scale["row_entropy"]["q50"] == pytest.approx((entropy + 1) / 2, rel=1e-3)
    assert scale["row_entropy"]["q05"] == pytest.approx(entropy + 0.05 * (1 - entropy), rel=1e-3)


def test_rounding_and_empty_input():
    scale = ac.map_scale([[[1.23456e-6, 0.0]]])
    assert scale["max"] == 1.235e-6
    json.dumps(scale, allow_nan=False)
    empty = ac.map_scale([])
    assert empty["rows"] == 0 and empty["min"] is None and empty["row_sum"]["q50"] is None


def test_parquet_reader_matches_map_scale(tmp_path):
    import datasets

    maps = [np.arange(6, dtype=np.float32).reshape(2, 3) - 2, np.eye(4, 5, dtype=np.float32)]
    path = tmp_path / "maps.parquet"
    attribution = datasets.Features({"attribution": datasets.Sequence(datasets.Sequence(datasets.Value("float32")))})
    datasets.Dataset.from_dict({"attribution": [m.tolist() for m in maps]}, features=attribution).to_parquet(path)
    assert ac.parquet_map_scale(path, batch_size=1) == ac.map_scale(maps)


def _meta(splits: dict) -> dict:
    return {
        "teacher": {"name": "marian", "path": "t"},
        "target_kind": "reference",
        "method": "saliency",
        "aggregation": "a",
        "versions": {"inseq": "0.7.1"},
        "splits": splits,
    }


def test_card_shows_scale_and_renders_older_meta_without_it(tmp_path):
    scale = ac.map_scale([[[0.0, 1.0e-6, -2.0e-6, 0.0]]])
    counts = {"rows": 1, "skipped_too_long": 0, "max_prob_check": 1e-6}
    metas = {
        "marian.de-en.saliency": _meta(
            {"test": {**counts, "scale": {**scale, "max": 9.0}}, "train": {**counts, "scale": scale}}
        ),
        "marian.de-en.attention": _meta({"test": counts}),  # written before `scale` existed
    }
    for name, meta in metas.items():
        (tmp_path / "meta").mkdir(exist_ok=True)
        (tmp_path / "meta" / f"{name}.json").write_text(json.dumps(meta))
    card = ac.write_dataset_card(tmp_path).read_text()
    assert "## Raw map scale" in card and "map_normalization" in card
    assert "| `marian.de-en.saliency` | train | 3e-06 | 2e-06 | 0.459 | -2e-06 | 1e-06 | 0.25 |" in card
    assert "| `marian.de-en.attention` | test | - | - | - | - | - | - |" in card


def test_extraction_records_scale_per_split(tiny_marian_dir, toy_corpus_dir, tmp_path):
    out = tmp_path / "attr"
    argv = ["--teacher", str(tiny_marian_dir), "--corpus", str(toy_corpus_dir), "--output_dir", str(out)]
    argv += ["--splits", "test", "validation", "--limit", "3", "--methods", "attention", "uniform"]
    assert ex.main([*argv, "--engine", "fast", "--num_threads", "1"]) == 0
    for method in ("attention", "uniform"):
        meta = json.loads((out / "meta" / f"marian.de-en.{method}.json").read_text())
        for split in ("test", "validation"):
            scale = meta["splits"][split]["scale"]
            assert scale["rows"] > 3 and scale["share_negative"] == 0.0
            assert scale["row_sum"]["q50"] == pytest.approx(1.0, abs=1e-3)  # attention rows are softmax averages
    uniform = json.loads((out / "meta" / "marian.de-en.uniform.json").read_text())["splits"]["test"]["scale"]
    assert uniform["row_sum"]["q05"] == uniform["row_sum"]["q95"] == 1.0
    assert uniform["row_entropy"]["q05"] == uniform["row_entropy"]["q95"] == 1.0
    card = (out / "README.md").read_text()
    assert "| `marian.de-en.uniform` | test | 1 | " in card  # no train split extracted: the first split (sorted)
