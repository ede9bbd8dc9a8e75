"""Where the pipeline's jobs run: `local` (this machine: the driver process and a pool of workers) or `ray` (Ray
Core tasks on an embedded local Ray or on a running cluster: SLURM, KubeRay, several nodes).

Both are driven by `schedule`, which reads the plan the same way: a job starts as soon as every output it needs
has been made (`Job.needs`, `Job.makes`), not when its stage's neighbours are done, so a student starts once its
method's maps exist while other methods are still being extracted. Every job runs exactly as `python -m <module>
argv` would (`run_logged`), its output in its own log under `runs/<preset>/logs/`, and skips what it finds finished,
so a retried or re-run job continues from its checkpoints and finished shards and recomputes nothing.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path

from agkd.datasets_scripts.stage import setup_logging

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Job:
    """One unit of the plan: a stage module run with `argv`, what it reads from other jobs and what it makes.

    `needs` and `makes` are names of outputs (`maps:marian.de-en.saliency.reference`, `student:<name>`, ...): the
    plan states each once and both executors schedule by them. A `shared` job is one of many small trainings that
    share a machine (students, Attributors, their evaluations); the others take a whole machine (or a GPU)."""

    stage: str
    label: str
    module: str  # a stage module with `main(argv)`
    argv: list[str]
    needs: tuple[str, ...] = ()
    makes: tuple[str, ...] = ()
    shared: bool = False


@dataclass
class Outcome:
    job: Job
    code: int
    seconds: float
    log: Path | None = None


def job_log(job: Job, log_dir: Path) -> Path:
    return log_dir / f"{job.stage}-{re.sub(r'[^A-Za-z0-9.-]+', '-', job.label)}.log"


# --------------------------------------------------------------------------------------------- running one job
def run_in_process(job: Job) -> int:
    """A job in the driver process, its output on the console."""
    import importlib

    return importlib.import_module(job.module).main(job.argv) or 0


def _flush_standard_streams() -> None:
    """Flush stdout and stderr before their file descriptors move; reopen one that a job closed (as `json.tool` does
    with stdout), since the next job of the worker writes to it again."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        if stream.closed:
            setattr(sys, name, open(fd, "w", buffering=1, closefd=False))  # noqa: SIM115 (lives as long as the worker)
        else:
            stream.flush()


def run_logged(job: Job, log_dir: Path) -> tuple[int, float]:
    """One job in a worker, exactly as `python -m <module> argv` would run it (the module's `__main__` block), its
    output appended to `job_log(job, log_dir)` (a retried job's attempts follow each other there); returns its exit
    code and seconds. A worker keeps torch, transformers and datasets imported between jobs, which saves their
    import (about 7 s on a 2-core CPU) per student."""
    import runpy
    import traceback

    log_dir.mkdir(parents=True, exist_ok=True)
    log = job_log(job, log_dir)
    start = time.perf_counter()
    saved = [os.dup(1), os.dup(2)]
    argv, sys.argv = sys.argv, [job.module, *job.argv]
    with open(log, "a") as out:
        _flush_standard_streams()
        os.dup2(out.fileno(), 1), os.dup2(out.fileno(), 2)
        out.write(
            f"==== {time.time():.3f} {job.stage} {job.label}: started in process {os.getpid()} on "
            f"{os.uname().nodename}\n"
        )
        out.flush()
        code = 1
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
            out.write(f"==== {time.time():.3f} {job.stage} {job.label}: exit code {code}\n")
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sys.argv = argv
    return code, time.perf_counter() - start


def start_worker(threads: int, gpus=None) -> None:
    """A pool worker: `threads` torch threads, one GPU of `gpus` (a queue of device indices) if given, INFO logging
    to its standard error (which each job sends to its log)."""
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    import torch

    torch.set_num_threads(threads)
    setup_logging(0)


# --------------------------------------------------------------------------------------------- executors
class Executor:
    """What `schedule` drives: `can_start(job)`, `submit(job)`, `wait()` (at least one outcome), `busy`, `close()`.
    A job run in the driver finishes inside `submit`; its outcome waits in `finished` for the next `wait()`."""

    name = ""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: dict = {}  # a handle of the engine (future, object ref) -> (job, start)
        self.finished: list[Outcome] = []

    def run_in_driver(self, job: Job) -> None:
        start = time.perf_counter()
        self.finished.append(Outcome(job, run_in_process(job), time.perf_counter() - start))

    def collect(self) -> list[Outcome]:
        """Block until at least one running job ends; its outcomes."""
        raise NotImplementedError

    def wait(self) -> list[Outcome]:
        if not self.finished:
            self.finished.extend(self.collect())
        finished, self.finished = self.finished, []
        return finished

    @property
    def busy(self) -> bool:
        return bool(self.running or self.finished)


class LocalExecutor(Executor):
    """This machine. Jobs that take the whole machine run in the driver, one at a time, with their output on the
    console; shared jobs run `jobs` at a time in a pool of spawned workers (fresh interpreters: no forked torch
    thread pools) that split the CPU threads, and on a machine with several GPUs each worker holds one GPU
    (`CUDA_VISIBLE_DEVICES`, round robin). With `jobs=1` everything runs in the driver."""

    name = "local"

    def __init__(self, jobs: int, log_dir: Path):
        super().__init__(log_dir)
        self.jobs = jobs
        self.pool: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            import torch

            context = multiprocessing.get_context("spawn")
            gpus = None
            if torch.cuda.is_available() and torch.cuda.device_count() > 1:
                gpus = context.Manager().Queue()
                for worker in range(self.jobs):
                    gpus.put(worker % torch.cuda.device_count())
                logger.info("%d workers on %d GPUs, one GPU each", self.jobs, torch.cuda.device_count())
            threads = max(1, (os.cpu_count() or 1) // self.jobs)
            self.pool = ProcessPoolExecutor(
                self.jobs, mp_context=context, initializer=start_worker, initargs=(threads, gpus)
            )
        return self.pool

    def in_driver(self, job: Job) -> bool:
        return self.jobs == 1 or not job.shared

    def can_start(self, job: Job) -> bool:
        if self.finished:  # outcomes first: a failure stops the run before anything else starts
            return False
        if self.in_driver(job):
            return not self.running
        return len(self.running) < self.jobs and not any(not j.shared for j, _ in self.running.values())

    def submit(self, job: Job) -> None:
        if self.in_driver(job):
            self.run_in_driver(job)
        else:
            self.running[self._pool().submit(run_logged, job, self.log_dir)] = (job, time.perf_counter())

    def collect(self) -> list[Outcome]:
        done, _ = wait_futures(list(self.running), return_when=FIRST_COMPLETED)
        outcomes = []
        for future in done:
            job, _ = self.running.pop(future)
            outcomes.append(Outcome(job, *future.result(), job_log(job, self.log_dir)))
        return outcomes

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _ray_job(job: Job, log_dir: str, threads: int) -> tuple[int, float]:
    """The body of a Ray task: the job in this Ray worker, with as many torch threads as CPUs it was given."""
    import torch

    torch.set_num_threads(max(1, threads))
    setup_logging(0)
    return run_logged(job, Path(log_dir))


class RayExecutor(Executor):
    """Ray Core: every job is a task, placed by Ray on any node with the resources it asks for. Shared jobs take
    `gpu_share` of a GPU (several per GPU) or one CPU; the others a whole GPU, or on a CPU-only cluster
    `whole_node_cpus` CPUs. A task whose worker dies (a killed process, a lost node) is retried `retries` times by
    Ray and continues from its checkpoints and finished shards. `address` None starts an embedded local Ray."""

    name = "ray"

    def __init__(self, log_dir: Path, address: str | None, retries: int, gpu_share: float):
        try:
            import ray
        except ImportError as err:
            raise RuntimeError(
                "--executor ray needs Ray: pip install 'agkd[distributed]' (or 'ray[default]' for the dashboard too)"
            ) from err
        super().__init__(log_dir)
        self.ray, self.retries = ray, retries
        dashboard = None
        if not ray.is_initialized():
            try:
                dashboard = ray.init(address=address, log_to_driver=False, configure_logging=False).dashboard_url
            except (ConnectionError, RuntimeError) as err:
                if "auth" not in str(err).lower():
                    raise
                # Ray >= 2.59: `ray start --head` turns token authentication on where a token exists
                # (~/.ray/auth_token), and a client must then say so too.
                raise RuntimeError(
                    f"the Ray cluster at {address} asks for an authentication token: export RAY_AUTH_MODE=token (and "
                    "RAY_AUTH_TOKEN_PATH if the token is not in ~/.ray/auth_token) before `agkd pipeline`, or start "
                    "the cluster with RAY_AUTH_MODE=disabled"
                ) from err
        resources = ray.cluster_resources()
        self.gpus = resources.get("GPU", 0.0)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.whole_node_cpus = int(min(n["Resources"].get("CPU", 1) for n in nodes)) if nodes else 1
        self.gpu_share = gpu_share
        self.task = ray.remote(_ray_job)
        logger.info(
            "Ray cluster: %d node(s), %s CPUs, %s GPUs%s", len(nodes), resources.get("CPU", 0), self.gpus,
            f"; dashboard at http://{dashboard}" if dashboard else " (no dashboard: pip install 'ray[default]')",
        )

    def resources(self, job: Job) -> dict:
        if self.gpus:
            return {"num_cpus": 1, "num_gpus": self.gpu_share if job.shared else 1}
        return {"num_cpus": 1 if job.shared else self.whole_node_cpus}

    def can_start(self, job: Job) -> bool:
        return True  # Ray queues what does not fit yet

    def submit(self, job: Job) -> None:
        resources = self.resources(job)
        ref = self.task.options(max_retries=self.retries, retry_exceptions=False, **resources).remote(
            job, str(self.log_dir), resources["num_cpus"]
        )
        self.running[ref] = (job, time.perf_counter())

    def collect(self) -> list[Outcome]:
        done, _ = self.ray.wait(list(self.running), num_returns=1)
        outcomes = []
        for ref in done:
            job, start = self.running.pop(ref)
            try:
                code, seconds = self.ray.get(ref)
            except self.ray.exceptions.RayError as err:  # the worker died more often than it may be retried
                logger.error(
                    "%s %s: lost after %d retries (%s)", job.stage, job.label, self.retries, type(err).__name__
                )
                code, seconds = 1, time.perf_counter() - start
            outcomes.append(Outcome(job, code, seconds, job_log(job, self.log_dir)))
        return outcomes

    def close(self) -> None:
        self.ray.shutdown()


# --------------------------------------------------------------------------------------------- the scheduler
@dataclass
class Progress:
    """Jobs done, running and failed per stage, shown on one tqdm bar."""

    total: int
    done: Counter = field(default_factory=Counter)
    running: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)

    def __post_init__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc="pipeline", unit="job", dynamic_ncols=True)

    def show(self) -> None:
        stages = list(dict.fromkeys([*self.done, *self.running, *self.failed]))
        self.bar.set_postfix_str(
            "; ".join(
                f"{s} {self.done[s]} done" + (f", {self.running[s]} running" if self.running[s] else "")
                + (f", {self.failed[s]} failed" if self.failed[s] else "")
                for s in stages
            )
        )


def schedule(jobs: list[Job], executor, deadline: float | None = None
             ) -> tuple[list[Outcome], dict[str, float], list[Job]]:
    """Run `jobs`, each once everything it needs has been made, in plan order among those ready. After a failure, or
    past `deadline` (a `time.perf_counter()` value: a time-boxed slice), no new job starts; running ones finish.
    Returns the failed outcomes, the seconds spent per stage and the jobs the deadline left unstarted."""
    made: set[str] = set()
    pending = list(jobs)
    failed: list[Outcome] = []
    seconds: Counter = Counter()
    progress = Progress(len(jobs))

    def open_for_jobs() -> bool:
        return not failed and (deadline is None or time.perf_counter() < deadline)

    while pending or executor.busy:
        while open_for_jobs() and (
            ready := next((j for j in pending if set(j.needs) <= made and executor.can_start(j)), None)
        ):
            pending.remove(ready)
            progress.running[ready.stage] += 1
            progress.bar.set_description(f"{ready.stage}: {ready.label}")
            progress.show()
            executor.submit(ready)
        if not executor.busy:
            break
        for outcome in executor.wait():
            job = outcome.job
            progress.running[job.stage] -= 1
            seconds[job.stage] += outcome.seconds
            if outcome.code == 0:
                made.update(job.makes)
                progress.done[job.stage] += 1
                logger.info("%s %s: done in %.0f s", job.stage, job.label, outcome.seconds)
            else:
                failed.append(outcome)
                progress.failed[job.stage] += 1
                logger.error(
                    "%s (%s) failed with code %s%s", job.stage, job.label, outcome.code,
                    f"; its log: {outcome.log}" if outcome.log else "",
                )
            progress.bar.update()
            progress.show()
    progress.bar.close()
    if pending and open_for_jobs():
        missing = sorted({n for j in pending for n in j.needs} - made)
        raise RuntimeError(f"{len(pending)} jobs wait for outputs no job makes: {', '.join(missing[:5])}")
    return failed, dict(seconds), [] if failed else pending
