"""Faithfulness of attribution maps on the teacher that made them: deletion and insertion curves, scored as AOPC
against a random order (`training/metrics/attribution_aopc`, the Hub metric whose pure functions are imported here).

For a sentence with T target pieces, row t of a map orders the source pieces that may be removed (every piece but
the tokenizer's special ones: `</s>`, mBART's language code; `special_ids`); for each fraction k the top-ceil(k * S')
of the S' removable pieces are removed (deletion) or kept alone (insertion), and the teacher-forced log p(y_t) is read
from one forward pass of the perturbed source. Two removals (`REMOVALS`): the piece becomes `<unk>`, or it is masked
out of attention. Each row has its own order, so a sentence needs up to 2 * T * K perturbed sources per order;
identical perturbed sources (rows that share a top set, deletion and insertion that coincide) are run once, each with
the target prefix up to the last row that needs it, and the rows' log p are gathered from that pass. Rows whose label
is a special token (`</s>`, mBART's forced language code) are not scored.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random

import numpy as np
import torch
from tqdm.auto import tqdm

from agkd.datasets_scripts.attribution.teacher import Teacher, forced_states, label_log_probs, make_batch
from agkd.training.metrics.attribution_aopc.attribution_aopc import CURVE_FIELDS, aopc_scores

logger = logging.getLogger(__name__)

# Fractions of the removable source pieces removed or kept: dense at the top of the order, where a faithful map and a
# random one differ most, and stopping at half, beyond which both leave the source mostly destroyed (or whole).
FRACTIONS = (0.1, 0.2, 0.3, 0.5)

# What removing a source piece means (review M4). `unk`: the piece becomes the tokenizer's `<unk>` at the same position,
# the attention mask unchanged; positions are kept, so no other piece's positional embedding shifts. It is also the
# token the gradient methods' baselines put there (`fast_attribution.baseline_ids`), which couples this removal to
# integrated gradients, DeepLIFT and GradientSHAP, and `<unk>` is an embedding the teacher rarely trained. `mask`: the
# piece's attention mask is 0 (its id and every position unchanged), so no encoder or cross-attention reads it: a
# removal that is no method's baseline and puts no untrained embedding in the input. Both are measured and reported;
# `PRIMARY_REMOVAL` is the one the table's first columns and the rank agreement read (fixed before the mask removal
# was measured, as the earlier yardstick was).
REMOVALS = ("unk", "mask")
PRIMARY_REMOVAL = "unk"
REPLACEMENT = "unk_token"  # the tokenizer attribute whose id a piece becomes under the `unk` removal

# The measurement's version, in the triangulation cache's key (`triangulate.part_constants`): raised whenever what a
# curve measures changes in code rather than in a constant above. 2 (2026-12-05): special tokens never removed nor
# scored, ties by the row's random order, log p from log_softmax, the mask removal.
VERSION = 2

# Source/target pairs per forward pass: perturbed sources of one sentence share its length, so batches barely pad.
BATCH_SIZE = 64


def aopc_key(curve: str, target_kind: str, removal: str) -> str:
    """The name of an AOPC figure (table row key, npz prefix): `aopc_deletion` for the primary reading (reference
    targets, the primary removal), `aopc_deletion_teacher_mask` for the teacher's own targets with the mask removal."""
    return (f"aopc_{curve}" + ("" if target_kind == "reference" else f"_{target_kind}")
            + ("" if removal == PRIMARY_REMOVAL else f"_{removal}"))


def replacement_id(teacher: Teacher) -> int:
    """The id a removed source piece becomes under the `unk` removal (`REPLACEMENT`)."""
    return getattr(teacher.tokenizer, f"{REPLACEMENT}_id")


def special_ids(teacher: Teacher) -> set[int]:
    """Ids never removed from the source and whose label rows are not scored (review M9, L3): the tokenizer's special
    tokens (`</s>`, `<pad>`, mBART's language codes), not `<unk>`, which stands for a real (unknown) word."""
    return set(teacher.tokenizer.all_special_ids) - {teacher.tokenizer.unk_token_id}


def removable_positions(source_ids: list[int], special: set[int]) -> list[int]:
    """The source positions a curve may remove: every piece that is not a special token."""
    return [s for s, i in enumerate(source_ids) if i not in special]


def top_order(row: np.ndarray, tie_order: np.ndarray) -> np.ndarray:
    """Positions by descending attribution (the raw value: a signed map's most positive first); equal scores are
    ordered by `tie_order` (the row's own seeded random order, `random_orders`), never by source position (review
    L1): a map with no preference among some pieces is then scored as a random order among them, and a constant map
    is exactly the random order (AOPC 0)."""
    row = np.asarray(row, dtype=np.float64)
    rank = np.empty(len(tie_order), dtype=np.int64)
    rank[np.asarray(tie_order, dtype=np.int64)] = np.arange(len(tie_order))
    return np.lexsort((rank, -row))


def random_orders(example_id: str, n_target: int, n_source: int, seed: int) -> np.ndarray:
    """[T, S'] one seeded permutation per target row, drawn from the sentence id and seed only: every method of a
    sentence is compared against the same random orders."""
    digest = hashlib.sha256(f"{example_id}\0{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return np.stack([rng.permutation(n_source) for _ in range(n_target)]) if n_source else np.zeros((n_target, 0), int)


def evaluation_subset(n_rows: int, n: int | None, seed: int) -> list[int]:
    """Positions of a seeded random sample of `n` of `n_rows` evaluation pairs, in evaluation order (review L2: the
    splits are in book order, so the first N pairs are a few chapters); all positions when `n` is None or too big."""
    if n is None or n >= n_rows:
        return list(range(n_rows))
    return sorted(random.Random(seed).sample(range(n_rows), n))


def n_top(fraction: float, n_source: int) -> int:
    """How many pieces fraction k of S' pieces is: ceil, so the smallest fraction removes at least one piece."""
    return min(n_source, math.ceil(fraction * n_source - 1e-9))


def _perturbed(source_ids: list[int], removed: set[int], removal: str, unk: int) -> tuple[tuple, tuple]:
    """(ids, attention mask) of the source with the positions `removed` removed by `removal`."""
    if removal == "unk":
        return tuple(unk if s in removed else i for s, i in enumerate(source_ids)), (1,) * len(source_ids)
    return tuple(source_ids), tuple(0 if s in removed else 1 for s in range(len(source_ids)))


def _perturbations(source_ids, removable, orders, scored, fractions, removal, unk) -> tuple[list, list]:
    """Per (row t, fraction k) the deletion and the insertion source of `orders[t]` ([T][K] lists of (ids, mask));
    rows not scored get None."""
    deletion, insertion = [], []
    for order, keep in zip(orders, scored, strict=True):
        if not keep:
            deletion.append(None)
            insertion.append(None)
            continue
        del_row, ins_row = [], []
        for fraction in fractions:
            top = {removable[j] for j in order[: n_top(fraction, len(removable))].tolist()}
            del_row.append(_perturbed(source_ids, top, removal, unk))
            ins_row.append(_perturbed(source_ids, set(removable) - top, removal, unk))
        deletion.append(del_row)
        insertion.append(ins_row)
    return deletion, insertion


def _log_probs(teacher: Teacher, needs: dict[tuple, set[int]], target_ids: list[int], batch_size: int) -> dict:
    """{(source, t): log p(y_t)} for each distinct source (ids, attention mask) and the rows t it is needed for, from
    log_softmax (review L4). Causal decoding makes log p(y_t) depend on the target prefix up to t only, so a source
    runs with the prefix its last needed row asks for (sources sorted by it, so batches barely pad), and the
    vocabulary projection runs at the needed rows only."""
    out = {}
    sources = sorted(needs, key=lambda src: max(needs[src]))
    for start in range(0, len(sources), batch_size):
        chunk = sources[start : start + batch_size]
        prefixes = [target_ids[: max(needs[src]) + 1] for src in chunk]
        batch = make_batch(teacher.model, [list(ids) for ids, _ in chunk], prefixes)
        for b, (_, mask) in enumerate(chunk):
            batch.src_mask[b, : len(mask)] = torch.tensor(mask, device=batch.src_mask.device)
        picks = [(b, t) for b, src in enumerate(chunk) for t in sorted(needs[src])]
        index_b, index_t = torch.tensor(picks, device=batch.src.device).T
        with torch.no_grad():
            hidden = forced_states(teacher.model, batch)  # [B, T_prefix, d]
            logp = label_log_probs(
                teacher.model, hidden[index_b, index_t][:, None], batch.labels[index_b, index_t][:, None]
            )
        values = logp[:, 0].double().cpu().numpy()
        out.update({(chunk[b], t): value for (b, t), value in zip(picks, values.tolist(), strict=True)})
    return out


def _gather(logp: dict, perturbed: list, n_fractions: int) -> list[list[float]]:
    """[T][K] log p(y_t) of row t's perturbed source at fraction k (NaN in rows that are not scored)."""
    return [[math.nan] * n_fractions if row is None else [logp[src, t] for src in row]
            for t, row in enumerate(perturbed)]


def deletion_insertion_curves(
    teacher: Teacher,
    rows: list[dict],
    maps: list,
    fractions: tuple[float, ...] = FRACTIONS,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    random_curves: list[dict] | None = None,
    removal: str = PRIMARY_REMOVAL,
) -> list[dict]:
    """Per sentence (rows with id, source_ids, target_ids; maps [T][S] in the same order): log p(y_t) on the full
    source (`full` [T]), with every removable piece removed (`empty` [T]), which rows are scored (`scored` [T]: not a
    special label), and [T][K] curves `deletion`, `insertion` (the map's order, ties by the random order) and
    `random_deletion`, `random_insertion` (`random_orders` with `seed`), NaN in rows not scored. `removal`: one of
    `REMOVALS`. `random_curves`: a previous call's output over the same rows, fractions, seed and removal, whose
    random-order curves (the same for every method) are reused instead of recomputed."""
    if len(rows) != len(maps):
        raise ValueError(f"{len(rows)} rows but {len(maps)} maps")
    if removal not in REMOVALS:
        raise ValueError(f"unknown removal {removal!r}; choose one of {', '.join(REMOVALS)}")
    if random_curves is not None:
        if [c["id"] for c in random_curves] != [r["id"] for r in rows]:
            raise ValueError("random_curves were computed on other rows")
        if any(tuple(c["fractions"]) != tuple(fractions) or c["seed"] != seed or c["removal"] != removal
               for c in random_curves):
            raise ValueError("random_curves were computed with other fractions, seed or removal")
    unk, special = replacement_id(teacher), special_ids(teacher)
    curves = []
    for i, (row, amap) in enumerate(tqdm(list(zip(rows, maps, strict=True)), desc=f"deletion/insertion ({removal})",
                                         leave=False)):
        source_ids, target_ids = list(row["source_ids"]), list(row["target_ids"])
        amap = np.asarray(amap, dtype=np.float64)
        if amap.shape != (len(target_ids), len(source_ids)):
            raise ValueError(f"{row['id']}: map {amap.shape} for {len(target_ids)} x {len(source_ids)} pieces")
        removable = removable_positions(source_ids, special)
        scored = [t not in special for t in target_ids]
        ties = random_orders(row["id"], len(target_ids), len(removable), seed)
        orders = {"": np.stack([top_order(r[removable], tie) for r, tie in zip(amap, ties, strict=True)])}
        if random_curves is None:
            orders["random_"] = ties
        full = (tuple(source_ids), (1,) * len(source_ids))
        empty = _perturbed(source_ids, set(removable), removal, unk)
        perturbed = {}
        for prefix, order in orders.items():
            perturbed[f"{prefix}deletion"], perturbed[f"{prefix}insertion"] = _perturbations(
                source_ids, removable, order, scored, fractions, removal, unk
            )
        needs = {full: set(range(len(target_ids))), empty: set(range(len(target_ids)))}
        for grid in perturbed.values():
            for t, src_row in enumerate(grid):
                for src in src_row or ():
                    needs.setdefault(src, set()).add(t)
        logp = _log_probs(teacher, needs, target_ids, batch_size)
        curve = {
            "id": row["id"],
            "fractions": list(fractions),
            "seed": seed,
            "removal": removal,
            "scored": scored,
            "full": [logp[full, t] for t in range(len(target_ids))],
            "empty": [logp[empty, t] for t in range(len(target_ids))],
        }
        curve |= {name: _gather(logp, grid, len(fractions)) for name, grid in perturbed.items()}
        if random_curves is not None:
            curve |= {name: random_curves[i][name] for name in ("random_deletion", "random_insertion")}
        curves.append(curve)
    return curves


def aopc(curves: list[dict]) -> dict:
    """AOPC deletion and insertion against the random order (nats, higher = more faithful), corpus means and per
    sentence values, by the metric's own function (`attribution_aopc.aopc_scores`)."""
    return aopc_scores(*([c[name] for c in curves] for name in ("full", "empty", *CURVE_FIELDS)),
                       scored=[c["scored"] for c in curves])


__all__ = [
    "BATCH_SIZE",
    "FRACTIONS",
    "PRIMARY_REMOVAL",
    "REMOVALS",
    "REPLACEMENT",
    "VERSION",
    "aopc",
    "deletion_insertion_curves",
    "evaluation_subset",
    "n_top",
    "random_orders",
    "removable_positions",
    "replacement_id",
    "special_ids",
    "top_order",
]
