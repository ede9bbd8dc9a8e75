"""The verdict's variance split on a release, and each decision's smallest detectable effect (MDE) for other numbers of
independent replicates (warm starts) and test sentences: what a preset's seeds and test size buy.

Reads the primary design's per-sentence sums of a finished release (`results/token_statistics/`, the whole test split
where the rows have it), estimates the crossed random-effects components of the 15 direct contrasts of the claim
(and of the 15 twin contrasts of the content check), and simulates each decision rule (`statistics.decision_mdes`)
with the median components for every (replicates, sentences) asked. Prints what it measured; no pass/fail.

    python benchmarks/bench_verdict_power.py --results_dir runs/demo/results --replicates 3 4 5 6 8 \
        --sentences 100 300 600
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

from agkd.datasets_scripts.release_layout import RESULTS_FILE, read_results, split_curve_rows
from agkd.training.verdict import statistics as verdict
from agkd.training.verdict.design import (
    CLAIM_CONTRAST,
    CONTENT_CONTRAST,
    PRIMARY_DESIGN,
    Design,
    claim_weights,
    primary_scores,
)
from agkd.training.verdict.tables import group_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_dir", required=True)
    parser.add_argument("--replicates", type=int, nargs="+", default=[3, 4, 5, 6, 8])
    parser.add_argument("--sentences", type=int, nargs="+", default=[100, 300, 600])
    parser.add_argument("--experiments", type=int, default=verdict.MDE_EXPERIMENTS)
    parser.add_argument("--units", choices=("warm-starts", "seeds"), default="warm-starts",
                        help="the replicate unit: each warm start (the verdict's), or each seed as if independent")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    rows = split_curve_rows(read_results(Path(args.results_dir) / RESULTS_FILE))[0]  # the verdict's rows
    figures, groups = {}, group_rows(rows)
    for key, group in sorted(groups.items()):
        teacher, pair, kind, init, split, protocol = key
        if protocol != PRIMARY_DESIGN[1] or kind != "reference":
            continue
        baseline = groups.get((teacher, pair, kind, init, split, "none"), [])
        designs = {Design.of(r) for r in group if (r["operator"], r["protocol"]) == PRIMARY_DESIGN}
        for design in sorted(designs, key=str):
            scores = primary_scores(group, baseline, Path(args.results_dir), design)
            if args.units == "seeds":
                scores.units = {}
            pairs = list(itertools.product(verdict.PAPER_TOP, verdict.PAPER_REST))
            for contrast in (CLAIM_CONTRAST, CONTENT_CONTRAST):
                estimates = [scores.estimate(claim_weights(*p, design, contrast)) for p in pairs]
                usable = [e for e in estimates if e.usable]
                if not usable:
                    print(f"{key} {design} {contrast}: no usable contrast ({estimates[0].reason})")
                    continue
                split_ = verdict.median_split(usable)
                shares = split_.shares()
                title = f"{teacher} {pair} {init} {split} {design} {contrast}"
                print(f"\n{title}: {len(usable)} contrasts, {split_.replicates} replicates x {split_.sentences} "
                      f"sentences ({scores.sentences} set)")
                print(f"  median components (per cell, (nats/token)^2): sentence {split_.sentence:.3e}, replicate "
                      f"{split_.replicate:.3e}, interaction {split_.interaction:.3e}")
                print(f"  shares of the mean's variance: sentence {shares['sentence']:.0%}, replicate "
                      f"{shares['replicate']:.0%}, interaction {shares['interaction']:.0%}; se "
                      f"{math.sqrt(split_.variance):.4f}")
                print(f"  contrast means: {', '.join(f'{e.mean:+.4f}' for e in usable)}")
                table = []
                print("  replicates  sentences   se      MDE holds  MDE refute  equivalence margin")
                for units, sentences in itertools.product(args.replicates, args.sentences):
                    scaled = replace(split_, replicates=units, sentences=sentences)
                    mdes = verdict.decision_mdes(scaled, experiments=args.experiments)
                    se = math.sqrt(scaled.variance)
                    table.append({"replicates": units, "sentences": sentences, "se": se, **mdes})
                    print(f"  {units:>10}  {sentences:>9}  {se:.4f}  {mdes[verdict.HOLDS]:.4f}     "
                          f"{mdes[verdict.DOES_NOT_HOLD]:.4f}      {mdes[verdict.NOT_RELEVANT]:.4f}")
                figures[title] = {"split": vars(split_), "shares": shares,
                                  "means": [e.mean for e in usable], "table": table}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=float) + "\n")
    if not figures:
        print("no primary-design rows found")


if __name__ == "__main__":
    main()
