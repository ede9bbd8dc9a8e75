"""Experiment trackers (`--report_to`): TensorBoard curves of students, teachers and Attributors that read back to the
run's own log and record, no files with `none`, a failing tracker that does not fail the run, the pipeline's training
jobs, and the report's learning curves from run records."""

from __future__ import annotations

import json
import re

import pytest

from agkd.training import loop
from agkd.training.orchestration import pipeline
from agkd.training.verdict import report

pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]

SUPERVISED = "student-marian-de-en-attention-supervise-s0"


def _train(attributions_dir, teacher_dir, models_dir, *extra) -> int:
    from tiny_release import train_tiny_student

    return train_tiny_student(attributions_dir, teacher_dir, models_dir, *extra)


def _event_files(folder):
    return sorted(folder.rglob("events.out.tfevents.*"))


def test_tensorboard_curves_read_back_to_the_runs_log_and_record(
    tiny_attributions_dir, tiny_marian_dir, tmp_path, caplog
):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    models = tmp_path / "models"
    with caplog.at_level("INFO", logger="agkd.training.loop"):
        code = _train(
            tiny_attributions_dir,
            tiny_marian_dir,
            models,
            "--method",
            "attention",
            "--operator",
            "supervise",
            "--report_to",
            "tensorboard",
            "--log_steps",
            "2",
        )
    assert code == 0
    logs = tmp_path / "logs" / SUPERVISED  # beside the models root, one folder per model
    assert _event_files(logs)
    events = EventAccumulator(str(logs))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert {"train/loss", "train/learning_rate", "train/tokens_per_second", "train/supervision_loss",
            "validation/loss"} <= set(scalars)

    record = json.loads((models / SUPERVISED / "agkd_run.json").read_text())
    history = [(h["step"], h["validation_loss"]) for h in record["validation_history"]]
    assert [s for s, _ in scalars["validation/loss"]] == [s for s, _ in history] == [3, 6]
    for (_, logged), (_, recorded) in zip(scalars["validation/loss"], history, strict=True):
        assert logged == pytest.approx(recorded, rel=1e-6)  # float32 in the event file

    # The training loss of each log line (`step N: loss X`) is the scalar at step N.
    lines = [(int(m.group(1)), float(m.group(2))) for m in re.finditer(r"step (\d+): loss ([\d.]+)", caplog.text)]
    assert [s for s, _ in lines] == [s for s, _ in scalars["train/loss"]] == [2, 4, 6]
    for (_, printed), (_, logged) in zip(lines, scalars["train/loss"], strict=True):
        assert logged == pytest.approx(printed, abs=5e-4)
    assert all(v > 0 for _, v in scalars["train/supervision_loss"])
    hparams = next(logs.rglob("hparams.yml")).read_text()  # the run's settings as its config
    assert "operator: supervise" in hparams and "method: attention" in hparams


def test_report_to_none_writes_no_event_files(tiny_attributions_dir, tiny_marian_dir, tmp_path):
    models = tmp_path / "models"
    assert _train(tiny_attributions_dir, tiny_marian_dir, models, "--method", "none", "--report_to", "none") == 0
    assert (models / "student-marian-de-en-none-s0" / "agkd_run.json").exists()
    assert not _event_files(tmp_path)


@pytest.mark.parametrize("failure", ["start", "log"])
def test_a_failing_tracker_warns_and_the_run_goes_on(failure, tiny_attributions_dir, tiny_marian_dir, tmp_path,
                                                     monkeypatch, caplog):
    pytest.importorskip("tensorboard")
    from accelerate import Accelerator
    from accelerate.tracking import TensorBoardTracker

    def broken(*args, **kwargs):
        raise RuntimeError("tracker server is down")

    monkeypatch.setattr(*(Accelerator, "init_trackers") if failure == "start" else (TensorBoardTracker, "log"), broken)
    models = tmp_path / "models"
    with caplog.at_level("WARNING"):
        code = _train(tiny_attributions_dir, tiny_marian_dir, models, "--method", "none", "--report_to", "tensorboard",
                      "--log_steps", "1")
    assert code == 0 and (models / "student-marian-de-en-none-s0" / "model.safetensors").exists()
    warnings = [r.getMessage() for r in caplog.records if "tracker server is down" in r.getMessage()]
    assert len(warnings) == 1, warnings  # said once, not at each of the 6 log steps
    assert f"failed to {failure}" in warnings[0] and "training goes on" in warnings[0]


def test_unknown_tracker_is_refused_before_training(tiny_attributions_dir, tiny_marian_dir, tmp_path, caplog):
    with caplog.at_level("ERROR"):
        assert _train(tiny_attributions_dir, tiny_marian_dir, tmp_path / "models", "--report_to", "tensorbored") == 2
    assert "unknown --report_to tensorbored" in caplog.text
    assert not (tmp_path / "models").exists()


def test_a_tracker_that_is_not_installed_is_left_out_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(loop, "_said", set())
    with caplog.at_level("WARNING"):
        names = loop.tracker_names(["clearml", "none"])
    assert names == [] and "clearml is not installed" in caplog.text  # clearml is not a dependency of any extra
    assert loop.tracker_config({"a": [1, 2], "b": None, "c": 0.5, "d": "x"}) == {
        "a": "[1, 2]",
        "b": "null",
        "c": 0.5,
        "d": "x",
    }


TRAINING_STAGES = {"teacher", "warm-start", "student", "attributor"}


def plan_for(*argv):
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(pipeline.PipelineArguments).parse_args_into_dataclasses(args=list(argv))
    return pipeline.plan(pipeline.finalize(args))


def test_the_pipeline_passes_report_to_to_every_training_job():
    from transformers import HfArgumentParser

    from agkd.training.train_attributor import AttributorArguments
    from agkd.training.train_student import StudentArguments
    from agkd.training.train_teacher import TeacherArguments

    jobs = plan_for("--preset", "smoke", "--runs_dir", "/tmp/x", "--report_to", "tensorboard", "wandb")
    training = [j for j in jobs if j.stage in TRAINING_STAGES]
    assert {j.stage for j in training} == TRAINING_STAGES
    for job in training:
        at = job.argv.index("--report_to")
        assert job.argv[at + 1:at + 3] == ["tensorboard", "wandb"], job.label
    assert not any("--report_to" in j.argv for j in jobs if j.stage not in TRAINING_STAGES)
    # Each job's own parser takes it (Ray workers run the same argv), and its curves go to runs/<preset>/logs/<name>.
    arguments = {"teacher": TeacherArguments, "warm-start": StudentArguments, "student": StudentArguments,
                 "attributor": AttributorArguments}
    for job in {j.stage: j for j in training}.values():
        (args,) = HfArgumentParser(arguments[job.stage]).parse_args_into_dataclasses(args=job.argv)
        assert args.report_to == ["tensorboard", "wandb"]
        tracking = args.tracking("some-model", {})
        assert (str(tracking.logging_dir), tracking.project) == ("/tmp/x/smoke/logs", "agkd-smoke")


def test_the_pipelines_default_is_tensorboard_when_installed_else_none_said_once(monkeypatch, caplog):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(loop, "_said", set())
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with caplog.at_level("INFO", logger="agkd.training.loop"):
        jobs = plan_for("--preset", "smoke", "--runs_dir", "/tmp/x")
    students = [j for j in jobs if j.stage == "student"]
    assert all(j.argv[j.argv.index("--report_to") + 1] == "none" for j in students)
    assert caplog.text.count("pip install 'agkd[tracking]'") == 1
    monkeypatch.setattr(importlib.util, "find_spec", real)
    if real("tensorboard") is not None:
        jobs = plan_for("--preset", "smoke", "--runs_dir", "/tmp/x")
        assert all(j.argv[j.argv.index("--report_to") + 1] == "tensorboard" for j in jobs if j.stage == "student")


def _record(method: str, seed: int, losses: list[float], operator: str = "supervise") -> dict:
    return {
        "teacher_name": "marian",
        "pair": "de-en",
        "method": method,
        "operator": "none" if method == "none" else operator,
        "map_normalization": "none" if method == "none" else "row_sum",
        "seed": seed,
        "target_kind": "reference",
        "student_init": "scratch",
        "validation_history": [{"step": 10 * (i + 1), "validation_loss": loss} for i, loss in enumerate(losses)],
    }


def test_the_report_draws_learning_curves_from_run_records(tmp_path, monkeypatch):
    models, plots = tmp_path / "models", tmp_path / "plots"
    plots.mkdir()
    records = [
        _record("none", 0, [5.0, 4.0, 3.5]), _record("none", 1, [5.2, 4.2, 3.7]),
        _record("attention", 0, [4.5, 3.5, 3.0]), _record("attention", 1, [4.7, 3.6]),  # early-stopped seed
        _record("uniform", 0, [5.0, 4.1, 3.6]), _record("attention", 0, [9.0, 9.0, 9.0], operator="add"),  # not shown
    ]
    for i, record in enumerate(records):
        folder = models / f"student-{i}"
        folder.mkdir(parents=True)
        (folder / "agkd_run.json").write_text(json.dumps(record))
    drawn = {}
    real_plot = report.plot_learning_curves

    def plot(curves, title, path):
        drawn.update(
            {label: {step: list(losses) for step, losses in by_step.items()} for label, by_step in curves.items()}
        )
        return real_plot(curves, title, path)

    monkeypatch.setattr(report, "plot_learning_curves", plot)
    lines = report.learning_curves_section(models, plots, tmp_path)
    # The primary design's students and the baseline, seeds side by side at each step (the `add` student is not drawn).
    assert drawn == {
        "none": {10: [5.0, 5.2], 20: [4.0, 4.2], 30: [3.5, 3.7]},
        "attention": {10: [4.5, 4.7], 20: [3.5, 3.6], 30: [3.0]},
        "uniform": {10: [5.0], 20: [4.1], 30: [3.6]},
    }
    assert lines[0] == "## Learning curves"
    assert "![learning curves](plots/learning-curves-marian-de-en.png)" in lines
    assert (plots / "learning-curves-marian-de-en.png").stat().st_size > 1000
    assert report.learning_curves_section(tmp_path / "empty", plots, tmp_path) == []


def test_a_teacher_logs_its_curves_and_final_scores(toy_corpus_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agkd.training import train_teacher

    argv = ["--preset", "smoke", "--family", "marian", "--pairs", "de-en", "--corpus", str(toy_corpus_dir)]
    argv += ["--output_dir", str(tmp_path / "models"), "--checkpoint_dir", str(tmp_path / "ckpt"), "--max_steps", "4"]
    argv += ["--eval_steps", "2", "--log_steps", "2", "--eval_splits", "validation", "--max_eval_examples", "8"]
    assert train_teacher.main([*argv, "--report_to", "tensorboard"]) == 0
    events = EventAccumulator(str(tmp_path / "logs" / "teacher-marian-de-en"))
    events.Reload()
    assert {"train/loss", "validation/loss", "validation/de-en/bleu", "validation/de-en/chrf"} <= set(
        events.Tags()["scalars"]
    )
    record = json.loads((tmp_path / "models" / "teacher-marian-de-en" / "all_results.json").read_text())
    assert [e.step for e in events.Scalars("validation/loss")] == [h["step"] for h in record["validation_history"]]
    assert events.Scalars("validation/de-en/bleu")[0].value == pytest.approx(
        record["results"]["de-en/validation"]["bleu"]
    )


def test_an_attributor_logs_its_curves_and_held_out_fidelity(tiny_attributions_dir, tiny_marian_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agkd.training import train_attributor

    argv = ["--attributions", str(tiny_attributions_dir), "--teacher", str(tiny_marian_dir), "--method", "attention"]
    argv += ["--preset", "smoke", "--output_dir", str(tmp_path / "models"), "--checkpoint_dir", str(tmp_path / "ckpt")]
    assert train_attributor.main([*argv, "--max_steps", "4", "--eval_steps", "2", "--report_to", "tensorboard"]) == 0
    events = EventAccumulator(str(tmp_path / "logs" / "attributor-marian-de-en-attention"))
    events.Reload()
    record = json.loads((tmp_path / "models" / "attributor-marian-de-en-attention" / "agkd_run.json").read_text())
    assert [e.step for e in events.Scalars("validation/loss")] == [h["step"] for h in record["validation_history"]]
    assert events.Scalars("test/spearman")[0].value == pytest.approx(record["fidelity"]["spearman"], rel=1e-6)
