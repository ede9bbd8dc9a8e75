"""Train the translation teachers on `agkd-parallel` with `accelerate`.

- `--family marian`: a sentencepiece tokenizer and a MarianMTModel per pair (`teacher-marian-<pair>`).
- `--family mbart`: one MBartForConditionalGeneration for all pairs with mBART-50 language codes
  (de_DE, fr_XX, ar_AR -> en_XX) and an MBart50Tokenizer (`teacher-mbart`).

Sizes and budgets come from `--preset` (training/presets.py, section `teacher`); any of them can be
overridden. The same file runs as one CPU process, under `torchrun --nproc_per_node N` or `accelerate launch` on GPUs:

    agkd teacher --preset demo --family marian --pairs de-en
    torchrun --nproc_per_node 2 -m agkd.training.train_teacher --preset smoke --family mbart
    accelerate launch --mixed_precision bf16 -m agkd.training.train_teacher --preset paper --family marian

Each model is written as a standard Hub folder under `--output_dir` (config, generation_config, safetensors,
tokenizer files, README model card with the measured BLEU/chrF, `all_results.json`) that loads with plain
`AutoModelForSeq2SeqLM`/`AutoTokenizer`. Checkpoints go to `--checkpoint_dir/<name>/checkpoints` every
`--save_steps` steps; after a kill, the same command with `--resume` continues from the newest one. A finished
model folder is never overwritten without `--overwrite`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from agkd.datasets_scripts import release_layout as layout
from agkd.datasets_scripts.release_layout import atomic_folder, public_ref
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.datasets_scripts.teachers import LANGUAGE_PAIRS, MBART_LANG_CODES, check_family, check_pair, teacher_spec
from agkd.training import data, loop
from agkd.training.evaluation.cards import write_teacher_card
from agkd.training.evaluation.scoring import evaluate_translation, score_translations
from agkd.training.loop import RunArguments
from agkd.training.presets import (
    PRESETS,
    BudgetArguments,
    TeacherPreset,
    fill_from_preset,
    transformer_sizes,
)

logger = logging.getLogger(__name__)

EVALUATION_SPLITS = tuple(s for s in layout.SPLITS if s != "train")  # the corpus splits a teacher is scored on


# ================================================================================================ arguments
@dataclass
class TeacherArguments(RunArguments, BudgetArguments):
    family: str = field(
        default="marian",
        metadata={
            "help": "teacher family: marian (one model per pair) or mbart (one for all pairs)",
            "choices": ["marian", "mbart"],
        },
    )
    pairs: str | None = field(
        default=None,
        metadata={
            "help": "comma-separated pairs, e.g. de-en,fr-en (default: the preset's pairs for marian, all for mbart)"
        },
    )
    corpus: str | None = field(
        default=None,
        metadata={"help": "agkd-parallel folder or Hub id (default: runs/<preset>/hub/datasets/agkd-parallel)"},
    )
    keep_checkpoints: bool = field(default=False, metadata={"help": "keep the checkpoints after a successful run"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "batches per optimizer step"})
    eval_splits: str = field(
        default="validation,test",
        metadata={"help": "splits scored with BLEU/chrF at the end (add test_handbook if wanted)"},
    )
    max_eval_examples: int | None = field(
        default=None, metadata={"help": "score only the first N examples of each split (default: all)"}
    )
    max_minutes: float | None = field(
        default=None,
        metadata={
            "help": "wall-clock budget of the training loop: stop there (before max_steps), evaluate and save the "
            "teacher, and keep the checkpoints; a later run with `--resume` continues the same schedule"
        },
    )
    vocab_size: int | None = field(default=None, metadata={"help": "sentencepiece vocabulary size"})
    lr_scheduler: str | None = field(
        default=None, metadata={"help": "learning-rate schedule after warm-up (transformers `get_scheduler` name)"}
    )
    label_smoothing: float | None = field(default=None, metadata={"help": "label smoothing of the training loss"})
    max_train_examples: int | None = field(default=None, metadata={"help": "seeded sample of train per pair (0: all)"})
    train_origins: str | None = field(
        default=None, metadata={"help": "comma-separated `origin`s kept in train ('all': all)"}
    )
    save_steps: int | None = field(default=None, metadata={"help": "checkpoint every N steps"})
    num_beams: int | None = field(default=None, metadata={"help": "beam size for evaluation and generation_config"})


def finalize_arguments(args: TeacherArguments) -> TeacherArguments:
    """Fill preset defaults and check the input; raises ValueError/FileNotFoundError with a clear message."""
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    check_family(args.family)
    loop.check_report_to(args.report_to)
    preset = PRESETS[args.preset]
    fill_from_preset(args, preset.teacher)
    if isinstance(args.train_origins, tuple):  # the preset's tuple, as the option's comma-separated form
        args.train_origins = ",".join(args.train_origins)
    if args.train_origins == "all":
        args.train_origins = None
    if args.max_train_examples == 0:
        args.max_train_examples = None
    default_pairs = preset.pairs if args.family == "marian" else LANGUAGE_PAIRS
    args.pairs = ",".join(
        check_pair(p.strip()) for p in (args.pairs or ",".join(default_pairs)).split(",") if p.strip()
    )
    from transformers import SchedulerType

    if args.lr_scheduler not in {t.value for t in SchedulerType}:
        raise ValueError(
            f"unknown lr_scheduler {args.lr_scheduler!r}; choose from {', '.join(t.value for t in SchedulerType)}"
        )
    for split in split_list(args.eval_splits):
        if split not in EVALUATION_SPLITS:
            raise ValueError(f"unknown evaluation split {split!r}; choose from {', '.join(EVALUATION_SPLITS)}")
    root = preset.root()
    args.corpus = args.corpus or str(root / "hub" / "datasets" / "agkd-parallel")
    args.output_dir, args.checkpoint_dir = layout.default_dirs(root, args.output_dir, args.checkpoint_dir)
    check_corpus(args.corpus, split_list(args.pairs))
    return args


def split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def check_corpus(corpus: str, pairs: list[str]) -> None:
    """The corpus must exist (folder with a README card, or a Hub id) and have a config per pair."""
    path = Path(corpus)
    looks_like_hub_id = not path.exists() and corpus.count("/") == 1 and not corpus.startswith((".", "/", "runs"))
    if not looks_like_hub_id and not (path / "README.md").exists():
        raise FileNotFoundError(f"corpus not found: {corpus} (build it with `agkd corpus`, or pass --corpus)")
    try:
        configs = layout.config_names(corpus)
    except Exception as err:  # noqa: BLE001 - any loader failure means the same thing to the user
        raise FileNotFoundError(f"cannot read corpus {corpus}: {err}") from err
    missing = [p for p in pairs if p not in configs]
    if missing:
        raise ValueError(f"corpus {corpus} has no config for {', '.join(missing)} (it has: {', '.join(configs)})")


# ================================================================================================ data
@dataclass
class PairData:
    """The raw strings of one pair: train (filtered/sampled) and the evaluation splits present in the corpus."""

    pair: str
    train_sources: list[str]
    train_targets: list[str]
    splits: dict[str, tuple[list[str], list[str]]]  # split -> (sources, references)


def load_pair(args: TeacherArguments, pair: str) -> PairData:
    ds = layout.load_config(args.corpus, pair)
    train = ds["train"]
    if args.train_origins:
        keep = set(split_list(args.train_origins))
        train = train.filter(lambda o: o.split(":")[0] in keep, input_columns="origin")
        if len(train) == 0:
            raise ValueError(f"no train rows of {pair} have origin in {sorted(keep)}")
    if args.max_train_examples and len(train) > args.max_train_examples:
        train = train.shuffle(seed=args.seed).select(range(args.max_train_examples))
    splits = {}
    for split in EVALUATION_SPLITS:
        if split in ds:
            rows = ds[split]
            if args.max_eval_examples:
                rows = rows.select(range(min(args.max_eval_examples, len(rows))))
            splits[split] = (list(rows["source"]), list(rows["target"]))
    if "validation" not in splits:
        raise ValueError(f"corpus {args.corpus} config {pair} has no validation split (needed for early stopping)")
    return PairData(pair, list(train["source"]), list(train["target"]), splits)


# ================================================================================================ tokenizers
def train_sentencepiece(lines: list[str], prefix: Path, vocab_size: int, seed: int, **ids) -> Path:
    """A unigram sentencepiece model on (a seeded sample of) `lines`; returns the .model path. The model is written
    through `model_writer`, so its trainer spec records no file name of this machine (the .spm files are uploaded)."""
    import io

    import sentencepiece as spm

    rng = random.Random(seed)
    sample = lines if len(lines) <= 100_000 else rng.sample(lines, 100_000)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sample),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=0.9999,
        hard_vocab_limit=False,  # tiny corpora support fewer pieces than asked for
        minloglevel=2,
        num_threads=1,
        **ids,
    )
    path = prefix.with_suffix(".model")
    path.write_bytes(model.getvalue())
    return path


def build_marian_tokenizer(lines: list[str], folder: Path, vocab_size: int, seed: int):
    """One joint sentencepiece model used as source.spm and target.spm, with the opus-mt id layout
    (`</s>`=0, `<unk>`=1, pieces, `<pad>`=last), so embeddings can be shared like Helsinki-NLP's models."""
    import sentencepiece as spm
    from transformers import MarianTokenizer

    work = folder / "spm"
    work.mkdir(parents=True, exist_ok=True)
    model_file = train_sentencepiece(lines, work / "joint", vocab_size, seed, bos_id=-1, eos_id=0, unk_id=1, pad_id=-1)
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    vocab["<pad>"] = len(vocab)
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    tokenizer = MarianTokenizer(
        source_spm=str(model_file), target_spm=str(model_file), vocab=str(work / "vocab.json"), model_max_length=512
    )
    shutil.rmtree(work)
    return tokenizer


def build_mbart_tokenizer(lines: list[str], vocab_size: int, seed: int, folder: Path):
    """An mBART-50 tokenizer (fairseq ids, the 52 language codes and `<mask>` appended) on our own pieces."""
    import sentencepiece as spm
    from transformers import MBart50Tokenizer

    work = folder / "spm"
    work.mkdir(parents=True, exist_ok=True)
    model_file = train_sentencepiece(lines, work / "joint", vocab_size, seed)  # default ids: <unk>=0 <s>=1 </s>=2
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    shutil.rmtree(work)
    return MBart50Tokenizer(
        vocab=pieces, src_lang=MBART_LANG_CODES["de"], tgt_lang=MBART_LANG_CODES["en"], model_max_length=1024
    )


def build_or_load_tokenizer(args: TeacherArguments, pair_data: list[PairData], work_dir: Path):
    """Train the tokenizer once (main process) and save it in the run's work folder; a resumed run and the other
    processes load that saved copy, so every process and every restart uses the very same vocabulary."""
    from transformers import AutoTokenizer

    tok_dir = work_dir / "tokenizer"
    if not (tok_dir / "tokenizer_config.json").exists():
        lines = [s for d in pair_data for s in d.train_sources] + [t for d in pair_data for t in d.train_targets]
        if args.family == "marian":
            tokenizer = build_marian_tokenizer(lines, work_dir, args.vocab_size, args.seed)
        else:
            tokenizer = build_mbart_tokenizer(lines, args.vocab_size, args.seed, work_dir)
        tokenizer.save_pretrained(tok_dir)
        logger.info("trained a %d-token %s tokenizer -> %s", len(tokenizer), type(tokenizer).__name__, tok_dir)
    return AutoTokenizer.from_pretrained(tok_dir)


# ================================================================================================ model
def build_model(args: TeacherArguments, tokenizer):
    """A randomly initialised MarianMTModel or MBartForConditionalGeneration of the preset's size, with the
    generation settings of the released teachers (beam size, forced target language for mBART)."""
    from transformers import MarianConfig, MarianMTModel, MBartConfig, MBartForConditionalGeneration

    common_sizes = dict(
        **transformer_sizes(args, len(tokenizer)),
        attention_dropout=0.0,
        activation_dropout=0.0,
        max_position_embeddings=max(256, 2 * args.max_length + 16),
        scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if args.family == "marian":
        config = MarianConfig(
            **common_sizes,
            decoder_start_token_id=tokenizer.pad_token_id,
            activation_function="swish",
            share_encoder_decoder_embeddings=True,
        )
        model = MarianMTModel(config)
        model.generation_config.bad_words_ids = [[tokenizer.pad_token_id]]
    else:
        config = MBartConfig(
            **common_sizes,
            bos_token_id=tokenizer.convert_tokens_to_ids("<s>"),
            decoder_start_token_id=tokenizer.eos_token_id,
            forced_eos_token_id=tokenizer.eos_token_id,
            activation_function="gelu",
        )
        model = MBartForConditionalGeneration(config)
        # all AGKD pairs translate into English: plain generate() starts with en_XX
        model.generation_config.forced_bos_token_id = tokenizer.convert_tokens_to_ids(MBART_LANG_CODES["en"])
    gen = model.generation_config
    gen.decoder_start_token_id = config.decoder_start_token_id
    gen.pad_token_id, gen.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    gen.forced_eos_token_id = tokenizer.eos_token_id
    gen.num_beams = args.num_beams
    gen.max_length = 2 * args.max_length
    return model


def tokenize(args: TeacherArguments, tokenizer, pair: str, sources, targets, accelerator, desc: str) -> list[dict]:
    """Examples of one pair; the mBART tokenizer gets the pair's source language code first."""
    if args.family == "mbart":
        spec = teacher_spec("mbart", pair)
        tokenizer.src_lang, tokenizer.tgt_lang = spec.src_lang, spec.tgt_lang
    return data.tokenize_pairs(
        tokenizer, sources, targets, args.max_length, desc=desc, disable_progress=not accelerator.is_local_main_process
    )


def smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Token-level cross-entropy with label smoothing; -100 labels are ignored. logits [B, T, V], labels [B, T]."""
    return torch.nn.functional.cross_entropy(
        logits.float().view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100, label_smoothing=smoothing
    )




def run_settings(args: TeacherArguments, pairs: list[str]) -> dict:
    """What a teacher's checkpoints depend on: `--resume` refuses checkpoints made with other values."""
    settings = {f.name: getattr(args, f.name) for f in fields(TeacherPreset) if f.name not in loop.RESUMABLE_CHANGES}
    corpus = os.path.normpath(args.corpus)
    return {**settings, "family": args.family, "pairs": list(pairs), "corpus": corpus, "seed": args.seed}


# ================================================================================================ training
def train_teacher(args: TeacherArguments, pairs: list[str]) -> Path:
    """Train one teacher (one Marian pair, or the mBART on all `pairs`) and write its Hub folder."""
    from torch.utils.data import DataLoader

    name = teacher_spec(args.family, pairs[0]).local_name
    final_dir = Path(args.output_dir) / name
    work_dir = Path(args.checkpoint_dir) / name
    wall_start = time.perf_counter()

    # ---- accelerator (checkpoints under work_dir/checkpoints) and experiment trackers
    settings = run_settings(args, pairs)
    accelerator = loop.start_run(
        work_dir,
        resume=args.resume,
        settings=settings,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        tracking=args.tracking(name, settings),
    )
    logger.info("training %s on %s (preset %s) -> %s", name, ",".join(pairs), args.preset, final_dir)

    # ---- data
    with accelerator.main_process_first():
        pair_data = [load_pair(args, pair) for pair in pairs]
    for d in pair_data:
        logger.info(
            "%s: %d train pairs, %s",
            d.pair,
            len(d.train_sources),
            ", ".join(f"{s} {len(v[0])}" for s, v in d.splits.items()),
        )

    # ---- tokenizer and model
    with accelerator.main_process_first():
        work_dir.mkdir(parents=True, exist_ok=True)
        tokenizer = build_or_load_tokenizer(args, pair_data, work_dir)
    model = build_model(args, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("%s with %.1fM parameters", type(model).__name__, n_params / 1e6)

    # ---- preprocess
    train_examples, valid_examples = [], []
    for d in pair_data:
        train_examples += tokenize(
            args, tokenizer, d.pair, d.train_sources, d.train_targets, accelerator, f"tokenize {d.pair} train"
        )
        valid_examples += tokenize(
            args, tokenizer, d.pair, *d.splits["validation"], accelerator, f"tokenize {d.pair} validation"
        )
    for i, example in enumerate(valid_examples):
        example["index"] = i

    # ---- dataloaders, optimisation (shared with the students and Attributors)
    collate = data.Seq2SeqCollator(tokenizer.pad_token_id)
    train_batches = data.length_grouped_batches(
        train_examples, args.batch_size, seed=args.seed, max_tokens=args.max_batch_tokens
    )
    train_dl = DataLoader(train_batches, batch_size=1, shuffle=True, collate_fn=collate)
    valid_dl = DataLoader(valid_examples, batch_size=2 * args.batch_size, collate_fn=collate)
    model, optimizer, scheduler, train_dl, (valid_dl,), state = loop.prepare_training(
        accelerator, model, train_dl, [valid_dl], learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
        max_steps=args.max_steps, patience=args.patience, resume=args.resume, lr_scheduler=args.lr_scheduler,
    )

    # ---- training loop, best weights restored at the end
    start_step, start_tokens = state.step, state.tokens_seen
    train_seconds = loop.fit(
        accelerator, model, optimizer, scheduler, train_dl, valid_dl, state,
        max_steps=args.max_steps, eval_steps=args.eval_steps, save_steps=args.save_steps, log_steps=args.log_steps,
        best_dir=work_dir / "best", desc=f"train {name}",
        loss_fn=lambda m, batch: smoothed_loss(m(**batch).logits, batch["labels"], args.label_smoothing),
        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
    )
    stopped_on_time = state.step < args.max_steps and not state.should_stop
    unwrapped = accelerator.unwrap_model(model)

    # ---- evaluate: BLEU/chrF per pair and split, and the copy-the-source baseline
    results: dict[str, dict] = {}
    eval_start = time.perf_counter()
    for d in pair_data:
        gen_kwargs = {"num_beams": args.num_beams, "max_length": 2 * args.max_length}
        if args.family == "mbart":
            gen_kwargs["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(teacher_spec("mbart", d.pair).tgt_lang)
        for split in split_list(args.eval_splits):
            if split not in d.splits:
                continue
            sources, references = d.splits[split]
            examples = tokenize(args, tokenizer, d.pair, sources, references, accelerator, f"tokenize {d.pair} {split}")
            dl = accelerator.prepare(DataLoader(examples, batch_size=2 * args.batch_size, collate_fn=collate))
            scores = evaluate_translation(
                accelerator, model, tokenizer, dl, references, gen_kwargs, desc=f"translate {d.pair} {split}"
            )
            copy = score_translations(sources, references)
            results[f"{d.pair}/{split}"] = {
                "pair": d.pair,
                "split": split,
                "examples": len(references),
                **scores.as_dict(),
                "copy_source_bleu": copy.bleu,
                "copy_source_chrf": copy.chrf,
                "samples": [
                    {"source": s, "reference": r, "hypothesis": h}
                    for s, r, h in list(zip(sources, references, scores.hypotheses, strict=True))[:3]
                ],
            }
            loop.track(accelerator, {f"{split}/{d.pair}/{m}": getattr(scores, m) for m in ("bleu", "chrf")}, state.step)
            logger.info(
                "%s %s: BLEU %.2f chrF %.2f (copy-the-source baseline: BLEU %.2f chrF %.2f) on %d sentences",
                d.pair,
                split,
                scores.bleu,
                scores.chrf,
                copy.bleu,
                copy.chrf,
                len(references),
            )
    eval_seconds = time.perf_counter() - eval_start

    # ---- save the Hub folder (atomically) and the run summary
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        summary = {
            "name": name,
            "family": args.family,
            "pairs": pairs,
            "preset": args.preset,
            "corpus": public_ref(args.corpus),
            "seed": args.seed,
            "parameters": n_params,
            "train_examples": {d.pair: len(d.train_sources) for d in pair_data},
            "steps": state.step,
            "steps_this_run": state.step - start_step,
            "best_step": state.best_step,
            "best_validation_loss": state.best_loss,
            "early_stopped": state.should_stop,
            "stopped_on_time_budget": stopped_on_time,
            "validation_history": state.history,
            "tokens_seen": state.tokens_seen,
            "train_seconds_this_run": round(train_seconds, 1),
            "train_tokens_per_second": round((state.tokens_seen - start_tokens) / train_seconds, 1)
            if state.step > start_step
            else None,
            "eval_seconds": round(eval_seconds, 1),
            "wall_seconds_this_run": round(time.perf_counter() - wall_start, 1),
            "num_processes": accelerator.num_processes,
            "device": str(accelerator.device),
            "hyperparameters": {f.name: getattr(args, f.name) for f in fields(TeacherPreset)},
            "results": results,
        }
        with atomic_folder(final_dir) as tmp:
            unwrapped.save_pretrained(tmp, save_function=accelerator.save)
            if args.family == "mbart":
                tokenizer.src_lang, tokenizer.tgt_lang = MBART_LANG_CODES["de"], MBART_LANG_CODES["en"]
            tokenizer.save_pretrained(tmp)
            (tmp / "all_results.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
            write_teacher_card(tmp, args, name, pairs, summary)
        logger.info(
            "saved %s (training %s this run, evaluation %s)",
            final_dir,
            loop.format_seconds(train_seconds),
            loop.format_seconds(eval_seconds),
        )
        if stopped_on_time:
            logger.info(
                "stopped by --max_minutes at step %d of %d: checkpoints kept in %s; continue the same run with the "
                "same "
                "command plus --resume",
                state.step,
                args.max_steps,
                work_dir,
            )
        elif not args.keep_checkpoints:
            shutil.rmtree(work_dir, ignore_errors=True)
    loop.end_run(accelerator)
    return final_dir


# ================================================================================================ entry point
def train_teachers(args: TeacherArguments) -> int:
    """`agkd teacher`: train every teacher of `--family` and `--pairs` that is not finished yet. Bad arguments and a
    checkpoint that cannot be resumed (ValueError, FileNotFoundError) give exit code 2 through `stage_main`."""
    args = finalize_arguments(args)
    pairs = split_list(args.pairs)
    jobs = [[p] for p in pairs] if args.family == "marian" else [pairs]
    todo = []
    for job in jobs:
        name = teacher_spec(args.family, job[0]).local_name
        if layout.teacher_is_finished(Path(args.output_dir) / name) and not args.overwrite:
            logger.info("%s already exists in %s: skipped (pass --overwrite to retrain)", name, args.output_dir)
            continue
        if args.resume:  # every job is checked before any trains
            loop.check_resumable(Path(args.checkpoint_dir) / name, run_settings(args, job))
        todo.append(job)
    for job in todo:
        train_teacher(args, job)
    return 0


main = stage_main(TeacherArguments, train_teachers, prog="agkd teacher", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
