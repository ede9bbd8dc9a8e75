"""The AGKD student: a MarianMT model whose decoder cross-attention takes a teacher's attribution map.

Ships inside Hub model repos (`trust_remote_code=True`): imports only torch, transformers and its sibling files.

The map `A` (`[batch, tgt_len, src_len]`, row `t` = target token `t`, column `s` = source token `s`) is combined
with the pre-softmax cross-attention logits `S` (`[batch, heads, tgt_len, src_len]`) of the selected layers and
heads under `config.injection_operator`; the source padding mask is applied again after combining. Under operator
`supervise` no map is combined: in training mode the selected cross-attention is pulled toward the map's rows by a
loss term, so that nothing computed from the answer is needed at test time. Weight names are exactly MarianMTModel's,
so a student loads Marian checkpoints and vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import MarianMTModel
from transformers.cache_utils import Cache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.models.marian.modeling_marian import MarianAttention

from .attribution_injection import (
    INJECTION_OPERATORS,
    MAP_NORMALIZATIONS,
    attribution_rows_to_distributions,
    check_attribution_map,
    check_choice,
    inject,
    normalize_map,
    select_map_rows,
    supervision_loss,
)
from .configuration_agkd_student import AgkdStudentConfig


def _head_mask(config: AgkdStudentConfig, num_heads: int, device: torch.device) -> torch.Tensor | None:
    """Boolean `[heads]` of the injected (or supervised) heads; None means all of them."""
    if config.injection_heads is None:
        return None
    mask = torch.zeros(num_heads, dtype=torch.bool, device=device)
    mask[config.injection_heads] = True
    return mask


def _additive_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """transformers builds boolean masks for sdpa and additive float masks for eager: return the additive form."""
    if attention_mask is None or attention_mask.dtype != torch.bool:
        return attention_mask
    return torch.zeros(attention_mask.shape, dtype=dtype, device=attention_mask.device).masked_fill(
        ~attention_mask, torch.finfo(dtype).min
    )


@dataclass
class AgkdStudentOutput(Seq2SeqLMOutput):
    """
    supervision_loss: the attention-supervision term of operator `supervise` (already included in `loss`, with
        `config.supervision_weight`), when the student is trained with a map; None otherwise.
    """

    supervision_loss: torch.FloatTensor | None = None


class AgkdStudentCrossAttention(MarianAttention):
    """Decoder cross-attention that combines its logits with attribution rows when its layer is injected.

    Without rows (no map, operator `none`, or a layer not in `injection_layers`) it is exactly MarianAttention,
    whatever attention implementation the config selects. With rows it computes the eager path explicitly, since
    the logits must be visible, and returns the combined attention weights (recorded as `cross_attentions`); under
    `supervise` nothing is combined and the weights are returned for the supervision loss.
    """

    def _is_injected(self) -> bool:
        layers = self.config.injection_layers
        return self.config.injection_operator != "none" and (layers is None or self.layer_idx in layers)

    def _head_mask(self, device: torch.device) -> torch.Tensor | None:
        return _head_mask(self.config, self.num_heads, device)

    def _key_value(self, key_value_states: torch.Tensor, cache: Cache | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values `[batch, heads, src_len, head_dim]`, reusing the cross-attention cache like
        MarianAttention."""
        cross_cache = cache.cross_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        if isinstance(cache, EncoderDecoderCache) and cache.is_updated.get(self.layer_idx):
            return cross_cache.layers[self.layer_idx].keys, cross_cache.layers[self.layer_idx].values
        kv_shape = (*key_value_states.shape[:-1], -1, self.head_dim)
        key_states = self.k_proj(key_value_states).view(kv_shape).transpose(1, 2)
        value_states = self.v_proj(key_value_states).view(kv_shape).transpose(1, 2)
        if cross_cache is not None:
            key_states, value_states = cross_cache.update(key_states, value_states, self.layer_idx)
            if isinstance(cache, EncoderDecoderCache):
                cache.is_updated[self.layer_idx] = True
        return key_states, value_states

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        attribution_rows: torch.Tensor | None = None,
        attribution_rows_present: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if attribution_rows is None or not self._is_injected():
            return super().forward(
                hidden_states, key_value_states=key_value_states, cache=cache, attention_mask=attention_mask, **kwargs
            )
        input_shape = hidden_states.shape[:-1]
        query_states = self.q_proj(hidden_states).view(*input_shape, -1, self.head_dim).transpose(1, 2)
        key_states, value_states = self._key_value(key_value_states, cache)

        scores = torch.matmul(query_states, key_states.transpose(2, 3)) * self.scaling  # [B, H, T, S]
        scores = inject(
            scores,
            attribution_rows,
            attribution_rows_present,
            self.config.injection_operator,
            self._head_mask(scores.device),
        )
        mask = _additive_mask(attention_mask, scores.dtype)
        if mask is not None:
            scores = scores + mask
        attn_weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query_states.dtype)
        attn_weights = nn.functional.dropout(attn_weights, p=self.dropout, training=self.training)

        attn_output = torch.matmul(attn_weights, value_states).transpose(1, 2).reshape(*input_shape, -1)
        return self.out_proj(attn_output), attn_weights


class AgkdStudentForConditionalGeneration(MarianMTModel):
    """MarianMTModel with `attribution_map` ([batch, tgt_len, src_len]) accepted by `forward` and `generate`.

    Decoder position `t` (counted from the decoder start token, cached steps included) reads row `t` of the map.
    A position beyond the map's last row, or a row whose `attribution_map_mask` entry is 0, is not injected.
    With operator `none`, or without a map, the logits are exactly MarianMTModel's with the same weights.
    """

    config_class = AgkdStudentConfig
    config: AgkdStudentConfig

    def __init__(self, config: AgkdStudentConfig):
        super().__init__(config)
        for layer_idx, layer in enumerate(self.model.decoder.layers):
            layer.encoder_attn = AgkdStudentCrossAttention(
                config.d_model,
                config.decoder_attention_heads,
                dropout=config.attention_dropout,
                is_decoder=True,
                config=config,
                layer_idx=layer_idx,
            )
        self.post_init()

    def _check_injection_config(self) -> None:
        # The config may be edited after loading (e.g. to switch operators), so check it where it is read.
        check_choice("injection_operator", self.config.injection_operator, INJECTION_OPERATORS)
        check_choice("map_normalization", self.config.map_normalization, MAP_NORMALIZATIONS)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: tuple[torch.Tensor] | BaseModelOutput | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        attribution_map: torch.Tensor | None = None,
        attribution_map_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput | AgkdStudentOutput:
        r"""
        attribution_map (`torch.FloatTensor` of shape `(batch_size, target_length, source_length)`, *optional*):
            Raw attribution of each target token (`labels[t]`) to each source token (`input_ids[s]`), in the
            student's tokenisation. Normalised per row with `config.map_normalization`, then combined with the
            cross-attention logits under `config.injection_operator`; under `supervise` it is read in training mode
            only, as the target of the attention-supervision term (returned as `supervision_loss`, added to `loss`).
        attribution_map_mask (`torch.BoolTensor` of shape `(batch_size, target_length)`, *optional*):
            Which rows of a padded batch of maps are real; rows marked 0 are not injected.
        """
        self._check_injection_config()
        operator = self.config.injection_operator
        # `supervise` reads a map only to train the attention toward it: at test time (eval mode) it takes none.
        supervised = operator == "supervise" and self.training and self.config.supervision_weight > 0
        target = None
        if attribution_map is not None:
            source = encoder_outputs[0] if encoder_outputs is not None else next(
                x for x in (input_ids, inputs_embeds) if x is not None
            )
            check_attribution_map(attribution_map, source.shape[0], source.shape[1], attribution_map_mask)
            if encoder_outputs is None:
                # Run the encoder here so the map never reaches it.
                encoder_outputs = self.model.encoder(
                    input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
                )
            if operator != "none" and (operator != "supervise" or supervised):
                decoder_inputs = next(x for x in (decoder_input_ids, decoder_inputs_embeds, labels) if x is not None)
                past_length = cache.get_seq_length() if cache is not None else 0
                rows, present = select_map_rows(
                    attribution_map, attribution_map_mask, past_length, decoder_inputs.shape[1]
                )
                kwargs["attribution_rows"] = normalize_map(rows, attention_mask, self.config.map_normalization)
                kwargs["attribution_rows_present"] = present
                if supervised:
                    source_mask = attention_mask if attention_mask is not None else torch.ones_like(source[..., 0])
                    if labels is not None:
                        present = present & (labels != -100)
                    target = (attribution_rows_to_distributions(rows.float(), source_mask), source_mask.bool(), present)
        if target is None:
            return self._marian_forward(
                input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, cache,
                inputs_embeds, decoder_inputs_embeds, labels, use_cache, **kwargs,
            )
        asked_for_attentions = kwargs.pop("output_attentions", False)
        outputs = self._marian_forward(
            input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, cache,
            inputs_embeds, decoder_inputs_embeds, labels, use_cache, output_attentions=True, **kwargs,
        )
        layers = self.config.injection_layers
        supervised_layers = [a for i, a in enumerate(outputs.cross_attentions) if layers is None or i in layers]
        distributions, source_mask, present = target
        term = supervision_loss(
            supervised_layers, distributions, source_mask, present,
            _head_mask(self.config, self.config.decoder_attention_heads, distributions.device),
        )
        fields = dict(outputs)
        if not asked_for_attentions:
            fields.update(decoder_attentions=None, cross_attentions=None, encoder_attentions=None)
        if fields.get("loss") is not None:
            fields["loss"] = fields["loss"] + self.config.supervision_weight * term
        return AgkdStudentOutput(**fields, supervision_loss=term)

    def _marian_forward(
        self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, cache,
        inputs_embeds, decoder_inputs_embeds, labels, use_cache, **kwargs,
    ) -> Seq2SeqLMOutput:
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            **kwargs,
        )

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        *args,
        attribution_map: torch.Tensor | None = None,
        attribution_map_mask: torch.Tensor | None = None,
        attributor: nn.Module | None = None,
        **kwargs,
    ):
        """`GenerationMixin.generate` with a map source, checked against the inputs before any compute.

        attribution_map: a fixed map `[batch, tgt_len, src_len]` (beams share their example's map).
        attributor: instead of a map, a model such as `AgkdAttributorModel` that predicts, at every step, the
            rows of the prefix generated so far from the source and that prefix (no teacher at test time).
        Greedy and beam search both work, with and without the cache.
        """
        self._check_injection_config()
        source = inputs if inputs is not None else kwargs.get("input_ids", kwargs.get("inputs_embeds"))
        if attribution_map is not None and attributor is not None:
            raise ValueError("pass either attribution_map or attributor, not both")
        if attribution_map is not None:
            if source is not None:
                check_attribution_map(attribution_map, source.shape[0], source.shape[1], attribution_map_mask)
            kwargs["attribution_map"] = attribution_map
            kwargs["attribution_map_mask"] = attribution_map_mask
        if attributor is not None:
            if source is None or source.dtype != torch.long:
                raise ValueError("generation with an attributor needs the source token ids (input_ids)")
            # The `decoder_` prefix keeps these away from the encoder; tensors are expanded for beams by generate.
            kwargs["decoder_attributor"] = attributor
            kwargs["decoder_attributor_input_ids"] = source
            kwargs["decoder_attributor_attention_mask"] = kwargs.get("attention_mask", torch.ones_like(source))
        return super().generate(inputs, *args, **kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        *args,
        decoder_attributor: nn.Module | None = None,
        decoder_attributor_input_ids: torch.LongTensor | None = None,
        decoder_attributor_attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> dict:
        model_inputs = super().prepare_inputs_for_generation(input_ids, *args, **kwargs)
        if decoder_attributor is not None:
            # `input_ids` is the whole decoder prefix here (before the cache slices it): predict its rows.
            with torch.no_grad():
                model_inputs["attribution_map"] = decoder_attributor(
                    input_ids=decoder_attributor_input_ids,
                    attention_mask=decoder_attributor_attention_mask,
                    decoder_input_ids=input_ids,
                ).attribution
        return model_inputs


__all__ = ["AgkdStudentCrossAttention", "AgkdStudentForConditionalGeneration", "AgkdStudentOutput"]
