"""Model randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): a method whose maps barely change
when the teacher's weights are replaced by random ones explains the input, not the model.

The cascade randomises a Marian or mBART teacher from the output side down, cumulatively (`RANDOMISATION_STAGES`);
each stage re-initialises its modules with the model's own `_init_weights` (the config's `init_std`), seeded, on a
copy of the teacher. The similarity of a sentence's trained and randomised maps is the mean over target rows of the
Spearman rank correlation of the row (over source pieces, `</s>` included): a row is one explanation of one
prediction p(y_t), ranked over the source as deletion curves and the students' row normalisations use it, and the
flattened map would also reward row scales (gradient norms per target token) that say nothing about the source.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from agkd.datasets_scripts.attribution.engines import attribute
from agkd.datasets_scripts.attribution.teacher import Teacher

logger = logging.getLogger(__name__)

# Cumulative stages, top down; each re-initialises what the previous did and more (modules of `model.base_model`):
# - decoder_top: the last decoder layer and the decoder's final layer norm (mBART; Marian has none);
# - decoder: every decoder layer, the decoder's embedding layer norm and learned positions (mBART);
# - decoder+encoder: also every encoder layer, the encoder's final and embedding layer norms and learned positions;
# - full: every parameter, also the shared token embeddings, which the LM head is tied to (so the output projection
#   cannot be randomised apart from the input embeddings) and `final_logits_bias`. Marian's sinusoidal positions are
#   a fixed function, recreated unchanged.
RANDOMISATION_STAGES = ("decoder_top", "decoder", "decoder+encoder", "full")
FULL_STAGE = "full"

# A method fails the check when its mean similarity under full randomisation is at least this (fixed before any real
# data was looked at): a rank correlation of 0.5 means the random model still orders each row's source pieces mostly
# as the trained one does, i.e. the map is mostly explained by the input and the architecture, not by what the
# teacher learned.
SANITY_THRESHOLD = 0.5


def _stage_modules(model, stage: str) -> list[torch.nn.Module]:
    """The modules that `stage` re-initialises (with their submodules)."""
    if stage not in RANDOMISATION_STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(RANDOMISATION_STAGES)}")
    if stage == FULL_STAGE:
        return [model]
    base = model.base_model
    parts = ["decoder"] + (["encoder"] if stage == "decoder+encoder" else [])
    modules = [base.decoder.layers[-1], getattr(base.decoder, "layer_norm", None)]
    if stage != "decoder_top":
        for part in parts:
            stack = getattr(base, part)
            modules += [*stack.layers, getattr(stack, "layer_norm", None), getattr(stack, "layernorm_embedding", None)]
            if stack.embed_positions.weight.requires_grad:  # learned positions (mBART), not Marian's sinusoids
                modules.append(stack.embed_positions)
    return [m for m in modules if m is not None]


def randomised_teacher(teacher: Teacher, stage: str, seed: int) -> Teacher:
    """A copy of `teacher` whose model has the modules of `stage` re-initialised (`_init_weights`, seeded by `seed`);
    the trained teacher is left as it was."""
    model = copy.deepcopy(teacher.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            for top in _stage_modules(model, stage):
                for module in top.modules():
                    for param in module.parameters(recurse=False):
                        param._is_hf_initialized = False  # loaded weights are flagged; the init functions skip those
                    model._init_weights(module)
    clone = copy.copy(teacher)
    clone.model = model.eval()
    clone.inseq_models, clone.compat_reports = {}, {}
    return clone


def row_spearman(trained: np.ndarray, randomised: np.ndarray) -> float:
    """Mean over target rows of the Spearman correlation of the two maps' rows. A row constant in the trained map has
    no ranking to keep and is left out (NaN when no row is left); a row that randomisation made constant (e.g. value
    zeroing's effects all under its threshold) keeps none of the ranking and scores 0."""
    trained, randomised = np.asarray(trained, dtype=np.float64), np.asarray(randomised, dtype=np.float64)
    if trained.shape != randomised.shape:
        raise ValueError(f"maps of shapes {trained.shape} and {randomised.shape}")
    values = [
        spearmanr(a, b).statistic if np.ptp(b) > 0 else 0.0
        for a, b in zip(trained, randomised, strict=True)
        if np.ptp(a) > 0
    ]
    return float(np.mean(values)) if values else float("nan")


def randomisation_similarity(
    teacher: Teacher,
    method: str,
    rows: list[dict],
    stages: tuple[str, ...] = RANDOMISATION_STAGES,
    engine: str = "fast",
    ig_steps: int | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per stage, per sentence `row_spearman` of the trained teacher's map and the randomised teacher's map of the
    same pair (rows with id, source, target, target_kind, source_ids, target_ids). `seed` seeds the randomisation and
    the stochastic methods alike, so a method's draws replay on both teachers."""
    trained = [r["attribution"] for r in attribute(engine, teacher, method, rows, seed=seed, ig_steps=ig_steps)]
    out = {}
    for stage in tqdm(stages, desc=f"randomisation {method}", leave=False):
        random_teacher = randomised_teacher(teacher, stage, seed)
        maps = [r["attribution"] for r in attribute(engine, random_teacher, method, rows, seed=seed, ig_steps=ig_steps)]
        out[stage] = np.array([row_spearman(a, b) for a, b in zip(trained, maps, strict=True)])
        logger.info("%s %s: mean Spearman %.3f over %d pairs", method, stage, np.nanmean(out[stage]), len(rows))
    return out


def fails_sanity(similarity: dict[str, np.ndarray]) -> bool:
    """Whether the maps barely change under full randomisation: mean similarity >= `SANITY_THRESHOLD`."""
    return bool(np.nanmean(similarity[FULL_STAGE]) >= SANITY_THRESHOLD)


__all__ = [
    "FULL_STAGE",
    "RANDOMISATION_STAGES",
    "SANITY_THRESHOLD",
    "fails_sanity",
    "randomisation_similarity",
    "randomised_teacher",
    "row_spearman",
]
