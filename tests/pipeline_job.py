"""A stand-in stage for the executor tests: records when it starts and ends, sleeps, and can die once.

    python -m tests.pipeline_job --name a --record FILE [--sleep S] [--die_once MARKER] [--wait_for N]

`--die_once`: the first attempt kills its own process (SIGKILL, as a lost worker) after recording its start; the
marker file remembers that it did, so the retry runs to the end. `--wait_for N`: after recording its start, wait
until N jobs have started (a barrier that only jobs running at the same time pass), exit 4 after 120 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def record(path: Path, **event) -> None:
    with path.open("a") as out:
        out.write(json.dumps({**event, "time": time.time(), "pid": os.getpid()}) + "\n")


def started(path: Path) -> set[str]:
    return {event["name"] for event in map(json.loads, path.read_text().splitlines()) if event["event"] == "start"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--record", required=True, type=Path)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--die_once", type=Path, default=None)
    parser.add_argument("--fail", action="store_true", help="exit with code 3 (a job's own failure)")
    parser.add_argument("--wait_for", type=int, default=0, help="wait until this many jobs have started")
    args = parser.parse_args(argv)
    record(args.record, name=args.name, event="start", cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
    if args.die_once is not None and not args.die_once.exists():
        args.die_once.write_text("died once\n")
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.time() + 120
    while len(started(args.record)) < args.wait_for:
        if time.time() > deadline:
            return 4
        time.sleep(0.2)
    time.sleep(args.sleep)
    if args.fail:
        return 3
    record(args.record, name=args.name, event="end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
