"""Instrument check: can the verdict's design see a planted alignment, in the demo's regime, and how small an effect?

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

The regime is the demo's (`--preset`): a no-map warm start trained on planted pairs, then per seed and map a
fine-tuning of `finetune_steps` steps on `finetune_pairs` map-annotated pairs with the design's operator (for
`supervise`: the map trains the attention and is absent at test time). Maps, per seed:

- `shuffled`: the true map with each row's values permuted over the source positions (the matched null: same
  values and sharpness, no alignment), the control every graded map is compared with;
- `oracle@q` for q in `CORRUPTION_LEVELS`: the true map with a share q of each sentence's rows replaced by the rows
  of another sentence of the same layout (q = 1: the map of another sentence; right shape, no information).

Every student is scored on held-out pairs by `scoring.PRIMARY_METRIC` and compared with the shuffled control by the
verdict's own statistics (`agkd.training.verdict.statistics.estimate`: seeds and sentences). The design passes when the
true map gains significantly over its shuffled twin and the gains fall with corruption (`MONOTONE_SLACK`); its smallest
detectable effect (`verdict.mde`) is reported and read by the verdict. Measured figures: docs/verdict.md.

    agkd instrument --results_dir runs/demo/results --preset demo
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from agkd.datasets_scripts.attribution.configs import BASELINE
from agkd.datasets_scripts.release_layout import INSTRUMENT_FILE
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.modeling import AgkdStudentConfig, AgkdStudentForConditionalGeneration
from agkd.modeling.attribution_injection import INJECTION_OPERATORS, MAP_FREE_OPERATORS, check_choice
from agkd.training.evaluation.scoring import PRIMARY_METRIC, TokenStatistics, teacher_forced_statistics
from agkd.training.loop import TrainingState, progress
from agkd.training.orchestration.presets import PRESETS, transformer_sizes
from agkd.training.verdict import statistics as verdict

logger = logging.getLogger(__name__)

CORRUPTION_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)  # shares of rows replaced by other sentences' rows
SHUFFLED = "shuffled"
# A rise of the mean gain from one corruption level to the next counts against monotonicity only beyond this many
# standard errors of the larger one: adjacent levels differ by a quarter of the effect, and noise of one se is expected.
MONOTONE_SLACK = 1.0

# The presets' budgets were chosen on the check's seeds 0, 1, 2 (docs/verdict.md): a preset's check runs as many seeds
# as the preset has (at least verdict.MIN_SEEDS) from this one on, so that passing it is not the choice's own selection.
CHECK_SEED_OFFSET = 3

PAD_ID, EOS_ID, BOS_ID = 1, 2, 0
FIRST_WORD_ID = 3


def oracle(level: float) -> str:
    """The name of the graded map with a share `level` of its rows corrupted."""
    return f"oracle@{level:g}"


@dataclass(frozen=True)
class InstrumentConfig:
    """The planted task, the regime and the grid of the check; `for_preset` takes the regime from a preset."""

    task_seed: int = 0
    words: int = 32  # source words that translate one-to-one
    phrases: int = 4  # two-word source phrases that translate to one target word
    phrase_rate: float = 0.25  # chance that a sampled unit is a phrase
    min_units: int = 2
    max_units: int = 6
    corpus_pairs: int = 4000  # the warm start's no-map pairs (the corpus)
    validation_pairs: int = 200  # held out for the fine-tuning's best-step selection, as the demo's validation split
    test_pairs: int = 200
    d_model: int = 64
    ffn_dim: int = 128
    layers: int = 1
    heads: int = 4
    dropout: float = 0.0  # a noiseless measurement: what a map changes is all that differs between cells
    warm_steps: int = 150  # the warm start translates but has not converged (as the demo's: see docs/verdict.md)
    warm_learning_rate: float = 3e-3
    finetune_steps: int = 80  # the demo's student budget
    finetune_pairs: int = 600  # the demo's map-annotated pairs
    finetune_learning_rate: float = 1e-3  # the demo's ratio of student to warm-start learning rate (3e-4 / 1e-3)
    eval_steps: int = 40  # validation loss every N fine-tuning steps; the best step's weights are kept, as the demo's
    patience: int = 2  # evaluations without improvement before the fine-tuning stops (0: never), as the demo's
    batch_size: int = 32
    operator: str = "supervise"
    supervision_weight: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2)
    bootstrap_samples: int = 1000
    num_threads: int = 1  # tiny models gain nothing from intra-op threads

    def __post_init__(self):
        check_choice("injection_operator", self.operator, INJECTION_OPERATORS)
        if self.operator == BASELINE:
            raise ValueError("the operator is the design under test; the no-map baseline is always trained")
        if len(self.seeds) < verdict.MIN_SEEDS:
            raise ValueError(f"the check needs at least {verdict.MIN_SEEDS} seeds for an interval")
        if not 1 <= self.min_units <= self.max_units <= self.words:
            raise ValueError(f"need 1 <= min_units <= max_units <= words ({self.words})")
        if self.finetune_pairs > self.corpus_pairs:
            raise ValueError("the map-annotated pairs are a part of the corpus: finetune_pairs <= corpus_pairs")

    @classmethod
    def for_preset(cls, name: str, **overrides) -> InstrumentConfig:
        """The demo's regime in the planted task: its students' fine-tuning steps, batch and map-annotated pairs."""
        preset = PRESETS[name]
        regime = dict(
            finetune_steps=preset.student.max_steps,
            eval_steps=preset.student.eval_steps,
            patience=preset.student.patience,
            batch_size=preset.student.batch_size,
            finetune_pairs=preset.extract.max_pairs.get("train") or cls.finetune_pairs,
            seeds=tuple(range(CHECK_SEED_OFFSET, CHECK_SEED_OFFSET + max(len(preset.seeds), verdict.MIN_SEEDS))),
        )
        return cls(**{**regime, **overrides})


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
                seed: int, pairs: int, validation: PlantedSplit | None = None, eval_steps: int = 0,
                patience: int = 0) -> TrainingState:
    """Up to `steps` AdamW steps (the shipped-student recipe: betas 0.9/0.98, weight decay 0.01, clipping 1.0) on
    batches drawn from the first `pairs` examples of `split`, in an order fixed by `seed`. With `validation`, as the
    real students' loop (`loop.fit`): the validation loss (no map) every `eval_steps` and at the end, early stopping
    after `patience` evaluations without improvement, and the best step's weights restored."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, betas=(0.9, 0.98), weight_decay=0.01, foreach=True
    )
    generator = torch.Generator().manual_seed(seed)
    state, best = TrainingState(patience=patience), None
    model.train()
    while state.step < steps and not state.should_stop:
        batch = split.batch(torch.randint(0, pairs, (batch_size,), generator=generator), kind)
        del batch["index"]
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        optimizer.step()
        state.step += 1
        if validation is not None and (state.step % eval_steps == 0 or state.step == steps):
            if state.update_validation(validation_loss(model, validation)):
                best = {k: v.clone() for k, v in model.state_dict().items()}
    if best is not None:
        model.load_state_dict(best)
    return state


@torch.no_grad()
def validation_loss(model, split: PlantedSplit) -> float:
    """Mean token cross-entropy of `split` without a map (what the real students' validation measures)."""
    model.eval()
    statistics = score(model, split, None)
    model.train()
    return float(statistics.nll.sum() / statistics.tokens.sum())


def warm_start(task: PlantedTask, corpus: PlantedSplit, config: InstrumentConfig) -> dict[str, torch.Tensor]:
    """The shared no-map warm start (seed 0), as the demo's: its weights, copied into every cell."""
    torch.manual_seed(0)
    model = AgkdStudentForConditionalGeneration(student_config(task, config, BASELINE))
    train_steps(model, corpus, None, config.warm_steps, config.warm_learning_rate, config.batch_size, 0, len(corpus))
    return {k: v.clone() for k, v in model.state_dict().items()}


def fine_tune(task: PlantedTask, corpus: PlantedSplit, validation: PlantedSplit, config: InstrumentConfig,
              weights: dict, seed: int, kind: str | None):
    """One cell: the warm start fine-tuned on the map-annotated pairs with map `kind` (None: the no-map baseline),
    keeping its best validation step as the real students do; `seed` fixes the batch order, so the cells of one seed
    differ only in their map. Returns the model and the step whose weights it has."""
    torch.manual_seed(seed)
    model = AgkdStudentForConditionalGeneration(
        student_config(task, config, BASELINE if kind is None else config.operator)
    )
    model.load_state_dict(weights)
    state = train_steps(model, corpus, kind, config.finetune_steps, config.finetune_learning_rate, config.batch_size,
                        seed, config.finetune_pairs, validation, config.eval_steps, config.patience)
    return model, state.best_step


def score(model, split: PlantedSplit, kind: str | None, batch_size: int = 100) -> TokenStatistics:
    """Teacher-forced sums of `model` on every example of `split`, each with its map of `kind` (a map-free
    operator ignores it)."""
    batches = (
        split.batch(torch.arange(i, min(i + batch_size, len(split))), kind) for i in range(0, len(split), batch_size)
    )
    return teacher_forced_statistics(model, batches, len(split))


# ================================================================================================ the check
def run_instrument_check(config: InstrumentConfig | None = None) -> dict:
    """Train and score the grid (the warm start once; per seed the baseline, the shuffled control and every graded
    map) and judge it. Returns a JSON-serialisable dict (`cells`, `levels`, `passed`, `mde`, `config`, ...)."""
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
        weights = warm_start(task, corpus, config)
        kinds = (BASELINE, *map_kinds())
        grid = [(seed, kind) for seed in config.seeds for kind in kinds]
        statistics: dict[str, list[TokenStatistics]] = {kind: [] for kind in kinds}
        cells = []
        for seed, kind in progress(grid, desc="instrument check", unit="student"):
            map_kind = None if kind == BASELINE else kind
            # Scored with the map at test time: a map-free design ignores it, an injecting one shows its leak.
            model, best_step = fine_tune(task, corpus, validation, config, weights, seed, map_kind)
            stats = score(model, test, map_kind)
            statistics[kind].append(stats)
            cells.append({"seed": seed, "map": kind, "best_step": best_step, **stats.corpus(),
                          "tokens": int(stats.tokens.sum())})
    finally:
        torch.set_num_threads(threads)
    return {
        "primary_metric": PRIMARY_METRIC,
        "criteria": {"alpha": verdict.ALPHA, "power": verdict.POWER, "monotone_slack": MONOTONE_SLACK},
        "config": asdict(config),
        "cells": cells,
        **judge(statistics, config),
        "seconds": time.perf_counter() - start,
    }


def judge(statistics: dict[str, list[TokenStatistics]], config: InstrumentConfig) -> dict:
    """Per corruption level its gain over the shuffled control and over the no-map baseline (verdict.estimate over
    seeds and sentences); passes when the true map's gain over the shuffled control is significant and the gains
    fall with corruption; `mde`: the smallest gain over the shuffled control this design detects at this budget."""
    tokens = statistics[BASELINE][0].tokens
    scores = {kind: np.stack([s.nll for s in stats]) for kind, stats in statistics.items()}
    levels = []
    for level in CORRUPTION_LEVELS:
        name = oracle(level)
        over_shuffled = verdict.estimate(scores, tokens, verdict.gain(name, over=SHUFFLED), config.bootstrap_samples)
        over_baseline = verdict.estimate(scores, tokens, verdict.gain(name, over=BASELINE), config.bootstrap_samples)
        levels.append({"level": level, "over_shuffled": asdict(over_shuffled), "over_baseline": asdict(over_baseline)})
    true_map = levels[0]["over_shuffled"]
    detects = true_map["low"] > 0
    violations = [
        f"{b['level']:g} gains {b['over_shuffled']['mean']:+.4f} > {a['level']:g}'s {a['over_shuffled']['mean']:+.4f}"
        for a, b in zip(levels, levels[1:], strict=False)
        if b["over_shuffled"]["mean"] - a["over_shuffled"]["mean"]
        > MONOTONE_SLACK * max(a["over_shuffled"]["se"], b["over_shuffled"]["se"])
    ]
    shuffled = verdict.estimate(scores, tokens, verdict.gain(SHUFFLED, over=BASELINE), config.bootstrap_samples)
    return {
        "levels": levels,
        "shuffled_over_baseline": asdict(shuffled),
        "baseline": {
            "nll": float(np.mean([s.corpus()["nll"] for s in statistics[BASELINE]])),
            "agreement": float(np.mean([s.corpus()["agreement"] for s in statistics[BASELINE]])),
        },
        "detects": bool(detects),
        "monotone": not violations,
        "violations": violations,
        "mde": verdict.mde(true_map["se"], true_map["df"]),
        "passed": bool(detects and not violations),
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
    """Why the check failed, one phrase per reason."""
    reasons = []
    if not result["detects"]:
        true_map = result["levels"][0]["over_shuffled"]
        reasons.append(
            f"the true map gains {true_map['mean']:+.4f} [{true_map['low']:+.4f}, {true_map['high']:+.4f}] nats/token "
            "over "
            "its shuffled twin, an interval that does not lie above 0"
        )
    reasons += [f"the gains do not fall with corruption ({v})" for v in result["violations"]]
    return reasons


def instrument_section(result: dict) -> list[str]:
    """Markdown lines for the report: the regime, a table per corruption level and the verdict."""
    config = result["config"]
    lines = [
        "## Instrument check: a graded planted alignment in the verdict's regime",
        "",
        f"A synthetic translation task with planted alignments ({config['words']} one-to-one words, "
        f"{config['phrases']} "
        f"two-word phrases translated by one word, a seeded target order). Regime: a no-map warm start "
        f"({config['warm_steps']} steps on {config['corpus_pairs']} pairs), then per seed "
        f"({', '.join(map(str, config['seeds']))}) and map a fine-tuning of {config['finetune_steps']} steps on "
        f"{config['finetune_pairs']} map-annotated pairs with operator `{config['operator']}`, keeping the best "
        f"validation step (every {config['eval_steps']} steps, patience {config['patience']}; best steps "
        f"{', '.join(map(str, sorted({c['best_step'] for c in result['cells']})))})"
        + (" (no map at test time)" if config["operator"] in MAP_FREE_OPERATORS else " (the map at test time too)")
        + f"; scored on {config['test_pairs']} held-out pairs by `{result['primary_metric']}`. Gain = control minus "
        "student in nats/token, mean over seeds [95% interval over seeds and sentences].",
        "",
        "| map | gain over its shuffled twin | gain over no map |",
        "|---|---|---|",
    ]
    for level in result["levels"]:
        cells = [_interval(level[key]) for key in ("over_shuffled", "over_baseline")]
        lines.append(f"| true map, {level['level']:.0%} rows corrupted | {cells[0]} | {cells[1]} |")
    lines += [
        f"| shuffled twin | - | {_interval(result['shuffled_over_baseline'])} |",
        "",
        f"No-map baseline: NLL {result['baseline']['nll']:.3f} nats/token, top-1 agreement "
        f"{result['baseline']['agreement']:.3f}. "
        f"Smallest gain over the shuffled twin this design detects here with {result['criteria']['power']:.0%} power "
        f"(MDE): {result['mde']:.4f} nats/token.",
        "",
    ]
    if result["passed"]:
        lines.append(
            "**The design sees a planted alignment**: the true map gains significantly over its shuffled twin and the "
            "gains fall as its rows are corrupted."
        )
    else:
        lines.append(f"**The design cannot see a planted alignment at this budget**: {'; '.join(failures(result))}.")
    return [*lines, "", f"({result['seconds']:.0f} s.)"]


def _interval(estimate: dict) -> str:
    if not estimate["usable"]:
        return f"{estimate['mean']:+.4f} ({estimate['reason']})"
    return f"{estimate['mean']:+.4f} [{estimate['low']:+.4f}, {estimate['high']:+.4f}]"


# ================================================================================================ entry point
@dataclass
class InstrumentArguments:
    results_dir: str = field(metadata={"help": f"where {INSTRUMENT_FILE} goes"})
    preset: str = field(
        default="demo", metadata={"help": "whose regime to reproduce: its students' steps, batch, pairs, seeds"}
    )
    operator: str = field(
        default=InstrumentConfig.operator, metadata={"help": "the design under test (supervise, add, ...)"}
    )
    seeds: list[int] | None = field(
        default=None,
        metadata={"help": f"training seeds (default: as many as the preset's from {CHECK_SEED_OFFSET} on)"},
    )
    warm_steps: int = field(default=InstrumentConfig.warm_steps, metadata={"help": "no-map warm-start steps"})
    finetune_steps: int | None = field(default=None, metadata={"help": "fine-tuning steps (default: the preset's)"})
    finetune_pairs: int | None = field(default=None, metadata={"help": "map-annotated pairs (default: the preset's)"})
    supervision_weight: float = field(
        default=InstrumentConfig.supervision_weight, metadata={"help": "supervise: weight"}
    )
    corpus_pairs: int = field(
        default=InstrumentConfig.corpus_pairs, metadata={"help": "planted pairs of the warm start"}
    )
    test_pairs: int = field(default=InstrumentConfig.test_pairs, metadata={"help": "held-out planted pairs scored"})


def instrument_and_log(args: InstrumentArguments) -> None:
    overrides = {
        "operator": args.operator,
        "warm_steps": args.warm_steps,
        "supervision_weight": args.supervision_weight,
        "corpus_pairs": args.corpus_pairs,
        "test_pairs": args.test_pairs,
    }
    overrides |= {k: v for k, v in (("finetune_steps", args.finetune_steps), ("finetune_pairs", args.finetune_pairs))
                  if v is not None}
    if args.seeds is not None:
        overrides["seeds"] = tuple(args.seeds)
    path = write_instrument_check(args.results_dir, InstrumentConfig.for_preset(args.preset, **overrides))
    result = json.loads(path.read_text())
    if result["passed"]:
        logger.info("the design sees a planted alignment; MDE %.4f nats/token (%s)", result["mde"], path)
    else:
        logger.warning("the design cannot see a planted alignment: %s (%s)", "; ".join(failures(result)), path)


main = stage_main(InstrumentArguments, instrument_and_log, prog="agkd instrument", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
