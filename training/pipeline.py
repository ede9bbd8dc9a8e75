"""`agkd pipeline`: from nothing to a release, one preset at a time.

Stages, in order, each a sub-command of its own (`agkd <stage> --help`): corpus -> teacher -> extract ->
student -> attributor -> evaluate -> report -> space. Every stage skips the outputs it finds complete, so a
re-run after a kill (or a failure) continues where the last run stopped. `--pairs`, `--teachers`, `--methods`,
`--operators` and `--seeds` narrow the preset's grid.

    agkd pipeline --preset smoke          # the whole code path in minutes (tests)
    agkd pipeline --preset demo           # the README's main job
    agkd pipeline --preset paper --pairs de-en --operators all

Students and Attributors are many small independent trainings: on a CPU they run `--jobs` at a time in a pool of
worker processes sharing the cores (2 processes x 1 thread trained two demo students 1.37x faster than one after the
other with 2 threads); a worker keeps its imports from job to job, and each job logs to `runs/<preset>/logs/`.

Everything lands under `runs/<preset>/`: `hub/` holds exactly what `agkd push` uploads (models, datasets and the
Space), `results/` the result rows, `report.md` and its plots, `checkpoints/` the resumable training state.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from datasets_scripts.attribution_configs import BASELINE
from datasets_scripts.attribution_methods import CONTROLS
from training.cli import run_as_script, stage_main
from training.layout import RunLayout, warm_start_name
from training.presets import ALL_OPERATORS, PRESETS, STUDENT_INITS

logger = logging.getLogger(__name__)

STAGES = ("corpus", "teacher", "extract", "warm-start", "student", "attributor", "instrument", "evaluate", "report", "space")
PARALLEL_STAGES = ("student", "attributor")  # independent small trainings: `--jobs` processes at a time


@dataclass
class PipelineArguments:
    preset: str = field(default="demo", metadata={"help": "smoke, demo or paper"})
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
        metadata={"help": "map normalisations of the grid: row_sum (scale-fair, carries the verdict), none (the paper's "
                  "raw maps), ... (default: the preset's)"},
    )
    student_init: str | None = field(
        default=None,
        metadata={"help": "scratch (every student from random weights: the paper) or warm (every cell fine-tunes one "
                  "shared no-map warm start trained on the corpus) (default: the preset's)"},
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
    stop_after: str | None = field(default=None, metadata={"help": f"last stage to run: one of {', '.join(STAGES)}"})
    jobs: int | None = field(
        default=None,
        metadata={
            "help": "student and Attributor trainings run at once, as processes sharing the CPU cores (default: 2 on "
            "a CPU machine with at least 2 cores, 1 with a GPU)"
        },
    )


@dataclass
class Job:
    stage: str
    label: str
    module: str | None  # a stage module with `main(argv)`; None for the Space folder, written here
    argv: list[str]


def finalize(args: PipelineArguments) -> PipelineArguments:
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.stop_after is not None and args.stop_after not in STAGES:
        raise ValueError(f"unknown stage {args.stop_after!r}; choose one of {', '.join(STAGES)}")
    preset = PRESETS[args.preset]
    args.pairs = args.pairs or list(preset.pairs)
    args.teachers = args.teachers or list(preset.teachers)
    args.methods = args.methods or list(preset.methods)
    args.seeds = args.seeds if args.seeds is not None else list(preset.seeds)
    args.normalizations = args.normalizations or list(preset.normalizations)
    args.student_init = args.student_init or preset.student_init
    if args.operators == ["all"]:
        args.operators = list(ALL_OPERATORS)
    args.operators = args.operators or list(preset.operators)
    if args.jobs is None:
        import torch

        args.jobs = 1 if torch.cuda.is_available() else min(2, os.cpu_count() or 1)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    from datasets_scripts.attribution_methods import METHODS
    from datasets_scripts.teachers import check_family, check_pair

    for pair in args.pairs:
        check_pair(pair)
    for family in args.teachers:
        check_family(family)
    unknown = [m for m in args.methods if m not in METHODS] + [o for o in args.operators if o not in ALL_OPERATORS]
    if unknown:
        raise ValueError(f"unknown methods or operators {unknown}; methods: {[*METHODS]}, operators: {ALL_OPERATORS}")
    from modeling.attribution_injection import MAP_NORMALIZATIONS, check_choice

    for normalization in args.normalizations:
        check_choice("map normalisation", normalization, MAP_NORMALIZATIONS)
    if args.student_init not in STUDENT_INITS:
        raise ValueError(f"unknown --student_init {args.student_init!r}; choose one of {STUDENT_INITS}")
    return args


def plan(args: PipelineArguments) -> list[Job]:
    """Every job of the run, in order; each one is a stage's `main(argv)` that skips finished work itself."""
    from datasets_scripts.teachers import teacher_spec

    release = RunLayout(args.runs_dir, args.preset)
    preset = PRESETS[args.preset]
    corpus = args.corpus or str(release.datasets / "agkd-parallel")
    attributions = str(release.datasets / "agkd-attributions")
    common = ["--preset", args.preset]
    jobs = []
    if args.corpus is None:
        argv = ["--output_dir", corpus, "--pairs", ",".join(args.pairs)] + (["--lite"] if preset.corpus.lite else [])
        jobs.append(Job("corpus", "agkd-parallel", "datasets_scripts.build_corpus", argv))
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
                jobs.append(Job("teacher", teacher_spec(family, job_pairs[0]).local_name, "training.train_teacher", argv))
    for (family, pair), teacher in teachers.items():
        base = ["--teacher", teacher, "--corpus", corpus, "--output_dir", attributions]
        base += ["--pair", pair, "--teacher_name", family, "--engine", preset.extract.engine]
        base += preset.extract.options(args.allow_weak_teacher)
        jobs.append(Job("extract", f"{family}.{pair} reference", "datasets_scripts.extract_attributions",
                        [*base, "--methods", *args.methods, *CONTROLS, "--target_kinds", "reference"]))
        # The teacher's translations of the test split (the simulatability metrics' targets, in every control
        # config); the methods' maps of them only where the `teacher` protocol is evaluated.
        methods = [*args.methods, *CONTROLS] if "teacher" in preset.protocols else [*CONTROLS]
        jobs.append(Job("extract", f"{family}.{pair} teacher (test)", "datasets_scripts.extract_attributions",
                        [*base, "--methods", *methods, "--target_kinds", "teacher", "--splits", "test"]))

    def student_argv(family: str, pair: str, teacher: str) -> list[str]:
        """Where a student or Attributor of (family, pair) reads its maps and teacher, and writes its folders."""
        argv = [*common, "--attributions", attributions, "--teacher", teacher, "--pair", pair, "--teacher_name", family]
        return argv + ["--output_dir", str(release.models), "--checkpoint_dir", str(release.checkpoints)]

    if args.student_init == "warm":
        # One shared no-map warm start per teacher and pair, trained on the corpus before any cell (seed 0).
        for (family, pair), teacher in teachers.items():
            jobs.append(Job("warm-start", f"{family}.{pair}", "training.train_student",
                            [*student_argv(family, pair, teacher), "--seed", "0", "--method", BASELINE, "--train_corpus", corpus]))
    for (family, pair), teacher in teachers.items():
        where = student_argv(family, pair, teacher)
        warm_start = release.models / warm_start_name(family, pair)
        init = ["--init_from", str(warm_start)] if args.student_init == "warm" else []
        for seed in args.seeds:
            base = [*where, "--seed", str(seed), *init]
            jobs.append(Job("student", f"{family}.{pair} baseline s{seed}", "training.train_student", [*base, "--method", BASELINE]))
            for normalization in args.normalizations:
                for method in [*args.methods, *CONTROLS]:
                    for operator in args.operators:
                        jobs.append(Job(
                            "student", f"{family}.{pair} {method} {operator} {normalization} s{seed}", "training.train_student",
                            [*base, "--method", method, "--operator", operator, "--map_normalization", normalization],
                        ))
    for (family, pair), teacher in teachers.items():
        for method in args.methods:
            jobs.append(Job("attributor", f"{family}.{pair} {method}", "training.train_attributor",
                            [*student_argv(family, pair, teacher), "--method", method]))
    jobs.append(Job("instrument", "planted alignments", "training.instrument", ["--results_dir", str(release.results)]))
    jobs.append(Job("evaluate", "all students", "training.evaluate", [
        "--models_dir", str(release.models), "--attributions", attributions, "--corpus", corpus,
        "--results_dir", str(release.results), "--protocols", *preset.protocols,
    ]))
    jobs.append(Job("report", "report.md", "training.report", [
        "--results_dir", str(release.results), "--attributions", attributions, "--models_dir", str(release.models),
    ]))
    jobs.append(Job("space", "agkd-space", None, [str(release.spaces / "agkd-space")]))
    if args.stop_after:
        last = STAGES.index(args.stop_after)
        jobs = [j for j in jobs if STAGES.index(j.stage) <= last]
    return jobs


def write_space_folder(folder: Path) -> Path:
    """The Space repo of the release: the files of `space/` (app, requirements, README with the Space header)."""
    source = Path(__file__).resolve().parent.parent / "space"
    folder.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.suffix in (".py", ".md", ".txt") and path.name != "__init__.py":
            shutil.copy2(path, folder / path.name)
    return folder


def run_in_process(job: Job) -> int:
    if job.module is None:
        write_space_folder(Path(job.argv[0]))
        return 0
    return importlib.import_module(job.module).main(job.argv) or 0


def start_worker(threads: int) -> None:
    """A pool worker: `threads` torch threads, INFO logging to its standard error (which each job sends to its log)."""
    import torch

    from training.cli import setup_logging

    torch.set_num_threads(threads)
    setup_logging(0)


def _flush_standard_streams() -> None:
    """Flush stdout and stderr before their file descriptors move; reopen one that a job closed (as `json.tool` does
    with stdout), since the next job of the worker writes to it again."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        if stream.closed:
            setattr(sys, name, open(fd, "w", buffering=1, closefd=False))  # noqa: SIM115 (lives as long as the worker)
        else:
            stream.flush()


def job_log(job: Job, log_dir: Path) -> Path:
    return log_dir / f"{job.stage}-{re.sub(r'[^A-Za-z0-9.-]+', '-', job.label)}.log"


def run_logged(job: Job, log_dir: Path) -> tuple[int, float]:
    """One job in a pool worker, exactly as `python -m <module> argv` would run it (the module's `__main__` block),
    its output in `job_log(job, log_dir)`; returns its exit code and seconds. The worker keeps torch, transformers
    and datasets imported between jobs, which saves their import (about 7 s on this 2-core CPU) per student."""
    import runpy
    import traceback

    log_dir.mkdir(parents=True, exist_ok=True)
    log = job_log(job, log_dir)
    start = time.perf_counter()
    saved = [os.dup(1), os.dup(2)]
    argv, sys.argv = sys.argv, [job.module, *job.argv]
    with open(log, "w") as out:
        _flush_standard_streams()
        os.dup2(out.fileno(), 1), os.dup2(out.fileno(), 2)
        try:
            runpy.run_module(job.module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:  # as the interpreter does: an int is the code, anything else is printed
            code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
            if not isinstance(stop.code, int | None):
                print(stop.code, file=sys.stderr)
        except Exception:  # a crash of one job is its log's business; the pipeline reports the code
            traceback.print_exc()
            code = 1
        finally:
            _flush_standard_streams()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sys.argv = argv
    return code, time.perf_counter() - start


def batches(jobs: list[Job], parallel: int) -> list[list[Job]]:
    """Consecutive jobs grouped: a run of student (or Attributor) jobs is one group when `parallel` > 1."""
    groups: list[list[Job]] = []
    for job in jobs:
        if parallel > 1 and job.stage in PARALLEL_STAGES and groups and groups[-1][0].stage == job.stage:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def run(args: PipelineArguments) -> int:
    from tqdm.auto import tqdm

    jobs = plan(args)
    release = RunLayout(args.runs_dir, args.preset)
    logger.info(
        "pipeline %s: %d jobs (%s) -> %s; %d student/Attributor trainings at a time",
        args.preset, len(jobs),
        ", ".join(f"{s} {sum(j.stage == s for j in jobs)}" for s in STAGES if any(j.stage == s for j in jobs)),
        release.root, args.jobs,
    )
    timings: dict[str, float] = {}
    bar = tqdm(total=len(jobs), desc="pipeline", unit="job", dynamic_ncols=True)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    for group in batches(jobs, args.jobs):
        stage = group[0].stage
        start = time.perf_counter()
        if len(group) == 1:
            bar.set_description(f"{stage}: {group[0].label}")
            codes = [run_in_process(group[0])]
            bar.update()
        else:
            bar.set_description(f"{stage}: {len(group)} jobs, {args.jobs} at a time (logs in {release.logs})")
            codes = [0] * len(group)
            context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
            with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=start_worker, initargs=(threads,)) as pool:
                futures = {pool.submit(run_logged, job, release.logs): i for i, job in enumerate(group)}
                for future in as_completed(futures):
                    index = futures[future]
                    job, (codes[index], seconds) = group[index], future.result()
                    if codes[index] != 0:
                        logger.error("%s (%s) failed with code %s; its log: %s", job.stage, job.label, codes[index],
                                     job_log(job, release.logs))
                    else:
                        logger.info("%s %s: done in %.0f s", job.stage, job.label, seconds)
                    bar.update()
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
        failed = [(job, code) for job, code in zip(group, codes, strict=True) if code != 0]
        if failed:
            bar.close()
            job, code = failed[0]
            logger.error(
                "stage %s (%s) failed with code %s; fix the cause and run the same command again: finished work is kept "
                "and skipped", job.stage, job.label, code,
            )
            return code
    bar.close()
    summary = [
        f"pipeline {args.preset} finished in {sum(timings.values()) / 60:.1f} min "
        f"({', '.join(f'{s} {t / 60:.1f}' for s, t in timings.items())} min)",
        f"  release (what `agkd push` uploads): {release.hub}",
        f"  models: {len(list(release.models.glob('*')))} in {release.models}",
        f"  datasets: {', '.join(p.name for p in release.datasets.glob('*'))}",
        f"  report: {release.results / 'report.md'} (plots in {release.results / 'plots'})",
        f"  Space: agkd space --release {release.hub}   (or: python {release.spaces / 'agkd-space' / 'app.py'})",
    ]
    logger.info("\n".join(summary))
    return 0


main = stage_main(PipelineArguments, lambda args: run(finalize(args)), prog="agkd pipeline", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
