"""Benchmark (not a test): seconds per sentence of the Space's main callback on a release, per method.

Each call is what a visitor waits for: baseline, injected-student and teacher translations, the teacher's map of a
typed sentence (computed live with the fast engine; test-split sentences read stored rows instead and are cheaper),
the Attributor's reconstruction and the heatmap figure. The first call loads the models and is reported apart.

`--lookalike marian|mbart` times only the live map of a typed sentence, per method, on a teacher of a real Hub
checkpoint's size with random weights (tests/tiny_teachers.py `build_lookalike`: opus-mt-de-en, 74M parameters; or
mBART-50's width, d_model 1024 and its 250,054-token vocabulary, with 2+2 of its 12+12 layers): integrated gradients
with the Space's CPU cap (`LIVE_IG_STEPS`), and with `--uncapped` also with the registry's 50 steps.

    .venv/bin/python benchmarks/bench_space.py --release runs/demo/hub --threads 2
    .venv/bin/python benchmarks/bench_space.py --lookalike marian --threads 2 --uncapped
    .venv/bin/python benchmarks/bench_space.py --lookalike mbart --threads 2 \\
        --methods attention saliency integrated_gradients
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

    from agkd.space.app import SpaceApp
    from agkd.space.release import Release

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", default="runs/demo/hub")
    parser.add_argument("--pair", default="de-en")
    parser.add_argument("--operator", default="add")
    parser.add_argument("--map_source", default="teacher", help="teacher or attributor")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--lookalike", choices=("marian", "mbart"), default=None, help="time live maps on a real-size teacher"
    )
    parser.add_argument("--methods", nargs="*", default=None, help="with --lookalike: these methods only")
    parser.add_argument(
        "--uncapped", action="store_true", help="with --lookalike: also integrated gradients at 50 steps"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.lookalike:
        return live_maps_on_a_lookalike(args.lookalike, args.threads, args.methods, args.uncapped)
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


def live_maps_on_a_lookalike(family: str, threads: int | None, methods: list[str] | None, uncapped: bool) -> int:
    """Seconds of `SpaceApp.teacher_map` for the typed SENTENCES, per method, on a real-size lookalike teacher."""
    import tempfile
    from pathlib import Path

    import torch

    from agkd.datasets_scripts.attribution.methods import METHODS
    from agkd.datasets_scripts.teachers import teacher_spec
    from agkd.space import app as app_module
    from agkd.space.app import SpaceApp
    from agkd.space.release import Release, load_attribution_teacher
    from tests.tiny_teachers import build_lookalike

    if threads:
        torch.set_num_threads(threads)  # the test helpers' import pins one thread
    size = {"marian": "marian-real", "mbart": "mbart-real-width"}[family]
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "hub" / "models"
        teacher_dir = build_lookalike(models / teacher_spec(family, "de-en").local_name, family, size=size)
        app = SpaceApp(Release(root=Path(tmp) / "hub"))
        t0 = time.perf_counter()
        teacher = load_attribution_teacher("de-en", str(teacher_dir), family)
        loaded = time.perf_counter() - t0
        params = teacher.model.num_parameters() / 1e6
        targets = [
            "And he said to them: go into the city and tell it to all.",
            "But the children rejoiced and praised God.",
            "Then the man stood up and went into his house.",
        ]
        print(f"{family} lookalike ({size}: {params:.0f}M parameters, vocabulary {teacher.model.config.vocab_size:,}), "
              f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs; teacher loaded in {loaded:.1f} s")
        print("| method | median s per typed sentence | max s | engine |")
        print("|---|---|---|---|")
        cap = app_module.LIVE_IG_STEPS
        for method, steps in [(m, None) for m in methods or METHODS] + (
            [("integrated_gradients", 50)] if uncapped else []
        ):
            app_module.LIVE_IG_STEPS = steps or cap
            seconds, note = [], ""
            for source, target in zip(SENTENCES, targets, strict=True):
                source_ids, target_ids = teacher.encode(source, target)
                t0 = time.perf_counter()
                note = app.teacher_map(family, "de-en", method, source, target, source_ids, target_ids)["note"]
                seconds.append(time.perf_counter() - t0)
            label = method if steps is None else f"{method} (50 steps, uncapped)"
            print(
                f"| {label} | {statistics.median(seconds):.2f} | {max(seconds):.2f} | {note.split(' (probability')[0]} "
                "|"
            )
        app_module.LIVE_IG_STEPS = cap
    return 0


if __name__ == "__main__":
    sys.exit(main())
