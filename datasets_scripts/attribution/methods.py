"""Registries of the attribution methods (keyed by their Inseq ids) and of the control maps (keyed by their public
names), and the naming of the per-method shuffled controls (`<method>-shuffled`, `shuffled_control` /
`shuffled_source`). The extraction CLI, the dataset config names and the cards use exactly these names.

A method entry records everything that shapes its maps: the Inseq arguments (n_steps, baselines, samples), the
layer that layer methods hook (resolved per model family: mBART never calls `get_input_embeddings()`), whether
target-side attribution is requested (the authors pass `attribute_target=True` where Inseq supports it; the stored
source map is what the student uses), the default batch size on CPU and whether it needs seeding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AttributionMethod:
    name: str  # Inseq id, also the dataset config suffix
    description: str
    attribute_args: dict = field(default_factory=dict)  # passed to `model.attribute(...)`
    final_step: bool = False  # attention / value_zeroing: no step scores, Inseq runs them with batch size 1
    layer_method: bool = False  # hooks a layer given by `target_layer`
    attribute_target: bool = True  # as the authors, where supported (source map unchanged for final-step methods)
    batch_size: int = 8  # default pairs per Inseq call (tuned on CPU, see benchmarks/bench_fast_attribution.py)
    stochastic: bool = False  # needs torch and numpy seeds for reproducible maps
    aggregation: str = "vnorm"  # Inseq default aggregator of the extra dimensions


METHODS: dict[str, AttributionMethod] = {
    m.name: m
    for m in (
        AttributionMethod(
            "attention",
            "decoder cross-attention weights of the forced-decoding forward pass",
            final_step=True,
            attribute_target=False,
            batch_size=1,
            aggregation="mean over heads, then mean over layers",
        ),
        AttributionMethod(
            "value_zeroing",
            "cross-attention value zeroing (Mohebbi et al. 2023), cosine distance of the zeroed layer outputs",
            attribute_args={"similarity_metric": "cosine"},
            final_step=True,
            attribute_target=False,
            batch_size=1,
            aggregation="mean over layers",
        ),
        AttributionMethod(
            "layer_gradient_x_activation",
            "gradient x activation at the output of the encoder's last layer (the authors' target layer)",
            layer_method=True,
            attribute_target=False,
            batch_size=8,
        ),
        AttributionMethod(
            "saliency", "absolute gradient of the target-token probability w.r.t. the embeddings", batch_size=8
        ),
        AttributionMethod(
            "integrated_gradients",
            "integrated gradients, Gauss-Legendre (n_steps in the arguments), Inseq's <unk> baseline (</s> kept)",
            attribute_args={"n_steps": 50, "internal_batch_size": 50},  # captum's default method: gausslegendre
            batch_size=1,
        ),
        AttributionMethod("deeplift", "DeepLIFT (captum) with Inseq's <unk> baseline (</s> kept)", batch_size=8),
        AttributionMethod("input_x_gradient", "input x gradient on the scaled embeddings", batch_size=8),
        AttributionMethod(
            "gradient_shap",
            "GradientSHAP, 5 samples, stdevs 0, Inseq's <unk> baseline (</s> kept)",
            attribute_args={"n_samples": 5, "stdevs": 0.0},
            batch_size=4,
            stochastic=True,
        ),
    )
}


def method_arguments(method: str, ig_steps: int | None = None) -> dict:
    """The captum arguments a method runs with: the registry's, with integrated gradients' n_steps (and the Inseq
    internal batch that holds one step per row) replaced when `ig_steps` is given (the demo trades 50 steps for 16)."""
    args = dict(METHODS[method].attribute_args)
    if ig_steps is not None and "n_steps" in args:
        if ig_steps < 1:
            raise ValueError(f"ig_steps must be at least 1, got {ig_steps}")
        args.update(n_steps=ig_steps, internal_batch_size=ig_steps)
    return args


TARGET_LAYER = "the encoder's last layer"  # what layer methods hook, in every model (recorded in the fingerprint)


def target_layer_name(model) -> str:
    """Dotted name of the encoder's last layer (`model.encoder.layers.5` in opus-mt, `.11` in mBART-large): the layer
    the authors pass as `target_layer`. Inseq's default, the token-embedding module, would make layer gradient x
    activation the same map as input x gradient (the embedding scale cancels out), and mBART never calls
    `get_input_embeddings()` in a forward pass."""
    last = model.get_encoder().layers[-1]
    for name, module in model.named_modules():
        if module is last:
            return name
    raise ValueError(f"cannot find the last encoder layer of {type(model).__name__}")


# ------------------------------------------------------------------------------------------------------ controls


def _seed_for(example_id: str, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}:{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def random_map(n_target: int, n_source: int, example_id: str, seed: int) -> np.ndarray:
    """Uniform [0, 1) noise, seeded by (seed, example id) so it does not depend on sharding or batch order."""
    return np.random.default_rng(_seed_for(example_id, seed)).random((n_target, n_source), dtype=np.float32)


def uniform_map(n_target: int, n_source: int, example_id: str, seed: int) -> np.ndarray:
    """Every source token gets 1/S: the map carries no information."""
    return np.full((n_target, n_source), 1.0 / n_source, dtype=np.float32)


def diagonal_map(n_target: int, n_source: int, example_id: str, seed: int) -> np.ndarray:
    """Monotone alignment heuristic: target token t attends to source position round(t (S-1) / (T-1))."""
    out = np.zeros((n_target, n_source), dtype=np.float32)
    rows = np.arange(n_target)
    cols = np.rint(rows * (n_source - 1) / max(n_target - 1, 1)).astype(int)
    out[rows, cols] = 1.0
    return out


@dataclass(frozen=True)
class ControlMap:
    name: str
    description: str
    build: Callable[[int, int, str, int], np.ndarray]


CONTROLS: dict[str, ControlMap] = {
    c.name: c
    for c in (
        ControlMap("random", "uniform [0, 1) noise seeded by (seed, example id)", random_map),
        ControlMap("uniform", "1/S for every source token", uniform_map),
        ControlMap(
            "diagonal", "monotone alignment: 1 at source position round(t (S-1)/(T-1)), 0 elsewhere", diagonal_map
        ),
    )
}


# ------------------------------------------------------------------------------------------- shuffled controls
# `<method>-shuffled`: the method's own stored maps with each target row's values permuted over the source positions
# (the same values, sharpness and scale per row; no alignment). Built from the method's config, not by the teacher.

SHUFFLED_SUFFIX = "-shuffled"
SHUFFLE_RULE = (
    "each target row t permuted over the source positions independently, numpy Generator seeded by "
    "sha256 of (control name, row id, t); a permutation that leaves a row of >= 2 distinct values unchanged is redrawn"
)


def shuffled_control(method: str) -> str:
    """The public name of a method's shuffled control: `saliency` -> `saliency-shuffled`."""
    if method not in METHODS:
        raise ValueError(f"no shuffled control of {method!r}: not a method ({[*METHODS]})")
    return method + SHUFFLED_SUFFIX


def shuffled_source(name: str) -> str | None:
    """The method a shuffled control is built from (`saliency-shuffled` -> `saliency`); None for any other name."""
    if name.endswith(SHUFFLED_SUFFIX) and name[: -len(SHUFFLED_SUFFIX)] in METHODS:
        return name[: -len(SHUFFLED_SUFFIX)]
    return None


SHUFFLED_CONTROLS: tuple[str, ...] = tuple(shuffled_control(m) for m in METHODS)


def shuffled_map(attribution, example_id: str, method: str) -> np.ndarray:
    """`method`'s map [T][S] of one example with each target row permuted over the source positions (`SHUFFLE_RULE`):
    row t's generator is seeded by (control name, example id, t), so a rerun, a shard or another split order gives the
    same map. A row with >= 2 distinct values never comes back unchanged (its permutation is redrawn)."""
    amap = np.asarray(attribution, dtype=np.float32)
    if amap.ndim != 2:
        raise ValueError(f"an attribution map is [T][S]; got shape {amap.shape}")
    name = shuffled_control(method)
    out = np.empty_like(amap)
    for t, row in enumerate(amap):
        rng = np.random.default_rng(_seed_for(f"{name}:{example_id}:{t}", 0))
        shuffled = row[rng.permutation(len(row))]
        if len(np.unique(row)) > 1:
            while np.array_equal(shuffled, row):
                shuffled = row[rng.permutation(len(row))]
        out[t] = shuffled
    return out


def resolve(names: list[str] | None) -> list[str]:
    """Validate a `--methods` selection (methods, controls and/or shuffled controls `<method>-shuffled`); None means
    every method, control and shuffled control (the shuffled ones last: they are built from the methods' maps)."""
    known = [*METHODS, *CONTROLS, *SHUFFLED_CONTROLS]
    if not names:
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown methods/controls {unknown}; known: {known}")
    return list(dict.fromkeys(names))
