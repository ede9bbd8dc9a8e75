"""Benchmark (not a test): how often the rank agreement (training/triangulation/agreement.py) reads `agree` on
synthetic tables whose answer is known, for the figures of docs/triangulation.md.

Two criteria of 8 methods on the same 100 sentences (one group), per-sentence noise correlated `rho` between them
(two criteria read from the same maps on the same sentences share it):

- `null`: every method equal on both criteria: any `agree` is false;
- `shared`: both criteria rank the methods alike (effects 0, 1, ..., 7), adjacent methods `--spacing` standard errors
  of a full-sample mean apart: the rate of `agree` is the power;
- `tau05`: the criteria's true rankings have Kendall tau 0.5 (7 of 28 pairs swapped): how often the interval covers
  0.5;
- `null5`: five criteria of equal methods whose noise shares one common part (correlation `rho` between any two):
  how many tables claim anything in any of their 10 pairs (counted as `agree`).

`--agreement FILE` measures another version of the module (e.g. the paired rule before cross-fitting):

    git show 01c0dfb:training/triangulation/agreement.py > /tmp/agreement_paired.py
    nice -n 19 env OMP_NUM_THREADS=1 PYTHONPATH=<folder holding agkd> python benchmarks/bench_agreement.py \
        --agreement /tmp/agreement_paired.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time

import numpy as np

logger = logging.getLogger(__name__)

METHODS, SENTENCES = 8, 100
# The second criterion's true effects in the `tau05` regime: 7 of the 28 pairs of 0..7 swapped, Kendall tau 0.5.
TAU05 = np.array([3, 0, 2, 1, 7, 4, 5, 6], dtype=float)


def correlated_noise(rng: np.random.Generator, rho: float, sd: float) -> tuple[np.ndarray, np.ndarray]:
    first = rng.standard_normal((METHODS, SENTENCES))
    second = rho * first + np.sqrt(1 - rho**2) * rng.standard_normal((METHODS, SENTENCES))
    return sd * first, sd * second


def table(module, rng: np.random.Generator, first: np.ndarray, second: np.ndarray, rho: float, sd: float,
          samples: int, seed: int):
    """The one agreement of a two-criterion table."""
    noise_a, noise_b = correlated_noise(rng, rho, sd)
    a = module.Criterion.mean("a", first[:, None] + noise_a, "test")
    b = module.Criterion.mean("b", second[:, None] + noise_b, "test")
    return module.agreements([a, b], samples=samples, seed=seed)[0]


def table5(module, rng: np.random.Generator, rho: float, samples: int, seed: int) -> bool:
    """Whether a five-criterion table of equal methods claims a reading in any pair."""
    common = rng.standard_normal((METHODS, SENTENCES))
    found = [module.Criterion.mean(name, np.sqrt(rho) * common + np.sqrt(1 - rho) * rng.standard_normal(
        (METHODS, SENTENCES)), "test") for name in "abcde"]
    return any(a.reading != "unresolved" for a in module.agreements(found, samples=samples, seed=seed))


def main(argv: list[str] | None = None) -> None:
    from scipy import stats

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agreement", help="a file of the agreement module to measure instead of the package's")
    parser.add_argument("--regimes", nargs="*", default=["null", "shared", "tau05"])
    parser.add_argument("--rho", type=float, nargs="*", default=[0.0, 0.8])
    parser.add_argument("--spacing", type=float, nargs="*", default=[2.0],
                        help="adjacent methods' distance in standard errors of a full-sample mean")
    parser.add_argument("--tables", type=int, default=60)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument("--out", help="a JSON file for the figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.agreement:
        spec = importlib.util.spec_from_file_location("agreement_under_test", args.agreement)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    else:
        from agkd.training.triangulation import agreement as module

    ranks = np.arange(METHODS, dtype=float)
    if not np.isclose(stats.kendalltau(ranks, TAU05).statistic, 0.5):
        raise AssertionError("TAU05 does not have Kendall tau 0.5 with 0..7")
    figures = {}
    for regime in args.regimes:
        if regime == "null5":
            for rho in args.rho:
                claims = sum(table5(module, np.random.default_rng(args.first_seed + i), rho, args.samples,
                                    args.first_seed + i) for i in range(args.tables))
                figures[f"null5 rho={rho}"] = {"agree": claims, "tables": args.tables}
                logger.info("null5 rho=%s: %s", rho, figures[f"null5 rho={rho}"])
            continue
        for rho in args.rho:
            for spacing in args.spacing if regime != "null" else [None]:
                sd = 1.0 if spacing is None else np.sqrt(SENTENCES) / spacing  # effects 1 apart
                first = np.zeros(METHODS) if regime == "null" else ranks
                second = {"null": np.zeros(METHODS), "shared": ranks, "tau05": TAU05}[regime]
                start = time.perf_counter()
                found = [table(module, np.random.default_rng(args.first_seed + i), first, second, rho, sd,
                               args.samples, args.first_seed + i) for i in range(args.tables)]
                key = f"{regime} rho={rho}" + ("" if spacing is None else f" spacing={spacing}")
                figures[key] = {
                    "agree": sum(f.reading == "agree" for f in found),
                    "disagree": sum(f.reading == "disagree" for f in found),
                    "covers_0.5": sum(f.low <= 0.5 <= f.high for f in found),
                    "mean_tau": float(np.nanmean([f.tau for f in found])),
                    "tables": args.tables,
                    "seconds": round(time.perf_counter() - start, 1),
                }
                logger.info("%s: %s", key, figures[key])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
