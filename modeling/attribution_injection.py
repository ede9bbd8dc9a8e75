"""Attribution-map injection into attention logits: the operators, the row normalisations and input checks.

Ships inside Hub model repos next to `modeling_agkd_student.py`, so it imports only torch and the stdlib.

Shapes: `scores` are pre-softmax attention logits `[batch, heads, tgt_len, src_len]`; an attribution map is
`[batch, tgt_len, src_len]` with `map[b, t, s]` = attribution of target token `t` to source token `s`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Operators combine the logits S of one head with the map A (broadcast over heads), as in the paper.
INJECTION_OPERATORS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None] = {
    "none": None,
    "add": lambda scores, attribution: scores + attribution,
    "multiply": lambda scores, attribution: scores * attribution,
    "average": lambda scores, attribution: (scores + attribution) / 2,
    "replace": lambda scores, attribution: attribution.expand_as(scores),
    # No map enters the attention: the selected cross-attention is pulled toward the map's rows by a training loss
    # (`supervision_loss`), so the student needs no map at test time (supervised attention).
    "supervise": None,
}
MAP_FREE_OPERATORS = ("none", "supervise")  # students that take no map at test time

_EPS = 1e-12


def _masked_fill_invalid(values: torch.Tensor, source_mask: torch.Tensor, fill: float) -> torch.Tensor:
    return values.masked_fill(~source_mask, fill)


def _row_sum(attribution: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
    magnitude = _masked_fill_invalid(attribution.abs(), source_mask, 0.0)
    return attribution / magnitude.sum(-1, keepdim=True).clamp_min(_EPS)


def _row_max(attribution: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
    magnitude = _masked_fill_invalid(attribution.abs(), source_mask, 0.0)
    return attribution / magnitude.amax(-1, keepdim=True).clamp_min(_EPS)


def _row_minmax(attribution: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
    low = _masked_fill_invalid(attribution, source_mask, float("inf")).amin(-1, keepdim=True)
    high = _masked_fill_invalid(attribution, source_mask, float("-inf")).amax(-1, keepdim=True)
    return (attribution - low) / (high - low).clamp_min(_EPS)


def _row_softmax(attribution: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
    return _masked_fill_invalid(attribution, source_mask, float("-inf")).softmax(-1)


# Normalisations act on each target row over the valid (non-padding) source positions only.
MAP_NORMALIZATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None] = {
    "none": None,
    "row_sum": _row_sum,
    "row_max": _row_max,
    "row_minmax": _row_minmax,
    "row_softmax": _row_softmax,
}


def check_choice(kind: str, value: str, choices: dict) -> None:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of {sorted(choices)}")


def check_indices(kind: str, indices: list[int] | None, limit: int) -> None:
    """`indices` must be None (= all) or distinct ints in [0, limit)."""
    if indices is None:
        return
    bad = [i for i in indices if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < limit]
    if bad or len(set(indices)) != len(indices) or not indices:
        raise ValueError(f"{kind} must be distinct indices in [0, {limit}) or None for all; got {indices}")


def check_attribution_map(
    attribution_map: torch.Tensor,
    batch_size: int,
    source_length: int,
    attribution_map_mask: torch.Tensor | None = None,
) -> None:
    """Raise a `ValueError` naming the problem before any compute: wrong rank, batch, source length or non-finite."""
    if not isinstance(attribution_map, torch.Tensor):
        raise ValueError(
            f"attribution_map must be a torch.Tensor [batch, tgt_len, src_len], got {type(attribution_map)}"
        )
    if attribution_map.dim() != 3:
        raise ValueError(
            f"attribution_map must have shape [batch, tgt_len, src_len], got {tuple(attribution_map.shape)}"
        )
    if not attribution_map.is_floating_point():
        raise ValueError(f"attribution_map must be a floating point tensor, got {attribution_map.dtype}")
    got_batch, _, got_source = attribution_map.shape
    if got_batch != batch_size:
        raise ValueError(f"attribution_map has batch size {got_batch} but the inputs have {batch_size}")
    if got_source != source_length:
        raise ValueError(
            f"attribution_map has {got_source} source positions but input_ids has {source_length}: "
            "maps must be padded like the source (one column per input token, </s> included)"
        )
    if not torch.isfinite(attribution_map).all():
        bad = (~torch.isfinite(attribution_map)).nonzero()[0].tolist()
        raise ValueError(f"attribution_map contains NaN or inf (first at [batch, tgt, src] = {bad})")
    if attribution_map_mask is not None and tuple(attribution_map_mask.shape) != tuple(attribution_map.shape[:2]):
        raise ValueError(
            f"attribution_map_mask must have shape [batch, tgt_len] = {tuple(attribution_map.shape[:2])}, "
            f"got {tuple(attribution_map_mask.shape)}"
        )


def select_map_rows(
    attribution_map: torch.Tensor,
    attribution_map_mask: torch.Tensor | None,
    past_length: int,
    query_length: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the map for decoder positions `past_length .. past_length + query_length - 1`.

    Returns the rows `[batch, query_length, src_len]` and a boolean `[batch, query_length]` telling which rows
    exist. Policy: a decoder step beyond the map's last row (or a row masked out by `attribution_map_mask`)
    gets no injection, its logits stay as the model computed them.
    """
    batch_size, map_length, source_length = attribution_map.shape
    rows = attribution_map.new_zeros(batch_size, query_length, source_length)
    present = torch.zeros(batch_size, query_length, dtype=torch.bool, device=attribution_map.device)
    available = max(0, min(query_length, map_length - past_length))
    if available:
        rows[:, :available] = attribution_map[:, past_length : past_length + available]
        if attribution_map_mask is None:
            present[:, :available] = True
        else:
            present[:, :available] = attribution_map_mask[:, past_length : past_length + available].bool()
    return rows, present


def normalize_map(attribution: torch.Tensor, source_mask: torch.Tensor | None, normalization: str) -> torch.Tensor:
    """Apply a named row normalisation; `source_mask` is `[batch, src_len]` (True = real token) or None."""
    function = MAP_NORMALIZATIONS[normalization]
    if function is None:
        return attribution
    if source_mask is None:
        source_mask = torch.ones(
            attribution.shape[0], attribution.shape[-1], dtype=torch.bool, device=attribution.device
        )
    return function(attribution, source_mask[:, None, :].bool())


def inject(
    scores: torch.Tensor,
    attribution: torch.Tensor,
    rows_present: torch.Tensor,
    operator: str,
    head_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Combine logits `[B, H, T, S]` with map rows `[B, T, S]` on the selected heads and present rows only."""
    combine = INJECTION_OPERATORS[operator]
    if combine is None:
        return scores
    combined = combine(scores, attribution[:, None].to(scores.dtype))
    selected = rows_present[:, None, :, None]
    if head_mask is not None:
        selected = selected & head_mask[None, :, None, None]
    return torch.where(selected, combined, scores)


# ================================================================================================ map rows as targets
def attribution_rows_to_distributions(attribution: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
    """Map rows `[B, T, S]` as distributions over the real source tokens (`source_mask` `[B, S]`): the target of
    the Attributor and of `supervise`. A row with negative values is shifted by its minimum first; an all-zero row
    becomes uniform. Scale-free: a row multiplied by any positive number gives the same distribution."""
    valid = source_mask[:, None, :].bool().expand_as(attribution)
    rows = attribution.masked_fill(~valid, 0.0)
    row_min = attribution.masked_fill(~valid, float("inf")).amin(-1, keepdim=True)
    rows = torch.where((row_min < 0) & valid, rows - row_min, rows).clamp_min(0.0)
    total = rows.sum(-1, keepdim=True)
    uniform = valid.float() / valid.sum(-1, keepdim=True).clamp_min(1)
    return torch.where(total > 0, rows / total.clamp_min(1e-30), uniform)


def attribution_kl(
    target: torch.Tensor, log_probs: torch.Tensor, source_mask: torch.Tensor, row_mask: torch.Tensor | None
) -> torch.Tensor:
    """Mean over valid target rows of KL(target row || predicted row); `target` is already a distribution."""
    valid = source_mask[:, None, :].bool().expand_as(target)
    terms = torch.xlogy(target, target) - target * log_probs.masked_fill(~valid, 0.0)
    per_row = terms.masked_fill(~valid, 0.0).sum(-1)
    if row_mask is None:
        return per_row.mean()
    row_mask = row_mask.to(per_row.dtype)
    return (per_row * row_mask).sum() / row_mask.sum().clamp_min(1.0)


def supervision_loss(
    cross_attentions: list[torch.Tensor],
    target: torch.Tensor,
    source_mask: torch.Tensor,
    rows_present: torch.Tensor,
    head_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Mean over the supervised layers of KL(map row || the selected heads' mean attention row), over present rows.

    The heads' mean is supervised, not every head: the heads may split the work between them, which constrains the
    student less (a probe on the planted task: supervising one head trained worse than the mean of all heads).
    `cross_attentions`: one `[B, H, T, S]` softmax per supervised layer; `target`: `[B, T, S]` distributions."""
    losses = []
    for weights in cross_attentions:
        if head_mask is not None:
            weights = weights[:, head_mask]
        log_weights = weights.float().mean(1).clamp_min(1e-12).log()  # [B, T, S]
        losses.append(attribution_kl(target, log_weights, source_mask, rows_present))
    return torch.stack(losses).mean()
