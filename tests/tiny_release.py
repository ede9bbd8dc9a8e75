"""Session fixtures for the later stages: a tiny agkd-attributions dataset, tiny trained students, their results, and
the release folder the Space reads (`space_release_dir`).

Use with `pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agkd.datasets_scripts import extract_attributions
from agkd.training import train_student

TINY_METHODS = ("attention", "uniform")


@pytest.fixture(scope="session")
def tiny_attributions_dir(tiny_marian_dir, toy_corpus_dir, tmp_path_factory):
    """`attention` and the `uniform` control of the tiny Marian on 48 toy pairs per split, both target kinds."""
    out = tmp_path_factory.mktemp("agkd-attributions")
    argv = ["--teacher", str(tiny_marian_dir), "--corpus", str(toy_corpus_dir), "--output_dir", str(out)]
    argv += ["--pair", "de-en", "--limit", "48", "--num_threads", "1", "--splits", "train", "validation", "test"]
    argv += ["--methods", *TINY_METHODS, "--target_kinds", "reference", "teacher"]
    assert extract_attributions.main(argv) == 0
    return out


def train_tiny_student(attributions_dir, teacher_dir, models_dir, *extra) -> int:
    argv = ["--attributions", str(attributions_dir), "--teacher", str(teacher_dir), "--preset", "smoke"]
    argv += ["--output_dir", str(models_dir), "--checkpoint_dir", str(models_dir.parent / "ckpt"), "--max_steps", "6"]
    argv += ["--eval_steps", "3", "--batch_size", "8"]
    return train_student.main([*argv, *map(str, extra)])


@pytest.fixture(scope="session")
def tiny_students_dir(tiny_attributions_dir, tiny_marian_dir, tmp_path_factory):
    """The baseline, an `attention`/`add` and an `attention`/`supervise` student (6 steps each) and the `attention`
    Attributor (smoke preset)."""
    from agkd.training import train_attributor

    models = tmp_path_factory.mktemp("release") / "models"
    assert train_tiny_student(tiny_attributions_dir, tiny_marian_dir, models, "--method", "none") == 0
    assert (
        train_tiny_student(tiny_attributions_dir, tiny_marian_dir, models, "--method", "attention", "--operator", "add")
        == 0
    )
    assert train_tiny_student(
        tiny_attributions_dir, tiny_marian_dir, models, "--method", "attention", "--operator", "supervise"
    ) == 0
    argv = ["--attributions", str(tiny_attributions_dir), "--teacher", str(tiny_marian_dir), "--method", "attention"]
    argv += ["--preset", "smoke", "--output_dir", str(models), "--checkpoint_dir", str(models.parent / "ckpt")]
    assert train_attributor.main(argv) == 0
    return models


def evaluate_argv(students_dir, attributions_dir, corpus_dir, results_dir) -> list[str]:
    argv = ["--models_dir", str(students_dir), "--attributions", str(attributions_dir)]
    argv += ["--corpus", str(corpus_dir), "--results_dir", str(results_dir), "--bootstrap_samples", "50"]
    return argv + ["--protocols", "gold", "teacher", "train-only", "attributor", "--num_beams", "2"]


@pytest.fixture(scope="session")
def tiny_results_dir(tiny_students_dir, tiny_attributions_dir, toy_corpus_dir, tmp_path_factory):
    """results.jsonl of the tiny students under every protocol."""
    from agkd.training.evaluation import evaluate

    results = tmp_path_factory.mktemp("results")
    assert evaluate.main(evaluate_argv(tiny_students_dir, tiny_attributions_dir, toy_corpus_dir, results)) == 0
    return results


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src, target_is_directory=True)


def _tiny_attributor(teacher_dir: Path, out: Path) -> Path:
    import torch
    from transformers import AutoConfig

    from agkd.modeling import AgkdAttributorConfig, AgkdAttributorModel

    teacher = AutoConfig.from_pretrained(teacher_dir)
    torch.manual_seed(0)
    config = AgkdAttributorConfig(
        vocab_size=teacher.vocab_size, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, max_position_embeddings=128,
        pad_token_id=teacher.pad_token_id, eos_token_id=teacher.eos_token_id,
        decoder_start_token_id=teacher.decoder_start_token_id, scoring_heads=2, head_gate_dim=8,
    )
    AgkdAttributorModel(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def space_release_dir(
    tiny_marian_dir, tiny_students_dir, tiny_attributions_dir, toy_corpus_dir, tiny_results_dir, tmp_path_factory
):
    """`<root>/hub/{models,datasets}` and `<root>/results` as `make demo` writes them."""
    root = tmp_path_factory.mktemp("space-release")
    hub = root / "hub"
    _link(tiny_marian_dir, hub / "models" / "teacher-marian-de-en")
    for student in tiny_students_dir.glob("student-*"):
        _link(student, hub / "models" / student.name)
    _tiny_attributor(tiny_marian_dir, hub / "models" / "attributor-marian-de-en-attention")
    _link(tiny_attributions_dir, hub / "datasets" / "agkd-attributions")
    _link(toy_corpus_dir, hub / "datasets" / "agkd-parallel")
    _link(tiny_results_dir, root / "results")
    return hub
