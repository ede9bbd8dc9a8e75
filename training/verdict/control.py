"""The verdict's positive control: can its design see planted alignment CONTENT, in the students' own regime, and how
small an effect?

A graded positive control for the whole measurement (map use, training, teacher-forced metrics, statistics), run
before any attribution method is judged. A synthetic translation task is built from token ids (no tokenizer) so
that the true alignment of every target token is known exactly:

- a seeded lexicon: 32 source words translate one-to-one, 8 more form 4 two-word phrases that each translate to a
  single target word (many-to-one: that target row splits its mass 0.5 / 0.5 over the two source positions);
- a seeded reordering: the target lists the translated units in a fixed, seeded order of the target vocabulary, so
  where a word goes depends on which word it is (not on the layout alone);
- a final `</s>` on both sides, its row aligned to the source `</s>`.

Ids follow `tests/student_utils.TINY_MARIAN`: pad 1 (also the decoder start), `</s>` 2, `<s>` 0 unused. A map is
`[len(labels), len(input_ids)]`, row t = labels[t] (final `</s>` included), column s = input_ids[s], as the real maps.

The regime is the preset's students' (`InstrumentConfig.for_preset`): their model size, dropout, learning rate and
schedule, batch, fine-tuning steps, best-step selection, map-annotated pairs, init (`warm`: each replicate fine-tunes
its own no-map warm start, as the students' seeds do; `scratch`: from random weights) and test size. Per training
seed and map, one student; maps:

- `shuffled`: the true map with each row's values permuted over the source positions (same values, no alignment);
- `oracle@q` for q in `CORRUPTION_LEVELS`: the true map with a share q of each sentence's rows replaced by the rows
  of another sentence of the same layout (q = 1: the map of another sentence: right layout, no content).

Every student is scored on held-out pairs by `scoring.PRIMARY_METRIC` and compared by the verdict's own statistics
(`statistics.estimate`: replicates and sentences). It passes on content (`CHECKS`): the true map gains over the map of
another sentence of the same layout and over its shuffled twin, and the gains fall with corruption (a negative
slope); its smallest detectable effect is the content contrast's. The budgets were explored on task seed 0 and the
check runs on `CHECK_TASK_SEED`, so that passing is not the exploration's own selection. Measured: docs/verdict.md.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from agkd.datasets_scripts.attribution.configs import BASELINE
from agkd.modeling import AgkdStudentConfig, AgkdStudentForConditionalGeneration
from agkd.modeling.attribution_injection import INJECTION_OPERATORS, MAP_FREE_OPERATORS, check_choice
from agkd.training.evaluation.scoring import PRIMARY_METRIC, TokenStatistics, teacher_forced_statistics
from agkd.training.loop import MAX_GRAD_NORM, TrainingState, make_optimizer, progress
from agkd.training.presets import PRESETS, transformer_sizes
from agkd.training.verdict import statistics as verdict
from agkd.training.verdict.design import control_failures

logger = logging.getLogger(__name__)

CORRUPTION_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)  # shares of rows replaced by other sentences' rows
SHUFFLED = "shuffled"
# The task seeds the regime and rules were explored on are 0 and 1 (docs/verdict.md); every preset's check draws
# another lexicon and order.
CHECK_TASK_SEED = 2
# A preset's check trains as many replicates as the preset has seeds (at least MIN_REPLICATES), each student seed s
# giving training seed s + this: the seeds 0-2 were used while exploring, and a preset on fresh student seeds (e.g.
# demo-power's 4-11) gets fresh control trainings too (7-14, where the demo's are 3-6).
CHECK_SEED_OFFSET = 3
# The planted map must teach content, not a layout: it passes only when all three checks pass (`judge`).
CHECKS = ("content over layout", "content over twin", "graded")

PAD_ID, EOS_ID, BOS_ID = 1, 2, 0
FIRST_WORD_ID = 3


def control_seeds(student_seeds, replicates: int = 0) -> tuple[int, ...]:
    """The check's training seeds for these student seeds (`CHECK_SEED_OFFSET`), continued past the last one to
    `replicates` (`ControlPreset.replicates`) and to at least MIN_REPLICATES."""
    seeds = sorted(seed + CHECK_SEED_OFFSET for seed in student_seeds)
    while len(seeds) < max(replicates, verdict.MIN_REPLICATES):
        seeds.append(seeds[-1] + 1 if seeds else CHECK_SEED_OFFSET)
    return tuple(seeds)


def oracle(level: float) -> str:
    """The name of the graded map with a share `level` of its rows corrupted."""
    return f"oracle@{level:g}"


@dataclass(frozen=True)
class InstrumentConfig:
    """The planted task, the regime and the grid of the check; `for_preset` takes the regime from a preset."""

    task_seed: int = CHECK_TASK_SEED
    words: int = 32  # source words that translate one-to-one
    phrases: int = 4  # two-word source phrases that translate to one target word
    phrase_rate: float = 0.25  # chance that a sampled unit is a phrase
    min_units: int = 2
    max_units: int = 6
    corpus_pairs: int = 4000  # the warm start's no-map pairs (the corpus); the map-annotated pairs are its first ones
    validation_pairs: int = 200  # held out for the fine-tuning's best-step selection, as the students' validation
    test_pairs: int = 200
    # The students' model and recipe (the preset's `student` section).
    d_model: int = 64
    ffn_dim: int = 128
    layers: int = 1
    heads: int = 4
    dropout: float = 0.0
    student_init: str = "warm"  # warm: each replicate fine-tunes its own no-map warm start; scratch: random weights
    warm_starts: int = 0  # warm: distinct warm starts, seed s fine-tunes warm start s mod this (0: one per seed)
    warm_steps: int = 150  # the planted warm start translates but has not converged (as the demo's)
    warm_learning_rate: float = 3e-3
    warm_batch_size: int = 32
    finetune_steps: int = 80
    finetune_pairs: int = 600
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    eval_steps: int = 40  # validation loss every N fine-tuning steps; the best step's weights are kept
    patience: int = 2  # evaluations without improvement before the fine-tuning stops (0: never)
    batch_size: int = 32
    operator: str = "supervise"
    supervision_weight: float = AgkdStudentConfig.supervision_weight
    seeds: tuple[int, ...] = (0, 1, 2)
    num_threads: int = 1  # tiny models gain nothing from intra-op threads

    def __post_init__(self):
        check_choice("injection_operator", self.operator, INJECTION_OPERATORS)
        if self.operator == BASELINE:
            raise ValueError("the operator is the design under test; the no-map baseline is always trained")
        if self.student_init not in ("warm", "scratch"):
            raise ValueError(f"student_init is warm or scratch, got {self.student_init!r}")
        if len(set(self.replicate_of(s) for s in self.seeds)) < verdict.MIN_REPLICATES:
            raise ValueError(f"the check needs at least {verdict.MIN_REPLICATES} independent replicates")
        if not 1 <= self.min_units <= self.max_units <= self.words:
            raise ValueError(f"need 1 <= min_units <= max_units <= words ({self.words})")
        if self.finetune_pairs > self.corpus_pairs:
            raise ValueError("the map-annotated pairs are a part of the corpus: finetune_pairs <= corpus_pairs")

    def replicate_of(self, seed: int) -> str:
        """The independent unit of a training seed: its warm start (warm), or the seed itself (scratch)."""
        if self.student_init == "scratch" or self.warm_starts == 0:
            return f"seed {seed}"
        return f"warm start {seed % self.warm_starts}"

    def regime(self) -> dict:
        """The settings the report compares with the students' run records (`design.student_regime`)."""
        return {
            "operator": self.operator, "student_init": self.student_init, "finetune_steps": self.finetune_steps,
            "supervision_weight": self.supervision_weight, "d_model": self.d_model, "layers": self.layers,
            "heads": self.heads, "ffn_dim": self.ffn_dim, "dropout": self.dropout,
            "learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps, "eval_steps": self.eval_steps,
            "patience": self.patience, "batch_size": self.batch_size, "finetune_pairs": self.finetune_pairs,
            "replicates": len({self.replicate_of(s) for s in self.seeds}), "test_sentences": self.test_pairs,
        }

    @classmethod
    def for_preset(cls, name: str, student_seeds=None, **overrides) -> InstrumentConfig:
        """The preset's students' regime in the planted task: size, dropout, recipe, budget, best-step selection,
        map-annotated pairs (all corpus pairs where the preset has no cap), init and warm-start layout; its
        replicates follow the students' seeds (the preset's unless given: `control_seeds`), more where the preset
        asks for more (`ControlPreset`)."""
        preset = PRESETS[name]
        student = preset.student
        seeds = control_seeds(student_seeds if student_seeds is not None else preset.seeds, preset.control.replicates)
        pairs = preset.extract.max_pairs.get("train")
        regime = dict(
            d_model=student.d_model, layers=student.layers, heads=student.heads, ffn_dim=student.ffn_dim,
            dropout=student.dropout, learning_rate=student.learning_rate, warmup_steps=student.warmup_steps,
            finetune_steps=student.max_steps, eval_steps=student.eval_steps, patience=student.patience,
            batch_size=student.batch_size, student_init=preset.student_init, seeds=seeds,
            # the preset's warm-start layout, with at least MIN_REPLICATES of them (an interval needs two)
            warm_starts=0 if preset.warm_starts == 0 or preset.warm_starts >= len(seeds)
            else max(preset.warm_starts, verdict.MIN_REPLICATES),
            warm_learning_rate=preset.warm_start.learning_rate, warm_batch_size=preset.warm_start.batch_size,
        )
        if preset.control.test_pairs is not None:
            regime["test_pairs"] = preset.control.test_pairs
        regime |= overrides
        finetune = regime.get("finetune_pairs") or pairs or cls.corpus_pairs
        regime["finetune_pairs"] = finetune
        regime.setdefault("corpus_pairs", max(cls.corpus_pairs, finetune))
        return cls(**regime)


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


def corrupted_maps(
    task: PlantedTask, sentences: list[list[int]], level: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """The true maps with a share `level` of each sentence's rows (rounded, at least one row when level > 0)
    replaced by the same rows of another sentence of the same layout (so the shape and sharpness are kept)."""
    maps = []
    for sentence in sentences:
        alignment = task.pair(sentence)[2].copy()
        if level > 0:
            other = task.pair(same_layout(task, sentence, rng))[2]
            rows = len(alignment)
            chosen = rng.choice(rows, size=max(1, round(level * rows)), replace=False)
            alignment[chosen] = other[chosen]
        maps.append(alignment)
    return maps


def shuffled_maps(task: PlantedTask, sentences: list[list[int]], rng: np.random.Generator) -> list[np.ndarray]:
    """The true maps with each row's values permuted over the source positions."""
    maps = []
    for sentence in sentences:
        alignment = task.pair(sentence)[2]
        maps.append(np.stack([row[rng.permutation(len(row))] for row in alignment]))
    return maps


def map_kinds() -> tuple[str, ...]:
    return (SHUFFLED, *(oracle(level) for level in CORRUPTION_LEVELS))


def make_split(task: PlantedTask, sentences: list[list[int]], rng: np.random.Generator) -> PlantedSplit:
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
    # One random stream per kind, so that adding a level changes no other map.
    for kind, kind_rng in zip(map_kinds(), rng.spawn(len(map_kinds())), strict=True):
        if kind == SHUFFLED:
            values = shuffled_maps(task, sentences, kind_rng)
        else:
            values = corrupted_maps(task, sentences, float(kind.split("@")[1]), kind_rng)
        padded = torch.zeros(len(pairs), target_width, source_width)
        for i, value in enumerate(values):
            padded[i, : value.shape[0], : value.shape[1]] = torch.from_numpy(value)
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
        map_normalization="row_sum",
        supervision_weight=config.supervision_weight,
    )


def train_steps(model, split: PlantedSplit, kind: str | None, steps: int, learning_rate: float, batch_size: int,
                seed: int, pairs: int, warmup_steps: int = 0, validation: PlantedSplit | None = None,
                eval_steps: int = 0, patience: int = 0, on_evaluation=None) -> TrainingState:
    """Up to `steps` steps of the students' recipe (`loop.make_optimizer`: AdamW, warm-up then linear decay, clipping)
    on batches drawn from the first `pairs` examples of `split`, in an order fixed by `seed`. With `validation`, as
    the real students' loop (`loop.fit`): the validation loss (no map) every `eval_steps` and at the end, early
    stopping after `patience` evaluations without improvement, and the best step's weights restored.
    `on_evaluation(step)` is called after each evaluation, with the model at that step's weights."""
    optimizer, scheduler = make_optimizer(model, learning_rate=learning_rate, warmup_steps=warmup_steps,
                                          max_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    state, best = TrainingState(patience=patience), None
    model.train()
    while state.step < steps and not state.should_stop:
        batch = split.batch(torch.randint(0, pairs, (batch_size,), generator=generator), kind)
        del batch["index"]
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM, foreach=True)
        optimizer.step()
        scheduler.step()
        state.step += 1
        if validation is not None and (state.step % eval_steps == 0 or state.step == steps):
            if state.update_validation(validation_loss(model, validation)):
                best = {k: v.clone() for k, v in model.state_dict().items()}
            if on_evaluation is not None:
                on_evaluation(state.step)
    if best is not None:
        model.load_state_dict(best)
    return state


@torch.no_grad()
def validation_loss(model, split: PlantedSplit) -> float:
    """Mean token cross-entropy of `split` without a map (what the real students' validation measures)."""
    model.eval()
    sums = score(model, split, None)
    model.train()
    return float(sums.nll.sum() / sums.tokens.sum())


def warm_start(task: PlantedTask, corpus: PlantedSplit, config: InstrumentConfig, index: int) -> dict:
    """No-map warm start `index` (its own initialisation and batch order), as the students' warm starts: trained on
    the corpus with the warm-start recipe (no dropout), its weights copied into each cell that fine-tunes it."""
    torch.manual_seed(index)
    warm = AgkdStudentConfig(**{**student_config(task, config, BASELINE).to_dict(), "dropout": 0.0})
    model = AgkdStudentForConditionalGeneration(warm)
    train_steps(model, corpus, None, config.warm_steps, config.warm_learning_rate, config.warm_batch_size, index,
                len(corpus), warmup_steps=config.warm_steps // 10)
    return {k: v.clone() for k, v in model.state_dict().items()}


def fine_tune(task: PlantedTask, corpus: PlantedSplit, validation: PlantedSplit, config: InstrumentConfig,
              weights: dict | None, seed: int, kind: str | None, test: PlantedSplit | None = None):
    """One cell: the replicate's warm start (None: random weights, `scratch`) trained on the map-annotated pairs with
    map `kind` (None: the no-map baseline), keeping its best validation step as the real students do; `seed` fixes
    the batch order and dropout, so the cells of one seed differ only in their map. Returns the model, the step
    whose weights it has, and with `test` its test sums at every evaluated step (`judge_by_step`)."""
    torch.manual_seed(seed)
    model = AgkdStudentForConditionalGeneration(
        student_config(task, config, BASELINE if kind is None else config.operator)
    )
    if weights is not None:
        model.load_state_dict(weights)
    by_step: dict[int, TokenStatistics] = {}

    def record(step: int) -> None:
        if test is not None:
            by_step[step] = score(model, test, kind)
            model.train()

    state = train_steps(model, corpus, kind, config.finetune_steps, config.learning_rate, config.batch_size, seed,
                        config.finetune_pairs, config.warmup_steps, validation, config.eval_steps, config.patience,
                        on_evaluation=record)
    return model, state.best_step, by_step


def score(model, split: PlantedSplit, kind: str | None, batch_size: int = 100) -> TokenStatistics:
    """Teacher-forced sums of `model` on every example of `split`, each with its map of `kind` (a map-free
    operator ignores it)."""
    batches = (
        split.batch(torch.arange(i, min(i + batch_size, len(split))), kind) for i in range(0, len(split), batch_size)
    )
    return teacher_forced_statistics(model, batches, len(split))


# ================================================================================================ the check
def run_instrument_check(config: InstrumentConfig | None = None) -> dict:
    """Train and score the grid (each replicate's warm start once; per seed the baseline, the shuffled control and
    every graded map) and judge it. Returns a JSON-serialisable dict (`cells`, `levels`, `checks`, `passed`, `mde`,
    `config`, `regime`, ...)."""
    config = config or InstrumentConfig()
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        task = build_task(config)
        rng = np.random.default_rng([config.task_seed, 1])
        held_out = config.corpus_pairs + config.validation_pairs
        sentences = sample_sentences(task, config, held_out + config.test_pairs, rng)
        corpus = make_split(task, sentences[: config.corpus_pairs], rng)
        validation = make_split(task, sentences[config.corpus_pairs : held_out], rng)
        test = make_split(task, sentences[held_out:], rng)
        warm: dict[str, dict] = {}
        kinds = (BASELINE, *map_kinds())
        grid = [(seed, kind) for seed in config.seeds for kind in kinds]
        sums: dict[str, list[TokenStatistics]] = {kind: [] for kind in kinds}
        step_sums: dict[int, dict[str, list[TokenStatistics]]] = {}
        cells = []
        for seed, kind in progress(grid, desc="positive control", unit="student"):
            unit = config.replicate_of(seed)
            if config.student_init == "warm" and unit not in warm:
                warm[unit] = warm_start(task, corpus, config, index=len(warm))
            map_kind = None if kind == BASELINE else kind
            # Scored with the map at test time: a map-free design ignores it, an injecting one shows its leak.
            model, best_step, by_step = fine_tune(task, corpus, validation, config, warm.get(unit), seed, map_kind,
                                                  test)
            stats = score(model, test, map_kind)
            sums[kind].append(stats)
            for step in evaluation_steps(config):  # a cell that stopped early keeps its best weights from then on
                step_sums.setdefault(step, {k: [] for k in kinds})[kind].append(by_step.get(step, stats))
            cells.append({"seed": seed, "replicate": unit, "map": kind, "best_step": best_step, **stats.corpus(),
                          "tokens": int(stats.tokens.sum())})
    finally:
        torch.set_num_threads(threads)
    units = [config.replicate_of(seed) for seed in config.seeds]
    return {
        "primary_metric": PRIMARY_METRIC,
        "criteria": {"alpha": verdict.ALPHA, "power": verdict.POWER, "checks": list(CHECKS)},
        "config": asdict(config),
        "regime": config.regime(),
        "cells": cells,
        **judge(sums, units),
        # The same checks on every cell's weights at each evaluated step: the report reads the step the real students
        # kept, where their best step differs from the control's.
        "by_step": {str(step): {key: value for key, value in judge(by_kind, units).items() if key != "levels"}
                    for step, by_kind in step_sums.items()},
        "seconds": time.perf_counter() - start,
    }


def evaluation_steps(config: InstrumentConfig) -> list[int]:
    """The fine-tuning steps at which a cell is evaluated (every `eval_steps`, and the last)."""
    steps = list(range(config.eval_steps, config.finetune_steps + 1, config.eval_steps)) if config.eval_steps else []
    return sorted({*steps, config.finetune_steps})


def slope_weights() -> dict[str, float]:
    """The least-squares slope of the gain (over any common reference) against the corruption level: a contrast over
    the graded maps' NLL (the reference cancels), negative when gains fall with corruption."""
    levels = np.asarray(CORRUPTION_LEVELS)
    centred = levels - levels.mean()
    return {oracle(q): float(-c / (centred**2).sum()) for q, c in zip(levels, centred, strict=True)}


def judge(sums: dict[str, list[TokenStatistics]], units: list[str]) -> dict:
    """Per corruption level its gain over the shuffled twin and over no map; the three content checks (`CHECKS`),
    each on the verdict's own estimate (replicates x sentences): the true map over the map of another sentence of the
    same layout, over its shuffled twin, and a negative slope of the gains over corruption. `mde`: the smallest gain
    of content over layout this control detects with POWER."""
    tokens = sums[BASELINE][0].tokens
    scores = {kind: np.stack([s.nll for s in stats]) for kind, stats in sums.items()}

    def estimate(weights: dict[str, float]) -> dict:
        return asdict(verdict.estimate(scores, tokens, weights, units=units))

    levels = [{"level": level, "over_shuffled": estimate(verdict.gain(oracle(level), over=SHUFFLED)),
               "over_baseline": estimate(verdict.gain(oracle(level), over=BASELINE))} for level in CORRUPTION_LEVELS]
    layout = estimate(verdict.gain(oracle(0.0), over=oracle(1.0)))
    slope = estimate(slope_weights())
    checks = [
        _check(CHECKS[0], layout["usable"] and layout["low"] > 0, layout,
               "the true map's gain over another sentence's map of the same layout"),
        _check(CHECKS[1], levels[0]["over_shuffled"]["usable"] and levels[0]["over_shuffled"]["low"] > 0,
               levels[0]["over_shuffled"], "the true map's gain over its shuffled twin"),
        _check(CHECKS[2], slope["usable"] and slope["high"] < 0, slope,
               "the slope of the gain over the share of corrupted rows (nats/token per 100%)", below=True),
    ]
    shuffled = estimate(verdict.gain(SHUFFLED, over=BASELINE))
    mde = verdict.mde(layout["se"], layout["df"]) if layout["usable"] else math.nan
    return {
        "levels": levels,
        "content_over_layout": layout,
        "slope": slope,
        "shuffled_over_baseline": shuffled,
        "baseline": {
            "nll": float(np.mean([s.corpus()["nll"] for s in sums[BASELINE]])),
            "agreement": float(np.mean([s.corpus()["agreement"] for s in sums[BASELINE]])),
        },
        "checks": checks,
        "mde": mde,
        "passed": all(check["passed"] for check in checks),
    }


def _check(name: str, passed: bool, estimate: dict, what: str, below: bool = False) -> dict:
    side = "below" if below else "above"
    reason = f"{what} is {check_interval(estimate)}, an interval that {'lies' if passed else 'does not lie'} {side} 0"
    return {"name": name, "passed": bool(passed), "reason": f"{name}: {reason}"}


def write_instrument_check(results_dir: str | Path, config: InstrumentConfig | None = None,
                           file_name: str = "instrument_check.json") -> Path:
    """Run the check and write `<results_dir>/<file_name>`."""
    result = run_instrument_check(config)
    path = Path(results_dir) / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


# ================================================================================================ report
def instrument_section(result: dict) -> list[str]:
    """Markdown lines for the report: the regime, a table per corruption level, the checks and the verdict."""
    config = result["config"]
    init = (f"each replicate's own no-map warm start ({config['warm_steps']} steps on {config['corpus_pairs']} "
            "pairs) fine-tuned" if config["student_init"] == "warm" else "students trained from random weights")
    best_steps = ", ".join(map(str, sorted({c["best_step"] for c in result["cells"]})))
    lines = [
        "## Positive control: planted alignment content in the students' regime",
        "",
        f"A synthetic translation task with planted alignments ({config['words']} one-to-one words, "
        f"{config['phrases']} two-word phrases translated by one word, a seeded target order; task seed "
        f"{config['task_seed']}). Regime: {init} per seed ({', '.join(map(str, config['seeds']))}) and map for "
        f"{config['finetune_steps']} steps on {config['finetune_pairs']} map-annotated pairs with operator "
        f"`{config['operator']}` (d_model {config['d_model']}, {config['layers']}+{config['layers']} layers, dropout "
        f"{config['dropout']}, peak learning rate {config['learning_rate']:g} after {config['warmup_steps']} warm-up "
        f"steps, batch {config['batch_size']}), keeping the best validation step (every {config['eval_steps']} steps, "
        f"patience {config['patience']}; best steps {best_steps})"
        + (" (no map at test time)" if config["operator"] in MAP_FREE_OPERATORS else " (the map at test time too)")
        + f"; scored on {config['test_pairs']} held-out pairs by `{result['primary_metric']}`. Gain = reference "
        "minus student in nats/token, mean over replicates [95% interval over replicates and sentences].",
        "",
        "| map | gain over its shuffled twin | gain over no map |",
        "|---|---|---|",
    ]
    for level in result["levels"]:
        cells = [check_interval(level[key]) for key in ("over_shuffled", "over_baseline")]
        lines.append(f"| true map, {level['level']:.0%} rows corrupted | {cells[0]} | {cells[1]} |")
    lines += [
        f"| shuffled twin | - | {check_interval(result['shuffled_over_baseline'])} |",
        "",
        f"Content over layout (the true map over another sentence's map of the same layout): "
        f"{check_interval(result['content_over_layout'])}; slope of the gain over corruption: "
        f"{check_interval(result['slope'])} nats/token per 100% of rows corrupted. No-map baseline: NLL "
        f"{result['baseline']['nll']:.3f} nats/token, "
        f"top-1 agreement {result['baseline']['agreement']:.3f}. Smallest content gain this control detects with "
        f"{result['criteria']['power']:.0%} power (MDE): {result['mde']:.4f} nats/token.",
        "",
    ]
    if result["passed"]:
        lines.append(
            "**The design sees planted alignment content**: the true map gains significantly over another sentence's "
            "map of the same layout and over its shuffled twin, and the gains fall as its rows are corrupted."
        )
    else:
        reasons = "; ".join(control_failures(result))
        lines.append(f"**The design cannot see planted alignment content here**: {reasons}.")
    return [*lines, "", f"({result['seconds']:.0f} s.)"]


def check_interval(estimate: dict) -> str:
    """A check's estimate as written in its JSON: `+0.0123 [+0.0050, +0.0196]`, or the mean and why unusable."""
    if not estimate["usable"]:
        return f"{estimate['mean']:+.4f} ({estimate['reason']})"
    return f"{estimate['mean']:+.4f} [{estimate['low']:+.4f}, {estimate['high']:+.4f}]"
