"""Attributor training: fidelity metrics, Hub folder, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoModel

from agkd.training import train_attributor
from agkd.training.evaluation import scoring

pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]


def test_row_fidelity_of_identical_and_reversed_rows():
    teacher = np.array([0.6, 0.3, 0.1, 0.0])
    same = scoring.row_fidelity(teacher, teacher)
    assert same["kl"] == pytest.approx(0.0, abs=1e-9) and same["top3_overlap"] == 1.0
    assert same["kendall_tau"] == pytest.approx(1.0) and same["spearman"] == pytest.approx(1.0)
    reversed_ = scoring.row_fidelity(teacher[::-1].copy(), teacher)
    assert reversed_["spearman"] == pytest.approx(-1.0) and reversed_["kl"] > 1.0
    flat = scoring.row_fidelity(np.full(4, 0.25), teacher)
    assert "spearman" not in flat  # undefined for a constant row: skipped, not counted as 0


def test_trained_attributor_folder(tiny_students_dir):
    folder = tiny_students_dir / "attributor-marian-de-en-attention"
    run = json.loads((folder / "agkd_run.json").read_text())
    fidelity = run["fidelity"]
    assert fidelity["split"] == "test" and fidelity["rows"] > 48
    assert fidelity["kl"] >= 0 and 0 <= fidelity["top3_overlap"] <= 1 and -1 <= fidelity["spearman"] <= 1
    assert "| kl |" in (folder / "README.md").read_text()
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__name__ == "AgkdAttributorModel"


def test_unknown_method_is_refused(tiny_attributions_dir, tiny_marian_dir, tmp_path, caplog):
    argv = ["--attributions", str(tiny_attributions_dir), "--teacher", str(tiny_marian_dir), "--method", "uniform"]
    with caplog.at_level("ERROR"):
        assert train_attributor.main([*argv, "--preset", "smoke", "--output_dir", str(tmp_path)]) == 2
    assert "unknown method 'uniform'" in caplog.text
