"""The release layout: where every stage writes, what each model folder is called, and when one is finished.

A preset's run folder is `runs/<preset>/` with the Hub-layout release in `hub/` (`models/`, `datasets/`,
`spaces/`), the result rows in `results/`, checkpoints in `checkpoints/` (outside the release) and job logs in
`logs/`. Stages read and write only these folders, so each name is formed here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path

from datasets_scripts.attribution_configs import BASELINE

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"  # results/<this>: one JSON row per student, split and protocol
INSTRUMENT_FILE = "instrument_check.json"  # results/<this>: the positive control of `agkd instrument`
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
    """The folder that holds a models root's release: `runs/<preset>` for `runs/<preset>/hub/models`, else its parent."""
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
    supervision_weight: float = 1.0,
) -> str:
    """student-<teacher>-<pair>-<method>[-<operator>[<weight>]][-<normalisation>][-L..][-H..][-teacher][-warm]-s<seed>
    (the supervision weight only where it is not 1)."""
    parts = ["student", teacher_name, pair, method.replace("_", "")]
    if method != BASELINE:
        parts.append(operator + (f"{supervision_weight:g}" if operator == "supervise" and supervision_weight != 1 else ""))
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
    parts.append(f"s{seed}")
    return "-".join(parts)


def baseline_name(teacher_name: str, pair: str, *, seed: int, target_kind: str = "reference", warm: bool = False) -> str:
    """The no-map student that every cell of the same teacher, pair, target kind, seed and design is compared with."""
    return student_name(teacher_name, pair, BASELINE, seed=seed, target_kind=target_kind, warm=warm)


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
    from datasets_scripts.hub_layout import atomic_folder

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
    from datasets_scripts.hub_layout import maps_version

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
    from datasets_scripts.hub_layout import maps_version

    if not is_finished(folder):
        return False
    run = json.loads((Path(folder) / RUN_RECORD).read_text())
    if run.get("init_run_id") != run_id_of(init_from):
        logger.warning("%s was fine-tuned from another warm start than %s holds now: retraining", folder, init_from)
        return False
    recorded_budget = run.get("hyperparameters", {})
    changed = {k: (recorded_budget[k], v) for k, v in (budget or {}).items() if k in recorded_budget and recorded_budget[k] != v}
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


def protocol_order(protocol: str) -> tuple[int, str]:
    """Sort key of result rows: the no-map baseline, then `PROTOCOLS`, then any other protocol by name."""
    order = (BASELINE, *PROTOCOLS)
    return (order.index(protocol) if protocol in order else len(order)), protocol


def read_results(path: Path) -> list[dict]:
    """The latest row of each (student, split, protocol): a re-evaluation appends a row that supersedes the older one."""
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
