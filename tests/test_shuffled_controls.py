"""Per-method shuffled controls (`<method>-shuffled`): the method's own stored maps with each target row permuted over
the source positions, built by `agkd extract` from the method's config in the same folder, without the teacher."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from agkd.datasets_scripts import extract_attributions as ex
from agkd.datasets_scripts.attribution.configs import config_name
from agkd.datasets_scripts.attribution.methods import (
    CONTROLS,
    METHODS,
    SHUFFLED_CONTROLS,
    resolve,
    shuffled_control,
    shuffled_map,
    shuffled_source,
)
from agkd.datasets_scripts.release_layout import maps_version, split_path

pytest_plugins = ["tests.tiny_teachers"]  # tiny_marian_dir

SOURCE, CONTROL = "saliency", "saliency-shuffled"


def _run(teacher, corpus, out, *extra) -> int:
    argv = ["--teacher", teacher, "--corpus", corpus, "--output_dir", out, "--pair", "de-en", "--num_threads", 1]
    argv += ["--splits", "test", "validation", "--engine", "fast"]
    return ex.main([*map(str, argv), *map(str, extra)])


def _rows(out, method, split="test") -> list[dict]:
    return pq.read_table(split_path(out, config_name("marian", "de-en", method), split)).to_pylist()


def _meta(out, method) -> dict:
    return json.loads((out / "meta" / f"{config_name('marian', 'de-en', method)}.json").read_text())


@pytest.fixture(scope="module")
def extracted(tiny_marian_dir, toy_corpus_dir, tmp_path_factory):
    """saliency and its shuffled control in one run (the control is built after its method)."""
    out = tmp_path_factory.mktemp("attr-shuffled")
    assert _run(tiny_marian_dir, toy_corpus_dir, out, "--limit", 4, "--methods", SOURCE, CONTROL) == 0
    return out


def test_naming_registry():
    assert shuffled_control("saliency") == "saliency-shuffled" and shuffled_source("saliency-shuffled") == "saliency"
    assert shuffled_source("saliency") is None and shuffled_source("random-shuffled") is None
    assert shuffled_source("uniform") is None
    assert SHUFFLED_CONTROLS == tuple(f"{m}-shuffled" for m in METHODS)
    assert config_name("marian", "de-en", shuffled_control("saliency")) == "marian.de-en.saliency-shuffled"
    assert resolve(["attention-shuffled", "saliency"]) == ["attention-shuffled", "saliency"]
    assert resolve(None) == [*METHODS, *CONTROLS, *SHUFFLED_CONTROLS]  # shuffled last: built from the methods' maps
    with pytest.raises(ValueError, match="unknown"):
        resolve(["uniform-shuffled"])
    with pytest.raises(ValueError, match="not a method"):
        shuffled_control("random")


def test_shuffled_map_permutes_each_row_deterministically():
    amap = np.array([[0, 0, 1], [3, 1, 2], [5, 5, 5], [0.5, 0.25, 0.125]], dtype=np.float32)
    a, b = shuffled_map(amap, "x", "saliency"), shuffled_map(amap.tolist(), "x", "saliency")
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert np.array_equal(np.sort(a, axis=1), np.sort(amap, axis=1))
    assert all(not np.array_equal(a[t], amap[t]) for t in (0, 1, 3)) and np.array_equal(a[2], amap[2])
    # seeded by (control, id, t): another id or method draws other permutations (over many rows, surely some)
    wide = np.tile(np.arange(8, dtype=np.float32), (6, 1))
    assert not np.array_equal(shuffled_map(wide, "x", "saliency"), shuffled_map(wide, "y", "saliency"))
    assert not np.array_equal(shuffled_map(wide, "x", "saliency"), shuffled_map(wide, "x", "attention"))


def test_rows_are_the_sources_rows_permuted(extracted):
    for split in ("test", "validation"):
        source, control = _rows(extracted, SOURCE, split), _rows(extracted, CONTROL, split)
        assert len(source) == len(control) == 4
        for s, c in zip(source, control, strict=True):
            assert {k: v for k, v in s.items() if k != "attribution"} == {
                k: v for k, v in c.items() if k != "attribution"
            }
            a, b = np.asarray(s["attribution"], dtype=np.float32), np.asarray(c["attribution"], dtype=np.float32)
            assert a.shape == b.shape
            assert np.array_equal(np.sort(a, axis=1), np.sort(b, axis=1))  # same values per row, exactly
            for t in range(a.shape[0]):
                if len(np.unique(a[t])) >= 2:
                    assert not np.array_equal(a[t], b[t]), (s["id"], t)


def test_meta_card_and_scale(extracted):
    meta, source = _meta(extracted, CONTROL), _meta(extracted, SOURCE)
    assert meta["method"] == CONTROL and meta["kind"] == "control"
    assert "shuffled control of saliency" in meta["description"]
    src_config = config_name("marian", "de-en", SOURCE)
    assert meta["shuffled_from"] == {
        "method": SOURCE, "config": src_config, "maps_version": maps_version(extracted, src_config)
    }
    for split in ("test", "validation"):
        fp = meta["splits"][split]["fingerprint"]
        assert fp["source_fingerprint"] == source["splits"][split]["fingerprint"]
        got, want = meta["splits"][split]["scale"], source["splits"][split]["scale"]
        for stat in ("row_sum", "row_l1", "row_max_abs"):  # per-row statistics do not see the order
            assert got[stat] == pytest.approx(want[stat], rel=1e-3), stat
        assert got["row_entropy"] == pytest.approx(want["row_entropy"], rel=1e-3)
        assert (got["min"], got["max"], got["rows"]) == (want["min"], want["max"], want["rows"])
    card = (extracted / "README.md").read_text()
    assert "config_name: marian.de-en.saliency-shuffled" in card and "`<method>-shuffled`" in card
    # the tiny teacher records no scores: it was scored at extraction, and the record follows its maps
    assert source["teacher_quality"]["source"] == "measured at extraction" and source["teacher_quality"]["passes"]
    assert meta["teacher_quality"] == source["teacher_quality"]
    assert "## Teacher quality" in card and "measured at extraction" in card


def test_built_without_the_teacher_skipped_when_done_and_deterministic(extracted, tmp_path, monkeypatch):
    def no_teacher(*args, **kwargs):
        raise AssertionError("a shuffled control must not load the teacher")

    monkeypatch.setattr(ex, "Teacher", no_teacher)
    monkeypatch.setattr(ex, "load_config", no_teacher)
    before = _meta(extracted, CONTROL)
    assert _run(extracted.parent / "unused-teacher", "unused-corpus", extracted, "--teacher_name", "marian",
                "--methods", CONTROL) == 0
    assert _meta(extracted, CONTROL) == before  # finished: skipped, not rebuilt
    # a second folder with the same source maps builds identical maps
    copy = tmp_path / "copy"
    (copy / "meta").mkdir(parents=True)
    source_meta = f"{config_name('marian', 'de-en', SOURCE)}.json"
    shutil.copy(extracted / "meta" / source_meta, copy / "meta" / source_meta)
    shutil.copytree(extracted / config_name("marian", "de-en", SOURCE), copy / config_name("marian", "de-en", SOURCE))
    assert _run("unused", "unused", copy, "--teacher_name", "marian", "--methods", CONTROL) == 0
    for split in ("test", "validation"):
        assert _rows(copy, CONTROL, split) == _rows(extracted, CONTROL, split)


def test_rebuilt_when_the_source_maps_change(tiny_marian_dir, toy_corpus_dir, tmp_path):
    out = tmp_path / "attr"
    assert _run(tiny_marian_dir, toy_corpus_dir, out, "--limit", 2, "--methods", "attention", "attention-shuffled") == 0
    assert len(_rows(out, "attention-shuffled")) == 2
    assert _run(tiny_marian_dir, toy_corpus_dir, out, "--limit", 3, "--methods", "attention") == 0  # new source maps
    assert _run(tiny_marian_dir, toy_corpus_dir, out, "--methods", "attention-shuffled") == 0
    assert len(_rows(out, "attention-shuffled")) == 3
    assert _meta(out, "attention-shuffled")["shuffled_from"]["maps_version"] == maps_version(
        out, "marian.de-en.attention"
    )


def test_missing_source_is_named(tiny_marian_dir, toy_corpus_dir, tmp_path, caplog):
    out = tmp_path / "attr"
    with caplog.at_level("ERROR"):
        assert _run(tiny_marian_dir, toy_corpus_dir, out, "--methods", "value_zeroing-shuffled") == 2
    assert "marian.de-en.value_zeroing" in caplog.text and "--methods value_zeroing" in caplog.text
    assert not out.exists()
