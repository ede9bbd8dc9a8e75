"""The training recipe every `accelerate` script in `training/` shares (teachers, students, Attributors).

A script keeps the shape of transformers' `run_translation_no_trainer.py` (arguments -> accelerator -> data ->
model -> optimisation -> loop -> save) and takes each step from here:

- `start_run(work_dir, ...)`: the accelerator of a run, with automatic checkpoint naming under
  `<work_dir>/checkpoints` and seedable samplers (a resumed run sees the same batches); a fresh run deletes the old
  checkpoints (main process, once the accelerator exists), `--resume` onto checkpoints of other settings is refused.
- `prepare_training(...)`: AdamW, a warm-up schedule, `accelerator.prepare`, a `TrainingState` registered for
  checkpointing, and `--resume` from the newest checkpoint that loads.
- `fit(...)`: accumulate, clip, step; loss and tokens/s; validation loss with early stopping; checkpoints with a
  completion marker; a wall-clock budget; the best weights restored at the end.
- Experiment trackers (`--report_to`, `Tracking`): the curves of every run (training loss, learning rate, tokens/s,
  validation loss, the map-supervision term, final metrics) go to accelerate's trackers, TensorBoard event files under
  `runs/<preset>/logs/<model name>/` by default; a tracker that is missing or fails is warned about and dropped.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from agkd.datasets_scripts.release_layout import default_logging_dir

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)$")
TRACKING_EXTRA = "pip install 'agkd[tracking]'"  # what installs `--report_to`'s default tracker, TensorBoard


# --------------------------------------------------------------------------------------------- accelerator and runs
@dataclass(kw_only=True)
class RunArguments:
    """The command-line options every training script shares: which preset, where the run writes, and how it
    continues. Each script's arguments subclass this (with `presets.BudgetArguments`)."""

    preset: str = field(default="demo", metadata={"help": "smoke, demo, lab or paper: fills every size/budget default"})
    output_dir: str | None = field(
        default=None,
        metadata={"help": "models root; the model goes to <output_dir>/<name> (default: runs/<preset>/hub/models)"},
    )
    checkpoint_dir: str | None = field(
        default=None,
        metadata={"help": "where checkpoints go (default: runs/<preset>/checkpoints, or next to <output_dir>)"},
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "continue from the newest checkpoint of an interrupted run (refused if it was made with other "
            "model, data or optimisation options; max_steps and the evaluation options may change)"
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "retrain a model whose finished folder exists"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, sampling and data order"})
    mixed_precision: str = field(
        default="auto",
        metadata={"help": "auto (what `accelerate launch` says if it says it, else bf16 autocast with fp32 master "
                  "weights on a CUDA GPU that supports it, else none), no, bf16 or fp16"},
    )
    log_steps: int = field(default=50, metadata={"help": "log loss and tokens/s every N optimizer steps"})
    report_to: list[str] | None = field(
        default=None,
        metadata={"help": "experiment trackers of the training curves: tensorboard, trackio, wandb (or any other that "
                  "accelerate supports), all (every installed one) or none (default: tensorboard if it is installed: "
                  f"{TRACKING_EXTRA})"},
    )
    logging_dir: str | None = field(
        default=None,
        metadata={
            "help": "trackers write under <logging_dir>/<model name> (default: runs/<preset>/logs, or `logs` next "
            "to the models root)"
        },
    )

    def tracking(self, name: str, config: dict) -> Tracking:
        """What the run of model `name` reports to `--report_to`; `config` (its settings) is stored with it."""
        root = self.logging_dir or default_logging_dir(self.output_dir)
        return Tracking(self.report_to, root, name, f"agkd-{self.preset}", config)


# --------------------------------------------------------------------------------------------- experiment trackers
NO_TRACKER = "none"
_said = set()  # messages said once per process (a teacher run trains one model per pair)


def _once(level: int, message: str, *args) -> None:
    if message % args not in _said:
        _said.add(message % args)
        logger.log(level, message, *args)


@dataclass
class Tracking:
    """What one run reports to its experiment trackers: `report_to` (None: TensorBoard if installed), the folder
    the trackers write under (TensorBoard: `<logging_dir>/<run_name>/`), the run's name (the model's), the project
    that groups a grid's runs (wandb, trackio) and the run's settings."""

    report_to: list[str] | None
    logging_dir: str | Path
    run_name: str
    project: str
    config: dict = field(default_factory=dict)


def known_trackers() -> list[str]:
    """The tracker names accelerate knows (installed or not)."""
    from accelerate.utils import LoggerType

    return [t.value for t in LoggerType if t != LoggerType.ALL]


def check_report_to(report_to: list[str] | None) -> None:
    """Refuse tracker names accelerate does not know (before anything runs)."""
    unknown = [n for n in report_to or [] if n not in (NO_TRACKER, "all", *known_trackers())]
    if unknown:
        raise ValueError(
            f"unknown --report_to {' '.join(unknown)}; choose from none, all, {', '.join(known_trackers())}"
        )


def default_report_to() -> list[str]:
    """`--report_to`'s default: TensorBoard event files (offline) where TensorBoard is installed, else nothing, with
    one line that says how to turn it on."""
    if importlib.util.find_spec("tensorboard") is not None:
        return ["tensorboard"]
    _once(logging.INFO, "training curves are not recorded: TensorBoard is not installed (%s, or pass --report_to)",
          TRACKING_EXTRA)
    return [NO_TRACKER]


def tracker_names(report_to: list[str] | None) -> list[str]:
    """The installed trackers `report_to` names (`all`: every installed one; none: []). A named tracker that is not
    installed is warned about once and left out: a missing tracker never stops a run."""
    from accelerate.tracking import get_available_trackers

    check_report_to(report_to)
    names = default_report_to() if report_to is None else list(report_to)
    installed = [str(t.value) for t in get_available_trackers()]
    if "all" in names:
        return installed
    for name in names:
        if name != NO_TRACKER and name not in installed:
            _once(logging.WARNING, "--report_to %s: %s is not installed, its curves are not recorded (pip install %s)",
                  name, name, name)
    return [n for n in dict.fromkeys(names) if n in installed]


def make_trackers(tracking: Tracking) -> list:
    """accelerate's `log_with` for `tracking`: trackers that take a project (wandb, trackio) share the grid's project
    and name their run after the model; the others get the model's name (TensorBoard: the folder of its events)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    trackers = []
    for name in tracker_names(tracking.report_to):
        if name in ("wandb", "trackio"):
            trackers.append(LOGGER_TYPE_TO_CLASS[name](tracking.project, name=tracking.run_name))
        else:
            trackers.append(name)
    return trackers


def tracker_config(settings: dict) -> dict[str, str | int | float | bool]:
    """`settings` with values every tracker stores (hyperparameter panels take str, int, float and bool only):
    lists, dicts and None as JSON text."""
    return {
        key: value if isinstance(value, str | int | float | bool) else json.dumps(value, sort_keys=True)
        for key, value in settings.items()
    }


def _drop_tracker(accelerator, tracker, action: str, error: Exception) -> None:
    """A tracker that failed: warned about once, then left out for the rest of the run, which goes on."""
    logger.warning(
        "experiment tracker %s failed to %s (%s: %s): training goes on without it", getattr(tracker, "name", tracker),
        action, type(error).__name__, error,
    )
    if tracker in accelerator.trackers:
        accelerator.trackers.remove(tracker)


def start_tracking(accelerator, tracking: Tracking) -> None:
    """Start the run's trackers on the main process (`accelerator.init_trackers`) and store its settings. If that
    fails, the run goes on with no tracker."""
    if not accelerator.is_main_process or not accelerator.log_with:
        return
    try:
        accelerator.init_trackers(tracking.run_name, config=tracker_config(tracking.config))
    except Exception as error:  # noqa: BLE001 - a tracker's own failure (no login, no disk, a version) is not the run's
        logger.warning(
            "experiment trackers (%s) failed to start (%s: %s): training goes on without them",
            ", ".join(map(str, accelerator.log_with)), type(error).__name__, error,
        )
        accelerator.trackers.clear()
        return
    where = [f"{t.name} in {t.logging_dir}" if hasattr(t, "logging_dir") else t.name for t in accelerator.trackers]
    logger.info("training curves go to %s", ", ".join(where))


def track(accelerator, values: dict[str, float], step: int) -> None:
    """Log `values` at `step` to the run's trackers (main process only); one that fails is dropped with a warning."""
    if not accelerator.is_main_process:
        return
    for tracker in list(accelerator.trackers):
        try:
            tracker.log(values, step=step)
        except Exception as error:  # noqa: BLE001 - see `start_tracking`
            _drop_tracker(accelerator, tracker, "log", error)


def resolve_mixed_precision(value: str | None) -> str | None:
    """`auto`: None where `accelerate launch` (or its config) set a precision, so accelerate keeps it; else bf16 on
    a CUDA GPU that supports it (autocast in the forward pass, fp32 weights and optimizer state, so a step does more
    work per second with the same results semantics); else no. Other values pass through."""
    import os

    if value != "auto":
        return value
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def make_accelerator(
    project_dir: str | Path,
    *,
    seed: int = 0,
    gradient_accumulation_steps: int = 1,
    mixed_precision: str | None = None,
    total_limit: int = 2,
    cpu: bool | None = None,
    log_with: list | None = None,
    logging_dir: str | Path | None = None,
):
    """An `Accelerator` whose `save_state()` writes `<project_dir>/checkpoints/checkpoint_<i>` (the last
    `total_limit` are kept). `mixed_precision`: see `resolve_mixed_precision` (None: `accelerate launch`'s value).
    Seeds every RNG with `seed`; non-main processes log warnings only. `cpu=None` means "CPU if there is no CUDA":
    accelerate only detects a `torchrun` multi-process CPU run (gloo) when told it runs on the CPU. `log_with` and
    `logging_dir`: its experiment trackers (see `make_trackers`), started by `start_tracking`."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    if cpu is None:
        cpu = not torch.cuda.is_available()
    accelerator = Accelerator(
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(mixed_precision),
        cpu=cpu,
        log_with=log_with or None,
        project_config=ProjectConfiguration(
            project_dir=str(project_dir), automatic_checkpoint_naming=True, total_limit=total_limit,
            logging_dir=None if logging_dir is None else str(logging_dir),
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


CHECKPOINT_COMPLETE = "checkpoint_complete"


def checkpoints(project_dir: str | Path) -> list[Path]:
    """`checkpoint_<i>` folders under `<project_dir>/checkpoints`, oldest first."""
    root = Path(project_dir) / "checkpoints"
    found = [
        (int(m.group(1)), p) for p in root.glob("checkpoint_*") if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()
    ]
    return [p for _, p in sorted(found)]


def save_checkpoint(accelerator) -> None:
    """`accelerator.save_state()`, then a `checkpoint_complete` marker once every process has written its part:
    a run killed while writing leaves a folder without the marker, which `resume_from_latest` skips."""
    accelerator.save_state()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        latest = checkpoints(accelerator.project_dir)[-1]
        (latest / CHECKPOINT_COMPLETE).write_text("")


def resume_from_latest(accelerator) -> Path | None:
    """Load the newest loadable checkpoint of the accelerator's project (model, optimizer, scheduler, RNG,
    registered objects) and set the checkpoint iteration past every folder so the next `save_state()` gets a fresh
    name. None if there is none.

    A folder without the `checkpoint_complete` marker was being written when its run was killed (or predates the
    marker): it is tried, and removed with a warning if it does not load, falling back to the one before. Loading
    overwrites everything a failed attempt touched; if no checkpoint loads, the run stops instead of training on
    half-loaded weights."""
    found = checkpoints(accelerator.project_dir)
    if not found:
        return None
    accelerator.project_configuration.iteration = int(CHECKPOINT_RE.match(found[-1].name).group(1)) + 1
    for candidate in reversed(found):
        try:
            accelerator.load_state(str(candidate))
            return candidate
        except Exception as error:  # a half-written file fails in torch, safetensors or pickle, each its own way
            if (candidate / CHECKPOINT_COMPLETE).exists():
                raise
            reason = f"{type(error).__name__}: {error}"
            logger.warning("%s does not load (%s): its run was stopped while writing it; dropped", candidate, reason)
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                shutil.rmtree(candidate, ignore_errors=True)
    raise RuntimeError(
        f"--resume: no checkpoint in {Path(accelerator.project_dir) / 'checkpoints'} loads; run without --resume to "
        "start over"
    )


RUN_SETTINGS = "run_settings.json"
# A resumed run may change these (`--resume --max_steps 1600` extends a schedule); every other setting must match.
RESUMABLE_CHANGES = ("max_steps", "eval_steps", "save_steps", "patience", "num_beams")


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

def start_run(
    work_dir: str | Path,
    *,
    resume: bool,
    settings: dict,
    seed: int,
    mixed_precision: str | None = None,
    gradient_accumulation_steps: int = 1,
    tracking: Tracking | None = None,
):
    """The accelerator of one run whose checkpoints live in `work_dir`, with its experiment trackers started
    (`tracking`: none if None).

    `--resume` onto checkpoints written with other `settings` is refused before anything is touched; a fresh run
    deletes the old checkpoints, on the main process only and after every process has its accelerator (deleting
    before would race under `torchrun`); the settings are recorded beside the checkpoints for the next resume."""
    work_dir = Path(work_dir)
    if resume:
        check_resumable(work_dir, settings)
    accelerator = make_accelerator(
        work_dir, seed=seed, mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps,
        log_with=make_trackers(tracking) if tracking else None, logging_dir=tracking.logging_dir if tracking else None,
    )
    if accelerator.is_main_process:
        if not resume and work_dir.exists():
            logger.info("not resuming: removing the old checkpoints in %s", work_dir)
            shutil.rmtree(work_dir)
        save_run_settings(work_dir, settings)
    accelerator.wait_for_everyone()
    if tracking is not None:
        start_tracking(accelerator, tracking)
    return accelerator


# The training recipe of every model here (teachers, warm starts, students, Attributors, the positive control's cells):
# AdamW with the Transformer's betas (Vaswani et al.) and a light weight decay, a warm-up then a `get_scheduler` shape.
ADAM_BETAS = (0.9, 0.98)
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0


def make_optimizer(model, *, learning_rate: float, warmup_steps: int, max_steps: int,
                   betas: tuple[float, float] = ADAM_BETAS, weight_decay: float = WEIGHT_DECAY,
                   lr_scheduler: str = "linear"):
    """AdamW and its learning-rate schedule (warm-up, then `lr_scheduler`'s shape over `max_steps`)."""
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=betas, weight_decay=weight_decay)
    scheduler = get_scheduler(lr_scheduler, optimizer, num_warmup_steps=warmup_steps, num_training_steps=max_steps)
    return optimizer, scheduler


def prepare_training(
    accelerator,
    model,
    train_dl,
    eval_dls: Iterable,
    *,
    learning_rate: float,
    warmup_steps: int,
    max_steps: int,
    patience: int,
    resume: bool,
    betas: tuple[float, float] = ADAM_BETAS,
    weight_decay: float = WEIGHT_DECAY,
    lr_scheduler: str = "linear",
):
    """AdamW and a warm-up schedule, everything through `accelerator.prepare`, and the run's `TrainingState`
    (registered for checkpointing, loaded from the newest checkpoint on `--resume`).

    Returns `(model, optimizer, scheduler, train_dl, eval_dls, state)`. Schedules count steps of every process,
    as `accelerate` steps a prepared scheduler once per process."""
    optimizer, scheduler = make_optimizer(
        model, learning_rate=learning_rate, warmup_steps=warmup_steps * accelerator.num_processes,
        max_steps=max_steps * accelerator.num_processes, betas=betas, weight_decay=weight_decay,
        lr_scheduler=lr_scheduler,
    )
    eval_dls = list(eval_dls)
    model, optimizer, train_dl, *eval_dls, scheduler = accelerator.prepare(
        model, optimizer, train_dl, *eval_dls, scheduler
    )
    state = TrainingState(patience=patience)
    accelerator.register_for_checkpointing(state)
    if resume:
        latest = resume_from_latest(accelerator)
        if latest is None:
            logger.info(
                "--resume: no checkpoint in %s yet, starting from scratch",
                Path(accelerator.project_dir) / "checkpoints",
            )
        else:
            logger.info("resumed from %s at step %d (epoch %d)", latest, state.step, state.epoch)
    return model, optimizer, scheduler, train_dl, eval_dls, state


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


# --------------------------------------------------------------------------------------------- the loop
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


# Loss terms a model output may carry beside `loss`, logged as `train/<name>` (running mean, like the loss).
TRACKED_TERMS = ("supervision_loss",)


def _loss_and_terms(output) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss to step on and the values of the `TRACKED_TERMS` an output carries; the output itself (its logits)
    is not kept beyond the forward pass."""
    if isinstance(output, torch.Tensor):
        return output, {}
    terms = {t: float(v.detach()) for t in TRACKED_TERMS if (v := getattr(output, t, None)) is not None}
    return output.loss, terms


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
    `loss_fn(model, batch)` returns the loss, or an output with `.loss` (default: the model's output). Each log step
    and evaluation goes to the accelerator's trackers (`track`): `train/loss` (the running loss of the log line),
    `train/learning_rate`, `train/tokens_per_second`, `validation/loss`, and the terms of `TRACKED_TERMS` the output
    has (a `supervise` student's `supervision_loss`). Returns the seconds spent training in this call."""
    best_dir = Path(best_dir)
    loss_fn = loss_fn or (lambda m, b: m(**b))
    meter = ThroughputMeter(accelerator)
    start = time.perf_counter()
    bar = progress(total=max_steps, initial=state.step, accelerator=accelerator, desc=desc)
    model.train()
    running_loss, tokens_per_s, out_of_time = None, 0.0, False
    running_terms: dict[str, float] = {}
    while state.step < max_steps and not state.should_stop:
        if hasattr(train_dl, "set_epoch"):
            train_dl.set_epoch(state.epoch)
        epoch_dl = (
            accelerator.skip_first_batches(train_dl, state.batches_in_epoch) if state.batches_in_epoch else train_dl
        )
        for batch in rng_neutral(epoch_dl):
            batch.pop("index", None)
            with accelerator.accumulate(model):
                loss, terms = _loss_and_terms(loss_fn(model, batch))
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            meter.add(count_tokens(batch))
            running_loss = loss.item() if running_loss is None else 0.95 * running_loss + 0.05 * loss.item()
            for term, value in terms.items():
                running_terms[term] = 0.95 * running_terms.get(term, value) + 0.05 * value
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            bar.update(1)
            if state.step % log_steps == 0 or state.step == max_steps:
                tokens_per_s, tokens = meter.rate()
                state.tokens_seen += tokens
                learning_rate = scheduler.get_last_lr()[0]
                logger.info(
                    "step %d: loss %.3f, lr %.2e, %.0f tokens/s", state.step, running_loss, learning_rate, tokens_per_s
                )
                track(accelerator, {
                    "train/loss": running_loss, "train/learning_rate": learning_rate,
                    "train/tokens_per_second": tokens_per_s, **{f"train/{k}": v for k, v in running_terms.items()},
                }, state.step)
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
                track(accelerator, {"validation/loss": valid_loss}, state.step)
                if improved:
                    accelerator.wait_for_everyone()
                    if accelerator.is_main_process:
                        accelerator.unwrap_model(model).save_pretrained(best_dir, save_function=accelerator.save)
                        (best_dir / "step.json").write_text(
                            json.dumps({"step": state.step, "validation_loss": valid_loss})
                        )
            if state.step % save_steps == 0 or evaluated:
                save_checkpoint(accelerator)
            if state.step >= max_steps or state.should_stop or out_of_time:
                break
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
        if out_of_time:
            logger.info(
                "time budget of %s used at step %d of %d: stopping", format_seconds(max_seconds), state.step, max_steps
            )
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
        _, unexpected = accelerator.unwrap_model(model).load_state_dict(
            load_file(best_dir / "model.safetensors"), strict=False
        )
        if unexpected:
            raise RuntimeError(f"best weights in {best_dir} do not fit the model: {unexpected[:5]}")
        logger.info("restored the best weights of step %d (validation loss %.4f)", state.best_step, state.best_loss)
    elif best_step is not None and best_step != state.best_step:
        logger.warning(
            "best weights on disk are from step %s, not %d: keeping the last weights", best_step, state.best_step
        )
    return seconds


def end_run(accelerator) -> None:
    """Every process waits for the main one to have written the model folder, then the trackers are closed (one that
    fails to close is warned about) and accelerate ends the run."""
    accelerator.wait_for_everyone()
    for tracker in list(accelerator.trackers):
        try:
            tracker.finish()
        except Exception as error:  # noqa: BLE001 - see `start_tracking`
            _drop_tracker(accelerator, tracker, "close", error)
    accelerator.trackers.clear()
    accelerator.end_training()


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
