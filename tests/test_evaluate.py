"""Evaluation under the test-time protocols: rows, bootstrap against the baseline, append-only resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agkd.datasets_scripts import release_layout as layout
from agkd.training.evaluation import evaluate, scoring

pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    words = "the dog cat man woman house tree book sees loves finds has today often never".split()
    references = [" ".join(rng.choice(words, 8)) for _ in range(120)]
    good = [r if i % 5 else " ".join(r.split()[:-2]) for i, r in enumerate(references)]
    bad = [" ".join(r.split()[::2]) for r in references]
    better = scoring.paired_bootstrap(good, bad, references, samples=200, seed=1)
    assert better["bleu"]["delta"] > 10 and better["bleu"]["p_value"] < 0.01
    assert better["bleu"]["ci95"][0] > 0
    same = scoring.paired_bootstrap(good, good, references, samples=200, seed=1)
    assert same["chrf"]["delta"] == 0 and same["chrf"]["p_value"] == 1.0


@pytest.fixture(scope="module")
def evaluated(tiny_results_dir, tiny_students_dir, tiny_attributions_dir, toy_corpus_dir):
    from tiny_release import evaluate_argv

    return tiny_results_dir, evaluate_argv(tiny_students_dir, tiny_attributions_dir, toy_corpus_dir, tiny_results_dir)


def test_protocols_sort_in_reading_order():
    """Cards and the Space list results in one order: the baseline, the map protocols from the most map information
    at test time to the least, then any other protocol by name."""
    names = ["train-only", "zeta", "attributor", "none", "teacher", "gold", "alpha"]
    assert sorted(names, key=layout.protocol_order) == [
        "none",
        "gold",
        "teacher",
        "attributor",
        "train-only",
        "alpha",
        "zeta",
    ]


def test_rows_for_every_protocol_with_provenance(evaluated):
    results, _ = evaluated
    rows = layout.read_results(results / "results.jsonl")
    by_protocol = {(r["method"], r["protocol"]): r for r in rows}
    assert set(by_protocol) == {
        ("none", "none"),
        ("attention", "gold"),
        ("attention", "teacher"),
        ("attention", "train-only"),
        ("attention", "attributor"),
    }
    for row in rows:
        assert row["examples"] == 48 and row["split"] == "test"
        assert row["bleu_signature"].startswith("nrefs:1|case:mixed") and "chrf_signature" in row
        assert (results / row["hypotheses"]).read_text().count("\n") == 48
    gold = by_protocol[("attention", "gold")]
    assert gold["baseline"] == "student-marian-de-en-none-s0"
    metrics = {"nll_reference", "agreement_reference", "nll_teacher", "agreement_teacher"}
    assert set(gold["bootstrap"]) == {"bleu", "chrf"} | metrics and 0 < gold["bootstrap"]["bleu"]["p_value"] <= 1
    assert gold["examples_without_map"] == 0
    for row in rows:  # teacher-forced on every target, with the row's injection
        assert row["primary_metric"] == "nll_reference" and row["student_init"] == "scratch"
        assert (
            all(row[m] is not None for m in metrics) and 0 <= row["agreement_teacher"] <= 1 and row["nll_reference"] > 0
        )
        assert row["forced_tokens"]["reference"] > 48 and row["forced_tokens"]["teacher"] > 48
        assert (results / "token_statistics" / f"{row['student']}.test.{row['protocol']}.reference.npz").exists()
    # The stored per-sentence sums reproduce the row's figure and its paired bootstrap; the map changes the forced
    # decode (gold injects it, train-only does not).
    from agkd.training.evaluation.scoring import TokenStatistics, paired_bootstrap_tokens

    stats = {p: TokenStatistics.load(results / "token_statistics" / f"{r['student']}.test.{p}.reference.npz")
             for (m, p), r in by_protocol.items()}
    assert gold["nll_reference"] == pytest.approx(stats["gold"].corpus()["nll"])
    paired = paired_bootstrap_tokens(stats["gold"], stats["none"], samples=50, seed=12345)
    assert gold["bootstrap"]["nll_reference"] == pytest.approx(paired["nll"])
    assert gold["nll_reference"] != by_protocol[("attention", "train-only")]["nll_reference"]


def test_cards_carry_the_results_in_model_index(evaluated, tiny_students_dir):
    """After `agkd evaluate` each student's card holds its rows (BLEU, chrF and the simulation metrics per split and
    protocol, sacrebleu's signature in the metric's args) and the Attributor's card its held-out fidelity, as
    huggingface_hub's own model-index parser reads them back."""
    from huggingface_hub import ModelCard

    results, _ = evaluated
    rows = layout.read_results(results / "results.jsonl")
    for student in {r["student"] for r in rows}:
        card = ModelCard.load(tiny_students_dir / student / "README.md")
        entries = {(e.metric_type, e.metric_config, e.dataset_split): e for e in card.data.eval_results}
        mine = [r for r in rows if r["student"] == student]
        assert len(entries) == len(mine) * 6  # BLEU, chrF and four simulation metrics per row
        for row in mine:
            bleu = entries["bleu", row["protocol"], row["split"]]
            assert bleu.metric_value == pytest.approx(row["bleu"], abs=1e-4)
            assert bleu.metric_args["signature"] == row["bleu_signature"]
            assert bleu.dataset_config == "marian.de-en.uniform" and bleu.task_type == "translation"
            assert entries["nll_reference", row["protocol"], row["split"]].metric_value == pytest.approx(
                row["nll_reference"], abs=1e-4
            )
        assert "| protocol | split |" in card.text
        order = [(e.dataset_split, e.metric_config) for e in card.data.eval_results if e.metric_type == "bleu"]
        assert order == sorted(order, key=lambda key: (key[0], layout.protocol_order(key[1])))
    run = json.loads((tiny_students_dir / "attributor-marian-de-en-attention" / "agkd_run.json").read_text())
    card = ModelCard.load(tiny_students_dir / "attributor-marian-de-en-attention" / "README.md")
    fidelity = {e.metric_type: e.metric_value for e in card.data.eval_results}
    assert set(fidelity) == set(scoring.FIDELITY_METRICS)
    assert all(fidelity[m] == pytest.approx(run["fidelity"][m], abs=1e-4) for m in fidelity)


def test_release_files_name_no_path_of_this_machine(
    evaluated, tiny_students_dir, tiny_attributions_dir, tmp_path_factory
):
    """What `agkd push` uploads (cards, run records, configs, dataset metadata, tokenizer files) names models and
    datasets by their repo names, never by a folder of the machine that built them."""
    base = str(tmp_path_factory.getbasetemp()).encode()
    leaks = [
        str(path)
        for root in (tiny_students_dir, tiny_attributions_dir)
        for path in root.rglob("*")
        if path.is_file() and ".work" not in path.parts and base in path.read_bytes()
    ]
    assert not leaks
    run = json.loads((tiny_students_dir / "student-marian-de-en-attention-add-s0" / "agkd_run.json").read_text())
    assert run["attributions"] == tiny_attributions_dir.name and "/" not in run["teacher"]


def test_rerun_appends_nothing(evaluated):
    results, argv = evaluated
    before = (results / "results.jsonl").read_text()
    assert evaluate.main(argv) == 0
    assert (results / "results.jsonl").read_text() == before


def test_unknown_protocol_is_refused(evaluated, caplog):
    results, argv = evaluated
    argv = [a for a in argv]
    argv[argv.index("--protocols") + 1] = "oracle"
    with caplog.at_level("ERROR"):
        assert evaluate.main(argv) == 2
    assert "unknown protocols ['oracle']" in caplog.text
    lines = (results / "results.jsonl").read_text().splitlines()
    assert all(json.loads(line)["protocol"] != "oracle" for line in lines)


def test_re_extracted_maps_re_evaluate_rows_and_retrain_the_student(
    tiny_results_dir, tiny_students_dir, tiny_attributions_dir, tiny_marian_dir, toy_corpus_dir, tmp_path
):
    """Rows record what they measured; maps recomputed with other settings (a new fingerprint) re-evaluate the rows
    that read them at test time, and retrain the student trained on them, whose rows are then evaluated again."""
    import shutil

    from tiny_release import evaluate_argv, train_tiny_student

    from agkd.datasets_scripts.release_layout import maps_version

    attributions, models, results = tmp_path / "attributions", tmp_path / "models", tmp_path / "results"
    for source, copy in [
        (tiny_attributions_dir, attributions),
        (tiny_students_dir, models),
        (tiny_results_dir, results),
    ]:
        shutil.copytree(source, copy)
    argv = evaluate_argv(models, attributions, toy_corpus_dir, results)
    student = "student-marian-de-en-attention-add-s0"
    before = {(r["student"], r["protocol"]): r for r in layout.read_results(results / "results.jsonl")}
    assert before[(student, "gold")]["inputs"]["maps"] == maps_version(attributions, "marian.de-en.attention")

    meta_file = attributions / "meta" / "marian.de-en.attention.json"  # as if re-extracted with other arguments
    meta = json.loads(meta_file.read_text())
    meta["splits"]["test"]["fingerprint"]["max_tokens"] = 7
    meta_file.write_text(json.dumps(meta))
    assert evaluate.main(argv) == 0
    after = {(r["student"], r["protocol"]): r for r in layout.read_results(results / "results.jsonl")}
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {(student, "gold")}  # the teacher-target maps and every other input are unchanged
    assert after[(student, "gold")]["inputs"]["maps"] == maps_version(attributions, "marian.de-en.attention")
    assert len(after) == len(before)  # superseded rows are not counted twice

    old_run = json.loads((models / student / "agkd_run.json").read_text())
    assert train_tiny_student(attributions, tiny_marian_dir, models, "--method", "attention", "--operator", "add") == 0
    new_run = json.loads((models / student / "agkd_run.json").read_text())
    assert new_run["run_id"] != old_run["run_id"]
    assert new_run["maps_version"] == maps_version(attributions, "marian.de-en.attention")
    assert evaluate.main(argv) == 0
    final = {(r["student"], r["protocol"]): r for r in layout.read_results(results / "results.jsonl")}
    assert {key for key in final if final[key] != after[key]} == {k for k in after if k[0] == student}
