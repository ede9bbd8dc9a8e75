"""Train an Attributor that reconstructs a teacher's attribution maps, with `accelerate` (issue #7).

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

import json
import logging
import math
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from training import common
from training.cli import run_as_script, stage_main
from training.presets import PRESETS, AttributorPreset
from training.train_student import MapCollator, load_teacher_tokenizer, map_examples

logger = logging.getLogger(__name__)

FIDELITY_METRICS = ("kl", "top3_overlap", "kendall_tau", "spearman")


@dataclass
class AttributorArguments:
    attributions: str = field(metadata={"help": "agkd-attributions folder or Hub id"})
    teacher: str = field(metadata={"help": "teacher folder or Hub id: its tokenizer (and decoder start) is used"})
    method: str = field(metadata={"help": "Inseq method id whose maps are learned"})
    pair: str = field(default="de-en", metadata={"help": "language pair"})
    teacher_name: str = field(default="marian", metadata={"help": "teacher family in the dataset config names"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation and data order"})
    preset: str = field(default="demo", metadata={"help": "smoke, demo or paper: fills every size/budget default"})
    output_dir: str | None = field(default=None, metadata={"help": "models root (default: runs/<preset>/hub/models)"})
    checkpoint_dir: str | None = field(default=None, metadata={"help": "default: runs/<preset>/checkpoints"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint of an interrupted run"})
    overwrite: bool = field(default=False, metadata={"help": "retrain an Attributor whose finished folder exists"})
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    validation_split: str = field(default="validation", metadata={"help": "split for early stopping"})
    test_split: str = field(default="test", metadata={"help": "held-out split of the fidelity metrics"})
    mixed_precision: str | None = field(default=None, metadata={"help": "no, bf16 or fp16 (default: accelerate's)"})
    log_steps: int = field(default=50, metadata={"help": "log loss every N steps"})
    d_model: int | None = field(default=None, metadata={"help": "hidden size"})
    layers: int | None = field(default=None, metadata={"help": "source and target layers (each)"})
    heads: int | None = field(default=None, metadata={"help": "attention heads of the blocks"})
    ffn_dim: int | None = field(default=None, metadata={"help": "feed-forward size"})
    scoring_heads: int | None = field(default=None, metadata={"help": "heads of the scoring layer"})
    head_gate_dim: int | None = field(default=None, metadata={"help": "hidden size of the head gate"})
    dropout: float | None = field(default=None, metadata={"help": "dropout"})
    max_steps: int | None = field(default=None, metadata={"help": "optimizer steps at most"})
    batch_size: int | None = field(default=None, metadata={"help": "examples per batch and process"})
    learning_rate: float | None = field(default=None, metadata={"help": "peak learning rate (AdamW)"})
    warmup_steps: int | None = field(default=None, metadata={"help": "linear warm-up steps, then linear decay"})
    max_length: int | None = field(default=None, metadata={"help": "longer pairs are skipped"})
    eval_steps: int | None = field(default=None, metadata={"help": "validation KL every N steps (early stopping)"})
    patience: int | None = field(default=None, metadata={"help": "evaluations without improvement before stopping"})


def attributor_name(teacher_name: str, pair: str, method: str) -> str:
    """Folder and repo name of the Attributor of one teacher, pair and method."""
    return f"attributor-{teacher_name}-{pair}-{method.replace('_', '')}"


def finalize_arguments(args: AttributorArguments) -> AttributorArguments:
    from datasets_scripts.attribution_methods import METHODS

    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.method not in METHODS:
        raise ValueError(f"unknown method {args.method!r}; choose one of {[*METHODS]}")
    preset = PRESETS[args.preset]
    for f in fields(AttributorPreset):
        if getattr(args, f.name) is None:
            setattr(args, f.name, getattr(preset.attributor, f.name))
    args.output_dir = args.output_dir or str(preset.root() / "hub" / "models")
    args.checkpoint_dir = args.checkpoint_dir or str(Path(args.output_dir).parent.parent / "checkpoints")
    return args


# ================================================================================================ fidelity
def row_fidelity(predicted: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """Agreement of one predicted row with the teacher's row (both distributions over the real source tokens)."""
    from scipy.stats import kendalltau, spearmanr

    eps = 1e-12
    k = min(3, len(teacher))
    metrics = {
        "kl": float(np.sum(np.where(teacher > 0, teacher * (np.log(teacher + eps) - np.log(predicted + eps)), 0.0))),
        "top3_overlap": len(set(np.argsort(-predicted)[:k]) & set(np.argsort(-teacher)[:k])) / k,
    }
    if np.ptp(teacher) > 0 and np.ptp(predicted) > 0 and len(teacher) > 1:
        metrics["kendall_tau"] = float(kendalltau(predicted, teacher).statistic)
        metrics["spearman"] = float(spearmanr(predicted, teacher).statistic)
    return metrics


@torch.no_grad()
def fidelity(accelerator, model, dataloader) -> dict[str, float]:
    """Mean of the row metrics over every real target row of the held-out pairs (rank metrics skip constant rows)."""
    from modeling.modeling_agkd_attributor import attribution_rows_to_distributions

    model.eval()
    sums = {name: [0.0, 0] for name in FIDELITY_METRICS}
    for batch in dataloader:
        batch.pop("index", None)
        predicted = model(**batch).attribution
        predicted, teacher_maps, source_mask, row_mask = accelerator.gather_for_metrics(
            (predicted, batch["attribution_map"], batch["attention_mask"], batch["attribution_map_mask"])
        )
        teacher_rows = attribution_rows_to_distributions(teacher_maps.float(), source_mask)
        for b in range(predicted.shape[0]):
            n_source = int(source_mask[b].sum())
            for t in torch.nonzero(row_mask[b]).flatten().tolist():
                for name, value in row_fidelity(
                    predicted[b, t, :n_source].double().cpu().numpy(), teacher_rows[b, t, :n_source].double().cpu().numpy()
                ).items():
                    if not math.isnan(value):
                        sums[name][0] += value
                        sums[name][1] += 1
    model.train()
    return {name: total / count for name, (total, count) in sums.items() if count} | {"rows": sums["kl"][1]}


# ================================================================================================ training
def data_config(args: AttributorArguments) -> str:
    """The agkd-attributions config an Attributor learns: the teacher's maps of the reference targets."""
    from datasets_scripts.extract_attributions import config_name

    return config_name(args.teacher_name, args.pair, args.method)


def build_attributor(args: AttributorArguments, tokenizer, teacher_config):
    """A randomly initialised Attributor of the preset's size on the teacher's vocabulary."""
    from modeling import AgkdAttributorConfig, AgkdAttributorModel

    config = AgkdAttributorConfig(
        vocab_size=len(tokenizer), d_model=args.d_model, encoder_layers=args.layers, decoder_layers=args.layers,
        encoder_attention_heads=args.heads, decoder_attention_heads=args.heads, encoder_ffn_dim=args.ffn_dim,
        decoder_ffn_dim=args.ffn_dim, scoring_heads=args.scoring_heads, head_gate_dim=args.head_gate_dim,
        dropout=args.dropout, max_position_embeddings=max(256, 2 * args.max_length),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=teacher_config.decoder_start_token_id, forced_eos_token_id=None,
    )
    return AgkdAttributorModel(config)


def train_attributor(args: AttributorArguments) -> Path:
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    from datasets_scripts.hub_layout import atomic_folder

    name = attributor_name(args.teacher_name, args.pair, args.method)
    final_dir, work_dir = Path(args.output_dir) / name, Path(args.checkpoint_dir) / name
    if not args.resume and work_dir.exists():
        shutil.rmtree(work_dir)
    accelerator = common.make_accelerator(work_dir, seed=args.seed, mixed_precision=args.mixed_precision)
    config_name = data_config(args)
    logger.info("training %s on %s/%s -> %s", name, args.attributions, config_name, final_dir)

    tokenizer, teacher_config, _ = load_teacher_tokenizer(args.teacher, args.teacher_name, args.pair)
    with accelerator.main_process_first():
        rows = common.load_dataset_config(args.attributions, config_name)
    for split in (args.train_split, args.validation_split, args.test_split):
        if split not in rows:
            raise ValueError(f"{args.attributions}/{config_name} has no split {split!r} (it has: {', '.join(rows)})")
    examples = {
        split: map_examples(rows[split], tokenizer, args.max_length, f"{config_name}/{split}")[0]
        for split in (args.train_split, args.validation_split, args.test_split)
    }
    model = build_attributor(args, tokenizer, teacher_config)

    collate = MapCollator(tokenizer.pad_token_id)
    train_dl = DataLoader(
        common.length_grouped_batches(examples[args.train_split], args.batch_size, seed=args.seed),
        batch_size=1, shuffle=True, collate_fn=collate,
    )
    valid_dl = DataLoader(examples[args.validation_split], batch_size=2 * args.batch_size, collate_fn=collate)
    test_dl = DataLoader(examples[args.test_split], batch_size=2 * args.batch_size, collate_fn=collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    scheduler = get_scheduler(
        "linear", optimizer, num_warmup_steps=args.warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_steps * accelerator.num_processes,
    )
    model, optimizer, train_dl, valid_dl, test_dl, scheduler = accelerator.prepare(
        model, optimizer, train_dl, valid_dl, test_dl, scheduler
    )
    state = common.TrainingState(patience=args.patience)
    accelerator.register_for_checkpointing(state)
    if args.resume and (latest := common.resume_from_latest(accelerator)) is not None:
        logger.info("resumed from %s at step %d", latest, state.step)
    # The loss counted per token by `evaluate_loss` is the KL here: it needs `labels` only for the row count.
    train_seconds = common.fit(
        accelerator, model, optimizer, scheduler, train_dl, valid_dl, state,
        max_steps=args.max_steps, eval_steps=args.eval_steps, save_steps=args.eval_steps, log_steps=args.log_steps,
        best_dir=work_dir / "best", desc=f"train {name}",
    )
    metrics = fidelity(accelerator, model, test_dl)
    logger.info("%s held-out fidelity: %s", name, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run = {
            "name": name, "method": args.method, "teacher": args.teacher, "teacher_name": args.teacher_name,
            "pair": args.pair, "seed": args.seed, "preset": args.preset, "attributions": args.attributions,
            "attribution_config": config_name, **common.map_provenance(args.attributions, config_name),
            "examples": {k: len(v) for k, v in examples.items()},
            "steps": state.step, "best_step": state.best_step, "best_validation_kl": state.best_loss,
            "validation_history": state.history, "train_seconds": round(train_seconds, 1),
            "fidelity": {"split": args.test_split, **metrics},
            "hyperparameters": {f.name: getattr(args, f.name) for f in fields(AttributorPreset)},
        }
        with atomic_folder(final_dir) as tmp:
            accelerator.unwrap_model(model).save_pretrained(tmp, save_function=accelerator.save)
            tokenizer.save_pretrained(tmp)
            (tmp / "agkd_run.json").write_text(json.dumps(run, indent=2))
            write_card(tmp, run)
        shutil.rmtree(work_dir, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final_dir


def write_card(folder: Path, run: dict) -> None:
    source, target = run["pair"].split("-")
    fid = run["fidelity"]
    table = "\n".join(f"| {k} | {fid[k]:.4f} |" for k in FIDELITY_METRICS if k in fid)
    body = f"""
# {run['name']}

An AGKD Attributor: given a {source}-{target} source and a target prefix in the teacher's tokenisation, it predicts
the teacher's `{run['method']}` attribution row of each target token as a distribution over the source tokens.
Trained with KL(teacher row || predicted row) on `{run['attributions']}` config `{run['attribution_config']}`
({run['examples']}), teacher `{run['teacher']}`, seed {run['seed']}, {run['steps']} steps.

## Fidelity on held-out pairs (`{fid['split']}`, {fid['rows']} target rows)

| metric | value |
|---|---|
{table}

KL is in nats (lower is better); top-3 overlap, Kendall tau and Spearman compare the predicted and teacher rows.

## How to use

```python
from transformers import AutoModel, AutoModelForSeq2SeqLM

attributor = AutoModel.from_pretrained("<this repo>", trust_remote_code=True)
rows = attributor(input_ids=..., attention_mask=..., labels=target_ids).attribution   # [batch, tgt_len, src_len]
student = AutoModelForSeq2SeqLM.from_pretrained("<a student repo>", trust_remote_code=True)
student.generate(input_ids=..., attention_mask=..., attributor=attributor)          # no teacher at test time
```

For pairs the teacher never explained it is a cheap map source, as faithful as the metrics above say, no more.
"""
    common.write_model_card(
        folder, model_name=run["name"], body=body, languages=[source, target], pipeline_tag=None,
        tags=("attribution", "agkd", "custom_code"),
    )


def train_unless_finished(args: AttributorArguments) -> None:
    args = finalize_arguments(args)
    folder = Path(args.output_dir) / attributor_name(args.teacher_name, args.pair, args.method)
    if (folder / "agkd_run.json").exists() and not args.overwrite:
        if common.keep_finished(folder, args.attributions, data_config(args)):
            return
    train_attributor(args)


main = stage_main(AttributorArguments, train_unless_finished, prog="agkd attributor", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
