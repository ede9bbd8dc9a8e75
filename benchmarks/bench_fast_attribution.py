"""Benchmark (not a test): pairs/s of the Inseq engine and the fast engine per method, same pairs, same teacher.

Both engines run through the extraction's own shard functions (`attribute_rows`, `attribute_rows_fast`), probability
self-check included. Calls are interleaved: in every round, each Inseq batch size candidate is followed by a fast
run on the same pairs, so machine load hits both engines alike; each engine's time is its best round, and Inseq's
is its fastest batch size. The table also gives the largest relative map difference between the engines on the
timed pairs (gradient_shap: only comparable when Inseq ran with batch size 1, whose draws the fast engine replays).

    .venv/bin/python benchmarks/bench_fast_attribution.py --teacher runs/demo/hub/models/teacher-marian-de-en \
        --corpus runs/demo/hub/datasets/agkd-parallel --pair de-en --pairs 16 --num_threads 1
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

logger = logging.getLogger(__name__)

# Inseq batch-size candidates: final-step methods always run with batch 1 in Inseq; IG and GradientSHAP already
# expand each step internally (n_steps / n_samples rows), so large batches do not help them (measured with Inseq 0.7.1).
CANDIDATES = {"attention": [1], "value_zeroing": [1], "integrated_gradients": [1, 2], "gradient_shap": [1, 4]}
DEFAULT_CANDIDATES = [1, 8, 16]


@dataclass
class BenchArguments:
    teacher: str = field(metadata={"help": "teacher folder or Hub id"})
    corpus: str = field(metadata={"help": "agkd-parallel folder or Hub id"})
    pair: str = field(default="de-en", metadata={"help": "corpus config"})
    split: str = field(default="test", metadata={"help": "split to take pairs from"})
    pairs: int = field(default=16, metadata={"help": "pairs timed per method"})
    rounds: int = field(default=2, metadata={"help": "interleaved rounds (each engine keeps its best round)"})
    methods: list[str] | None = field(default=None, metadata={"help": "methods to time (default: all eight)"})
    max_tokens: int = field(default=64, metadata={"help": "skip longer pairs, as in extraction"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})
    ig_steps: int | None = field(default=None, metadata={"help": "integrated_gradients n_steps (default: 50)"})


def _max_rel(a: list[dict], b: list[dict]) -> float:
    import numpy as np

    worst = 0.0
    for x, y in zip(a, b, strict=True):
        ref, got = np.asarray(x["attribution"]), np.asarray(y["attribution"])
        worst = max(worst, float(np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-30)))
    return worst


def main(argv: list[str] | None = None) -> int:
    import datasets
    import torch
    from transformers import HfArgumentParser

    from agkd.datasets_scripts.attribution.fast_engine import attribute_rows_fast, fast_batch_size
    from agkd.datasets_scripts.attribution.inseq_engine import attribute_rows
    from agkd.datasets_scripts.attribution.methods import METHODS
    from agkd.datasets_scripts.attribution.teacher import Teacher
    from agkd.datasets_scripts.release_layout import load_config

    (args,) = HfArgumentParser(BenchArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("inseq", "captum", "agkd", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    datasets.disable_progress_bars()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    teacher = Teacher(args.teacher, args.pair, device, compat=True)
    rows = []
    for r in load_config(args.corpus, args.pair)[args.split]:
        source_ids, target_ids = teacher.encode(r["source"], r["target"])
        if max(len(source_ids), len(target_ids)) <= args.max_tokens:
            row = {"id": str(r["id"]), "source": r["source"], "target": r["target"], "target_kind": "reference"}
            rows.append({**row, "source_ids": source_ids, "target_ids": target_ids})
        if len(rows) == args.pairs + 1:
            break
    warm, timed = rows[:1], rows[1:]

    def clock(fn, *fn_args):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn(*fn_args)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, out

    table = []
    loads = [os.getloadavg()[0]]
    for method in args.methods or list(METHODS):
        attribute_rows(teacher, method, warm, 1, 0)  # loads the Inseq wrapper, runs the compat probes
        attribute_rows_fast(teacher, method, warm, None, 0)  # runs the embedding probe
        inseq_best: dict[int, float] = {}
        fast_best = float("inf")
        rel, checks = None, []
        for _ in range(args.rounds):
            for bs in sorted({min(b, len(timed)) for b in CANDIDATES.get(method, DEFAULT_CANDIDATES)}):
                seconds, out_i = clock(attribute_rows, teacher, method, timed, bs, 0, args.ig_steps)
                inseq_best[bs] = min(inseq_best.get(bs, float("inf")), seconds)
                seconds, out_f = clock(attribute_rows_fast, teacher, method, timed, None, 0, args.ig_steps)
                fast_best = min(fast_best, seconds)
                checks += [r["prob_check"] for r in out_i + out_f]
                if method != "gradient_shap" or bs == 1:
                    rel = max(rel or 0.0, _max_rel(out_i, out_f))
            loads.append(os.getloadavg()[0])
        best_bs = min(inseq_best, key=inseq_best.get)
        table.append(
            (method, best_bs, inseq_best[best_bs], fast_batch_size(method, device), fast_best, rel, max(checks))
        )
        logger.info(
            "%s: inseq %s s (batch %d), fast %.2f s, max rel diff %s", method, inseq_best, best_bs, fast_best, rel
        )
    n = len(timed)
    n_params = sum(p.numel() for p in teacher.model.parameters())
    cfg = teacher.model.config
    print(
        f"teacher {args.teacher} ({teacher.family}, d_model {cfg.d_model}, {cfg.encoder_layers}+{cfg.decoder_layers} "
        f"layers, vocab {cfg.vocab_size}, {n_params / 1e6:.1f} M params), device {device}, torch threads "
        f"{torch.get_num_threads()}, {os.cpu_count()} CPUs, 1-min load average {min(loads):.1f}-{max(loads):.1f} "
        f"(engines interleaved, best of {args.rounds} rounds)"
    )
    print(
        f"{n} pairs of {args.pair}/{args.split}, mean {sum(len(r['source_ids']) for r in timed) / n:.1f} source / "
        f"{sum(len(r['target_ids']) for r in timed) / n:.1f} target tokens (specials included), reference targets"
    )
    print(
        "| method | Inseq batch | Inseq pairs/s | fast batch | fast pairs/s | speed-up | max rel. map diff | max "
        "prob_check |"
    )
    print("|---|---|---|---|---|---|---|---|")
    total_i = total_f = 0.0
    for method, bs, t_i, fbs, t_f, rel, check in table:
        total_i, total_f = total_i + t_i, total_f + t_f
        rel_s = "n/a (draws differ)" if rel is None else f"{rel:.1e}"
        print(f"| {method} | {bs} | {n / t_i:.2f} | {fbs} | {n / t_f:.2f} | {t_i / t_f:.1f}x | {rel_s} | {check:.1e} |")
    if len(table) > 1:
        print(
            f"| all {len(table)} methods (pairs/s of the whole extraction) | | {n / total_i:.3f} | | {n / total_f:.3f} "
            f"| {total_i / total_f:.1f}x | | |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
