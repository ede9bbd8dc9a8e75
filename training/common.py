"""Steps shared by every `accelerate` training script in `training/` (teachers, students, Attributor).

A script keeps the shape of transformers' `run_translation_no_trainer.py` and calls these helpers for the parts
that would otherwise be copied between scripts:

- `make_accelerator(...)`: an `Accelerator` with automatic checkpoint naming under `<project_dir>/checkpoints`,
  seedable samplers (so a resumed run sees the same batches) and quiet logging on non-main processes.
- `TrainingState`: step, epoch, batches consumed in the epoch, tokens seen and early stopping on a validation
  loss; registered for checkpointing so it travels with `save_state`/`load_state`.
- `resume_from_latest(acc)`: loads the newest `checkpoint_<i>` and bumps `project_configuration.iteration`
  (accelerate 1.15 does not, and the next `save_state` would then collide).
- `Seq2SeqCollator`, `tokenize_pairs`, `length_grouped_batches`: padding collator, batches of similar length and tokenisation of (source, target) pairs that keep the
  example index, so evaluation can restore the corpus order after `gather_for_metrics`.
- `ThroughputMeter`: tokens/s summed over processes.
- `evaluate_loss`, `evaluate_translation`: mean token loss, and generation gathered with `gather_for_metrics`,
  scored with sacrebleu BLEU and chrF against the raw reference strings (signatures kept).
- `write_model_card`: a Hub model card with `model-index` results built offline from `ModelCardData`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)$")


# --------------------------------------------------------------------------------------------- accelerator setup
def make_accelerator(
    project_dir: str | Path,
    *,
    seed: int = 0,
    gradient_accumulation_steps: int = 1,
    mixed_precision: str | None = None,
    total_limit: int = 2,
    cpu: bool | None = None,
):
    """An `Accelerator` whose `save_state()` writes `<project_dir>/checkpoints/checkpoint_<i>` (the last
    `total_limit` are kept). `mixed_precision=None` takes the value of `accelerate launch`/its config file.
    Seeds every RNG with `seed`; non-main processes log warnings only. `cpu=None` means "CPU if there is no CUDA":
    accelerate only detects a `torchrun` multi-process CPU run (gloo) when told it runs on the CPU."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    if cpu is None:
        cpu = not torch.cuda.is_available()
    accelerator = Accelerator(
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision=mixed_precision,
        cpu=cpu,
        project_config=ProjectConfiguration(
            project_dir=str(project_dir), automatic_checkpoint_naming=True, total_limit=total_limit
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)
    set_seed(seed)
    logger.info(
        "accelerator: %d process(es), device %s, mixed precision %s",
        accelerator.num_processes,
        accelerator.device,
        accelerator.mixed_precision,
    )
    return accelerator


def checkpoints(project_dir: str | Path) -> list[Path]:
    """`checkpoint_<i>` folders under `<project_dir>/checkpoints`, oldest first."""
    root = Path(project_dir) / "checkpoints"
    found = [
        (int(m.group(1)), p) for p in root.glob("checkpoint_*") if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()
    ]
    return [p for _, p in sorted(found)]


def resume_from_latest(accelerator) -> Path | None:
    """Load the newest checkpoint of the accelerator's project (model, optimizer, scheduler, RNG, registered
    objects) and bump the checkpoint iteration so the next `save_state()` gets a fresh name. None if there is none."""
    found = checkpoints(accelerator.project_dir)
    if not found:
        return None
    latest = found[-1]
    accelerator.load_state(str(latest))
    accelerator.project_configuration.iteration = int(CHECKPOINT_RE.match(latest.name).group(1)) + 1
    return latest


RUN_SETTINGS = "run_settings.json"


def save_run_settings(work_dir: str | Path, settings: dict) -> None:
    """Record what a run's checkpoints depend on (model size, data, optimisation) beside them."""
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    (Path(work_dir) / RUN_SETTINGS).write_text(json.dumps(settings, indent=2, sort_keys=True))


def check_resumable(work_dir: str | Path, settings: dict) -> None:
    """Refuse `--resume` onto checkpoints written with other settings: they would load into another model, or
    silently continue another recipe (another learning rate, other data). Raises ValueError naming each change;
    nothing is touched. Checkpoints without recorded settings (older runs) are accepted."""
    path = Path(work_dir) / RUN_SETTINGS
    if not path.exists():
        return
    saved, now = json.loads(path.read_text()), json.loads(json.dumps(settings))
    changed = [
        f"{key} {saved.get(key)!r} there, {now.get(key)!r} now"
        for key in sorted(saved.keys() | now.keys())
        if saved.get(key) != now.get(key)
    ]
    if changed:
        raise ValueError(
            f"--resume: the checkpoints in {work_dir} come from a run with other settings ({'; '.join(changed)}). "
            "Pass that run's options to continue it, or run without --resume to start over (this deletes them)."
        )


@dataclass
class TrainingState:
    """Progress of a run, saved in every checkpoint (`accelerator.register_for_checkpointing(state)`).

    Early stopping: `update_validation(loss)` records a validation loss; after `patience` evaluations without an
    improvement of at least `min_delta`, `should_stop` becomes True. `patience=0` disables early stopping."""

    patience: int = 0
    min_delta: float = 0.0
    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    tokens_seen: int = 0
    best_loss: float = math.inf
    best_step: int = -1
    bad_evaluations: int = 0
    history: list[dict] = field(default_factory=list)

    def update_validation(self, loss: float) -> bool:
        """Record a validation loss at the current step; True if it is the best so far."""
        improved = loss < self.best_loss - self.min_delta
        if improved:
            self.best_loss, self.best_step, self.bad_evaluations = loss, self.step, 0
        else:
            self.bad_evaluations += 1
        self.history.append({"step": self.step, "validation_loss": loss})
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_evaluations >= self.patience

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


# --------------------------------------------------------------------------------------------- data
def dataset_configs(repo: str | Path) -> list[str]:
    """Config names of a Hub-layout dataset: read from the folder's files, or asked from the Hub for a repo id."""
    if Path(repo).is_dir():
        from datasets_scripts.hub_layout import configs_metadata

        return [entry["config_name"] for entry in configs_metadata(repo)]
    import datasets

    return datasets.get_dataset_config_names(str(repo))


def load_dataset_config(repo: str | Path, config: str):
    """A `DatasetDict` of one config of a Hub-layout dataset (local folder or Hub id).

    A local folder is read straight from its parquet files, in memory: `datasets.load_dataset` keys its cache on
    the folder path, so a folder rebuilt in place could otherwise come back with the splits of an older build."""
    import datasets

    if not Path(repo).is_dir():
        return datasets.load_dataset(str(repo), config)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datasets_scripts.hub_layout import configs_metadata

    entries = {e["config_name"]: e for e in configs_metadata(repo)}
    if config not in entries:
        raise ValueError(f"{repo} has no config {config!r} (it has: {', '.join(entries)})")
    splits = {}
    for data_file in entries[config]["data_files"]:
        files = sorted(Path(repo).glob(data_file["path"]))
        table = pa.concat_tables([pq.read_table(f) for f in files])
        splits[data_file["split"]] = datasets.Dataset(table)
    return datasets.DatasetDict(splits)


def tokenize_pairs(
    tokenizer,
    sources: Sequence[str],
    targets: Sequence[str],
    max_length: int,
    *,
    batch_size: int = 1000,
    desc: str = "tokenize",
    disable_progress: bool = False,
) -> list[dict]:
    """Examples `{"index", "input_ids", "labels"}` (lists of ids, truncated to `max_length`); `index` is the
    position in the input, so generated outputs can be put back in order after `gather_for_metrics`."""
    examples: list[dict] = []
    for start in tqdm(range(0, len(sources), batch_size), desc=desc, disable=disable_progress, leave=False):
        enc = tokenizer(
            list(sources[start : start + batch_size]),
            text_target=list(targets[start : start + batch_size]),
            max_length=max_length,
            truncation=True,
        )
        for offset, (ids, labels) in enumerate(zip(enc["input_ids"], enc["labels"], strict=True)):
            examples.append({"index": start + offset, "input_ids": ids, "labels": labels})
    return examples


def length_grouped_batches(examples: Sequence[dict], batch_size: int, seed: int, group: int = 64) -> list[list[dict]]:
    """Split `examples` into batches of similar length (less padding, hence more tokens/s): shuffle with `seed`,
    sort each run of `group * batch_size` examples by source+target length, cut into batches. Incomplete last
    batches are dropped. Feed the list to a shuffling `DataLoader(batches, batch_size=1, collate_fn=Seq2SeqCollator)`:
    the batches are fixed once, their order changes every epoch (and is restored on resume)."""
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    batches = []
    for start in range(0, len(order), group * batch_size):
        chunk = sorted(
            order[start : start + group * batch_size],
            key=lambda i: len(examples[i]["input_ids"]) + len(examples[i]["labels"]),
        )
        batches += [
            [examples[i] for i in chunk[b : b + batch_size]] for b in range(0, len(chunk) - batch_size + 1, batch_size)
        ]
    return batches


@dataclass
class Seq2SeqCollator:
    """Pads `input_ids` with `pad_token_id` and `labels` with -100 (ignored by the loss); builds `attention_mask`
    and keeps `index` as a tensor. Extra keys with per-example tensors are stacked as they are."""

    pad_token_id: int
    label_pad_token_id: int = -100

    def __call__(self, examples: list[dict] | list[list[dict]]) -> dict[str, torch.Tensor]:
        if examples and isinstance(examples[0], list):  # one pre-built batch from `length_grouped_batches`
            examples = [e for batch in examples for e in batch]

        def pad(seqs, value):
            width = max(len(s) for s in seqs)
            return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)

        batch = {
            "input_ids": pad([e["input_ids"] for e in examples], self.pad_token_id),
            "index": torch.tensor([e["index"] for e in examples], dtype=torch.long),
        }
        batch["attention_mask"] = (batch["input_ids"] != self.pad_token_id).long()
        for i, e in enumerate(examples):  # a real pad id inside a sequence would be masked: keep its true length
            batch["attention_mask"][i, : len(e["input_ids"])] = 1
        if "labels" in examples[0]:
            batch["labels"] = pad([e["labels"] for e in examples], self.label_pad_token_id)
        return batch


def rng_neutral(dataloader) -> Iterator:
    """Iterate `dataloader` without letting the creation of its iterator draw from the global torch RNG.

    torch's DataLoader draws a base seed from the global RNG when an iterator starts. A resumed run starts its
    iterator at a different point of the RNG stream than the uninterrupted run did, so its dropout masks would
    differ; with this wrapper a resumed run repeats the uninterrupted one exactly."""
    state = torch.get_rng_state()
    iterator = iter(dataloader)
    try:
        first = next(iterator)
    except StopIteration:
        return
    finally:
        torch.set_rng_state(state)
    yield first
    yield from iterator


def count_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Real (non-padding) source + target tokens of a batch."""
    n = int(batch["attention_mask"].sum())
    if "labels" in batch:
        n += int((batch["labels"] != -100).sum())
    return n


class ThroughputMeter:
    """Tokens per second over all processes since the last `rate()` call (one all-reduce per call)."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.tokens = 0
        self.start = time.perf_counter()

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def rate(self) -> tuple[float, int]:
        """(tokens/s over all processes, tokens counted) since the last call; resets the counters."""
        total = torch.tensor(self.tokens, device=self.accelerator.device)
        total = (
            int(self.accelerator.reduce(total, reduction="sum")) if self.accelerator.num_processes > 1 else self.tokens
        )
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.tokens, self.start = 0, time.perf_counter()
        return total / elapsed, total


# --------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_loss(accelerator, model, dataloader) -> float:
    """Mean cross-entropy per target token over the whole dataloader, summed over processes. RNG-neutral, so how
    often a run validates (or where a time budget stops it) does not change its dropout masks."""
    model.eval()
    total = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
    for batch in rng_neutral(dataloader):
        batch = {k: v for k, v in batch.items() if k != "index"}
        n_tokens = (batch["labels"] != -100).sum()
        loss = model(**batch).loss
        total += torch.stack([loss.double() * n_tokens, n_tokens.double()])
    total = accelerator.reduce(total, reduction="sum") if accelerator.num_processes > 1 else total
    model.train()
    return float(total[0] / total[1].clamp(min=1))


@dataclass
class TranslationScores:
    """Corpus BLEU and chrF (sacrebleu) with their signatures, and the hypotheses in corpus order."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    hypotheses: list[str]

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "hypotheses"}


def score_translations(hypotheses: Sequence[str], references: Sequence[str]) -> TranslationScores:
    """sacrebleu corpus BLEU and chrF of detokenised hypotheses against the raw reference strings."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    refs = [list(references)]
    return TranslationScores(
        bleu=bleu.corpus_score(list(hypotheses), refs).score,
        chrf=chrf.corpus_score(list(hypotheses), refs).score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        hypotheses=list(hypotheses),
    )


@torch.no_grad()
def evaluate_translation(
    accelerator,
    model,
    tokenizer,
    dataloader,
    references: Sequence[str],
    generation_kwargs: dict | None = None,
    desc: str = "generate",
) -> TranslationScores:
    """Generate for every batch (each batch carries `index`; other tensors than `labels` are passed to `generate`),
    gather across processes with `gather_for_metrics`,
    restore the corpus order, decode without special tokens and score against `references` (raw strings)."""
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    pad = tokenizer.pad_token_id
    by_index: dict[int, str] = {}
    for batch in tqdm(dataloader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        # Extra per-example tensors of the batch (e.g. `attribution_map`) go to `generate` too.
        extra = {k: v for k, v in batch.items() if k not in ("index", "labels", "input_ids", "attention_mask")}
        generated = unwrapped.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra, **(generation_kwargs or {})
        )
        generated = accelerator.pad_across_processes(generated, dim=1, pad_index=pad)
        generated, index = accelerator.gather_for_metrics((generated, batch["index"]))
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        for i, text in zip(index.tolist(), texts, strict=True):
            by_index[i] = text.strip()
    model.train()
    missing = [i for i in range(len(references)) if i not in by_index]
    if missing:
        raise RuntimeError(f"evaluation lost {len(missing)} of {len(references)} examples (e.g. index {missing[0]})")
    return score_translations([by_index[i] for i in range(len(references))], references)


def progress(iterable: Iterable | None = None, accelerator=None, **kwargs):
    """A tqdm bar shown only on the local main process."""
    disable = accelerator is not None and not accelerator.is_local_main_process
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)


def _out_of_time(accelerator, start: float, max_seconds: float) -> bool:
    """Whether any process has used the budget (all processes must stop at the same step)."""
    spent = torch.tensor([time.perf_counter() - start >= max_seconds], dtype=torch.int32, device=accelerator.device)
    return bool(accelerator.reduce(spent, reduction="sum").item())


def fit(
    accelerator,
    model,
    optimizer,
    scheduler,
    train_dl,
    valid_dl,
    state: TrainingState,
    *,
    max_steps: int,
    eval_steps: int,
    save_steps: int,
    log_steps: int,
    best_dir: str | Path,
    desc: str = "train",
    loss_fn=None,
    max_seconds: float | None = None,
) -> float:
    """The training loop every script shares: accumulate, clip, step; log loss and tokens/s; validation loss every
    `eval_steps` with early stopping (`state.patience`); `save_state()` every `save_steps` and after each
    evaluation (so `--resume` continues mid-epoch); the best weights are kept in `best_dir` and restored at the end.

    `max_seconds` is a wall-clock budget for this call: when it runs out the loop evaluates, saves its state and stops
    before `max_steps` (the schedule still ends at `max_steps`, so a later `--resume` continues the same run).
    `loss_fn(model, batch)` defaults to the model's own loss. Returns the seconds spent training in this call."""
    best_dir = Path(best_dir)
    loss_fn = loss_fn or (lambda m, b: m(**b).loss)
    meter = ThroughputMeter(accelerator)
    start = time.perf_counter()
    bar = progress(total=max_steps, initial=state.step, accelerator=accelerator, desc=desc)
    model.train()
    running_loss, tokens_per_s, out_of_time = None, 0.0, False
    while state.step < max_steps and not state.should_stop:
        if hasattr(train_dl, "set_epoch"):
            train_dl.set_epoch(state.epoch)
        epoch_dl = (
            accelerator.skip_first_batches(train_dl, state.batches_in_epoch) if state.batches_in_epoch else train_dl
        )
        for batch in rng_neutral(epoch_dl):
            batch.pop("index", None)
            with accelerator.accumulate(model):
                loss = loss_fn(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            meter.add(count_tokens(batch))
            running_loss = loss.item() if running_loss is None else 0.95 * running_loss + 0.05 * loss.item()
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            bar.update(1)
            if state.step % log_steps == 0 or state.step == max_steps:
                tokens_per_s, tokens = meter.rate()
                state.tokens_seen += tokens
                logger.info(
                    "step %d: loss %.3f, lr %.2e, %.0f tokens/s",
                    state.step,
                    running_loss,
                    scheduler.get_last_lr()[0],
                    tokens_per_s,
                )
            bar.set_postfix(loss=f"{running_loss:.3f}", tok_s=f"{tokens_per_s:.0f}")
            out_of_time = max_seconds is not None and _out_of_time(accelerator, start, max_seconds)
            evaluated = state.step % eval_steps == 0 or state.step == max_steps or out_of_time
            if evaluated:
                valid_loss = evaluate_loss(accelerator, model, valid_dl)
                improved = state.update_validation(valid_loss)
                logger.info(
                    "step %d: validation loss %.4f (best %.4f at step %d)",
                    state.step,
                    valid_loss,
                    state.best_loss,
                    state.best_step,
                )
                if improved:
                    accelerator.wait_for_everyone()
                    if accelerator.is_main_process:
                        accelerator.unwrap_model(model).save_pretrained(best_dir, save_function=accelerator.save)
                        (best_dir / "step.json").write_text(
                            json.dumps({"step": state.step, "validation_loss": valid_loss})
                        )
            if state.step % save_steps == 0 or evaluated:
                accelerator.save_state()
            if state.step >= max_steps or state.should_stop or out_of_time:
                break
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
        if out_of_time:
            logger.info("time budget of %s used at step %d of %d: stopping", format_seconds(max_seconds), state.step, max_steps)
            break
    bar.close()
    seconds = time.perf_counter() - start
    if state.should_stop:
        logger.info("early stopping at step %d: %d evaluations without improvement", state.step, state.bad_evaluations)
    accelerator.wait_for_everyone()
    step_file = best_dir / "step.json"
    best_step = json.loads(step_file.read_text())["step"] if step_file.exists() else None
    if best_step is not None and best_step == state.best_step != state.step:
        from safetensors.torch import load_file

        # Tied weights are not in the file (missing keys are expected); unexpected ones mean another model.
        _, unexpected = accelerator.unwrap_model(model).load_state_dict(load_file(best_dir / "model.safetensors"), strict=False)
        if unexpected:
            raise RuntimeError(f"best weights in {best_dir} do not fit the model: {unexpected[:5]}")
        logger.info("restored the best weights of step %d (validation loss %.4f)", state.best_step, state.best_loss)
    elif best_step is not None and best_step != state.best_step:
        logger.warning("best weights on disk are from step %s, not %d: keeping the last weights", best_step, state.best_step)
    return seconds


# --------------------------------------------------------------------------------------------- provenance
def map_provenance(attributions: str | Path, config: str | None) -> dict:
    """What a student or Attributor records in `agkd_run.json` about its data: a fresh run id (result rows name the
    run they measured) and the version of the map config it was trained on (None: trained without maps)."""
    from datasets_scripts.hub_layout import maps_version

    return {"run_id": uuid.uuid4().hex[:12], "maps_version": maps_version(attributions, config) if config else None}


def keep_finished(folder: str | Path, attributions: str | Path, config: str) -> bool:
    """Whether the finished student or Attributor in `folder` is kept (skipped) rather than retrained: it is, unless
    it was trained on other maps than `attributions`/`config` holds now (one trained before versions were recorded
    counts as current). Logs which."""
    from datasets_scripts.hub_layout import maps_version

    recorded = json.loads((Path(folder) / "agkd_run.json").read_text()).get("maps_version")
    current = maps_version(attributions, config)
    if recorded is not None and current is not None and recorded != current:
        logger.warning("%s was trained on maps of %s that were re-extracted since: retraining", folder, config)
        return False
    logger.info("%s already exists: skipped (pass --overwrite to retrain)", folder)
    return True


# --------------------------------------------------------------------------------------------- model cards
@dataclass
class MetricResult:
    """One model-index entry: a metric measured on one split of one dataset config."""

    dataset_id: str
    dataset_name: str
    config: str
    split: str
    metric: str  # "bleu" | "chrf" | ...
    value: float
    task_name: str = "Translation"


def write_model_card(
    folder: str | Path,
    *,
    model_name: str,
    body: str,
    languages: Sequence[str],
    results: Sequence[MetricResult] = (),
    license: str = "apache-2.0",
    tags: Sequence[str] = ("translation",),
    datasets: Sequence[str] = (),
    base_model: str | None = None,
    pipeline_tag: str = "translation",
    library_name: str = "transformers",
) -> Path:
    """Write `<folder>/README.md`: YAML metadata with `model-index` (from `ModelCardData`/`EvalResult`, offline)
    followed by the markdown `body`."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    metric_names = {"bleu": "BLEU", "chrf": "chrF"}
    eval_results = [
        EvalResult(
            task_type="translation",
            task_name=f"{r.task_name} {r.config}",
            dataset_type=r.dataset_id,
            dataset_name=r.dataset_name,
            dataset_config=r.config,
            dataset_split=r.split,
            metric_type=r.metric,
            metric_name=metric_names.get(r.metric, r.metric),
            metric_value=round(float(r.value), 2),
        )
        for r in results
    ]
    data = ModelCardData(
        language=list(languages),
        license=license,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=list(tags),
        datasets=list(datasets) or None,
        base_model=base_model,
        metrics=sorted({r.metric for r in results}) or None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n")
    path = Path(folder) / "README.md"
    card.save(path)
    return path


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


__all__ = [
    "MetricResult",
    "Seq2SeqCollator",
    "ThroughputMeter",
    "TrainingState",
    "TranslationScores",
    "checkpoints",
    "count_tokens",
    "dataset_configs",
    "load_dataset_config",
    "evaluate_loss",
    "evaluate_translation",
    "fit",
    "format_seconds",
    "length_grouped_batches",
    "make_accelerator",
    "progress",
    "resume_from_latest",
    "rng_neutral",
    "score_translations",
    "tokenize_pairs",
    "write_model_card",
]
