"""Model randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): a method whose maps barely change
when the teacher's weights are replaced by random ones explains the input, not the model.

The cascade randomises a Marian or mBART teacher from the output side down, cumulatively (`RANDOMISATION_STAGES`);
each stage re-initialises its modules with the model's own `_init_weights` (the config's `init_std`), seeded, on a
copy of the teacher. The similarity of a sentence's trained and randomised maps is the mean over target rows of the
Spearman rank correlation of the row (over source pieces, `</s>` included): a row is one explanation of one
prediction p(y_t), ranked over the source as deletion curves and the students' row normalisations use it, and the
flattened map would also reward row scales (gradient norms per target token) that say nothing about the source.

A row that is constant in either map has no ranking to compare (degenerate): it is left out of the mean and counted,
and a method whose rows are mostly degenerate, or whose similarity is undefined, is `undetermined`, never a pass
(review M5). The verdict is taken at `DECISION_STAGE`, where every computation is random but the input embeddings
are the trained ones (review M6); `full` is reported beside it.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from agkd.datasets_scripts.attribution.engines import attribute, engine_for
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
# The stage whose similarity decides (review M6): every layer is random, the shared token embeddings are the trained
# ones. Adebayo et al. keep the input fixed while the weights are randomised; `full` also re-draws the embeddings, so
# there the model sees another input, and a map that is a function of the learned embeddings alone (e.g. the norm of
# each source piece's embedding) changes and would pass.
DECISION_STAGE = "decoder+encoder"

# A method fails the check when its mean similarity at `DECISION_STAGE` is at least this (fixed before any real data
# was looked at, then at the `full` stage): a rank correlation of 0.5 means the random model still orders each row's
# source pieces mostly as the trained one does, i.e. the map is mostly explained by the input and the architecture,
# not by what the teacher learned.
SANITY_THRESHOLD = 0.5

# Above this share of degenerate rows (constant in the trained or the randomised map) the mean similarity rests on a
# minority of the rows, so the check says nothing: `undetermined` (review M5). Half: where most rows have no ranking
# to compare, the rule would otherwise decide from the few that do (value zeroing's randomised maps fall under its
# 1e-5 threshold and are constant).
MAX_DEGENERATE_SHARE = 0.5

PASSES, FAILS, UNDETERMINED = "passes", "fails", "undetermined"
# The check's version, in the triangulation cache's key (`triangulate.part_constants`): raised whenever what it
# measures changes in code rather than in a constant above. 2 (2026-12-05): degenerate rows left out and counted,
# the three-way verdict at `DECISION_STAGE`, maps from `engine_for`'s engine.
VERSION = 2
VERDICTS = (PASSES, FAILS, UNDETERMINED)


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


def degenerate_rows(trained: np.ndarray, randomised: np.ndarray) -> np.ndarray:
    """[T] whether each target row is constant in the trained or in the randomised map (no ranking to compare)."""
    trained, randomised = np.asarray(trained, dtype=np.float64), np.asarray(randomised, dtype=np.float64)
    if trained.shape != randomised.shape:
        raise ValueError(f"maps of shapes {trained.shape} and {randomised.shape}")
    return (np.ptp(trained, axis=1) == 0) | (np.ptp(randomised, axis=1) == 0)


def row_spearman(trained: np.ndarray, randomised: np.ndarray) -> float:
    """Mean over target rows of the Spearman correlation of the two maps' rows, degenerate rows (`degenerate_rows`)
    left out: NaN when no row is left."""
    trained, randomised = np.asarray(trained, dtype=np.float64), np.asarray(randomised, dtype=np.float64)
    keep = ~degenerate_rows(trained, randomised)
    values = [spearmanr(a, b).statistic for a, b in zip(trained[keep], randomised[keep], strict=True)]
    return float(np.mean(values)) if values else float("nan")


@dataclass
class Randomisation:
    """What the cascade measured for one method: per stage, per sentence the mean row Spearman (`row_spearman`, NaN
    where every row is degenerate) and the number of degenerate rows and of rows."""

    similarity: dict[str, np.ndarray]  # stage -> [N]
    degenerate: dict[str, np.ndarray]  # stage -> [N] degenerate rows per sentence
    rows: np.ndarray  # [N] target rows per sentence

    def degenerate_share(self, stage: str) -> float:
        """Share of all rows of the stage's sentences that are degenerate."""
        return float(self.degenerate[stage].sum() / self.rows.sum()) if self.rows.sum() else float("nan")

    def mean(self, stage: str) -> float:
        """Mean similarity over the sentences that have one (NaN when none has)."""
        values = self.similarity[stage]
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def compare_maps(trained: list, randomised: dict[str, list]) -> Randomisation:
    """`Randomisation` of the trained maps against each stage's randomised maps of the same sentences."""
    return Randomisation(
        similarity={stage: np.array([row_spearman(a, b) for a, b in zip(trained, maps, strict=True)])
                    for stage, maps in randomised.items()},
        degenerate={stage: np.array([int(degenerate_rows(a, b).sum()) for a, b in zip(trained, maps, strict=True)])
                    for stage, maps in randomised.items()},
        rows=np.array([len(a) for a in trained]),
    )


def randomisation_similarity(
    teacher: Teacher,
    method: str,
    rows: list[dict],
    stages: tuple[str, ...] = RANDOMISATION_STAGES,
    engine: str = "fast",
    ig_steps: int | None = None,
    seed: int = 0,
) -> Randomisation:
    """Per stage, the trained teacher's maps of `rows` against the randomised teacher's maps of the same pairs (rows
    with id, source, target, target_kind, source_ids, target_ids; `compare_maps`). The maps come from the engine that
    extraction would use (`engine_for`: the fast engine falls back to Inseq where it does not reproduce it, review
    M9). `seed` seeds the randomisation and the stochastic methods alike, so a method's draws replay on both
    teachers."""
    used = engine_for(engine, teacher, method)
    trained = [r["attribution"] for r in attribute(used, teacher, method, rows, seed=seed, ig_steps=ig_steps)]
    randomised = {}
    for stage in tqdm(stages, desc=f"randomisation {method}", leave=False):
        random_teacher = randomised_teacher(teacher, stage, seed)
        used = engine_for(engine, random_teacher, method)
        randomised[stage] = [
            r["attribution"] for r in attribute(used, random_teacher, method, rows, seed=seed, ig_steps=ig_steps)
        ]
    result = compare_maps(trained, randomised)
    for stage in stages:
        logger.info("%s %s: mean Spearman %.3f over %d pairs, %.0f%% of rows degenerate", method, stage,
                    result.mean(stage), len(rows), 100 * result.degenerate_share(stage))
    return result


def sanity_verdict(result: Randomisation) -> str:
    """`FAILS` when the maps barely change at `DECISION_STAGE` (mean similarity >= `SANITY_THRESHOLD`), `PASSES`
    when they do, `UNDETERMINED` when that stage was not run, its similarity is undefined (NaN), or more than
    `MAX_DEGENERATE_SHARE` of its rows are degenerate."""
    if DECISION_STAGE not in result.similarity:
        return UNDETERMINED
    mean, share = result.mean(DECISION_STAGE), result.degenerate_share(DECISION_STAGE)
    if not np.isfinite(mean) or not share <= MAX_DEGENERATE_SHARE:
        return UNDETERMINED
    return FAILS if mean >= SANITY_THRESHOLD else PASSES


__all__ = [
    "DECISION_STAGE",
    "FAILS",
    "FULL_STAGE",
    "MAX_DEGENERATE_SHARE",
    "PASSES",
    "RANDOMISATION_STAGES",
    "SANITY_THRESHOLD",
    "UNDETERMINED",
    "VERDICTS",
    "VERSION",
    "Randomisation",
    "compare_maps",
    "degenerate_rows",
    "randomisation_similarity",
    "randomised_teacher",
    "row_spearman",
    "sanity_verdict",
]
