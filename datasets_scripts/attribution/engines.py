"""The one entry point to attribution: `attribute(engine, teacher, method, rows, ...)`, used by `agkd extract`
(`extract_attributions.py`) and by the Space's maps of typed sentences (`space/app.py`).

- a control of `attribution_methods.CONTROLS` is built directly (no engine, `prob_check` null);
- engine `inseq` (the reference, `attribution/inseq_engine.py`) or `fast` (teacher-forced and batched, the same maps
  within 1e-4 relative, `attribution/fast_engine.py`) computes a method's maps.

Both engines return rows of the same schema (`attribution_configs.map_row`). `engine_for` says which engine computes
a method's maps: `fast` falls back to `inseq` for a method it refuses on a teacher (DeepLIFT on a model with ReLU-like
modules whose rescale rule it does not reproduce, a model whose embeddings it cannot reproduce), per method.
"""

from __future__ import annotations

import logging

from agkd.datasets_scripts.attribution import fast_engine as fast_attribution
from agkd.datasets_scripts.attribution.configs import map_row
from agkd.datasets_scripts.attribution.fast_engine import fast_batch_size
from agkd.datasets_scripts.attribution.inseq_engine import attribute_rows
from agkd.datasets_scripts.attribution.methods import CONTROLS, METHODS
from agkd.datasets_scripts.attribution.teacher import Teacher

logger = logging.getLogger(__name__)

ENGINES = ("inseq", "fast")
_warned: set[tuple[int, str]] = set()


def engine_for(engine: str, teacher: Teacher, method: str) -> str:
    """The engine that computes `method`'s maps of `teacher` when `engine` is asked for: the fast engine where it
    reproduces Inseq, else Inseq (said once per teacher and method, with the reason)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine != "fast" or method in CONTROLS:
        return engine
    reason = fast_attribution.refusal(teacher.model, method)
    if reason is None:
        return "fast"
    if (id(teacher.model), method) not in _warned:
        _warned.add((id(teacher.model), method))
        logger.warning("%s: %s; its maps come from Inseq", method, reason)
    return "inseq"


def default_batch_size(engine: str, method: str, device) -> int:
    """Pairs per call of an engine when `--batch_size` is not given: the registry's per-method Inseq batch, or the
    fast engine's per-method batch on that device (`fast_attribution.FAST_BATCH_SIZE`)."""
    if engine == "fast":
        return fast_batch_size(method, device)
    return METHODS[method].batch_size


def control_rows(teacher: Teacher, method: str, rows: list[dict], seed: int) -> list[dict]:
    """Rows of a control map (built from the pair's shape, id and seed)."""
    build = CONTROLS[method].build
    return [
        map_row(
            r,
            teacher.tokens(r["source_ids"]),
            teacher.tokens(r["target_ids"]),
            build(len(r["target_ids"]), len(r["source_ids"]), r["id"], seed),
            None,
        )
        for r in rows
    ]


def attribute(
    engine: str,
    teacher: Teacher,
    method: str,
    rows: list[dict],
    batch_size: int | None = None,
    seed: int = 0,
    ig_steps: int | None = None,
) -> list[dict]:
    """Maps of `rows` (each with id, source, target, target_kind, source_ids, target_ids) for a method or control,
    in input order. `batch_size` None: the engine's default for the method (`default_batch_size`); `seed` seeds the
    stochastic methods and the random control; `ig_steps` overrides integrated gradients' n_steps."""
    if method in CONTROLS:
        return control_rows(teacher, method, rows, seed)
    if engine == "fast":
        return fast_attribution.attribute_rows_fast(teacher, method, rows, batch_size, seed, ig_steps)
    if engine == "inseq":
        return attribute_rows(
            teacher, method, rows, batch_size or default_batch_size(engine, method, None), seed, ig_steps
        )
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "attribute", "control_rows", "default_batch_size", "engine_for"]
