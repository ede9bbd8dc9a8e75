"""AOPC of attribution maps against a random order: deletion (comprehensiveness) and insertion (sufficiency).

Self-contained (numpy, datasets, evaluate): the same file is the Hub metric and what AGKD imports, so the pure
functions at module level are the one implementation of the scores.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """\
Area over the perturbation curve (AOPC) of feature-attribution maps of a translation model, relative to a random
order of the same source tokens. Per sentence and target token t the caller measures the model's log p(y_t) with the
top-k attributed source tokens removed (deletion) or with only them kept (insertion), for each fraction k, and the
same for a random order of the row. Both scores are in nats and HIGHER = MORE FAITHFUL:

- `deletion` (comprehensiveness): mean over k of the log p(y_t) drop from the full input when the map's top-k are
  removed, minus the same drop for the random order's top-k, i.e. mean_k [log p_random_del(k) - log p_del(k)];
- `insertion` (sufficiency): mean over k of how far log p(y_t) stays below the full input when only the map's top-k
  are kept, subtracted from the same for the random order, i.e. mean_k [log p_ins(k) - log p_random_ins(k)].

A random order scores 0 in expectation. Per sentence values are means over its scored target tokens (`scored`: by
default all; AGKD leaves out rows whose label is a special token such as `</s>` or a forced language code, whose
curves are NaN), for a bootstrap by the caller; corpus values are means over sentences. `source_effect` (full minus
fully removed log p, averaged the same way) says how much the source moves the prediction at all: the scale against
which the AOPC values read.
"""

_KWARGS_DESCRIPTION = """\
Args (one entry per sentence; T target tokens, K fractions):
    full: [T] log p(y_t) on the full source.
    empty: [T] log p(y_t) with every source token except `</s>` removed.
    deletion: [T][K] log p(y_t) with the top-k attributed source tokens of row t removed.
    insertion: [T][K] log p(y_t) with only the top-k attributed source tokens of row t kept.
    random_deletion: [T][K] as deletion, for a random order of row t.
    random_insertion: [T][K] as insertion, for a random order of row t.
    scored (optional): [T] booleans, the target tokens that enter the means (default: every one); the curves of the
        others are ignored (they may be NaN).
Returns:
    deletion, insertion, source_effect: corpus means over sentences (nats);
    deletion_per_sentence, insertion_per_sentence, source_effect_per_sentence: lists of per-sentence means.
Examples:
    >>> aopc = evaluate.load("agkd/attribution_aopc")
    >>> aopc.compute(full=[[-1.0]], empty=[[-5.0]], deletion=[[[-4.0]]], insertion=[[[-1.5]]],
    ...              random_deletion=[[[-2.0]]], random_insertion=[[[-3.0]]])["deletion"]
    2.0
"""

_CITATION = """\
@inproceedings{deyoung-etal-2020-eraser,
  title = {{ERASER}: A Benchmark to Evaluate Rationalized {NLP} Models},
  author = {DeYoung, Jay and Jain, Sarthak and Rajani, Nazneen Fatema and Lehman, Eric and Xiong, Caiming and
            Socher, Richard and Wallace, Byron C.},
  booktitle = {Proceedings of ACL},
  year = {2020}
}
"""

CURVE_FIELDS = ("deletion", "insertion", "random_deletion", "random_insertion")


def sentence_scores(full, empty, deletion, insertion, random_deletion, random_insertion, scored=None) -> dict:
    """One sentence's AOPC deletion and insertion against the random order, and its source effect (nats), over the
    target tokens in `scored` ([T] booleans; None: every one)."""
    full, empty = np.asarray(full, dtype=np.float64), np.asarray(empty, dtype=np.float64)
    curves = {
        name: np.asarray(value, dtype=np.float64)
        for name, value in zip(CURVE_FIELDS, (deletion, insertion, random_deletion, random_insertion), strict=True)
    }
    for name, curve in curves.items():
        if curve.ndim != 2 or curve.shape[0] != full.shape[0]:
            raise ValueError(f"{name}: expected [T={full.shape[0]}][K], got shape {curve.shape}")
    keep = np.ones(full.shape[0], dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    if keep.shape != full.shape or not keep.any():
        raise ValueError(f"scored: expected [T={full.shape[0]}] booleans with at least one True, got {scored}")
    return {
        "deletion": float((curves["random_deletion"] - curves["deletion"])[keep].mean()),
        "insertion": float((curves["insertion"] - curves["random_insertion"])[keep].mean()),
        "source_effect": float((full - empty)[keep].mean()),
    }


def aopc_scores(full, empty, deletion, insertion, random_deletion, random_insertion, scored=None) -> dict:
    """Corpus means and per-sentence values of every sentence's `sentence_scores` (arguments: one entry each;
    `scored` None: every target token of every sentence)."""
    columns = (full, empty, deletion, insertion, random_deletion, random_insertion)
    scored = [None] * len(full) if scored is None else scored
    per = [sentence_scores(*args, scored=keep) for *args, keep in zip(*columns, scored, strict=True)]
    if not per:
        raise ValueError("no sentences")
    out = {}
    for key in ("deletion", "insertion", "source_effect"):
        values = [p[key] for p in per]
        out[key] = float(np.mean(values))
        out[f"{key}_per_sentence"] = values
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AttributionAOPC(evaluate.Metric):
    """The Hub metric around `aopc_scores`."""

    def _info(self):
        matrix = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
        vector = datasets.Sequence(datasets.Value("float64"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"full": vector, "empty": vector, **{name: matrix for name in CURVE_FIELDS}}
            ),
            reference_urls=["https://aclanthology.org/2020.acl-main.408/"],
        )

    def _compute(self, full, empty, deletion, insertion, random_deletion, random_insertion, scored=None):
        return aopc_scores(full, empty, deletion, insertion, random_deletion, random_insertion, scored=scored)
