"""`agkd space-repo`: write the Space repo of a release (`runs/<preset>/hub/spaces/agkd-space`, what `agkd push`
uploads) so it starts as a Hugging Face Space without this checkout.

The folder holds these files:
- `README.md`: the page's card with the Space YAML header (sdk gradio, `app_file: app.py`);
- `requirements.txt`: `agkd[space]==<version>`, the installed package that holds the page's code and pins what it
  imports (gradio itself comes from the header's `sdk_version`);
- `app.py`: a launcher that imports only installed packages and serves `agkd.space.app` on the release the environment
  names (`AGKD_HUB_ORG`, else the Space's own owner on the Hub, else the local folder `AGKD_RELEASE`);
- `results.jsonl`: the release's evaluation rows (read by the page's results table), when there are any,
  `report.md`: the report's verdict sentences and triangulation sections, which the page quotes (`page_excerpt`), and
  `verdict.json`: the verdict's own estimates and marks, which the page's verdict table shows.

    agkd space-repo --folder runs/demo/hub/spaces/agkd-space --results runs/demo/results/results.jsonl
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from agkd import __version__
from agkd.datasets_scripts.release_layout import REPORT_FILE, RESULTS_FILE, VERDICT_FILE, atomic_folder
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.space.release import page_excerpt

logger = logging.getLogger(__name__)

LAUNCHER = f'''"""The AGKD Space: the page of the installed `agkd` package (`agkd.space.app`), on the release named by the environment:
`AGKD_HUB_ORG` (Hub repo ids), else the owner of this Space, else the local release folder `AGKD_RELEASE`. The results
table reads `results.jsonl` next to this file unless `AGKD_RESULTS` names another."""

import os
import sys
from pathlib import Path

results = Path(__file__).with_name("{RESULTS_FILE}")
if results.exists():
    os.environ.setdefault("AGKD_RESULTS", str(results))

from agkd.space.app import main  # noqa: E402  (after the environment it reads)

sys.exit(main())
'''  # noqa: E501 (the launcher it writes, byte for byte)


@dataclass
class SpaceRepoArguments:
    folder: str = field(metadata={"help": "the Space folder to write (runs/<preset>/hub/spaces/agkd-space)"})
    results: str | None = field(default=None, metadata={"help": "results.jsonl to ship with the page (optional)"})


def requirements() -> str:
    return (
        "# The page's code and everything it imports come with the agkd package; gradio comes from the README's\n"
        "# sdk_version. On CPU hardware a CPU build of torch is enough (https://download.pytorch.org/whl/cpu).\n"
        f"agkd[space]=={__version__}\n"
    )


def write_space_repo(args: SpaceRepoArguments) -> Path:
    """The folder is written whole and atomically: a file an older release put there does not survive."""
    folder = Path(args.folder)
    with atomic_folder(folder) as tmp:
        shutil.copy2(Path(__file__).with_name("README.md"), tmp / "README.md")
        (tmp / "requirements.txt").write_text(requirements())
        (tmp / "app.py").write_text(LAUNCHER)
        if args.results and Path(args.results).exists():
            shutil.copy2(args.results, tmp / RESULTS_FILE)
            report = Path(args.results).with_name(REPORT_FILE)
            if report.exists():
                (tmp / REPORT_FILE).write_text(page_excerpt(report.read_text()))
            verdict = Path(args.results).with_name(VERDICT_FILE)
            if verdict.exists():  # the verdict's own estimates and marks, which the page's table quotes
                shutil.copy2(verdict, tmp / VERDICT_FILE)
    logger.info("Space repo %s: README.md, requirements.txt (agkd[space]==%s), app.py%s", folder, __version__,
                ", results.jsonl" if (folder / RESULTS_FILE).exists() else "")
    return folder


main = stage_main(SpaceRepoArguments, write_space_repo, prog="agkd space-repo", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
