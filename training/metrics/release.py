"""`agkd metric-spaces`: write AGKD's `evaluate` modules into a release as Hub Spaces
(`runs/<preset>/hub/spaces/<name>`, what `agkd push` uploads as `<org>/<name>`), the way evaluate's community metrics
live on the Hub: a Space holding `<name>.py`, its metric card `README.md`, `requirements.txt` and an `app.py` that
serves the module's widget.

Each module folder of `training/metrics` is copied whole except `__init__.py` and caches; `app.py` is written anew: it
loads `<org>/<name>` when an org is known (`--org`, else `AGKD_HUB_ORG` where it runs), else the module in its own
folder (no network needed).

    agkd metric-spaces --spaces_dir runs/demo/hub/spaces [--org my-org]
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.training.metrics import METRIC_MODULES

logger = logging.getLogger(__name__)

SKIPPED = shutil.ignore_patterns("__init__.py", "__pycache__", "*.pyc", ".*")
LAUNCHER = '''"""The `{name}` evaluate module's widget: `{{org}}/{name}` from the Hub when an org is known
(`ORG`, else the environment's `AGKD_HUB_ORG`), else the module in this folder (offline)."""

import os
from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

ORG = {org!r}
org = ORG or os.environ.get("AGKD_HUB_ORG")
module = evaluate.load(f"{{org}}/{name}" if org else str(Path(__file__).resolve().parent))
launch_gradio_widget(module)
'''  # the launcher it writes, byte for byte (and each module folder's app.py: lint-clean for names up to 21 characters)


def launcher(name: str, org: str | None = None) -> str:
    """The `app.py` of module `name`'s Space."""
    return LAUNCHER.format(name=name, org=org)


@dataclass
class MetricSpacesArguments:
    spaces_dir: str = field(metadata={"help": "the release's Space folder (runs/<preset>/hub/spaces)"})
    org: str | None = field(default=None, metadata={"help": "Hub org the release goes to: app.py loads <org>/<name>"})
    only: list[str] | None = field(
        default=None, metadata={"help": f"only these modules (default: all: {', '.join(METRIC_MODULES)})"}
    )


def write_metric_spaces(args: MetricSpacesArguments) -> list[Path]:
    """One Space folder per module, each written whole and atomically (a file an older release put there goes)."""
    from agkd.datasets_scripts.release_layout import atomic_folder

    names = args.only or list(METRIC_MODULES)
    unknown = [n for n in names if n not in METRIC_MODULES]
    if unknown:
        raise ValueError(f"unknown metric modules {unknown}; choose from {', '.join(METRIC_MODULES)}")
    folders = []
    for name in names:
        folder = Path(args.spaces_dir) / name
        with atomic_folder(folder) as tmp:
            shutil.copytree(METRIC_MODULES[name], tmp, ignore=SKIPPED, dirs_exist_ok=True)
            (tmp / "app.py").write_text(launcher(name, args.org))
        logger.info("metric Space %s: %s", folder, ", ".join(sorted(p.name for p in folder.iterdir())))
        folders.append(folder)
    return folders


main = stage_main(MetricSpacesArguments, write_metric_spaces, prog="agkd metric-spaces", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
