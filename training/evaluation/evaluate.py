"""Evaluate students under each test-time map protocol and append the results to `results/results.jsonl`.

Protocols (every result names its protocol):

- `none`: the no-map baseline student, which every other row is compared with;
- `gold`: maps of the teacher force-decoded on the reference (the paper's protocol; leaks the reference);
- `teacher`: maps of the teacher attributing its own translation (config `<teacher>.<pair>.<method>.teacher`);
- `train-only`: no map at test time (maps were used in training only); the only protocol of a `supervise` student;
- `attributor`: the Attributor `attributor-<teacher>-<pair>-<method>` predicts each row from the student's prefix.

    agkd evaluate --models_dir runs/demo/hub/models --attributions runs/demo/hub/datasets/agkd-attributions \\
        --corpus runs/demo/hub/datasets/agkd-parallel --results_dir runs/demo/results

Scores are sacrebleu corpus BLEU and chrF of the detokenised output against the raw reference strings of the
corpus, with their signatures, and the teacher-forced simulation metrics of `training/evaluation/scoring.py` (token NLL
and top-1 agreement with the reference and with the teacher's own translation), computed with exactly the row's map
injection: under `gold` and `teacher` the protocol's map is injected row by row whatever target is forced, as in
generation; under `attributor` the Attributor predicts the rows from the forced prefix. The primary metric
(`scoring.PRIMARY_METRIC`, named in every row) carries the report's verdict. Every student is compared with the
baseline of the same teacher, pair, target kind, seed and design by paired bootstrap resampling over sentences
(delta, 95% interval, p-value, for every metric). The evaluation set of a split is the
pairs of the `uniform` control config, which every method shares; a pair whose map a protocol lacks gets no map.
Students that take no map at test time (the baseline, `train-only`) are also scored teacher-forced on the whole test
split (`whole_split` in the row, `.all` sums): the verdict reads those, since it needs no map.
Rows are appended, never rewritten: a (student, split, protocol) already in the file is skipped, so a killed
evaluation continues where it stopped. Each row records its `inputs` (the student's run id, the version of the
test-time maps or the Attributor's run id, the baseline's run id); when one of them changes (a retrained student,
re-extracted maps) the row is evaluated again and the new row supersedes the old one (`read_results` keeps the
latest). Hypotheses are kept under `results/hypotheses/` and per-sentence forced-decoding sums under
`results/token_statistics/` (the baseline's are paired with every later row).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agkd.datasets_scripts import release_layout as layout
from agkd.datasets_scripts.attribution.configs import BASELINE, evaluation_config
from agkd.datasets_scripts.release_layout import (
    BASELINE_PROTOCOL,
    MAP_FREE_PROTOCOL,
    PROTOCOLS,
    RESULTS_FILE,
    STORED_MAP_PROTOCOLS,
    attributor_name,
    maps_version,
    protocol_map_config,
    public_ref,
    read_meta,
    read_results,
    token_statistics_path,
)
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.modeling.attribution_injection import MAP_FREE_OPERATORS
from agkd.training import data
from agkd.training.evaluation import scoring
from agkd.training.evaluation.cards import write_student_card
from agkd.training.evaluation.scoring import (
    FORCED_TARGETS,
    METRICS,
    PRIMARY_METRIC,
    TokenStatistics,
    paired_bootstrap_tokens,
    teacher_forced_statistics,
)

logger = logging.getLogger(__name__)

# Protocols whose students take no map at test time: besides the map-annotated pairs, they are scored teacher-forced
# on the whole test split (`load_whole_split`), which the verdict reads: power at the cost of a forward pass.
MAP_FREE_SCORING = (BASELINE_PROTOCOL, MAP_FREE_PROTOCOL)


@dataclass
class EvaluateArguments:
    models_dir: str = field(metadata={"help": "folder holding student-* (and attributor-*) model folders"})
    attributions: str = field(metadata={"help": "agkd-attributions folder or Hub id (test-split maps and pairs)"})
    corpus: str = field(metadata={"help": "agkd-parallel folder or Hub id (the raw reference strings)"})
    results_dir: str = field(metadata={"help": "where results.jsonl and hypotheses/ go"})
    students: list[str] | None = field(default=None, metadata={"help": "student folder names (default: all student-*)"})
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS), metadata={"help": "protocols to run"})
    splits: list[str] = field(default_factory=lambda: ["test"], metadata={"help": "splits to evaluate on"})
    num_beams: int | None = field(
        default=None, metadata={"help": "beam size (default: each student's generation_config)"}
    )
    batch_size: int = field(default=32, metadata={"help": "sentences per generate call"})
    max_examples: int | None = field(default=None, metadata={"help": "evaluate only the first N pairs of a split"})
    bootstrap_samples: int = field(default=1000, metadata={"help": "paired bootstrap resamples"})
    seed: int = field(default=12345, metadata={"help": "seed of the bootstrap resampling"})


# ================================================================================================ data
@dataclass
class EvaluationSet:
    """The pairs of one split that every student of a (teacher, pair) is evaluated on, in a fixed order, with the
    targets of the teacher-forced metrics: the reference's token ids and the teacher's own translation's (None when
    the teacher-target controls were not extracted for the split)."""

    ids: list[str]
    source_ids: list[list[int]]
    references: list[str]
    forced_targets: dict[str, list[list[int]] | None]


def load_evaluation_set(args: EvaluateArguments, teacher_name: str, pair: str, split: str) -> EvaluationSet:
    config = evaluation_config(teacher_name, pair)
    rows = layout.load_config(args.attributions, config)
    if split not in rows:
        raise ValueError(f"{args.attributions}: {config} has no split {split!r}")
    rows = rows[split]
    if args.max_examples:
        rows = rows.select(range(min(args.max_examples, len(rows))))
    corpus = layout.load_config(args.corpus, pair)[split]
    reference_by_id = dict(zip(corpus["id"], corpus["target"], strict=True))
    missing = [i for i in rows["id"] if i not in reference_by_id]
    if missing:
        raise ValueError(
            f"{len(missing)} pairs of the maps are not in {args.corpus}/{pair}/{split} (e.g. {missing[0]!r})"
        )
    ids = list(rows["id"])
    return EvaluationSet(
        ids,
        list(rows["source_ids"]),
        [reference_by_id[i] for i in ids],
        {
            "reference": list(rows["target_ids"]),
            "teacher": teacher_translation_ids(args, teacher_name, pair, split, ids),
        },
    )


def load_whole_split(args: EvaluateArguments, teacher_name: str, pair: str, split: str, tokenizer) -> EvaluationSet:
    """Every pair of the corpus split that fits the maps' token limit (`max_tokens` of the evaluation config's meta),
    in corpus order, with the reference as the only forced target: what a student that needs no map at test time
    is scored on for the verdict (the map-annotated pairs are its first ones)."""
    meta = read_meta(args.attributions, evaluation_config(teacher_name, pair)) or {}
    limit = meta.get("max_tokens")
    corpus = layout.load_config(args.corpus, pair)[split]
    ids, sources, references, targets = [], [], [], []
    for row in corpus:
        encoded = tokenizer(row["source"], text_target=row["target"])
        source_ids, target_ids = list(encoded["input_ids"]), list(encoded["labels"])
        if limit is not None and (len(source_ids) > limit or len(target_ids) > limit):
            continue
        ids.append(str(row["id"]))
        sources.append(source_ids)
        references.append(row["target"])
        targets.append(target_ids)
    return EvaluationSet(ids, sources, references, {"reference": targets, "teacher": None})


def teacher_translation_ids(args: EvaluateArguments, teacher_name: str, pair: str, split: str, ids: list[str]):
    """Token ids of the teacher's own translation of each pair (from the teacher-target control config), or None
    when some pair lacks one: the simulatability metrics are then not computed for the split."""
    config = evaluation_config(teacher_name, pair, "teacher")
    if config not in layout.config_names(args.attributions):
        logger.warning("%s: no %s config, so no agreement with the teacher's translations", args.attributions, config)
        return None
    rows = layout.load_config(args.attributions, config)
    if split not in rows:
        logger.warning(
            "%s: %s has no split %s, so no agreement with the teacher's translations", args.attributions, config, split
        )
        return None
    by_id = dict(zip(rows[split]["id"], rows[split]["target_ids"], strict=True))
    if any(i not in by_id for i in ids):
        logger.warning("%s/%s lacks some %s pairs: no agreement with the teacher's translations", config, split, split)
        return None
    return [by_id[i] for i in ids]


def maps_for(args: EvaluateArguments, config: str, split: str, ids: list[str]) -> tuple[list, int]:
    """Maps of `config` in the order of `ids` (None where the config lacks a pair) and the count of missing ones."""
    rows = layout.load_config(args.attributions, config)
    if split not in rows:
        raise ValueError(f"{args.attributions}: {config} has no split {split!r}")
    by_id = {
        row_id: np.asarray(attribution, dtype=np.float32)
        for row_id, attribution in zip(rows[split]["id"], rows[split]["attribution"], strict=True)
    }
    maps = [by_id.get(i) for i in ids]
    return maps, sum(m is None for m in maps)


# ================================================================================================ generation
def translate(accelerator, model, tokenizer, evaluation: EvaluationSet, maps: list | None, args, attributor=None):
    """Hypotheses for the evaluation set, with per-pair maps (None: that pair gets no map) or an attributor."""
    import torch
    from torch.utils.data import DataLoader

    collate = data.MapCollator(tokenizer.pad_token_id, with_maps=maps is not None)
    examples = evaluation_examples(evaluation, maps)
    dataloader = accelerator.prepare(DataLoader(examples, batch_size=args.batch_size, collate_fn=collate))
    generation_kwargs = {"num_beams": args.num_beams} if args.num_beams else {}
    if attributor is not None:
        generation_kwargs["attributor"] = attributor
    with torch.no_grad():
        return scoring.evaluate_translation(
            accelerator, model, tokenizer, dataloader, evaluation.references, generation_kwargs, desc="translate"
        )


def evaluation_examples(evaluation: EvaluationSet, maps: list | None, target: str | None = None) -> list[dict]:
    """Collator examples of the evaluation set: source ids, the row's test-time map (a pair without one gets an
    empty map, i.e. no injection) and, for a forced decode, the labels of `target` (reference or teacher)."""
    examples = []
    for index, source_ids in enumerate(evaluation.source_ids):
        example = {"index": index, "input_ids": source_ids}
        if maps is not None:
            example["attribution"] = (
                maps[index] if maps[index] is not None else np.zeros((0, len(source_ids)), np.float32)
            )
        if target is not None:
            example["labels"] = evaluation.forced_targets[target][index]
        examples.append(example)
    return examples


def simulate(model, tokenizer, evaluation: EvaluationSet, maps: list | None, args, attributor=None) -> dict:
    """Teacher-forced statistics of the student on every available target, with the same maps (or Attributor) as
    the row's generation: `{target: TokenStatistics}`."""
    from torch.utils.data import DataLoader

    collate = data.MapCollator(tokenizer.pad_token_id, with_maps=maps is not None)
    statistics = {}
    for target in FORCED_TARGETS:
        if evaluation.forced_targets[target] is None:
            continue
        examples = evaluation_examples(evaluation, maps, target)
        dataloader = DataLoader(examples, batch_size=args.batch_size, collate_fn=collate)
        statistics[target] = teacher_forced_statistics(model, dataloader, len(examples), attributor)
    return statistics


def simulation_fields(statistics: dict) -> dict:
    """The row's simulation metrics (`nll_reference`, `agreement_teacher`, ...) and token counts per target."""
    fields = {"primary_metric": PRIMARY_METRIC}
    for name, metric in METRICS.items():
        fields[name] = statistics[metric.target].corpus()[metric.statistic] if metric.target in statistics else None
    fields["forced_tokens"] = {target: int(stats.tokens.sum()) for target, stats in statistics.items()}
    return fields


# ================================================================================================ results


def append_result(path: Path, row: dict) -> None:
    """Append one row, under an exclusive lock: evaluations of several students may run at once (the pipeline runs
    one per student) and each row must land whole."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agkd")
    except PackageNotFoundError:
        return "unknown"


def evaluate(args: EvaluateArguments) -> list[dict]:
    import torch
    from accelerate import Accelerator
    from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

    from agkd import modeling  # noqa: F401  (registers the AGKD classes with the Auto classes)

    unknown = [p for p in args.protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; choose from {PROTOCOLS}")
    models_dir = Path(args.models_dir)
    folders = [models_dir / n for n in args.students] if args.students else sorted(models_dir.glob("student-*"))
    runs = {}
    for folder in folders:
        if not (folder / "agkd_run.json").exists():
            raise FileNotFoundError(f"{folder} is not a finished student (no agkd_run.json)")
        runs[folder.name] = json.loads((folder / "agkd_run.json").read_text())
    results_path = Path(args.results_dir) / RESULTS_FILE
    latest = {(r["student"], r["split"], r["protocol"]): r for r in read_results(results_path)}
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    # Baselines first: every other row is compared with its baseline's hypotheses.
    order = sorted(runs, key=lambda name: runs[name]["method"] != BASELINE)
    evaluation_sets: dict[tuple, EvaluationSet] = {}
    written = []
    for name in order:
        run = runs[name]
        protocols = protocols_of(run, args.protocols)
        todo = []
        for split in args.splits:
            for protocol in protocols:
                inputs = row_inputs(args, models_dir, run, protocol)
                previous = latest.get((name, split, protocol))
                if not is_current(previous, inputs):
                    if previous is not None:
                        logger.info("%s %s %s: re-evaluated (its model or maps changed)", name, split, protocol)
                    todo.append((split, protocol, inputs))
        if not todo:
            continue
        model = AutoModelForSeq2SeqLM.from_pretrained(models_dir / name).eval()
        tokenizer = AutoTokenizer.from_pretrained(models_dir / name)
        for split, protocol, inputs in todo:
            key = (run["teacher_name"], run["pair"], split)
            if key not in evaluation_sets:
                evaluation_sets[key] = load_evaluation_set(args, *key)
            evaluation = evaluation_sets[key]
            maps, missing, attributor = None, 0, None
            if protocol in STORED_MAP_PROTOCOLS:
                maps, missing = maps_for(args, map_config(run, protocol), split, evaluation.ids)
            elif protocol == "attributor":
                attributor_dir = models_dir / attributor_name(run["teacher_name"], run["pair"], run["method"])
                if not attributor_dir.exists():
                    logger.warning("%s: no Attributor at %s, protocol attributor skipped", name, attributor_dir)
                    continue
                attributor = AutoModel.from_pretrained(attributor_dir).eval()
            start = time.perf_counter()
            scores = translate(accelerator, model, tokenizer, evaluation, maps, args, attributor)
            hypotheses_file = Path(args.results_dir) / "hypotheses" / f"{name}.{split}.{protocol}.txt"
            hypotheses_file.parent.mkdir(parents=True, exist_ok=True)
            hypotheses_file.write_text("\n".join(h.replace("\n", " ") for h in scores.hypotheses) + "\n")
            statistics = simulate(model, tokenizer, evaluation, maps, args, attributor)
            for target, stats in statistics.items():
                stats.save(token_statistics_file(args, name, split, protocol, target))
            whole = {}
            if protocol in MAP_FREE_SCORING:  # no map at test time: the verdict scores every test pair
                if ("all",) + key not in evaluation_sets:
                    evaluation_sets[("all",) + key] = load_whole_split(args, *key, tokenizer)
                whole = simulate(model, tokenizer, evaluation_sets[("all",) + key], None, args)
                for target, stats in whole.items():
                    stats.save(token_statistics_file(args, name, split, protocol, target, "all"))
            row = {
                "student": name,
                **{
                    k: run[k]
                    for k in (
                        "method",
                        "operator",
                        "map_normalization",
                        "target_kind",
                        "teacher_name",
                        "pair",
                        "seed",
                        "preset",
                    )
                },
                "student_init": run.get("student_init", "scratch"),
                "init_from": run.get("init_from"),  # the warm start: the seed's independent replicate unit
                "train_pairs": run.get("train_pairs"),  # a learning-curve point (None: every annotated pair)
                "split": split,
                "protocol": protocol,
                "examples": len(evaluation.ids),
                "examples_without_map": missing,
                **scores.as_dict(),
                **simulation_fields(statistics),
                **({"whole_split": {"examples": len(evaluation_sets[("all",) + key].ids),
                                    **simulation_fields(whole)}} if whole else {}),
                "num_beams": args.num_beams or model.generation_config.num_beams,
                "hypotheses": str(hypotheses_file.relative_to(args.results_dir)),
                "seconds": round(time.perf_counter() - start, 1),
                "inputs": inputs,
                "code_version": code_version(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            if protocol != BASELINE_PROTOCOL:
                row.update(
                    compare_with_baseline(
                        args, run, split, protocol, scores.hypotheses, evaluation.references, statistics
                    )
                )
            append_result(results_path, row)
            written.append(row)
            primary = row["bootstrap"].get(row["primary_metric"]) if row.get("bootstrap") else None
            logger.info(
                "%s %s %s: BLEU %.2f chrF %.2f, %s %.4f%s", name, split, protocol, row["bleu"], row["chrf"],
                row["primary_metric"], row[row["primary_metric"]],
                f" (delta {primary['delta']:+.4f}, p={primary['p_value']:.3f}; delta BLEU "
                f"{row['bootstrap']['bleu']['delta']:+.2f})" if primary else "",
            )
    write_result_cards(args, models_dir, runs, results_path)
    return written


def protocols_of(run: dict, requested: list[str]) -> list[str]:
    """The protocols a student is evaluated under: the baseline its own, a `supervise` student `train-only` whatever
    was asked (it takes no map at test time, so every other protocol would measure the same thing), any other
    student the requested ones."""
    if run["method"] == BASELINE:
        return [BASELINE_PROTOCOL]
    if run["operator"] in MAP_FREE_OPERATORS:
        return [MAP_FREE_PROTOCOL]
    return requested


def write_result_cards(args: EvaluateArguments, models_dir: Path, runs: dict[str, dict], results_path: Path) -> None:
    """Rewrite each student's model card with its current result rows (model-index and a table), so the card a Hub
    user reads carries what `results.jsonl` holds."""
    rows: dict[str, list[dict]] = {}
    for row in read_results(results_path):
        rows.setdefault(row["student"], []).append(row)
    dataset = public_ref(args.attributions)
    for name, run in runs.items():
        if rows.get(name):
            write_student_card(
                models_dir / name, run, rows[name], (dataset, evaluation_config(run["teacher_name"], run["pair"]))
            )


def map_config(run: dict, protocol: str) -> str:
    """The map config a student's row reads under a stored-map protocol."""
    return protocol_map_config(run["teacher_name"], run["pair"], run["method"], protocol)


def baseline_of(run: dict) -> str:
    """The no-map student of the same teacher, pair, target kind, seed, design (warm start or scratch) and training
    pairs."""
    return layout.baseline_name(
        run["teacher_name"], run["pair"], seed=run["seed"], target_kind=run["target_kind"],
        warm=run.get("init_from") is not None, train_pairs=run.get("train_pairs"),
    )


def token_statistics_file(args: EvaluateArguments, student: str, split: str, protocol: str, target: str,
                          sentences: str = "annotated") -> Path:
    """Where a row's per-sentence forced-decoding sums are kept, for the paired bootstrap of later rows and the
    verdict (`release_layout.token_statistics_path`)."""
    return token_statistics_path(args.results_dir, student, split, protocol, target, sentences)


def row_inputs(args: EvaluateArguments, models_dir: Path, run: dict, protocol: str) -> dict:
    """What a result row measured besides the code: the student's run, the test-time maps' version or the
    Attributor's run, and the baseline run it is compared with. A row whose inputs changed is evaluated again."""
    inputs = {"student": run.get("run_id")}
    if protocol in STORED_MAP_PROTOCOLS:
        inputs["maps"] = maps_version(args.attributions, map_config(run, protocol))
    elif protocol == "attributor":
        inputs["attributor"] = layout.run_id_of(
            models_dir / attributor_name(run["teacher_name"], run["pair"], run["method"])
        )
    if protocol != BASELINE_PROTOCOL:
        inputs["baseline"] = layout.run_id_of(models_dir / baseline_of(run))
    return inputs


def is_current(row: dict | None, inputs: dict) -> bool:
    """Whether a stored row still measures these inputs (rows written before rows recorded their inputs stay current
    while the student is the same unversioned one; rows written before the simulation metrics existed do not)."""
    if row is None or "primary_metric" not in row:
        return False
    if row["protocol"] in MAP_FREE_SCORING and "whole_split" not in row:  # written before the verdict's whole split
        return False
    if "inputs" not in row:
        return inputs["student"] is None
    return row["inputs"] == inputs


def compare_with_baseline(
    args: EvaluateArguments, run: dict, split: str, protocol: str, hypotheses: list[str], references: list[str],
    statistics: dict,
) -> dict:
    """Paired bootstrap against the baseline of the same teacher, pair, target kind, seed and design, if it was
    evaluated: BLEU and chrF over its hypotheses, and every simulation metric over its forced-decoding sums."""
    baseline_name = baseline_of(run)
    baseline_file = Path(args.results_dir) / "hypotheses" / f"{baseline_name}.{split}.{BASELINE_PROTOCOL}.txt"
    if not baseline_file.exists():
        logger.warning("no baseline hypotheses %s: no comparison", baseline_file)
        return {"baseline": None}
    baseline = baseline_file.read_text().splitlines()
    bootstrap = scoring.paired_bootstrap(hypotheses, baseline, references, args.bootstrap_samples, args.seed)
    for target, stats in statistics.items():
        baseline_stats = token_statistics_file(args, baseline_name, split, BASELINE_PROTOCOL, target)
        if not baseline_stats.exists():
            logger.warning("no baseline forced-decoding sums %s: no comparison on %s", baseline_stats, target)
            continue
        paired = paired_bootstrap_tokens(stats, TokenStatistics.load(baseline_stats), args.bootstrap_samples, args.seed)
        for name, metric in METRICS.items():
            if metric.target == target:
                bootstrap[name] = paired[metric.statistic]
    return {"baseline": baseline_name, "bootstrap": bootstrap, "bootstrap_samples": args.bootstrap_samples}


# ================================================================================================ entry point
def evaluate_and_log(args: EvaluateArguments) -> None:
    rows = evaluate(args)
    logger.info("%d new result rows in %s", len(rows), Path(args.results_dir) / RESULTS_FILE)


main = stage_main(EvaluateArguments, evaluate_and_log, prog="agkd evaluate", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
