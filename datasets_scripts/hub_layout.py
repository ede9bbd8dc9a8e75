"""Write datasets in the Hub's no-script layout: `<root>/<config>/<split>-00000-of-00001.parquet` plus a README
dataset card whose YAML `configs:` section tells `datasets.load_dataset(root, config)` where each split lives.

Everything is written atomically (temporary file or folder, then rename), so an interrupted build never leaves a
half-written split behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import datasets
from huggingface_hub import DatasetCard, DatasetCardData

logger = logging.getLogger(__name__)

META_DIR = "meta"  # agkd-attributions: meta/<config>.json (teacher, versions, arguments, per-split fingerprints)


def public_ref(ref: str | Path | None) -> str | None:
    """How a file that is uploaded names a model or dataset: a Hub id as it is, a local folder by its name (the repo
    name `agkd push` gives it), never a path of this machine."""
    if ref is None:
        return None
    return Path(ref).resolve().name if Path(ref).exists() else str(ref)


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
    import pyarrow.parquet as pq

    counts: dict[str, dict[str, int]] = {}
    for entry in configs_metadata(root):
        config = entry["config_name"]
        counts[config] = {
            f["split"]: pq.ParquetFile(split_path(root, config, f["split"])).metadata.num_rows for f in entry["data_files"]
        }
    return counts


def load_config(root: str, config: str) -> datasets.DatasetDict:
    """Every split of one config of a Hub-layout dataset: a local folder (`read_local_config`) or a Hub repo id."""
    if Path(root).is_dir():
        return read_local_config(root, config)
    return datasets.load_dataset(root, config)


def config_exists(root: str, config: str) -> bool:
    """Whether a dataset folder or repo has a config of that name (a folder: its parquet files; a repo: its card)."""
    if Path(root).is_dir():
        return any((Path(root) / config).glob("*.parquet"))
    return config in datasets.get_dataset_config_names(root)


def read_local_config(root: str | Path, config: str) -> datasets.DatasetDict:
    """All splits of one config of a local Hub-layout folder, read straight from its parquet files (in memory).

    Prefer this to `datasets.load_dataset(folder, config)` inside the pipeline: datasets 5.2 keys the cache of a local
    folder by the folder's name and the config, not by the files' content, so a rebuilt folder (or another folder of
    the same name) can be served stale rows or fail split-size verification against another folder's cached info.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    config_dir = Path(root) / config
    files: dict[str, list[Path]] = {}
    for f in sorted(config_dir.glob("*.parquet")):
        files.setdefault(f.name.split("-0")[0], []).append(f)
    if not files:
        raise FileNotFoundError(f"no parquet files for config {config!r} under {root}")
    return datasets.DatasetDict(
        {split: datasets.Dataset(pa.concat_tables([pq.read_table(f) for f in fs])) for split, fs in files.items()}
    )
