"""Train an attribution-injected student on agkd-attributions with `accelerate` (issue #6).

One run trains one `AgkdStudentForConditionalGeneration` from scratch, in the teacher's tokenisation, for one
(method or control) x operator x map normalisation x seed. `--method none` is the no-map baseline: it trains on
exactly the same pairs (read from the `uniform` control config) with operator `none`.

    agkd student --preset demo --attributions runs/demo/hub/datasets/agkd-attributions \\
        --teacher runs/demo/hub/models/teacher-marian-de-en --method attention --operator add
    torchrun --nproc_per_node 2 -m training.train_student ...     # same script, several processes
    accelerate launch --mixed_precision bf16 -m training.train_student ...   # GPUs

Data: the rows of config `<teacher>.<pair>.<method>` (target kind `reference`: the gold translation, the paper's
protocol) or `<teacher>.<pair>.<method>.teacher` (`--target_kind teacher`: the teacher's own translation, i.e.
forward simulation). The stored `source_ids`/`target_ids` must be what the teacher's tokenizer gives for the row's
texts and every map must be `[len(target_ids)][len(source_ids)]`: any mismatch stops the run before training, naming
the first bad example. The run writes a Hub model folder (weights, modeling code for `trust_remote_code`,
tokenizer, `agkd_run.json`, model card) to `--output_dir/<name>`; checkpoints and `--resume` work as for teachers.

Designs (`student_init` in every run record and result row): `scratch` trains from random weights (the paper);
`--init_from <folder>` fine-tunes a shared no-map warm start instead (`warm`, not the paper's design). The warm start
itself is `--train_corpus <agkd-parallel>`: a no-map student trained on the corpus pairs of the pair (sizes and budget
from the preset's `warm_start` section), written as `warmstart-<teacher>-<pair>-s<seed>`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from training import common
from training.cli import run_as_script, stage_main
from training.presets import PRESETS, StudentPreset

logger = logging.getLogger(__name__)

BASELINE = "none"
BASELINE_DATA_CONFIG = "uniform"  # the control whose rows (same pairs as every method) the baseline trains on and evaluate scores
TARGET_KINDS = ("reference", "teacher")


# ================================================================================================ arguments
@dataclass
class StudentArguments:
    attributions: str = field(metadata={"help": "agkd-attributions folder or Hub id"})
    teacher: str = field(metadata={"help": "teacher folder or Hub id: its tokenizer (and decoder start) is used"})
    method: str = field(
        default=BASELINE, metadata={"help": "Inseq method id, control (random, uniform, diagonal) or none (baseline)"}
    )
    operator: str = field(default="add", metadata={"help": "injection operator: add, multiply, average or replace"})
    map_normalization: str = field(
        default="none", metadata={"help": "none, row_sum, row_max, row_minmax or row_softmax (applied at injection)"}
    )
    injection_layers: list[int] | None = field(default=None, metadata={"help": "decoder layers (default: all)"})
    injection_heads: list[int] | None = field(default=None, metadata={"help": "heads of those layers (default: all)"})
    pair: str = field(default="de-en", metadata={"help": "language pair"})
    teacher_name: str = field(default="marian", metadata={"help": "teacher family in the dataset config names"})
    target_kind: str = field(
        default="reference", metadata={"help": "reference (gold targets) or teacher (the teacher's translations)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of initialisation and data order"})
    init_from: str | None = field(
        default=None,
        metadata={"help": "fine-tune this finished student folder (the shared no-map warm start) instead of training "
                  "from random weights: the `warm` design, not the paper's (model size comes from that folder)"},
    )
    train_corpus: str | None = field(
        default=None,
        metadata={"help": "train the no-map warm start on this agkd-parallel folder or Hub id (train split; validation "
                  "for early stopping) instead of map rows; budget from the preset's warm_start section"},
    )
    preset: str = field(default="demo", metadata={"help": "smoke, demo or paper: fills every size/budget default"})
    output_dir: str | None = field(
        default=None, metadata={"help": "models root; the student goes to <output_dir>/<name> (default: runs/<preset>/hub/models)"}
    )
    checkpoint_dir: str | None = field(default=None, metadata={"help": "default: runs/<preset>/checkpoints"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint of an interrupted run"})
    overwrite: bool = field(default=False, metadata={"help": "retrain a student whose finished folder exists"})
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    validation_split: str = field(default="validation", metadata={"help": "split for early stopping"})
    mixed_precision: str | None = field(default=None, metadata={"help": "no, bf16 or fp16 (default: accelerate's)"})
    log_steps: int = field(default=50, metadata={"help": "log loss and tokens/s every N steps"})
    # ---- preset fields: None means "take the preset's value"
    d_model: int | None = field(default=None, metadata={"help": "hidden size"})
    layers: int | None = field(default=None, metadata={"help": "encoder and decoder layers (each)"})
    heads: int | None = field(default=None, metadata={"help": "attention heads"})
    ffn_dim: int | None = field(default=None, metadata={"help": "feed-forward size"})
    dropout: float | None = field(default=None, metadata={"help": "dropout"})
    max_steps: int | None = field(default=None, metadata={"help": "optimizer steps at most"})
    batch_size: int | None = field(default=None, metadata={"help": "examples per batch and process"})
    learning_rate: float | None = field(default=None, metadata={"help": "peak learning rate (AdamW)"})
    warmup_steps: int | None = field(default=None, metadata={"help": "linear warm-up steps, then linear decay"})
    max_length: int | None = field(default=None, metadata={"help": "longer pairs are skipped (counted in the card)"})
    eval_steps: int | None = field(default=None, metadata={"help": "validation loss every N steps (early stopping)"})
    patience: int | None = field(default=None, metadata={"help": "evaluations without improvement before stopping"})
    num_beams: int | None = field(default=None, metadata={"help": "beam size written to generation_config"})


def finalize_arguments(args: StudentArguments) -> StudentArguments:
    """Fill preset defaults and check every choice before anything is loaded."""
    from datasets_scripts.attribution_methods import CONTROLS, METHODS
    from modeling.attribution_injection import INJECTION_OPERATORS, MAP_NORMALIZATIONS, check_choice

    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.method != BASELINE and args.method not in METHODS and args.method not in CONTROLS:
        raise ValueError(f"unknown method {args.method!r}; choose none, one of {[*METHODS]} or {[*CONTROLS]}")
    if args.target_kind not in TARGET_KINDS:
        raise ValueError(f"unknown target kind {args.target_kind!r}; choose one of {TARGET_KINDS}")
    if args.train_corpus is not None and (args.method != BASELINE or args.init_from is not None):
        raise ValueError("--train_corpus trains the no-map warm start: it takes --method none and no --init_from")
    if args.init_from is not None and not is_finished(Path(args.init_from)):
        raise FileNotFoundError(f"--init_from {args.init_from}: not a finished student folder (train the warm start first)")
    if args.method == BASELINE:
        args.operator = "none"
    check_choice("injection_operator", args.operator, INJECTION_OPERATORS)
    check_choice("map_normalization", args.map_normalization, MAP_NORMALIZATIONS)
    preset = PRESETS[args.preset]
    budget = preset.warm_start if args.train_corpus is not None else preset.student
    for f in fields(StudentPreset):
        if getattr(args, f.name) is None:
            setattr(args, f.name, getattr(budget, f.name))
    root = preset.root()
    args.output_dir = args.output_dir or str(root / "hub" / "models")
    args.checkpoint_dir = args.checkpoint_dir or str(Path(args.output_dir).parent.parent / "checkpoints")
    return args


def data_config(args: StudentArguments) -> str:
    """The agkd-attributions config this run reads (see datasets_scripts/extract_attributions.py for the names)."""
    from datasets_scripts.extract_attributions import config_name

    method = BASELINE_DATA_CONFIG if args.method == BASELINE else args.method
    return config_name(args.teacher_name, args.pair, method, args.target_kind)


def student_init(args: StudentArguments) -> str:
    """The design of a run: `warm` (fine-tuned from a warm start) or `scratch` (random weights, the paper's)."""
    return "warm" if args.init_from is not None else "scratch"


def warm_start_name(teacher_name: str, pair: str, seed: int = 0) -> str:
    """Folder and repo name of the shared no-map warm start of a teacher and pair."""
    return f"warmstart-{teacher_name}-{pair}-s{seed}"


def student_name(args: StudentArguments) -> str:
    """Folder and repo name: student-<teacher>-<pair>-<method>[-<operator>][-<normalisation>][-teacher][-warm]-s<seed>;
    the warm start itself is warmstart-<teacher>-<pair>-s<seed>."""
    if args.train_corpus is not None:
        return warm_start_name(args.teacher_name, args.pair, args.seed)
    parts = ["student", args.teacher_name, args.pair, args.method]
    if args.method != BASELINE:
        parts.append(args.operator)
    if args.map_normalization != "none":
        parts.append(args.map_normalization.replace("_", ""))
    if args.injection_layers is not None:
        parts.append("L" + "".join(map(str, args.injection_layers)))
    if args.injection_heads is not None:
        parts.append("H" + "".join(map(str, args.injection_heads)))
    if args.target_kind == "teacher":
        parts.append("teacher")
    if student_init(args) == "warm":
        parts.append("warm")
    parts.append(f"s{args.seed}")
    return "-".join(p.replace("_", "") if p == args.method else p for p in parts)


# ================================================================================================ data
def load_teacher_tokenizer(teacher: str, family: str, pair: str):
    """The teacher's tokenizer (mBART: with the pair's language codes) and the ids the student must share with it:
    the decoder start token, and for mBART the target language code forced as the first generated token."""
    from transformers import AutoConfig

    from training.teachers import generation_kwargs, load_tokenizer

    tokenizer = load_tokenizer(family, pair, teacher)
    config = AutoConfig.from_pretrained(teacher)
    return tokenizer, config, generation_kwargs(family, tokenizer).get("forced_bos_token_id")


def map_examples(rows, tokenizer, max_length: int, desc: str) -> tuple[list[dict], int]:
    """Examples `{index, input_ids, labels, attribution}` from attribution rows, checked against the tokenizer.

    Raises a ValueError naming the first row whose stored ids differ from the tokenizer's, or whose map shape
    differs from the tokenised lengths. Pairs longer than `max_length` are skipped and counted."""
    examples, skipped = [], 0
    columns = rows.select_columns(["id", "source", "target", "source_ids", "target_ids", "attribution"])
    for start in common.progress(range(0, len(columns), 512), desc=desc, leave=False):
        chunk = columns[start : start + 512]
        encoded = tokenizer(chunk["source"], text_target=chunk["target"])
        for offset in range(len(chunk["id"])):
            row_id = chunk["id"][offset]
            source_ids, target_ids = chunk["source_ids"][offset], chunk["target_ids"][offset]
            if list(source_ids) != encoded["input_ids"][offset] or list(target_ids) != encoded["labels"][offset]:
                raise ValueError(
                    f"{desc}: example {row_id!r} (row {start + offset}) has token ids that differ from the tokenizer's "
                    "for its texts: the map dataset was made with another tokenizer than the teacher given"
                )
            attribution = np.asarray(chunk["attribution"][offset], dtype=np.float32)
            if attribution.shape != (len(target_ids), len(source_ids)):
                raise ValueError(
                    f"{desc}: example {row_id!r} (row {start + offset}) has a map of shape {attribution.shape}, but "
                    f"{len(target_ids)} target x {len(source_ids)} source tokens"
                )
            if len(source_ids) > max_length or len(target_ids) > max_length:
                skipped += 1
                continue
            examples.append(
                {"index": len(examples), "input_ids": source_ids, "labels": target_ids, "attribution": attribution}
            )
    return examples, skipped


@dataclass
class MapCollator(common.Seq2SeqCollator):
    """`Seq2SeqCollator` plus `attribution_map` `[B, T, S]` (zero padded) and `attribution_map_mask` `[B, T]`.

    `T` is the longest map of the batch, which need not be the labels' length: at test time a map of one target
    (the teacher's translation) can be injected while the student is forced on another (the reference); a decoder
    position beyond a map's last row gets no injection, as in generation."""

    with_maps: bool = True

    def __call__(self, examples: list[dict] | list[list[dict]]) -> dict[str, torch.Tensor]:
        if examples and isinstance(examples[0], list):
            examples = [e for batch in examples for e in batch]
        batch = super().__call__(examples)
        if self.with_maps:
            map_rows = max(e["attribution"].shape[0] for e in examples)
            maps = torch.zeros(len(examples), map_rows, batch["input_ids"].shape[1])
            rows = torch.zeros(maps.shape[:2], dtype=torch.bool)
            for i, example in enumerate(examples):
                target_length, source_length = example["attribution"].shape
                maps[i, :target_length, :source_length] = torch.from_numpy(example["attribution"])
                rows[i, :target_length] = True
            batch["attribution_map"], batch["attribution_map_mask"] = maps, rows
        return batch


# ================================================================================================ model
def build_student(args: StudentArguments, tokenizer, teacher_config, forced_bos_token_id: int | None):
    """A student from random weights, or the warm start of `--init_from` with this run's injection settings and
    dropout (its size then comes from the warm start and is written back into `args`, so the record is true)."""

    from modeling import AgkdStudentConfig, AgkdStudentForConditionalGeneration

    injection = dict(
        injection_operator=args.operator,
        injection_layers=args.injection_layers,
        injection_heads=args.injection_heads,
        map_normalization=args.map_normalization,
    )
    if args.init_from is not None:
        config = AgkdStudentConfig.from_pretrained(args.init_from, dropout=args.dropout, **injection)
        if config.vocab_size != len(tokenizer):
            raise ValueError(f"--init_from {args.init_from} has a vocabulary of {config.vocab_size}, the teacher {len(tokenizer)}")
        args.d_model, args.layers, args.heads = config.d_model, config.encoder_layers, config.encoder_attention_heads
        args.ffn_dim = config.encoder_ffn_dim
        model = AgkdStudentForConditionalGeneration.from_pretrained(args.init_from, config=config)
        model.generation_config = _generation_config(args, tokenizer, config, forced_bos_token_id)
        return model
    config = AgkdStudentConfig(
        vocab_size=len(tokenizer),
        d_model=args.d_model,
        encoder_layers=args.layers,
        decoder_layers=args.layers,
        encoder_attention_heads=args.heads,
        decoder_attention_heads=args.heads,
        encoder_ffn_dim=args.ffn_dim,
        decoder_ffn_dim=args.ffn_dim,
        dropout=args.dropout,
        max_position_embeddings=max(256, 2 * args.max_length),
        scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=getattr(teacher_config, "bos_token_id", None),
        decoder_start_token_id=teacher_config.decoder_start_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        **injection,
    )
    model = AgkdStudentForConditionalGeneration(config)
    model.generation_config = _generation_config(args, tokenizer, config, forced_bos_token_id)
    return model


def _generation_config(args: StudentArguments, tokenizer, config, forced_bos_token_id: int | None):
    from transformers import GenerationConfig

    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        forced_bos_token_id=forced_bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        num_beams=args.num_beams,
        max_length=2 * args.max_length,
    )


# ================================================================================================ training
def is_finished(folder: Path) -> bool:
    return (folder / "model.safetensors").exists() and (folder / "agkd_run.json").exists()


def train_student(args: StudentArguments) -> Path:
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    from datasets_scripts.hub_layout import atomic_folder

    name = student_name(args)
    final_dir = Path(args.output_dir) / name
    work_dir = Path(args.checkpoint_dir) / name
    wall_start = time.perf_counter()
    if not args.resume and work_dir.exists():
        from accelerate import PartialState

        if PartialState().is_main_process:
            shutil.rmtree(work_dir)
        PartialState().wait_for_everyone()
    accelerator = common.make_accelerator(work_dir, seed=args.seed, mixed_precision=args.mixed_precision)
    source, config_name = (args.train_corpus, args.pair) if args.train_corpus else (args.attributions, data_config(args))
    logger.info("training %s on %s/%s (preset %s) -> %s", name, source, config_name, args.preset, final_dir)

    # ---- data: attribution rows, checked against the teacher's tokenizer before anything is trained (or, for the
    # warm start, the corpus pairs in the teacher's tokenisation)
    tokenizer, teacher_config, forced_bos_token_id = load_teacher_tokenizer(args.teacher, args.teacher_name, args.pair)
    with accelerator.main_process_first():
        rows = common.load_dataset_config(source, config_name)
    for split in (args.train_split, args.validation_split):
        if split not in rows:
            raise ValueError(f"{source}/{config_name} has no split {split!r} (it has: {', '.join(rows)})")
    if args.train_corpus:
        train_examples, valid_examples = (
            common.tokenize_pairs(tokenizer, rows[split]["source"], rows[split]["target"], args.max_length, desc=split)
            for split in (args.train_split, args.validation_split)
        )
        train_skipped = valid_skipped = 0  # truncated to max_length, as for teachers
    else:
        train_examples, train_skipped = map_examples(rows[args.train_split], tokenizer, args.max_length, f"{config_name}/train")
        valid_examples, valid_skipped = map_examples(
            rows[args.validation_split], tokenizer, args.max_length, f"{config_name}/{args.validation_split}"
        )
    logger.info(
        "%d train and %d validation pairs (%d and %d longer than %d tokens skipped)",
        len(train_examples), len(valid_examples), train_skipped, valid_skipped, args.max_length,
    )
    if len(train_examples) < args.batch_size:
        raise ValueError(f"only {len(train_examples)} training pairs for a batch size of {args.batch_size}")

    model = build_student(args, tokenizer, teacher_config, forced_bos_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "%s with %.2fM parameters, operator %s, normalisation %s, %s",
        type(model).__name__, n_params / 1e6, args.operator, args.map_normalization,
        f"fine-tuned from {args.init_from}" if args.init_from else "from random weights",
    )

    collate = MapCollator(tokenizer.pad_token_id, with_maps=args.operator != "none")
    train_batches = common.length_grouped_batches(train_examples, args.batch_size, seed=args.seed)
    train_dl = DataLoader(train_batches, batch_size=1, shuffle=True, collate_fn=collate)
    valid_dl = DataLoader(valid_examples, batch_size=2 * args.batch_size, collate_fn=collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.98), weight_decay=0.01)
    scheduler = get_scheduler(
        "linear",
        optimizer,
        num_warmup_steps=args.warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_steps * accelerator.num_processes,
    )
    model, optimizer, train_dl, valid_dl, scheduler = accelerator.prepare(model, optimizer, train_dl, valid_dl, scheduler)
    state = common.TrainingState(patience=args.patience)
    accelerator.register_for_checkpointing(state)
    if args.resume and (latest := common.resume_from_latest(accelerator)) is not None:
        logger.info("resumed from %s at step %d (epoch %d)", latest, state.step, state.epoch)

    train_seconds = common.fit(
        accelerator, model, optimizer, scheduler, train_dl, valid_dl, state,
        max_steps=args.max_steps, eval_steps=args.eval_steps, save_steps=args.eval_steps, log_steps=args.log_steps,
        best_dir=work_dir / "best", desc=f"train {name}",
    )

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run = {
            "name": name,
            "method": args.method,
            "operator": args.operator,
            "map_normalization": args.map_normalization,
            "injection_layers": args.injection_layers,
            "injection_heads": args.injection_heads,
            "target_kind": args.target_kind,
            "student_init": student_init(args),
            "init_from": args.init_from,
            "init_run_id": run_id_of(args.init_from),
            "teacher": args.teacher,
            "teacher_name": args.teacher_name,
            "pair": args.pair,
            "seed": args.seed,
            "preset": args.preset,
            "attributions": source,
            "attribution_config": None if args.train_corpus else config_name,
            **common.map_provenance(args.attributions, None if args.train_corpus else config_name),
            "train_examples": len(train_examples),
            "skipped_longer_than_max_length": {"train": train_skipped, args.validation_split: valid_skipped},
            "parameters": n_params,
            "steps": state.step,
            "best_step": state.best_step,
            "best_validation_loss": state.best_loss,
            "early_stopped": state.should_stop,
            "validation_history": state.history,
            "train_seconds": round(train_seconds, 1),
            "wall_seconds": round(time.perf_counter() - wall_start, 1),
            "num_processes": accelerator.num_processes,
            "device": str(accelerator.device),
            "hyperparameters": {f.name: getattr(args, f.name) for f in fields(StudentPreset)},
        }
        with atomic_folder(final_dir) as tmp:
            accelerator.unwrap_model(model).save_pretrained(tmp, save_function=accelerator.save)
            tokenizer.save_pretrained(tmp)
            (tmp / "agkd_run.json").write_text(json.dumps(run, indent=2))
            write_card(tmp, run)
        logger.info("saved %s (training %s)", final_dir, common.format_seconds(train_seconds))
        shutil.rmtree(work_dir, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final_dir


# ================================================================================================ model card
def write_card(folder: Path, run: dict, results: list | None = None) -> None:
    """The student's model card; `training/evaluate.py` rewrites it with BLEU/chrF results in `model-index`."""
    source, target = run["pair"].split("-")
    map_source = "no map (baseline)" if run["method"] == BASELINE else f"`{run['method']}` maps of the teacher"
    if run["attribution_config"] is None:
        map_source = "no map: the shared warm start that the cells of the `warm` design fine-tune from"
    design = (
        "fine-tuned from the no-map warm start `" + Path(run["init_from"]).name + "` (design `warm`, not the paper's)"
        if run.get("student_init") == "warm"
        else "trained from scratch (design `scratch`, the paper's)"
    )
    body = f"""
# {run['name']}

An AGKD student: a Marian-style translation model ({source} -> {target}) {design}, with {map_source}
injected into its decoder cross-attention (operator `{run['operator']}`, normalisation `{run['map_normalization']}`).
Its gain over the no-map baseline (teacher-forced token NLL of the reference, BLEU, chrF) scores how much the
attribution method teaches.

- Teacher: `{run['teacher']}` (its tokenizer is used); data from `{run['attributions']}`, config `{run['attribution_config'] or run['pair']}`.
- Targets: `{run['target_kind']}` ({'gold references, the paper protocol' if run['target_kind'] == 'reference' else "the teacher's own translations: forward simulation"}).
- Seed {run['seed']}, preset `{run['preset']}`, {run['train_examples']} training pairs, {run['steps']} steps
  (best validation loss {run['best_validation_loss']:.4f} at step {run['best_step']}), {run['parameters'] / 1e6:.2f}M parameters.

## How to use

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

model = AutoModelForSeq2SeqLM.from_pretrained("<this repo>", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("<this repo>")
inputs = tokenizer(["<a {source} sentence>"], return_tensors="pt")
# attribution_map: [batch, target_len, source_len], row t = target token t, column s = source token s
out = model.generate(**inputs, attribution_map=attribution_map)  # or attributor=<AgkdAttributorModel>, or no map
```

Remote code: pin `revision=` to a commit you have read. Training details are in `agkd_run.json`.
"""
    common.write_model_card(
        folder,
        model_name=run["name"],
        body=body,
        languages=[source, target],
        results=results or [],
        tags=("translation", "marian", "attribution", "agkd", "custom_code"),
        datasets=[run["attributions"]] if not Path(run["attributions"]).exists() else (),
    )


# ================================================================================================ entry point
def run_id_of(folder: str | Path | None) -> str | None:
    """The run id a finished student or Attributor records in `agkd_run.json` (None: no folder, or none recorded)."""
    run_file = Path(folder) / "agkd_run.json" if folder else None
    return json.loads(run_file.read_text()).get("run_id") if run_file and run_file.exists() else None


def train_unless_finished(args: StudentArguments) -> None:
    args = finalize_arguments(args)
    folder = Path(args.output_dir) / student_name(args)
    if is_finished(folder) and not args.overwrite:
        recorded_init = json.loads((folder / "agkd_run.json").read_text()).get("init_run_id")
        if recorded_init != run_id_of(args.init_from):
            logger.warning("%s was fine-tuned from another warm start than %s holds now: retraining", folder, args.init_from)
        elif args.train_corpus:
            logger.info("%s already exists: skipped (pass --overwrite to retrain)", folder)
            return
        elif common.keep_finished(folder, args.attributions, data_config(args)):
            return
    train_student(args)


main = stage_main(StudentArguments, train_unless_finished, prog="agkd student", doc=__doc__)

__all__ = ["MapCollator", "StudentArguments", "data_config", "main", "run_id_of", "student_init", "student_name", "train_student", "warm_start_name"]


if __name__ == "__main__":
    run_as_script(main)
