"""Instrument check: can a student trained with injected maps see a planted alignment at all?

A positive control for the whole measurement (injection, normalisation, training, teacher-forced metrics, paired
bootstrap), run before any attribution method is judged. A synthetic translation task is built from token ids (no
tokenizer) so that the true alignment of every target token is known exactly:

- a seeded lexicon: 32 source words translate one-to-one, 8 more form 4 two-word phrases that each translate to a
  single target word (many-to-one: that target row splits its mass 0.5 / 0.5 over the two source positions);
- a seeded reordering: the target lists the translated units in a fixed, seeded order of the target vocabulary, so
  where a word goes depends on which word it is. (Reversal, as in the first probe, makes the alignment a function of
  the layout alone: the true map of another sentence of the same shape then teaches the position pattern too;
  measured with reversal at this size it gained 1.4-2.0 nats/token against the oracle's 1.6-2.5, so it could not
  serve as the broken instrument below);
- a final `</s>` on both sides, its row aligned to the source `</s>`.

Ids follow `tests/student_utils.TINY_MARIAN`: pad 1 (also the decoder start), `</s>` 2, `<s>` 0 unused. A map is
`[len(labels), len(input_ids)]`, row t = labels[t] (final `</s>` included), column s = input_ids[s], as the real maps.

Students (`AgkdStudentForConditionalGeneration` from scratch with the shipped-student recipe: scaled embeddings,
AdamW with betas 0.9/0.98 and weight decay 0.01, clipping 1.0, no dropout) are trained per seed with no map (the
baseline) and, per operator, with three maps, each used at train and at test time (the `gold` protocol):

- `oracle`: the planted alignment;
- `random`: seeded uniform noise in [0, 1) of the same shape (a null map: no information);
- `uniform`: 1/S per row over the S source tokens (a null map; under `add` it adds a constant to each row of
  logits, which softmax ignores, so its cell measures how far two trainings drift apart from numerics alone).

Every student is scored on held-out pairs with `scoring.teacher_forced_statistics` (primary metric
`scoring.PRIMARY_METRIC`, the token NLL of the reference; top-1 agreement reported too) and compared with the
baseline of its seed (same initialisation and batch order) by `scoring.paired_bootstrap_tokens`.

Pass rule (constants below, chosen from the measurements quoted here):

- a seed *gains* when the student's NLL is at least a margin (nats/token) below its baseline's with bootstrap
  p < `ALPHA`;
- the oracle passes under an operator when every seed gains with margin `ORACLE_MIN_GAIN`;
- a null map *gains* (a confound) when more than half of the seeds gain with margin `NULL_MARGIN`. Why: the
  bootstrap resamples test sentences, not trainings, and an unconverged student is chaotic: across seeds the
  baseline's NLL spans 1.55-1.64 at 150 steps and 1.15-1.40 at 200, the uniform map under `add` (softmax-invariant)
  drifts by up to 0.04 from numerics alone, and single null cells moved by up to 0.14 (gain) and 0.35 (loss) with
  p < 0.005. The margin asks for more than a trajectory's drift, the majority of seeds for more than one lucky
  trajectory, while a consistent effect (random maps under raw `add` gained on all three seeds in the first
  probe) is still flagged;
- an operator passes when its oracle passes and neither null map gains; the check passes when every operator of
  `pass_operators` passes. A null map that gains under any operator is reported as a confound, also outside
  `pass_operators`.

Operators: `add` and `multiply` under the scale-fair `row_sum` normalisation (the project's primary setting; a
one-hot row is left as it is) decide the verdict. `replace` can be run (`--operators add multiply replace`) and is
reported, not judged: its oracle gained 0.79-0.87 nats/token (a row_sum row in [0, 1] still leaves e/(e + S - 1)
of the attention on a one-hot position) and its null maps cost 0.06-0.19 on every seed (they overwrite the
student's own attention). `average` is left out: it halves the student's logits and trained badly in the probe
(top-1 accuracy 0.13-0.16 with the oracle, below the baseline).

Measured with the defaults (3 seeds, 150 steps, 2,000 training and 200 test pairs; under a minute on one CPU
thread): baseline NLL 1.59 nats/token (top-1 agreement 0.46, far from converged), oracle gains 1.16-1.19 (`add`)
and 1.48-1.62 (`multiply`), null maps between -0.14 and +0.09 with no seed over the margin (the uniform map under
`multiply`, a fixed temperature, gains +0.03..+0.09 significantly on all three seeds: below the margin, visible in
the table). Seeds 3-5 and task seed 1 pass the same way. The budget is part of the check: at 600 steps the
baseline converges (agreement 0.94, NLL 0.24) and the oracle's gain under `add` falls to 0.19-0.27, below
`ORACLE_MIN_GAIN`. The broken instrument (`broken_oracle`) fails on every seed: its oracle gains +0.11..+0.15
under `add` (a sharp map on a wrong unit, with the right final `</s>` row, still speeds learning up a little,
mostly on word tokens: as a null map it would count as a confound) and -0.14..+0.08 under `multiply`.

    agkd instrument --results_dir runs/demo/results
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from modeling import AgkdStudentConfig, AgkdStudentForConditionalGeneration
from modeling.attribution_injection import INJECTION_OPERATORS, MAP_NORMALIZATIONS, check_choice
from training.cli import run_as_script, stage_main
from training.layout import INSTRUMENT_FILE
from training.loop import progress
from training.presets import transformer_sizes
from training.scoring import (
    METRICS,
    PRIMARY_METRIC,
    TokenStatistics,
    improvement,
    paired_bootstrap_tokens,
    teacher_forced_statistics,
)

logger = logging.getLogger(__name__)


ALPHA = 0.05  # one-sided paired bootstrap p-value a seed's gain must beat
ORACLE_MIN_GAIN = 0.5  # nats/token the oracle must gain on every seed (measured: 1.16-1.62 with the defaults)
NULL_MARGIN = 0.1  # nats/token a null map must gain, on most seeds, to count as a confound

MAPS = ("oracle", "random", "uniform")
NULL_MAPS = ("random", "uniform")
BASELINE = "none"

PAD_ID, EOS_ID, BOS_ID = 1, 2, 0
FIRST_WORD_ID = 3


@dataclass(frozen=True)
class InstrumentConfig:
    """The planted task, the students and the grid of the check; the defaults are the check the report relies on."""

    task_seed: int = 0
    words: int = 32  # source words that translate one-to-one
    phrases: int = 4  # two-word source phrases that translate to one target word
    phrase_rate: float = 0.25  # chance that a sampled unit is a phrase
    min_units: int = 2
    max_units: int = 6
    train_pairs: int = 2000
    test_pairs: int = 200
    d_model: int = 64
    ffn_dim: int = 128
    layers: int = 1
    heads: int = 4
    dropout: float = 0.0  # a noiseless measurement: what a map changes is all that differs between cells
    learning_rate: float = 3e-3
    batch_size: int = 32
    steps: int = 150
    seeds: tuple[int, ...] = (0, 1, 2)
    operators: tuple[str, ...] = ("add", "multiply")
    pass_operators: tuple[str, ...] = ("add", "multiply")
    map_normalization: str = "row_sum"
    bootstrap_samples: int = 1000
    num_threads: int = 1  # tiny models gain nothing from intra-op threads
    broken_oracle: bool = False  # a deliberately broken instrument, to show that the check can fail (see planted_maps)

    def __post_init__(self):
        for operator in self.operators:
            check_choice("injection_operator", operator, INJECTION_OPERATORS)
        check_choice("map_normalization", self.map_normalization, MAP_NORMALIZATIONS)
        if BASELINE in self.operators:
            raise ValueError("operators are the injected cells; the no-map baseline is always trained")
        if not self.pass_operators or not set(self.pass_operators) <= set(self.operators):
            raise ValueError(f"pass_operators {self.pass_operators} must be a non-empty subset of {self.operators}")
        if not self.seeds:
            raise ValueError("the check needs at least one seed")
        if not 1 <= self.min_units <= self.max_units <= self.words:
            raise ValueError(f"need 1 <= min_units <= max_units <= words ({self.words})")


# ================================================================================================ the planted task
@dataclass(frozen=True)
class PlantedTask:
    """A seeded lexicon over source units (one word or a two-word phrase, as source ids) and the target order."""

    units: tuple[tuple[int, ...], ...]  # source ids of each unit
    targets: tuple[int, ...]  # target id of each unit
    rank: tuple[int, ...]  # position of each unit's translation in the target order
    vocab_size: int

    def pair(self, units: list[int]) -> tuple[list[int], list[int], np.ndarray]:
        """Source ids, target ids and the true map `[T, S]` of a sentence given as distinct unit indices."""
        if len(set(units)) != len(units):
            raise ValueError(f"units must be distinct (the target order would be ambiguous): {units}")
        input_ids, positions = [], []
        for unit in units:
            positions.append(range(len(input_ids), len(input_ids) + len(self.units[unit])))
            input_ids.extend(self.units[unit])
        input_ids.append(EOS_ID)
        order = sorted(range(len(units)), key=lambda i: self.rank[units[i]])
        labels = [self.targets[units[i]] for i in order] + [EOS_ID]
        alignment = np.zeros((len(labels), len(input_ids)), dtype=np.float32)
        for row, i in enumerate(order):
            alignment[row, list(positions[i])] = 1.0 / len(positions[i])
        alignment[-1, -1] = 1.0
        return input_ids, labels, alignment


def build_task(config: InstrumentConfig) -> PlantedTask:
    rng = np.random.default_rng(config.task_seed)
    first_phrase_id = FIRST_WORD_ID + config.words
    units = [(FIRST_WORD_ID + i,) for i in range(config.words)]
    units += [(first_phrase_id + 2 * i, first_phrase_id + 2 * i + 1) for i in range(config.phrases)]
    first_target_id = first_phrase_id + 2 * config.phrases
    targets = first_target_id + rng.permutation(len(units))
    rank = rng.permutation(len(units))
    return PlantedTask(
        tuple(units), tuple(int(t) for t in targets), tuple(int(r) for r in rank), first_target_id + len(units)
    )


def sample_sentences(task: PlantedTask, config: InstrumentConfig, n: int, rng: np.random.Generator) -> list[list[int]]:
    """`n` distinct sentences, each a list of distinct unit indices (held-out pairs are then unseen in training)."""
    words = [i for i, unit in enumerate(task.units) if len(unit) == 1]
    phrases = [i for i, unit in enumerate(task.units) if len(unit) > 1]
    seen, sentences = set(), []
    for _ in range(100 * n):
        if len(sentences) == n:
            break
        length = int(rng.integers(config.min_units, config.max_units + 1))
        sentence: list[int] = []
        while len(sentence) < length:
            pool = phrases if phrases and rng.random() < config.phrase_rate else words
            unit = int(rng.choice(pool))
            if unit not in sentence:
                sentence.append(unit)
        if tuple(sentence) not in seen:
            seen.add(tuple(sentence))
            sentences.append(sentence)
    if len(sentences) < n:
        raise ValueError(f"the planted task has fewer than {n} distinct sentences: allow more words or units")
    return sentences


def planted_maps(
    task: PlantedTask, sentences: list[list[int]], kind: str, rng: np.random.Generator, broken: bool = False
) -> list[np.ndarray]:
    """One map per sentence. `broken` replaces each oracle map by the true map of another sentence drawn at random
    with the same layout (unit count and phrase positions, hence the same shape): right shape, right kind of map,
    no information about its own sentence."""
    alignments = [task.pair(sentence)[2] for sentence in sentences]
    if kind == "random":
        return [rng.random(a.shape, dtype=np.float32) for a in alignments]
    if kind == "uniform":
        return [np.full(a.shape, 1.0 / a.shape[1], dtype=np.float32) for a in alignments]
    if kind != "oracle":
        raise ValueError(f"unknown map {kind!r}; choose one of {MAPS}")
    if not broken:
        return alignments
    return [task.pair(same_layout(task, sentence, rng))[2] for sentence in sentences]


def same_layout(task: PlantedTask, sentence: list[int], rng: np.random.Generator) -> list[int]:
    """A random sentence with a word where `sentence` has a word and a phrase where it has a phrase."""
    pools: dict[int, list[int]] = {}
    for i, unit in enumerate(task.units):
        pools.setdefault(len(unit), []).append(i)
    lengths = [len(task.units[unit]) for unit in sentence]
    draws = {n: list(rng.choice(pool, size=lengths.count(n), replace=False)) for n, pool in pools.items()}
    return [int(draws[n].pop()) for n in lengths]


@dataclass
class PlantedSplit:
    """Sentences as padded tensors (labels padded with -100) with their maps `[N, T, S]` by kind."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    source_lengths: torch.Tensor
    target_lengths: torch.Tensor
    maps: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, index: torch.Tensor, kind: str | None) -> dict[str, torch.Tensor]:
        """The batch of examples `index`, cut to its longest sentence, with the maps of `kind` (None: no map)."""
        source_length, target_length = int(self.source_lengths[index].max()), int(self.target_lengths[index].max())
        labels = self.labels[index, :target_length]
        batch = {
            "input_ids": self.input_ids[index, :source_length],
            "attention_mask": (torch.arange(source_length) < self.source_lengths[index, None]).long(),
            "labels": labels,
            "index": index,
        }
        if kind is not None:
            batch["attribution_map"] = self.maps[kind][index, :target_length, :source_length]
            batch["attribution_map_mask"] = labels != -100
        return batch


def make_split(
    task: PlantedTask, sentences: list[list[int]], rng: np.random.Generator, broken_oracle: bool = False
) -> PlantedSplit:
    """The sentences' ids and labels, and their maps of every kind, padded once (batches are cut from them)."""
    pairs = [task.pair(sentence) for sentence in sentences]
    source_width = max(len(ids) for ids, _, _ in pairs)
    target_width = max(len(labels) for _, labels, _ in pairs)
    input_ids = torch.full((len(pairs), source_width), PAD_ID)
    labels = torch.full((len(pairs), target_width), -100)
    for i, (source, target, _) in enumerate(pairs):
        input_ids[i, : len(source)] = torch.tensor(source)
        labels[i, : len(target)] = torch.tensor(target)
    maps = {}
    # One random stream per kind, so that `broken_oracle` changes the oracle maps only.
    for kind, kind_rng in zip(MAPS, rng.spawn(len(MAPS)), strict=True):
        padded = torch.zeros(len(pairs), target_width, source_width)
        for i, values in enumerate(planted_maps(task, sentences, kind, kind_rng, broken=broken_oracle)):
            padded[i, : values.shape[0], : values.shape[1]] = torch.from_numpy(values)
        maps[kind] = padded
    return PlantedSplit(
        input_ids,
        labels,
        torch.tensor([len(ids) for ids, _, _ in pairs]),
        torch.tensor([len(target) for _, target, _ in pairs]),
        maps,
    )


# ================================================================================================ students
def student_config(task: PlantedTask, config: InstrumentConfig, operator: str) -> AgkdStudentConfig:
    return AgkdStudentConfig(
        **transformer_sizes(config, task.vocab_size),
        max_position_embeddings=2 * (2 * config.max_units + 1),
        scale_embedding=True,
        attention_dropout=0.0,
        activation_dropout=0.0,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        bos_token_id=BOS_ID,
        decoder_start_token_id=PAD_ID,
        forced_eos_token_id=None,
        injection_operator=operator,
        map_normalization=config.map_normalization,
    )


def train_student(
    task: PlantedTask, split: PlantedSplit, config: InstrumentConfig, seed: int, operator: str, kind: str | None
):
    """A student trained from scratch; `seed` fixes the initialisation and the batch order, so the cells of one
    seed differ only in their map."""
    torch.manual_seed(seed)
    model = AgkdStudentForConditionalGeneration(student_config(task, config, operator))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98), weight_decay=0.01, foreach=True
    )
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(config.steps):
        batch = split.batch(torch.randint(0, len(split), (config.batch_size,), generator=generator), kind)
        del batch["index"]
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        optimizer.step()
    return model


def score(model, split: PlantedSplit, kind: str | None, batch_size: int = 100) -> TokenStatistics:
    """Teacher-forced sums of `model` on every example of `split`, each with its map of `kind`."""
    batches = (
        split.batch(torch.arange(i, min(i + batch_size, len(split))), kind) for i in range(0, len(split), batch_size)
    )
    return teacher_forced_statistics(model, batches, len(split))


# ================================================================================================ the check
def run_instrument_check(config: InstrumentConfig | None = None) -> dict:
    """Train and score the grid (per seed: the baseline, then every operator x map) and judge it (see the module
    docstring). Returns a JSON-serialisable dict: `cells` (per seed x operator x map: NLL, agreement and the
    paired bootstrap against the seed's baseline), `baseline`, `operators` (per map: means over seeds, seeds
    significant and over the margin, whether it gains; whether the operator passes), `confounds`, `passed`, `criteria`, `config`, `seconds`."""
    config = config or InstrumentConfig()
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        task = build_task(config)
        rng = np.random.default_rng([config.task_seed, 1])
        sentences = sample_sentences(task, config, config.train_pairs + config.test_pairs, rng)
        train = make_split(task, sentences[: config.train_pairs], rng, config.broken_oracle)
        test = make_split(task, sentences[config.train_pairs :], rng, config.broken_oracle)
        grid = [(seed, BASELINE, BASELINE) for seed in config.seeds]
        grid += [(seed, operator, kind) for seed in config.seeds for operator in config.operators for kind in MAPS]
        baselines, cells = {}, []
        for seed, operator, kind in progress(grid, desc="instrument check", unit="student"):
            map_kind = None if operator == BASELINE else kind
            statistics = score(train_student(task, train, config, seed, operator, map_kind), test, map_kind)
            cell = {
                "seed": seed,
                "operator": operator,
                "map": kind,
                **statistics.corpus(),
                "tokens": int(statistics.tokens.sum()),
            }
            if operator == BASELINE:
                baselines[seed] = statistics
            else:
                cell["vs_baseline"] = paired_bootstrap_tokens(
                    statistics, baselines[seed], config.bootstrap_samples, seed
                )
            logger.debug("instrument cell %s", cell)
            cells.append(cell)
    finally:
        torch.set_num_threads(threads)
    return {
        "primary_metric": PRIMARY_METRIC,
        "criteria": {"alpha": ALPHA, "oracle_min_gain": ORACLE_MIN_GAIN, "null_margin": NULL_MARGIN},
        "config": asdict(config),
        "cells": cells,
        **judge(cells, config),
        "seconds": time.perf_counter() - start,
    }


def seed_gains(cell: dict, margin: float) -> bool:
    """Whether one seed's student beats its baseline on the primary metric by `margin` with p < ALPHA."""
    comparison = cell["vs_baseline"][METRICS[PRIMARY_METRIC].statistic]
    return improvement(PRIMARY_METRIC, comparison["delta"]) >= margin and comparison["p_value"] < ALPHA


def judge(cells: list[dict], config: InstrumentConfig) -> dict:
    """The pass rule of the module docstring applied to measured cells."""
    statistic = METRICS[PRIMARY_METRIC].statistic
    baseline = [c for c in cells if c["operator"] == BASELINE]
    operators = {}
    for operator in config.operators:
        maps = {}
        for kind in MAPS:
            mine = [c for c in cells if c["operator"] == operator and c["map"] == kind]
            oracle = kind == "oracle"
            over_margin = sum(seed_gains(c, ORACLE_MIN_GAIN if oracle else NULL_MARGIN) for c in mine)
            gains = [improvement(PRIMARY_METRIC, c["vs_baseline"][statistic]["delta"]) for c in mine]
            maps[kind] = {
                "role": "oracle" if oracle else "null",
                "nll": float(np.mean([c["nll"] for c in mine])),
                "agreement": float(np.mean([c["agreement"] for c in mine])),
                "gain": float(np.mean(gains)),
                "gain_range": [min(gains), max(gains)],
                "seeds_significant": sum(seed_gains(c, 0.0) for c in mine),  # p < ALPHA, any size
                "seeds_over_margin": over_margin,
                "gains": over_margin == len(mine) if oracle else over_margin > len(mine) / 2,
            }
        operators[operator] = {
            "judged": operator in config.pass_operators,
            "maps": maps,
            "passed": maps["oracle"]["gains"] and not any(maps[kind]["gains"] for kind in NULL_MAPS),
        }
    return {
        "baseline": {
            "nll": float(np.mean([c["nll"] for c in baseline])),
            "agreement": float(np.mean([c["agreement"] for c in baseline])),
            "nll_per_seed": [c["nll"] for c in baseline],
        },
        "operators": operators,
        "confounds": [
            f"{kind} under {operator}"
            for operator, o in operators.items()
            for kind in NULL_MAPS
            if o["maps"][kind]["gains"]
        ],
        "passed": all(operators[operator]["passed"] for operator in config.pass_operators),
    }


def write_instrument_check(results_dir: str | Path, config: InstrumentConfig | None = None) -> Path:
    """Run the check and write `<results_dir>/instrument_check.json`."""
    result = run_instrument_check(config)
    path = Path(results_dir) / INSTRUMENT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


# ================================================================================================ report
def failures(result: dict) -> list[str]:
    """Why a judged operator failed, one phrase per reason."""
    reasons = []
    seeds = len(result["config"]["seeds"])
    for operator, o in result["operators"].items():
        if not o["judged"]:
            continue
        oracle = o["maps"]["oracle"]
        if not oracle["gains"]:
            reasons.append(
                f"under `{operator}` the oracle gained >= {result['criteria']['oracle_min_gain']} nats/token "
                f"significantly on {oracle['seeds_over_margin']} of {seeds} seeds"
            )
        reasons += [f"the {kind} map gains under `{operator}`" for kind in NULL_MAPS if o["maps"][kind]["gains"]]
    return reasons


def instrument_section(result: dict) -> list[str]:
    """Markdown lines for the report: what was run, a table of every cell (means over seeds) and the verdict."""
    config, criteria = result["config"], result["criteria"]
    seeds = len(config["seeds"])
    judged = [f"`{operator}`" for operator, o in result["operators"].items() if o["judged"]]
    lines = [
        "## Instrument check",
        "",
        f"A synthetic translation task with planted alignments ({config['words']} one-to-one words, {config['phrases']} "
        "two-word phrases translated by one word, a seeded target order): students trained from scratch for "
        f"{config['steps']} steps on {config['train_pairs']} pairs with no map and with each map (the same map at train "
        f"and test time), `{config['map_normalization']}` normalisation, seeds {', '.join(map(str, config['seeds']))}, "
        f"scored on {config['test_pairs']} held-out pairs by `{result['primary_metric']}` "
        f"({METRICS[result['primary_metric']].description}). Gain = baseline minus student, mean over seeds [min, max]; "
        f"a seed gains when its paired bootstrap p < {criteria['alpha']} and the gain reaches "
        f"{criteria['oracle_min_gain']} (oracle, needed on every seed) or {criteria['null_margin']} (null maps, a "
        "confound on most seeds)."
        + (" **Broken instrument**: each oracle map belongs to another sentence." if config["broken_oracle"] else ""),
        "",
        "| operator | map | NLL/token | gain vs baseline | seeds significant / over the margin | top-1 agreement | verdict |",
        "|---|---|---|---|---|---|---|",
        f"| none | (baseline) | {result['baseline']['nll']:.3f} | - | - | {result['baseline']['agreement']:.3f} | - |",
    ]
    for operator, o in result["operators"].items():
        for kind, m in o["maps"].items():
            if m["role"] == "oracle":
                verdict = "sees the alignment" if m["gains"] else "does not see it"
            else:
                verdict = "**gains: confound**" if m["gains"] else "no gain"
            low, high = m["gain_range"]
            lines.append(
                f"| `{operator}`{'' if o['judged'] else ' (reported)'} | {kind} | {m['nll']:.3f} | "
                f"{m['gain']:+.3f} [{low:+.3f}, {high:+.3f}] | {m['seeds_significant']} / {m['seeds_over_margin']} of {seeds} | {m['agreement']:.3f} | {verdict} |"
            )
    lines.append("")
    if result["passed"]:
        lines.append(
            f"**The instrument can see a planted alignment**: under {', '.join(judged)} the oracle map gains on every "
            "seed and neither null map gains."
        )
    else:
        lines.append(f"**The instrument cannot see a planted alignment**: {'; '.join(failures(result))}.")
    if result["confounds"]:
        lines += [
            "",
            f"**Confound**: {', '.join(result['confounds'])}: a map without information about the sentence improves "
            "the student there, so gains of real maps under that operator are not evidence of teaching.",
        ]
    lines += ["", f"({result['seconds']:.0f} s.)"]
    return lines


# ================================================================================================ entry point
@dataclass
class InstrumentArguments:
    results_dir: str = field(metadata={"help": f"where {INSTRUMENT_FILE} goes"})
    seeds: list[int] = field(default_factory=lambda: list(InstrumentConfig.seeds), metadata={"help": "training seeds"})
    steps: int = field(
        default=InstrumentConfig.steps, metadata={"help": "training steps per student (the baseline must not converge)"}
    )
    operators: list[str] = field(
        default_factory=lambda: list(InstrumentConfig.operators), metadata={"help": "injection operators to measure"}
    )
    pass_operators: list[str] = field(
        default_factory=lambda: list(InstrumentConfig.pass_operators),
        metadata={"help": "operators whose result decides `passed` (the others are reported only)"},
    )
    map_normalization: str = field(
        default=InstrumentConfig.map_normalization, metadata={"help": "row normalisation of every map"}
    )
    train_pairs: int = field(default=InstrumentConfig.train_pairs, metadata={"help": "planted training pairs"})
    test_pairs: int = field(default=InstrumentConfig.test_pairs, metadata={"help": "held-out planted pairs scored"})


def instrument_and_log(args: InstrumentArguments) -> None:
    config = InstrumentConfig(
        seeds=tuple(args.seeds),
        steps=args.steps,
        operators=tuple(args.operators),
        pass_operators=tuple(args.pass_operators),
        map_normalization=args.map_normalization,
        train_pairs=args.train_pairs,
        test_pairs=args.test_pairs,
    )
    path = write_instrument_check(args.results_dir, config)
    result = json.loads(path.read_text())
    if result["passed"]:
        logger.info("the instrument can see a planted alignment (%s)", path)
    else:
        logger.warning("the instrument cannot see a planted alignment: %s (%s)", "; ".join(failures(result)), path)
    for confound in result["confounds"]:
        logger.warning("confound: the null map %s gains", confound)


main = stage_main(InstrumentArguments, instrument_and_log, prog="agkd instrument", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
