"""The Inseq engine (`agkd extract --engine inseq`, the reference): attribution maps of a teacher with Inseq 0.7.1.

Each method runs through an Inseq wrapper of the teacher's model (one per method, probed and patched by
`attribution/inseq_compat.py`), in length-sorted batches. Maps are raw: Inseq's default aggregation functions with
`normalize=False`, as the authors (`aggregate(normalize=False)`), transposed to [T][S]. Every pair is self-checked:
Inseq's `probability` step score against a plain forward pass of the teacher (`Teacher.probabilities`), recorded as
the row's `prob_check`. Called through `engines.attribute`.
"""

from __future__ import annotations

import numpy as np

from agkd.datasets_scripts.attribution.configs import map_row
from agkd.datasets_scripts.attribution.inseq_compat import apply_compat
from agkd.datasets_scripts.attribution.methods import METHODS, method_arguments, target_layer_name
from agkd.datasets_scripts.attribution.teacher import Teacher, prob_deviation, seed_everything


def inseq_model(teacher: Teacher, method: str):
    """Inseq wrapper of the teacher's (shared) model for `method`, probed and patched by the compatibility layer;
    cached on the teacher, with the layer's report in `teacher.compat_reports[method]`."""
    if method not in teacher.inseq_models:
        import inseq

        kwargs = {}
        if method in METHODS and METHODS[method].layer_method:
            kwargs["target_layer"] = dict(teacher.model.named_modules())[target_layer_name(teacher.model)]
        wrapped = inseq.load_model(
            teacher.model, method, tokenizer=teacher.load_tokenizer(), device=str(teacher.device), **kwargs
        )
        teacher.compat_reports[method] = apply_compat(wrapped, enabled=teacher.compat).to_dict()
        teacher.inseq_models[method] = wrapped
    return teacher.inseq_models[method]


def attribute_rows(
    teacher: Teacher, method: str, rows: list[dict], batch_size: int, seed: int, ig_steps: int | None = None
) -> list[dict]:
    """Maps for `rows` (each with id, source, target, target_kind, source_ids, target_ids) with one Inseq method."""
    spec = METHODS[method]
    model = inseq_model(teacher, method)
    # Length-sorted batches waste less on padding; results are returned in input order.
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]["target_ids"]), len(rows[i]["source_ids"])))
    results: dict[int, dict] = {}
    seed_everything(seed)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = [rows[i] for i in idx]
        kwargs = method_arguments(method, ig_steps)
        if not spec.final_step:
            kwargs["step_scores"] = ["probability"]
        out = model.attribute(
            input_texts=[r["source"] for r in batch],
            generated_texts=[r["target"] for r in batch],
            attribute_target=spec.attribute_target,
            batch_size=len(batch),
            show_progress=False,
            **kwargs,
        )
        if spec.final_step:
            # Final-step methods reject step scores: take them from Inseq's dummy method on the same wrapper code
            # path, one pair per call (Inseq 0.7.1's dummy method crashes on batches whose targets end at
            # different steps: `remap_from_filtered` reads the shape of absent attributions).
            inseq_probs = [
                inseq_model(teacher, "dummy")
                .attribute(
                    input_texts=r["source"],
                    generated_texts=r["target"],
                    step_scores=["probability"],
                    show_progress=False,
                )
                .sequence_attributions[0]
                .step_scores["probability"]
                for r in batch
            ]
        else:
            inseq_probs = [sa.step_scores["probability"] for sa in out.sequence_attributions]
        model_probs = teacher.probabilities([r["source_ids"] for r in batch], [r["target_ids"] for r in batch])
        for i, r, sa, p_inseq, p_model in zip(
            idx, batch, out.sequence_attributions, inseq_probs, model_probs, strict=True
        ):
            source_ids = [t.id for t in sa.source]
            target = sa.target[sa.attr_pos_start : sa.attr_pos_end]
            target_ids = [t.id for t in target]
            if source_ids != r["source_ids"] or target_ids != r["target_ids"]:
                raise RuntimeError(f"{r['id']}: Inseq tokenised the pair differently from the teacher's tokenizer")
            agg = sa.aggregate(normalize=False).source_attributions  # [S, T]
            amap = np.nan_to_num(agg.T.float().numpy().astype(np.float32))  # [T, S]
            assert amap.shape == (len(target_ids), len(source_ids)), amap.shape
            results[i] = map_row(
                r,
                [t.token for t in sa.source],
                [t.token for t in target],
                amap,
                prob_deviation(p_inseq.float().numpy(), p_model),
            )
    return [results[i] for i in range(len(rows))]


__all__ = ["attribute_rows", "inseq_model"]
