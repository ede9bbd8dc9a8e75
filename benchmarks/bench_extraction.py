"""Benchmark (not a test): pairs/s of every attribution method for one teacher on this machine.

For each method the batch size is tuned first on a few calibration pairs (candidates `--batch_sizes`; final-step
methods always run with batch size 1 in Inseq), then the chosen batch size is timed on `--pairs` pairs of the
corpus split, through the same code path as `agkd extract` (Inseq + compat layer + probability self-check).

    .venv/bin/python benchmarks/bench_extraction.py --teacher runs/demo/hub/models/teacher-marian-de-en \
        --corpus runs/demo/hub/datasets/agkd-parallel --pair de-en --pairs 24 --num_threads 2

Prints a table (method, batch size, pairs/s, s/pair, max prob_check) plus the machine, threads and load.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

logger = logging.getLogger(__name__)


@dataclass
class BenchArguments:
    teacher: str = field(metadata={"help": "teacher folder or Hub id"})
    corpus: str = field(metadata={"help": "agkd-parallel folder or Hub id"})
    pair: str = field(default="de-en", metadata={"help": "corpus config"})
    split: str = field(default="test", metadata={"help": "split to take pairs from"})
    pairs: int = field(default=24, metadata={"help": "pairs timed per method"})
    calibration_pairs: int = field(default=8, metadata={"help": "pairs used to choose the batch size"})
    batch_sizes: list[int] = field(default_factory=lambda: [1, 4, 8, 16], metadata={"help": "batch sizes to try"})
    methods: list[str] | None = field(default=None, metadata={"help": "methods to time (default: all eight)"})
    max_tokens: int = field(default=64, metadata={"help": "skip longer pairs, as in extraction"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})


def main(argv: list[str] | None = None) -> int:
    import datasets
    import torch
    from transformers import HfArgumentParser

    from datasets_scripts.attribution_methods import METHODS
    from datasets_scripts.extract_attributions import Teacher, attribute_rows, load_corpus

    (args,) = HfArgumentParser(BenchArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.WARNING)
    datasets.disable_progress_bars()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    teacher = Teacher(args.teacher, args.pair, device, compat=True)
    ds = load_corpus(args.corpus, args.pair)[args.split]
    rows = []
    for r in ds:
        source_ids, target_ids = teacher.encode(r["source"], r["target"])
        if max(len(source_ids), len(target_ids)) <= args.max_tokens:
            rows.append(
                {
                    "id": str(r["id"]),
                    "source": r["source"],
                    "target": r["target"],
                    "target_kind": "reference",
                    "source_ids": source_ids,
                    "target_ids": target_ids,
                }
            )
        if len(rows) == args.calibration_pairs + args.pairs:
            break
    calib, timed = rows[: args.calibration_pairs], rows[args.calibration_pairs :]
    n_params = sum(p.numel() for p in teacher.model.parameters())
    mean_s = sum(len(r["source_ids"]) for r in timed) / len(timed)
    mean_t = sum(len(r["target_ids"]) for r in timed) / len(timed)
    table = []
    for method in args.methods or list(METHODS):
        spec = METHODS[method]
        attribute_rows(teacher, method, calib[:1], 1, 0)  # warm-up: loads the Inseq wrapper and runs the probes
        candidates = [1] if spec.final_step else args.batch_sizes
        best, best_rate = candidates[0], 0.0
        if len(candidates) > 1:
            for bs in candidates:
                t0 = time.perf_counter()
                attribute_rows(teacher, method, calib, bs, 0)
                rate = len(calib) / (time.perf_counter() - t0)
                if rate > best_rate:
                    best, best_rate = bs, rate
        t0 = time.perf_counter()
        out = attribute_rows(teacher, method, timed, best, 0)
        seconds = time.perf_counter() - t0
        table.append((method, best, len(timed) / seconds, seconds / len(timed), max(r["prob_check"] for r in out)))
        logger.warning("%s: batch %d, %.2f pairs/s", method, best, len(timed) / seconds)  # progress while it runs
    load = os.getloadavg()
    print(
        f"teacher {args.teacher} ({teacher.family}, {n_params / 1e6:.1f} M params), device {device}, "
        f"torch threads {torch.get_num_threads()}, load average {load[0]:.2f}/{load[1]:.2f}"
    )
    print(
        f"{len(timed)} pairs of {args.pair}/{args.split}, mean {mean_s:.1f} source / {mean_t:.1f} target tokens "
        f"(specials included), forced decoding on the reference, probability self-check included"
    )
    print(f"| {'method':<28} | batch | pairs/s | s/pair | max prob_check |")
    print(f"|{'-' * 30}|-------|---------|--------|----------------|")
    for method, bs, rate, spp, check in table:
        print(f"| {method:<28} | {bs:>5} | {rate:>7.2f} | {spp:>6.3f} | {check:>14.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
