"""Tiny student configs and inputs in the style of transformers' MarianModelTester."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from agkd.modeling import AgkdStudentConfig, AgkdStudentForConditionalGeneration

TINY_MARIAN = dict(
    vocab_size=99,
    d_model=16,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    encoder_ffn_dim=8,
    decoder_ffn_dim=8,
    max_position_embeddings=100,
    pad_token_id=1,
    eos_token_id=2,
    bos_token_id=0,
    decoder_start_token_id=1,
    forced_eos_token_id=None,
    dropout=0.0,
)


def tiny_student(seed: int = 0, **overrides) -> AgkdStudentForConditionalGeneration:
    torch.manual_seed(seed)
    return AgkdStudentForConditionalGeneration(AgkdStudentConfig(**{**TINY_MARIAN, **overrides})).eval()


def tiny_batch(batch_size: int = 3, source_length: int = 7, target_length: int = 5, seed: int = 0) -> dict:
    """Source ids ending in </s> with right padding on the last example, labels, and a positive raw map."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, 99, (batch_size, source_length), generator=generator)
    input_ids[:, -1] = 2
    attention_mask = torch.ones_like(input_ids)
    if batch_size > 1:
        input_ids[-1, -2:] = 1
        input_ids[-1, -3] = 2
        attention_mask[-1, -2:] = 0
    labels = torch.randint(3, 99, (batch_size, target_length), generator=generator)
    attribution_map = torch.rand(batch_size, target_length, source_length, generator=generator) * 3
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "attribution_map": attribution_map,
    }


def run_fresh_offline(script: str, folder: Path) -> str:
    """Run `script` in a fresh interpreter in `folder` with the Hub offline and no PYTHONPATH, as a user's process that
    never imported this repository would; its stdout (a failure shows its stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(folder / "hf_home"), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
