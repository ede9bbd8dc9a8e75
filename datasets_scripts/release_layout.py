"""The release layout, in one module: where every stage writes, what each folder is called, and when one is finished.

A preset's run folder is `runs/<preset>/` with the Hub-layout release in `hub/` (`models/`, `datasets/`,
`spaces/`), the result rows in `results/`, checkpoints in `checkpoints/` (outside the release) and job logs in
`logs/`. Stages read and write only these folders, so each name is formed here and nowhere else.

Datasets are written in the Hub's no-script layout: `<root>/<config>/<split>-00000-of-00001.parquet` plus a README
dataset card whose YAML `configs:` section tells `datasets.load_dataset(root, config)` where each split lives.
Everything is written atomically (temporary file or folder, then rename), so an interrupted build never leaves a
half-written split or model folder behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData

from agkd.datasets_scripts.attribution.configs import BASELINE, config_name

logger = logging.getLogger(__name__)

META_DIR = "meta"  # agkd-attributions: meta/<config>.json (teacher, versions, arguments, per-split fingerprints)


def public_ref(ref: str | Path | None) -> str | None:
    """How a file that is uploaded names a model or dataset: a Hub id as it is, a local folder by its name (the repo
    name `agkd push` gives it), never a path of this machine."""
    if ref is None:
        return None
    return Path(ref).resolve().name if Path(ref).exists() else str(ref)


SPLITS = ("train", "validation", "test", "test_handbook")  # agkd-parallel's splits, as `agkd corpus` builds them


def split_path(root: str | Path, config: str, split: str) -> Path:
    return Path(root) / config / f"{split}-00000-of-00001.parquet"


def write_split(root: str | Path, config: str, split: str, data: datasets.Dataset) -> Path:
    """Write one split of one config as a single parquet file, atomically."""
    path = split_path(root, config, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{split}-", suffix=".parquet.tmp")
    os.close(fd)
    try:
        data.to_parquet(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_meta(repo: str | Path, config: str) -> dict | None:
    """`meta/<config>.json` of an agkd-attributions folder or Hub dataset; None where there is none (or, for a Hub id,
    where it cannot be fetched)."""
    path = Path(repo) / META_DIR / f"{config}.json"
    if not Path(repo).is_dir():
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

        try:
            path = Path(hf_hub_download(str(repo), f"{META_DIR}/{config}.json", repo_type="dataset"))
        except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
            logger.warning("no %s/%s.json for %s: %s", META_DIR, config, repo, err)
            return None
    return json.loads(path.read_text()) if path.exists() else None


def maps_version(repo: str | Path, config: str) -> str | None:
    """A short digest of what determines a map config's content (its splits' extraction fingerprints): it changes
    exactly when the maps are recomputed differently, so models and results built on them can tell they are stale."""
    meta = read_meta(repo, config)
    if meta is None:
        return None
    fingerprints = {split: info.get("fingerprint") for split, info in sorted(meta.get("splits", {}).items())}
    return hashlib.sha1(json.dumps(fingerprints, sort_keys=True).encode()).hexdigest()[:12]


def configs_metadata(root: str | Path) -> list[dict]:
    """The YAML `configs:` entries for every `<config>/<split>-*.parquet` found under `root`."""
    entries = []
    for config_dir in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        splits = sorted({f.name.split("-00000-")[0] for f in config_dir.glob("*-00000-of-00001.parquet")})
        if splits:
            entries.append(
                {
                    "config_name": config_dir.name,
                    "data_files": [{"split": s, "path": f"{config_dir.name}/{s}-*.parquet"} for s in splits],
                }
            )
    return entries


def write_card(root: str | Path, body: str, **card_data) -> Path:
    """Write the README dataset card; `configs:` is derived from the files on disk so it can never disagree."""
    data = DatasetCardData(configs=configs_metadata(root), **card_data)
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n")
    path = Path(root) / "README.md"
    # a unique temporary name: extraction jobs of several methods may write the card at once; the last one wins
    # and, being written after every config it sees, lists them all
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".README.", suffix=".md")
    os.close(fd)
    os.chmod(tmp, 0o644)  # as a card written in place would be (mkstemp makes it private)
    card.save(tmp)
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def atomic_folder(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `final`, on failure it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-"))
    try:
        yield tmp
        if final.exists():
            backup = final.with_name(f".{final.name}-old")
            shutil.rmtree(backup, ignore_errors=True)
            final.rename(backup)
            tmp.rename(final)
            shutil.rmtree(backup)
        else:
            tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def split_counts(root: str | Path) -> Mapping[str, Mapping[str, int]]:
    """Row counts per config and split, read from the parquet metadata (cheap)."""
    counts: dict[str, dict[str, int]] = {}
    for entry in configs_metadata(root):
        config = entry["config_name"]
        counts[config] = {
            f["split"]: pq.ParquetFile(split_path(root, config, f["split"])).metadata.num_rows
            for f in entry["data_files"]
        }
    return counts


def config_names(root: str | Path) -> list[str]:
    """Config names of a Hub-layout dataset: read from a local folder's files, or asked from the Hub for a repo id."""
    if Path(root).is_dir():
        return [entry["config_name"] for entry in configs_metadata(root)]
    return datasets.get_dataset_config_names(str(root))


def config_exists(root: str | Path, config: str) -> bool:
    """Whether a dataset folder or repo has a config of that name (a folder: its parquet files; a repo: its card)."""
    return config in config_names(root)


def load_config(root: str | Path, config: str) -> datasets.DatasetDict:
    """Every split of one config of a Hub-layout dataset: a local folder or a Hub repo id.

    A local folder is read straight from its parquet files, in memory, where the card's `configs:` entries say
    (`configs_metadata`): datasets 5.2 keys the cache of a local folder by the folder's name and the config, not by the
    files' content, so a rebuilt folder (or another folder of the same name) could be served stale rows or fail
    split-size verification against another folder's cached info."""
    if not Path(root).is_dir():
        return datasets.load_dataset(str(root), config)
    entries = {e["config_name"]: e for e in configs_metadata(root)}
    if config not in entries:
        raise ValueError(f"{root} has no config {config!r} (it has: {', '.join(entries)})")
    splits = {}
    for data_file in entries[config]["data_files"]:
        files = sorted(Path(root).glob(data_file["path"]))
        splits[data_file["split"]] = datasets.Dataset(pa.concat_tables([pq.read_table(f) for f in files]))
    return datasets.DatasetDict(splits)


RESULTS_FILE = "results.jsonl"  # results/<this>: one JSON row per student, split and protocol
REPORT_FILE = "report.md"  # results/<this>: `agkd report`'s verdict, tables and sections (plots in results/plots/)
TRIANGULATION_HEADING = "Beside the verdict"  # report.md: its triangulation sections' title (the Space quotes them)
INSTRUMENT_FILE = "instrument_check.json"  # results/<this>: the positive control of `agkd instrument`
VERDICT_FILE = "verdict.json"  # results/<this>: the primary design's verdict as data, which the Space and cards quote
ANALYSIS_PLAN_FILE = "analysis_plan.json"  # results/<this>: the verdict's plan, written before any training job
TOKEN_STATISTICS_DIR = "token_statistics"  # results/<this>/: per-sentence forced-decoding sums of every result row
# Which sentences a row's per-sentence sums cover: the map-annotated test pairs (every row), or the whole test split
# (rows that need no map at test time: the no-map baseline and `train-only`), which the verdict is scored on.
SENTENCE_SETS = ("annotated", "all")
TRIANGULATION_DIR = "triangulation"  # results/<this>/: one JSON and one npz per teacher and pair (`agkd triangulate`)


def token_statistics_path(results_dir: str | Path, student: str, split: str, protocol: str, target: str,
                          sentences: str = "annotated") -> Path:
    """`results/token_statistics/<student>.<split>.<protocol>.<target>[.all].npz`."""
    if sentences not in SENTENCE_SETS:
        raise ValueError(f"unknown sentence set {sentences!r}; choose one of {SENTENCE_SETS}")
    suffix = "" if sentences == "annotated" else f".{sentences}"
    return Path(results_dir) / TOKEN_STATISTICS_DIR / f"{student}.{split}.{protocol}.{target}{suffix}.npz"
RUN_RECORD = "agkd_run.json"  # in every student and Attributor folder: what it was trained on, and its run id


class RunLayout:
    """Paths of one preset's run folder, `<runs_dir>/<preset>/`."""

    def __init__(self, runs_dir: str | Path, preset: str):
        self.root = Path(runs_dir) / preset
        self.hub = self.root / "hub"
        self.models = self.hub / "models"
        self.datasets = self.hub / "datasets"
        self.spaces = self.hub / "spaces"
        self.results = self.root / "results"
        self.checkpoints = self.root / "checkpoints"
        self.logs = self.root / "logs"


def default_dirs(preset_root: Path, output_dir: str | None, checkpoint_dir: str | None) -> tuple[str, str]:
    """A training script's `(output_dir, checkpoint_dir)`: models go to `<preset root>/hub/models`; checkpoints
    beside the release (`runs/<preset>/checkpoints` for `runs/<preset>/hub/models`, else next to the models root)."""
    models = Path(output_dir) if output_dir else RunLayout(preset_root.parent, preset_root.name).models
    if checkpoint_dir:
        return str(models), checkpoint_dir
    return str(models), str(_beside_release(models) / "checkpoints")


def default_logging_dir(models_dir: str | Path) -> Path:
    """Where a training script's experiment trackers write (`<this>/<model name>/`): the release's `logs/`, beside the
    pipeline's job logs (`runs/<preset>/logs` for `runs/<preset>/hub/models`, else `logs` next to the models root), so
    one `tensorboard --logdir runs/<preset>/logs` shows every model of the grid."""
    return _beside_release(Path(models_dir)) / "logs"


def _beside_release(models: Path) -> Path:
    """The folder that holds a models root's release: `runs/<preset>` for `runs/<preset>/hub/models`, else its
    parent."""
    return models.parent.parent if models.parent.name == "hub" else models.parent


# --------------------------------------------------------------------------------------------- model names
def student_name(
    teacher_name: str,
    pair: str,
    method: str,
    *,
    seed: int,
    operator: str = "none",
    map_normalization: str = "none",
    injection_layers: list[int] | None = None,
    injection_heads: list[int] | None = None,
    target_kind: str = "reference",
    warm: bool = False,
    supervision_weight: float | None = None,
    train_pairs: int | None = None,
) -> str:
    """student-<teacher>-<pair>-<method>[-<operator>[<weight>]][-<normalisation>][-L..][-H..][-teacher][-warm]
    [-p<pairs>]-s<seed> (`supervision_weight`: a weight other than the model's default, which names leave out; None for
    the default; `p<pairs>`: a learning-curve student trained on the first <pairs> map-annotated pairs only)."""
    parts = ["student", teacher_name, pair, method.replace("_", "")]
    if method != BASELINE:
        parts.append(
            operator + (f"{supervision_weight:g}" if operator == "supervise" and supervision_weight is not None else "")
        )
    if map_normalization != "none":
        parts.append(map_normalization.replace("_", ""))
    if injection_layers is not None:
        parts.append("L" + "".join(map(str, injection_layers)))
    if injection_heads is not None:
        parts.append("H" + "".join(map(str, injection_heads)))
    if target_kind == "teacher":
        parts.append("teacher")
    if warm:
        parts.append("warm")
    if train_pairs is not None:
        parts.append(f"p{train_pairs}")
    parts.append(f"s{seed}")
    return "-".join(parts)


def baseline_name(
    teacher_name: str, pair: str, *, seed: int, target_kind: str = "reference", warm: bool = False,
    train_pairs: int | None = None,
) -> str:
    """The no-map student that every cell of the same teacher, pair, target kind, seed, design and training pairs is
    compared with."""
    return student_name(teacher_name, pair, BASELINE, seed=seed, target_kind=target_kind, warm=warm,
                        train_pairs=train_pairs)


def warm_start_name(teacher_name: str, pair: str, seed: int = 0) -> str:
    """The shared no-map warm start of a teacher and pair (design `warm`)."""
    return f"warmstart-{teacher_name}-{pair}-s{seed}"


def attributor_name(teacher_name: str, pair: str, method: str) -> str:
    """The Attributor of one teacher, pair and method."""
    return f"attributor-{teacher_name}-{pair}-{method.replace('_', '')}"


# --------------------------------------------------------------------------------------------- finished folders
def is_finished(folder: str | Path) -> bool:
    """A student or Attributor folder that a run completed (written atomically: weights and run record)."""
    return (Path(folder) / "model.safetensors").exists() and (Path(folder) / RUN_RECORD).exists()


def teacher_is_finished(folder: str | Path) -> bool:
    """A complete teacher folder whose run reached its end (one stopped by `--max_minutes` is usable, not finished:
    the next `--resume` run continues it)."""
    folder = Path(folder)
    if not all((folder / name).exists() for name in ("config.json", "model.safetensors", "README.md")):
        return False
    results = folder / "all_results.json"
    return not (results.exists() and json.loads(results.read_text()).get("stopped_on_time_budget"))


def write_model_folder(final_dir: Path, work_dir: Path, accelerator, model, tokenizer, run: dict, write_card) -> None:
    """A student's or Attributor's Hub folder (weights, tokenizer, run record, card), written atomically (a folder
    that exists is finished), then its checkpoints in `work_dir` removed. Main process only."""
    with atomic_folder(final_dir) as tmp:
        accelerator.unwrap_model(model).save_pretrained(tmp, save_function=accelerator.save)
        tokenizer.save_pretrained(tmp)
        (tmp / RUN_RECORD).write_text(json.dumps(run, indent=2))
        write_card(tmp, run)
    shutil.rmtree(work_dir, ignore_errors=True)


def run_id_of(folder: str | Path | None) -> str | None:
    """The run id a finished student or Attributor records (None: no folder, or none recorded)."""
    run_file = Path(folder) / RUN_RECORD if folder else None
    return json.loads(run_file.read_text()).get("run_id") if run_file and run_file.exists() else None


def map_provenance(attributions: str | Path, config: str | None) -> dict:
    """What a student or Attributor records in `agkd_run.json` about its data: a fresh run id (result rows name the
    run they measured) and the version of the map config it was trained on (None: trained without maps)."""
    return {"run_id": uuid.uuid4().hex[:12], "maps_version": maps_version(attributions, config) if config else None}


def keep_finished(
    folder: str | Path, attributions: str | Path, config: str | None, init_from: str | None = None,
    budget: dict | None = None,
) -> bool:
    """Whether the student or Attributor in `folder` is kept (skipped) rather than trained: it is if it is finished,
    unless it was trained on other maps than `attributions`/`config` holds now (None: trained without maps; one
    trained before versions were recorded counts as current), fine-tuned from another warm start than `init_from`
    holds now, or with another training `budget` (steps, learning rate, ... as recorded in its `hyperparameters`).
    Logs which."""
    if not is_finished(folder):
        return False
    run = json.loads((Path(folder) / RUN_RECORD).read_text())
    if run.get("init_run_id") != run_id_of(init_from):
        logger.warning("%s was fine-tuned from another warm start than %s holds now: retraining", folder, init_from)
        return False
    recorded_budget = run.get("hyperparameters", {})
    changed = {
        k: (recorded_budget[k], v)
        for k, v in (budget or {}).items()
        if k in recorded_budget and recorded_budget[k] != v
    }
    if changed:
        logger.warning("%s was trained with another budget (%s): retraining", folder,
                       ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items()))
        return False
    recorded, current = run.get("maps_version"), maps_version(attributions, config) if config else None
    if recorded is not None and current is not None and recorded != current:
        logger.warning("%s was trained on maps of %s that were re-extracted since: retraining", folder, config)
        return False
    logger.info("%s already exists: skipped (pass --overwrite to retrain)", folder)
    return True


# --------------------------------------------------------------------------------------------- results
# The test-time map protocols of `agkd evaluate`, in reading order (from the most map information at test time to the
# least); cards and the Space list result rows in this order.
PROTOCOLS = ("gold", "teacher", "attributor", "train-only")
MAP_FREE_PROTOCOL = "train-only"  # no map at test time: the protocol of students that take none (`supervise`)
STORED_MAP_PROTOCOLS = {"gold": "reference", "teacher": "teacher"}  # protocol -> target kind of its stored maps
BASELINE_PROTOCOL = BASELINE  # the no-map baseline is evaluated without a map, under its own name


def protocol_map_config(teacher_name: str, pair: str, method: str, protocol: str) -> str:
    """The agkd-attributions config whose maps a protocol injects at test time: `gold` the teacher's maps of the
    reference, `teacher` those of its own translation. `agkd evaluate` and the Space read the same maps through it."""
    if protocol not in STORED_MAP_PROTOCOLS:
        raise ValueError(
            f"protocol {protocol!r} injects no stored map (those that do: {', '.join(STORED_MAP_PROTOCOLS)})"
        )
    return config_name(teacher_name, pair, method, STORED_MAP_PROTOCOLS[protocol])


def protocol_order(protocol: str) -> tuple[int, str]:
    """Sort key of result rows: the no-map baseline, then `PROTOCOLS`, then any other protocol by name."""
    order = (BASELINE, *PROTOCOLS)
    return (order.index(protocol) if protocol in order else len(order)), protocol


def split_curve_rows(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the grid's rows, the learning curve's rows): a curve row (`train_pairs` set) was trained on a part of the
    map-annotated pairs; it never enters a verdict or a table of the grid."""
    return [r for r in rows if r.get("train_pairs") is None], [r for r in rows if r.get("train_pairs") is not None]


def read_results(path: Path) -> list[dict]:
    """The latest row of each (student, split, protocol): a re-evaluation appends a row that supersedes the older
    one."""
    if not path.exists():
        return []
    latest: dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            key = (row["student"], row["split"], row["protocol"])
            latest.pop(key, None)
            latest[key] = row
    return list(latest.values())
