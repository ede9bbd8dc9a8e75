"""Faithfulness of attribution maps on the teacher that made them: deletion and insertion curves, scored as AOPC
against a random order (`training/metrics/attribution_aopc`, the Hub metric whose pure functions are imported here).

For a sentence with T target pieces and S' source pieces before `</s>`, row t of a map orders the source pieces; for
each fraction k the top-ceil(k * S') of that order are removed (deletion) or kept alone (insertion), and the
teacher-forced log p(y_t) is read from one forward pass of the perturbed source. Each row has its own order, so a
sentence needs up to 2 * T * K perturbed sources per order; identical perturbed sources (rows that share a top set,
deletion and insertion that coincide) are run once, each with the target prefix up to the last row that needs it,
and the rows' log p are gathered from that pass.
"""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np
import torch
from tqdm.auto import tqdm

from agkd.datasets_scripts.attribution.teacher import Teacher, forced_states, label_probs, make_batch
from agkd.training.metrics.attribution_aopc.attribution_aopc import CURVE_FIELDS, aopc_scores

logger = logging.getLogger(__name__)

# Fractions of the source pieces (before `</s>`) removed or kept: dense at the top of the order, where a faithful map
# and a random one differ most, and stopping at half, beyond which both leave the source mostly destroyed (or whole).
FRACTIONS = (0.1, 0.2, 0.3, 0.5)

# What a removed source piece becomes: the tokenizer's `<unk>` at the same position, `</s>` kept and the attention
# mask unchanged. It is the token the gradient methods' baselines put there (`fast_attribution.baseline_ids`), so
# "removed" means the same for the yardstick and for those methods, and keeping the length keeps every other piece at
# its position (no shifted positional embeddings). The same replacement serves every method, attention included.
REPLACEMENT = "unk_token"

# Source/target pairs per forward pass: perturbed sources of one sentence share its length, so batches barely pad.
BATCH_SIZE = 64

# log p floor: `label_probs` gives float32 probabilities, whose log is finite down to the smallest normal float32.
LOG_P_FLOOR = math.log(torch.finfo(torch.float32).tiny)


def replacement_id(teacher: Teacher) -> int:
    """The id a removed source piece becomes (`REPLACEMENT`)."""
    return getattr(teacher.tokenizer, f"{REPLACEMENT}_id")


def top_order(row: np.ndarray) -> np.ndarray:
    """Source positions by descending attribution (the raw value: a signed map's most positive first); ties keep
    source order (a stable sort), so equal scores never depend on the sort's internals."""
    return np.argsort(-np.asarray(row, dtype=np.float64), kind="stable")


def random_orders(example_id: str, n_target: int, n_source: int, seed: int) -> np.ndarray:
    """[T, S'] one seeded permutation per target row, drawn from the sentence id and seed only: every method of a
    sentence is compared against the same random orders."""
    digest = hashlib.sha256(f"{example_id}\0{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return np.stack([rng.permutation(n_source) for _ in range(n_target)]) if n_source else np.zeros((n_target, 0), int)


def n_top(fraction: float, n_source: int) -> int:
    """How many pieces fraction k of S' pieces is: ceil, so the smallest fraction removes at least one piece."""
    return min(n_source, math.ceil(fraction * n_source - 1e-9))


def _perturbations(source_ids: list[int], orders: np.ndarray, fractions, unk: int) -> tuple[list, list]:
    """Per (row t, fraction k) the deletion and the insertion source of `orders[t]` ([T][K] lists of id tuples)."""
    n_source = len(source_ids) - 1  # `</s>` last, never removed
    deletion, insertion = [], []
    for order in orders:
        del_row, ins_row = [], []
        for fraction in fractions:
            top = set(order[: n_top(fraction, n_source)].tolist())
            del_row.append(tuple(unk if s in top else i for s, i in enumerate(source_ids[:-1])) + (source_ids[-1],))
            ins_row.append(tuple(i if s in top else unk for s, i in enumerate(source_ids[:-1])) + (source_ids[-1],))
        deletion.append(del_row)
        insertion.append(ins_row)
    return deletion, insertion


def _log_probs(teacher: Teacher, needs: dict[tuple, set[int]], target_ids: list[int], batch_size: int) -> dict:
    """{(source, t): log p(y_t)} for each distinct source and the rows t it is needed for. Causal decoding makes
    log p(y_t) depend on the target prefix up to t only, so a source runs with the prefix its last needed row asks
    for (sources sorted by it, so batches barely pad), and the vocabulary projection runs at the needed rows only."""
    out = {}
    sources = sorted(needs, key=lambda src: max(needs[src]))
    for start in range(0, len(sources), batch_size):
        chunk = sources[start : start + batch_size]
        batch = make_batch(teacher.model, [list(s) for s in chunk], [target_ids[: max(needs[s]) + 1] for s in chunk])
        picks = [(b, t) for b, src in enumerate(chunk) for t in sorted(needs[src])]
        index_b, index_t = torch.tensor(picks, device=batch.src.device).T
        with torch.no_grad():
            hidden = forced_states(teacher.model, batch)  # [B, T_prefix, d]
            p = label_probs(teacher.model, hidden[index_b, index_t][:, None], batch.labels[index_b, index_t][:, None])
        logp = p[:, 0].double().log().clamp_min(LOG_P_FLOOR).cpu().numpy()
        out.update({(chunk[b], t): value for (b, t), value in zip(picks, logp.tolist(), strict=True)})
    return out


def _gather(logp: dict, perturbed: list[list[tuple]]) -> list[list[float]]:
    """[T][K] log p(y_t) of row t's perturbed source at fraction k."""
    return [[logp[src, t] for src in row] for t, row in enumerate(perturbed)]


def deletion_insertion_curves(
    teacher: Teacher,
    rows: list[dict],
    maps: list,
    fractions: tuple[float, ...] = FRACTIONS,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    random_curves: list[dict] | None = None,
) -> list[dict]:
    """Per sentence (rows with id, source_ids, target_ids; maps [T][S] in the same order): log p(y_t) on the full
    source (`full` [T]), with every piece but `</s>` removed (`empty` [T]), and [T][K] curves `deletion`,
    `insertion` (the map's order) and `random_deletion`, `random_insertion` (`random_orders` with `seed`).
    `random_curves`: a previous call's output over the same rows, fractions and seed, whose random-order curves
    (the same for every method) are reused instead of recomputed."""
    if len(rows) != len(maps):
        raise ValueError(f"{len(rows)} rows but {len(maps)} maps")
    if random_curves is not None:
        if [c["id"] for c in random_curves] != [r["id"] for r in rows]:
            raise ValueError("random_curves were computed on other rows")
        if any(tuple(c["fractions"]) != tuple(fractions) or c["seed"] != seed for c in random_curves):
            raise ValueError("random_curves were computed with other fractions or seed")
    unk = replacement_id(teacher)
    curves = []
    for i, (row, amap) in enumerate(tqdm(list(zip(rows, maps, strict=True)), desc="deletion/insertion", leave=False)):
        source_ids, target_ids = list(row["source_ids"]), list(row["target_ids"])
        amap = np.asarray(amap, dtype=np.float64)
        if amap.shape != (len(target_ids), len(source_ids)):
            raise ValueError(f"{row['id']}: map {amap.shape} for {len(target_ids)} x {len(source_ids)} pieces")
        if source_ids[-1] != teacher.model.config.eos_token_id:
            raise ValueError(f"{row['id']}: the source does not end with </s>")
        n_source = len(source_ids) - 1
        orders = {"": np.stack([top_order(r[:n_source]) for r in amap])}
        if random_curves is None:
            orders["random_"] = random_orders(row["id"], len(target_ids), n_source, seed)
        empty = (unk,) * n_source + (source_ids[-1],)
        perturbed = {}
        for prefix, order in orders.items():
            perturbed[f"{prefix}deletion"], perturbed[f"{prefix}insertion"] = _perturbations(
                source_ids, order, fractions, unk
            )
        needs = {tuple(source_ids): set(range(len(target_ids))), empty: set(range(len(target_ids)))}
        for grid in perturbed.values():
            for t, src_row in enumerate(grid):
                for src in src_row:
                    needs.setdefault(src, set()).add(t)
        logp = _log_probs(teacher, needs, target_ids, batch_size)
        curve = {
            "id": row["id"],
            "fractions": list(fractions),
            "seed": seed,
            "full": [logp[tuple(source_ids), t] for t in range(len(target_ids))],
            "empty": [logp[empty, t] for t in range(len(target_ids))],
        }
        curve |= {name: _gather(logp, grid) for name, grid in perturbed.items()}
        if random_curves is not None:
            curve |= {name: random_curves[i][name] for name in ("random_deletion", "random_insertion")}
        curves.append(curve)
    return curves


def aopc(curves: list[dict]) -> dict:
    """AOPC deletion and insertion against the random order (nats, higher = more faithful), corpus means and per
    sentence values, by the metric's own function (`attribution_aopc.aopc_scores`)."""
    return aopc_scores(*([c[name] for c in curves] for name in ("full", "empty", *CURVE_FIELDS)))


__all__ = [
    "BATCH_SIZE",
    "FRACTIONS",
    "REPLACEMENT",
    "aopc",
    "deletion_insertion_curves",
    "n_top",
    "random_orders",
    "replacement_id",
    "top_order",
]
