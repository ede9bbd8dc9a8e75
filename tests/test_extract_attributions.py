"""`agkd extract` on tiny trained teachers (Marian and mBART-50 style, tests/tiny_teachers.py) and the toy corpus."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agkd.datasets_scripts import extract_attributions as ex
from agkd.datasets_scripts.attribution.configs import config_name
from agkd.datasets_scripts.attribution.inseq_engine import attribute_rows
from agkd.datasets_scripts.attribution.methods import CONTROLS, METHODS, diagonal_map, random_map
from agkd.datasets_scripts.attribution.teacher import Teacher

pytest_plugins = ["tests.tiny_teachers"]  # the tiny_marian_dir and tiny_mbart_dir fixtures

ALL = [*METHODS, *CONTROLS]


class Killed(RuntimeError):
    """Stands for the process being killed mid-run."""


def _run(teacher, corpus, out, *extra) -> int:
    return ex.main(
        [
            "--teacher",
            str(teacher),
            "--corpus",
            str(corpus),
            "--output_dir",
            str(out),
            "--pair",
            "de-en",
            "--num_threads",
            "1",
            *map(str, extra),
        ]
    )


def _load(out, config, split="test"):
    """`load_dataset(folder, config)` with a cache of its own: datasets 5.2 keys the cache of a local folder by its
    name and config, so a re-created folder of the same name (pytest's tmp dirs) would be served stale data."""
    import datasets

    out = Path(out)
    return datasets.load_dataset(str(out), config, split=split, cache_dir=str(out.parent / f".hf-cache-{out.name}"))


FAST_METHODS = ["attention", "value_zeroing", "saliency", "diagonal"]
TEACHER_KIND_METHODS = ["saliency", "diagonal"]


@pytest.fixture(scope="module")
def marian_run(tiny_marian_dir, toy_corpus_dir, tmp_path_factory):
    """A few methods (final-step, gradient, control) on 2 test pairs; two of them for the teacher target kind too
    (a second run into the same folder, which also tests that runs extend a dataset)."""
    out = tmp_path_factory.mktemp("attr-marian")
    common = ["--splits", "test", "--limit", 2]
    assert _run(tiny_marian_dir, toy_corpus_dir, out, *common, "--methods", *FAST_METHODS) == 0
    assert (
        _run(
            tiny_marian_dir,
            toy_corpus_dir,
            out,
            *common,
            "--methods",
            *TEACHER_KIND_METHODS,
            "--target_kinds",
            "teacher",
        )
        == 0
    )
    return out


def _check_rows(ds, tok, method, n_rows, first_source=None, first_target=None):
    """Shapes, orientation, token lists and the self-check of every row of one config."""
    assert len(ds) == n_rows
    for row in ds:
        enc = tok(row["source"], text_target=row["target"])
        assert row["source_ids"] == enc["input_ids"] and row["target_ids"] == enc["labels"]
        a = np.asarray(row["attribution"], dtype=np.float32)
        # [T][S]: rows follow the labels (final </s> included), columns the source (</s> included)
        assert a.shape == (len(row["target_ids"]), len(row["source_ids"]))
        assert a.shape[0] != a.shape[1]  # the toy pairs have different lengths, so the orientation is tested
        assert row["source_tokens"] == tok.convert_ids_to_tokens(row["source_ids"])
        assert row["target_tokens"] == tok.convert_ids_to_tokens(row["target_ids"])
        assert row["source_tokens"][-1] == "</s>" and row["target_tokens"][-1] == "</s>"
        if first_source:
            assert row["source_tokens"][0] == first_source and row["target_tokens"][0] == first_target
        assert np.isfinite(a).all()
        if method in METHODS:
            assert 0 <= row["prob_check"] <= 1e-4, (method, row["prob_check"])
            assert a.max() > 0, method  # value zeroing included: the teacher is trained
        else:
            assert row["prob_check"] is None


def test_config_names():
    assert config_name("marian", "de-en", "saliency") == "marian.de-en.saliency"
    assert config_name("mbart", "fr-en", "attention", "teacher") == "mbart.fr-en.attention.teacher"


def test_controls_shapes_and_determinism():
    d = diagonal_map(5, 9, "x", 0)
    assert d.shape == (5, 9) and d.dtype == np.float32
    assert (d.sum(1) == 1).all() and d[0, 0] == 1 and d[-1, -1] == 1
    assert np.all(np.diff(d.argmax(1)) >= 0)  # monotone
    assert np.array_equal(random_map(4, 6, "a", 1), random_map(4, 6, "a", 1))
    assert not np.array_equal(random_map(4, 6, "a", 1), random_map(4, 6, "b", 1))


def test_marian_shapes_orientation_target_kinds_and_card(marian_run, tiny_marian_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_marian_dir)
    card = (marian_run / "README.md").read_text()
    assert "inseq" in card and "normalize=False" in card
    for method in FAST_METHODS:
        for kind in ("reference", "teacher") if method in TEACHER_KIND_METHODS else ("reference",):
            config = config_name("marian", "de-en", method, kind)
            assert f"config_name: {config}" in card
            ds = _load(marian_run, config)
            _check_rows(ds, tok, method, 2)
            assert set(ds["target_kind"]) == {kind}
    ref, gen = _load(marian_run, "marian.de-en.saliency"), _load(marian_run, "marian.de-en.saliency.teacher")
    assert list(ref["source"]) == list(gen["source"])
    teacher = Teacher(str(tiny_marian_dir), "de-en", "cpu", compat=True)
    assert list(gen["target"]) == teacher.translate(list(gen["source"]), 128, 1)
    assert list(_load(marian_run, "marian.de-en.diagonal.teacher")["target"]) == list(gen["target"])
    meta = json.loads((marian_run / "meta" / "marian.de-en.saliency.json").read_text())
    assert meta["splits"]["test"]["compat"]["decoder_embeds_divisor"] == pytest.approx(8.0)
    assert meta["splits"]["test"]["compat"]["remap_devices_patched"] is False  # a CUDA-only problem
    assert meta["versions"]["inseq"] == "0.7.1"
    assert not (marian_run / ex.WORK_DIR).exists()  # shards merged and cleaned up


@pytest.mark.slow
def test_marian_every_method(tiny_marian_dir, toy_corpus_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_marian_dir)
    assert _run(tiny_marian_dir, toy_corpus_dir, tmp_path, "--splits", "test", "--limit", 3) == 0
    for method in ALL:
        _check_rows(_load(tmp_path, f"marian.de-en.{method}"), tok, method, 3)


def test_attention_equals_models_averaged_cross_attention(marian_run, tiny_marian_dir):
    import torch
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_marian_dir, attn_implementation="eager").eval()
    for row in _load(marian_run, "marian.de-en.attention"):
        labels = torch.tensor([row["target_ids"]])
        dec = torch.tensor([[model.config.decoder_start_token_id] + row["target_ids"][:-1]])
        with torch.no_grad():
            out = model(input_ids=torch.tensor([row["source_ids"]]), decoder_input_ids=dec, output_attentions=True)
        assert labels.shape[1] == dec.shape[1]
        cross = torch.stack([a[0].mean(0) for a in out.cross_attentions]).mean(0)  # heads, then layers -> [T, S]
        np.testing.assert_allclose(np.asarray(row["attribution"]), cross.numpy(), atol=1e-5)


def test_prob_check_fails_without_compat_and_refuses_to_publish(tiny_marian_dir, toy_corpus_dir, tmp_path):
    import torch

    torch.set_num_threads(1)
    teacher = Teacher(str(tiny_marian_dir), "de-en", "cpu", compat=False)
    rows = [
        {
            "id": "a",
            "source": "der Hund sieht heute das Haus.",
            "target": "The dog sees the house today.",
            "target_kind": "reference",
        },
    ]
    for r in rows:
        r["source_ids"], r["target_ids"] = teacher.encode(r["source"], r["target"])
    broken = attribute_rows(teacher, "saliency", rows, 2, 0)
    assert broken[0]["prob_check"] > 1e-2
    assert teacher.compat_reports["saliency"]["decoder_embeds_rescaled_by_model"]
    fixed = attribute_rows(Teacher(str(tiny_marian_dir), "de-en", "cpu", compat=True), "saliency", rows, 2, 0)
    assert fixed[0]["prob_check"] < 1e-5
    # Through the CLI: the shard is refused, nothing is published, the exit status says so.
    out = tmp_path / "refused"
    assert (
        _run(
            tiny_marian_dir,
            toy_corpus_dir,
            out,
            "--splits",
            "test",
            "--limit",
            2,
            "--methods",
            "saliency",
            "--compat",
            "false",
        )
        == 1
    )
    assert not (out / "marian.de-en.saliency").exists()


def _mbart(tiny_mbart_dir, toy_corpus_dir, out, methods, n):
    from transformers import AutoTokenizer

    assert (
        _run(
            tiny_mbart_dir,
            toy_corpus_dir,
            out,
            "--splits",
            "test",
            "--limit",
            n,
            "--batch_size",
            2,
            "--methods",
            *methods,
        )
        == 0
    )
    tok = AutoTokenizer.from_pretrained(tiny_mbart_dir, src_lang="de_DE", tgt_lang="en_XX")
    for method in methods:
        _check_rows(_load(out, f"mbart.de-en.{method}"), tok, method, n, first_source="de_DE", first_target="en_XX")


def test_mbart_language_codes_and_target_layer(tiny_mbart_dir, toy_corpus_dir, tmp_path):
    _mbart(tiny_mbart_dir, toy_corpus_dir, tmp_path, ["layer_gradient_x_activation", "attention"], 1)
    meta = json.loads((tmp_path / "meta" / "mbart.de-en.layer_gradient_x_activation.json").read_text())
    assert meta["target_layer"] == "model.encoder.layers.1"  # the last of the tiny mBART's 2 encoder layers
    assert meta["splits"]["test"]["fingerprint"]["target_layer"] == "the encoder's last layer"
    assert meta["splits"]["test"]["compat"]["decoder_embeds_divisor"] is None  # mBART needs no scale fix
    assert meta["teacher"]["tokenizer_kwargs"] == {"src_lang": "de_DE", "tgt_lang": "en_XX"}


@pytest.mark.slow
def test_mbart_every_method(tiny_mbart_dir, toy_corpus_dir, tmp_path):
    _mbart(tiny_mbart_dir, toy_corpus_dir, tmp_path, ALL, 2)


def test_skips_pairs_over_the_token_limit(tiny_marian_dir, toy_corpus_dir, tmp_path):
    import datasets
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_marian_dir)
    test = datasets.load_dataset(str(toy_corpus_dir), "de-en", split="test")
    encoded = [tok(r["source"], text_target=r["target"]) for r in test]
    lengths = [max(len(e["input_ids"]), len(e["labels"])) for e in encoded]
    limit = sorted(lengths)[len(lengths) // 2]
    assert (
        _run(
            tiny_marian_dir,
            toy_corpus_dir,
            tmp_path,
            "--splits",
            "test",
            "--methods",
            "diagonal",
            "--max_tokens",
            limit,
        )
        == 0
    )
    meta = json.loads((tmp_path / "meta" / "marian.de-en.diagonal.json").read_text())
    kept = _load(tmp_path, "marian.de-en.diagonal")
    skipped = len(test) - len(kept)
    assert meta["splits"]["test"]["skipped_too_long"] == skipped == sum(n > limit for n in lengths) > 0
    assert f"test: {len(kept)} ({skipped})" in (tmp_path / "README.md").read_text()
    # With a cap, the first N pairs that fit are taken: a small run is not emptied by long pairs.
    capped = tmp_path / "capped"
    assert (
        _run(
            tiny_marian_dir,
            toy_corpus_dir,
            capped,
            "--splits",
            "test",
            "--methods",
            "diagonal",
            "--max_tokens",
            limit,
            "--limit",
            5,
        )
        == 0
    )
    fitting = [r["id"] for r, n in zip(test, lengths, strict=True) if n <= limit][:5]
    assert _load(capped, "marian.de-en.diagonal")["id"] == fitting


def test_resume_after_interruption_equals_uninterrupted_run(tiny_marian_dir, toy_corpus_dir, tmp_path, monkeypatch):
    args = ["--splits", "test", "validation", "--limit", 2, "--shard_size", 1, "--methods", "gradient_shap", "random"]
    clean = tmp_path / "clean"
    assert _run(tiny_marian_dir, toy_corpus_dir, clean, *args) == 0

    calls = {"n": 0}
    real = ex.attribute

    def dies_after_three(*a, **k):
        calls["n"] += 1
        if calls["n"] > 3:
            raise Killed("killed")
        return real(*a, **k)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(ex, "attribute", dies_after_three)
    with pytest.raises(Killed):
        _run(tiny_marian_dir, toy_corpus_dir, resumed, *args)
    finished = sorted((resumed / ex.WORK_DIR).rglob("shard-*.parquet"))
    assert len(finished) == 3 and not list((resumed / ex.WORK_DIR).rglob("*.tmp"))

    counted = {"n": 0}

    def counting(*a, **k):
        counted["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(ex, "attribute", counting)
    assert _run(tiny_marian_dir, toy_corpus_dir, resumed, *args) == 0
    assert counted["n"] == 2 * 2 + 2 * 2 - 3  # only the missing shards were computed
    for config in ("marian.de-en.gradient_shap", "marian.de-en.random"):
        for split in ("test", "validation"):
            a, b = _load(clean, config, split), _load(resumed, config, split)
            assert a.to_list() == b.to_list()
    # a finished run is not recomputed
    counted["n"] = 0
    assert _run(tiny_marian_dir, toy_corpus_dir, resumed, *args) == 0 and counted["n"] == 0


def test_process_sharding_merges_to_the_single_process_result(tiny_marian_dir, toy_corpus_dir, tmp_path):
    import datasets
    import pyarrow.parquet as pq
    from transformers import HfArgumentParser

    corpus = datasets.load_dataset(str(toy_corpus_dir), "de-en")
    teacher = Teacher(str(tiny_marian_dir), "de-en", "cpu", compat=True)
    results = {}
    for n_proc in (1, 3):
        out = tmp_path / f"p{n_proc}"
        (args,) = HfArgumentParser(ex.ExtractArguments).parse_args_into_dataclasses(
            args=[
                "--teacher",
                str(tiny_marian_dir),
                "--corpus",
                str(toy_corpus_dir),
                "--output_dir",
                str(out),
                "--limit",
                "3",
                "--shard_size",
                "1",
            ]
        )
        rows = ex._split_rows(args, corpus, "test", teacher)
        for rank in range(n_proc):  # each process takes shards rank, rank + n, ...
            state = SimpleNamespace(
                num_processes=n_proc, process_index=rank, is_main_process=rank == 0, wait_for_everyone=lambda: None
            )
            ex.run_split(teacher, args, state, "marian.de-en.saliency", "saliency", "reference", "test", rows)
            done = sorted(p.name for p in (out / ex.WORK_DIR / "marian.de-en.saliency" / "test").glob("shard-*.json"))
            assert len(done) == sum(len(range(q, 3, n_proc)) for q in range(rank + 1))
        assert ex.merge_split(args, "marian.de-en.saliency", "test", len(rows))["rows"] == 3
        results[n_proc] = pq.read_table(Path(out) / "marian.de-en.saliency" / "test-00000-of-00001.parquet")
    one, three = results[1].to_pylist(), results[3].to_pylist()
    assert [r["id"] for r in one] == [r["id"] for r in three]
    for a, b in zip(one, three, strict=True):
        np.testing.assert_allclose(np.asarray(a["attribution"]), np.asarray(b["attribution"]), atol=1e-6)


def test_remap_device_fix_is_probe_gated_and_exact():
    """Problem 3 of inseq_compat only exists on CUDA; on CPU the probe passes and the wrapper changes no value."""
    import torch
    from inseq.utils import torch_utils

    from agkd.datasets_scripts.attribution import inseq_compat

    assert not inseq_compat._remap_mixes_devices(torch.device("cpu"))
    mask, scores = torch.tensor([[1], [0], [1]]), torch.tensor([[2.0, 4.0], [3.0, 5.0]])
    original = torch_utils.remap_from_filtered((3, 2), mask, scores)
    inseq_compat._install_remap_patch()
    patched = torch_utils.remap_from_filtered((3, 2), mask, scores)
    assert torch.equal(original.nan_to_num(-1), patched.nan_to_num(-1))
    assert patched[0].tolist() == [2.0, 4.0] and patched[1].isnan().all() and patched[2].tolist() == [3.0, 5.0]
