"""Train an attribution-injected student on agkd-attributions with `accelerate`.

One run trains one `AgkdStudentForConditionalGeneration` from scratch, in the teacher's tokenisation, for one
(method or control) x operator x map normalisation x seed. `--method none` is the no-map baseline: it trains on
exactly the same pairs (read from the `uniform` control config) with operator `none`.

    agkd student --preset demo --attributions runs/demo/hub/datasets/agkd-attributions \\
        --teacher runs/demo/hub/models/teacher-marian-de-en --method attention --operator add
    torchrun --nproc_per_node 2 -m agkd.training.train_student ...     # same script, several processes
    accelerate launch --mixed_precision bf16 -m agkd.training.train_student ...   # GPUs

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

import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from agkd.datasets_scripts import release_layout as layout
from agkd.datasets_scripts.attribution.configs import BASELINE, TARGET_KINDS, config_name, evaluation_config
from agkd.datasets_scripts.attribution.methods import resolve
from agkd.datasets_scripts.release_layout import public_ref
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.modeling import AgkdStudentConfig, AgkdStudentForConditionalGeneration
from agkd.modeling.attribution_injection import INJECTION_OPERATORS, MAP_NORMALIZATIONS, check_choice
from agkd.training import data, loop
from agkd.training.evaluation.cards import write_student_card
from agkd.training.loop import RunArguments
from agkd.training.presets import (
    PRESETS,
    BudgetArguments,
    StudentPreset,
    fill_from_preset,
    transformer_sizes,
)

logger = logging.getLogger(__name__)


# ================================================================================================ arguments
@dataclass
class StudentArguments(RunArguments, BudgetArguments):
    attributions: str = field(metadata={"help": "agkd-attributions folder or Hub id"})
    teacher: str = field(metadata={"help": "teacher folder or Hub id: its tokenizer (and decoder start) is used"})
    method: str = field(
        default=BASELINE,
        metadata={"help": "Inseq method id, control (random, uniform, diagonal, <method>-shuffled) or none (baseline)"}
    )
    operator: str = field(
        default="add",
        metadata={
            "help": "how the map is used: add, multiply, average or replace (injected at train and test time), or "
            "supervise (the cross-attention is trained toward the map's rows; no map at test time)"
        },
    )
    supervision_weight: float = field(
        default=AgkdStudentConfig.supervision_weight,
        metadata={"help": "supervise: weight of KL(map row || cross-attention row) beside the translation loss"},
    )
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
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    train_pairs: int | None = field(
        default=None,
        metadata={"help": "train on the first N map-annotated pairs of the split only: a point of the learning curve "
                  "over annotated pairs (its own name, `-p<N>`; default: every pair)"},
    )
    validation_split: str = field(default="validation", metadata={"help": "split for early stopping"})
    num_beams: int | None = field(default=None, metadata={"help": "beam size written to generation_config"})


def finalize_arguments(args: StudentArguments) -> StudentArguments:
    """Fill preset defaults and check every choice before anything is loaded."""
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.method != BASELINE:
        resolve([args.method])  # a method, a control or a method's shuffled twin (raises naming the known ones)
    if args.target_kind not in TARGET_KINDS:
        raise ValueError(f"unknown target kind {args.target_kind!r}; choose one of {TARGET_KINDS}")
    if args.train_corpus is not None and (args.method != BASELINE or args.init_from is not None):
        raise ValueError("--train_corpus trains the no-map warm start: it takes --method none and no --init_from")
    if args.init_from is not None and not layout.is_finished(args.init_from):
        raise FileNotFoundError(
            f"--init_from {args.init_from}: not a finished student folder (train the warm start first)"
        )
    if args.method == BASELINE:
        args.operator = "none"
    if args.supervision_weight < 0:
        raise ValueError(f"--supervision_weight must be >= 0, got {args.supervision_weight}")
    if args.train_pairs is not None and (args.train_pairs < 1 or args.train_corpus is not None):
        raise ValueError("--train_pairs takes a positive count of map-annotated pairs (not with --train_corpus)")
    check_choice("injection_operator", args.operator, INJECTION_OPERATORS)
    check_choice("map_normalization", args.map_normalization, MAP_NORMALIZATIONS)
    loop.check_report_to(args.report_to)
    preset = PRESETS[args.preset]
    budget = preset.warm_start if args.train_corpus is not None else preset.student
    fill_from_preset(args, budget)
    args.output_dir, args.checkpoint_dir = layout.default_dirs(preset.root(), args.output_dir, args.checkpoint_dir)
    return args

def data_config(args: StudentArguments) -> str:
    """The agkd-attributions config this run reads: the method's maps, or for the baseline the evaluation set's
    rows (the same pairs as every method)."""
    if args.method == BASELINE:
        return evaluation_config(args.teacher_name, args.pair, args.target_kind)
    return config_name(args.teacher_name, args.pair, args.method, args.target_kind)


def student_init(args: StudentArguments) -> str:
    """The design of a run: `warm` (fine-tuned from a warm start) or `scratch` (random weights, the paper's)."""
    return "warm" if args.init_from is not None else "scratch"


def run_name(args: StudentArguments) -> str:
    """This run's folder and repo name (`datasets_scripts/release_layout.py` forms every name)."""
    if args.train_corpus is not None:
        return layout.warm_start_name(args.teacher_name, args.pair, args.seed)
    return layout.student_name(
        args.teacher_name, args.pair, args.method, seed=args.seed, operator=args.operator,
        map_normalization=args.map_normalization, injection_layers=args.injection_layers,
        injection_heads=args.injection_heads, target_kind=args.target_kind, warm=student_init(args) == "warm",
        supervision_weight=None if args.supervision_weight == AgkdStudentConfig.supervision_weight
        else args.supervision_weight, train_pairs=args.train_pairs,
    )


def run_settings(args: StudentArguments) -> dict:
    """What a student's checkpoints depend on: `--resume` refuses checkpoints made with other values."""
    settings = {f.name: getattr(args, f.name) for f in fields(StudentPreset) if f.name not in loop.RESUMABLE_CHANGES}
    source = args.train_corpus or args.attributions
    settings["supervision_weight"] = args.supervision_weight
    return {**settings, "source": source, "init_run_id": layout.run_id_of(args.init_from)}


# ================================================================================================ model
def build_student(args: StudentArguments, tokenizer, teacher_config, forced_bos_token_id: int | None):
    """A student from random weights, or the warm start of `--init_from` with this run's injection settings and
    dropout (its size then comes from the warm start and is written back into `args`, so the record is true)."""
    injection = dict(
        injection_operator=args.operator,
        injection_layers=args.injection_layers,
        injection_heads=args.injection_heads,
        map_normalization=args.map_normalization,
        supervision_weight=args.supervision_weight,
    )
    if args.init_from is not None:
        config = AgkdStudentConfig.from_pretrained(args.init_from, dropout=args.dropout, **injection)
        if config.vocab_size != len(tokenizer):
            raise ValueError(
                f"--init_from {args.init_from} has a vocabulary of {config.vocab_size}, the teacher {len(tokenizer)}"
            )
        args.d_model, args.layers, args.heads = config.d_model, config.encoder_layers, config.encoder_attention_heads
        args.ffn_dim = config.encoder_ffn_dim
        model = AgkdStudentForConditionalGeneration.from_pretrained(args.init_from, config=config)
        model.generation_config = _generation_config(args, tokenizer, config, forced_bos_token_id)
        return model
    config = AgkdStudentConfig(
        **transformer_sizes(args, len(tokenizer)),
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
def train_student(args: StudentArguments) -> Path:
    """Train one student (arguments finalised), unless its finished folder is current (`layout.keep_finished`)."""
    from torch.utils.data import DataLoader

    # ---- what this run reads and writes, and whether it is done already
    config = None if args.train_corpus else data_config(args)
    source, source_config = (args.train_corpus, args.pair) if args.train_corpus else (args.attributions, config)
    settings = run_settings(args)
    name = run_name(args)
    final_dir, work_dir = Path(args.output_dir) / name, Path(args.checkpoint_dir) / name
    budget = {
        k: getattr(args, k) for k in ("max_steps", "batch_size", "max_batch_tokens", "learning_rate", "warmup_steps")
    }
    if not args.overwrite and layout.keep_finished(final_dir, args.attributions, config, args.init_from, budget):
        return final_dir
    provenance = layout.map_provenance(args.attributions, config)  # the maps' version as read now
    wall_start = time.perf_counter()

    # ---- accelerator (checkpoints under work_dir/checkpoints) and experiment trackers (the run's settings and cell)
    cell = {k: getattr(args, k) for k in ("method", "operator", "map_normalization", "target_kind", "pair", "seed")}
    accelerator = loop.start_run(
        work_dir, resume=args.resume, settings=settings, seed=args.seed, mixed_precision=args.mixed_precision,
        tracking=args.tracking(name, {**settings, **cell, "student_init": student_init(args)}),
    )
    logger.info("training %s on %s/%s (preset %s) -> %s", name, source, source_config, args.preset, final_dir)

    # ---- data: attribution rows, checked against the teacher's tokenizer before anything is trained (or, for the
    # warm start, the corpus pairs in the teacher's tokenisation)
    tokenizer, teacher_config, forced_bos_token_id = data.load_teacher_tokenizer(
        args.teacher, args.teacher_name, args.pair
    )
    with accelerator.main_process_first():
        rows = layout.load_config(source, source_config)
    for split in (args.train_split, args.validation_split):
        if split not in rows:
            raise ValueError(f"{source}/{source_config} has no split {split!r} (it has: {', '.join(rows)})")
    if args.train_corpus:
        train_examples, valid_examples = (
            data.tokenize_pairs(tokenizer, rows[split]["source"], rows[split]["target"], args.max_length, desc=split)
            for split in (args.train_split, args.validation_split)
        )
        train_skipped = valid_skipped = 0  # truncated to max_length, as for teachers
    else:
        train_rows = rows[args.train_split]
        if args.train_pairs is not None:  # nested subsets: the curve's points share their first pairs
            if args.train_pairs > len(train_rows):
                raise ValueError(f"--train_pairs {args.train_pairs}: {source_config}/{args.train_split} has only "
                                 f"{len(train_rows)} pairs")
            train_rows = train_rows.select(range(args.train_pairs))
        train_examples, train_skipped = data.map_examples(
            train_rows, tokenizer, args.max_length, f"{source_config}/{args.train_split}"
        )
        valid_examples, valid_skipped = data.map_examples(
            rows[args.validation_split], tokenizer, args.max_length, f"{source_config}/{args.validation_split}"
        )
    logger.info(
        "%d train and %d validation pairs (%d and %d longer than %d tokens skipped)",
        len(train_examples), len(valid_examples), train_skipped, valid_skipped, args.max_length,
    )
    if len(train_examples) < args.batch_size:
        raise ValueError(f"only {len(train_examples)} training pairs for a batch size of {args.batch_size}")
    collate = data.MapCollator(tokenizer.pad_token_id, with_maps=args.operator != "none")
    train_batches = data.length_grouped_batches(
        train_examples, args.batch_size, seed=args.seed, max_tokens=args.max_batch_tokens
    )
    train_dl = DataLoader(train_batches, batch_size=1, shuffle=True, collate_fn=collate)
    valid_dl = DataLoader(valid_examples, batch_size=2 * args.batch_size, collate_fn=collate)

    # ---- model
    model = build_student(args, tokenizer, teacher_config, forced_bos_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "%s with %.2fM parameters, operator %s, normalisation %s, %s",
        type(model).__name__, n_params / 1e6, args.operator, args.map_normalization,
        f"fine-tuned from {args.init_from}" if args.init_from else "from random weights",
    )

    # ---- optimisation and loop (shared with teachers and Attributors), best weights restored at the end
    model, optimizer, scheduler, train_dl, (valid_dl,), state = loop.prepare_training(
        accelerator, model, train_dl, [valid_dl], learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
        max_steps=args.max_steps, patience=args.patience, resume=args.resume,
    )
    train_seconds = loop.fit(
        accelerator, model, optimizer, scheduler, train_dl, valid_dl, state,
        max_steps=args.max_steps, eval_steps=args.eval_steps, save_steps=args.eval_steps, log_steps=args.log_steps,
        best_dir=work_dir / "best", desc=f"train {name}",
    )

    # ---- save the Hub folder (atomically) with its run record and card
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run = {
            "name": name,
            "method": args.method,
            "operator": args.operator,
            "map_normalization": args.map_normalization,
            "supervision_weight": args.supervision_weight if args.operator == "supervise" else None,
            "injection_layers": args.injection_layers,
            "injection_heads": args.injection_heads,
            "target_kind": args.target_kind,
            "student_init": student_init(args),
            "init_from": public_ref(args.init_from),
            "init_run_id": settings["init_run_id"],
            "teacher": public_ref(args.teacher),
            "teacher_name": args.teacher_name,
            "pair": args.pair,
            "seed": args.seed,
            "preset": args.preset,
            "attributions": public_ref(source),
            "attribution_config": config,
            **provenance,
            "train_pairs": args.train_pairs,
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
        layout.write_model_folder(final_dir, work_dir, accelerator, model, tokenizer, run, write_student_card)
        logger.info("saved %s (training %s)", final_dir, loop.format_seconds(train_seconds))
    loop.end_run(accelerator)
    return final_dir


main = stage_main(
    StudentArguments, lambda args: train_student(finalize_arguments(args)), prog="agkd student", doc=__doc__
)


if __name__ == "__main__":
    run_as_script(main)
