"""A small, probe-gated compatibility layer for Inseq 0.7.1 on transformers 5 (used by `attribution/inseq_engine.py`).

Three problems, each fixed only when a numerical probe on the actual teacher shows it, so the layer becomes a no-op
once Inseq (or transformers) is fixed:

1. **Decoder embeddings scaled twice** (every Marian model with `scale_embedding=True`, transformers >= 4.52).
   Inseq feeds `embed_tokens(ids) * embed_scale` as `decoder_inputs_embeds`, and `MarianDecoder.forward` multiplies
   passed embeddings by `embed_scale` again, so Inseq attributes a corrupted forward pass (its step probabilities
   differ from the real model's by up to ~1). Probe: run the decoder once on token ids and once on the embeddings
   Inseq would pass; if they differ but dividing the embeddings by the decoder's `embed_scale` makes them equal,
   the attribution model gets that divisor and a patched `get_forward_output` applies it. mBART is not affected
   (its scaling lives inside `MBartScaledWordEmbedding`, Inseq's `embed_scale` is 1), so the probe leaves it alone.

2. **value_zeroing crashes** on transformers 5 (`TypeError: unsupported operand type(s) for +: 'Tensor' and
   'tuple'`): encoder/decoder layers return a bare tensor, Inseq's patch hook slices it as a tuple. Probe: run a
   forward hook of each kind on the teacher's first decoder layer and look at what the layer returns; if it is a
   tensor, the hook is replaced by one that handles both tensors and tuples.

3. **Batched attribution crashes on CUDA** (`RuntimeError: Expected all tensors to be on the same device`, measured
   on an H200 with batch size > 1): Inseq moves step scores to the CPU, then `remap_from_filtered` scatters them
   with an index built from the target mask, which is still on the GPU. Probe: call `remap_from_filtered` with a
   mask on the teacher's device and scores on the CPU; if it raises, a wrapper moves the mask to the scores' device
   (a no-op on CPU teachers, where the probe passes and nothing is installed).

`apply_compat(attribution_model)` runs the probes and returns a `CompatReport` saying what was applied (stored in
the dataset card). The patches touch Inseq classes, so Inseq is pinned exactly (pyproject: inseq==0.7.1); on any
other Inseq version the probes still run and the patches are applied only if the problems are measured.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch

from agkd.datasets_scripts.attribution.teacher import PROBE_TOLERANCE

logger = logging.getLogger(__name__)

PINNED_INSEQ = "0.7.1"


@dataclass
class CompatReport:
    inseq_version: str
    transformers_version: str
    decoder_embeds_rescaled_by_model: bool  # the double-scaling problem was measured
    decoder_embeds_divisor: float | None  # the divisor applied (None: no patch)
    probe_max_diff_before: float
    probe_max_diff_after: float
    value_zeroing_layer_returns_tensor: bool  # the value_zeroing problem was measured
    value_zeroing_patched: bool
    remap_devices_patched: bool = False  # problem 3 was measured and fixed

    def to_dict(self) -> dict:
        return asdict(self)


def inseq_version() -> str:
    """`inseq.get_version()` needs pkg_resources (gone with setuptools >= 81): read the installed metadata instead."""
    from importlib.metadata import version

    return version("inseq")


# --------------------------------------------------------------------------------------------------- problem 1


def _patched_get_forward_output(self, batch, use_embeddings: bool = True, **kwargs):
    """`EncoderDecoderAttributionModel.get_forward_output` with the decoder embeddings divided by the scale the
    decoder applies again (only for models whose probe set `_agkd_decoder_embeds_divisor`)."""
    target_embeds = batch.target_embeds
    divisor = getattr(self, "_agkd_decoder_embeds_divisor", None)
    if divisor is not None and target_embeds is not None:
        target_embeds = target_embeds / divisor
    return self.model(
        input_ids=None if use_embeddings else batch.source_ids,
        inputs_embeds=batch.source_embeds if use_embeddings else None,
        attention_mask=batch.source_mask,
        decoder_inputs_embeds=target_embeds,
        decoder_attention_mask=batch.target_mask,
        **kwargs,
    )


def _install_forward_patch() -> None:
    from inseq.models.encoder_decoder import EncoderDecoderAttributionModel

    if getattr(EncoderDecoderAttributionModel.get_forward_output, "_agkd_patched", False):
        return
    _patched_get_forward_output._agkd_patched = True
    _patched_get_forward_output._agkd_original = EncoderDecoderAttributionModel.get_forward_output
    EncoderDecoderAttributionModel.get_forward_output = _patched_get_forward_output
    logger.info("inseq_compat: installed the decoder-embedding scale fix on EncoderDecoderAttributionModel")


@torch.no_grad()
def _decoder_probe(attribution_model, divisor: float | None) -> float:
    """Max |logits(ids) - logits(Inseq's decoder embeddings / divisor)| on a short fixed token sequence."""
    model = attribution_model.model
    cfg = model.config
    special = {cfg.pad_token_id, cfg.eos_token_id, cfg.decoder_start_token_id, getattr(cfg, "bos_token_id", None)}
    ids = [i for i in range(min(cfg.vocab_size, 64)) if i not in special][:6]
    device = attribution_model.device
    src = torch.tensor([ids + [cfg.eos_token_id]], device=device)
    tgt = torch.tensor([[cfg.decoder_start_token_id] + ids[::-1]], device=device)
    ref = model(input_ids=src, decoder_input_ids=tgt).logits
    embeds = attribution_model.embed_ids(tgt, as_targets=True)
    if divisor is not None:
        embeds = embeds / divisor
    out = model(input_ids=src, decoder_inputs_embeds=embeds).logits
    return float((out - ref).abs().max())


def _decoder_embed_scale(model) -> float | None:
    decoder = model.get_decoder()
    scale = getattr(decoder, "embed_scale", None)
    return float(scale) if scale is not None else None


# --------------------------------------------------------------------------------------------------- problem 2


def _layer_returns_tensor(model) -> bool:
    """Run the teacher's first decoder layer through a forward hook and report whether its output is a bare tensor
    (transformers 5) rather than the tuple Inseq's value-zeroing hook expects (transformers 4)."""
    seen: list[bool] = []
    layer = model.get_decoder().layers[0]
    handle = layer.register_forward_hook(lambda module, args, output: seen.append(isinstance(output, torch.Tensor)))
    try:
        cfg = model.config
        with torch.no_grad():
            device = next(model.parameters()).device
            model(
                input_ids=torch.tensor([[cfg.eos_token_id]], device=device),
                decoder_input_ids=torch.tensor([[cfg.decoder_start_token_id]], device=device),
            )
    finally:
        handle.remove()
    return bool(seen and seen[0])


def _patched_states_hook(self, block_idx: int, hidden_state_idx: int = 0):
    """`ValueZeroing.get_states_extract_and_patch_hook` that accepts a bare tensor output as well as a tuple."""

    def states_extract_and_patch_forward_hook(module, args, output):
        clean = self.clean_block_output_states[block_idx]
        if isinstance(output, torch.Tensor):
            self.corrupted_block_output_states[block_idx] = output.clone().float().detach().cpu()
            return clean.to(device=output.device, dtype=output.dtype)
        self.corrupted_block_output_states[block_idx] = output[hidden_state_idx].clone().float().detach().cpu()
        return output[:hidden_state_idx] + (clean.to(output[hidden_state_idx].device),) + output[hidden_state_idx + 1 :]

    return states_extract_and_patch_forward_hook


def _install_value_zeroing_patch() -> None:
    from inseq.attr.feat.ops.value_zeroing import ValueZeroing

    if getattr(ValueZeroing.get_states_extract_and_patch_hook, "_agkd_patched", False):
        return
    _patched_states_hook._agkd_patched = True
    ValueZeroing.get_states_extract_and_patch_hook = _patched_states_hook
    logger.info("inseq_compat: installed the tensor-output fix on ValueZeroing")


# --------------------------------------------------------------------------------------------------- problem 3


def _remap_mixes_devices(device: torch.device) -> bool:
    """True when Inseq's `remap_from_filtered` fails on a mask on `device` and scores on the CPU."""
    from inseq.utils import torch_utils

    mask = torch.tensor([[1], [0]], device=device)
    try:
        torch_utils.remap_from_filtered((2, 3), mask, torch.ones(1, 3))
    except RuntimeError:
        return True
    return False


def _install_remap_patch() -> None:
    import inseq.data.attribution as attribution_data
    from inseq.utils import torch_utils

    original = attribution_data.remap_from_filtered
    if getattr(original, "_agkd_patched", False):
        return

    def remap_from_filtered(original_shape, mask, filtered):
        return original(original_shape, mask.to(filtered.device), filtered)

    remap_from_filtered._agkd_patched = True
    attribution_data.remap_from_filtered = remap_from_filtered
    torch_utils.remap_from_filtered = remap_from_filtered
    logger.info("inseq_compat: installed the mask-device fix on remap_from_filtered")


# --------------------------------------------------------------------------------------------------- entry point


def apply_compat(attribution_model, enabled: bool = True) -> CompatReport:
    """Probe `attribution_model` (an Inseq encoder-decoder model) and apply the fixes whose problems are measured.

    With `enabled=False` the probes still run (the report says what is wrong) but nothing is patched: the
    extraction's probability self-check then refuses to publish corrupted maps.
    """
    import transformers

    version = inseq_version()
    if version != PINNED_INSEQ:
        logger.warning("inseq_compat: written for inseq==%s, found %s; patches are probe-gated", PINNED_INSEQ, version)
    model = attribution_model.model
    attribution_model._agkd_decoder_embeds_divisor = None
    before = _decoder_probe(attribution_model, None)
    rescaled = before > PROBE_TOLERANCE
    divisor, after = None, before
    if rescaled:
        scale = _decoder_embed_scale(model)
        if scale is None:
            raise RuntimeError(
                f"Inseq's decoder embeddings do not reproduce the model (max diff {before:.3g}), cause unknown"
            )
        after = _decoder_probe(attribution_model, scale)
        if after > PROBE_TOLERANCE:
            raise RuntimeError(f"decoder embedding probe: {before:.3g} before, {after:.3g} after dividing by {scale}")
        if enabled:
            _install_forward_patch()
            attribution_model._agkd_decoder_embeds_divisor = scale
            divisor = scale
    returns_tensor = _layer_returns_tensor(model)
    vz_patched = False
    if returns_tensor and enabled:
        _install_value_zeroing_patch()
        vz_patched = True
    remap_patched = False
    if _remap_mixes_devices(next(model.parameters()).device) and enabled:
        _install_remap_patch()
        remap_patched = True
    report = CompatReport(
        inseq_version=version,
        transformers_version=transformers.__version__,
        decoder_embeds_rescaled_by_model=rescaled,
        decoder_embeds_divisor=divisor,
        probe_max_diff_before=before,
        probe_max_diff_after=after if divisor is not None else before,
        value_zeroing_layer_returns_tensor=returns_tensor,
        value_zeroing_patched=vz_patched,
        remap_devices_patched=remap_patched,
    )
    logger.info("inseq_compat: %s", report)
    return report
