"""Configuration of the AGKD student: a Marian translation model whose decoder cross-attention takes attribution
maps."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import MarianConfig

from .attribution_injection import INJECTION_OPERATORS, MAP_NORMALIZATIONS, check_choice, check_indices


@strict
class AgkdStudentConfig(MarianConfig):
    r"""
    A [`MarianConfig`] with the attribution-injection options of AGKD. All Marian fields keep their meaning, so a
    student can be initialised from any Marian checkpoint.

    injection_operator (`str`, *optional*, defaults to `"none"`):
        How a map `A` is combined with the pre-softmax cross-attention logits `S` of the selected heads:
        `"none"` (no injection), `"add"` (`S + A`), `"multiply"` (`S * A`), `"average"` (`(S + A) / 2`) or
        `"replace"` (`A`). The padding mask is applied again after combining. `"supervise"` combines nothing:
        during training the selected cross-attention is pulled toward the map's rows (as distributions) by
        `supervision_weight` x KL(map row || attention row) beside the translation loss, and no map is used at test
        time (supervised attention).
    injection_layers (`list[int]`, *optional*):
        Decoder layers whose cross-attention is injected; `None` means all of them.
    injection_heads (`list[int]`, *optional*):
        Heads of those layers that are injected; `None` means all of them.
    map_normalization (`str`, *optional*, defaults to `"none"`):
        Per-target-row normalisation of the raw map over the real source tokens, applied at injection time:
        `"none"`, `"row_sum"`, `"row_max"`, `"row_minmax"` or `"row_softmax"`.
    supervision_weight (`float`, *optional*, defaults to 1.0):
        Weight of the attention-supervision term of operator `"supervise"`; 0 trains exactly the no-map student.
    """

    model_type = "agkd_student"

    injection_operator: str = "none"
    injection_layers: list[int] | None = None
    injection_heads: list[int] | None = None
    map_normalization: str = "none"
    supervision_weight: float = 1.0

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        check_choice("injection_operator", self.injection_operator, INJECTION_OPERATORS)
        check_choice("map_normalization", self.map_normalization, MAP_NORMALIZATIONS)
        check_indices("injection_layers", self.injection_layers, self.decoder_layers)
        check_indices("injection_heads", self.injection_heads, self.decoder_attention_heads)
        if self.supervision_weight < 0:
            raise ValueError(f"supervision_weight must be >= 0, got {self.supervision_weight}")


__all__ = ["AgkdStudentConfig"]
