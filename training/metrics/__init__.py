"""AGKD's measures as Hugging Face `evaluate` modules: one folder per module, `<name>/<name>.py` holding an
`evaluate.Metric` subclass and the module-level functions that compute it (AGKD's own code calls those), beside the
Hub Space files (`README.md` metric card, `app.py`, `requirements.txt`).

`METRIC_MODULES` maps each module's name to its folder: every folder here that holds `<folder name>.py`.
`load(name)` is `evaluate.load(<folder>)`, which needs no network (`evaluate.load("<org>/<name>")` fetches the same
module from the Hub). `agkd metric-spaces` (training/metrics/release.py) writes them into a release as Spaces.
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent


def discover(root: Path = METRICS_DIR) -> dict[str, Path]:
    """name -> folder of every module folder under `root` (a folder holding `<folder name>.py`), sorted by name."""
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and (p / f"{p.name}.py").is_file()}


METRIC_MODULES: dict[str, Path] = discover()


def load(name: str, **kwargs):
    """The `evaluate` module `name` from its folder (offline-safe); `kwargs` go to `evaluate.load`."""
    import evaluate

    if name not in METRIC_MODULES:
        raise KeyError(f"unknown metric module {name!r}; choose one of {', '.join(METRIC_MODULES)}")
    return evaluate.load(str(METRIC_MODULES[name]), **kwargs)
