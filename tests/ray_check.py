"""Run a small plan on a real Ray (embedded, or `--address`) and write what happened, for tests/test_executors.py.

    python -m tests.ray_check OUT_DIR [--address HOST:PORT]

Run it inside a network namespace of its own (`unshare -n`, loopback up): Ray then binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from training.executors import Job, RayExecutor, schedule


def plan(out: Path) -> list[Job]:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--address", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    args.out.mkdir(parents=True, exist_ok=True)
    executor = RayExecutor(args.out / "logs", address=args.address, retries=2, gpu_share=0.25)
    try:
        import ray

        nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
        failed, _ = schedule(plan(args.out), executor)
    finally:
        executor.close()
    (args.out / "summary.json").write_text(json.dumps({"failed": [o.job.label for o in failed], "nodes": nodes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
