"""The report: tables with significance marks, the paper-finding check, plots, from real and synthetic rows."""

from __future__ import annotations

import pytest

from training import report
from training.presets import ALL_METHODS

pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]


def row(method, operator, delta, p=0.5, seed=0, protocol="gold"):
    return {
        "method": method, "operator": operator, "map_normalization": "none", "seed": seed, "protocol": protocol,
        "teacher_name": "marian", "pair": "de-en", "target_kind": "reference", "split": "test",
        "bootstrap": {"bleu": {"delta": delta, "p_value": p}, "chrf": {"delta": 2 * delta, "p_value": p}},
    }


def test_table_cells_marks_and_seed_spread():
    rows = [row("attention", "add", 1.0, p=0.001), row("attention", "add", 3.0, p=0.03, seed=1), row("saliency", "replace", -0.5)]
    table = report.results_table(rows)
    assert "| method | add | replace |" in table
    assert "| attention | +2.00±1.41* / +4.00±2.83* |  |" in table  # weakest mark over the seeds
    assert "| saliency |  | -0.50 / -1.00 |" in table


@pytest.mark.parametrize(
    ("top", "others", "verdict"),
    [(2.0, 1.0, "holds: each"), (None, 1.0, "holds on average only"), (0.5, 1.0, "does not hold")],
)
def test_paper_finding(top, others, verdict):
    gains = {m: [others] for m in ALL_METHODS}
    if top is None:  # attention far ahead, value zeroing behind one other method
        gains.update(attention=[5.0], value_zeroing=[0.9], layer_gradient_x_activation=[1.5])
    else:
        gains.update({m: [top] for m in report.PAPER_TOP})
    assert report.paper_finding(gains).startswith(verdict)
    del gains["deeplift"]
    assert report.paper_finding(gains) == "cannot be checked: no results for deeplift"


def test_paper_finding_needs_gains_to_rank():
    zero = {m: [0.001] for m in ALL_METHODS}  # the demo's students: every gain +0.00
    assert report.paper_finding(zero).startswith("cannot be checked here: every method's mean gain rounds to +0.00")
    apart = {**zero, "attention": [2.0]}
    assert report.paper_finding(apart, significant=set()).startswith("cannot be checked here: no attribution method")
    assert report.paper_finding(apart, significant={"random"}).startswith("cannot be checked here: no attribution")
    assert report.paper_finding(apart, significant={"saliency"}).startswith("holds on average only")


def test_significant_gainers_and_controls():
    rows = [row("attention", "add", 1.0, p=0.01), row("saliency", "add", 1.0, p=0.2), row("deeplift", "add", -1.0, p=0.01)]
    assert report.significant_gainers(rows) == {"attention"}
    gains = {"attention": [1.0], "saliency": [0.2], "random": [0.5], "uniform": [0.1]}
    assert report.control_comparison(gains) == "Best control map: random (+0.50 BLEU). Methods ahead of it: attention."
    assert report.control_comparison({"attention": [1.0]}) is None
    assert report.control_comparison({"saliency": [0.0], "uniform": [0.1]}).endswith("No attribution method is ahead of it.")


def test_report_from_real_results(tiny_results_dir, tiny_attributions_dir, tiny_students_dir, tmp_path):
    argv = ["--results_dir", str(tiny_results_dir), "--attributions", str(tiny_attributions_dir), "--output_dir", str(tmp_path)]
    assert report.main([*argv, "--models_dir", str(tiny_students_dir)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Attributor fidelity vs gain: marian de-en" in text
    assert "Only 1 method(s) with both an Attributor and students" in text
    assert "## marian de-en, targets `reference`, split `test`, protocol `gold`" in text
    assert "| attention |" in text and "Baseline (no map): BLEU" in text
    assert "cannot be checked: no results for value_zeroing" in text
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["gains-marian-de-en-reference-test.png", "maps-marian-de-en.png"]
    assert all((tmp_path / "plots" / p).stat().st_size > 5000 for p in pngs)


def test_report_without_results_says_so(tmp_path, caplog):
    with caplog.at_level("ERROR"):
        assert report.main(["--results_dir", str(tmp_path)]) == 2
    assert "run `agkd evaluate` first" in caplog.text


def test_spearman_interval():
    rho, interval = report.spearman_with_interval([0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 2.0, 2.5, 4.0, 5.0], samples=200)
    assert rho == pytest.approx(1.0) and interval[0] <= 1.0 <= interval[1] + 1e-9
    rho, _ = report.spearman_with_interval([0.1, 0.2, 0.3, 0.4], [4.0, 3.0, 2.0, 1.0], samples=50)
    assert rho == pytest.approx(-1.0)
