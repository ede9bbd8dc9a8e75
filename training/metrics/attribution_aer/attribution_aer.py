"""Alignment error rate (AER) of attribution maps against word alignments.

Self-contained (numpy, datasets, evaluate, stdlib): the file is copied to the Hub as a metric repo, and the AGKD
project imports its pure functions from here so that there is one implementation.
"""

import re

import datasets
import evaluate
import numpy as np

_CITATION = """\
@article{och-ney-2003-systematic,
  title = {A Systematic Comparison of Various Statistical Alignment Models},
  author = {Och, Franz Josef and Ney, Hermann},
  journal = {Computational Linguistics},
  volume = {29},
  number = {1},
  pages = {19--51},
  year = {2003}
}
"""

_DESCRIPTION = """\
Plausibility of attribution maps for machine translation: each map is merged from subword pieces to words,
links are extracted per target word, and the links are scored against sure/possible word alignments with
AER = 1 - (|A & S| + |A & P|) / (|A| + |S|), P taken as S | P (Och & Ney 2003).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per sentence a map `attribution[t][s]` (rows: target pieces t = labels[t], columns: source
        pieces s; ragged rows allowed, extra trailing columns are ignored).
    references: per sentence a Pharaoh alignment string, 1-based, TARGET word index first: `i-j` sure,
        `ipj` possible (swap a gold file that indexes the source first before passing it).
    source_word_ids: per sentence, per source piece its word id (0-based) or -1 to drop it (`</s>`, padding,
        language codes). None: the columns are already words.
    target_word_ids: the same for target pieces (rows). None: the rows are already words.
    merge: "sum" or "max": how |piece scores| merge into word scores (columns first, then rows).
    extraction: "argmax" (the best source word per target word) or "threshold" (every source word whose share
        of the normalised word row is >= threshold).
    threshold: for "threshold"; None = 1 / (number of source words), i.e. more than an equal share.
    shift: 0 = "output" reading (row t is the step whose output is target piece t); 1 = "input" reading
        (target piece t takes row t + 1, the step whose decoder input it is; pieces without such row are dropped).
Returns:
    aer, precision (|A & P| / |A|), recall (|A & S| / |S|), n_sentences, and sentence_counts:
    per sentence [|A & S|, |A & P|, |A|, |S|] so that a caller can bootstrap the corpus AER over sentences.
Examples:
    >>> metric = evaluate.load("agkd/attribution_aer")
    >>> metric.compute(predictions=[[[0.9, 0.1], [0.2, 0.8]]], references=["1-1 2-2"])["aer"]
    0.0
"""

MERGES = ("sum", "max")
EXTRACTIONS = ("argmax", "threshold")
_LINK = re.compile(r"^(\d+)([-p])(\d+)$")


def parse_links(alignment: str) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Pharaoh string (1-based, `i-j` sure, `ipj` possible) -> 0-based (sure, possible); possible includes sure."""
    sure, possible = set(), set()
    for token in alignment.split():
        match = _LINK.match(token)
        if match is None:
            raise ValueError(f"not a Pharaoh link (expected 'i-j' or 'ipj', 1-based): {token!r}")
        first, kind, second = int(match.group(1)), match.group(2), int(match.group(3))
        if first < 1 or second < 1:
            raise ValueError(f"Pharaoh links are 1-based here, got {token!r}")
        link = (first - 1, second - 1)
        possible.add(link)
        if kind == "-":
            sure.add(link)
    return sure, possible


def format_links(sure: set[tuple[int, int]], possible: set[tuple[int, int]] = frozenset()) -> str:
    """0-based links -> Pharaoh string (1-based, sorted); a link in both sets is written once, as sure."""
    parts = [f"{i + 1}-{j + 1}" for i, j in sorted(sure)]
    parts += [f"{i + 1}p{j + 1}" for i, j in sorted(set(possible) - set(sure))]
    return " ".join(parts)


def swap_links(alignment: str) -> str:
    """Swap the two indices of every link: the gold files index one language first, the project the target."""
    return " ".join(re.sub(r"^(\d+)([-p])(\d+)$", r"\3\2\1", token) for token in alignment.split())


def _group(values: np.ndarray, ids: np.ndarray, n_groups: int, merge: str, axis: int) -> np.ndarray:
    """Merge slices of `values` along `axis` that share an id >= 0 (ids < 0 are dropped); empty groups are NaN."""
    moved = np.moveaxis(values, axis, 0)
    out = np.full((n_groups,) + moved.shape[1:], np.nan)
    for group in range(n_groups):
        members = moved[ids == group]
        if len(members):
            out[group] = members.sum(axis=0) if merge == "sum" else members.max(axis=0)
    return np.moveaxis(out, 0, axis)


def word_scores(
    attribution: list[list[float]],
    source_word_ids: list[int] | None = None,
    target_word_ids: list[int] | None = None,
    merge: str = "sum",
    shift: int = 0,
) -> np.ndarray:
    """Word-level scores [target words, source words] of a piece-level map.

    |value| is taken first: the stored maps are norms (non-negative), but a signed map's importance is its
    magnitude, and a negative score must not cancel a positive one inside a word. A target word whose pieces have
    no row (shift 1 at the end) is a row of NaN.
    """
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
    if shift not in (0, 1):
        raise ValueError(f"shift must be 0 (output reading) or 1 (input reading), got {shift!r}")
    n_rows = len(attribution)
    target_ids = np.arange(n_rows) if target_word_ids is None else np.asarray(target_word_ids, dtype=int)
    width = max((len(row) for row in attribution), default=0)
    source_ids = np.arange(width) if source_word_ids is None else np.asarray(source_word_ids, dtype=int)
    n_columns = len(source_ids)
    if width < n_columns:
        raise ValueError(f"map rows have {width} columns, fewer than the {n_columns} source pieces")
    pieces = np.zeros((n_rows, n_columns))
    for t, row in enumerate(attribution):
        pieces[t, : min(len(row), n_columns)] = np.abs(np.asarray(row, dtype=float)[:n_columns])
    # piece t reads row t + shift; pieces whose row does not exist are dropped
    rows = pieces[shift:]
    row_ids = target_ids[: len(rows)]
    n_source_words = int(source_ids.max()) + 1 if len(source_ids) else 0
    n_target_words = int(target_ids.max()) + 1 if len(target_ids) else 0
    columns_merged = _group(rows, source_ids, n_source_words, merge, axis=1)
    return _group(columns_merged, row_ids, n_target_words, merge, axis=0)


def extract_links(scores: np.ndarray, extraction: str = "argmax", threshold: float | None = None) -> set:
    """0-based (target word, source word) links from word scores; rows that are NaN or all zero give no link."""
    if extraction not in EXTRACTIONS:
        raise ValueError(f"extraction must be one of {EXTRACTIONS}, got {extraction!r}")
    links = set()
    n_source = scores.shape[1] if scores.ndim == 2 else 0
    for t, row in enumerate(scores):
        if n_source == 0 or np.isnan(row).all() or np.nansum(row) <= 0:
            continue
        row = np.nan_to_num(row, nan=0.0)
        if extraction == "argmax":
            links.add((t, int(np.argmax(row))))
            continue
        share = row / row.sum()
        cut = 1.0 / n_source if threshold is None else threshold
        # a tolerance so that an exactly equal share (a flat row) passes whatever rounding the division did
        links.update((t, int(s)) for s in np.flatnonzero(share >= cut - 1e-9))
    return links


def aer_counts(predicted: set, sure: set, possible: set) -> list[int]:
    """[|A & S|, |A & P|, |A|, |S|] of one sentence, with P taken as S | P."""
    possible = set(possible) | set(sure)
    predicted = set(predicted)
    return [len(predicted & sure), len(predicted & possible), len(predicted), len(sure)]


def aer(sentence_counts: list[list[int]]) -> dict[str, float]:
    """Corpus AER, precision and recall from summed per-sentence counts (NaN where a denominator is zero)."""
    a_s, a_p, a, s = (np.asarray(sentence_counts, dtype=float).reshape(-1, 4).sum(axis=0)).tolist()
    return {
        "aer": 1.0 - (a_s + a_p) / (a + s) if a + s else float("nan"),
        "precision": a_p / a if a else float("nan"),
        "recall": a_s / s if s else float("nan"),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AttributionAer(evaluate.Metric):
    """AER of attribution maps against sure/possible word alignments."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
                    "references": datasets.Value("string"),
                }
            ),
            reference_urls=["https://aclanthology.org/J03-1002/"],
        )

    def _compute(
        self,
        predictions,
        references,
        source_word_ids=None,
        target_word_ids=None,
        merge="sum",
        extraction="argmax",
        threshold=None,
        shift=0,
    ):
        n = len(predictions)
        source_word_ids = [None] * n if source_word_ids is None else source_word_ids
        target_word_ids = [None] * n if target_word_ids is None else target_word_ids
        if len(source_word_ids) != n or len(target_word_ids) != n:
            raise ValueError("source_word_ids and target_word_ids need one entry per prediction")
        counts = []
        for attribution, reference, source_ids, target_ids in zip(
            predictions, references, source_word_ids, target_word_ids, strict=True
        ):
            scores = word_scores(attribution, source_ids, target_ids, merge=merge, shift=shift)
            sure, possible = parse_links(reference)
            counts.append(aer_counts(extract_links(scores, extraction, threshold), sure, possible))
        return {**aer(counts), "n_sentences": n, "sentence_counts": counts}
