"""`agkd extract`: attribution maps of a teacher on agkd-parallel into the Hub dataset agkd-attributions (the CLI and
its orchestration).

Configs, row schema and target kinds are those of `attribution/configs.py`; the maps come from `engines.attribute`
(`--engine inseq`, the reference, or `fast`); splits are those of the corpus. Every example is self-checked: the
engine's probability of each target token against a plain forward pass of the teacher; a shard whose max deviation
exceeds `--prob_tolerance` is refused (not written) and the run fails. A teacher whose validation BLEU (recorded by
`agkd teacher`, else measured here on the first `TEACHER_SCORE_PAIRS` validation pairs) does not beat copy-the-source
(or `--min_teacher_bleu`) is refused unless `--allow_weak_teacher`. Shuffled controls (`<method>-shuffled`) are built
from the method's config already in `--output_dir`, without the teacher (`build_shuffled`). Extraction knows no
presets: `agkd extract --preset NAME` and `agkd pipeline` pass a preset's settings as these options
(`training/cli.py`).

Scale and faults: the input of each split is cut into fixed shards of `--shard_size` pairs; under `accelerate
launch` process p takes shards p, p+N, ...; every finished shard is written atomically to
`<output_dir>/.work/<config>/<split>/`, so a killed run resumes without recomputing finished shards. When all shards
of a split exist the main process merges them into `<config>/<split>-00000-of-00001.parquet`, records the split's
summary (raw map scale included) in `meta/<config>.json` and rewrites the card (`attribution_card.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agkd.datasets_scripts.attribution.configs import TARGET_KINDS, config_name, features
from agkd.datasets_scripts.attribution.engines import ENGINES, attribute, default_batch_size, engine_for
from agkd.datasets_scripts.attribution.methods import (
    CONTROLS,
    METHODS,
    SHUFFLE_RULE,
    TARGET_LAYER,
    method_arguments,
    resolve,
    shuffled_map,
    shuffled_source,
    target_layer_name,
)
from agkd.datasets_scripts.attribution.teacher import Teacher
from agkd.datasets_scripts.attribution_card import parquet_map_scale, write_dataset_card
from agkd.datasets_scripts.release_layout import (
    META_DIR,
    load_config,
    maps_version,
    public_ref,
    read_meta,
    split_path,
    write_split,
)
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.datasets_scripts.teachers import teacher_digest

logger = logging.getLogger(__name__)

WORK_DIR = ".work"


@dataclass
class ExtractArguments:
    teacher: str = field(metadata={"help": "teacher model folder or Hub id (MarianMT or mBART)"})
    corpus: str = field(metadata={"help": "agkd-parallel folder or Hub id"})
    output_dir: str = field(metadata={"help": "agkd-attributions folder to write (created or extended)"})
    pair: str = field(default="de-en", metadata={"help": "corpus config (language pair), e.g. de-en"})
    teacher_name: str | None = field(
        default=None, metadata={"help": "teacher family in config names (default: the model_type, marian or mbart)"}
    )
    methods: list[str] | None = field(
        default=None,
        metadata={"help": "Inseq method ids and/or controls (random, uniform, diagonal, <method>-shuffled); "
                  "default: all"},
    )
    splits: list[str] | None = field(default=None, metadata={"help": "corpus splits to extract; default: all"})
    target_kinds: list[str] = field(
        default_factory=lambda: ["reference"],
        metadata={"help": "reference (forced decoding on the gold target) and/or teacher (the teacher's translation)"},
    )
    limit: int | None = field(
        default=None, metadata={"help": "use only the first N pairs of every split that fit --max_tokens"}
    )
    max_pairs: list[str] | None = field(
        default=None,
        metadata={"help": "per-split caps SPLIT=N (e.g. train=600 test=100): the first N pairs that fit --max_tokens"},
    )
    max_tokens: int = field(
        default=128, metadata={"help": "skip pairs with more source or target tokens (counted in the card)"}
    )
    batch_size: int | None = field(default=None, metadata={"help": "pairs per Inseq call (default: per method)"})
    ig_steps: int | None = field(
        default=None,
        metadata={"help": "integrated_gradients n_steps (default: the registry's 50, Inseq's default)"},
    )
    shard_size: int = field(default=64, metadata={"help": "pairs per shard (the unit of work, resume and sharding)"})
    seed: int = field(
        default=42, metadata={"help": "seed of the stochastic methods (gradient_shap) and random control"}
    )
    compat: bool = field(default=True, metadata={"help": "apply the probe-gated Inseq compatibility layer"})
    prob_tolerance: float = field(default=1e-4, metadata={"help": "max |p_inseq - p_model| a published shard may have"})
    num_beams: int = field(default=1, metadata={"help": "beams of the teacher's translation (target kind teacher)"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)"})
    overwrite: bool = field(default=False, metadata={"help": "recompute configs/splits that already exist"})
    engine: str = field(
        default="inseq",
        metadata={
            "help": "inseq (reference) or fast (teacher-forced batched engine, "
            "datasets_scripts/attribution/fast_engine.py, "
            "same maps within 1e-4 relative)",
            "choices": list(ENGINES),
        },
    )
    min_teacher_bleu: float | None = field(
        default=None,
        metadata={"help": "validation BLEU the teacher must reach (besides beating copy-the-source); default: none"},
    )
    allow_weak_teacher: bool = field(
        default=False,
        metadata={"help": "explain a teacher whose recorded validation BLEU does not beat copy-the-source (or the "
                  "threshold) anyway, with a warning; for experiments"},
    )


# Pairs of the corpus's validation split a teacher without recorded scores is translated on before it is explained:
# enough for corpus BLEU to separate a teacher that translates from one that does not (a random-weight model scores
# near 0, far below copy-the-source), few enough to cost about a minute of greedy decoding on CPU at demo size.
TEACHER_SCORE_PAIRS = 100
_MEASURED_SCORES: dict[tuple, dict] = {}


def recorded_teacher_scores(teacher: str, pair: str) -> dict | None:
    """The validation scores `agkd teacher` records in the teacher's `all_results.json` (BLEU/chrF and the
    copy-the-source baseline), with `"source": "recorded"`; None where the teacher records none (a public checkpoint,
    a model saved with plain `save_pretrained`)."""
    results_file = Path(teacher) / "all_results.json"
    if not results_file.exists():
        return None
    scores = json.loads(results_file.read_text()).get("results", {}).get(f"{pair}/validation")
    if scores is None:
        logger.warning("%s: no validation scores for %s in all_results.json", teacher, pair)
        return None
    keep = ("bleu", "chrf", "copy_source_bleu", "copy_source_chrf", "examples", "bleu_signature", "chrf_signature")
    return {"source": "recorded", "file": "all_results.json", **{k: scores[k] for k in keep if k in scores}}


def measure_teacher_scores(teacher: Teacher, corpus, max_tokens: int, n: int = TEACHER_SCORE_PAIRS) -> dict:
    """Score a teacher that records no validation scores, at extraction time: sacrebleu corpus BLEU and chrF of its
    greedy translations of the first `n` pairs of the corpus's validation split (test, then train, where there is
    none) against the raw references, beside copy-the-source (the untranslated source as hypothesis). Cached per
    teacher weights, pair, split and `n` within a process."""
    from sacrebleu.metrics import BLEU, CHRF

    split = next((s for s in ("validation", "test", "train") if s in corpus), None)
    if split is None:
        raise ValueError(f"the corpus has no validation, test or train split to score the teacher {teacher.path} on")
    key = (teacher_digest(str(teacher.path)), teacher.pair, split, n, max_tokens)
    if key not in _MEASURED_SCORES:
        t0 = time.perf_counter()
        rows = corpus[split].select(range(min(n, len(corpus[split]))))
        sources, references = list(rows["source"]), list(rows["target"])
        hypotheses = teacher.translate(sources, max_tokens, 1)
        bleu, chrf, refs = BLEU(), CHRF(), [references]
        _MEASURED_SCORES[key] = {
            "source": "measured at extraction",
            "split": split,
            "examples": len(sources),
            "num_beams": 1,
            "bleu": bleu.corpus_score(hypotheses, refs).score,
            "chrf": chrf.corpus_score(hypotheses, refs).score,
            "copy_source_bleu": bleu.corpus_score(sources, refs).score,
            "copy_source_chrf": chrf.corpus_score(sources, refs).score,
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    return dict(_MEASURED_SCORES[key])


def judge_teacher(teacher: str, pair: str, scores: dict, min_bleu: float | None, allow_weak: bool) -> bool:
    """Refuse to explain a teacher that does not translate: its maps would describe noise, and every student and
    verdict built on them would too. `scores` (recorded or measured): BLEU must beat copy-the-source (and reach
    `min_bleu`). Returns True for a teacher that passes; raises ValueError naming the teacher and its scores, unless
    `allow_weak`, which logs the same as a warning and returns False."""
    bleu, copy_bleu = scores["bleu"], scores["copy_source_bleu"]
    where = (
        "" if scores.get("source") == "recorded"
        else f" (measured at extraction: greedy, first {scores['examples']} {scores['split']} pairs)"
    )
    if bleu > copy_bleu and (min_bleu is None or bleu >= min_bleu):
        logger.info("%s %s: validation BLEU %.2f (copy-the-source %.2f)%s: a teacher that translates", teacher, pair,
                    bleu, copy_bleu, where)
        return True
    message = (
        f"the teacher {teacher} does not translate {pair} well enough to be explained: validation BLEU {bleu:.2f} / "
        f"chrF {scores['chrf']:.2f} against copy-the-source BLEU {copy_bleu:.2f} / chrF "
        f"{scores['copy_source_chrf']:.2f}"
        + where
        + (f", threshold BLEU {min_bleu:g}" if min_bleu is not None else "")
        + ". Train it longer (agkd teacher ... --resume), or pass --allow_weak_teacher to explain it anyway"
    )
    if not allow_weak:
        raise ValueError(message)
    logger.warning("%s (--allow_weak_teacher: explained anyway)", message)
    return False


def check_teacher_quality(
    teacher: str, pair: str, min_bleu: float | None, allow_weak: bool, measure: Callable[[], dict] | None = None
) -> dict | None:
    """Judge a teacher (`judge_teacher`) on the validation scores `agkd teacher` recorded in `all_results.json`, or,
    where there are none, on `measure()` (`measure_teacher_scores`: no teacher is explained without a measured
    score). Returns the scores judged (recorded into each config's meta and the card); None only when nothing is
    recorded and no `measure` is given."""
    scores = recorded_teacher_scores(teacher, pair)
    if scores is None:
        if measure is None:
            logger.info("%s: no recorded validation scores and none measured", teacher)
            return None
        scores = measure()
    passes = judge_teacher(teacher, pair, scores, min_bleu, allow_weak)
    return {**scores, "passes": passes} | ({"min_bleu": min_bleu} if min_bleu is not None else {})


class ProbCheckError(RuntimeError):
    """Inseq's probabilities do not reproduce the teacher: the shard is refused."""


# ------------------------------------------------------------------------------------------------------ files


def _write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _write_shard(path: Path, rows: list[dict], meta: dict) -> None:
    """Parquet first, then its meta json (the json's presence marks the shard finished)."""
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    os.close(fd)
    try:
        schema = features()
        # A shard whose pairs were all skipped (over the token limit) is written empty, with the schema.
        data = (
            datasets.Dataset.from_list(rows, features=schema)
            if rows
            else datasets.Dataset.from_dict({k: [] for k in schema}, features=schema)
        )
        data.to_parquet(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _write_json_atomic(path.with_suffix(".json"), meta)


def _fingerprint(args: ExtractArguments, engine: str, method: str, kind: str, split: str, n_rows: int) -> dict:
    """What determines a split's content (`engine`: the one that computes this method, `engines.engine_for`); a resume
    with a different fingerprint is refused."""
    spec = METHODS.get(method)
    return {
        "teacher": public_ref(args.teacher),
        "teacher_sha256": teacher_digest(str(args.teacher)),
        "corpus": public_ref(args.corpus),
        "pair": args.pair,
        "method": method,
        "target_kind": kind,
        "split": split,
        "n_input_rows": n_rows,
        "max_tokens": args.max_tokens,
        "shard_size": args.shard_size,
        "seed": args.seed,
        "compat": args.compat,
        "num_beams": args.num_beams,
        "attribute_args": method_arguments(method, args.ig_steps) if spec else None,
        "attribute_target": spec.attribute_target if spec else None,
    } | ({"engine": engine} if engine != "inseq" and spec else {}) | (
        {"target_layer": TARGET_LAYER} if spec and spec.layer_method else {}
    )


# ------------------------------------------------------------------------------------------------------ main loop


def max_pairs(args: ExtractArguments) -> dict[str, int]:
    """`--max_pairs train=600 test=100` as {split: cap}; raises ValueError on a malformed entry."""
    caps = {}
    for entry in args.max_pairs or []:
        split, _, n = entry.partition("=")
        if not split or not n.isdigit():
            raise ValueError(f"--max_pairs takes SPLIT=N entries (e.g. train=600), got {entry!r}")
        caps[split] = int(n)
    return caps


def _split_rows(args: ExtractArguments, corpus, split: str, teacher: Teacher) -> list[dict]:
    """The pairs of a split to attribute. With a cap (`--max_pairs` of the split or `--limit`), the first N pairs
    whose source and reference fit `max_tokens`, so a small run is not emptied by long pairs; without a cap, every
    pair (longer ones are skipped later and counted in the card)."""
    ds = corpus[split]
    n = max_pairs(args).get(split)
    if args.limit is not None:
        n = args.limit if n is None else min(n, args.limit)
    if n is None:
        return [{"id": str(r["id"]), "source": r["source"], "target": r["target"]} for r in ds]
    rows, passed_over = [], 0
    for r in ds:
        if len(rows) >= n:
            break
        source_ids, target_ids = teacher.encode(r["source"], r["target"])
        if len(source_ids) > args.max_tokens or len(target_ids) > args.max_tokens:
            passed_over += 1
            continue
        rows.append({"id": str(r["id"]), "source": r["source"], "target": r["target"]})
    if passed_over:
        logger.info(
            "%s: took the first %d pairs within %d tokens (%d longer ones passed over)",
            split,
            len(rows),
            args.max_tokens,
            passed_over,
        )
    return rows


def _translations(teacher: Teacher, args, work: Path, split: str, shard: int, rows: list[dict]) -> list[str]:
    """The teacher's translations of a shard, cached so every method attributes the same outputs."""
    path = work / f"{teacher.name}.{args.pair}.translations" / split / f"shard-{shard:05d}.json"
    if path.exists():
        cached = json.loads(path.read_text())
        if cached["ids"] == [r["id"] for r in rows]:
            return cached["translations"]
    out = teacher.translate([r["source"] for r in rows], args.max_tokens, args.num_beams)
    _write_json_atomic(path, {"ids": [r["id"] for r in rows], "translations": out})
    return out


def _prepare(teacher: Teacher, args, work: Path, split: str, shard: int, rows: list[dict], kind: str):
    """Tokenise a shard's pairs for a target kind; returns (kept rows, number skipped as too long)."""
    targets = [r["target"] for r in rows]
    if kind == "teacher":
        targets = _translations(teacher, args, work, split, shard, rows)
    kept, skipped = [], 0
    for r, target in zip(rows, targets, strict=True):
        source_ids, target_ids = teacher.encode(r["source"], target)
        if len(source_ids) > args.max_tokens or len(target_ids) > args.max_tokens or not target.strip():
            skipped += 1
            continue
        kept.append({**r, "target": target, "target_kind": kind, "source_ids": source_ids, "target_ids": target_ids})
    return kept, skipped


def run_split(teacher: Teacher, args, state, config: str, method: str, kind: str, split: str, rows: list[dict]) -> None:
    """Compute this process's missing shards of one (config, split): `config` holds `method`'s maps of `kind`."""
    from tqdm.auto import tqdm

    work = Path(args.output_dir) / WORK_DIR
    shard_dir = work / config / split
    engine = engine_for(args.engine, teacher, method)
    fingerprint = _fingerprint(args, engine, method, kind, split, len(rows))
    fp_path = shard_dir / "fingerprint.json"
    if state.is_main_process:
        if fp_path.exists() and json.loads(fp_path.read_text()) != fingerprint:
            if not args.overwrite:
                raise ValueError(f"{shard_dir} holds shards of a different run; pass --overwrite to discard them")
            shutil.rmtree(shard_dir)
        _write_json_atomic(fp_path, fingerprint)
    state.wait_for_everyone()
    n_shards = (len(rows) + args.shard_size - 1) // args.shard_size
    mine = [i for i in range(n_shards) if i % state.num_processes == state.process_index]
    todo = [i for i in mine if not (shard_dir / f"shard-{i:05d}.json").exists()]
    total = sum(len(rows[i * args.shard_size : (i + 1) * args.shard_size]) for i in todo)
    if not todo:
        return
    bar = tqdm(total=total, unit="pair", desc=f"{config}/{split}", position=state.process_index, dynamic_ncols=True)
    try:
        for shard in todo:
            chunk = rows[shard * args.shard_size : (shard + 1) * args.shard_size]
            kept, skipped = _prepare(teacher, args, work, split, shard, chunk, kind)
            t0 = time.perf_counter()
            seed = args.seed * 1_000_003 + shard
            out = attribute(engine, teacher, method, kept, args.batch_size, seed, args.ig_steps) if kept else []
            checks = [r["prob_check"] for r in out if r["prob_check"] is not None]
            max_check = max(checks) if checks else None
            if max_check is not None and max_check > args.prob_tolerance:
                raise ProbCheckError(
                    f"{config}/{split} shard {shard}: Inseq's probabilities differ from the teacher's forward pass by "
                    f"{max_check:.3g} > {args.prob_tolerance:g}; shard not written (compat layer: "
                    f"{teacher.compat_reports.get(method)})"
                )
            meta = {
                "shard": shard,
                "rows": len(out),
                "skipped_too_long": skipped,
                "max_prob_check": max_check,
                "seconds": time.perf_counter() - t0,
                "compat": teacher.compat_reports.get(method),
            }
            _write_shard(shard_dir / f"shard-{shard:05d}.parquet", out, meta)
            bar.update(len(chunk))
    finally:
        bar.close()


def merge_split(args, config: str, split: str, n_rows: int) -> dict | None:
    """Concatenate finished shards (main process) into the published split; returns its summary or None."""
    import datasets

    shard_dir = Path(args.output_dir) / WORK_DIR / config / split
    n_shards = (n_rows + args.shard_size - 1) // args.shard_size
    metas = []
    for i in range(n_shards):
        meta_path = shard_dir / f"shard-{i:05d}.json"
        if not meta_path.exists():
            logger.warning("%s/%s: shard %d missing, not merged", config, split, i)
            return None
        metas.append(json.loads(meta_path.read_text()))
    import pyarrow.parquet as pq

    parts = [datasets.Dataset(pq.read_table(shard_dir / f"shard-{i:05d}.parquet")) for i in range(n_shards)]
    merged = (
        datasets.concatenate_datasets(parts).cast(features())
        if parts
        else datasets.Dataset.from_list([], features=features())
    )
    path = write_split(args.output_dir, config, split, merged)
    checks = [m["max_prob_check"] for m in metas if m["max_prob_check"] is not None]
    summary = {
        "rows": len(merged),
        "input_rows": n_rows,
        "skipped_too_long": sum(m["skipped_too_long"] for m in metas),
        "max_prob_check": max(checks) if checks else None,
        "compute_seconds": sum(m["seconds"] for m in metas),
        "fingerprint": json.loads((shard_dir / "fingerprint.json").read_text()),
        "scale": parquet_map_scale(path),
    }
    compat = next((m["compat"] for m in metas if m.get("compat")), None)
    if compat:
        summary["compat"] = compat
    shutil.rmtree(shard_dir)
    return summary


def _config_meta(args, teacher: Teacher, method: str, kind: str) -> dict:
    from importlib.metadata import version

    meta = {
        "teacher": {
            "path": public_ref(args.teacher),
            "family": teacher.family,
            "name": teacher.name,
            "tokenizer_kwargs": teacher.tokenizer_kwargs,
        },
        "pair": args.pair,
        "method": method,
        "target_kind": kind,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "versions": {p: version(p) for p in ("inseq", "captum", "transformers", "torch")},
        "orientation": (
            "attribution[t][s]: target token t (labels[t], final </s> included) "
            "x source token s (input_ids[s], </s> included)"
        ),
    }
    if kind == "teacher":
        meta["translation"] = {
            "num_beams": args.num_beams,
            "max_new_tokens": args.max_tokens,
            **teacher.generation_kwargs,
        }
    if method in METHODS:
        spec = METHODS[method]
        engine = engine_for(args.engine, teacher, method)
        meta.update(
            kind="method",
            description=spec.description,
            attribute_args=method_arguments(method, args.ig_steps),
            attribute_target=spec.attribute_target,
            aggregation=f"Inseq default ({spec.aggregation}), normalize=False",
            batch_size=args.batch_size or default_batch_size(engine, method, teacher.device),
            engine=engine,
        )
        if spec.layer_method:
            meta["target_layer"] = target_layer_name(teacher.model)
        if spec.stochastic:
            meta["seeds"] = (
                f"torch, numpy and random seeded with seed * 1000003 + shard index before each shard (seed {args.seed})"
            )
    else:
        meta.update(kind="control", description=CONTROLS[method].description, aggregation="none (constructed map)")
    return meta


# ------------------------------------------------------------------------------------------------ shuffled controls


def teacher_name(args: ExtractArguments) -> str:
    """The teacher's name in config names without loading its weights: `--teacher_name`, else its config's
    model_type (as `Teacher.name`)."""
    if args.teacher_name:
        return args.teacher_name
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(args.teacher).model_type
    except OSError as err:
        raise ValueError(f"cannot read the config of the teacher {args.teacher} ({err}); pass --teacher_name") from err


def shuffled_inputs(args: ExtractArguments, name: str, config: str, source: str) -> tuple[dict, list[str]]:
    """(the source config's meta, the splits to build) of the shuffled control `name`, whose `config` is permuted from
    the method's `source` config: the splits of `--splits`, or every split the source config holds. Raises ValueError
    naming the source config (or split) that is missing."""
    meta = read_meta(args.output_dir, source) if Path(args.output_dir).is_dir() else None
    if meta is None or not meta.get("splits"):
        raise ValueError(
            f"{config} is built from the maps of {source}, which {args.output_dir} does not hold: extract "
            f"--methods {shuffled_source(name)} into it first (or in the same run)"
        )
    splits = args.splits or sorted(meta["splits"])
    missing = [s for s in splits if s not in meta["splits"] or not split_path(args.output_dir, source, s).exists()]
    if missing:
        raise ValueError(f"{config}: the source config {source} in {args.output_dir} has no split(s) {missing}")
    return meta, splits


def _shuffled_fingerprint(name: str, kind: str, split: str, source: str, source_meta: dict) -> dict:
    """What determines a shuffled split: its source split's extraction fingerprint (new source maps rebuild it) and
    the permutation rule."""
    return {
        "method": name,
        "target_kind": kind,
        "split": split,
        "shuffled_from": source,
        "source_fingerprint": source_meta["splits"][split].get("fingerprint"),
        "shuffle": SHUFFLE_RULE,
    }


def build_shuffled(args: ExtractArguments, name: str, kind: str, config: str, source: str) -> dict | None:
    """Write the shuffled control `name` (`<method>-shuffled`) of a target kind from the method's config in the same
    `--output_dir`, without the teacher: every field of every row kept, each `attribution` row permuted
    (`attribution_methods.shuffled_map`). Splits whose fingerprint is unchanged are skipped (unless `--overwrite`);
    returns the config's meta, or None when nothing was to do."""
    import datasets
    import pyarrow.parquet as pq

    method = shuffled_source(name)
    source_meta, splits = shuffled_inputs(args, name, config, source)
    meta_path = Path(args.output_dir) / META_DIR / f"{config}.json"
    old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    fingerprints = {s: _shuffled_fingerprint(name, kind, s, source, source_meta) for s in splits}
    todo = [
        s
        for s in splits
        if args.overwrite
        or old.get("splits", {}).get(s, {}).get("fingerprint") != fingerprints[s]
        or not split_path(args.output_dir, config, s).exists()
    ]
    if not todo:
        logger.info("%s: already built (%s)", config, ", ".join(splits))
        return None
    keep = ("teacher", "pair", "target_kind", "max_tokens", "seed", "versions", "orientation", "translation",
            "teacher_quality")
    meta = {**old, **{k: source_meta[k] for k in keep if k in source_meta}}
    meta.update(
        method=name,
        kind="control",
        description=f"shuffled control of {method}: its maps with each target row permuted over the source positions "
        "(the same values, sharpness and scale per row; no alignment)",
        aggregation=f"{method}'s ({source_meta.get('aggregation')}), rows permuted",
        shuffled_from={"method": method, "config": source, "maps_version": maps_version(args.output_dir, source)},
        shuffle=SHUFFLE_RULE,
    )
    meta.setdefault("splits", {})
    for split in todo:
        t0 = time.perf_counter()
        rows = pq.read_table(split_path(args.output_dir, source, split)).to_pylist()
        for row in rows:
            row["attribution"] = shuffled_map(row["attribution"], str(row["id"]), method).tolist()
        data = datasets.Dataset.from_list(rows, features=features()) if rows else datasets.Dataset.from_list(
            [], features=features()
        )
        path = write_split(args.output_dir, config, split, data)
        src = source_meta["splits"][split]
        meta["splits"][split] = {
            "rows": len(rows),
            "input_rows": src.get("input_rows", len(rows)),
            "skipped_too_long": src.get("skipped_too_long", 0),
            "max_prob_check": src.get("max_prob_check"),
            "compute_seconds": time.perf_counter() - t0,
            "fingerprint": fingerprints[split],
            "scale": parquet_map_scale(path),
        }
    _write_json_atomic(meta_path, meta)
    write_dataset_card(args.output_dir)
    logger.info("%s: %s (shuffled from %s)", config, {s: v["rows"] for s, v in meta["splits"].items()}, source)
    return meta


def extract(args: ExtractArguments) -> int:
    """`agkd extract`: the maps of every method and target kind that are not extracted yet. Bad input (ValueError,
    FileNotFoundError) gives exit code 2 through `stage_main`, before anything is written; a failed probability check
    or a shuffled control whose method failed gives 1."""
    import datasets
    import torch
    from accelerate import PartialState

    datasets.disable_progress_bars()
    for noisy in ("inseq", "captum"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    bad_kinds = [k for k in args.target_kinds if k not in TARGET_KINDS]
    if bad_kinds:
        raise ValueError(f"unknown target kinds {bad_kinds}; known: {TARGET_KINDS}")
    methods = resolve(args.methods)
    # Shuffled controls are built from the methods' stored maps, after them and without the teacher; a run of only
    # shuffled controls loads neither the teacher nor the corpus.
    computed = [m for m in methods if shuffled_source(m) is None]
    shuffled = [m for m in methods if shuffled_source(m) is not None]
    state = PartialState()
    teacher = corpus = quality = None
    # Bad input raises here (ValueError: one readable line and exit code 2 from `stage_main`), nothing written yet.
    max_pairs(args)
    name = teacher_name(args) if shuffled and not computed else None
    if computed:
        corpus = load_config(args.corpus, args.pair)
        teacher = Teacher(args.teacher, args.pair, state.device, args.compat, args.teacher_name)
        name = teacher.name
        # No teacher is explained without a score: recorded by `agkd teacher`, else measured here.
        quality = check_teacher_quality(
            args.teacher, args.pair, args.min_teacher_bleu, args.allow_weak_teacher,
            measure=lambda: measure_teacher_scores(teacher, corpus, args.max_tokens),
        )
    # Every config this run reads or writes, named once: (method or control, target kind) -> config name.
    configs = {(m, kind): config_name(name, args.pair, m, kind)
               for kind in args.target_kinds for m in [*computed, *shuffled, *map(shuffled_source, shuffled)]}
    for kind in args.target_kinds:  # a shuffled control whose method is not in this run: its maps must exist
        for control in shuffled:
            if shuffled_source(control) not in computed:
                shuffled_inputs(args, control, configs[control, kind], configs[shuffled_source(control), kind])
    out = Path(args.output_dir)
    splits = (args.splits or list(corpus)) if computed else []
    inputs = {split: _split_rows(args, corpus, split, teacher) for split in splits}
    status = 0
    for kind in args.target_kinds:
        for method in computed:
            config = configs[method, kind]
            meta_path = out / META_DIR / f"{config}.json"
            old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            todo = [
                s
                for s in splits
                if args.overwrite
                or old.get("splits", {}).get(s, {}).get("fingerprint")
                != _fingerprint(args, engine_for(args.engine, teacher, method), method, kind, s, len(inputs[s]))
            ]
            if not todo:
                logger.info("%s: already extracted (%s)", config, ", ".join(splits))
                continue
            try:
                for split in todo:
                    run_split(teacher, args, state, config, method, kind, split, inputs[split])
            except ProbCheckError as err:
                logger.error("%s", err)
                status = 1
                continue
            state.wait_for_everyone()
            if state.is_main_process:
                meta = {**old, **_config_meta(args, teacher, method, kind)}
                if quality is not None:
                    meta["teacher_quality"] = quality
                meta.setdefault("splits", {})
                for split in todo:
                    summary = merge_split(args, config, split, len(inputs[split]))
                    if summary is not None:
                        meta["splits"][split] = summary
                _write_json_atomic(meta_path, meta)
                write_dataset_card(out)
                logger.info("%s: %s", config, {s: v["rows"] for s, v in meta["splits"].items()})
            state.wait_for_everyone()
        for control in shuffled:
            if state.is_main_process:
                try:
                    build_shuffled(args, control, kind, configs[control, kind], configs[shuffled_source(control), kind])
                except ValueError as err:  # its method's maps failed in this run (the error above says why)
                    logger.error("%s", err)
                    status = 1
            state.wait_for_everyone()
    if state.is_main_process and status == 0 and computed:
        # Only what this run made: extraction jobs of other methods may be writing their shards beside it.
        work = out / WORK_DIR
        if "teacher" in args.target_kinds:
            shutil.rmtree(work / f"{teacher.name}.{args.pair}.translations", ignore_errors=True)
        for folder in sorted((p for p in work.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: another job's work
                folder.rmdir()
        with contextlib.suppress(OSError):
            work.rmdir()
    return status



main = stage_main(ExtractArguments, extract, prog="agkd extract", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
