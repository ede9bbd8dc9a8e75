"""`agkd extract`: attribution maps of a teacher on agkd-parallel, with Inseq, into the Hub dataset agkd-attributions.

One config per `<teacher>.<pair>.<method>` (forced decoding on the gold reference, the paper's protocol, e.g.
`marian.de-en.saliency`) and `<teacher>.<pair>.<method>.teacher` (the teacher's own greedy/beam translation, the
leakage-free protocol); controls (`random`, `uniform`, `diagonal`) are configs too, with the same shapes. Splits are
those of the corpus. Every row carries `target_kind` as well, so a row read out of context still says what it is.

Rows: id, source, target, target_kind, source_tokens, target_tokens, source_ids, target_ids,
attribution ([T][S] float32: row t = target token t = labels[t], the final </s> included (mBART: the target language
code first); column s = source token s = input_ids[s], </s> included (mBART: the source language code first)), and
prob_check (max |p_inseq - p_model| over the target tokens; null for controls).

Maps are raw: Inseq's default aggregation functions with `normalize=False`, as the authors (`aggregate(normalize=False)`).
Every example is self-checked: Inseq's `probability` step score against a plain forward pass of the teacher on the
same pair; a shard whose max deviation exceeds `--prob_tolerance` is refused (not written) and the run fails.
Raw scale differs by orders of magnitude between methods, so every split's summary in `meta/<config>.json` records
it (`scale`, see `map_scale`) and the card tabulates it.

Scale and faults: the input of each split is cut into fixed shards of `--shard_size` pairs; under `accelerate
launch` process p takes shards p, p+N, ...; every finished shard is written atomically to
`<output_dir>/.work/<config>/<split>/`, so a killed run resumes without recomputing finished shards. When all shards
of a split exist the main process merges them into `<config>/<split>-00000-of-00001.parquet` and rewrites the card.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

TARGET_KINDS = ("reference", "teacher")
# mBART-50 language codes of the corpus languages.
MBART_LANG_CODES = {"de": "de_DE", "fr": "fr_XX", "ar": "ar_AR", "en": "en_XX"}
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
        default=None, metadata={"help": "Inseq method ids and/or controls (random, uniform, diagonal); default: all"}
    )
    splits: list[str] | None = field(default=None, metadata={"help": "corpus splits to extract; default: all"})
    target_kinds: list[str] = field(
        default_factory=lambda: ["reference"],
        metadata={"help": "reference (forced decoding on the gold target) and/or teacher (the teacher's translation)"},
    )
    limit: int | None = field(
        default=None, metadata={"help": "use only the first N pairs of every split that fit --max_tokens"}
    )
    preset: str | None = field(
        default=None, metadata={"help": "take max pairs per split and max_tokens from this preset (smoke, demo, paper)"}
    )
    max_tokens: int = field(
        default=128, metadata={"help": "skip pairs with more source or target tokens (counted in the card)"}
    )
    batch_size: int | None = field(default=None, metadata={"help": "pairs per Inseq call (default: per method)"})
    ig_steps: int | None = field(
        default=None,
        metadata={"help": "integrated_gradients n_steps (default: the preset's, else the registry's 50, Inseq's default)"},
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
            "help": "inseq (reference) or fast (teacher-forced batched engine, datasets_scripts/fast_attribution.py, "
            "same maps within 1e-4 relative)",
            "choices": ["inseq", "fast"],
        },
    )
    min_teacher_bleu: float | None = field(
        default=None,
        metadata={"help": "validation BLEU the teacher must reach (besides beating copy-the-source); default: the "
                  "preset's"},
    )
    allow_weak_teacher: bool = field(
        default=False,
        metadata={"help": "explain a teacher whose recorded validation BLEU does not beat copy-the-source (or the "
                  "threshold) anyway, with a warning; for experiments"},
    )


def check_teacher_quality(teacher: str, pair: str, min_bleu: float | None, allow_weak: bool) -> None:
    """Refuse to explain a teacher that does not translate: its maps would describe noise, and every student and
    verdict built on them would too. Reads the validation scores `agkd teacher` records in `all_results.json`
    (BLEU against copy-the-source, the untranslated source as hypothesis); a teacher without that file (a public
    checkpoint, whose scores are on its own card) is not checked. Raises ValueError naming the teacher and its
    scores, unless `allow_weak`, which logs the same as a warning."""
    results_file = Path(teacher) / "all_results.json"
    if not results_file.exists():
        logger.info("%s: no all_results.json, so its translation quality is not checked", teacher)
        return
    scores = json.loads(results_file.read_text()).get("results", {}).get(f"{pair}/validation")
    if scores is None:
        logger.warning("%s: no validation scores for %s in all_results.json, so its quality is not checked", teacher, pair)
        return
    bleu, copy_bleu = scores["bleu"], scores["copy_source_bleu"]
    if bleu > copy_bleu and (min_bleu is None or bleu >= min_bleu):
        logger.info("%s %s: validation BLEU %.2f (copy-the-source %.2f): a teacher that translates", teacher, pair, bleu, copy_bleu)
        return
    message = (
        f"the teacher {teacher} does not translate {pair} well enough to be explained: validation BLEU {bleu:.2f} / "
        f"chrF {scores['chrf']:.2f} against copy-the-source BLEU {copy_bleu:.2f} / chrF {scores['copy_source_chrf']:.2f}"
        + (f", threshold BLEU {min_bleu:g}" if min_bleu is not None else "")
        + ". Train it longer (agkd teacher ... --resume), or pass --allow_weak_teacher to explain it anyway"
    )
    if not allow_weak:
        raise ValueError(message)
    logger.warning("%s (--allow_weak_teacher: explained anyway)", message)


class ProbCheckError(RuntimeError):
    """Inseq's probabilities do not reproduce the teacher: the shard is refused."""


def config_name(teacher: str, pair: str, method: str, target_kind: str = "reference") -> str:
    """`marian.de-en.saliency` (reference) or `marian.de-en.saliency.teacher` (teacher translation)."""
    if target_kind not in TARGET_KINDS:
        raise ValueError(f"target kind {target_kind!r} not in {TARGET_KINDS}")
    return f"{teacher}.{pair}.{method}" + ("" if target_kind == "reference" else f".{target_kind}")


def parse_config_name(name: str) -> dict:
    """Inverse of `config_name`: {'teacher', 'pair', 'method', 'target_kind'}."""
    parts = name.split(".")
    kind = "reference"
    if len(parts) == 4 and parts[3] in TARGET_KINDS:
        kind = parts.pop()
    if len(parts) != 3:
        raise ValueError(f"not an attribution config name: {name!r}")
    return {"teacher": parts[0], "pair": parts[1], "method": parts[2], "target_kind": kind}


def features():
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "source": datasets.Value("string"),
            "target": datasets.Value("string"),
            "target_kind": datasets.Value("string"),
            "source_tokens": datasets.Sequence(datasets.Value("string")),
            "target_tokens": datasets.Sequence(datasets.Value("string")),
            "source_ids": datasets.Sequence(datasets.Value("int32")),
            "target_ids": datasets.Sequence(datasets.Value("int32")),
            "attribution": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
            "prob_check": datasets.Value("float32"),
        }
    )


# ------------------------------------------------------------------------------------------------------ teacher


class Teacher:
    """The teacher model, its tokenizer (language codes set for mBART) and one Inseq wrapper per method."""

    def __init__(self, path: str, pair: str, device, compat: bool, name: str | None = None):
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.path, self.pair, self.device, self.compat = path, pair, device, compat
        self.model = AutoModelForSeq2SeqLM.from_pretrained(path, attn_implementation="eager").to(device).eval()
        self.family = self.model.config.model_type
        self.name = name or self.family
        src, tgt = pair.split("-")
        self.tokenizer_kwargs = {}
        if self.family == "mbart":
            self.tokenizer_kwargs = {"src_lang": MBART_LANG_CODES[src], "tgt_lang": MBART_LANG_CODES[tgt]}
        self.tokenizer = AutoTokenizer.from_pretrained(path, **self.tokenizer_kwargs)
        for key, value in self.tokenizer_kwargs.items():
            setattr(self.tokenizer, key, value)
        self.generation_kwargs = {}
        if self.family == "mbart":
            code_id = self.tokenizer.convert_tokens_to_ids(self.tokenizer_kwargs["tgt_lang"])
            if code_id == self.tokenizer.unk_token_id:
                raise ValueError(f"tokenizer of {path} has no language code {self.tokenizer_kwargs['tgt_lang']}")
            self.generation_kwargs["forced_bos_token_id"] = code_id
        self._inseq: dict[str, object] = {}
        self.compat_reports: dict[str, dict] = {}
        torch.set_grad_enabled(True)

    def inseq_model(self, method: str):
        """Inseq wrapper of the (shared) model for `method`, probed and patched by the compatibility layer."""
        if method not in self._inseq:
            import inseq
            from transformers import AutoTokenizer

            from datasets_scripts.attribution_methods import METHODS, target_layer_name
            from datasets_scripts.inseq_compat import apply_compat

            kwargs = {}
            if method in METHODS and METHODS[method].layer_method:
                kwargs["target_layer"] = dict(self.model.named_modules())[target_layer_name(self.model)]
            tokenizer = AutoTokenizer.from_pretrained(self.path, **self.tokenizer_kwargs)
            for key, value in self.tokenizer_kwargs.items():
                setattr(tokenizer, key, value)
            wrapped = inseq.load_model(self.model, method, tokenizer=tokenizer, device=str(self.device), **kwargs)
            self.compat_reports[method] = apply_compat(wrapped, enabled=self.compat).to_dict()
            self._inseq[method] = wrapped
        return self._inseq[method]

    def encode(self, source: str, target: str) -> tuple[list[int], list[int]]:
        enc = self.tokenizer(source, text_target=target)
        return list(enc["input_ids"]), list(enc["labels"])

    def translate(self, sources: list[str], max_new_tokens: int, num_beams: int, batch_size: int = 16) -> list[str]:
        import torch

        out = []
        for i in range(0, len(sources), batch_size):
            enc = self.tokenizer(sources[i : i + batch_size], return_tensors="pt", padding=True).to(self.device)
            with torch.no_grad():
                gen = self.model.generate(
                    **enc, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False, **self.generation_kwargs
                )
            out += self.tokenizer.batch_decode(gen, skip_special_tokens=True)
        return out

    def probabilities(self, source_ids: list[list[int]], target_ids: list[list[int]]) -> list[np.ndarray]:
        """p(labels[t] | source, labels[:t]) from a plain teacher-forced forward pass (decoder input = start + labels[:-1])."""
        import torch

        cfg = self.model.config
        pad = cfg.pad_token_id
        S, T = max(map(len, source_ids)), max(map(len, target_ids))
        src = torch.full((len(source_ids), S), pad, dtype=torch.long)
        src_mask = torch.zeros_like(src)
        dec = torch.full((len(target_ids), T), pad, dtype=torch.long)
        lab = torch.full((len(target_ids), T), pad, dtype=torch.long)
        for i, (s, t) in enumerate(zip(source_ids, target_ids, strict=True)):
            src[i, : len(s)] = torch.tensor(s)
            src_mask[i, : len(s)] = 1
            dec[i, : len(t)] = torch.tensor([cfg.decoder_start_token_id] + t[:-1])
            lab[i, : len(t)] = torch.tensor(t)
        dec_mask = (torch.arange(T)[None, :] < torch.tensor([len(t) for t in target_ids])[:, None]).long()
        with torch.no_grad():
            logits = self.model(
                input_ids=src.to(self.device),
                attention_mask=src_mask.to(self.device),
                decoder_input_ids=dec.to(self.device),
                decoder_attention_mask=dec_mask.to(self.device),
            ).logits.float()
        probs = logits.softmax(-1).gather(-1, lab.to(self.device)[..., None])[..., 0].cpu().numpy()
        return [probs[i, : len(t)] for i, t in enumerate(target_ids)]


# ------------------------------------------------------------------------------------------------------ one shard


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def attribute_rows(
    teacher: Teacher, method: str, rows: list[dict], batch_size: int, seed: int, ig_steps: int | None = None
) -> list[dict]:
    """Maps for `rows` (each with id, source, target, target_kind, source_ids, target_ids) with one method or control."""
    from datasets_scripts.attribution_methods import CONTROLS, METHODS, method_arguments

    if method in CONTROLS:
        build = CONTROLS[method].build
        tok = teacher.tokenizer
        return [
            {
                **r,
                "source_tokens": tok.convert_ids_to_tokens(r["source_ids"]),
                "target_tokens": tok.convert_ids_to_tokens(r["target_ids"]),
                "attribution": build(len(r["target_ids"]), len(r["source_ids"]), r["id"], seed).tolist(),
                "prob_check": None,
            }
            for r in rows
        ]
    spec = METHODS[method]
    model = teacher.inseq_model(method)
    # Length-sorted batches waste less on padding; results are returned in input order.
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]["target_ids"]), len(rows[i]["source_ids"])))
    results: dict[int, dict] = {}
    _seed_everything(seed)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = [rows[i] for i in idx]
        kwargs = method_arguments(method, ig_steps)
        if not spec.final_step:
            kwargs["step_scores"] = ["probability"]
        out = model.attribute(
            input_texts=[r["source"] for r in batch],
            generated_texts=[r["target"] for r in batch],
            attribute_target=spec.attribute_target,
            batch_size=len(batch),
            show_progress=False,
            **kwargs,
        )
        if spec.final_step:
            # Final-step methods reject step scores: take them from Inseq's dummy method on the same wrapper code
            # path, one pair per call (Inseq 0.7.1's dummy method crashes on batches whose targets end at
            # different steps: `remap_from_filtered` reads the shape of absent attributions).
            inseq_probs = [
                teacher.inseq_model("dummy")
                .attribute(
                    input_texts=r["source"],
                    generated_texts=r["target"],
                    step_scores=["probability"],
                    show_progress=False,
                )
                .sequence_attributions[0]
                .step_scores["probability"]
                for r in batch
            ]
        else:
            inseq_probs = [sa.step_scores["probability"] for sa in out.sequence_attributions]
        model_probs = teacher.probabilities([r["source_ids"] for r in batch], [r["target_ids"] for r in batch])
        for i, r, sa, p_inseq, p_model in zip(
            idx, batch, out.sequence_attributions, inseq_probs, model_probs, strict=True
        ):
            source_ids = [t.id for t in sa.source]
            target = sa.target[sa.attr_pos_start : sa.attr_pos_end]
            target_ids = [t.id for t in target]
            if source_ids != r["source_ids"] or target_ids != r["target_ids"]:
                raise RuntimeError(f"{r['id']}: Inseq tokenised the pair differently from the teacher's tokenizer")
            agg = sa.aggregate(normalize=False).source_attributions  # [S, T]
            amap = np.nan_to_num(agg.T.float().numpy().astype(np.float32))  # [T, S]
            assert amap.shape == (len(target_ids), len(source_ids)), amap.shape
            results[i] = {
                **r,
                "source_tokens": [t.token for t in sa.source],
                "target_tokens": [t.token for t in target],
                "attribution": amap.tolist(),
                "prob_check": float(np.abs(p_inseq.float().numpy() - p_model).max()),
            }
    return [results[i] for i in range(len(rows))]


# ------------------------------------------------------------------------------------------------------ map scale

SCALE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _significant(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") + 0.0  # + 0.0: no "-0" for a one-hot row's entropy


class _ScaleAccumulator:
    """Per-target-row statistics of raw maps, gathered chunk by chunk (a whole split never sits in memory as floats
    beyond one number per row and statistic)."""

    def __init__(self):
        self.row_stats: dict[str, list[np.ndarray]] = {"row_sum": [], "row_l1": [], "row_max_abs": [], "row_entropy": []}
        self.n_rows = self.n_values = self.n_negative = 0
        self.min, self.max = np.inf, -np.inf

    def add(self, values: np.ndarray, row_lengths: np.ndarray) -> None:
        """`values`: the entries of consecutive target rows, flat; `row_lengths`: the length of each row."""
        row_lengths = row_lengths[row_lengths > 0]  # an empty row has no values and no statistics
        if not len(row_lengths):
            return
        values = np.asarray(values, dtype=np.float64)
        starts = np.concatenate([[0], np.cumsum(row_lengths)[:-1]])
        magnitude = np.abs(values)
        l1 = np.add.reduceat(magnitude, starts)
        share = magnitude / np.repeat(np.where(l1 > 0, l1, 1.0), row_lengths)
        plogp = np.where(share > 0, share * np.log(np.where(share > 0, share, 1.0)), 0.0)
        # Normalised entropy of |A| / sum |A|: undefined for one-column rows (log 1 = 0) and all-zero rows; skipped.
        defined = (row_lengths > 1) & (l1 > 0)
        entropy = -np.add.reduceat(plogp, starts)[defined] / np.log(row_lengths[defined])
        for name, stat in (
            ("row_sum", np.add.reduceat(values, starts)),
            ("row_l1", l1),
            ("row_max_abs", np.maximum.reduceat(magnitude, starts)),
            ("row_entropy", entropy),
        ):
            self.row_stats[name].append(stat.astype(np.float32))
        self.n_rows += len(row_lengths)
        self.n_values += len(values)
        self.n_negative += int((values < 0).sum())
        self.min, self.max = min(self.min, float(values.min())), max(self.max, float(values.max()))

    def summary(self) -> dict:
        out: dict = {"rows": self.n_rows}
        for name, parts in self.row_stats.items():
            stat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
            quantiles = np.quantile(stat.astype(np.float64), SCALE_QUANTILES) if len(stat) else [None] * len(SCALE_QUANTILES)
            out[name] = {
                f"q{round(q * 100):02d}": None if v is None else _significant(v)
                for q, v in zip(SCALE_QUANTILES, quantiles, strict=True)
            }
        empty = self.n_values == 0
        out["min"] = None if empty else _significant(self.min)
        out["max"] = None if empty else _significant(self.max)
        out["share_negative"] = None if empty else _significant(self.n_negative / self.n_values)
        return out


def map_scale(attributions) -> dict:
    """Raw scale of attribution maps (each [T][S], an array or nested lists), over all their target rows.

    Methods differ by orders of magnitude in raw value (research/verdict.md, "Raw map scale differs by orders of
    magnitude") and the injection operators act on raw values, so the scale is recorded next to the maps. Returns
    `rows` (target rows), quantiles q05..q95 of the row sum, row L1 sum, row max |A| and normalised row entropy of
    |A| / sum |A| (entropy / log S: 1 = flat, 0 = one-hot; one-column and all-zero rows left out), and the global
    `min`, `max` and `share_negative` of the entries; floats to 4 significant digits, None where there are no rows.
    """
    acc = _ScaleAccumulator()
    for attribution in attributions:
        amap = np.asarray(attribution, dtype=np.float64)
        if amap.size == 0:
            continue
        if amap.ndim != 2:
            raise ValueError(f"an attribution map is [T][S]; got shape {amap.shape}")
        acc.add(amap.ravel(), np.full(amap.shape[0], amap.shape[1]))
    return acc.summary()


def parquet_map_scale(path: str | Path, batch_size: int = 1024) -> dict:
    """`map_scale` of the `attribution` column of a parquet file, read in record batches straight into numpy."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    acc = _ScaleAccumulator()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=["attribution"]):
        target_rows = batch.column("attribution").flatten()  # one list per target row
        values = target_rows.flatten().to_numpy(zero_copy_only=False)
        acc.add(values, pc.list_value_length(target_rows).fill_null(0).to_numpy(zero_copy_only=False))
    return acc.summary()


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
        data = datasets.Dataset.from_list(rows, features=schema) if rows else datasets.Dataset.from_dict({k: [] for k in schema}, features=schema)
        data.to_parquet(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _write_json_atomic(path.with_suffix(".json"), meta)


_TEACHER_DIGESTS: dict[str, str] = {}


def teacher_digest(teacher: str) -> str:
    """sha256 of a local teacher folder's config and weights (a retrained teacher invalidates old shards); for a Hub
    id, the id itself."""
    if teacher not in _TEACHER_DIGESTS:
        path = Path(teacher)
        if not path.is_dir():
            _TEACHER_DIGESTS[teacher] = teacher
        else:
            h = hashlib.sha256()
            for f in sorted([*path.glob("*.safetensors"), *path.glob("*.bin"), path / "config.json"]):
                if f.is_file():
                    h.update(f.name.encode())
                    with open(f, "rb") as fh:
                        for block in iter(lambda: fh.read(1 << 24), b""):
                            h.update(block)
            _TEACHER_DIGESTS[teacher] = h.hexdigest()
    return _TEACHER_DIGESTS[teacher]


def _fingerprint(args: ExtractArguments, method: str, kind: str, split: str, n_rows: int) -> dict:
    """What determines a split's content; a resume with a different fingerprint is refused."""
    from datasets_scripts.attribution_methods import METHODS, TARGET_LAYER, method_arguments

    spec = METHODS.get(method)
    return {
        "teacher": str(args.teacher),
        "teacher_sha256": teacher_digest(str(args.teacher)),
        "corpus": str(args.corpus),
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
    } | ({"engine": args.engine} if args.engine != "inseq" and spec else {}) | (
        {"target_layer": TARGET_LAYER} if spec and spec.layer_method else {}
    )


# ------------------------------------------------------------------------------------------------------ main loop


def _split_rows(args: ExtractArguments, corpus, split: str, preset, teacher: Teacher) -> list[dict]:
    """The pairs of a split to attribute. With a cap (the preset's max pairs or `--limit`), the first N pairs whose
    source and reference fit `max_tokens`, so a small run is not emptied by long pairs; without a cap, every pair
    (longer ones are skipped later and counted in the card)."""
    ds = corpus[split]
    n = None
    if preset is not None and preset.extract.max_pairs.get(split) is not None:
        n = preset.extract.max_pairs[split]
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
        logger.info("%s: took the first %d pairs within %d tokens (%d longer ones passed over)", split, len(rows), args.max_tokens, passed_over)
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


def run_split(teacher: Teacher, args, state, method: str, kind: str, split: str, rows: list[dict]) -> None:
    """Compute this process's missing shards of one (config, split)."""
    from tqdm.auto import tqdm

    from datasets_scripts.attribution_methods import METHODS

    config = config_name(teacher.name, args.pair, method, kind)
    work = Path(args.output_dir) / WORK_DIR
    shard_dir = work / config / split
    fingerprint = _fingerprint(args, method, kind, split, len(rows))
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
    batch_size = args.batch_size or (METHODS[method].batch_size if method in METHODS else 64)
    compute = attribute_rows
    if args.engine == "fast" and method in METHODS:
        from datasets_scripts.fast_attribution import attribute_rows_fast as compute

        batch_size = args.batch_size  # None: the fast engine's per-method default (fast_attribution.FAST_BATCH_SIZE)
    bar = tqdm(total=total, unit="pair", desc=f"{config}/{split}", position=state.process_index, dynamic_ncols=True)
    try:
        for shard in todo:
            chunk = rows[shard * args.shard_size : (shard + 1) * args.shard_size]
            kept, skipped = _prepare(teacher, args, work, split, shard, chunk, kind)
            t0 = time.perf_counter()
            seed = args.seed * 1_000_003 + shard
            out = compute(teacher, method, kept, batch_size, seed, args.ig_steps) if kept else []
            checks = [r["prob_check"] for r in out if r["prob_check"] is not None]
            max_check = max(checks) if checks else None
            if max_check is not None and max_check > args.prob_tolerance:
                raise ProbCheckError(
                    f"{config}/{split} shard {shard}: Inseq's probabilities differ from the teacher's forward pass by "
                    f"{max_check:.3g} > {args.prob_tolerance:g}; shard not written (compat layer: {teacher.compat_reports.get(method)})"
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


def merge_split(args, teacher_name: str, method: str, kind: str, split: str, n_rows: int) -> dict | None:
    """Concatenate finished shards (main process) into the published split; returns its summary or None."""
    import datasets

    from datasets_scripts.hub_layout import write_split

    config = config_name(teacher_name, args.pair, method, kind)
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

    from datasets_scripts.attribution_methods import CONTROLS, METHODS, method_arguments, target_layer_name
    from datasets_scripts.fast_attribution import fast_batch_size

    meta = {
        "teacher": {
            "path": args.teacher,
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
        "orientation": "attribution[t][s]: target token t (labels[t], final </s> included) x source token s (input_ids[s], </s> included)",
    }
    if kind == "teacher":
        meta["translation"] = {
            "num_beams": args.num_beams,
            "max_new_tokens": args.max_tokens,
            **teacher.generation_kwargs,
        }
    if method in METHODS:
        spec = METHODS[method]
        meta.update(
            kind="method",
            description=spec.description,
            attribute_args=method_arguments(method, args.ig_steps),
            attribute_target=spec.attribute_target,
            aggregation=f"Inseq default ({spec.aggregation}), normalize=False",
            batch_size=args.batch_size or (spec.batch_size if args.engine == "inseq" else fast_batch_size(method, teacher.device)),
            engine=args.engine,
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


def _scale_section(metas: dict[str, dict]) -> list[str]:
    """The card's "Raw map scale" table: one row per config, its `train` split if it has one, else its first."""
    lines = [
        "## Raw map scale",
        "",
        "The injection operators act on the raw values, so raw scale, not content, can decide a ranking of methods",
        "(under `add` a map of 1e-6 changes nothing, under `multiply` or `replace` it flattens attention); the",
        "students' `map_normalization` (e.g. `row_sum`) removes it at injection time. Medians over target rows;",
        "entropy of |A| / sum |A| over log of the source length (1 = flat, 0 = one-hot). Quantiles of every split are",
        "in `meta/<config>.json` (`splits.<split>.scale`).",
        "",
        "| config | split | median row L1 sum | median row max abs | median normalised entropy | min | max | share negative |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(value) -> str:
        return "-" if value is None else f"{value:.3g}"

    for name, m in metas.items():
        splits = m.get("splits", {})
        split = "train" if "train" in splits else next(iter(splits), None)
        scale = splits.get(split, {}).get("scale", {})
        medians = [scale.get(stat, {}).get("q50") for stat in ("row_l1", "row_max_abs", "row_entropy")]
        extremes = [scale.get(key) for key in ("min", "max", "share_negative")]
        lines.append(f"| `{name}` | {split or '-'} | " + " | ".join(cell(v) for v in medians + extremes) + " |")
    return lines


def write_dataset_card(output_dir: str | Path) -> Path:
    """(Re)write README.md from every config's meta/<config>.json (configs written by earlier runs included)."""
    from datasets_scripts.hub_layout import META_DIR, write_card

    root = Path(output_dir)
    metas = {p.stem: json.loads(p.read_text()) for p in sorted((root / META_DIR).glob("*.json"))}
    lines = [
        "# agkd-attributions",
        "",
        "Attribution maps of translation teachers on agkd-parallel, extracted with Inseq (or the equivalent fast engine,",
        "`engine` per config) by `agkd extract`",
        "(`datasets_scripts/extract_attributions.py`), for attribution-guided knowledge distillation (AGKD).",
        "",
        "## Configs",
        "",
        "`<teacher>.<pair>.<method>`: forced decoding on the gold reference (the paper's protocol; the maps see the",
        "reference). `<teacher>.<pair>.<method>.teacher`: the teacher attributes its own translation (`target` holds it;",
        "leakage-free protocol). Controls `random`, `uniform`, `diagonal` take the place of the method, with the same",
        "shapes. Every row also has `target_kind` (`reference` or `teacher`).",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("<this folder or repo>", "marian.de-en.saliency", split="train")',
        "```",
        "",
        "## Fields",
        "",
        "- `id`, `source`, `target`, `target_kind`",
        "- `source_tokens`, `source_ids`: the teacher's tokenisation of the source, special tokens included",
        "  (`</s>`; for mBART the source language code first)",
        "- `target_tokens`, `target_ids`: the labels, i.e. the tokens the decoder predicts (final `</s>` included; for",
        "  mBART the target language code first); the decoder-start token is not attributed",
        "- `attribution`: [T][S] float32, row t = target token t, column s = source token s (Inseq returns",
        "  source x target; transposed here). Raw maps: Inseq's default aggregation functions (`vnorm` over the",
        "  embedding dimension for gradient methods, mean over heads and layers for attention, mean over layers for",
        "  value zeroing) with `normalize=False`, as the authors; NaN set to 0. Normalise at use time.",
        "- `prob_check`: max over target tokens of |Inseq's `probability` step score - the teacher's probability from",
        "  a plain forward pass| (null for controls; engine fast: its own probabilities); shards above the tolerance",
        "  are never published.",
        "",
        "## Extraction details",
        "",
        "| config | teacher | target kind | method / control | arguments | aggregation | split: rows (skipped > max tokens) | max prob_check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metas.items():
        splits = "; ".join(
            f"{s}: {v['rows']} ({v['skipped_too_long']})" for s, v in sorted(m.get("splits", {}).items())
        )
        checks = [v["max_prob_check"] for v in m.get("splits", {}).values() if v.get("max_prob_check") is not None]
        args = {k: m[k] for k in ("attribute_args", "attribute_target", "target_layer", "seeds", "engine") if k in m}
        lines.append(
            f"| `{name}` | {m['teacher']['name']} ({m['teacher']['path']}) | {m['target_kind']} | {m['method']} | "
            f"`{json.dumps(args)}` | {m['aggregation']} | {splits} | {max(checks):.2e} |"
            if checks
            else f"| `{name}` | {m['teacher']['name']} ({m['teacher']['path']}) | {m['target_kind']} | {m['method']} | "
            f"`{json.dumps(args)}` | {m['aggregation']} | {splits} | - |"
        )
    versions = sorted({json.dumps(m["versions"], sort_keys=True) for m in metas.values()})
    lines += ["", "Software: " + "; ".join(versions), ""]
    compat = sorted(
        {
            json.dumps(v["compat"], sort_keys=True)
            for m in metas.values()
            for v in m.get("splits", {}).values()
            if v.get("compat")
        }
    )
    if compat:
        lines += ["Inseq compatibility layer (`datasets_scripts/inseq_compat.py`), probe results:", ""]
        lines += [f"- `{c}`" for c in compat]
        lines.append("")
    lines += ["Per-config details (teacher, versions, arguments, counts, fingerprints) are in `meta/<config>.json`.", ""]
    lines += _scale_section(metas)
    return write_card(
        root, "\n".join(lines), pretty_name="agkd-attributions", tags=["attribution", "translation", "xai"]
    )


def load_corpus(corpus: str, pair: str):
    """agkd-parallel from a local folder (read from its parquet files, see `hub_layout.read_local_config`: the datasets
    cache of local folders is keyed by folder name, not content) or from the Hub."""
    import datasets

    from datasets_scripts.hub_layout import read_local_config

    if Path(corpus).is_dir():
        return read_local_config(corpus, pair)
    return datasets.load_dataset(corpus, pair)


def main(argv: list[str] | None = None) -> int:
    import datasets
    import torch
    from accelerate import PartialState
    from transformers import HfArgumentParser

    from datasets_scripts.attribution_methods import resolve
    from datasets_scripts.hub_layout import META_DIR

    (args,) = HfArgumentParser(ExtractArguments).parse_args_into_dataclasses(
        args=argv if argv is not None else sys.argv[1:]
    )
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    datasets.disable_progress_bars()
    for noisy in ("inseq", "captum"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    preset = None
    if args.preset:
        from training.presets import PRESETS

        preset = PRESETS[args.preset]
        args.max_tokens = preset.extract.max_tokens
        if args.ig_steps is None:
            args.ig_steps = preset.extract.ig_steps
        if args.min_teacher_bleu is None:
            args.min_teacher_bleu = preset.extract.min_teacher_bleu
        args.allow_weak_teacher = args.allow_weak_teacher or preset.extract.weak_teacher_ok
    try:
        check_teacher_quality(args.teacher, args.pair, args.min_teacher_bleu, args.allow_weak_teacher)
    except ValueError as err:  # bad input: one readable line, nothing written (as every stage does)
        logger.error("%s", err)
        return 2
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    bad_kinds = [k for k in args.target_kinds if k not in TARGET_KINDS]
    if bad_kinds:
        raise ValueError(f"unknown target kinds {bad_kinds}; known: {TARGET_KINDS}")
    methods = resolve(args.methods)
    state = PartialState()
    corpus = load_corpus(args.corpus, args.pair)
    splits = args.splits or list(corpus)
    teacher = Teacher(args.teacher, args.pair, state.device, args.compat, args.teacher_name)
    out = Path(args.output_dir)
    inputs = {split: _split_rows(args, corpus, split, preset, teacher) for split in splits}
    status = 0
    for kind in args.target_kinds:
        for method in methods:
            config = config_name(teacher.name, args.pair, method, kind)
            meta_path = out / META_DIR / f"{config}.json"
            old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            todo = [
                s
                for s in splits
                if args.overwrite
                or old.get("splits", {}).get(s, {}).get("fingerprint")
                != _fingerprint(args, method, kind, s, len(inputs[s]))
            ]
            if not todo:
                logger.info("%s: already extracted (%s)", config, ", ".join(splits))
                continue
            try:
                for split in todo:
                    run_split(teacher, args, state, method, kind, split, inputs[split])
            except ProbCheckError as err:
                logger.error("%s", err)
                status = 1
                continue
            state.wait_for_everyone()
            if state.is_main_process:
                meta = {**old, **_config_meta(args, teacher, method, kind)}
                meta.setdefault("splits", {})
                for split in todo:
                    summary = merge_split(args, teacher.name, method, kind, split, len(inputs[split]))
                    if summary is not None:
                        meta["splits"][split] = summary
                _write_json_atomic(meta_path, meta)
                write_dataset_card(out)
                logger.info("%s: %s", config, {s: v["rows"] for s, v in meta["splits"].items()})
            state.wait_for_everyone()
    if state.is_main_process:
        work = out / WORK_DIR
        if work.exists() and not any(p.suffix == ".parquet" for p in work.rglob("*.parquet")):
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
