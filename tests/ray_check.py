"""Run a small plan on a real Ray (embedded, or `--address`) and write what happened, for tests/test_executors.py.

    python -m tests.ray_check OUT_DIR [--address HOST:PORT]
    python -m tests.ray_check OUT_DIR --gpus 1    # an embedded Ray declaring one (logical) GPU,
                                                  # then the GPU-share plan too

The GPU-share plan needs no GPU: Ray schedules by the resources a node declares and hands each task the device
indices it was given in `CUDA_VISIBLE_DEVICES`, which the stand-in jobs record. Both plans share one Ray start.

Run it inside a network namespace of its own (`unshare -n`, loopback up): Ray then binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from agkd.training.orchestration.executors import Job, RayExecutor, schedule


def plan(out: Path) -> list[Job]:
    """Dependencies and a killed worker: a student that dies once and is retried."""
    record = str(out / "events.jsonl")

    def job(name: str, needs=(), sleep=0.0, extra=()):
        argv = ["--name", name, "--record", record, "--sleep", str(sleep), *extra]
        return Job("test", name, "tests.pipeline_job", argv, needs=needs, makes=(name,), shared=True)

    return [
        job("maps-a", sleep=1.0),
        job("maps-b", sleep=4.0),
        job("student-a", needs=("maps-a",), extra=["--die_once", str(out / "died")]),
        job("report", needs=("student-a", "maps-b")),
    ]


def gpu_share_plan(out: Path) -> list[Job]:
    """A teacher that asks for a whole GPU and four small trainings that ask for a `gpu_share` of 0.25 each; each
    student waits until all four have started, so it ends only if the four ran at the same time."""
    def job(name: str, record: str, shared: bool, extra=()):
        argv = ["--name", name, "--record", str(out / record), "--sleep", "1", *extra]
        return Job("test", name, "tests.pipeline_job", argv, shared=shared)

    students = [job(f"student-{i}", "students.jsonl", True, ["--wait_for", "4"]) for i in range(4)]
    return [job("teacher", "teacher.jsonl", False), *students]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--address", default=None)
    parser.add_argument("--gpus", type=int, default=None, help="start an embedded Ray with this many logical GPUs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    args.out.mkdir(parents=True, exist_ok=True)
    import ray

    if args.gpus:
        ray.init(num_cpus=4, num_gpus=args.gpus, log_to_driver=False, configure_logging=False)
    executor = RayExecutor(args.out / "logs", address=args.address, retries=2, gpu_share=0.25)
    try:
        nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
        failed, _, _ = schedule(plan(args.out), executor)
        if args.gpus:
            failed += schedule(gpu_share_plan(args.out), executor)[0]
    finally:
        executor.close()
    (args.out / "summary.json").write_text(json.dumps({"failed": [o.job.label for o in failed], "nodes": nodes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
