"""Configuration of the AGKD Attributor, a small transformer that reconstructs a teacher's attribution maps."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import MarianConfig


@strict
class AgkdAttributorConfig(MarianConfig):
    r"""
    The Attributor reuses Marian's encoder (source) and decoder (causal target stream that also attends to the
    source) blocks, so every Marian field keeps its meaning; its vocabulary is the teacher's tokenizer.

    scoring_heads (`int`, *optional*, defaults to 8):
        Heads of the scoring layer: each gives scaled dot-product scores between target and source states.
    head_gate_dim (`int`, *optional*, defaults to 128):
        Hidden size of the gate that mixes the scoring heads per target token.
    """

    model_type = "agkd_attributor"

    vocab_size: int = 8000
    d_model: int = 512
    encoder_layers: int = 3
    decoder_layers: int = 3
    encoder_attention_heads: int = 8
    decoder_attention_heads: int = 8
    encoder_ffn_dim: int = 2048
    decoder_ffn_dim: int = 2048
    max_position_embeddings: int = 512
    scale_embedding: bool = True
    scoring_heads: int = 8
    head_gate_dim: int = 128

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.scoring_heads < 1 or self.d_model % self.scoring_heads:
            raise ValueError(f"scoring_heads ({self.scoring_heads}) must be >= 1 and divide d_model ({self.d_model})")
        if self.head_gate_dim < 1:
            raise ValueError(f"head_gate_dim must be >= 1, got {self.head_gate_dim}")


__all__ = ["AgkdAttributorConfig"]
