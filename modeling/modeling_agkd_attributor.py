"""The AGKD Attributor: from a source-target pair, predict each target token's attribution row over the source.

Ships inside Hub model repos (`trust_remote_code=True`): imports only torch, transformers and its sibling files.

Architecture (after the paper's Attributor, built from Marian blocks): a Marian encoder reads the source; a
Marian decoder reads the target prefix causally (row `t` sees `decoder_input_ids[:t+1]`, i.e. the target tokens
before `t`, exactly what a student has when it generates token `t`) and attends to the source; a scoring layer
gives per-head scaled dot-product scores between target and source states, a gate mixes the heads per target
token, and a softmax over the real source positions makes every row a distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import ModelOutput
from transformers.models.marian.modeling_marian import (
    MarianDecoder,
    MarianEncoder,
    MarianPreTrainedModel,
    shift_tokens_right,
)

from .attribution_injection import attribution_kl, attribution_rows_to_distributions
from .configuration_agkd_attributor import AgkdAttributorConfig


@dataclass
class AgkdAttributorOutput(ModelOutput):
    """
    loss: KL(teacher row || predicted row), averaged over valid target rows, when `attribution_map` is given.
    attribution: predicted rows `[B, T, S]`, each a distribution over the real source tokens.
    log_attribution: their logarithms (`-inf` on padding), for losses.
    head_weights: the gate's mixture of scoring heads per target token `[B, T, heads]`.
    """

    loss: torch.Tensor | None = None
    attribution: torch.Tensor | None = None
    log_attribution: torch.Tensor | None = None
    head_weights: torch.Tensor | None = None


class AgkdAttributorModel(MarianPreTrainedModel):
    config_class = AgkdAttributorConfig
    config: AgkdAttributorConfig
    base_model_prefix = "attributor"
    _tied_weights_keys = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }
    _keys_to_ignore_on_load_missing = ["encoder.embed_positions.weight", "decoder.embed_positions.weight"]
    _keys_to_ignore_on_save = ["encoder.embed_positions.weight", "decoder.embed_positions.weight"]

    def __init__(self, config: AgkdAttributorConfig):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.encoder = MarianEncoder(config)
        self.decoder = MarianDecoder(config)
        self.encoder.embed_tokens = self.shared
        self.decoder.embed_tokens = self.shared
        self.source_norm = nn.LayerNorm(config.d_model)
        self.target_norm = nn.LayerNorm(config.d_model)
        self.score_query = nn.Linear(config.d_model, config.d_model)
        self.score_key = nn.Linear(config.d_model, config.d_model)
        self.head_gate = nn.Sequential(
            nn.LayerNorm(config.d_model),
            nn.Linear(config.d_model, config.head_gate_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_gate_dim, config.scoring_heads),
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        attribution_map: torch.Tensor | None = None,
        attribution_map_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> AgkdAttributorOutput:
        r"""
        input_ids (`[batch, src_len]`): source tokens in the teacher's tokenisation (`</s>` included).
        decoder_input_ids (`[batch, tgt_len]`): the target prefix starting with the decoder start token; derived
            from `labels` (the target tokens the rows belong to) when not given.
        attribution_map (`[batch, tgt_len, src_len]`, *optional*): the teacher's raw map, as stored in
            agkd-attributions; its rows are made distributions before the KL loss.
        attribution_map_mask (`[batch, tgt_len]`, *optional*): real target rows (default: `labels != -100`
            and not padding, when `labels` are given; else all rows).
        """
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("pass decoder_input_ids (the target prefix) or labels (the target tokens)")
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        source_mask = attention_mask.bool()

        source_states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        target_states = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=source_states,
            encoder_attention_mask=attention_mask,
            use_cache=False,
            **kwargs,
        ).last_hidden_state

        batch_size, target_length, _ = target_states.shape
        heads = self.config.scoring_heads
        query = self.score_query(self.target_norm(target_states)).view(batch_size, target_length, heads, -1)
        key = self.score_key(self.source_norm(source_states)).view(batch_size, source_states.shape[1], heads, -1)
        scores = torch.einsum("bthd,bshd->bhts", query, key) * query.shape[-1] ** -0.5  # [B, H, T, S]
        head_weights = self.head_gate(target_states).softmax(-1)  # [B, T, H]
        mixed = torch.einsum("bhts,bth->bts", scores, head_weights)
        log_attribution = mixed.masked_fill(~source_mask[:, None, :], float("-inf")).log_softmax(-1)

        loss = None
        if attribution_map is not None:
            if attribution_map.shape != log_attribution.shape:
                raise ValueError(
                    f"attribution_map has shape {tuple(attribution_map.shape)}, expected [batch, tgt_len, src_len] = "
                    f"{tuple(log_attribution.shape)}"
                )
            if attribution_map_mask is None and labels is not None:
                attribution_map_mask = (labels != -100) & (labels != self.config.pad_token_id)
            target = attribution_rows_to_distributions(attribution_map.to(log_attribution.dtype), source_mask)
            loss = attribution_kl(target, log_attribution, source_mask, attribution_map_mask)
        return AgkdAttributorOutput(
            loss=loss, attribution=log_attribution.exp(), log_attribution=log_attribution, head_weights=head_weights
        )


__all__ = ["AgkdAttributorModel", "AgkdAttributorOutput"]
