"""Cost of attribution injection: training-step and greedy-generation time of the AGKD student vs MarianMTModel.

Not a test: it prints what it measured on this machine, one row per (config, variant), with the ratio to plain
MarianMTModel (same weights, same inputs, default attention implementation). Target: injected step <= 1.10x.

    python benchmarks/bench_student.py [--repeats 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import MarianConfig, MarianMTModel

from agkd.modeling import AgkdStudentConfig, AgkdStudentForConditionalGeneration

SIZES = {
    # name: (d_model, layers, heads, ffn, vocab, batch, source/target tokens)
    "tiny": (64, 2, 4, 128, 1000, 32, 24),
    "demo-student": (128, 2, 4, 512, 8000, 32, 32),
    "small": (256, 3, 4, 1024, 8000, 32, 32),
}
VARIANTS = ["marian", "student:none", "student:add", "student:multiply", "student:average", "student:replace"]


def build(variant: str, size: str) -> torch.nn.Module:
    d_model, layers, heads, ffn, vocab, _, _ = SIZES[size]
    common = dict(
        vocab_size=vocab, d_model=d_model, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
        decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn, max_position_embeddings=256,
        pad_token_id=vocab - 1, decoder_start_token_id=vocab - 1, eos_token_id=0, forced_eos_token_id=None,
    )
    torch.manual_seed(0)
    if variant == "marian":
        return MarianMTModel(MarianConfig(**common))
    operator = variant.split(":")[1]
    return AgkdStudentForConditionalGeneration(AgkdStudentConfig(**common, injection_operator=operator))


def batch_for(size: str) -> dict:
    _, _, _, _, vocab, batch_size, length = SIZES[size]
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, vocab - 1, (batch_size, length), generator=generator)
    labels = torch.randint(1, vocab - 1, (batch_size, length), generator=generator)
    attribution_map = torch.rand(batch_size, length, length, generator=generator)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": labels,
        "attribution_map": attribution_map,
    }


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def workloads(variant: str, size: str):
    """The training step and the greedy generation of one variant, as zero-argument callables."""
    model = build(variant, size)
    batch = batch_for(size)
    if variant == "marian":
        batch.pop("attribution_map")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generate_inputs = {k: v[:8] for k, v in batch.items() if k != "labels"}

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        optimizer.step()

    def generate():
        model.eval()
        with torch.no_grad():
            model.generate(**generate_inputs, max_new_tokens=24, min_new_tokens=24, num_beams=1, do_sample=False)

    return train_step, generate


def measure(size: str, repeats: int) -> dict[str, tuple[float, float]]:
    """Median step and generation seconds per variant. Variants are interleaved round by round, so load from
    other processes on the machine affects them alike and the ratios stay meaningful."""
    jobs = {variant: workloads(variant, size) for variant in VARIANTS}
    times = {variant: ([], []) for variant in VARIANTS}
    for train_step, generate in jobs.values():  # warm-up
        train_step()
        generate()
    for round_index in range(repeats):
        for variant, (train_step, generate) in jobs.items():
            times[variant][0].append(timed(train_step))
            if round_index % 4 == 0:
                times[variant][1].append(timed(generate))
    return {v: (statistics.median(steps), statistics.median(gens)) for v, (steps, gens) in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} training steps")
    print(f"{'size':<13} {'variant':<17} {'train step s':>12} {'ratio':>6} {'greedy gen s':>12} {'ratio':>6}")
    for size in args.sizes:
        results = measure(size, args.repeats)
        base_step, base_gen = results["marian"]
        for variant, (step, gen) in results.items():
            print(
                f"{size:<13} {variant:<17} {step:>12.4f} {step / base_step:>6.2f} {gen:>12.4f} {gen / base_gen:>6.2f}"
            )


if __name__ == "__main__":
    main()
