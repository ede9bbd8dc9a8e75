"""Benchmark (not a test): what a preset's grid costs on this machine, from measured unit costs.

Builds the preset's models at their real sizes (random weights: speed does not depend on training), times the units
every stage repeats, and multiplies them by the preset's job counts:

- teacher, warm start, student, Attributor: seconds per optimizer step (forward, backward, AdamW) on batches of
  `--source_tokens` / `--target_tokens` tokens, as many pairs as the preset's batch (its token budget
  `max_batch_tokens` where it has one, capped by `batch_size`), in the precision the training scripts choose here
  (`--mixed_precision auto`: bf16 autocast on a GPU that has it); the budget is each job's `max_steps` (an upper
  bound: early stopping ends most runs sooner);
- the student step before and after the GPU settings: fixed batches of 32 in fp32 against the preset's batch and
  precision, as steps/s and pairs/s;
- extraction: fast-engine seconds per pair for each method on a Marian teacher of the preset's size; the pairs are
  the corpus splits the preset attributes (`--corpus`, or `--train_pairs` per language pair);
- evaluation is not included (one beam-search pass over each test split per student and protocol).

The table says which numbers were measured (unit costs) and which are products of them (totals).

    .venv/bin/python benchmarks/bench_preset_cost.py --preset paper --corpus runs/paper/hub/datasets/agkd-parallel
    .venv/bin/python benchmarks/bench_preset_cost.py --preset paper --train_pairs 250000 --steps 3
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field, fields
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

logger = logging.getLogger(__name__)


@dataclass
class CostArguments:
    preset: str = field(default="paper", metadata={"help": "smoke, demo, lab or paper"})
    corpus: str | None = field(default=None, metadata={"help": "agkd-parallel folder: split sizes per language pair"})
    train_pairs: int | None = field(default=None, metadata={"help": "train pairs per language pair (without --corpus)"})
    source_tokens: int = field(default=32, metadata={"help": "tokens per source sentence of the timed batches"})
    target_tokens: int = field(default=32, metadata={"help": "tokens per target sentence of the timed batches"})
    steps: int = field(default=5, metadata={"help": "timed optimizer steps per model (after one warm-up step)"})
    extraction_pairs: int = field(default=8, metadata={"help": "timed pairs per method"})
    methods: list[str] | None = field(default=None, metadata={"help": "methods to time (default: the preset's)"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})
    gpus: list[int] = field(
        default_factory=lambda: [1, 8, 64], metadata={"help": "GPU counts of the wall-time projection"}
    )
    mixed_precision: str = field(
        default="auto", metadata={"help": "auto (as the training scripts: bf16 on a GPU that has it), no, bf16, fp16"}
    )


class SizedVocabulary:
    """What the model builders read from a tokenizer: its length and special ids (ids 0-2: </s>, <unk>, <pad>)."""

    eos_token_id, unk_token_id, pad_token_id = 0, 1, 2

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size


def teacher_model(preset, device, attention: str | None = None):
    """A Marian teacher of the preset's size (`attention="eager"`: as the extraction loads teachers)."""
    from agkd.training.presets import TeacherPreset
    from agkd.training.train_teacher import build_model

    args = SimpleNamespace(family="marian", **{f.name: getattr(preset.teacher, f.name) for f in fields(TeacherPreset)})
    model = build_model(args, SizedVocabulary(preset.teacher.vocab_size))
    if attention:
        model.set_attn_implementation(attention)
    return model.to(device)


def batch(args: CostArguments, size: int, vocab: int, device, with_maps: bool) -> dict:
    import torch

    generator = torch.Generator().manual_seed(0)
    source = torch.randint(3, vocab, (size, args.source_tokens), generator=generator)
    labels = torch.randint(3, vocab, (size, args.target_tokens), generator=generator)
    out = {"input_ids": source, "attention_mask": torch.ones_like(source), "labels": labels}
    if with_maps:
        out["attribution_map"] = torch.rand(size, args.target_tokens, args.source_tokens, generator=generator)
        out["attribution_map_mask"] = torch.ones(size, args.target_tokens, dtype=torch.bool)
    return {k: v.to(device) for k, v in out.items()}


def pairs_per_batch(args: CostArguments, section) -> int:
    """The pairs of one batch of the preset's section at the timed lengths: its token budget, capped by batch_size."""
    budget = getattr(section, "max_batch_tokens", None)
    if budget is None:
        return section.batch_size
    return max(1, min(section.batch_size, budget // (args.source_tokens + args.target_tokens)))


def seconds_per_step(model, inputs: dict, steps: int, precision: str | None = "no") -> float:
    """Median seconds of an AdamW training step (one warm-up step first); `precision` "bf16" or "fp16" autocasts
    the forward pass as accelerate does (fp32 weights and optimizer state)."""
    import contextlib
    import statistics

    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    device = inputs["input_ids"].device.type
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        autocast = torch.autocast(device, dtype=dtypes[precision]) if precision in dtypes else contextlib.nullcontext()
        with autocast:
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if inputs["input_ids"].is_cuda:
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def seconds_per_pair(model, method: str, args: CostArguments, ig_steps: int | None) -> float:
    import torch

    from agkd.datasets_scripts.attribution.fast_engine import attribute_pairs

    generator = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    source = [[*torch.randint(3, vocab, (args.source_tokens - 1,), generator=generator).tolist(), 0]]
    target = [[*torch.randint(3, vocab, (args.target_tokens - 1,), generator=generator).tolist(), 0]]
    n = args.extraction_pairs
    attribute_pairs(model, method, source, target, 1, ig_steps=ig_steps)  # warm-up (the embedding probe)
    start = time.perf_counter()
    attribute_pairs(model, method, source * n, target * n, 1, ig_steps=ig_steps)
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def split_sizes(args: CostArguments, pairs: tuple[str, ...]) -> dict[str, dict[str, int]]:
    if args.corpus:
        from agkd.datasets_scripts.release_layout import load_config

        return {pair: {split: len(rows) for split, rows in load_config(args.corpus, pair).items()} for pair in pairs}
    if args.train_pairs is None:
        raise ValueError("give --corpus (split sizes are read from it) or --train_pairs")
    return {pair: {"train": args.train_pairs} for pair in pairs}


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers import HfArgumentParser

    from agkd.training.loop import resolve_mixed_precision
    from agkd.training.orchestration import pipeline
    from agkd.training.presets import PRESETS, AttributorPreset, StudentPreset
    from agkd.training.train_attributor import build_attributor
    from agkd.training.train_student import build_student

    (args,) = HfArgumentParser(CostArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    preset = PRESETS[args.preset]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = split_sizes(args, preset.pairs)
    methods = args.methods or list(preset.methods)
    # The grid's jobs as the pipeline plans them (one job = one teacher, student or Attributor training).
    plan = pipeline.plan(pipeline.finalize(pipeline.PipelineArguments(preset=args.preset, methods=methods, jobs=1)))
    jobs = {
        stage: sum(job.stage == stage for job in plan) for stage in ("teacher", "warm-start", "student", "attributor")
    }
    precision = resolve_mixed_precision(args.mixed_precision) or "no"
    torch.manual_seed(0)

    teacher = teacher_model(preset, device)
    vocab = teacher.config.vocab_size
    rows = []  # (unit, measured seconds per unit, units in the grid)
    size = pairs_per_batch(args, preset.teacher)
    step = seconds_per_step(teacher, batch(args, size, vocab, device, False), args.steps, precision)
    rows.append((f"teacher step ({size} pairs)", step, jobs["teacher"] * preset.teacher.max_steps))
    logger.info("teacher (%.1fM parameters): %.3f s/step", teacher.num_parameters() / 1e6, step)

    def student_of(section):
        student_args = SimpleNamespace(
            operator="add", map_normalization="none", injection_layers=None, injection_heads=None, init_from=None,
            **{f.name: getattr(section, f.name) for f in fields(StudentPreset) if hasattr(section, f.name)},
        )
        return build_student(student_args, SizedVocabulary(vocab), teacher.config, None).to(device)

    if jobs["warm-start"]:
        size = pairs_per_batch(args, preset.warm_start)
        step = seconds_per_step(
            student_of(preset.warm_start), batch(args, size, vocab, device, False), args.steps, precision
        )
        rows.append((f"warm-start step ({size} pairs)", step, jobs["warm-start"] * preset.warm_start.max_steps))
        logger.info("warm start: %.3f s/step", step)

    student = student_of(preset.student)
    size = pairs_per_batch(args, preset.student)
    step = seconds_per_step(student, batch(args, size, vocab, device, True), args.steps, precision)
    rows.append((f"student step ({size} pairs)", step, jobs["student"] * preset.student.max_steps))
    logger.info(
        "student (%.1fM parameters): %.3f s/step, %d students", student.num_parameters() / 1e6, step, jobs["student"]
    )
    before = seconds_per_step(student, batch(args, 32, vocab, device, True), args.steps, "no")
    speed = [
        ("before: 32 pairs, fp32", 1 / before, 32 / before),
        (f"after: {size} pairs, {precision}", 1 / step, size / step),
    ]

    attributor_args = SimpleNamespace(**{f.name: getattr(preset.attributor, f.name) for f in fields(AttributorPreset)})
    attributor = build_attributor(attributor_args, SizedVocabulary(vocab), teacher.config).to(device)
    size = pairs_per_batch(args, preset.attributor)
    step = seconds_per_step(attributor, batch(args, size, vocab, device, True), args.steps, precision)
    rows.append((f"Attributor step ({size} pairs)", step, jobs["attributor"] * preset.attributor.max_steps))
    logger.info("Attributor (%.1fM parameters): %.3f s/step", attributor.num_parameters() / 1e6, step)

    teacher = teacher_model(preset, device, attention="eager").eval()
    cap = preset.extract.max_pairs
    capped = [{split: min(n, cap.get(split) or n) for split, n in per_pair.items()} for per_pair in sizes.values()]
    # every split on the reference, and the test split again on the teacher's translation, for each teacher family
    pairs = sum(sum(c.values()) + c.get("test", 0) for c in capped) * len(preset.teachers)
    for method in methods:
        seconds = seconds_per_pair(teacher, method, args, preset.extract.ig_steps)
        rows.append((f"extract {method} (pair)", seconds, pairs))
        logger.info("extract %s: %.4f s/pair", method, seconds)

    print(
        f"\n{args.preset} preset on "
        f"{torch.cuda.get_device_name() if device.type == 'cuda' else f'CPU ({torch.get_num_threads()} threads)'}; "
        f"batches of {args.source_tokens} source / {args.target_tokens} target tokens; torch {torch.__version__}"
    )
    print("| unit | measured seconds per unit | units in the grid | product (hours) |")
    print("|---|---|---|---|")
    total = 0.0
    for unit, seconds, count in rows:
        total += seconds * count
        print(f"| {unit} | {seconds:.4f} | {count:,} | {seconds * count / 3600:,.2f} |")
    print(f"| all (upper bound: every training runs max_steps) | | | {total / 3600:,.1f} ({total / 86400:,.1f} days) |")
    print(
        f"\nStudent step, {student.num_parameters() / 1e6:.1f}M parameters, {args.source_tokens} + "
        f"{args.target_tokens} tokens per pair:"
    )
    print("| setting | steps/s | pairs/s |")
    print("|---|---|---|")
    for setting, steps_per_s, pairs_per_s in speed:
        print(f"| {setting} | {steps_per_s:.2f} | {pairs_per_s:.1f} |")
    print_projection(rows, jobs, preset, args.gpus)
    return 0


def projected_wall_seconds(rows, jobs: dict[str, int], share: float, gpus: int) -> float:
    """Wall time on `gpus` GPUs with the pipeline's dependency scheduling: the teachers in parallel (one GPU each, in
    rounds of `gpus`), then the extraction jobs spread over every GPU, then the small trainings packed `1/share` per
    GPU, each at its measured speed (the packing gain is an upper bound until measured on a GPU)."""
    import math

    cost = {unit.split(" (")[0]: seconds * count for unit, seconds, count in rows}
    teacher = cost["teacher step"] / max(jobs["teacher"], 1) * math.ceil(jobs["teacher"] / gpus)
    extraction = sum(v for unit, v in cost.items() if unit.startswith("extract")) / gpus
    small = (cost.get("warm-start step", 0.0) + cost["student step"] + cost["Attributor step"]) / (
        gpus * max(1, round(1 / share))
    )
    return teacher + extraction + small


def print_projection(rows, jobs: dict[str, int], preset, gpu_counts: list[int]) -> None:
    per_gpu = max(1, round(1 / preset.gpu_share))
    print(
        "\nProjected wall time with `--executor ray` (a product of the measured units: teachers one GPU each, "
        "extraction "
        f"over every GPU, {per_gpu} small trainings per GPU at the preset's gpu_share {preset.gpu_share}, an estimate):"
    )
    print("| GPUs | wall time (hours) |")
    print("|---|---|")
    for gpus in gpu_counts:
        print(f"| {gpus} | {projected_wall_seconds(rows, jobs, preset.gpu_share, gpus) / 3600:,.1f} |")


if __name__ == "__main__":
    sys.exit(main())
