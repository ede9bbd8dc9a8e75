"""The report: its verdict on synthetic per-sentence results whose answer is known, its tables and the real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agkd.datasets_scripts.attribution.methods import CONTROLS, shuffled_control
from agkd.training.presets import ALL_METHODS
from agkd.training.verdict import design, report, tables
from agkd.training.verdict import statistics as verdict

pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]

PRIMARY = design.Design("supervise", "row_sum", "train-only")
GOLD = design.Design("add", "row_sum", "gold")
PASSED = {"config": {"operator": "supervise"}, "passed": True, "mde": 0.01, "checks": []}
LEAD = design.VERDICT_LEAD + ", " + design.MECHANISM


def lead(answer: str) -> str:
    return f"{LEAD}, {design.ANSWER_WORDS[answer]}**"


def row(method, operator, delta, p=0.5, seed=0, protocol="gold"):
    return {
        "method": method, "operator": operator, "map_normalization": "none", "seed": seed, "protocol": protocol,
        "teacher_name": "marian", "pair": "de-en", "target_kind": "reference", "split": "test",
        "bootstrap": {"bleu": {"delta": delta, "p_value": p}, "chrf": {"delta": 2 * delta, "p_value": p}},
    }


def test_table_cells_show_the_seed_spread_and_no_marks():
    rows = [
        row("attention", "add", 1.0, p=0.001),
        row("attention", "add", 3.0, p=0.03, seed=1),
        row("saliency", "replace", -0.5),
    ]
    table = tables.results_table(rows)
    assert "| method | add | replace |" in table
    assert "| attention | +2.00±1.41 / +4.00±2.83 |  |" in table  # a per-row bootstrap is not the verdict's rule
    assert "| saliency |  | -0.50 / -1.00 |" in table and "*" not in table


def synthetic_scores(effects: dict[str, float], seeds=3, sentences=100, seed_noise=0.002, rng=0) -> report.Scores:
    """Per-sentence NLL sums of systems whose per-token gain over the baseline is `effects[system]` (keys are method
    or control names under the primary design, `name@gold` under the gold design), with shared sentence difficulty,
    per-(system, seed) training noise and per-sentence noise."""
    generator = np.random.default_rng(rng)
    tokens = generator.integers(10, 40, sentences)
    difficulty = generator.normal(3.0, 0.5, sentences)
    by_system = {}
    for name, effect in {design.BASELINE: 0.0, **effects}.items():
        offsets = generator.normal(0, seed_noise, seeds)
        by_system[name if name == design.BASELINE else key_of(name)] = {
            s: (difficulty - effect + offsets[s] + generator.normal(0, 0.05, sentences)) * tokens for s in range(seeds)
        }
    return design.Scores(by_system, tokens)


def key_of(name: str) -> str:
    method, _, where = name.partition("@")
    return design.system(method, GOLD if where == "gold" else PRIMARY)


def judged(effects: dict[str, float], **kwargs) -> tuple[design.DesignVerdict, str]:
    methods = [m for m in ALL_METHODS if m in effects]
    controls = [c for c in (*CONTROLS, *(shuffled_control(m) for m in methods)) if c in effects]
    result = design.judge_design(synthetic_scores(effects, **kwargs), PRIMARY, methods, controls, GOLD,
                                 mde_experiments=200)
    problems = design.Preconditions(PASSED, [8.0, 8.1, 7.9]).failures(PRIMARY, methods, 3)
    return result, design.verdict_sentence(result, problems)


def with_twins(gains: dict[str, float], twin: float = 0.0) -> dict[str, float]:
    return {**gains, **{shuffled_control(m): twin for m in gains}, "diagonal": 0.0, "random": 0.0, "uniform": 0.0}


def test_the_claim_holds_when_the_three_teach_more_than_the_five():
    gains = {m: 0.20 if m in verdict.PAPER_TOP else 0.05 for m in ALL_METHODS}
    result, sentence = judged(with_twins(gains))
    assert sentence.startswith(lead(verdict.HOLDS)), sentence
    assert "attention silent" not in sentence and "15 direct contrasts" in sentence
    assert result.claim_contrasts[("attention", "saliency")].mean == pytest.approx(0.15, abs=0.02)
    assert result.content.answer == verdict.HOLDS and result.disagreement() is None
    assert result.seeds == [0, 1, 2] and len(set(result.units.values())) == 3


def test_a_gain_that_the_shuffled_twin_has_too_is_flagged_by_the_content_check():
    # Built to fool a gain-over-baseline verdict: the three gain much more over no map, but so do their shuffled
    # twins (sharpness, not alignment): the direct claim holds, the content check does not, and the section says so.
    gains = {m: 0.20 if m in verdict.PAPER_TOP else 0.05 for m in ALL_METHODS}
    twins = {shuffled_control(m): g - 0.05 for m, g in gains.items()}
    result, sentence = judged({**with_twins(gains), **twins})
    assert result.claim.answer == verdict.HOLDS and result.content.answer != verdict.HOLDS
    assert result.disagreement() is not None
    section = "\n".join(report.design_section(result, [], True, Path("/tmp/agkd-test-plot.png"), Path("/tmp")))
    assert "**The two disagree**" in section


def test_one_strong_method_cannot_carry_its_group_and_a_negative_contrast_refutes():
    gains = {m: 0.05 for m in ALL_METHODS} | {"attention": 0.5, "saliency": 0.15}
    _, sentence = judged(with_twins(gains))
    assert sentence.startswith(lead(verdict.DOES_NOT_HOLD)), sentence
    assert "saliency" in sentence


def test_wide_noise_is_inconclusive_not_a_refutation():
    gains = {m: 0.0 for m in ALL_METHODS}
    result, sentence = judged(with_twins(gains), seed_noise=0.2)
    assert sentence.startswith(lead(verdict.INCONCLUSIVE)), sentence
    # and the power section says that no answer is reachable at this size, and what would change that
    power = "\n".join(report.power_lines(result))
    assert result.claim.mdes[verdict.HOLDS] > verdict.EQUIVALENCE_BOUND
    assert "cannot detect an effect of the bound" in power and "bench_verdict_power.py" in power
    quiet, _ = judged(with_twins(gains), seeds=8, seed_noise=0.0005, sentences=1000)
    assert quiet.claim.mdes[verdict.HOLDS] < verdict.EQUIVALENCE_BOUND
    assert "cannot detect an effect of the bound" not in "\n".join(report.power_lines(quiet))


def test_preconditions_make_it_cannot_be_checked():
    gains = with_twins({m: 0.2 for m in ALL_METHODS})
    result, _ = judged(gains)
    failed = {"config": {"operator": "supervise"}, "passed": False, "mde": 0.3,
              "checks": [{"name": "content over layout", "passed": False, "reason": "content over layout: no"}]}
    problems = design.Preconditions(failed, [8.0]).failures(PRIMARY, list(ALL_METHODS), 3)
    sentence = design.verdict_sentence(result, problems)
    assert sentence.startswith(f"{LEAD}, cannot be checked here**: this design cannot detect planted alignment")
    assert "content over layout: no" in sentence
    assert "0.3000 nats/token" in sentence
    weak = design.Preconditions(PASSED, [0.18]).failures(PRIMARY, ALL_METHODS[:-1], 1)
    assert any("BLEU 0.18 (< 5)" in p for p in weak) and "no results for gradient_shap" in weak
    assert "1 independent replicate(s): no interval across trainings" in weak
    assert design.Preconditions(None, [8.0]).failures(PRIMARY, list(ALL_METHODS), 3)[0].startswith(
        "the positive control was not run")


def test_a_control_passed_at_steps_the_students_never_reached_certifies_nothing():
    control = {**PASSED, "cells": [{"map": "oracle@0", "best_step": 240}] * 3 + [{"map": "none", "best_step": 240}]}
    problems = design.Preconditions(control, [8.0], student_best_steps=[40, 40, 80]).failures(
        PRIMARY, list(ALL_METHODS), 3
    )
    assert problems == [
        "the positive control passed with its students at step 240 (median), but the real students kept the weights of "
        "step 40: a regime they did not reach (more map-annotated pairs would give them that room)"
    ]
    assert not design.Preconditions(control, [8.0], student_best_steps=[240, 200, 240]).failures(
        PRIMARY, list(ALL_METHODS), 3)
    regime = {"operator": "supervise", "student_init": "warm", "finetune_steps": 80, "dropout": 0.0}
    other = {**PASSED, "regime": {**regime, "finetune_steps": 240, "dropout": 0.1}}
    problems = design.Preconditions(other, [8.0], student_regime=regime).failures(PRIMARY, list(ALL_METHODS), 3)
    assert problems == ["the positive control ran another regime than the students (finetune_steps: control 240, "
                        "students 80)"]  # the dropout difference is listed in the report, it does not void


def test_missing_seeds_and_the_gold_leak():
    gains = with_twins({m: 0.05 for m in ALL_METHODS}) | {f"{m}@gold": 0.30 for m in ALL_METHODS}
    scores = synthetic_scores(gains)
    del scores.by_system[design.system("deeplift", PRIMARY)][1]
    del scores.by_system[design.system("deeplift", PRIMARY)][2]
    result = design.judge_design(scores, PRIMARY, list(ALL_METHODS), [], GOLD, mde_experiments=0)
    assert result.claim.answer == verdict.INCONCLUSIVE and "common seed set" in result.claim.reason
    assert "deeplift | supervise | row_sum | train-only (seeds 1, 2)" in result.claim.reason
    assert result.leak["attention"].mean == pytest.approx(0.25, abs=0.02)  # gold gain minus leak-free gain
    table = "\n".join(tables.method_table(result))
    assert "| deeplift | -0.0" in table or "| deeplift | +0.0" in table
    assert "(fewer than 2 independent replicates (1))" in table.split("| deeplift |")[1].splitlines()[0]
    assert "| over diagonal |" in table and "Not trained in this grid" not in table


def test_a_control_the_grid_did_not_train_is_not_a_column_of_n_a():
    """The demo trades the diagonal control: its column would be eight "n/a (no results for diagonal ...)" cells."""
    gains = {k: v for k, v in with_twins({m: 0.05 for m in ALL_METHODS}).items() if k != "diagonal"}
    result = design.judge_design(synthetic_scores(gains), PRIMARY, list(ALL_METHODS), [], None, mde_experiments=0)
    table = "\n".join(tables.method_table(result))
    assert "diagonal |" not in table.splitlines()[0] and "no results for diagonal" not in table
    assert table.splitlines()[1] == "|---|---|---|---|---|"  # method, over no map, over its twin, gold, leak
    assert "Not trained in this grid, so not a column: diagonal" in table


def write_synthetic_results(results_dir, effects: dict[str, float], instrument: dict | None,
                            train_pairs: int | None = None, rng: int = 0) -> None:
    """results.jsonl rows and token_statistics files for `effects` (as `synthetic_scores`), baseline BLEU 8; with
    `train_pairs`, a learning-curve point appended to the rows already there."""
    scores = synthetic_scores(effects, rng=rng)
    (results_dir / "token_statistics").mkdir(parents=True, exist_ok=True)
    with (results_dir / "results.jsonl").open("a") as f:
        for key, per_seed in scores.by_system.items():
            method, operator, normalization, protocol = (
                (design.BASELINE, "none", "none", design.BASELINE) if key == design.BASELINE else key.split(" | ")
            )
            for seed, nll in per_seed.items():
                student = f"student-{method}-{operator}-{protocol}{f'-p{train_pairs}' if train_pairs else ''}-s{seed}"
                for suffix in ("", ".all") if protocol in ("train-only", design.BASELINE) else ("",):
                    np.savez(results_dir / "token_statistics" / f"{student}.test.{protocol}.reference{suffix}.npz",
                             nll=nll, correct=np.zeros_like(scores.tokens), tokens=scores.tokens)
                gain = float(scores.by_system[design.BASELINE][seed].sum() - nll.sum()) / scores.tokens.sum()
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
                            "train_pairs": train_pairs,
                            "preset": "demo",
                            "split": "test",
                            "bleu": 8.0,
                            "chrf": 30.0,
                            "examples": 100,
                            "bleu_signature": "sig",
                            "nll_reference": float(nll.sum() / scores.tokens.sum()),
                            "bootstrap": {}
                            if method == design.BASELINE
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
    from agkd.training.verdict.control import InstrumentConfig, judge

    # A real judged positive control (synthetic statistics) so the report reads what `agkd instrument` writes.
    rng = np.random.default_rng(5)
    tokens = rng.integers(5, 10, 50)

    def stats(effect):
        return [
            TokenStatistics((2.0 - effect + rng.normal(0, 0.01, 50)) * tokens, tokens * 0, tokens) for _ in range(3)
        ]

    kinds = {"none": 0.0, "shuffled": 0.0, **{f"oracle@{q:g}": 0.3 * (1 - q) for q in (0, 0.25, 0.5, 0.75, 1)}}
    config = InstrumentConfig(seeds=(0, 1, 2))
    instrument = {"config": vars(config), "regime": config.regime(), "primary_metric": "nll_reference",
                  "criteria": {"power": 0.8}, "seconds": 1.0, "cells": [{"map": "oracle@0", "best_step": 80}],
                  **judge({k: stats(e) for k, e in kinds.items()}, ["a", "b", "c"])}
    assert instrument["passed"]
    gains = with_twins({m: 0.20 if m in verdict.PAPER_TOP else 0.05 for m in ALL_METHODS})
    write_synthetic_results(tmp_path, gains | {f"{m}@gold": 0.3 for m in ALL_METHODS}, instrument)
    assert report.main(["--results_dir", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    first_screen = text[: text.index("## Positive control")]
    assert "Primary design: operator `supervise`, protocol `train-only`" in first_screen
    assert lead(verdict.HOLDS) in first_screen
    assert "| attention | +0.2" in first_screen and "gold gain (add, leaks)" in first_screen
    assert "the whole test split" in first_screen and "Variance of the typical contrast" in first_screen
    assert "No analysis plan was written before this run" in first_screen
    assert "![gains by method](plots/gains-" in first_screen
    assert "The design sees planted alignment content" in text
    assert len(list((tmp_path / "plots").glob("gains-*.png"))) == 1
    record = json.loads((tmp_path / "verdict.json").read_text())
    (only,) = record.values()
    assert only["answer"] == verdict.HOLDS and only["methods"]["attention"]["baseline"]["mark"]


def test_learning_curve_rows_stay_out_of_the_verdict_and_get_their_own_section(tmp_path):
    """Students trained on a part of the annotated pairs are a curve point: the verdict reads the grid's rows only
    (the same verdict.json with and without them), and the curve section shows each point against its own baseline."""
    write_synthetic_results(tmp_path, with_twins({m: 0.20 if m in verdict.PAPER_TOP else 0.05 for m in ALL_METHODS}),
                            None)
    assert report.main(["--results_dir", str(tmp_path)]) == 0
    before = (tmp_path / "verdict.json").read_text()
    assert "Where maps teach" not in (tmp_path / "report.md").read_text()
    write_synthetic_results(tmp_path, {m: 0.0 for m in ALL_METHODS}, None, train_pairs=300, rng=1)
    assert report.main(["--results_dir", str(tmp_path)]) == 0
    assert (tmp_path / "verdict.json").read_text() == before
    text = (tmp_path / "report.md").read_text()
    section = text[text.index("## Where maps teach"):]
    point, full = (next(line for line in section.splitlines() if line.startswith(f"| {label}"))
                   for label in ("300 |", "400 (the verdict's)"))
    top_over_rest = [float(line.split("|")[2].split()[0]) for line in (point, full)]
    assert abs(top_over_rest[0]) < 0.02 and abs(top_over_rest[1] - 0.15) < 0.02
    assert len(list((tmp_path / "plots").glob("curve-*.png"))) == 1


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
    assert "## Positive control" in text and "Not run" in text
    assert "Baseline (no map): BLEU" in text
    assert "## Map scale: marian de-en (`train` rows, medians)" in text and "| attention | 1 |" in text
    assert f"{LEAD}, cannot be checked here**: the positive control was not run" in text
    assert "no results for value_zeroing" in text
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert "maps-marian-de-en.png" in pngs and any(p.startswith("gains-") for p in pngs)
    assert "## Learning curves" in text and "learning-curves-marian-de-en.png" in pngs  # from the students' run records


def test_report_without_results_says_so(tmp_path, caplog):
    with caplog.at_level("ERROR"):
        assert report.main(["--results_dir", str(tmp_path)]) == 2
    assert "run `agkd evaluate` first" in caplog.text


def test_spearman_interval():
    rho, interval = verdict.spearman_with_interval([0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 2.0, 2.5, 4.0, 5.0], samples=200)
    assert rho == pytest.approx(1.0) and interval[0] <= 1.0 <= interval[1] + 1e-9
    rho, _ = verdict.spearman_with_interval([0.1, 0.2, 0.3, 0.4], [4.0, 3.0, 2.0, 1.0], samples=50)
    assert rho == pytest.approx(-1.0)


def write_synthetic_triangulation(results_dir, silver_aer: dict[str, float], sentences=100, fails=("saliency",)):
    """What `agkd triangulate` writes (through its own writer), for methods whose silver AER is `silver_aer[m]`
    in every sentence, and AOPC / sanity figures that rank the methods in the opposite order."""
    from agkd.training.triangulation.alignment import PRIMARY_READING
    from agkd.training.triangulation.triangulate import TriangulateArguments, write_outputs

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
    assert text.index("## Beside the verdict") < text.index("## Positive control")  # on the first screen
    assert "| `saliency` |" in section and "**fails**" in section
    from agkd.training.triangulation.table import STEP_ACCESS_NOTE

    # review M1/M2: the primary reading named as the literature's convention, and what each kind of row sees
    assert "the literature's piece-argmax-union convention" in section and STEP_ACCESS_NOTE in section
    assert "| utility vs 1 - silver AER | 1.00 |" in section and "| agree |" in section
    assert "| utility vs AOPC deletion | -1.00 |" in section and "| disagree |" in section
    assert "![ranks by criterion](plots/triangulation-" in section
    assert len(list((tmp_path / "plots").glob("triangulation-*.png"))) == 1
    from agkd.space.release import page_excerpt, triangulation_sections

    excerpt = page_excerpt(text)  # what the release's Space folder gets: no folder of this machine, no plots
    assert str(tmp_path) in text and str(tmp_path) not in excerpt and "![" not in excerpt
    assert design.VERDICT_LEAD in excerpt and "| utility vs 1 - silver AER | 1.00 |" in excerpt
    assert triangulation_sections(excerpt, "de-en", "marian") == triangulation_sections(text, "de-en", "marian")
