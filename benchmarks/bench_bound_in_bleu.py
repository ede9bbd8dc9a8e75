"""Benchmark (not a test): what the verdict's equivalence bound (nats/token) means in BLEU.

Reads the grid's rows of one or more finished releases (`results/results.jsonl`, curve rows left out), pairs every
map-trained student with the no-map baseline of its own seed (the same warm start), and regresses the BLEU difference
on the NLL difference (`nll_reference`, both on the map-annotated test pairs the BLEU is computed on): the slope in
BLEU points per nat/token, by least squares (with its standard error) and by Theil-Sen (with its 95% interval), over
all students and over the methods alone (their twins stretch the range). Prints what it measured; no pass/fail.

    python benchmarks/bench_bound_in_bleu.py --results_dir runs/demo/results runs/demo-power/results
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from agkd.datasets_scripts.attribution.methods import shuffled_source
from agkd.datasets_scripts.release_layout import RESULTS_FILE, read_results, split_curve_rows
from agkd.training.verdict import statistics as verdict


def differences(rows: list[dict]) -> list[tuple[float, float, bool]]:
    """(NLL difference, BLEU difference, is a method) of every student against its seed's baseline."""
    rows = [r for r in rows if r["split"] == "test" and r["target_kind"] == "reference"
            and r["protocol"] in ("none", "train-only")]
    baselines = {(r["preset"], r["teacher_name"], r["pair"], r["seed"]): r for r in rows if r["method"] == "none"}
    found = []
    for row in rows:
        baseline = baselines.get((row["preset"], row["teacher_name"], row["pair"], row["seed"]))
        if row["method"] == "none" or baseline is None:
            continue
        found.append((row["nll_reference"] - baseline["nll_reference"], row["bleu"] - baseline["bleu"],
                      shuffled_source(row["method"]) is None))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_dir", nargs="+", required=True)
    args = parser.parse_args()
    found = []
    for folder in args.results_dir:
        found += differences(split_curve_rows(read_results(Path(folder) / RESULTS_FILE))[0])
    table = np.array(found, dtype=float)
    for name, keep in (("every student", np.ones(len(table), bool)), ("methods only", table[:, 2] == 1)):
        nll, bleu = table[keep, 0], table[keep, 1]
        fit = stats.linregress(nll, bleu)
        slope, _, low, high = stats.theilslopes(bleu, nll)
        print(f"{name}: {keep.sum()} students, NLL differences {nll.min():+.4f} to {nll.max():+.4f} nats/token")
        print(f"  least squares {fit.slope:.1f} BLEU per nat/token (se {fit.stderr:.1f}, r {fit.rvalue:.2f}); "
              f"Theil-Sen {slope:.1f} [{low:.1f}, {high:.1f}]")
        print(f"  the bound {verdict.EQUIVALENCE_BOUND} nats/token = {abs(fit.slope) * verdict.EQUIVALENCE_BOUND:.2f} "
              f"BLEU (least squares), {abs(slope) * verdict.EQUIVALENCE_BOUND:.2f} (Theil-Sen)")


if __name__ == "__main__":
    main()
