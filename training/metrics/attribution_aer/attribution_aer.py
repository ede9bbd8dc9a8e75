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
Plausibility of attribution maps for machine translation: links are read from each subword map (per target
piece, then united to words: the literature's piece-argmax-union; or per target word after merging piece scores),
and scored against sure/possible word alignments with AER = 1 - (|A & S| + |A & P|) / (|A| + |S|), P taken as
S | P (Och & Ney 2003).
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
    merge: "sum", "max" or "union": how pieces become words. "sum" / "max" merge |piece scores| into word scores
        (columns first, then rows) and extract links between words; "union" extracts links between PIECES (per
        target piece over the source pieces) and links two words when any of their pieces are linked: the
        literature's convention for subword maps (Chen et al. 2020, Zenkel et al. 2020's lilt/alignment-scripts,
        SimAlign's token_type="bpe"), "piece-argmax-union" with extraction="argmax".
    extraction: "argmax" (the best source word, or piece under "union", per target word or piece), "threshold"
        (every source word/piece whose share of the normalised row is >= threshold), or "argmax_null" (the argmax
        over the source AND a NULL column made of the dropped source pieces, -1 ids such as `</s>`: a row whose
        argmax is NULL gives no link, the NULL convention of statistical aligners).
    threshold: for "threshold"; None = 1 / (number of columns), i.e. more than an equal share.
    shift: 0 = "output" reading (row t is the step whose output is target piece t); 1 = "input" reading
        (target piece t takes row t + 1, the step whose decoder input it is; pieces without such row are dropped).
    source_lengths, target_lengths: per sentence its number of words (None: the largest word id + 1), so that a
        word without any piece still counts (a gold link to it is a miss, not an error).
Raises:
    ValueError when a sentence's word ids do not fit its map (target_word_ids not one per row, source_word_ids not
    one per column of the widest row, an id >= its length) or a reference link points past the word grid (a
    reference indexed source-first, or against other words).
Returns:
    aer, precision (|A & P| / |A|), recall (|A & S| / |S|), n_sentences, and sentence_counts:
    per sentence [|A & S|, |A & P|, |A|, |S|] so that a caller can bootstrap the corpus AER over sentences.
Examples:
    >>> metric = evaluate.load("agkd/attribution_aer")
    >>> metric.compute(predictions=[[[0.9, 0.1], [0.2, 0.8]]], references=["1-1 2-2"])["aer"]
    0.0
    >>> one_row = {"predictions": [[[0.40, 0.15, 0.15, 0.15, 0.05]]], "references": ["1-1"],
    ...            "source_word_ids": [[0, 1, 1, 1, -1]], "target_word_ids": [[0]]}  # source: a 1-piece, a 3-piece word
    >>> metric.compute(**one_row, merge="sum")["aer"]  # summed, the 3-piece word wins (0.45 > 0.40)
    1.0
    >>> metric.compute(**one_row, merge="union")["aer"]  # the literature's piece-argmax-union
    0.0
"""

MERGES = ("sum", "max", "union")  # "union": links read between pieces, then words linked when any pieces are
EXTRACTIONS = ("argmax", "threshold", "argmax_null")
NULL_EXTRACTION = "argmax_null"  # the argmax may fall on the dropped (-1) source pieces: then the row has no link
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


def _word_count(ids: np.ndarray, length: int | None, side: str) -> int:
    """The number of words of one side: `length` when given, else the largest word id + 1; ids must fit it."""
    count = (int(ids.max()) + 1 if len(ids) else 0) if length is None else int(length)
    if len(ids) and (ids.min() < -1 or ids.max() >= count):
        raise ValueError(f"{side}_word_ids {ids.tolist()} do not fit {count} {side} words (ids are 0-based, -1 drops)")
    return count


def piece_grid(
    attribution: list[list[float]],
    source_word_ids: list[int] | None = None,
    target_word_ids: list[int] | None = None,
    shift: int = 0,
    source_length: int | None = None,
    target_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """|piece scores| of the rows read [target pieces with a row, source pieces], those pieces' target word ids, the
    source pieces' word ids, and the word grid (target words, source words).

    |value| is taken: the stored maps are norms (non-negative), but a signed map's importance is its magnitude, and a
    negative score must not cancel a positive one inside a word. Word ids that do not fit the map are refused.
    """
    if shift not in (0, 1):
        raise ValueError(f"shift must be 0 (output reading) or 1 (input reading), got {shift!r}")
    n_rows = len(attribution)
    width = max((len(row) for row in attribution), default=0)
    target_ids = np.arange(n_rows) if target_word_ids is None else np.asarray(target_word_ids, dtype=int)
    source_ids = np.arange(width) if source_word_ids is None else np.asarray(source_word_ids, dtype=int)
    if len(target_ids) != n_rows:
        raise ValueError(f"target_word_ids has {len(target_ids)} entries, the map {n_rows} rows (one per target piece)")
    if len(source_ids) != width:
        raise ValueError(f"source_word_ids has {len(source_ids)} entries, the map's widest row {width} columns")
    grid = (_word_count(target_ids, target_length, "target"), _word_count(source_ids, source_length, "source"))
    pieces = np.zeros((n_rows, width))
    for t, row in enumerate(attribution):
        pieces[t, : len(row)] = np.abs(np.asarray(row, dtype=float))
    # piece t reads row t + shift; pieces whose row does not exist are dropped
    rows = pieces[shift:]
    return rows, target_ids[: len(rows)], source_ids, grid


def word_scores(
    attribution: list[list[float]],
    source_word_ids: list[int] | None = None,
    target_word_ids: list[int] | None = None,
    merge: str = "sum",
    shift: int = 0,
    null: bool = False,
    source_length: int | None = None,
    target_length: int | None = None,
) -> np.ndarray:
    """Word-level scores [target words, source words] of a piece-level map, merged by "sum" or "max".

    A target word whose pieces have no row (shift 1 at the end) is a row of NaN. `null` appends one column: the
    dropped (-1) source pieces merged the same way (0 when there are none), for the NULL convention.
    """
    if merge not in ("sum", "max"):
        raise ValueError(f"word_scores merges scores by 'sum' or 'max', got {merge!r} ('union' merges links)")
    rows, row_ids, source_ids, (n_target_words, n_source_words) = piece_grid(
        attribution, source_word_ids, target_word_ids, shift, source_length, target_length
    )
    columns = _group(rows, source_ids, n_source_words, merge, axis=1)
    if null:
        dropped = rows[:, source_ids < 0]
        merged = dropped.sum(axis=1) if merge == "sum" else dropped.max(axis=1, initial=0.0)
        columns = np.concatenate([columns, merged[:, None]], axis=1)
    return _group(columns, row_ids, n_target_words, merge, axis=0)


def extract_links(scores: np.ndarray, extraction: str = "argmax", threshold: float | None = None) -> set:
    """0-based (row, column) links from scores; rows that are NaN or all zero give no link. Under "argmax_null" the
    last column is NULL: a row whose argmax falls on it gives no link."""
    if extraction not in EXTRACTIONS:
        raise ValueError(f"extraction must be one of {EXTRACTIONS}, got {extraction!r}")
    links = set()
    n_columns = scores.shape[1] if scores.ndim == 2 else 0
    for t, row in enumerate(scores):
        if n_columns == 0 or np.isnan(row).all() or np.nansum(row) <= 0:
            continue
        row = np.nan_to_num(row, nan=0.0)
        if extraction != "threshold":
            best = int(np.argmax(row))
            if extraction == "argmax" or best < n_columns - 1:
                links.add((t, best))
            continue
        share = row / row.sum()
        cut = 1.0 / n_columns if threshold is None else threshold
        # a tolerance so that an exactly equal share (a flat row) passes whatever rounding the division did
        links.update((t, int(s)) for s in np.flatnonzero(share >= cut - 1e-9))
    return links


def word_links(
    attribution: list[list[float]],
    source_word_ids: list[int] | None = None,
    target_word_ids: list[int] | None = None,
    merge: str = "sum",
    extraction: str = "argmax",
    threshold: float | None = None,
    shift: int = 0,
    source_length: int | None = None,
    target_length: int | None = None,
) -> set:
    """0-based (target word, source word) links read from a piece-level map (see the module's arguments)."""
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
    null = extraction == NULL_EXTRACTION
    if merge != "union":
        scores = word_scores(attribution, source_word_ids, target_word_ids, merge, shift, null, source_length,
                             target_length)
        return extract_links(scores, extraction, threshold)
    rows, row_ids, source_ids, _ = piece_grid(
        attribution, source_word_ids, target_word_ids, shift, source_length, target_length
    )
    rows, row_ids = rows[row_ids >= 0], row_ids[row_ids >= 0]
    kept = np.flatnonzero(source_ids >= 0)
    if null:  # the dropped pieces form the last column (their max: the piece-level argmax may fall on any of them)
        null_column = rows[:, source_ids < 0].max(axis=1, initial=0.0)
        scores = np.concatenate([rows[:, kept], null_column[:, None]], axis=1)
    else:
        scores = rows[:, kept]
    piece_links = extract_links(scores, extraction, threshold)
    return {(int(row_ids[t]), int(source_ids[kept[s]])) for t, s in piece_links}


def check_reference(sure_or_possible: set, grid: tuple[int, int]) -> None:
    """Refuse links that point past the word grid (target words, source words)."""
    outside = sorted((t, s) for t, s in sure_or_possible if t >= grid[0] or s >= grid[1])
    if outside:
        t, s = outside[0]
        raise ValueError(
            f"reference link {t + 1}-{s + 1} (1-based, target first) points past the map's {grid[0]} target x "
            f"{grid[1]} source words: is the reference indexed source-first, or against other words?"
        )


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
        source_lengths=None,
        target_lengths=None,
    ):
        n = len(predictions)
        per_sentence = {"source_word_ids": source_word_ids, "target_word_ids": target_word_ids,
                        "source_lengths": source_lengths, "target_lengths": target_lengths}
        for key, values in per_sentence.items():
            if values is not None and len(values) != n:
                raise ValueError(f"{key} has {len(values)} entries, one per prediction ({n}) expected")
            per_sentence[key] = [None] * n if values is None else values
        counts = []
        for k, (attribution, reference) in enumerate(zip(predictions, references, strict=True)):
            ids = {key: values[k] for key, values in per_sentence.items()}
            sure, possible = parse_links(reference)
            try:
                _, _, _, grid = piece_grid(attribution, ids["source_word_ids"], ids["target_word_ids"], shift,
                                           ids["source_lengths"], ids["target_lengths"])
                check_reference(possible, grid)
            except ValueError as error:
                raise ValueError(f"sentence {k}: {error}") from None
            links = word_links(attribution, ids["source_word_ids"], ids["target_word_ids"], merge, extraction,
                               threshold, shift, ids["source_lengths"], ids["target_lengths"])
            counts.append(aer_counts(links, sure, possible))
        return {**aer(counts), "n_sentences": n, "sentence_counts": counts}
