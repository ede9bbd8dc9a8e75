"""The vocabulary of the dataset agkd-attributions: its config names, target kinds and row schema.

One config per `<teacher>.<pair>.<method>` (forced decoding on the gold reference, the paper's protocol, e.g.
`marian.de-en.saliency`) and `<teacher>.<pair>.<method>.teacher` (the teacher's own translation, the leakage-free
protocol); the controls of `attribution/methods.py` (`random`, `uniform`, `diagonal`, and the shuffled control
`<method>-shuffled` of each method, e.g. `marian.de-en.saliency-shuffled`) are configs too. The `uniform`
control holds the same pairs as every method, so it is the evaluation set: the no-map baseline student (method
`none`) trains on its rows and `agkd evaluate` scores on them.

Every row (`features()`, built by `map_row`): id, source, target, target_kind, source_tokens, target_tokens,
source_ids, target_ids, attribution ([T][S] float32: row t = target token t = labels[t], the final </s> included
(mBART: the target language code first); column s = source token s = input_ids[s], </s> included (mBART: the source
language code first)), and prob_check (max |p_engine - p_model| over the target tokens; null for controls).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TARGET_KINDS = ("reference", "teacher")
# The method name of the student trained without maps (it reads the pairs of EVALUATION_SET).
BASELINE = "none"
# The control config whose pairs (the same as every method's) the baseline trains on and the evaluation scores.
EVALUATION_SET = "uniform"


def config_name(teacher: str, pair: str, method: str, target_kind: str = "reference") -> str:
    """`marian.de-en.saliency` (reference) or `marian.de-en.saliency.teacher` (teacher translation)."""
    if target_kind not in TARGET_KINDS:
        raise ValueError(f"target kind {target_kind!r} not in {TARGET_KINDS}")
    return f"{teacher}.{pair}.{method}" + ("" if target_kind == "reference" else f".{target_kind}")


def evaluation_config(teacher: str, pair: str, target_kind: str = "reference") -> str:
    """The evaluation set's config: `<teacher>.<pair>.uniform[.teacher]`."""
    return config_name(teacher, pair, EVALUATION_SET, target_kind)


def features():
    """The `datasets.Features` of every config's rows."""
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "source": datasets.Value("string"),
            "target": datasets.Value("string"),
            "target_kind": datasets.Value("string"),
            "source_tokens": datasets.Sequence(datasets.Value("string")),
            "target_tokens": datasets.Sequence(datasets.Value("string")),
            "source_ids": datasets.Sequence(datasets.Value("int32")),
            "target_ids": datasets.Sequence(datasets.Value("int32")),
            "attribution": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
            "prob_check": datasets.Value("float32"),
        }
    )


def map_row(
    row: dict,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    attribution: np.ndarray,
    prob_check: float | None,
) -> dict:
    """The output row of one pair: `row` (id, source, target, target_kind, source_ids, target_ids) with its tokens,
    its map [T][S] and its probability self-check (None for controls)."""
    return {
        **row,
        "source_tokens": list(source_tokens),
        "target_tokens": list(target_tokens),
        "attribution": attribution.tolist(),
        "prob_check": None if prob_check is None else float(prob_check),
    }


__all__ = [
    "BASELINE",
    "EVALUATION_SET",
    "TARGET_KINDS",
    "config_name",
    "evaluation_config",
    "features",
    "map_row",
]
