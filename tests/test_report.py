"""The report: its verdict on synthetic per-sentence results whose answer is known, its tables and the real files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agkd.datasets_scripts.attribution.methods import CONTROLS, shuffled_control
from agkd.training.orchestration.presets import ALL_METHODS
from agkd.training.verdict import report
from agkd.training.verdict import statistics as verdict

pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]

PRIMARY = report.Design("supervise", "row_sum", "train-only")
GOLD = report.Design("add", "row_sum", "gold")
PASSED = {"config": {"operator": "supervise"}, "passed": True, "mde": 0.01}


def row(method, operator, delta, p=0.5, seed=0, protocol="gold"):
    return {
        "method": method, "operator": operator, "map_normalization": "none", "seed": seed, "protocol": protocol,
        "teacher_name": "marian", "pair": "de-en", "target_kind": "reference", "split": "test",
        "bootstrap": {"bleu": {"delta": delta, "p_value": p}, "chrf": {"delta": 2 * delta, "p_value": p}},
    }


def test_table_cells_marks_and_seed_spread():
    rows = [
        row("attention", "add", 1.0, p=0.001),
        row("attention", "add", 3.0, p=0.03, seed=1),
        row("saliency", "replace", -0.5),
    ]
    table = report.results_table(rows)
    assert "| method | add | replace |" in table
    assert "| attention | +2.00±1.41* / +4.00±2.83* |  |" in table  # weakest mark over the seeds
    assert "| saliency |  | -0.50 / -1.00 |" in table
    disagree = [row("attention", "add", 1.0, p=0.001), row("attention", "add", -0.2, p=0.01, seed=1)]
    assert "*" not in report.results_table(disagree).splitlines()[-1]  # seeds disagree in sign: no mark


def synthetic_scores(effects: dict[str, float], seeds=3, sentences=100, seed_noise=0.002, rng=0) -> report.Scores:
    """Per-sentence NLL sums of systems whose per-token gain over the baseline is `effects[system]` (keys are method
    or control names under the primary design, `name@gold` under the gold design), with shared sentence difficulty,
    per-(system, seed) training noise and per-sentence noise."""
    generator = np.random.default_rng(rng)
    tokens = generator.integers(10, 40, sentences)
    difficulty = generator.normal(3.0, 0.5, sentences)
    by_system = {}
    for name, effect in {report.BASELINE: 0.0, **effects}.items():
        offsets = generator.normal(0, seed_noise, seeds)
        by_system[name if name == report.BASELINE else key_of(name)] = {
            s: (difficulty - effect + offsets[s] + generator.normal(0, 0.05, sentences)) * tokens for s in range(seeds)
        }
    return report.Scores(by_system, tokens)


def key_of(name: str) -> str:
    method, _, design = name.partition("@")
    return report.system(method, GOLD if design == "gold" else PRIMARY)


def judged(effects: dict[str, float], **kwargs) -> tuple[report.DesignVerdict, str]:
    methods = [m for m in ALL_METHODS if m in effects]
    controls = [c for c in (*CONTROLS, *(shuffled_control(m) for m in methods)) if c in effects]
    result = report.judge_design(synthetic_scores(effects, **kwargs), PRIMARY, methods, controls, GOLD)
    problems = report.Preconditions(PASSED, [8.0, 8.1, 7.9]).failures(PRIMARY, methods, 3)
    return result, report.verdict_sentence(result, problems)


def with_twins(gains: dict[str, float], twin: float = 0.0) -> dict[str, float]:
    return {**gains, **{shuffled_control(m): twin for m in gains}, "diagonal": 0.0, "random": 0.0, "uniform": 0.0}


def test_the_claim_holds_when_the_three_teach_more_alignment_than_the_five():
    gains = {m: 0.20 if m in verdict.PAPER_TOP else 0.05 for m in ALL_METHODS}
    result, sentence = judged(with_twins(gains))
    assert sentence.startswith("**The paper's finding holds here**"), sentence
    assert result.contrasts["attention"]["shuffled"].mean == pytest.approx(0.20, abs=0.02)


def test_a_gain_that_the_shuffled_twin_has_too_is_not_alignment():
    # Built to fool a gain-over-baseline verdict: the three gain much more over no map, but so do their shuffled
    # twins (sharpness, not alignment): over the twins every method gains the same.
    gains = {m: 0.20 if m in verdict.PAPER_TOP else 0.05 for m in ALL_METHODS}
    twins = {shuffled_control(m): g - 0.05 for m, g in gains.items()}
    result, sentence = judged({**with_twins(gains), **twins})
    assert result.claim.answer != "holds" and "The paper's finding holds" not in sentence
    assert result.contrasts["attention"]["baseline"].mean > 0.15


def test_one_strong_method_cannot_carry_its_group_and_a_negative_contrast_refutes():
    gains = {m: 0.05 for m in ALL_METHODS} | {"attention": 0.5, "saliency": 0.15}
    _, sentence = judged(with_twins(gains))
    assert sentence.startswith("**The paper's finding does not hold here**"), sentence
    assert "saliency" in sentence


def test_wide_noise_is_inconclusive_not_a_refutation():
    gains = {m: 0.0 for m in ALL_METHODS}
    _, sentence = judged(with_twins(gains), seed_noise=0.2)
    assert sentence.startswith("**The paper's finding is inconclusive here**"), sentence


def test_preconditions_make_it_cannot_be_checked():
    gains = with_twins({m: 0.2 for m in ALL_METHODS})
    result, _ = judged(gains)
    failed = {"config": {"operator": "supervise"}, "passed": False, "mde": 0.3, "detects": False, "violations": [],
              "levels": [{"over_shuffled": {"mean": 0.01, "low": -0.2, "high": 0.22}}]}
    problems = report.Preconditions(failed, [8.0]).failures(PRIMARY, list(ALL_METHODS), 3)
    sentence = report.verdict_sentence(result, problems)
    assert sentence.startswith("**The paper's finding cannot be checked here**: this design cannot detect a planted")
    assert "0.3000 nats/token" in sentence
    weak = report.Preconditions(PASSED, [0.18]).failures(PRIMARY, ALL_METHODS[:-1], 1)
    assert any("BLEU 0.18 (< 5)" in p for p in weak) and "no results for gradient_shap" in weak
    assert "1 seed(s): no interval across seeds" in weak
    assert report.Preconditions(None, [8.0]).failures(PRIMARY, list(ALL_METHODS), 3)[0].startswith(
        "the positive control was not run")


def test_a_control_passed_at_steps_the_students_never_reached_certifies_nothing():
    control = {**PASSED, "cells": [{"map": "oracle@0", "best_step": 240}] * 3 + [{"map": "none", "best_step": 240}]}
    problems = report.Preconditions(control, [8.0], student_best_steps=[40, 40, 80]).failures(
        PRIMARY, list(ALL_METHODS), 3
    )
    assert problems == [
        "the positive control passed with its students at step 240 (median), but the real students kept the weights of "
        "step 40: a regime they did not reach (more map-annotated pairs would give them that room)"
    ]
    assert not report.Preconditions(control, [8.0], student_best_steps=[240, 200, 240]).failures(
        PRIMARY, list(ALL_METHODS), 3)


def test_missing_seeds_and_the_gold_leak():
    gains = with_twins({m: 0.05 for m in ALL_METHODS}) | {f"{m}@gold": 0.30 for m in ALL_METHODS}
    scores = synthetic_scores(gains)
    del scores.by_system[report.system("deeplift", PRIMARY)][1]
    del scores.by_system[report.system("deeplift", PRIMARY)][2]
    result = report.judge_design(scores, PRIMARY, list(ALL_METHODS), [], GOLD)
    assert result.claim.answer == "inconclusive" and "deeplift" in result.claim.reason
    assert result.leak["attention"].mean == pytest.approx(0.25, abs=0.02)  # gold gain minus leak-free gain
    table = "\n".join(report.method_table(result))
    assert "| deeplift | -0.0" in table or "| deeplift | +0.0" in table
    assert "(fewer than 2 seeds (1))" in table.split("| deeplift |")[1].splitlines()[0]


def write_synthetic_results(results_dir, effects: dict[str, float], instrument: dict | None) -> None:
    """results.jsonl rows and token_statistics files for `effects` (as `synthetic_scores`), baseline BLEU 8."""
    scores = synthetic_scores(effects)
    (results_dir / "token_statistics").mkdir(parents=True)
    with (results_dir / "results.jsonl").open("w") as f:
        for key, per_seed in scores.by_system.items():
            method, operator, normalization, protocol = (
                (report.BASELINE, "none", "none", report.BASELINE) if key == report.BASELINE else key.split(" | ")
            )
            for seed, nll in per_seed.items():
                student = f"student-{method}-{operator}-{protocol}-s{seed}"
                np.savez(results_dir / "token_statistics" / f"{student}.test.{protocol}.reference.npz", nll=nll,
                         correct=np.zeros_like(scores.tokens), tokens=scores.tokens)
                gain = float(scores.by_system[report.BASELINE][seed].sum() - nll.sum()) / scores.tokens.sum()
                f.write(
                    json.dumps(
                        {
                            "student": student,
                            "method": method,
                            "operator": operator,
                            "map_normalization": normalization,
                            "protocol": protocol,
                            "seed": seed,
                            "teacher_name": "marian",
                            "pair": "de-en",
                            "target_kind": "reference",
                            "student_init": "warm",
                            "split": "test",
                            "bleu": 8.0,
                            "chrf": 30.0,
                            "examples": 100,
                            "bleu_signature": "sig",
                            "nll_reference": float(nll.sum() / scores.tokens.sum()),
                            "bootstrap": {}
                            if method == report.BASELINE
                            else {
                                "bleu": {"delta": 0.0, "p_value": 0.5},
                                "chrf": {"delta": 0.0, "p_value": 0.5},
                                "nll_reference": {"delta": -gain, "p_value": 0.01},
                            },
                        }
                    )
                    + "\n"
                )
    if instrument is not None:
        (results_dir / "instrument_check.json").write_text(json.dumps(instrument))


def test_report_leads_with_the_verdict_on_the_primary_design(tmp_path):
    from agkd.training.evaluation.scoring import TokenStatistics
    from agkd.training.instrument import InstrumentConfig, judge

    # A real judged instrument result (synthetic statistics) so the report reads what `agkd instrument` writes.
    rng = np.random.default_rng(5)
    tokens = rng.integers(5, 10, 50)
    def stats(effect):
        return [
            TokenStatistics((2.0 - effect + rng.normal(0, 0.01, 50)) * tokens, tokens * 0, tokens) for _ in range(3)
        ]

    kinds = {"none": 0.0, "shuffled": 0.0, **{f"oracle@{q:g}": 0.3 * (1 - q) for q in (0, 0.25, 0.5, 0.75, 1)}}
    instrument = {"config": {**vars(InstrumentConfig()), "seeds": [0, 1, 2]}, "primary_metric": "nll_reference",
                  "criteria": {"power": 0.8}, "seconds": 1.0, "cells": [{"map": "oracle@0", "best_step": 80}],
                  **judge({k: stats(e) for k, e in kinds.items()}, InstrumentConfig())}
    assert instrument["passed"]
    gains = with_twins({m: 0.20 if m in verdict.PAPER_TOP else 0.05 for m in ALL_METHODS})
    write_synthetic_results(tmp_path, gains | {f"{m}@gold": 0.3 for m in ALL_METHODS}, instrument)
    assert report.main(["--results_dir", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    first_screen = text[: text.index("## Instrument check")]
    assert "Primary design: operator `supervise`, protocol `train-only`" in first_screen
    assert "**The paper's finding holds here**" in first_screen
    assert "| attention | +0.2" in first_screen and "gold gain (add, leaks)" in first_screen
    assert "![gains by method](plots/gains-" in first_screen
    assert "The design sees a planted alignment" in text
    assert len(list((tmp_path / "plots").glob("gains-*.png"))) == 1


def test_report_from_real_results(tiny_results_dir, tiny_attributions_dir, tiny_students_dir, tmp_path):
    argv = [
        "--results_dir",
        str(tiny_results_dir),
        "--attributions",
        str(tiny_attributions_dir),
        "--output_dir",
        str(tmp_path),
    ]
    assert report.main([*argv, "--models_dir", str(tiny_students_dir)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Verdict: marian de-en, targets `reference`, init `scratch`, split `test`" in text
    assert "### Design `supervise` (`none`), protocol `train-only` (carries the verdict)" in text
    assert "### Protocol `gold`: all cells" in text and "### Protocol `train-only`: all cells" in text
    assert "## Instrument check" in text and "Not run" in text
    assert "Baseline (no map): BLEU" in text
    assert "## Map scale: marian de-en (`train` rows, medians)" in text and "| attention | 1 |" in text
    assert "The paper's finding cannot be checked here**: the positive control was not run" in text
    assert "no results for value_zeroing" in text
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert "maps-marian-de-en.png" in pngs and any(p.startswith("gains-") for p in pngs)
    assert "## Learning curves" in text and "learning-curves-marian-de-en.png" in pngs  # from the students' run records


def test_report_without_results_says_so(tmp_path, caplog):
    with caplog.at_level("ERROR"):
        assert report.main(["--results_dir", str(tmp_path)]) == 2
    assert "run `agkd evaluate` first" in caplog.text


def test_spearman_interval():
    rho, interval = report.spearman_with_interval([0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 2.0, 2.5, 4.0, 5.0], samples=200)
    assert rho == pytest.approx(1.0) and interval[0] <= 1.0 <= interval[1] + 1e-9
    rho, _ = report.spearman_with_interval([0.1, 0.2, 0.3, 0.4], [4.0, 3.0, 2.0, 1.0], samples=50)
    assert rho == pytest.approx(-1.0)


def write_synthetic_triangulation(results_dir, silver_aer: dict[str, float], sentences=100, fails=("saliency",)):
    """What `agkd triangulate` writes (through its own writer), for methods whose silver AER is `silver_aer[m]`
    in every sentence, and AOPC / sanity figures that rank the methods in the opposite order."""
    from agkd.training.triangulation.triangulate import PRIMARY_READING, TriangulateArguments, write_outputs

    methods = list(silver_aer)
    counts = {m: [[10 * (1 - a), 10 * (1 - a), 10, 10]] * sentences for m, a in silver_aer.items()}
    readings = {m: [{**PRIMARY_READING, "aer": a, "precision": 1 - a, "recall": 1 - a}] for m, a in silver_aer.items()}
    aopc = {m: {"deletion": a, "insertion": a, "deletion_per_sentence": [a] * sentences,
                "insertion_per_sentence": [a] * sentences} for m, a in silver_aer.items()}
    summary = {
        "teacher": "t", "teacher_name": "marian", "pair": "de-en", "split": "test", "primary_reading": PRIMARY_READING,
        "names": methods, "methods": methods,
        "silver": {"readings": readings, "sentence_counts": counts, "train_pairs": 5000, "sentences": sentences},
        "faithfulness": {"configs": aopc, "readings": {"reference": {"unk": aopc}}, "pairs": sentences,
                         "positions": {"reference": list(range(sentences))}},
        "sanity": {"stages": ["decoder+encoder", "full"], "decision_stage": "decoder+encoder", "threshold": 0.5,
                   "max_degenerate_share": 0.5, "pairs": 10, "positions": list(range(0, sentences, sentences // 10)),
                   "methods": {m: {"decoder+encoder": [0.9 if m in fails else a] * 10, "full": [0.1] * 10}
                               for m, a in silver_aer.items()},
                   "degenerate_share": {m: {"decoder+encoder": 0.0, "full": 0.0} for m in methods},
                   "verdicts": {m: "fails" if m in fails else "passes" for m in methods}},
    }
    args = TriangulateArguments(teacher="t", pair="de-en", results_dir=str(results_dir))
    write_outputs(args, results_dir / "triangulation", "marian.de-en", [f"id{i}" for i in range(sentences)], summary)


def test_report_sets_the_triangulation_beside_the_verdict(tmp_path):
    """Utility ranks the methods as silver AER does (lower AER, more gain) and opposite to AOPC: the agreement table
    must say `agree` for the first and `disagree` for the second; the failing sanity check is named."""
    gains = {m: 0.02 * k for k, m in enumerate(ALL_METHODS)}
    write_synthetic_results(tmp_path, with_twins(gains), None)
    write_synthetic_triangulation(tmp_path, {m: 0.9 - 0.1 * k for k, m in enumerate(ALL_METHODS)})
    assert report.main(["--results_dir", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    section = text[text.index("## Beside the verdict"):]
    assert text.index("## Beside the verdict") < text.index("## Instrument check")  # on the first screen
    assert "| `saliency` |" in section and "**fails**" in section
    assert "| utility vs 1 - silver AER | 1.00 |" in section and "| agree |" in section
    assert "| utility vs AOPC deletion | -1.00 |" in section and "| disagree |" in section
    assert "![ranks by criterion](plots/triangulation-" in section
    assert len(list((tmp_path / "plots").glob("triangulation-*.png"))) == 1
    from agkd.space.repo import page_excerpt, triangulation_sections

    excerpt = page_excerpt(text)  # what the release's Space folder gets: no folder of this machine, no plots
    assert str(tmp_path) in text and str(tmp_path) not in excerpt and "![" not in excerpt
    assert "**The paper's finding" in excerpt and "| utility vs 1 - silver AER | 1.00 |" in excerpt
    assert triangulation_sections(excerpt, "de-en", "marian") == triangulation_sections(text, "de-en", "marian")
