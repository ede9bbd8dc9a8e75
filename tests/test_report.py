"""The report: tables with significance marks, the evidence per method, the verdict on the paper's finding, plots."""

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


def evidence(gains: dict[str, list[float]], control_gains: dict[str, list[float]] | None = None):
    """Rows of three seeds with the given per-seed gains on the primary metric (NLL deltas are minus the gain)."""
    rows = []
    for method, per_seed in {**gains, **(control_gains or {})}.items():
        for seed, gain in enumerate(per_seed):
            r = row(method, "add", gain, p=0.01 if gain > 0 else 0.5, seed=seed)
            r["bootstrap"]["nll_reference"] = {"delta": -gain, "p_value": 0.01 if gain > 0 else 0.5}
            rows.append(r)
    return report.method_evidence(rows, "nll_reference")


FINE = report.Preconditions(instrument_passed=True, baseline_bleu=[6.0, 6.1, 5.9])
CONTROLS_FLAT = {"random": [0.001, -0.001, 0.0], "uniform": [0.0, 0.0, 0.0], "diagonal": [0.002, 0.0, -0.002]}


@pytest.mark.parametrize(
    ("top", "others", "verdict"),
    [
        ([0.05, 0.06, 0.055], [0.02, 0.025, 0.021], "holds: the three gain"),
        ([0.02, 0.025, 0.021], [0.05, 0.06, 0.055], "does not hold: the three gain"),
        ([0.05, 0.02, 0.035], [0.03, 0.04, 0.036], "does not hold here: the three gain"),
    ],
)
def test_paper_claim_follows_the_interval_across_seeds(top, others, verdict):
    gains = {m: top if m in report.PAPER_TOP else others for m in ALL_METHODS}
    claim = report.paper_claim(evidence(gains, CONTROLS_FLAT), FINE, "nll_reference")
    assert claim.startswith(verdict), claim


def test_paper_claim_cannot_be_checked_without_its_preconditions():
    gains = {m: [0.05, 0.06, 0.055] if m in report.PAPER_TOP else [0.02, 0.025, 0.021] for m in ALL_METHODS}
    found = evidence(gains, CONTROLS_FLAT)
    weak = report.Preconditions(instrument_passed=True, baseline_bleu=[0.18, 0.2, 0.19])
    assert "the no-map baseline reaches only BLEU 0.18 (< 5)" in report.paper_claim(found, weak, "nll_reference")
    broken = report.Preconditions(instrument_passed=False, baseline_bleu=[6.0])
    assert "the instrument check failed" in report.paper_claim(found, broken, "nll_reference")
    unrun = report.Preconditions(instrument_passed=None, baseline_bleu=[6.0])
    assert "was not run" in report.paper_claim(found, unrun, "nll_reference")
    del gains["deeplift"]
    assert report.paper_claim(evidence(gains, CONTROLS_FLAT), FINE, "nll_reference") == (
        "cannot be checked: no results for deeplift"
    )


def test_paper_claim_needs_a_method_that_beats_the_best_control():
    # The demo's misleading case: every method +0.01, the random control best of all.
    gains = {m: [0.01, 0.01, 0.011] for m in ALL_METHODS}
    controls = {**CONTROLS_FLAT, "random": [0.012, 0.013, 0.012]}
    found = evidence(gains, controls)
    claim = report.paper_claim(found, FINE, "nll_reference")
    assert claim.startswith("cannot be checked: no attribution method teaches more than the best control map (random)")
    assert found["random"].gains_significantly  # flagged as a confound in the report
    assert not found["attention"].beats_best_control


def test_method_evidence_pools_operators_per_seed_and_counts_significant_seeds():
    rows = []
    for seed, (add, multiply) in enumerate([(0.04, 0.02), (0.05, 0.01), (-0.01, 0.03)]):
        for operator, gain in (("add", add), ("multiply", multiply)):
            r = row("attention", operator, 0.0, seed=seed)
            r["bootstrap"]["nll_reference"] = {"delta": -gain, "p_value": 0.01}
            rows.append(r)
        control = row("uniform", "add", 0.0, seed=seed)
        control["bootstrap"]["nll_reference"] = {"delta": -0.005, "p_value": 0.2}
        rows.append(control)
    found = report.method_evidence(rows, "nll_reference")
    assert found["attention"].per_seed == pytest.approx({0: 0.03, 1: 0.03, 2: 0.01})
    assert found["attention"].significant_seeds == 2  # seed 2's add row loses
    mean, low, high = found["attention"].versus_control
    assert mean == pytest.approx((0.025 + 0.025 + 0.005) / 3) and low < mean < high
    lines = report.evidence_table(found, "nll_reference")
    assert lines[0].startswith("| method | gain on `nll_reference` nats/token")
    versus = report.format_interval(mean, low, high)
    assert any(line.startswith("| attention | +0.0233 [") and line.endswith(f"| 2/3 | {versus} | no |") for line in lines)
    assert "| uniform | +0.0050 [+0.0050, +0.0050] | 0/3 | - | control: **gains significantly" in "\n".join(lines)


def test_report_from_real_results(tiny_results_dir, tiny_attributions_dir, tiny_students_dir, tmp_path):
    argv = ["--results_dir", str(tiny_results_dir), "--attributions", str(tiny_attributions_dir), "--output_dir", str(tmp_path)]
    assert report.main([*argv, "--models_dir", str(tiny_students_dir)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Attributor fidelity vs gain: marian de-en, design `scratch`" in text
    assert "Only 1 method(s) with both an Attributor and students" in text
    assert "## marian de-en, targets `reference`, design `scratch`, split `test`" in text
    assert "### Protocol `gold`: all cells" in text and "### Verdict on `nll_reference`" in text
    assert "## Instrument check" in text and "Not run" in text
    assert "| attention |" in text and "Baseline (no map): BLEU" in text
    assert "The paper's finding cannot be checked: the instrument check was not run" in text
    assert "no results for value_zeroing" in text
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["gains-marian-de-en-reference-scratch-test.png", "maps-marian-de-en.png"]
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
