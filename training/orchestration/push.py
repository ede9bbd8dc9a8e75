"""`agkd push`: upload a preset's release folders to the Hugging Face Hub (dry-run by default).

`runs/<preset>/hub/` holds exactly what is uploaded: `models/<name>` -> model repo `<org>/<name>`,
`datasets/<name>` -> dataset repo `<org>/<name>`, `spaces/<name>` -> Space repo `<org>/<name>` (gradio SDK).
Without `--no_dry_run` nothing is sent and no token is needed: the plan (what would go where, file counts and
sizes) is logged. With it, every repo is created if needed (`create_repo(exist_ok=True)`) and the folder is
uploaded as one commit (`upload_folder`).

    agkd push --org my-org --preset demo                 # the plan
    HF_TOKEN=hf_... agkd push --org my-org --preset demo --no_dry_run
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from agkd.datasets_scripts.stage import run_as_script, stage_main

logger = logging.getLogger(__name__)

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
IGNORE_PATTERNS = ["*.tmp", ".*", "**/.work/**", "**/__pycache__/**"]


@dataclass
class PushArguments:
    org: str = field(metadata={"help": "Hub user or organisation that receives the repos"})
    preset: str = field(default="demo", metadata={"help": "which runs/<preset>/hub to upload"})
    runs_dir: str = field(default="runs", metadata={"help": "root of the run folders"})
    only: list[str] | None = field(default=None, metadata={"help": "upload only these repo names"})
    private: bool = field(default=False, metadata={"help": "create private repos"})
    no_dry_run: bool = field(
        default=False, metadata={"help": "really upload (needs a token: HF_TOKEN or hf auth login)"}
    )


@dataclass(frozen=True)
class Upload:
    folder: Path
    repo_id: str
    repo_type: str
    files: int
    bytes: int


def planned_uploads(hub_dir: Path, org: str, only: list[str] | None = None) -> list[Upload]:
    """Every repo of a release folder, in a stable order (datasets, models, spaces)."""
    uploads = []
    for kind in sorted(REPO_TYPES):
        for folder in sorted(p for p in (hub_dir / kind).glob("*") if p.is_dir() and not p.name.startswith(".")):
            if only and folder.name not in only:
                continue
            files = [
                f
                for f in folder.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts)
            ]
            uploads.append(
                Upload(
                    folder, f"{org}/{folder.name}", REPO_TYPES[kind], len(files), sum(f.stat().st_size for f in files)
                )
            )
    return uploads


def push(args: PushArguments) -> list[Upload]:
    hub_dir = Path(args.runs_dir) / args.preset / "hub"
    if not hub_dir.is_dir():
        raise FileNotFoundError(f"no release folder {hub_dir}: run `agkd pipeline --preset {args.preset}` first")
    uploads = planned_uploads(hub_dir, args.org, args.only)
    if not uploads:
        raise FileNotFoundError(f"{hub_dir} holds no model, dataset or Space folder")
    mode = "uploading" if args.no_dry_run else "dry run, nothing is sent"
    logger.info("%d repos from %s (%s):", len(uploads), hub_dir, mode)
    for u in uploads:
        logger.info("  %-8s %-55s <- %s (%d files, %.1f MB)", u.repo_type, u.repo_id, u.folder, u.files, u.bytes / 1e6)
    if not args.no_dry_run:
        logger.info("pass --no_dry_run to upload (a token from HF_TOKEN or `hf auth login` is needed then)")
        return uploads
    from huggingface_hub import HfApi, get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise PermissionError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    for u in uploads:
        api.create_repo(u.repo_id, repo_type=u.repo_type, private=args.private, exist_ok=True,
                        space_sdk="gradio" if u.repo_type == "space" else None)
        api.upload_folder(folder_path=str(u.folder), repo_id=u.repo_id, repo_type=u.repo_type,
                          commit_message="AGKD release upload", ignore_patterns=IGNORE_PATTERNS)
        logger.info("uploaded %s", u.repo_id)
    return uploads


main = stage_main(PushArguments, push, prog="agkd push", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
