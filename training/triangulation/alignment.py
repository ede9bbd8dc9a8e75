"""Word alignments for the plausibility yardstick: gold sets read from a folder, silver ones from eflomal.

Links follow the project's convention: target word first, 1-based Pharaoh strings (`i-j` sure, `ipj` possible), as
the `attribution_aer` metric reads them.
"""

import hashlib
import json
import logging
import os
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from agkd.training.metrics.attribution_aer.attribution_aer import format_links, parse_links, swap_links

logger = logging.getLogger(__name__)

WORD_START = "\u2581"  # sentencepiece's marker: a piece that starts with it opens a new word


def nfkc(text: str) -> str:
    """The normalisation of Marian's sentencepiece models (nmt_nfkc), applied to whitespace words before matching."""
    return unicodedata.normalize("NFKC", text)


def piece_word_ids(
    tokens: list[str], words: list[str], special_tokens: Iterable[str], normalize: Callable[[str], str] = nfkc
) -> list[int] | None:
    """Per piece its 0-based word id (-1 for special tokens), or None when the pieces do not rebuild `words`.

    A failure is returned rather than repaired so that callers count the skipped sentences.
    """
    special = set(special_tokens)
    ids, rebuilt = [], []
    for token in tokens:
        if token in special:
            ids.append(-1)
            continue
        if token.startswith(WORD_START) or not rebuilt:
            rebuilt.append("")
        rebuilt[-1] += token.removeprefix(WORD_START)
        ids.append(len(rebuilt) - 1)
    if rebuilt != [normalize(word) for word in words]:
        return None
    return ids


@dataclass
class GoldSet:
    """A gold alignment set in the project's convention (target word first, 1-based)."""

    name: str
    sources: list[str]
    targets: list[str]
    links: list[str]
    n_sure: int
    n_possible: int  # |P| with P including S


def gold_text(folder: str | Path, pair: str) -> Path | None:
    """The `<L1>-<L2>.<name>.src-tgt` file of `folder` whose languages are the pair's (in either order), or None."""
    source, target = pair.split("-")
    for text in sorted(Path(folder).glob("*.src-tgt")):
        first, _, second = text.name.removesuffix(".src-tgt").partition(".")[0].partition("-")
        if {first, second} == {source, target}:
            return text
    return None


def read_gold(folder: str | Path, pair: str) -> GoldSet:
    """Read `<L1>-<L2>.<name>.src-tgt` and `.gold` (L1 indexed first) for the project's `src-tgt` pair.

    The gold files index L1 first; the project indexes the target first, so links are swapped when L1 is the source.
    """
    folder = Path(folder)
    source, target = pair.split("-")
    texts = sorted(folder.glob("*.src-tgt"))
    if not texts:
        raise FileNotFoundError(f"{folder}: expected '<L1>-<L2>.<name>.src-tgt' and '.gold' files, found none")
    text = gold_text(folder, pair)
    if text is None:
        found = ", ".join(text.name for text in texts)
        raise FileNotFoundError(
            f"{folder}: no gold set for the pair {pair} (languages {source}, {target}); found {found}"
        )
    languages, _, name = text.name.removesuffix(".src-tgt").partition(".")
    first, _, second = languages.partition("-")
    gold = text.with_suffix(".gold")
    if not gold.exists():
        raise FileNotFoundError(f"{folder}: {text.name} has no links file {gold.name}")
    firsts, seconds = [], []
    for number, line in enumerate(text.read_text(encoding="utf-8").splitlines(), 1):
        sides = line.split(" ||| ")
        if len(sides) != 2:
            raise ValueError(f"{text}:{number}: expected 'L1 tokens ||| L2 tokens'")
        firsts.append(" ".join(sides[0].split()))
        seconds.append(" ".join(sides[1].split()))
    raw = gold.read_text(encoding="utf-8").splitlines()
    if len(raw) != len(firsts):
        raise ValueError(f"{gold}: {len(raw)} lines, {text.name} has {len(firsts)}")
    target_first = first == target
    links = [line.strip() if target_first else swap_links(line) for line in raw]
    sources, targets = (seconds, firsts) if target_first else (firsts, seconds)
    n_sure = n_possible = 0
    for number, (line, src, tgt) in enumerate(zip(links, sources, targets, strict=True), 1):
        sure, possible = parse_links(line)
        n_sure, n_possible = n_sure + len(sure), n_possible + len(possible)
        if any(t >= len(tgt.split()) or s >= len(src.split()) for t, s in possible):
            raise ValueError(f"{gold}:{number}: a link points past the end of its sentence")
    return GoldSet(name, sources, targets, links, n_sure, n_possible)


_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def grow_diag_final_and(forward: set[tuple[int, int]], reverse: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Koehn's grow-diag-final-and of two directional alignments given as (i, j) links in one orientation."""
    alignment = forward & reverse
    union = forward | reverse
    aligned_i = {i for i, _ in alignment}
    aligned_j = {j for _, j in alignment}

    def add(i: int, j: int) -> None:
        alignment.add((i, j))
        aligned_i.add(i)
        aligned_j.add(j)

    grown = True
    while grown:
        grown = False
        for i, j in sorted(alignment):
            for di, dj in _NEIGHBOURS:
                link = (i + di, j + dj)
                if link in union and link not in alignment and (link[0] not in aligned_i or link[1] not in aligned_j):
                    add(*link)
                    grown = True
    for direction in (forward, reverse):
        for i, j in sorted(direction):
            if i not in aligned_i and j not in aligned_j:
                add(i, j)
    return alignment


def _read_pharaoh_0(path: str) -> list[set[tuple[int, int]]]:
    """eflomal's output: one line per sentence of 0-based `i-j` links."""
    with open(path, encoding="utf-8") as handle:
        return [{tuple(map(int, link.split("-"))) for link in line.split()} for line in handle]


def silver_alignments(
    train_pairs: list[tuple[str, str]], eval_pairs: list[tuple[str, str]], cache_dir: Path, seed: int = 0
) -> list[str]:
    """eflomal alignments of `eval_pairs` (source, target), trained jointly with `train_pairs`; target first, 1-based.

    Words are lower-cased whitespace tokens. Forward and reverse models are symmetrised with grow-diag-final-and.
    eflomal seeds its samplers from /dev/urandom and offers no seed: `seed` only names the run in the cache key, so
    the cache is what makes a rerun reproducible (and free). Threads follow OMP_NUM_THREADS.
    """
    import eflomal

    cache_dir = Path(cache_dir)
    key = hashlib.sha256(
        json.dumps({"train": train_pairs, "eval": eval_pairs, "seed": seed, "aligner": "eflomal-gdfa"}).encode()
    ).hexdigest()[:20]
    cached = cache_dir / f"silver-{key}.json"
    if cached.exists():
        logger.info("silver alignments from the cache %s", cached)
        return json.loads(cached.read_text(encoding="utf-8"))
    pairs = list(train_pairs) + list(eval_pairs)
    sources = [" ".join(source.lower().split()) for source, _ in pairs]
    targets = [" ".join(target.lower().split()) for _, target in pairs]
    empty = [number for number, (s, t) in enumerate(zip(sources, targets, strict=True)) if not s or not t]
    if empty:
        raise ValueError(f"eflomal cannot align empty sentences: pairs {empty[:5]} (of train + eval) are empty")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        forward_path, reverse_path = os.path.join(work, "forward"), os.path.join(work, "reverse")
        eflomal.Aligner().align(
            sources, targets, links_filename_fwd=forward_path, links_filename_rev=reverse_path, quiet=True
        )
        forward, reverse = _read_pharaoh_0(forward_path), _read_pharaoh_0(reverse_path)
    logger.info(
        "eflomal aligned %d pairs (%d train + %d eval) in %.1f s",
        len(pairs),
        len(train_pairs),
        len(eval_pairs),
        time.perf_counter() - start,
    )
    offset = len(train_pairs)
    links = []
    for fwd, rev in zip(forward[offset:], reverse[offset:], strict=True):
        # eflomal writes source-first links in both files; the project indexes the target first
        links.append(format_links({(j, i) for i, j in grow_diag_final_and(fwd, rev)}))
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".tmp")
    partial.write_text(json.dumps(links), encoding="utf-8")
    partial.replace(cached)
    return links
