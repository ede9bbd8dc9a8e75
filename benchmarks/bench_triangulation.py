"""Benchmark (not a test): cost and figures of the faithfulness and sanity yardsticks on a trained teacher and its
stored maps, to size the demo's triangulation.

- `faithfulness`: deletion/insertion curves of the stored test maps of every method (the random-order curves are
  computed with the first method and reused), wall time per method and the AOPC per method;
- `sanity`: model randomisation with the fast engine on the first N test pairs, wall time per method and the mean
  per-row Spearman per stage.

    nice -n 19 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_triangulation.py \
        faithfulness --teacher runs/demo/hub/models/teacher-marian-de-en \
        --attributions runs/demo/hub/datasets/agkd-attributions --pairs 100
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    import datasets
    import torch

    from agkd.datasets_scripts.attribution.methods import METHODS
    from agkd.datasets_scripts.attribution.teacher import Teacher
    from agkd.training.triangulation import faithfulness, sanity

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("yardstick", choices=["faithfulness", "sanity"])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--attributions", required=True)
    parser.add_argument("--config_prefix", default="marian.de-en")
    parser.add_argument("--pair", default="de-en")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--ig_steps", type=int, default=16)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--out", help="a JSON file for the figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.num_threads)

    teacher = Teacher(args.teacher, args.pair, "cpu", compat=True)
    figures: dict[str, dict] = {}
    random_curves = None
    for method in args.methods:
        ds = datasets.load_dataset(args.attributions, f"{args.config_prefix}.{method}", split="test")
        rows = list(ds.select(range(min(args.pairs, len(ds)))))
        start = time.perf_counter()
        if args.yardstick == "faithfulness":
            maps = [r["attribution"] for r in rows]
            curves = faithfulness.deletion_insertion_curves(teacher, rows, maps, random_curves=random_curves)
            random_curves = random_curves or curves
            scores = faithfulness.aopc(curves)
            result = {k: v for k, v in scores.items() if not k.endswith("_per_sentence")}
        else:
            sim = sanity.randomisation_similarity(teacher, method, rows, ig_steps=args.ig_steps)
            result = {stage: sim.mean(stage) for stage in sim.similarity}
            result["degenerate_share"] = {stage: sim.degenerate_share(stage) for stage in sim.similarity}
            result["verdict"] = sanity.sanity_verdict(sim)
        result["seconds"] = round(time.perf_counter() - start, 1)
        figures[method] = result
        logger.info("%s %s: %s", args.yardstick, method, result)
    logger.info("total %.1f s", sum(r["seconds"] for r in figures.values()))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
