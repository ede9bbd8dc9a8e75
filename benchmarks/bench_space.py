"""Benchmark (not a test): seconds per sentence of the Space's main callback on a release, per method.

Each call is what a visitor waits for: baseline, injected-student and teacher translations, the teacher's map of a
typed sentence (computed live with the fast engine; test-split sentences read stored rows instead and are cheaper),
the Attributor's reconstruction and the heatmap figure. The first call loads the models and is reported apart.

    .venv/bin/python benchmarks/bench_space.py --release runs/demo/hub --threads 2
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Typed sentences (not from the corpus) in the style of the Bible test split, German.
SENTENCES = (
    "Und er sprach zu ihnen: Gehet hin in die Stadt und saget es allen.",
    "Die Kinder aber freuten sich und lobten Gott.",
    "Da stand der Mann auf und ging in sein Haus.",
)


def main(argv: list[str] | None = None) -> int:
    import torch

    from space.app import SpaceApp
    from space.release import Release

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", default="runs/demo/hub")
    parser.add_argument("--pair", default="de-en")
    parser.add_argument("--operator", default="add")
    parser.add_argument("--map_source", default="teacher", help="teacher or attributor")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    app = SpaceApp(Release(root=args.release))
    choice = app.choices(args.pair)
    teacher = choice["teacher"]
    t0 = time.perf_counter()
    status = app.translate(SENTENCES[0], args.pair, teacher, choice["method"], args.operator, args.map_source)[0]
    first = time.perf_counter() - t0
    print(f"release {args.release}, pair {args.pair}, teacher {teacher}, operator {args.operator}, map source "
          f"{args.map_source}, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")
    print(f"first call (loads the models): {first:.2f} s ({status})")
    print("| method | median s per sentence | max s |")
    print("|---|---|---|")
    for method in app.release.methods(args.pair, teacher):
        seconds = []
        for sentence in SENTENCES:
            t0 = time.perf_counter()
            status = app.translate(sentence, args.pair, teacher, method, args.operator, args.map_source)[0]
            seconds.append(time.perf_counter() - t0)
            if not status.startswith("✅"):
                print(f"{method}: {status}")
        print(f"| {method} | {statistics.median(seconds):.2f} | {max(seconds):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
