"""Train an Attributor that reconstructs a teacher's attribution maps, with `accelerate`.

One Attributor per teacher x pair x method, trained on the rows of `<teacher>.<pair>.<method>` in
agkd-attributions (same rows and checks as the students) with KL(teacher row || predicted row). Its fidelity on
held-out pairs (KL, top-3 overlap, Kendall tau and Spearman rank correlation with the teacher's rows) goes into
`agkd_run.json` and the model card; `agkd report` relates it to the students' gains, and `agkd evaluate
--protocols attributor` lets the Attributor supply the maps at test time (no teacher needed).

    agkd attributor --preset demo --attributions runs/demo/hub/datasets/agkd-attributions \\
        --teacher runs/demo/hub/models/teacher-marian-de-en --method attention

It also gives maps for pairs the teacher never explained: cheap, but only as faithful as its held-out metrics say.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

from agkd.datasets_scripts import release_layout as layout
from agkd.datasets_scripts.attribution.configs import config_name
from agkd.datasets_scripts.attribution.methods import METHODS
from agkd.datasets_scripts.release_layout import public_ref
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.training import data, loop
from agkd.training.evaluation.cards import write_attributor_card
from agkd.training.evaluation.scoring import fidelity
from agkd.training.loop import RunArguments
from agkd.training.presets import (
    PRESETS,
    AttributorPreset,
    BudgetArguments,
    fill_from_preset,
    transformer_sizes,
)

logger = logging.getLogger(__name__)


# ================================================================================================ arguments
@dataclass
class AttributorArguments(RunArguments, BudgetArguments):
    attributions: str = field(metadata={"help": "agkd-attributions folder or Hub id"})
    teacher: str = field(metadata={"help": "teacher folder or Hub id: its tokenizer (and decoder start) is used"})
    method: str = field(metadata={"help": "Inseq method id whose maps are learned"})
    pair: str = field(default="de-en", metadata={"help": "language pair"})
    teacher_name: str = field(default="marian", metadata={"help": "teacher family in the dataset config names"})
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    validation_split: str = field(default="validation", metadata={"help": "split for early stopping"})
    test_split: str = field(default="test", metadata={"help": "held-out split of the fidelity metrics"})
    scoring_heads: int | None = field(default=None, metadata={"help": "heads of the scoring layer"})
    head_gate_dim: int | None = field(default=None, metadata={"help": "hidden size of the head gate"})


def finalize_arguments(args: AttributorArguments) -> AttributorArguments:
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.method not in METHODS:
        raise ValueError(f"unknown method {args.method!r}; choose one of {[*METHODS]}")
    loop.check_report_to(args.report_to)
    preset = PRESETS[args.preset]
    fill_from_preset(args, preset.attributor)
    args.output_dir, args.checkpoint_dir = layout.default_dirs(preset.root(), args.output_dir, args.checkpoint_dir)
    return args


def data_config(args: AttributorArguments) -> str:
    """The agkd-attributions config an Attributor learns: the teacher's maps of the reference targets."""
    return config_name(args.teacher_name, args.pair, args.method)


def run_settings(args: AttributorArguments) -> dict:
    """What an Attributor's checkpoints depend on: `--resume` refuses checkpoints made with other values."""
    settings = {f.name: getattr(args, f.name) for f in fields(AttributorPreset) if f.name not in loop.RESUMABLE_CHANGES}
    return {**settings, "attributions": args.attributions}


# ================================================================================================ model
def build_attributor(args: AttributorArguments, tokenizer, teacher_config):
    """A randomly initialised Attributor of the preset's size on the teacher's vocabulary."""
    from agkd.modeling import AgkdAttributorConfig, AgkdAttributorModel

    config = AgkdAttributorConfig(
        **transformer_sizes(args, len(tokenizer)), scoring_heads=args.scoring_heads, head_gate_dim=args.head_gate_dim,
        max_position_embeddings=max(256, 2 * args.max_length),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=teacher_config.decoder_start_token_id, forced_eos_token_id=None,
    )
    return AgkdAttributorModel(config)


# ================================================================================================ training
def train_attributor(args: AttributorArguments) -> Path:
    """Train one Attributor (arguments finalised), unless its finished folder is current (`layout.keep_finished`)."""
    from torch.utils.data import DataLoader

    name = layout.attributor_name(args.teacher_name, args.pair, args.method)
    final_dir, work_dir = Path(args.output_dir) / name, Path(args.checkpoint_dir) / name
    if not args.overwrite and layout.keep_finished(final_dir, args.attributions, data_config(args)):
        return final_dir

    # ---- accelerator (checkpoints under work_dir/checkpoints) and experiment trackers
    settings = run_settings(args)
    cell = {k: getattr(args, k) for k in ("method", "pair", "teacher_name", "seed")}
    accelerator = loop.start_run(
        work_dir, resume=args.resume, settings=settings, seed=args.seed, mixed_precision=args.mixed_precision,
        tracking=args.tracking(name, {**settings, **cell}),
    )
    source_config = data_config(args)
    logger.info("training %s on %s/%s -> %s", name, args.attributions, source_config, final_dir)

    # ---- data: the method's map rows, checked against the teacher's tokenizer
    tokenizer, teacher_config, _ = data.load_teacher_tokenizer(args.teacher, args.teacher_name, args.pair)
    with accelerator.main_process_first():
        rows = layout.load_config(args.attributions, source_config)
    splits = (args.train_split, args.validation_split, args.test_split)
    for split in splits:
        if split not in rows:
            raise ValueError(f"{args.attributions}/{source_config} has no split {split!r} (it has: {', '.join(rows)})")
    examples = {
        split: data.map_examples(rows[split], tokenizer, args.max_length, f"{source_config}/{split}")[0]
        for split in splits
    }
    collate = data.MapCollator(tokenizer.pad_token_id)
    train_dl = DataLoader(
        data.length_grouped_batches(
            examples[args.train_split], args.batch_size, seed=args.seed, max_tokens=args.max_batch_tokens
        ),
        batch_size=1,
        shuffle=True,
        collate_fn=collate,
    )
    valid_dl = DataLoader(examples[args.validation_split], batch_size=2 * args.batch_size, collate_fn=collate)
    test_dl = DataLoader(examples[args.test_split], batch_size=2 * args.batch_size, collate_fn=collate)

    # ---- model
    model = build_attributor(args, tokenizer, teacher_config)

    # ---- optimisation and loop; the loss `evaluate_loss` counts per token is the KL here (labels give the rows)
    model, optimizer, scheduler, train_dl, (valid_dl, test_dl), state = loop.prepare_training(
        accelerator, model, train_dl, [valid_dl, test_dl], learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps, max_steps=args.max_steps, patience=args.patience, resume=args.resume,
        betas=(0.9, 0.999),
    )
    train_seconds = loop.fit(
        accelerator, model, optimizer, scheduler, train_dl, valid_dl, state,
        max_steps=args.max_steps, eval_steps=args.eval_steps, save_steps=args.eval_steps, log_steps=args.log_steps,
        best_dir=work_dir / "best", desc=f"train {name}",
    )
    metrics = fidelity(accelerator, model, test_dl)
    logger.info("%s held-out fidelity: %s", name, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    loop.track(accelerator, {f"{args.test_split}/{k}": v for k, v in metrics.items()}, state.step)

    # ---- save the Hub folder (atomically) with its run record and card
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run = {
            "name": name, "method": args.method, "teacher": public_ref(args.teacher), "teacher_name": args.teacher_name,
            "pair": args.pair, "seed": args.seed, "preset": args.preset, "attributions": public_ref(args.attributions),
            "attribution_config": source_config, **layout.map_provenance(args.attributions, source_config),
            "examples": {k: len(v) for k, v in examples.items()},
            "steps": state.step, "best_step": state.best_step, "best_validation_kl": state.best_loss,
            "validation_history": state.history, "train_seconds": round(train_seconds, 1),
            "fidelity": {"split": args.test_split, **metrics},
            "hyperparameters": {f.name: getattr(args, f.name) for f in fields(AttributorPreset)},
        }
        layout.write_model_folder(final_dir, work_dir, accelerator, model, tokenizer, run, write_attributor_card)
        logger.info("saved %s (training %s)", final_dir, loop.format_seconds(train_seconds))
    loop.end_run(accelerator)
    return final_dir


main = stage_main(
    AttributorArguments, lambda args: train_attributor(finalize_arguments(args)), prog="agkd attributor", doc=__doc__
)


if __name__ == "__main__":
    run_as_script(main)
