"""Teacher training (issue #4): smoke-size runs end to end on the toy corpus, a killed run resumes, the saved
folders reload with plain Auto classes and translate, mBART honours its language codes, the registry maps
(family, pair) to local folders and Hub ids, and bad input fails clearly.

The training script runs in subprocesses: `AcceleratorState` is a process singleton (research/hub.md §4)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest_plugins = ["tests.tiny_teachers"]  # untrained_marian_dir

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["--preset", "smoke", "--max_steps", "150", "--save_steps", "30", "--eval_steps", "50", "--log_steps", "50"]


def teacher_command(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agkd.training.train_teacher",
        *SMOKE,
        "--corpus",
        str(corpus),
        "--output_dir",
        str(out),
        *extra,
    ]


def run_env() -> dict[str, str]:
    # one thread per process: tiny models are slower with several threads on a shared CPU
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def run_teacher(corpus: Path, out: Path, *extra: str) -> str:
    proc = subprocess.run(
        teacher_command(corpus, out, *extra), cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stderr


@pytest.fixture(scope="module")
def marian_run(toy_corpus_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    log = run_teacher(toy_corpus_dir, out, "--family", "marian", "--pairs", "de-en")
    return out / "teacher-marian-de-en", log


@pytest.fixture(scope="module")
def mbart_run(toy_corpus_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    log = run_teacher(toy_corpus_dir, out, "--family", "mbart")
    return out / "teacher-mbart", log


# ------------------------------------------------------------------------------------------------ registry
def test_registry_maps_family_and_pair(tmp_path):
    from agkd.datasets_scripts.teachers import generation_kwargs, resolve_teacher, teacher_spec

    assert teacher_spec("marian", "de-en").hub_id == "Helsinki-NLP/opus-mt-de-en"
    assert teacher_spec("marian", "ar-en").local_name == "teacher-marian-ar-en"
    mbart = teacher_spec("mbart", "fr-en")
    assert (mbart.hub_id, mbart.local_name, mbart.src_lang, mbart.tgt_lang) == (
        "facebook/mbart-large-50-many-to-many-mmt",
        "teacher-mbart",
        "fr_XX",
        "en_XX",
    )
    assert [teacher_spec("mbart", p).src_lang for p in ("de-en", "ar-en")] == ["de_DE", "ar_AR"]
    with pytest.raises(ValueError, match="unknown language pair"):
        teacher_spec("marian", "xx-en")
    with pytest.raises(ValueError, match="unknown teacher family"):
        teacher_spec("t5", "de-en")

    assert resolve_teacher("marian", "de-en", "hub") == "Helsinki-NLP/opus-mt-de-en"
    folder = tmp_path / "teacher-marian-de-en"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve_teacher("marian", "de-en", tmp_path) == str(folder)  # a models root
    assert resolve_teacher("marian", "de-en", folder) == str(folder)  # the folder itself
    with pytest.raises(FileNotFoundError, match="teacher-marian-fr-en"):
        resolve_teacher("marian", "fr-en", tmp_path)
    assert generation_kwargs("marian", tokenizer=None) == {}


# ------------------------------------------------------------------------------------------------ common steps
def test_common_training_steps(toy_corpus_dir):
    from agkd.datasets_scripts import release_layout as layout
    from agkd.training import data, loop
    from agkd.training.evaluation import scoring

    # early stopping: two evaluations without improvement stop a run with patience 2; the state round-trips
    state = loop.TrainingState(patience=2)
    for step, loss in ((10, 3.0), (20, 2.0), (30, 2.5), (40, 2.1)):
        state.step = step
        state.update_validation(loss)
    assert (state.best_step, state.best_loss, state.should_stop) == (20, 2.0, True)
    copy = loop.TrainingState()
    copy.load_state_dict(state.state_dict())
    assert copy == state

    # batches of similar length, every example once, deterministic for a seed
    examples = [{"index": i, "input_ids": [5] * (1 + i % 13), "labels": [6] * (1 + i % 7)} for i in range(300)]
    batches = data.length_grouped_batches(examples, batch_size=8, seed=0, group=4)
    assert all(len(b) == 8 for b in batches) and len({e["index"] for b in batches for e in b}) == 296
    assert batches == data.length_grouped_batches(examples, batch_size=8, seed=0, group=4)
    spread = sum(max(len(e["input_ids"]) for e in b) - min(len(e["input_ids"]) for e in b) for b in batches)
    assert spread < 0.5 * sum(12 for _ in batches)  # far less padding than random batches

    batch = data.Seq2SeqCollator(pad_token_id=0)([batches[0]])
    assert batch["input_ids"].shape[0] == 8 and batch["labels"].min() >= -100
    assert (batch["attention_mask"].sum(1) == batch["input_ids"].ne(0).sum(1)).all()
    assert loop.count_tokens(batch) == sum(len(e["input_ids"]) + len(e["labels"]) for e in batches[0])

    # sacrebleu against raw references, with signatures
    perfect = scoring.score_translations(["The dog sees the cat."], ["The dog sees the cat."])
    assert perfect.bleu == pytest.approx(100) and perfect.chrf == pytest.approx(100)
    assert "tok:13a" in perfect.bleu_signature and "nc:6" in perfect.chrf_signature

    # Hub-layout folders read straight from parquet
    assert set(layout.config_names(toy_corpus_dir)) == {"de-en", "fr-en", "ar-en"}
    ds = layout.load_config(toy_corpus_dir, "fr-en")
    assert {k: len(v) for k, v in ds.items()} == {"train": 400, "validation": 40, "test": 80}
    with pytest.raises(ValueError, match="no config"):
        layout.load_config(toy_corpus_dir, "es-en")


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_fails_clearly_without_side_effects(toy_corpus_dir, tmp_path, caplog):
    from agkd.training.train_teacher import main

    out = tmp_path / "models"
    with caplog.at_level(logging.ERROR):
        assert (
            main(["--preset", "smoke", "--pairs", "de-xx", "--corpus", str(toy_corpus_dir), "--output_dir", str(out)])
            == 2
        )
    assert "unknown language pair 'de-xx'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["--preset", "smoke", "--corpus", str(tmp_path / "nope"), "--output_dir", str(out)]) == 2
    assert "corpus not found" in caplog.text
    caplog.clear()
    with pytest.raises(SystemExit):  # argparse choices
        main(["--preset", "smoke", "--family", "t5", "--corpus", str(toy_corpus_dir)])
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["--preset", "smoke", "--eval_splits", "dev", "--corpus", str(toy_corpus_dir)]) == 2
    assert "unknown evaluation split 'dev'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["--preset", "smoke", "--lr_scheduler", "warmup_then_magic", "--corpus", str(toy_corpus_dir)]) == 2
    assert "unknown lr_scheduler 'warmup_then_magic'" in caplog.text
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ Marian
def test_marian_folder_is_a_standard_hub_model(marian_run):
    folder, log = marian_run
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "source.spm",
        "target.spm",
        "vocab.json",
        "tokenizer_config.json",
        "README.md",
        "all_results.json",
    ):
        assert (folder / name).exists(), name
    assert not (folder / "checkpoints").exists()
    assert "tokens/s" in log and "validation loss" in log

    results = json.loads((folder / "all_results.json").read_text())
    test = results["results"]["de-en/test"]
    # the toy language is learnable: a trained teacher is far above copying the source
    assert test["bleu"] > test["copy_source_bleu"] + 5, test
    assert test["chrf"] > test["copy_source_chrf"] + 10, test
    assert test["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert results["train_tokens_per_second"] > 0

    from huggingface_hub import ModelCard

    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == "translation" and set(card.data.language) == {"de", "en"}
    metrics = {
        (r.dataset_split, r.metric_type): r.metric_value
        for r in card.data.eval_results  # model-index entries
    }
    assert metrics[("test", "bleu")] == pytest.approx(test["bleu"], abs=0.01)
    assert metrics[("validation", "chrf")] == pytest.approx(results["results"]["de-en/validation"]["chrf"], abs=0.01)


def test_marian_reloads_with_auto_classes_and_translates(marian_run):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, MarianMTModel

    from agkd.datasets_scripts.teachers import load_teacher

    folder, _ = marian_run
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert isinstance(model, MarianMTModel)
    batch = tokenizer(["der Hund sieht heute die Katze."], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=20)
    text = tokenizer.batch_decode(out, skip_special_tokens=True)[0]
    # English words of the toy lexicon, not the German source
    from tests.conftest import TOY_LEXICON

    english = {w for phrase in TOY_LEXICON["de-en"].values() for w in phrase.split()}
    words = text.lower().rstrip(".").split()
    assert words and set(words) <= english, text
    # the registry finds the same folder from the models root
    model2, _ = load_teacher("marian", "de-en", folder.parent)
    assert model2.config.to_dict() == model.config.to_dict()


def test_existing_teacher_is_not_overwritten(marian_run, toy_corpus_dir, caplog):
    from agkd.training.train_teacher import main

    folder, _ = marian_run
    before = (folder / "model.safetensors").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        assert main(["--preset", "smoke", "--corpus", str(toy_corpus_dir), "--output_dir", str(folder.parent)]) == 0
    assert "already exists" in caplog.text
    assert (folder / "model.safetensors").stat().st_mtime_ns == before


def test_killed_run_resumes_from_its_checkpoint(marian_run, toy_corpus_dir, tmp_path):
    out = tmp_path / "models"
    args = ("--family", "marian", "--pairs", "de-en")
    proc = subprocess.Popen(
        teacher_command(toy_corpus_dir, out, *args),
        cwd=REPO,
        env=run_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    checkpoint = tmp_path / "checkpoints" / "teacher-marian-de-en" / "checkpoints" / "checkpoint_0"
    deadline = time.time() + 240
    while not (checkpoint / "checkpoint_complete").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint after 240 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "teacher-marian-de-en").exists()

    log = run_teacher(toy_corpus_dir, out, *args, "--resume")
    resumed_at = re.search(r"resumed from \S+ at step (\d+)", log)
    assert resumed_at, log[-3000:]
    assert int(resumed_at.group(1)) >= 30
    results = json.loads((out / "teacher-marian-de-en" / "all_results.json").read_text())
    assert results["steps"] == 150 and results["steps_this_run"] == 150 - int(resumed_at.group(1))

    # resuming is exact: same data order, RNG and optimizer state as the uninterrupted run
    from safetensors.torch import load_file

    resumed = load_file(out / "teacher-marian-de-en" / "model.safetensors")
    straight = load_file(marian_run[0] / "model.safetensors")
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert (resumed[key] - straight[key]).abs().max() < 1e-4, key


def test_time_budget_saves_a_teacher_and_the_run_continues(marian_run, toy_corpus_dir, tmp_path):
    """`--max_minutes` stops early with a usable, evaluated teacher and its checkpoints kept; `--resume` then finishes
    the same schedule (the stopped folder does not count as finished), with the weights of the uninterrupted run."""
    out = tmp_path / "models"
    args = ("--family", "marian", "--pairs", "de-en")
    log = run_teacher(toy_corpus_dir, out, *args, "--max_minutes", "0.001")
    folder = out / "teacher-marian-de-en"
    first = json.loads((folder / "all_results.json").read_text())
    assert first["stopped_on_time_budget"] and 1 <= first["steps"] < 150, first["steps"]
    assert first["results"]["de-en/test"]["bleu"] >= 0
    assert "stopped by its time budget" in (folder / "README.md").read_text()
    assert "continue the same run" in log
    assert any((tmp_path / "checkpoints" / "teacher-marian-de-en" / "checkpoints").iterdir())

    # another recipe on these checkpoints is refused before anything is touched (the exact resume below proves it)
    refused = subprocess.run(
        teacher_command(toy_corpus_dir, out, *args, "--resume", "--learning_rate", "1e-3"),
        cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=300,
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "other settings (learning_rate 0.003 there, 0.001 now)" in refused.stderr

    log = run_teacher(toy_corpus_dir, out, *args, "--resume")
    assert f"at step {first['steps']}" in log
    final = json.loads((folder / "all_results.json").read_text())
    assert final["steps"] == 150 and not final["stopped_on_time_budget"]
    assert not (tmp_path / "checkpoints" / "teacher-marian-de-en").exists()  # a finished run cleans up

    from safetensors.torch import load_file

    resumed, straight = load_file(folder / "model.safetensors"), load_file(marian_run[0] / "model.safetensors")
    for key in straight:
        assert (resumed[key] - straight[key]).abs().max() < 1e-4, key


def test_resume_checks_the_recorded_settings(tmp_path):
    from agkd.training.loop import check_resumable, save_run_settings

    check_resumable(tmp_path / "older-run", {"learning_rate": 1e-3})  # checkpoints without recorded settings
    save_run_settings(tmp_path / "run", {"learning_rate": 2.5e-4, "pairs": ["de-en"]})
    check_resumable(tmp_path / "run", {"learning_rate": 2.5e-4, "pairs": ("de-en",)})  # as JSON: the same
    with pytest.raises(ValueError, match=r"pairs \['de-en'\] there, \['fr-en'\] now"):
        check_resumable(tmp_path / "run", {"learning_rate": 2.5e-4, "pairs": ["fr-en"]})
    with pytest.raises(ValueError, match=r"train_origins None there, 'bible' now"):
        check_resumable(tmp_path / "run", {"learning_rate": 2.5e-4, "pairs": ["de-en"], "train_origins": "bible"})


# ------------------------------------------------------------------------------------------------ mBART
def test_mbart_honours_language_codes(mbart_run):
    import copy

    from transformers import MBartForConditionalGeneration

    from agkd.datasets_scripts.teachers import generation_kwargs, load_teacher

    folder, _ = mbart_run
    results = json.loads((folder / "all_results.json").read_text())
    assert {r["pair"] for r in results["results"].values()} == {"de-en", "fr-en", "ar-en"}

    for pair, code, sentence in (
        ("de-en", "de_DE", "der Hund sieht heute die Katze."),
        ("fr-en", "fr_XX", "le chien voit le chat aujourd'hui."),
        ("ar-en", "ar_AR", "يرى الكلب القطة اليوم."),
    ):
        model, tokenizer = load_teacher("mbart", pair, folder)
        assert isinstance(model, MBartForConditionalGeneration)
        batch = tokenizer([sentence], return_tensors="pt")
        assert tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())[0] == code
        en = tokenizer.convert_tokens_to_ids("en_XX")
        assert generation_kwargs("mbart", tokenizer) == {"forced_bos_token_id": en}

        out = model.generate(**batch, max_new_tokens=20)  # plain generate: the saved generation_config forces en_XX
        assert out[0, 0].item() == model.config.decoder_start_token_id == tokenizer.eos_token_id
        assert out[0, 1].item() == en

        free = copy.deepcopy(model.generation_config)
        free.forced_bos_token_id = None  # not forced: the trained model itself starts with the target language code
        out = model.generate(**batch, max_new_tokens=20, generation_config=free)
        assert out[0, 1].item() == en, tokenizer.convert_ids_to_tokens(out[0].tolist())
        text = tokenizer.batch_decode(out, skip_special_tokens=True)[0]
        assert "en_XX" not in text and text.strip(), text


# ------------------------------------------------------------------------------------------------ weak-teacher guard
def test_extraction_refuses_a_teacher_that_does_not_translate(marian_run, toy_corpus_dir, tmp_path, caplog):
    """A teacher trained 2 steps does not beat copy-the-source: `agkd extract` refuses it with its scores (nothing
    is written) unless --allow_weak_teacher; the trained teacher passes."""
    from agkd.datasets_scripts import extract_attributions

    run_teacher(toy_corpus_dir, tmp_path / "weak", "--family", "marian", "--pairs", "de-en", "--max_steps", "2")
    weak = tmp_path / "weak" / "teacher-marian-de-en"
    scores = json.loads((weak / "all_results.json").read_text())["results"]["de-en/validation"]
    assert scores["bleu"] <= scores["copy_source_bleu"], scores

    def extract(teacher, out, *extra):
        argv = ["--teacher", str(teacher), "--corpus", str(toy_corpus_dir), "--output_dir", str(out), "--pair", "de-en"]
        argv += ["--methods", "uniform", "--splits", "test", "--limit", "2", "--num_threads", "1", *extra]
        return extract_attributions.main(argv)

    with caplog.at_level("INFO"):
        assert extract(weak, tmp_path / "refused") == 2
    assert f"the teacher {weak} does not translate de-en well enough" in caplog.text
    assert f"validation BLEU {scores['bleu']:.2f}" in caplog.text and "--allow_weak_teacher" in caplog.text
    assert not (tmp_path / "refused").exists()
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert extract(weak, tmp_path / "allowed", "--allow_weak_teacher") == 0
    assert "explained anyway" in caplog.text and (tmp_path / "allowed" / "meta" / "marian.de-en.uniform.json").exists()

    trained, _ = marian_run
    assert extract(trained, tmp_path / "trained") == 0
    assert extract(trained, tmp_path / "threshold", "--min_teacher_bleu", "1000") == 2  # a preset's threshold binds too


def test_extraction_scores_a_teacher_that_records_no_scores(untrained_marian_dir, toy_corpus_dir, tmp_path, caplog):
    """No teacher is explained without a measured score: a random-weight teacher saved with `save_pretrained` (no
    all_results.json, like a public checkpoint) is scored at extraction (greedy BLEU/chrF on the first validation
    pairs against copy-the-source) and refused with those scores; --allow_weak_teacher records them in meta and card."""
    from sacrebleu.metrics import BLEU, CHRF

    from agkd.datasets_scripts import extract_attributions
    from agkd.datasets_scripts.attribution.teacher import Teacher
    from agkd.datasets_scripts.extract_attributions import TEACHER_SCORE_PAIRS
    from agkd.datasets_scripts.release_layout import load_config

    assert not (untrained_marian_dir / "all_results.json").exists()
    validation = load_config(str(toy_corpus_dir), "de-en")["validation"]
    n = min(TEACHER_SCORE_PAIRS, len(validation))
    sources, references = validation["source"][:n], validation["target"][:n]
    hypotheses = Teacher(str(untrained_marian_dir), "de-en", "cpu", compat=True).translate(sources, 128, 1)
    bleu = BLEU().corpus_score(hypotheses, [references]).score
    chrf = CHRF().corpus_score(hypotheses, [references]).score
    copy_bleu = BLEU().corpus_score(sources, [references]).score
    assert bleu <= copy_bleu  # random weights do not beat copying the source

    def extract(out, *extra):
        argv = ["--teacher", str(untrained_marian_dir), "--corpus", str(toy_corpus_dir), "--output_dir", str(out)]
        argv += ["--pair", "de-en", "--methods", "uniform", "--splits", "test", "--limit", "2", "--num_threads", "1"]
        return extract_attributions.main([*argv, *extra])

    with caplog.at_level("INFO"):
        assert extract(tmp_path / "refused") == 2
    assert f"the teacher {untrained_marian_dir} does not translate de-en well enough" in caplog.text
    assert f"validation BLEU {bleu:.2f} / chrF {chrf:.2f} against copy-the-source BLEU {copy_bleu:.2f}" in caplog.text
    assert f"measured at extraction: greedy, first {n} validation pairs" in caplog.text
    assert not (tmp_path / "refused").exists()
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert extract(tmp_path / "allowed", "--allow_weak_teacher") == 0
    assert "explained anyway" in caplog.text
    quality = json.loads((tmp_path / "allowed" / "meta" / "marian.de-en.uniform.json").read_text())["teacher_quality"]
    assert quality["source"] == "measured at extraction" and quality["passes"] is False
    assert (quality["examples"], quality["split"]) == (n, "validation")
    assert quality["bleu"] == pytest.approx(bleu) and quality["copy_source_bleu"] == pytest.approx(copy_bleu)
    card = (tmp_path / "allowed" / "README.md").read_text()
    assert "## Teacher quality" in card and "no (--allow_weak_teacher)" in card
