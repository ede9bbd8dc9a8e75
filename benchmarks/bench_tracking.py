"""Cost of experiment tracking: a demo-size student trained by the shared loop with `--report_to tensorboard` against
`--report_to none`, same steps, same data, same seed.

Not a test: it prints the median wall time of each variant and their ratio (tensorboard / none) for the whole run
(`loop.start_run` with its trackers started, `prepare_training`, `fit`, `end_run`) and for `fit` alone. The student
is built from random weights at the demo preset's student size (no extracted maps needed: operator `none`, as the
baseline and the warm start), on random token batches of the demo's batch size and sentence length. Variants are
interleaved round by round, so load from other processes affects them alike.

    python benchmarks/bench_tracking.py [--steps 80] [--log_steps 50] [--repeats 5] [--threads 2]
    python benchmarks/bench_tracking.py --log_steps 1     # the worst case: a tracker write at every step
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from agkd.modeling import AgkdStudentConfig, AgkdStudentForConditionalGeneration
from agkd.training import loop
from agkd.training.presets import PRESETS, transformer_sizes

VOCAB = 4000  # the demo teacher's sentencepiece vocabulary (`PRESETS["demo"].teacher.vocab_size`)
LENGTH = 24  # tokens per source and target: the demo's pairs are short Bible verses (max_length 48)


def batches(n: int, batch_size: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        input_ids = torch.randint(1, VOCAB - 1, (batch_size, LENGTH), generator=generator)
        labels = torch.randint(1, VOCAB - 1, (batch_size, LENGTH), generator=generator)
        out.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels})
    return out


def build_student(size) -> AgkdStudentForConditionalGeneration:
    torch.manual_seed(0)
    config = AgkdStudentConfig(
        **transformer_sizes(size, VOCAB), max_position_embeddings=256, scale_embedding=True, pad_token_id=VOCAB - 1,
        eos_token_id=0, decoder_start_token_id=VOCAB - 1, forced_eos_token_id=0, injection_operator="none",
    )
    return AgkdStudentForConditionalGeneration(config)


def run_once(report_to: str, root: Path, args) -> tuple[float, float]:
    """(seconds of the whole run, seconds of `fit`) of one training with `--report_to report_to`."""
    size = PRESETS["demo"].student
    work_dir = root / f"work-{report_to}"
    start = time.perf_counter()
    tracking = loop.Tracking([report_to], root / "logs", f"bench-{report_to}", "agkd-bench", {"steps": args.steps})
    accelerator = loop.start_run(work_dir, resume=False, settings={"steps": args.steps}, seed=0, mixed_precision="no",
                                 tracking=tracking)
    collate = lambda items: items[0]  # noqa: E731 - one prepared batch per item, as the scripts' length-grouped batches
    train_dl = DataLoader(batches(64, size.batch_size, seed=0), batch_size=1, shuffle=True, collate_fn=collate)
    valid_dl = DataLoader(batches(4, 2 * size.batch_size, seed=1), batch_size=1, collate_fn=collate)
    model, optimizer, scheduler, train_dl, (valid_dl,), state = loop.prepare_training(
        accelerator, build_student(size), train_dl, [valid_dl], learning_rate=size.learning_rate,
        warmup_steps=size.warmup_steps, max_steps=args.steps, patience=0, resume=False,
    )
    fit_seconds = loop.fit(
        accelerator, model, optimizer, scheduler, train_dl, valid_dl, state, max_steps=args.steps,
        eval_steps=args.eval_steps, save_steps=args.eval_steps, log_steps=args.log_steps, best_dir=work_dir / "best",
    )
    loop.end_run(accelerator)
    seconds = time.perf_counter() - start
    if report_to != "none" and not list((root / "logs" / f"bench-{report_to}").rglob("events.out.tfevents.*")):
        raise SystemExit(f"--report_to {report_to} wrote no event files: the comparison would be void")
    return seconds, fit_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo = PRESETS["demo"].student
    parser.add_argument("--steps", type=int, default=demo.max_steps, help="optimizer steps per run (demo student's)")
    parser.add_argument("--eval_steps", type=int, default=demo.eval_steps)
    parser.add_argument("--log_steps", type=int, default=50, help="the training scripts' default (--log_steps)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per variant (median)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("accelerate").setLevel(logging.ERROR)  # "Removed shared tensor" at every checkpoint
    loop.progress = lambda iterable=None, accelerator=None, **kw: tqdm(iterable, disable=True, **kw)  # no bars
    hf_logging.disable_progress_bar()  # nor the checkpoints' "Writing model shards"
    if "tensorboard" not in loop.tracker_names(["tensorboard"]):
        raise SystemExit(f"TensorBoard is not installed: {loop.TRACKING_EXTRA}")
    times = {"none": [], "tensorboard": []}
    with tempfile.TemporaryDirectory() as tmp:
        run_once("none", Path(tmp), args)  # warm-up: imports, allocator
        for _ in range(args.repeats):
            for variant in times:
                times[variant].append(run_once(variant, Path(tmp), args))
    (run_none, fit_none), (run_tb, fit_tb) = (
        (statistics.median(t[0] for t in times[v]), statistics.median(t[1] for t in times[v])) for v in times
    )
    parameters = sum(p.numel() for p in build_student(demo).parameters()) / 1e6
    print(f"torch {torch.__version__}, {args.threads} threads; demo student {parameters:.2f}M parameters, batch "
          f"{demo.batch_size} x {LENGTH} tokens, {args.steps} steps, log every {args.log_steps}, validation every "
          f"{args.eval_steps}; median of {args.repeats} runs per variant")
    print(f"{'':<12} {'none s':>8} {'tensorboard s':>14} {'ratio':>7}")
    print(f"{'whole run':<12} {run_none:>8.2f} {run_tb:>14.2f} {run_tb / run_none:>7.3f}")
    print(f"{'fit':<12} {fit_none:>8.2f} {fit_tb:>14.2f} {fit_tb / fit_none:>7.3f}")


if __name__ == "__main__":
    main()
