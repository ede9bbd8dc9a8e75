"""Teacher-forced, batched attribution engine (`agkd extract --engine fast`): the same raw maps as the Inseq engine.

Inseq attributes one target step at a time (T forward + backward passes per pair, times n_steps for integrated
gradients, times S for value zeroing). With teacher forcing and the causal decoder mask, one forward pass gives every
step's output, every step's gradient comes from one batched vector-Jacobian product, and value zeroing runs the S
zeroed copies of a pair as one decoder batch. What has to match Inseq 0.7.1 (`attribution/inseq_engine.py`; checked pair
by pair in tests/test_fast_attribution.py):

- inputs are Inseq's *scaled* embeddings (`get_input_embeddings()(ids) * encoder.embed_scale`, where Inseq takes the
  encoder's `embed_scale` and mBART has none); the model is fed them through `inputs_embeds`, divided by what a
  numerical probe says the model re-applies (Marian's decoder re-scales passed embeddings; the compat patch does the
  same division on the Inseq side);
- the attributed function is the forced token's probability; decoder input `[start] + labels[:-1]`, labels scored,
  the final `</s>` included;
- baselines (integrated_gradients, deeplift, gradient_shap) are `<unk>` except `</s>` on the source and
  `[start, <unk>...]` (`</s>` kept) on the target, and with `attribute_target=True` the target is interpolated too;
- aggregation is Inseq's default with `normalize=False`: L2 norm over d_model for gradient methods, mean over heads
  then layers for attention, mean over layers for value zeroing (scores normalised over the source per layer).

Every method returns, per pair, the raw map [T][S] (row t = labels[t], column s = source_ids[s], the same orientation
as the stored dataset) and the engine's own probabilities of the labels (for the extraction's self-check).

DeepLIFT: captum's rescale rules only act on `SUPPORTED_NON_LINEAR` modules (ReLU, Sigmoid, Tanh, nn.Softmax ...);
Marian and mBART use SiLU/GELU modules and functional softmax, so captum's DeepLIFT reduces to (x - baseline) x
gradient at x, which is what the fast engine computes. A teacher that does hold a supported module is refused (use the
Inseq engine for it). gradient_shap replays captum's numpy draws pair by pair in the extraction's order: with the same
seed it reproduces Inseq run with batch size 1 (Inseq's batched gradient_shap draws each sample's baseline from the
whole batch, i.e. from other pairs, which no per-pair engine reproduces).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from agkd.datasets_scripts.attribution.configs import map_row
from agkd.datasets_scripts.attribution.methods import method_arguments, target_layer_name
from agkd.datasets_scripts.attribution.teacher import (
    PROBE_TOLERANCE,
    PairBatch,
    label_probs,
    make_batch,
    prob_deviation,
    seed_everything,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------- embeddings


@dataclass
class EmbeddingSetup:
    """How Inseq's embeddings relate to the model: x = emb(ids) * scale is what Inseq differentiates; the encoder and
    decoder are fed x / enc_div and x / dec_div."""

    scale: float
    enc_div: float
    dec_div: float


def _probe_ids(model) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = model.config
    special = {cfg.pad_token_id, cfg.eos_token_id, cfg.decoder_start_token_id, getattr(cfg, "bos_token_id", None)}
    ids = [i for i in range(min(cfg.vocab_size, 64)) if i not in special][:6]
    device = next(model.parameters()).device
    src = torch.tensor([[*ids, cfg.eos_token_id]], device=device)
    tgt = torch.tensor([[cfg.decoder_start_token_id, *ids[::-1]]], device=device)
    return src, tgt


@torch.no_grad()
def embedding_setup(model) -> EmbeddingSetup:
    """Probe once per model (cached on it) which divisors make the embedding path reproduce the ids path."""
    cached = getattr(model, "_agkd_fast_setup", None)
    if cached is not None:
        return cached
    enc, dec = model.get_encoder(), model.get_decoder()
    scale = float(getattr(enc, "embed_scale", 1.0))  # Inseq's configure_embeddings_scale
    emb = model.get_input_embeddings()
    src, tgt = _probe_ids(model)
    ref = model(input_ids=src, decoder_input_ids=tgt).logits
    xs, xt = emb(src) * scale, emb(tgt) * scale
    found = None
    for enc_div in dict.fromkeys([1.0, float(getattr(enc, "embed_scale", 1.0))]):
        for dec_div in dict.fromkeys([1.0, float(getattr(dec, "embed_scale", 1.0))]):
            out = model(inputs_embeds=xs / enc_div, decoder_inputs_embeds=xt / dec_div).logits
            diff = float((out - ref).abs().max())
            if diff <= PROBE_TOLERANCE:
                found = (enc_div, dec_div)
                break
        if found:
            break
    if found is None:
        raise NotImplementedError(f"fast engine: no embedding divisor reproduces {type(model).__name__}'s forward pass")
    setup = EmbeddingSetup(scale, *found)
    model._agkd_fast_setup = setup
    logger.info("fast engine: %s", setup)
    return setup


def embed(model, ids: torch.Tensor) -> torch.Tensor:
    """Inseq's scaled embeddings of `ids`."""
    return model.get_input_embeddings()(ids) * embedding_setup(model).scale


def baseline_ids(model, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Inseq's baselines: source `<unk>` except `</s>`; decoder input `[start, <unk>...]` with `</s>` kept."""
    cfg = model.config
    unk = _unk_id(model)
    src = torch.where(batch.src == cfg.eos_token_id, batch.src, torch.full_like(batch.src, unk))
    dec = torch.where(batch.dec_in == cfg.eos_token_id, batch.dec_in, torch.full_like(batch.dec_in, unk))
    dec[:, 0] = cfg.decoder_start_token_id
    return src, dec


def _unk_id(model) -> int:
    unk = getattr(model, "_agkd_unk_id", None)
    if unk is None:
        raise ValueError("fast engine: set model._agkd_unk_id (the tokenizer's unk id) before attributing")
    return unk


# --------------------------------------------------------------------------------------------------- forward


def decoder_states(model, batch: PairBatch, xs: torch.Tensor, xt: torch.Tensor, **kwargs):
    """Seq2seq forward on Inseq's embeddings (source xs, decoder input xt); `rows` picks (repeated) rows of the batch's
    masks, and a decoder input shorter than the batch (a prefix) gets the matching prefix of the decoder mask."""
    setup = embedding_setup(model)
    rows = kwargs.pop("rows", None)
    src_mask, dec_mask = batch.src_mask, batch.dec_mask[:, : xt.shape[1]]
    if rows is not None:
        src_mask, dec_mask = src_mask[rows], dec_mask[rows]
    return model.base_model(
        inputs_embeds=xs / setup.enc_div,
        attention_mask=src_mask,
        decoder_inputs_embeds=xt / setup.dec_div,
        decoder_attention_mask=dec_mask,
        **kwargs,
    )


def _split(batch: PairBatch, full: torch.Tensor) -> list[np.ndarray]:
    """[B, T, S] -> per pair [T_i, S_i] float32."""
    full = torch.nan_to_num(full.detach().float()).cpu().numpy()
    return [
        full[i, :t, :s].astype(np.float32) for i, (t, s) in enumerate(zip(batch.tgt_lens, batch.src_lens, strict=True))
    ]


def _split_probs(batch: PairBatch, p: torch.Tensor) -> list[np.ndarray]:
    p = p.detach().float().cpu().numpy()
    return [p[i, :t] for i, t in enumerate(batch.tgt_lens)]


# --------------------------------------------------------------------------------------------------- gradients


def encoder_states(model, batch: PairBatch, xs: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """The encoder's output on Inseq's source embeddings xs (`rows`: which batch rows xs repeats)."""
    src_mask = batch.src_mask if rows is None else batch.src_mask[rows]
    return model.get_encoder()(inputs_embeds=xs / embedding_setup(model).enc_div, attention_mask=src_mask)[0]


def step_grads(
    model,
    batch: PairBatch,
    inputs: torch.Tensor,
    enc: torch.Tensor,
    xt: torch.Tensor,
    labels: torch.Tensor,
    rows: torch.Tensor | None = None,
    chunk: int | None = None,
    batched: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """d p_t / d inputs for every step t: [T, N, S, d], and p [N, T]. `enc` is the encoder output computed from
    `inputs` (with grad), xt the decoder input embeddings, `rows` the batch rows they repeat.

    p_t depends only on h_t, so one cheap backward through the LM head gives every dp_t/dh_t; the expensive part is
    T vector-Jacobian products through the model. Steps go `chunk` at a time (None: all), each chunk on the decoder
    prefix it needs: by causality the states of steps < b are the same on the first b positions, and the backward of
    those steps skips the decoder positions after them (integrated gradients measured 1.15-1.35x faster on a CPU).
    Within a chunk the VJPs are one `is_grads_batched` call, or a plain loop (`batched=False`, faster for integrated
    gradients' n_steps-row batches)."""
    setup = embedding_setup(model)
    dec_mask = batch.dec_mask if rows is None else batch.dec_mask[rows]
    T = xt.shape[1]
    chunk = T if chunk is None else max(1, chunk)
    grads, probs = [], []
    for start in range(0, T, chunk):
        stop = min(T, start + chunk)
        h = model.get_decoder()(
            inputs_embeds=xt[:, :stop] / setup.dec_div,
            attention_mask=dec_mask[:, :stop],
            encoder_hidden_states=enc,
            encoder_attention_mask=batch.src_mask if rows is None else batch.src_mask[rows],
        )[0]
        hd = h[:, start:stop].detach().requires_grad_()
        p = label_probs(model, hd, labels[:, start:stop])
        (g,) = torch.autograd.grad(p.sum(), hd)  # [N, k, d]
        k = stop - start
        cot = torch.zeros((k, *h.shape), device=h.device, dtype=h.dtype)
        cot[torch.arange(k), :, torch.arange(start, stop), :] = g.transpose(0, 1).to(h.dtype)
        last = stop == T
        if batched and k > 1:
            (gr,) = torch.autograd.grad(h, inputs, grad_outputs=cot, retain_graph=not last, is_grads_batched=True)
            grads.append(gr)
        else:
            for j in range(k):
                (gr,) = torch.autograd.grad(h, inputs, grad_outputs=cot[j], retain_graph=not (last and j == k - 1))
                grads.append(gr[None])
        probs.append(p.detach())
    return torch.cat(grads), torch.cat(probs, dim=1)


def _gradient_at_input(model, batch: PairBatch, chunk: int | None):
    """(x_src, d p_t/d x_src [T, B, S, d], p [B, T]) at the real input."""
    xs = embed(model, batch.src).detach().requires_grad_()
    with torch.no_grad():
        xt = embed(model, batch.dec_in)
    grads, p = step_grads(model, batch, xs, encoder_states(model, batch, xs), xt, batch.labels, chunk=chunk)
    return xs.detach(), grads, p


def _vnorm_map(batch: PairBatch, attr: torch.Tensor) -> list[np.ndarray]:
    """attr [T, B, S, d] -> per pair [T_i, S_i]: Inseq's vnorm (L2 over d_model)."""
    return _split(batch, torch.linalg.vector_norm(attr.float(), dim=-1).permute(1, 0, 2))


def saliency(model, batch: PairBatch, chunk: int | None = None):
    """|d p_t / d x_src|, L2 over d_model (captum's abs=True; the norm drops the sign anyway)."""
    _, grads, p = _gradient_at_input(model, batch, chunk)
    return _vnorm_map(batch, grads), _split_probs(batch, p)


def input_x_gradient(model, batch: PairBatch, chunk: int | None = None):
    xs, grads, p = _gradient_at_input(model, batch, chunk)
    return _vnorm_map(batch, grads * xs[None]), _split_probs(batch, p)


def deeplift(model, batch: PairBatch, chunk: int | None = None):
    """captum DeepLift without supported non-linear modules = (x - baseline) x gradient at x (see the module doc)."""
    _check_deeplift_reducible(model)
    xs, grads, p = _gradient_at_input(model, batch, chunk)
    with torch.no_grad():
        bs = embed(model, baseline_ids(model, batch)[0])
    return _vnorm_map(batch, grads * (xs - bs)[None]), _split_probs(batch, p)


def refusal(model, method: str) -> str | None:
    """Why this engine cannot reproduce Inseq's `method` maps of `model` (None: it can). Checked before any pair is
    attributed, so callers fall back to Inseq for that method only (`engines.engine_for`)."""
    try:
        embedding_setup(model)
        if method == "deeplift":
            _check_deeplift_reducible(model)
    except NotImplementedError as err:
        return str(err)
    return None


def _check_deeplift_reducible(model) -> None:
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    held = sorted({type(m).__name__ for m in model.modules() if type(m) in SUPPORTED_NON_LINEAR})
    if held:
        raise NotImplementedError(
            f"fast deeplift: {type(model).__name__} has captum DeepLift non-linear modules {held} whose rescale rule "
            "the fast engine does not reproduce; use --engine inseq for deeplift"
        )


def layer_gradient_x_activation(model, batch: PairBatch, chunk: int | None = None):
    """Gradient x activation at the registry's target layer (the encoder's last layer): a forward hook turns the
    layer's output a into a leaf that the rest of the model (mBART: the encoder's final layer norm) runs on."""
    layer = dict(model.named_modules())[target_layer_name(model)]
    leaf: list[torch.Tensor] = []

    def as_leaf(module, args, output):
        leaf.append(output.detach().requires_grad_())
        return leaf[0]

    with torch.no_grad():
        xs, xt = embed(model, batch.src), embed(model, batch.dec_in)
    handle = layer.register_forward_hook(as_leaf)
    try:
        enc = encoder_states(model, batch, xs)
    finally:
        handle.remove()
    grads, p = step_grads(model, batch, leaf[0], enc, xt, batch.labels, chunk=chunk)
    return _vnorm_map(batch, grads * leaf[0].detach()[None]), _split_probs(batch, p)


def integrated_gradients(model, batch: PairBatch, n_steps: int, chunk: int | None = 8):
    """captum IG (Gauss-Legendre, n_steps) with Inseq's baselines, source and target interpolated together
    (attribute_target=True); causality makes the full-target interpolation equal to Inseq's per-step prefixes.
    Rows: alpha-major copies of the batch, as captum."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes_fn, alphas_fn = approximation_parameters("gausslegendre")
    alphas, step_sizes = alphas_fn(n_steps), step_sizes_fn(n_steps)
    B = len(batch)
    with torch.no_grad():
        b_src, b_dec = baseline_ids(model, batch)
        xs, xt = embed(model, batch.src), embed(model, batch.dec_in)
        bs, bt = embed(model, b_src), embed(model, b_dec)
        al = torch.tensor(alphas, dtype=xs.dtype, device=xs.device).repeat_interleave(B)[:, None, None]
        rows = torch.arange(B, device=xs.device).repeat(n_steps)
        ixs = (bs[rows] + al * (xs - bs)[rows]).requires_grad_()
        ixt = bt[rows] + al * (xt - bt)[rows]
        p_clean = label_probs(model, decoder_states(model, batch, xs, xt).last_hidden_state, batch.labels)
    enc = encoder_states(model, batch, ixs, rows)
    grads, _ = step_grads(model, batch, ixs, enc, ixt, batch.labels[rows], rows, chunk, batched=False)  # [T, n*B, S, d]
    w = torch.tensor(step_sizes, dtype=grads.dtype, device=grads.device).repeat_interleave(B)
    total = (grads * w[None, :, None, None]).reshape(grads.shape[0], n_steps, B, *grads.shape[2:]).sum(1)
    return _vnorm_map(batch, total * (xs - bs)[None]), _split_probs(batch, p_clean)


def gradient_shap(model, batch: PairBatch, n_samples: int, chunk: int | None = 128):
    """captum GradientShap (n_samples, stdevs 0) with Inseq's baselines, source and target scaled together.

    Draws replay captum's numpy calls for a batch of one pair: per pair (in batch order) and target step,
    `np.random.choice(1, n)` (baseline index) then `np.random.uniform(0, 1, n)` (interpolation coefficients). Each
    (pair, step, sample) row gets its own coefficient, so one forward + one backward over the rows gives everything
    (row (t, k) only needs p_t); rows run sorted by step, `chunk` at a time, on the decoder prefix they need."""
    B = len(batch)
    coef = torch.zeros((B, max(batch.tgt_lens), n_samples), dtype=torch.float64)
    for i, T_i in enumerate(batch.tgt_lens):
        for t in range(T_i):
            np.random.choice(1, n_samples)
            coef[i, t] = torch.from_numpy(np.random.uniform(0.0, 1.0, n_samples))
    with torch.no_grad():
        b_src, b_dec = baseline_ids(model, batch)
        xs, xt = embed(model, batch.src), embed(model, batch.dec_in)
        bs, bt = embed(model, b_src), embed(model, b_dec)
        p_clean = label_probs(model, decoder_states(model, batch, xs, xt).last_hidden_state, batch.labels)
    idx = [(i, t) for i in range(B) for t in range(batch.tgt_lens[i])]
    pair = torch.tensor([i for i, _ in idx for _ in range(n_samples)], device=xs.device)
    step = torch.tensor([t for _, t in idx for _ in range(n_samples)], device=xs.device)
    c = coef[pair.cpu(), step.cpu(), torch.arange(n_samples).repeat(len(idx))].to(xs.dtype).to(xs.device)
    c = c[:, None, None]
    by_step = torch.sort(step, stable=True).indices
    pair, step, c = pair[by_step], step[by_step], c[by_step]
    total = torch.zeros((B, coef.shape[1], *xs.shape[1:]), dtype=xs.dtype, device=xs.device)
    n_rows = len(pair)
    row_chunk = chunk or n_rows
    for start in range(0, n_rows, row_chunk):
        sl = slice(start, start + row_chunk)
        pr, st, cc = pair[sl], step[sl], c[sl]
        ixs = (cc * xs[pr] + (1.0 - cc) * bs[pr]).requires_grad_()
        prefix = int(st.max()) + 1
        ixt = cc * xt[pr, :prefix] + (1.0 - cc) * bt[pr, :prefix]
        h = decoder_states(model, batch, ixs, ixt, rows=pr).last_hidden_state
        hs = h[torch.arange(len(pr), device=h.device), st]  # [n, d]: row r's step
        p = label_probs(model, hs[:, None], batch.labels[pr, st][:, None])[:, 0]
        (g,) = torch.autograd.grad(p.sum(), ixs)
        total.index_put_((pr, st), g, accumulate=True)
    attr = total / n_samples * (xs - bs)[:, None]  # [B, T, S, d]
    return _vnorm_map(batch, attr.transpose(0, 1)), _split_probs(batch, p_clean)


# --------------------------------------------------------------------------------------------------- forward-only


@torch.no_grad()
def attention(model, batch: PairBatch, chunk: int | None = None):
    """Cross-attention of the forced-decoding forward pass, mean over heads then layers (needs eager attention)."""
    xs, xt = embed(model, batch.src), embed(model, batch.dec_in)
    out = decoder_states(model, batch, xs, xt, output_attentions=True)
    if not out.cross_attentions or out.cross_attentions[0] is None:
        raise RuntimeError("fast attention: load the teacher with attn_implementation='eager'")
    att = torch.stack([a.float().mean(1) for a in out.cross_attentions]).mean(0)  # [B, T, S]
    return _split(batch, att), _split_probs(batch, label_probs(model, out.last_hidden_state, batch.labels))


@torch.no_grad()
def value_zeroing(model, batch: PairBatch, chunk: int | None = 256, threshold: float = 1e-5):
    """Cross-attention value zeroing, cosine distance (Inseq's cross scores), mean over decoder layers.

    The encoder output is computed once; the decoder then runs on rows (pair i, zeroed source token j), `chunk` rows at
    a time. A hook on each layer's cross-attention value projection zeroes row j; hooks on each block but the last
    record the corrupted output and pass the clean one on (each layer is zeroed independently, as Inseq); the last
    block's state is the decoder's final hidden state (after mBART's final layer norm), as Inseq."""
    xs, xt = embed(model, batch.src), embed(model, batch.dec_in)
    clean = decoder_states(model, batch, xs, xt, output_hidden_states=True)
    enc_h = clean.encoder_last_hidden_state
    clean_states = clean.decoder_hidden_states  # (embeddings, block 1, ..., block L)
    decoder = model.get_decoder()
    blocks = decoder.layers
    L = len(blocks)
    pairs = [(i, j) for i in range(len(batch)) for j in range(batch.src_lens[i])]
    B, T, S = len(batch), batch.dec_in.shape[1], batch.src.shape[1]
    scores = torch.full((B, L, T, S), float("nan"), device=xs.device)
    setup = embedding_setup(model)
    state: dict = {}

    def zero_values(module, args, output):
        return output * state["keep"][:, :, None].to(output.dtype)

    def patch_block(idx):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            state["corrupted"][idx] = hidden.float()
            restored = clean_states[idx + 1][state["rows"]].to(hidden.dtype)
            return (restored, *output[1:]) if isinstance(output, tuple) else restored

        return hook

    handles = [b.encoder_attn.v_proj.register_forward_hook(zero_values) for b in blocks]
    handles += [blocks[k].register_forward_hook(patch_block(k)) for k in range(L - 1)]
    cos = torch.nn.CosineSimilarity(dim=-1)
    try:
        step = chunk or len(pairs)
        for start in range(0, len(pairs), step):
            part = pairs[start : start + step]
            rows = torch.tensor([i for i, _ in part], device=xs.device)
            cols = torch.tensor([j for _, j in part], device=xs.device)
            keep = torch.ones((len(part), S), device=xs.device)
            keep[torch.arange(len(part)), cols] = 0
            state.update(keep=keep, rows=rows, corrupted={})
            out = decoder(
                inputs_embeds=xt[rows] / setup.dec_div,
                attention_mask=batch.dec_mask[rows],
                encoder_hidden_states=enc_h[rows],
                encoder_attention_mask=batch.src_mask[rows],
                output_hidden_states=True,
            )
            state["corrupted"][L - 1] = out.hidden_states[-1].float()
            for k in range(L):
                sim = cos(clean_states[k + 1][rows].float(), state["corrupted"][k])  # [n, T]
                scores[rows, k, :, cols] = 1 - sim
    finally:
        for handle in handles:
            handle.remove()
    scores = torch.where(scores < threshold, torch.zeros_like(scores), scores)
    total = scores.nansum(dim=-1, keepdim=True)
    total[total == 0] = 1
    scores = scores / total
    probs = label_probs(model, clean.last_hidden_state, batch.labels)
    return _split(batch, scores.mean(1)), _split_probs(batch, probs)


# --------------------------------------------------------------------------------------------------- registry


FAST_METHODS: dict[str, Callable] = {
    "attention": attention,
    "value_zeroing": value_zeroing,
    "saliency": saliency,
    "input_x_gradient": input_x_gradient,
    "integrated_gradients": integrated_gradients,
    "layer_gradient_x_activation": layer_gradient_x_activation,
    "gradient_shap": gradient_shap,
    "deeplift": deeplift,
}

# Methods whose cost is one batched VJP per target step (they share the batch and chunk settings below).
SINGLE_VJP_METHODS = ("saliency", "input_x_gradient", "deeplift", "layer_gradient_x_activation")
# Pairs per fast batch on a CPU (IG already has n_steps rows per pair, value zeroing S rows). A GPU takes 8x larger
# batches: its cost per batch hardly grows with the rows until the card is busy.
FAST_BATCH_SIZE = {
    "integrated_gradients": 2,
    "gradient_shap": 4,
    "value_zeroing": 8,
    **dict.fromkeys(SINGLE_VJP_METHODS, 8),
}
DEFAULT_FAST_BATCH_SIZE = 16
GPU_BATCH_FACTOR = 8
# Target steps per batched VJP of the single-VJP methods on a CPU: 8 pairs x 8 steps per call measured 1.45x faster
# than all steps of 16 pairs at once (cache-sized calls, demo teacher, 2 threads); a GPU takes every step at once.
CPU_STEP_CHUNK = 8


def fast_batch_size(method: str, device: str | torch.device = "cpu") -> int:
    size = FAST_BATCH_SIZE.get(method, DEFAULT_FAST_BATCH_SIZE)
    return size * GPU_BATCH_FACTOR if torch.device(device).type == "cuda" else size


def method_kwargs(method: str, device: torch.device, ig_steps: int | None = None) -> dict:
    """Keyword arguments of a fast method: the CPU step chunk, the captum arguments the registry gives it."""
    kwargs = {"chunk": CPU_STEP_CHUNK} if method in SINGLE_VJP_METHODS and device.type == "cpu" else {}
    captum = method_arguments(method, ig_steps)
    return kwargs | {k: captum[k] for k in ("n_steps", "n_samples") if k in captum}


def attribute_pairs(
    model,
    method: str,
    source_ids: list[list[int]],
    target_ids: list[list[int]],
    unk_token_id: int,
    batch_size: int | None = None,
    ig_steps: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(map [T_i][S_i], engine probabilities [T_i]) per pair, in input order. Pairs run in length-sorted batches
    (sorted as the Inseq engine sorts them, which gradient_shap's draw replay relies on)."""
    if method not in FAST_METHODS:
        raise ValueError(f"fast engine has no method {method!r}; known: {list(FAST_METHODS)}")
    model._agkd_unk_id = unk_token_id
    fn = FAST_METHODS[method]
    device = next(model.parameters()).device
    batch_size = batch_size or fast_batch_size(method, device)
    kwargs = method_kwargs(method, device, ig_steps)
    order = sorted(range(len(source_ids)), key=lambda i: (len(target_ids[i]), len(source_ids[i])))
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    with torch.enable_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = make_batch(model, [source_ids[i] for i in idx], [target_ids[i] for i in idx])
            maps, probs = fn(model, batch, **kwargs)
            for i, m, p in zip(idx, maps, probs, strict=True):
                results[i] = (m, p)
    return [results[i] for i in range(len(source_ids))]


def attribute_rows_fast(
    teacher, method: str, rows: list[dict], batch_size: int | None, seed: int, ig_steps: int | None = None
) -> list[dict]:
    """The fast engine's counterpart of `inseq_engine.attribute_rows` (methods only; called through
    `engines.attribute`): the same row schema, and prob_check = max |engine probability - plain forward pass
    probability| over the target tokens."""
    seed_everything(seed)  # gradient_shap replays captum's numpy draws from the shard seed, as the Inseq engine
    src = [r["source_ids"] for r in rows]
    tgt = [r["target_ids"] for r in rows]
    out = attribute_pairs(teacher.model, method, src, tgt, teacher.tokenizer.unk_token_id, batch_size, ig_steps)
    model_probs: list[np.ndarray] = []
    for start in range(0, len(rows), 64):
        model_probs += teacher.probabilities(src[start : start + 64], tgt[start : start + 64])
    return [
        map_row(
            r,
            teacher.tokens(r["source_ids"]),
            teacher.tokens(r["target_ids"]),
            amap,
            prob_deviation(p_engine, p_model),
        )
        for r, (amap, p_engine), p_model in zip(rows, out, model_probs, strict=True)
    ]
