"""`agkd pipeline`: from nothing to a release, one preset at a time.

Stages, each a sub-command of its own (`agkd <stage> --help`): corpus -> teacher -> extract -> warm-start -> student
-> attributor -> instrument -> evaluate -> report -> space. Every job skips the outputs it finds complete, so a
re-run after a kill (or a failure) continues where the last run stopped. `--pairs`, `--teachers`, `--methods`,
`--operators` and `--seeds` narrow the preset's grid.

    agkd pipeline --preset smoke          # the whole code path in minutes (tests)
    agkd pipeline --preset demo           # the README's main job
    agkd pipeline --preset paper --executor ray --ray_address auto    # on a running Ray cluster

The plan states what each job reads and makes (one extraction per method, one student per cell, one evaluation
per student), and a job starts as soon as its inputs exist (`training/orchestration/executors.py`): a method's students
train while other methods are still being extracted. `--executor local` (the default) runs the small jobs `--jobs` at a
time in a pool of worker processes sharing the cores (2 processes x 1 thread trained two demo students 1.37x faster
than one after the other with 2 threads), one GPU each on a multi-GPU machine, and the big ones (teachers,
extraction) in this process; `--executor ray` makes every job a Ray task, retried when its worker dies. Each job
logs to `runs/<preset>/logs/`, and each training job's curves (`--report_to`, TensorBoard by default when installed)
go to `runs/<preset>/logs/<model name>/`: `tensorboard --logdir runs/<preset>/logs` shows the whole grid.

Everything lands under `runs/<preset>/`: `hub/` holds exactly what `agkd push` uploads (models, datasets, the
Space and the evaluate modules' Spaces), `results/` the result rows, `report.md` and its plots, `checkpoints/` the
resumable training state. With Ray on several machines, `--runs_dir` must be on storage every node sees at the same
path.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from agkd.datasets_scripts.attribution.configs import BASELINE, EVALUATION_SET, config_name
from agkd.datasets_scripts.attribution.methods import CONTROLS, METHODS, shuffled_control
from agkd.datasets_scripts.release_layout import (
    RESULTS_FILE,
    RunLayout,
    attributor_name,
    baseline_name,
    student_name,
    warm_start_name,
)
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.datasets_scripts.teachers import check_family, check_pair, teacher_spec
from agkd.modeling.attribution_injection import MAP_FREE_OPERATORS, MAP_NORMALIZATIONS, check_choice
from agkd.training.cli import STAGES
from agkd.training.loop import check_report_to, default_report_to
from agkd.training.orchestration.executors import EXECUTORS, Job, LocalExecutor, RayExecutor, schedule
from agkd.training.presets import (
    GRID_OPERATORS,
    PRESETS,
    PRIMARY_OPERATOR,
    SCALE_FAIR_NORMALIZATION,
    STUDENT_INITS,
)
from agkd.training.verdict.plan import plan_for, write_plan

logger = logging.getLogger(__name__)

# The pipeline's steps in the order they run (`--stop_after` names one): each runs one stage of `cli.STAGES`, but for
# `warm-start` (the student stage on the corpus) and `space` (the metric-spaces and space-repo stages).
ORDER = (
    "corpus",
    "teacher",
    "extract",
    "warm-start",
    "student",
    "attributor",
    "instrument",
    "evaluate",
    "triangulate",
    "report",
    "space",
)


@dataclass
class PipelineArguments:
    preset: str = field(default="demo", metadata={"help": f"one of {', '.join(PRESETS)}"})
    runs_dir: str = field(default="runs", metadata={"help": "everything goes to <runs_dir>/<preset>/"})
    pairs: list[str] | None = field(default=None, metadata={"help": "language pairs (default: the preset's)"})
    teachers: list[str] | None = field(default=None, metadata={"help": "teacher families: marian, mbart"})
    methods: list[str] | None = field(default=None, metadata={"help": "attribution methods (default: the preset's)"})
    operators: list[str] | None = field(
        default=None, metadata={"help": "injection operators, or `all` (default: the preset's)"}
    )
    seeds: list[int] | None = field(default=None, metadata={"help": "student seeds (default: the preset's)"})
    normalizations: list[str] | None = field(
        default=None,
        metadata={
            "help": "map normalisations of the grid: row_sum (scale-fair, carries the verdict), none (the paper's "
            "raw maps), ... (default: the preset's)"
        },
    )
    student_init: str | None = field(
        default=None,
        metadata={"help": "scratch (every student from random weights: the paper) or warm (every cell fine-tunes a "
                  "no-map warm start trained on the corpus, its own unless the preset shares them) "
                  "(default: the preset's)"},
    )
    corpus: str | None = field(
        default=None, metadata={"help": "use this agkd-parallel folder or Hub id instead of building one"}
    )
    hub_teachers: bool = field(
        default=False, metadata={"help": "use the real Hub teachers (opus-mt, mBART-50) instead of training them"}
    )
    allow_weak_teacher: bool = field(
        default=False,
        metadata={"help": "explain teachers that do not beat copy-the-source (or the preset's BLEU threshold) anyway"},
    )
    student_max_steps: int | None = field(
        default=None,
        metadata={"help": "fine-tuning steps of every student and of the positive control's students (default: the "
                  "preset's)"},
    )
    curve_pairs: list[int] | None = field(
        default=None,
        metadata={"help": "the learning curve over map-annotated pairs: also train the primary design's methods and "
                  "baseline on the first N annotated pairs for each N (below the preset's count; default: the "
                  "preset's, none for smoke and demo); the report shows where maps start to teach"},
    )
    stop_after: str | None = field(default=None, metadata={"help": f"last stage to run: one of {', '.join(ORDER)}"})
    max_minutes: float | None = field(
        default=None,
        metadata={"help": "a time-boxed slice: start no job after this many minutes (running ones finish); the same "
                  "command again goes on where it stopped (finished work is skipped)"},
    )
    jobs: int | None = field(
        default=None,
        metadata={
            "help": "local executor: small trainings and evaluations run at once, as processes sharing the CPU cores "
            "or one GPU each (default: 2 on a CPU machine with at least 2 cores, the GPU count with GPUs)"
        },
    )
    executor: str = field(
        default="local",
        metadata={"help": "local (this machine) or ray (Ray Core tasks: an embedded local Ray, or --ray_address)"},
    )
    ray_address: str | None = field(
        default=None,
        metadata={
            "help": "a running Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT (default: start one here)"
        },
    )
    retries: int = field(default=2, metadata={"help": "ray: times a job is retried after its worker died"})
    gold_alignments: str | None = field(
        default=None,
        metadata={"help": "a folder of human gold word alignments (`<l1>-<l2>.<name>.src-tgt` + `.gold`, e.g. the "
                  "Hansards en-fr set): the triangulation scores the maps of the pairs it covers against it"},
    )
    report_to: list[str] | None = field(
        default=None,
        metadata={"help": "experiment trackers of every training job (teacher, warm start, students, Attributors): "
                  "tensorboard, trackio, wandb, all or none; their curves go to <runs_dir>/<preset>/logs/<model name> "
                  "(default: tensorboard if it is installed)"},
    )


def finalize(args: PipelineArguments) -> PipelineArguments:
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.stop_after is not None and args.stop_after not in ORDER:
        raise ValueError(f"unknown stage {args.stop_after!r}; choose one of {', '.join(ORDER)}")
    preset = PRESETS[args.preset]
    args.pairs = args.pairs or list(preset.pairs)
    args.teachers = args.teachers or list(preset.teachers)
    args.methods = args.methods or list(preset.methods)
    args.seeds = args.seeds if args.seeds is not None else list(preset.seeds)
    args.curve_pairs = sorted(set(args.curve_pairs if args.curve_pairs is not None else preset.curve_pairs))
    annotated = preset.extract.max_pairs.get("train")
    if any(n < 1 or (annotated is not None and n >= annotated) for n in args.curve_pairs):
        raise ValueError(f"--curve_pairs are counts of map-annotated pairs below the preset's {annotated or 'all'} "
                         f"(its own point), got {args.curve_pairs}")
    args.normalizations = args.normalizations or list(preset.normalizations)
    args.student_init = args.student_init or preset.student_init
    if args.operators == ["all"]:
        args.operators = list(GRID_OPERATORS)
    args.operators = args.operators or list(preset.operators)
    if args.executor not in EXECUTORS:
        raise ValueError(f"unknown --executor {args.executor!r}; choose one of {', '.join(EXECUTORS)}")
    if args.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ValueError(
            "--executor ray needs Ray: pip install 'agkd[distributed]' (or 'ray[default]' for its dashboard)"
        )
    if args.jobs is None:
        import torch

        args.jobs = torch.cuda.device_count() if torch.cuda.is_available() else min(2, os.cpu_count() or 1)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    for pair in args.pairs:
        check_pair(pair)
    for family in args.teachers:
        check_family(family)
    unknown = [m for m in args.methods if m not in METHODS] + [o for o in args.operators if o not in GRID_OPERATORS]
    if unknown:
        raise ValueError(f"unknown methods or operators {unknown}; methods: {[*METHODS]}, operators: {GRID_OPERATORS}")
    for normalization in args.normalizations:
        check_choice("map normalisation", normalization, MAP_NORMALIZATIONS)
    if args.student_init not in STUDENT_INITS:
        raise ValueError(f"unknown --student_init {args.student_init!r}; choose one of {STUDENT_INITS}")
    check_report_to(args.report_to)
    args.report_to = args.report_to or default_report_to()  # said once here, not in every job's log
    return args


def maps(family: str, pair: str, method: str, target_kind: str = "reference") -> str:
    """The plan's name of one extracted map config (an output of an extract job, an input of a training)."""
    return f"maps:{config_name(family, pair, method, target_kind)}"


def plan(args: PipelineArguments) -> list[Job]:
    """Every job of the run, in plan order, with what each reads (`needs`) and makes: each one is a stage's
    `main(argv)` that skips finished work itself, and the executors start it once its inputs exist."""
    release = RunLayout(args.runs_dir, args.preset)
    preset = PRESETS[args.preset]
    corpus = args.corpus or str(release.datasets / "agkd-parallel")
    attributions = str(release.datasets / "agkd-attributions")
    common = ["--preset", args.preset]
    tracking = ["--report_to", *args.report_to] if args.report_to else []  # every training job, Ray workers too
    warm = args.student_init == "warm"
    jobs = []
    if args.corpus is None:
        argv = ["--output_dir", corpus, "--pairs", ",".join(args.pairs)] + (["--lite"] if preset.corpus.lite else [])
        jobs.append(Job("corpus", "agkd-parallel", STAGES["corpus"].module, argv, makes=("corpus",)))
    teachers = {}
    for family in args.teachers:
        for pair in args.pairs:
            spec = teacher_spec(family, pair)
            teachers[family, pair] = spec.hub_id if args.hub_teachers else str(release.models / spec.local_name)
        if not args.hub_teachers:
            pairs = args.pairs if family == "mbart" else None
            for job_pairs in [pairs] if pairs else [[p] for p in args.pairs]:
                argv = [*common, "--family", family, "--pairs", ",".join(job_pairs), "--corpus", corpus]
                argv += ["--output_dir", str(release.models), "--checkpoint_dir", str(release.checkpoints), "--resume"]
                argv += tracking
                jobs.append(
                    Job(
                        "teacher",
                        teacher_spec(family, job_pairs[0]).local_name,
                        STAGES["teacher"].module,
                        argv,
                        needs=("corpus",),
                        makes=tuple(f"teacher:{family}.{p}" for p in job_pairs),
                    )
                )
    # The teacher's translations of the test split are the simulatability metrics' targets (in every control
    # config); the methods' maps of them are what the `teacher` protocol evaluates and what `agkd triangulate`
    # measures AOPC on beside the reference maps (y_t = the teacher's own prediction; review M3), so every preset
    # extracts them (the test split only).
    teacher_kind_methods = [*args.methods, *CONTROLS]
    for (family, pair), teacher in teachers.items():
        base = ["--teacher", teacher, "--corpus", corpus, "--output_dir", attributions]
        base += ["--pair", pair, "--teacher_name", family, "--engine", preset.extract.engine]
        base += preset.extract.options(args.allow_weak_teacher)
        needs = ("corpus", f"teacher:{family}.{pair}")
        for method in [*args.methods, *CONTROLS]:  # one job per method: its students start when its maps exist
            jobs.append(Job("extract", f"{family}.{pair} {method}", STAGES["extract"].module,
                            [*base, "--methods", method, "--target_kinds", "reference"],
                            needs=needs, makes=(maps(family, pair, method),)))
        for method in args.methods:  # its shuffled twin: from the stored maps, once they exist
            shuffled = shuffled_control(method)
            jobs.append(Job("extract", f"{family}.{pair} {shuffled}", STAGES["extract"].module,
                            [*base, "--methods", shuffled, "--target_kinds", "reference"],
                            needs=(maps(family, pair, method),), makes=(maps(family, pair, shuffled),)))
        jobs.append(Job("extract", f"{family}.{pair} teacher (test)", STAGES["extract"].module,
                        [*base, "--methods", *teacher_kind_methods, "--target_kinds", "teacher", "--splits", "test"],
                        needs=needs, makes=tuple(maps(family, pair, m, "teacher") for m in teacher_kind_methods)))

    def student_argv(family: str, pair: str, teacher: str) -> list[str]:
        """Where a student or Attributor of (family, pair) reads its maps and teacher, and writes its folders and
        curves; a retried job (`--resume`) continues from its checkpoints."""
        argv = [*common, "--attributions", attributions, "--teacher", teacher, "--pair", pair, "--teacher_name", family]
        argv += ["--output_dir", str(release.models), "--checkpoint_dir", str(release.checkpoints), "--resume"]
        return argv + tracking

    warm_starts = sorted({preset.warm_start_of(seed) for seed in args.seeds}) if warm else []
    # The no-map warm starts the seeds fine-tune (`Preset.warm_start_of`: one per seed unless the preset shares them),
    # per teacher and pair, trained on the corpus before any cell, so the seeds vary the warm start too.
    for (family, pair), teacher in teachers.items():
        for start in warm_starts:
            argv = [
                *student_argv(family, pair, teacher),
                "--seed",
                str(start),
                "--method",
                BASELINE,
                "--train_corpus",
                corpus,
            ]
            jobs.append(
                Job(
                    "warm-start",
                    f"{family}.{pair} s{start}",
                    STAGES["student"].module,
                    argv,
                    needs=("corpus", f"teacher:{family}.{pair}"),
                    # in the driver with every core: measured on the demo (2026-12-05), two warm starts in one-thread
                    # workers took 10 min side by side, one with two threads 4.3 min (batch 64 uses both cores)
                    makes=(f"warm-start:{family}.{pair}.s{start}",),
                )
            )
    budget = ["--max_steps", str(args.student_max_steps)] if args.student_max_steps else []
    students = []  # (family, pair, method, name, baseline name)

    def student_job(base: list[str], family: str, pair: str, seed: int, method: str, needs: tuple, baseline: str | None,
                    operator: str = "none", normalization: str = "none", train_pairs: int | None = None) -> None:
        """One student of the grid (the baseline where `baseline` is None) and its row to evaluate."""
        name = student_name(family, pair, method, seed=seed, operator=operator, map_normalization=normalization,
                            warm=warm, train_pairs=train_pairs)
        argv = [*base, "--method", method]
        argv += ["--operator", operator, "--map_normalization", normalization] if method != BASELINE else []
        argv += ["--train_pairs", str(train_pairs)] if train_pairs is not None else []
        label = " ".join([f"{family}.{pair}", "baseline" if method == BASELINE else f"{method} {operator} "
                          f"{normalization}", *([f"p{train_pairs}"] if train_pairs is not None else []), f"s{seed}"])
        jobs.append(Job("student", label, STAGES["student"].module, argv, needs=needs,
                        makes=(f"student:{name}",), shared=True))
        students.append((family, pair, method, name, baseline))

    for (family, pair), teacher in teachers.items():
        where = student_argv(family, pair, teacher)
        for seed in args.seeds:
            start = preset.warm_start_of(seed) if warm else None
            init = ["--init_from", str(release.models / warm_start_name(family, pair, start))] if warm else []
            after_warm_start = (f"warm-start:{family}.{pair}.s{start}",) if warm else ()
            base = [*where, "--seed", str(seed), *init, *budget]
            baseline = baseline_name(family, pair, seed=seed, warm=warm)
            student_job(base, family, pair, seed, BASELINE, (maps(family, pair, EVALUATION_SET), *after_warm_start),
                        None)
            controls = [*preset.control_maps, *(shuffled_control(m) for m in args.methods)]
            for normalization in args.normalizations:
                for method in [*args.methods, *controls]:
                    for operator in args.operators:
                        if method in controls and operator not in (preset.control_operators or args.operators):
                            continue
                        if operator in MAP_FREE_OPERATORS and normalization != args.normalizations[0]:
                            continue  # a map-free student reads rows as distributions: every normalisation is the same
                        student_job(base, family, pair, seed, method, (maps(family, pair, method), *after_warm_start),
                                    baseline, operator, normalization)
            # The learning curve over map-annotated pairs (`Preset.curve_pairs`): the methods and the baseline of the
            # primary design on the first N pairs, each point with its own baseline.
            for pairs in args.curve_pairs:
                curve_baseline = baseline_name(family, pair, seed=seed, warm=warm, train_pairs=pairs)
                student_job(base, family, pair, seed, BASELINE, (maps(family, pair, EVALUATION_SET),
                                                                 *after_warm_start), None, train_pairs=pairs)
                for method in args.methods:
                    student_job(base, family, pair, seed, method, (maps(family, pair, method), *after_warm_start),
                                curve_baseline, PRIMARY_OPERATOR, SCALE_FAIR_NORMALIZATION, pairs)
    for (family, pair), teacher in teachers.items():
        for method in args.methods:
            jobs.append(
                Job(
                    "attributor",
                    f"{family}.{pair} {method}",
                    STAGES["attributor"].module,
                    [*student_argv(family, pair, teacher), "--method", method],
                    needs=(maps(family, pair, method),),
                    makes=(f"attributor:{attributor_name(family, pair, method)}",),
                    shared=True,
                )
            )
    # The positive control in the students' regime, scored on as many planted pairs as the verdict's test split has.
    family, pair = next(iter(teachers))
    jobs.append(Job("instrument", "planted alignments", STAGES["instrument"].module,
                    ["--results_dir", str(release.results), *common, "--corpus", corpus, "--pair", pair,
                     "--teacher", teachers[family, pair], "--teacher_name", family,
                     "--student_seeds", *map(str, args.seeds)]
                    + (["--finetune_steps", str(args.student_max_steps)] if args.student_max_steps else [])
                    + (["--curve_pairs", *map(str, args.curve_pairs)] if args.curve_pairs else []),
                    needs=("corpus", f"teacher:{family}.{pair}"), makes=("instrument",), shared=True))
    evaluate = ["--models_dir", str(release.models), "--attributions", attributions, "--corpus", corpus,
                "--results_dir", str(release.results), "--protocols", *preset.protocols]
    for family, pair, method, name, baseline in students:
        # A student is evaluated once it and its baseline's row exist, with the maps its protocols inject.
        needs = [f"student:{name}", maps(family, pair, EVALUATION_SET, "teacher")]
        if baseline is not None:
            needs.append(f"evaluated:{baseline}")
            if "teacher" in preset.protocols:
                needs.append(maps(family, pair, method, "teacher"))
            if "attributor" in preset.protocols and method in args.methods:
                needs.append(f"attributor:{attributor_name(family, pair, method)}")
        jobs.append(Job("evaluate", name, STAGES["evaluate"].module, [*evaluate, "--students", name],
                        needs=tuple(needs), makes=(f"evaluated:{name}",), shared=True))
    triangulated = []
    for (family, pair), teacher in teachers.items():
        # Beside the verdict, on the same maps: plausibility, faithfulness, sanity (one thread beside the students).
        argv = ["--teacher", teacher, "--pair", pair, "--teacher_name", family, "--attributions", attributions,
                "--corpus", corpus, "--results_dir", str(release.results), "--engine", preset.extract.engine,
                "--methods", *args.methods, *preset.triangulation.options()]
        argv += ["--ig_steps", str(preset.extract.ig_steps)] if preset.extract.ig_steps else []
        argv += ["--gold_alignments", args.gold_alignments] if args.gold_alignments else []
        names = [*args.methods, *CONTROLS, *map(shuffled_control, args.methods)]
        # the `.teacher` maps too: AOPC is also measured on the teacher's own translations where they exist
        teacher_maps = (maps(family, pair, m, "teacher") for m in teacher_kind_methods)
        jobs.append(Job("triangulate", f"{family}.{pair}", STAGES["triangulate"].module, argv,
                        needs=("corpus", *(maps(family, pair, n) for n in names), *teacher_maps),
                        makes=(f"triangulated:{family}.{pair}",), shared=True))
        triangulated.append(f"triangulated:{family}.{pair}")
    jobs.append(Job("report", "report.md", STAGES["report"].module, [
        "--results_dir", str(release.results), "--attributions", attributions, "--models_dir", str(release.models),
    ], needs=("instrument", *triangulated, *(f"evaluated:{s[3]}" for s in students)), makes=("report",)))
    # The evaluate modules (AER, AOPC, simulation) go out with every release as Spaces <org>/<name>.
    jobs.append(
        Job(
            "space",
            "metric Spaces",
            STAGES["metric-spaces"].module,
            ["--spaces_dir", str(release.spaces)],
            shared=True,
        )
    )
    jobs.append(Job("space", "agkd-space", STAGES["space-repo"].module, [
        "--folder", str(release.spaces / "agkd-space"), "--results", str(release.results / RESULTS_FILE),
    ], needs=("report",), shared=True))
    if args.stop_after:
        last = ORDER.index(args.stop_after)
        jobs = [j for j in jobs if ORDER.index(j.stage) <= last]
    # What exists before the run (a given corpus, Hub teachers) is not waited for.
    made = {name for job in jobs for name in job.makes}
    return [replace(job, needs=tuple(n for n in job.needs if n in made)) for job in jobs]


def make_executor(args: PipelineArguments, log_dir: Path):
    if args.executor == "ray":
        return RayExecutor(
            log_dir, address=args.ray_address, retries=args.retries, gpu_share=PRESETS[args.preset].gpu_share
        )
    return LocalExecutor(args.jobs, log_dir)


def stage_counts(jobs: list[Job]) -> str:
    """`corpus 1, teacher 1, student 68, ...`: how many of `jobs` each stage has, in the pipeline's order."""
    counts = Counter(job.stage for job in jobs)
    return ", ".join(f"{stage} {counts[stage]}" for stage in ORDER if counts[stage])


def run(args: PipelineArguments) -> int:
    jobs = plan(args)
    release = RunLayout(args.runs_dir, args.preset)
    analysis = plan_for(args.preset, args.seeds, args.student_init)
    logger.info("analysis plan %s written before any job: %s", analysis.sha256()[:12],
                write_plan(release.results, analysis))
    executor = make_executor(args, release.logs)
    logger.info(
        "pipeline %s: %d jobs (%s) -> %s; executor %s%s",
        args.preset, len(jobs),
        stage_counts(jobs),
        release.root, executor.name, f", {args.jobs} small trainings at a time" if args.executor == "local" else "",
    )
    start = time.perf_counter()
    deadline = None if args.max_minutes is None else start + 60 * args.max_minutes
    try:
        failed, seconds, left = schedule(jobs, executor, deadline)
    finally:
        executor.close()
    if failed:
        first = failed[0]
        logger.error(
            "stage %s (%s) failed with code %s; fix the cause and run the same command again: finished work is kept "
            "and skipped", first.job.stage, first.job.label, first.code,
        )
        return first.code
    job_times = ", ".join(f"{s} {t / 60:.1f}" for s, t in seconds.items())
    if left:
        logger.info(
            "pipeline %s: slice of --max_minutes %g ended after %.1f min (job time per stage: %s min); %d of %d jobs "
            "left (%s): run the same command again to go on", args.preset, args.max_minutes,
            (time.perf_counter() - start) / 60, job_times, len(left), len(jobs),
            stage_counts(left),
        )
        return 0
    summary = [
        f"pipeline {args.preset} finished in {(time.perf_counter() - start) / 60:.1f} min "
        f"(job time per stage: {job_times} min)",
        f"  release (what `agkd push` uploads): {release.hub}",
        f"  models: {len(list(release.models.glob('*')))} in {release.models}",
        f"  datasets: {', '.join(p.name for p in release.datasets.glob('*'))}",
        f"  report: {release.results / 'report.md'} (plots in {release.results / 'plots'})",
        f"  Space: agkd space --release {release.hub}   (or: AGKD_RELEASE={release.hub} python "
        f"{release.spaces / 'agkd-space' / 'app.py'})",
    ]
    logger.info("\n".join(summary))
    return 0


main = stage_main(PipelineArguments, lambda args: run(finalize(args)), prog="agkd pipeline", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
