"""`agkd triangulate`: the yardsticks beside the verdict, measured on the same maps the students learn from.

For one teacher and pair, on the evaluation split of `agkd-attributions` (the sentences the verdict is measured on):

- plausibility: AER of every method's and control's maps against silver alignments of those pairs (eflomal trained
  on the corpus' train pairs, `alignment.silver_alignments`), and against human gold where a folder of it covers the
  pair (`--gold_alignments`: the teacher's maps of the gold sentences are computed here, with every method);
- faithfulness: deletion and insertion AOPC of each method's maps on the teacher (`faithfulness.py`), on the reference
  configs and on the `.teacher` configs (forced on the teacher's own translations) where they exist, for both
  removals (`<unk>`, masked out of attention);
- sanity: how much each method's maps change when the teacher's weights are randomised (`sanity.py`), decided at
  `sanity.DECISION_STAGE`.

Every AER reading is computed (`READINGS`: pieces merged by sum, max or union of piece links, links by argmax,
threshold or argmax with NULL, the `output` and the shifted `input` step reading); `PRIMARY_READING`, re-chosen on
2026-12-05 before the next demo run (its comment in `alignment.py` says why), is the one the table and the rank
agreement use.
Results go to `results/triangulation/<teacher>.<pair>.json` (figures) and `.npz` (per-sentence values, in the
evaluation set's order, for the report's bootstrap), and into the attributions card (`meta/yardsticks/`).
Each part is kept as it finishes (`results/triangulation/work/`), keyed by what it depends on (the arguments, the
maps' and the teacher's content, the yardsticks' constants): a re-run computes only what is missing or stale.

    agkd triangulate --attributions runs/demo/hub/datasets/agkd-attributions \\
        --corpus runs/demo/hub/datasets/agkd-parallel \\
        --teacher runs/demo/hub/models/teacher-marian-de-en --pair de-en --results_dir runs/demo/results
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from agkd.datasets_scripts.attribution.configs import EVALUATION_SET, config_name
from agkd.datasets_scripts.attribution.engines import attribute, engine_for
from agkd.datasets_scripts.attribution.methods import (
    CONTROLS,
    METHODS,
    shuffled_control,
    shuffled_map,
    shuffled_source,
)
from agkd.datasets_scripts.attribution.teacher import Teacher
from agkd.datasets_scripts.attribution_card import write_dataset_card
from agkd.datasets_scripts.release_layout import META_DIR, TRIANGULATION_DIR, config_exists, load_config, maps_version
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.datasets_scripts.teachers import teacher_digest
from agkd.training.metrics import load as load_metric
from agkd.training.triangulation import faithfulness, sanity
from agkd.training.triangulation.alignment import (
    LAYER_READINGS,
    PRIMARY_READING,
    READINGS,
    SILVER_TOKENISATION,
    cross_attention_per_layer,
    gold_text,
    piece_word_ids,
    read_gold,
    silver_alignments,
    silver_tokens,
)
from agkd.training.triangulation.faithfulness import aopc_key, evaluation_subset

logger = logging.getLogger(__name__)

PARTS = ("silver", "faithfulness", "sanity", "gold")


@dataclass
class TriangulateArguments:
    teacher: str = field(metadata={"help": "the teacher whose maps are measured (folder or Hub id)"})
    pair: str = field(metadata={"help": "language pair, e.g. de-en"})
    results_dir: str = field(metadata={"help": "where triangulation/<teacher>.<pair>.json and .npz go"})
    attributions: str | None = field(
        default=None, metadata={"help": "agkd-attributions (folder or repo): the maps of silver, faithfulness, sanity"}
    )
    corpus: str | None = field(
        default=None, metadata={"help": "agkd-parallel (folder or repo): the silver aligner's train pairs"}
    )
    teacher_name: str = field(default="marian", metadata={"help": "the teacher's name in the config names"})
    methods: list[str] | None = field(default=None, metadata={"help": "methods (default: every method with maps)"})
    split: str = field(default="test", metadata={"help": "the split measured (the verdict's evaluation split)"})
    parts: list[str] | None = field(
        default=None, metadata={"help": f"which yardsticks ({', '.join(PARTS)}; default: every one its inputs allow)"}
    )
    gold_alignments: str | None = field(
        default=None, metadata={"help": "folder of human gold alignments (`<l1>-<l2>.<name>.src-tgt` + `.gold`)"}
    )
    gold_max_tokens: int = field(default=128, metadata={"help": "gold sentences longer than this (pieces) are skipped"})
    silver_train_pairs: int | None = field(
        default=None, metadata={"help": "train pairs the silver aligner learns from (default: all)"}
    )
    faithfulness_pairs: int | None = field(
        default=None, metadata={"help": "AOPC on a seeded random sample of N evaluation pairs (default: all)"}
    )
    faithfulness_removals: list[str] | None = field(
        default=None, metadata={"help": "AOPC removals: unk (the piece becomes <unk>), mask (masked out of attention); "
                                "default: both"}
    )
    faithfulness_target_kinds: list[str] | None = field(
        default=None, metadata={"help": "AOPC on the maps of these target kinds: reference, teacher (the .teacher "
                                "configs, where they exist); default: both"}
    )
    sanity_pairs: int = field(
        default=20, metadata={"help": "randomisation check on a seeded random sample of N pairs (it re-extracts maps)"}
    )
    sanity_stages: list[str] | None = field(
        default=None, metadata={"help": "randomisation stages, in cascade order (default: all of them); the verdict "
                                "is taken at decoder+encoder, undetermined where it is not run"}
    )
    engine: str = field(default="fast", metadata={"help": "attribution engine of re-extracted maps (fast or inseq)"})
    ig_steps: int | None = field(default=None, metadata={"help": "integrated gradients' steps of re-extracted maps"})
    seed: int = field(default=0, metadata={"help": "seed of the aligner, random orders and randomised weights"})


# ================================================================================================ inputs
def load_maps(args: TriangulateArguments, names: list[str]) -> tuple[list[str], dict[str, list[dict]]]:
    """The evaluation split's rows of every config in `names`, in the evaluation set's order (the order of the
    verdict's per-sentence sums), and that order's ids. Configs whose ids differ are refused."""
    order = [str(i) for i in load_config(args.attributions, config_name(args.teacher_name, args.pair, EVALUATION_SET))[
        args.split]["id"]]
    position = {i: k for k, i in enumerate(order)}
    maps = {}
    for name in names:
        rows = list(load_config(args.attributions, config_name(args.teacher_name, args.pair, name))[args.split])
        if sorted(r["id"] for r in rows) != sorted(order):
            raise ValueError(f"{name}: its {args.split} pairs are not the evaluation set's ({EVALUATION_SET})")
        maps[name] = sorted(rows, key=lambda r: position[r["id"]])
    return order, maps


def available_configs(attributions: str, teacher_name: str, pair: str, methods: list[str] | None) -> list[str]:
    """Methods (and then controls) of the teacher and pair that have maps: the named methods, every control, and
    the shuffled twin of each method."""
    wanted = methods or list(METHODS)
    names = [*wanted, *CONTROLS, *map(shuffled_control, wanted)]
    return [n for n in names if config_exists(attributions, config_name(teacher_name, pair, n))]


def words_of(rows: list[dict], special_tokens: set[str], words=None) -> tuple[list, list, np.ndarray]:
    """Per row the piece->word ids of source and target, by character spans (`alignment.piece_word_ids`), and which
    rows have both (every row since 2026-12-05: spans place every piece). `words(text)` gives a side's words: the
    silver aligner's tokens (`alignment.silver_tokens`, punctuation split off) unless told otherwise."""
    words = words or silver_tokens
    source_ids, target_ids = [], []
    for r in rows:
        source_ids.append(piece_word_ids(r["source_tokens"], words(r["source"]), special_tokens))
        target_ids.append(piece_word_ids(r["target_tokens"], words(r["target"]), special_tokens))
    ok = np.array([s is not None and t is not None for s, t in zip(source_ids, target_ids, strict=True)])
    return source_ids, target_ids, ok


# ================================================================================================ parts
class Work:
    """The parts finished so far (`results/triangulation/work/<teacher>.<pair>.<part>.json`): a re-run skips those
    whose fingerprint matches: `fingerprint` (what every part depends on) plus `parts[part]` (what that part alone
    depends on, e.g. its module's constants)."""

    def __init__(self, results_dir: Path, key: str, fingerprint: dict, parts: dict[str, dict] | None = None):
        self.dir = results_dir / TRIANGULATION_DIR / "work"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.fingerprint = _digest(fingerprint)
        self.fingerprints = {part: _digest({**fingerprint, "part": extra}) for part, extra in (parts or {}).items()}

    def fingerprint_of(self, part: str) -> str:
        return self.fingerprints.get(part, self.fingerprint)

    def path(self, part: str) -> Path:
        return self.dir / f"{self.key}.{part}.json"

    def get(self, part: str) -> dict | None:
        path = self.path(part)
        if not path.exists():
            return None
        done = json.loads(path.read_text())
        return done if done.get("fingerprint") == self.fingerprint_of(part) else None

    def put(self, part: str, result: dict) -> dict:
        result = {**result, "fingerprint": self.fingerprint_of(part)}
        tmp = self.path(part).with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(self.path(part))
        return result


def _digest(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


CONTENT_ARGUMENTS = ("attributions", "teacher", "corpus")  # folders the fingerprint reads by content, not by path


def run_fingerprint(args: TriangulateArguments, names: list[str], configs: list[str]) -> dict:
    """What every part of this run depends on: the arguments but the parts and where results go, with the folders
    standing in by their content (`content_fingerprint`), so that a release copied or moved elsewhere keeps its
    finished parts."""
    arguments = {k: v for k, v in asdict(args).items() if k not in ("parts", "results_dir", *CONTENT_ARGUMENTS)}
    return {**arguments, "names": names, **content_fingerprint(args, configs)}


def content_fingerprint(args: TriangulateArguments, configs: list[str]) -> dict:
    """What the parts read besides the arguments (review M8): each config's maps version (a digest of its
    `meta/<config>.json` extraction fingerprints, which name the teacher's sha256, the engine and the settings), the
    teacher's own weights (sha256 of its folder's config and weights; a Hub id stands for itself) and the corpus'
    data files (sha256; a Hub id stands for itself)."""
    versions = {name: maps_version(args.attributions, name) for name in configs} if args.attributions else {}
    return {"maps_versions": versions, "teacher_sha256": teacher_digest(str(args.teacher)),
            "corpus_sha256": corpus_digest(args.corpus)}


def corpus_digest(corpus: str | None) -> str | None:
    """sha256 of a local corpus folder's data files (names and bytes); a Hub id or None stands for itself."""
    if corpus is None or not Path(corpus).is_dir():
        return corpus
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(corpus).rglob("*") if p.is_file() and p.suffix in (".parquet", ".json")):
        digest.update(str(path.relative_to(corpus)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def part_constants() -> dict[str, dict]:
    """Per part, the module constants its figures depend on (review M8): a changed rule re-measures the part."""
    aer = {"readings": READINGS, "primary_reading": PRIMARY_READING}
    return {
        "silver": aer,
        "gold": aer,
        "faithfulness": {"fractions": faithfulness.FRACTIONS, "removals": faithfulness.REMOVALS,
                         "primary_removal": faithfulness.PRIMARY_REMOVAL, "replacement": faithfulness.REPLACEMENT,
                         "version": faithfulness.VERSION},
        "sanity": {"stages": sanity.RANDOMISATION_STAGES, "decision_stage": sanity.DECISION_STAGE,
                   "threshold": sanity.SANITY_THRESHOLD, "max_degenerate_share": sanity.MAX_DEGENERATE_SHARE,
                   "version": sanity.VERSION},
    }


def aer_part(maps: dict[str, list[dict]], links: list[str], source_ids, target_ids, keep: np.ndarray,
             source_lengths: list[int] | None = None, target_lengths: list[int] | None = None,
             readings: list[dict] = READINGS, desc: str = "AER") -> dict:
    """AER of every config under every reading against `links` (one per row, in the project's convention), over the
    rows in `keep`; per-sentence counts of the primary reading. `*_lengths`: each row's number of words (a word
    without pieces still counts); the metric refuses links past them."""
    metric = load_metric("attribution_aer")
    index = np.flatnonzero(keep)

    def picked(values):
        return None if values is None else [values[i] for i in index]

    out = {}
    for name, rows in tqdm(maps.items(), desc=desc, leave=False):
        out_readings = []
        for reading in readings:
            result = metric.compute(
                predictions=[rows[i]["attribution"] for i in index],
                references=[links[i] for i in index],
                source_word_ids=picked(source_ids),
                target_word_ids=picked(target_ids),
                source_lengths=picked(source_lengths),
                target_lengths=picked(target_lengths),
                **reading,
            )
            out_readings.append({**reading, **{k: result[k] for k in ("aer", "precision", "recall")}})
            if reading == PRIMARY_READING:  # every row, zeros where words did not match: sums are unchanged
                counts = np.zeros((len(rows), 4))
                counts[index] = result["sentence_counts"]
                out.setdefault("sentence_counts", {})[name] = counts.tolist()
        out.setdefault("readings", {})[name] = out_readings
    out["sentences"] = len(index)
    return out


def silver_part(args: TriangulateArguments, maps: dict[str, list[dict]], source_ids, target_ids, ok) -> dict:
    """AER against eflomal's links of the evaluation pairs, on `alignment.silver_tokens` words (punctuation split off,
    review M7): `source_ids`/`target_ids` are `words_of`'s, placed on those tokens by character spans."""
    start = time.monotonic()
    train = load_config(args.corpus, args.pair)["train"]
    if args.silver_train_pairs is not None:
        train = train.select(range(min(args.silver_train_pairs, len(train))))
    rows = next(iter(maps.values()))
    links = silver_alignments(
        list(zip(train["source"], train["target"], strict=True)), [(r["source"], r["target"]) for r in rows],
        cache_dir=Path(args.results_dir) / TRIANGULATION_DIR / "work" / "silver", seed=args.seed,
    )
    aligned = time.monotonic() - start
    result = aer_part(maps, links, source_ids, target_ids, ok, [len(silver_tokens(r["source"])) for r in rows],
                      [len(silver_tokens(r["target"])) for r in rows], desc="silver AER")
    return {**result, "train_pairs": len(train), "aligner_seconds": aligned, "seconds": time.monotonic() - start,
            "skipped_words": int((~ok).sum()), "tokenisation": SILVER_TOKENISATION}


def teacher_kind_configs(args: TriangulateArguments, names: list[str]) -> dict[str, str]:
    """{name: its `.teacher` config} for the configs of `names` whose teacher-kind maps exist (forced on the teacher's
    own greedy translation, so y_t is its prediction; review M3)."""
    if not args.attributions:
        return {}
    configs = {n: config_name(args.teacher_name, args.pair, n, "teacher") for n in names}
    return {n: c for n, c in configs.items() if config_exists(args.attributions, c)}


def load_teacher_kind_maps(args: TriangulateArguments, names: list[str], order: list[str]) -> dict[str, list[dict]]:
    """The `args.split` rows of each existing `.teacher` config of `names`, in the evaluation order `order` (ids): the
    teacher's translations of the evaluation pairs that were short enough to keep. Configs whose ids differ from each
    other, or that are not evaluation pairs, are refused."""
    position = {i: k for k, i in enumerate(order)}
    maps, ids = {}, None
    for name, config in teacher_kind_configs(args, names).items():
        rows = [r for r in load_config(args.attributions, config)[args.split]]
        if any(r["id"] not in position for r in rows):
            raise ValueError(f"{config}: {args.split} pairs that are not the evaluation set's")
        maps[name] = sorted(rows, key=lambda r: position[r["id"]])
        if ids is not None and [r["id"] for r in maps[name]] != ids:
            raise ValueError(f"{config}: other {args.split} pairs than the other .teacher configs")
        ids = [r["id"] for r in maps[name]]
    return maps


def faithfulness_part(args, teacher, maps: dict[str, list[dict]],
                      teacher_maps: dict[str, list[dict]] | None = None) -> dict:
    """AOPC of every config's maps per target kind and removal (`readings[kind][removal][name]`): the reference
    configs (`maps`) and, where they exist, the `.teacher` configs (`teacher_maps`, loaded when None; review M3), each
    with every removal of `faithfulness.REMOVALS` (review M4), on a seeded random sample of `faithfulness_pairs`
    evaluation pairs (review L2; `positions[kind]`: their positions in the evaluation order). The random orders'
    curves are the same for every config of a kind and removal (computed once). `configs` is the primary reading
    (reference targets, `PRIMARY_REMOVAL`), the one the table's first columns and the rank agreement read."""
    kinds = args.faithfulness_target_kinds or ["reference", "teacher"]
    removals = args.faithfulness_removals or list(faithfulness.REMOVALS)
    unknown = set(removals) - set(faithfulness.REMOVALS) or set(kinds) - {"reference", "teacher"}
    if unknown or "reference" not in kinds or faithfulness.PRIMARY_REMOVAL not in removals:
        raise ValueError(f"--faithfulness_target_kinds {kinds} / --faithfulness_removals {removals}: kinds of "
                         f"reference, teacher and removals of {', '.join(faithfulness.REMOVALS)}, the reference kind "
                         f"and the {faithfulness.PRIMARY_REMOVAL!r} removal included")
    start = time.monotonic()
    order = [r["id"] for r in next(iter(maps.values()))]
    positions = {"reference": faithfulness.evaluation_subset(len(order), args.faithfulness_pairs, args.seed)}
    chosen = {"reference": {name: [rows[i] for i in positions["reference"]] for name, rows in maps.items()}}
    if "teacher" in kinds:
        teacher_maps = load_teacher_kind_maps(args, list(maps), order) if teacher_maps is None else teacher_maps
        if teacher_maps:
            sampled = {order[i] for i in positions["reference"]}  # the same source sentences as the reference curves
            chosen["teacher"] = {name: [r for r in rows if r["id"] in sampled] for name, rows in teacher_maps.items()}
            index = {i: k for k, i in enumerate(order)}
            positions["teacher"] = [index[r["id"]] for r in next(iter(chosen["teacher"].values()))]
        else:
            logger.warning("no .teacher configs of %s: AOPC on the reference targets only", ", ".join(maps))
    out = {"fractions": list(faithfulness.FRACTIONS), "removals": removals,
           "primary_removal": faithfulness.PRIMARY_REMOVAL, "replacement": faithfulness.REPLACEMENT,
           "target_kinds": list(chosen), "positions": positions, "readings": {}}
    jobs = [(kind, removal, name) for kind in chosen for removal in removals for name in chosen[kind]]
    random_curves = {}
    for kind, removal, name in tqdm(jobs, desc="faithfulness"):
        rows = chosen[kind][name]
        curves = faithfulness.deletion_insertion_curves(
            teacher, rows, [r["attribution"] for r in rows], seed=args.seed,
            random_curves=random_curves.get((kind, removal)), removal=removal,
        )
        random_curves.setdefault((kind, removal), curves)
        out["readings"].setdefault(kind, {}).setdefault(removal, {})[name] = faithfulness.aopc(curves)
    out["configs"] = out["readings"]["reference"][faithfulness.PRIMARY_REMOVAL]
    out["pairs"] = len(positions["reference"])
    out["teacher_pairs"] = len(positions.get("teacher", []))
    return {**out, "seconds": time.monotonic() - start}


def sanity_part(args, teacher, maps: dict[str, list[dict]], methods: list[str]) -> dict:
    """The randomisation check of every method on a seeded random sample of `sanity_pairs` evaluation pairs (review
    L2; `positions`): per stage the per-sentence similarity (`methods`) and the share of degenerate rows
    (`degenerate_share`, review M5), and each method's verdict at `sanity.DECISION_STAGE` (`verdicts`: passes, fails or
    undetermined; review M6)."""
    stages = list(args.sanity_stages or sanity.RANDOMISATION_STAGES)
    if stages != [s for s in sanity.RANDOMISATION_STAGES if s in stages] or len(set(stages)) != len(stages):
        raise ValueError(f"--sanity_stages {stages}: stages of {sanity.RANDOMISATION_STAGES}, in that order")
    if sanity.DECISION_STAGE not in stages:
        logger.warning("--sanity_stages %s without %s: every sanity verdict is undetermined", stages,
                       sanity.DECISION_STAGE)
    start = time.monotonic()
    positions = evaluation_subset(len(next(iter(maps.values()))), args.sanity_pairs, args.seed)
    out = {"stages": stages, "decision_stage": sanity.DECISION_STAGE, "threshold": sanity.SANITY_THRESHOLD,
           "max_degenerate_share": sanity.MAX_DEGENERATE_SHARE, "positions": positions, "methods": {},
           "degenerate_share": {}, "verdicts": {}}
    for method in tqdm(methods, desc="sanity"):
        result = sanity.randomisation_similarity(
            teacher, method, [maps[method][i] for i in positions], stages, engine=args.engine,
            ig_steps=args.ig_steps, seed=args.seed,
        )
        out["methods"][method] = {stage: np.asarray(v, dtype=float).tolist() for stage, v in result.similarity.items()}
        out["degenerate_share"][method] = {stage: result.degenerate_share(stage) for stage in stages}
        out["verdicts"][method] = sanity.sanity_verdict(result)
    return {**out, "pairs": len(positions), "seconds": time.monotonic() - start}


def gold_part(args, teacher, names: list[str]) -> dict | None:
    """The teacher's maps of the gold sentences for every method and control (shuffled twins from those maps), and
    their AER against the gold links; and the teacher's cross-attention read layer by layer (`attention_layers`,
    review M2). Pieces are placed on the gold file's whitespace words by character spans: every sentence no longer
    than `gold_max_tokens` is scored (review L6)."""
    start = time.monotonic()
    gold = read_gold(args.gold_alignments, args.pair)
    rows, links, skipped = [], [], 0
    for k, (source, target, link) in enumerate(zip(gold.sources, gold.targets, gold.links, strict=True)):
        source_ids, target_ids = teacher.encode(source, target)
        if max(len(source_ids), len(target_ids)) > args.gold_max_tokens:
            skipped += 1
            continue
        rows.append({"id": f"{gold.name}.{k:05d}", "source": source, "target": target, "target_kind": "reference",
                     "source_ids": source_ids, "target_ids": target_ids})
        links.append(link)
    maps = {}
    for name in tqdm([n for n in names if shuffled_source(n) is None], desc=f"gold maps ({gold.name})", leave=False):
        logger.info("gold %s: %s maps of %d sentences", gold.name, name, len(rows))
        engine = engine_for(args.engine, teacher, name)  # the fast engine where it reproduces Inseq (review M9)
        maps[name] = attribute(engine, teacher, name, rows, seed=args.seed, ig_steps=args.ig_steps)
    for name in names:
        base = shuffled_source(name)
        if base is not None and base in maps:
            maps[name] = [{**r, "attribution": shuffled_map(np.asarray(r["attribution"]), r["id"], base).tolist()}
                          for r in maps[base]]
    special = set(teacher.tokenizer.all_special_tokens)
    ordered = next(iter(maps.values()))
    source_word_ids, target_word_ids, ok = words_of(ordered, special, words=str.split)
    lengths = [len(r["source"].split()) for r in ordered], [len(r["target"].split()) for r in ordered]
    result = aer_part(maps, links, source_word_ids, target_word_ids, ok, *lengths, desc="gold AER")
    layers = cross_attention_per_layer(teacher, ordered)
    layer_maps = {f"layer{k}": [{**r, "attribution": m} for r, m in zip(ordered, layer, strict=True)]
                  for k, layer in enumerate(layers)}
    per_layer = aer_part(layer_maps, links, source_word_ids, target_word_ids, ok, *lengths, readings=LAYER_READINGS,
                         desc="gold AER per attention layer")
    return {**result, "name": gold.name, "sentences_in_file": len(gold.links), "skipped_too_long": skipped,
            "skipped_words": int((~ok).sum()), "seconds": time.monotonic() - start,
            "attention_layers": {"layers": len(layers), "readings": per_layer["readings"]}}


# ================================================================================================ the stage
def triangulate(args: TriangulateArguments) -> Path:
    parts = args.parts or [p for p in PARTS if p != "gold" or args.gold_alignments]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    if "gold" in parts and not args.gold_alignments:
        raise ValueError("part gold needs --gold_alignments")
    if args.gold_alignments and "gold" in parts:
        if gold_text(args.gold_alignments, args.pair) is None:
            logger.warning("%s has no gold alignments of %s: gold skipped", args.gold_alignments, args.pair)
            parts = [p for p in parts if p != "gold"]
    map_parts = [p for p in parts if p != "gold"]
    if map_parts and not args.attributions:
        raise ValueError(f"parts {', '.join(map_parts)} read the maps: give --attributions")
    if "silver" in parts and not args.corpus:
        raise ValueError("part silver trains the aligner on the corpus: give --corpus")
    key = f"{args.teacher_name}.{args.pair}"
    out_dir = Path(args.results_dir) / TRIANGULATION_DIR
    names = available_configs(args.attributions, args.teacher_name, args.pair, args.methods) if map_parts else (
        [*(args.methods or METHODS), *CONTROLS, *map(shuffled_control, args.methods or METHODS)])
    methods = [n for n in names if n in METHODS]
    used = [config_name(args.teacher_name, args.pair, n) for n in names] if map_parts else []
    if "faithfulness" in parts and "teacher" in (args.faithfulness_target_kinds or ["teacher"]):
        used += list(teacher_kind_configs(args, [n for n in names if shuffled_source(n) is None]).values())
    work = Work(Path(args.results_dir), key, run_fingerprint(args, names, used), part_constants())
    teacher = Teacher(args.teacher, args.pair, torch.device("cpu"), compat=True, name=args.teacher_name)
    summary = {"teacher": args.teacher, "teacher_name": args.teacher_name, "pair": args.pair, "split": args.split,
               "primary_reading": PRIMARY_READING, "names": names, "methods": methods}
    ids, maps = load_maps(args, names) if map_parts else ([], {})
    if maps:
        source_ids, target_ids, ok = words_of(next(iter(maps.values())), set(teacher.tokenizer.all_special_tokens))
    for part in parts:
        done = work.get(part)
        if done is None:
            logger.info("%s: %s", key, part)
            if part == "silver":
                done = silver_part(args, maps, source_ids, target_ids, ok)
            elif part == "faithfulness":
                done = faithfulness_part(args, teacher, {n: maps[n] for n in names if shuffled_source(n) is None})
            elif part == "sanity":
                done = sanity_part(args, teacher, maps, methods)
            else:
                done = gold_part(args, teacher, names)
            done = work.put(part, done)
            logger.info("%s: %s done in %.0f s", key, part, done.get("seconds", 0))
        summary[part] = done
    return write_outputs(args, out_dir, key, ids, summary)


def write_outputs(args: TriangulateArguments, out_dir: Path, key: str, ids: list[str], summary: dict) -> Path:
    """The figures (JSON), the per-sentence values (npz) and the attributions card's yardstick file."""
    arrays = {"ids": np.asarray(ids)}

    def padded(values, positions) -> np.ndarray:
        """Per-sentence values of the pairs at `positions`, NaN for the rest: every array is in the evaluation order."""
        out = np.full(len(ids), np.nan)
        out[np.asarray(positions, dtype=int)] = values
        return out

    for part in ("silver", "gold"):
        for name, counts in summary.get(part, {}).get("sentence_counts", {}).items():
            arrays[f"{part}.{name}"] = np.asarray(counts, dtype=np.float64)
    faithfulness = summary.get("faithfulness", {})
    for kind, by_removal in faithfulness.get("readings", {}).items():
        for removal, configs in by_removal.items():
            for name, values in configs.items():
                for curve in ("deletion", "insertion"):
                    arrays[f"{aopc_key(curve, kind, removal)}.{name}"] = padded(
                        values[f"{curve}_per_sentence"], faithfulness["positions"][kind])
    for method, stages in summary.get("sanity", {}).get("methods", {}).items():
        for stage, values in stages.items():
            arrays[f"sanity.{stage}.{method}"] = padded(values, summary["sanity"]["positions"])
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / f"{key}.npz", **arrays)
    figures = table_figures(summary)
    path = out_dir / f"{key}.json"
    path.write_text(json.dumps({**without_sentences(summary), "table": figures}, indent=1))
    if args.attributions and Path(args.attributions).is_dir():
        write_card_figures(Path(args.attributions), key, figures)
    logger.info("wrote %s and %s", path, out_dir / f"{key}.npz")
    return path


def without_sentences(summary: dict) -> dict:
    """The summary without per-sentence lists (those live in the npz)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "sentence_counts" and not k.endswith("_per_sentence")}
        return value

    out = strip(summary)
    if "sanity" in out:
        out["sanity"]["methods"] = {m: {s: _mean(v) for s, v in st.items()}
                                    for m, st in summary["sanity"]["methods"].items()}
    return out


def _mean(values) -> float:
    """Mean over the finite values (NaN when there is none; no warning)."""
    values = np.asarray(values, dtype=float)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else float("nan")


def primary_aer(part: dict, name: str) -> float | None:
    for reading in part.get("readings", {}).get(name, []):
        if all(reading[k] == v for k, v in PRIMARY_READING.items()):
            return reading["aer"]
    return None


def table_figures(summary: dict) -> dict[str, dict]:
    """Per config: silver and gold AER (primary reading), AOPC deletion and insertion of every target kind and removal
    measured (`aopc_key`), sanity (mean Spearman at the decision stage and under full randomisation, the share of
    degenerate rows at the decision stage, and the verdict: passes, fails or undetermined)."""
    figures = {}
    for name in summary["names"]:
        row = {}
        for part in ("silver", "gold"):
            if part in summary:
                row[f"{part}_aer"] = primary_aer(summary[part], name)
        for kind, by_removal in summary.get("faithfulness", {}).get("readings", {}).items():
            for removal, configs in by_removal.items():
                if name in configs:
                    for curve in ("deletion", "insertion"):
                        row[aopc_key(curve, kind, removal)] = configs[name][curve]
        sanity = summary.get("sanity", {})
        stages = sanity.get("methods", {}).get(name)
        if stages:
            decision = sanity["decision_stage"]
            row["sanity_spearman_decision"] = _mean(stages[decision]) if decision in stages else None
            row["sanity_spearman_full"] = _mean(stages["full"]) if "full" in stages else None
            row["sanity_degenerate_share"] = sanity["degenerate_share"][name].get(decision)
            row["sanity_verdict"] = sanity["verdicts"][name]
        figures[name] = row
    return figures


def write_card_figures(attributions: Path, key: str, figures: dict) -> None:
    """The yardsticks of each config beside its maps: `meta/yardsticks/<teacher>.<pair>.json`, and the card again."""
    folder = attributions / META_DIR / "yardsticks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}.json").write_text(json.dumps(figures, indent=1))
    write_dataset_card(attributions)


main = stage_main(TriangulateArguments, triangulate, prog="agkd triangulate", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
