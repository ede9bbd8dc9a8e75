"""Student training on agkd-attributions: maps joined and checked, baseline, resume-free smoke run, bad input."""

from __future__ import annotations

import json

import datasets
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from agkd.datasets_scripts.release_layout import write_split
from agkd.training import train_student

pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]


def _train(attributions_dir, teacher_dir, models_dir, *extra) -> int:
    from tiny_release import train_tiny_student

    return train_tiny_student(attributions_dir, teacher_dir, models_dir, *extra)


@pytest.fixture(scope="module")
def attributions_dir(tiny_attributions_dir):
    return tiny_attributions_dir


def test_trains_a_method_student_and_the_baseline(attributions_dir, tiny_marian_dir, tmp_path):
    models = tmp_path / "models"
    assert _train(attributions_dir, tiny_marian_dir, models, "--method", "attention", "--operator", "replace") == 0
    assert _train(attributions_dir, tiny_marian_dir, models, "--method", "none") == 0
    names = sorted(p.name for p in models.iterdir())
    assert names == ["student-marian-de-en-attention-replace-s0", "student-marian-de-en-none-s0"]

    folder = models / names[0]
    run = json.loads((folder / "agkd_run.json").read_text())
    assert run["attribution_config"] == "marian.de-en.attention" and run["operator"] == "replace"
    assert run["train_examples"] == 48 and run["steps"] == 6
    baseline = json.loads((models / names[1] / "agkd_run.json").read_text())
    assert baseline["operator"] == "none" and baseline["attribution_config"] == "marian.de-en.uniform"

    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.injection_operator == "replace"
    row = datasets.load_dataset(str(attributions_dir), "marian.de-en.attention", split="train")[0]
    inputs = tokenizer([row["source"]], return_tensors="pt")
    attribution_map = torch.tensor([row["attribution"]])
    with torch.no_grad():
        out = model.generate(**inputs, attribution_map=attribution_map, max_new_tokens=8)
    assert out.shape[0] == 1


def test_finished_student_is_skipped(attributions_dir, tiny_marian_dir, tmp_path, caplog):
    models = tmp_path / "models"
    assert _train(attributions_dir, tiny_marian_dir, models, "--method", "none") == 0
    stamp = (models / "student-marian-de-en-none-s0" / "model.safetensors").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        assert _train(attributions_dir, tiny_marian_dir, models, "--method", "none") == 0
    assert "already exists" in caplog.text
    assert (models / "student-marian-de-en-none-s0" / "model.safetensors").stat().st_mtime_ns == stamp


def test_map_that_disagrees_with_the_tokenizer_is_named_before_training(
    attributions_dir, tiny_marian_dir, tmp_path, caplog
):
    bad = tmp_path / "bad-attributions"
    ds = datasets.load_dataset(str(attributions_dir), "marian.de-en.attention")
    train = ds["train"].to_list()
    train[5]["source_ids"] = train[5]["source_ids"][1:]
    write_split(bad, "marian.de-en.attention", "train", datasets.Dataset.from_list(train))
    write_split(bad, "marian.de-en.attention", "validation", ds["validation"])
    with caplog.at_level("ERROR"):
        assert _train(bad, tiny_marian_dir, tmp_path / "models", "--method", "attention") == 2
    assert train[5]["id"] in caplog.text and "token ids" in caplog.text
    assert not (tmp_path / "models").exists()

    train = ds["train"].to_list()
    train[7]["attribution"] = train[7]["attribution"][:-1]
    write_split(bad, "marian.de-en.attention", "train", datasets.Dataset.from_list(train))
    caplog.clear()
    with caplog.at_level("ERROR"):
        assert _train(bad, tiny_marian_dir, tmp_path / "models", "--method", "attention") == 2
    assert train[7]["id"] in caplog.text and "shape" in caplog.text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "lime"], "unknown methods/controls ['lime']"),
        (["--method", "attention", "--operator", "addition"], "unknown injection_operator"),
        (["--method", "attention", "--map_normalization", "minmax"], "unknown map_normalization"),
    ],
)
def test_bad_arguments(attributions_dir, tiny_marian_dir, tmp_path, caplog, extra, message):
    with caplog.at_level("ERROR"):
        assert _train(attributions_dir, tiny_marian_dir, tmp_path / "models", *extra) == 2
    assert message in caplog.text


def test_names():
    args = train_student.StudentArguments(attributions="x", teacher="t", method="value_zeroing", operator="add")
    assert train_student.run_name(args) == "student-marian-de-en-valuezeroing-add-s0"
    args.target_kind, args.map_normalization = "teacher", "row_sum"
    assert train_student.data_config(args) == "marian.de-en.value_zeroing.teacher"
    assert train_student.run_name(args) == "student-marian-de-en-valuezeroing-add-rowsum-teacher-s0"
    args.init_from = "runs/demo/hub/models/warmstart-marian-de-en-s0"
    assert train_student.run_name(args) == "student-marian-de-en-valuezeroing-add-rowsum-teacher-warm-s0"


def test_warm_start_on_the_corpus_then_cells_fine_tune_it(
    attributions_dir, tiny_marian_dir, toy_corpus_dir, tmp_path, caplog
):
    """The `warm` design: a no-map warm start trained on the corpus pairs, then a baseline and a map cell that both
    start from its weights, named, recorded and retrained when the warm start changes."""
    from safetensors.torch import load_file

    models = tmp_path / "models"
    assert _train(attributions_dir, tiny_marian_dir, models, "--method", "none", "--train_corpus", toy_corpus_dir) == 0
    warm = models / "warmstart-marian-de-en-s0"
    run = json.loads((warm / "agkd_run.json").read_text())
    assert run["attribution_config"] is None and run["train_examples"] == 400  # the toy corpus's train split
    assert run["student_init"] == "scratch" and run["maps_version"] is None

    for extra in (
        ["--method", "none"],
        ["--method", "attention", "--operator", "add", "--map_normalization", "row_sum"],
    ):
        assert _train(attributions_dir, tiny_marian_dir, models, *extra, "--init_from", warm, "--max_steps", "1") == 0
    baseline = models / "student-marian-de-en-none-warm-s0"
    cell = models / "student-marian-de-en-attention-add-rowsum-warm-s0"
    for folder in (baseline, cell):
        record = json.loads((folder / "agkd_run.json").read_text())
        assert record["student_init"] == "warm" and record["init_run_id"] == run["run_id"]
        assert record["hyperparameters"]["d_model"] == 32  # the warm start's size, not a preset's
    # One step of fine-tuning at the warm-up's first learning rate: the weights are the warm start's, barely moved.
    start, tuned = load_file(warm / "model.safetensors"), load_file(cell / "model.safetensors")
    key = "model.encoder.layers.0.fc1.weight"
    assert (tuned[key] - start[key]).abs().max() < 0.05 < (torch.randn_like(start[key]) - start[key]).abs().max()
    assert AutoModelForSeq2SeqLM.from_pretrained(cell, trust_remote_code=True).config.map_normalization == "row_sum"

    # A retrained warm start (new run id) makes its cells stale: they are fine-tuned again.
    assert (
        _train(
            attributions_dir,
            tiny_marian_dir,
            models,
            "--method",
            "none",
            "--train_corpus",
            toy_corpus_dir,
            "--overwrite",
        )
        == 0
    )
    with caplog.at_level("WARNING"):
        assert (
            _train(
                attributions_dir, tiny_marian_dir, models, "--method", "none", "--init_from", warm, "--max_steps", "1"
            )
            == 0
        )
    assert "fine-tuned from another warm start" in caplog.text
    assert json.loads((baseline / "agkd_run.json").read_text())["init_run_id"] != run["run_id"]
    # Another budget (`agkd pipeline --student_max_steps`) is another student: retrained, not kept.
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert (
            _train(
                attributions_dir, tiny_marian_dir, models, "--method", "none", "--init_from", warm, "--max_steps", "2"
            )
            == 0
        )
    assert "trained with another budget (max_steps 1 -> 2)" in caplog.text
    assert json.loads((baseline / "agkd_run.json").read_text())["steps"] == 2


def test_a_supervise_student_trains_toward_the_maps_and_records_it(attributions_dir, tiny_marian_dir, tmp_path):
    models = tmp_path / "models"
    extra = ("--method", "attention", "--operator", "supervise", "--supervision_weight", "0.5", "--max_steps", "2")
    assert _train(attributions_dir, tiny_marian_dir, models, *extra) == 0
    folder = models / "student-marian-de-en-attention-supervise0.5-s0"
    record = json.loads((folder / "agkd_run.json").read_text())
    assert record["operator"] == "supervise" and record["supervision_weight"] == 0.5
    config = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).config
    assert config.injection_operator == "supervise" and config.supervision_weight == 0.5
    assert "no map at test time" in (folder / "README.md").read_text()


def test_a_learning_curve_point_trains_on_the_first_pairs_under_its_own_name(
    attributions_dir, tiny_marian_dir, tmp_path, caplog
):
    models = tmp_path / "models"
    extra = ("--method", "attention", "--operator", "supervise", "--max_steps", "2", "--batch_size", "8")
    assert _train(attributions_dir, tiny_marian_dir, models, *extra, "--train_pairs", "16") == 0
    record = json.loads((models / "student-marian-de-en-attention-supervise-p16-s0" / "agkd_run.json").read_text())
    assert record["train_pairs"] == 16 and record["train_examples"] == 16
    with caplog.at_level("ERROR"):
        assert _train(attributions_dir, tiny_marian_dir, models, *extra, "--train_pairs", "4800") == 2
    assert "has only 48 pairs" in caplog.text


def test_warm_start_arguments_are_checked(attributions_dir, tiny_marian_dir, tmp_path, caplog):
    with caplog.at_level("ERROR"):
        assert (
            _train(attributions_dir, tiny_marian_dir, tmp_path / "m", "--method", "attention", "--train_corpus", "x")
            == 2
        )
        assert _train(attributions_dir, tiny_marian_dir, tmp_path / "m", "--init_from", tmp_path / "nothing") == 2
    assert "takes --method none" in caplog.text and "not a finished student folder" in caplog.text


def test_token_budget_batches_fill_each_step_by_tokens():
    """`max_batch_tokens`: short pairs make big batches and long pairs small ones, never over the budget once padded
    (one example may exceed it alone), every example exactly once; without it, fixed batches as before."""
    import random

    from agkd.training.data import length_grouped_batches

    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(1000)]  # a translation is about as long as its source
    examples = [
        {"index": i, "input_ids": [5] * n, "labels": [6] * max(2, n + rng.randint(-3, 3))}
        for i, n in enumerate(lengths)
    ]
    batches = length_grouped_batches(examples, batch_size=256, seed=1, max_tokens=2048)
    assert sorted(e["index"] for b in batches for e in b) == list(range(1000))
    for b in batches:
        padded = len(b) * (max(len(e["input_ids"]) for e in b) + max(len(e["labels"]) for e in b))
        assert len(b) <= 256 and (padded <= 2048 or len(b) == 1)
    sizes = sorted(len(b) for b in batches)
    assert sizes[0] < 25 and sizes[-1] > 80  # long pairs share a step with few others, short ones with many
    fixed = length_grouped_batches(examples, batch_size=32, seed=1)
    assert {len(b) for b in fixed} == {32} and len(fixed) == 1000 // 32


def test_mixed_precision_auto_is_bf16_only_on_a_gpu_that_has_it(monkeypatch):
    from agkd.training.loop import resolve_mixed_precision

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    expected = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    assert resolve_mixed_precision("auto") == expected
    assert resolve_mixed_precision("fp16") == "fp16" and resolve_mixed_precision("no") == "no"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # `accelerate launch --mixed_precision fp16` decides
    assert resolve_mixed_precision("auto") is None
