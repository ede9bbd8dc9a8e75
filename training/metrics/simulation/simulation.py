"""Teacher-forced simulation metrics of a translation model: token NLL and top-1 agreement, with a paired bootstrap
against a baseline over sentences. An `evaluate` module (AGKD, https://huggingface.co/agkd).

A model is forced on a target (the reference, or a teacher's own translation: simulatability). Per sentence two
sums are kept, the negative log-likelihood of the target tokens (nats) and how many of them are the model's top-1
prediction; corpus figures are ratios of sums (nats per token, share of tokens), so a paired bootstrap resamples
sentences and recomputes both ratios exactly, like sacrebleu's paired bootstrap for BLEU.

The module-level functions are the whole math (numpy only): AGKD's own scoring calls them on per-sentence sums.
"""

from __future__ import annotations

from typing import NamedTuple

import datasets
import evaluate
import numpy as np

_CITATION = """\
@misc{agkd,
  title = {AGKD: evaluating attribution methods for machine translation by what they teach},
  author = {The AGKD team},
  note = {https://huggingface.co/agkd},
}
"""

_DESCRIPTION = """\
Teacher-forced simulation metrics: the token negative log-likelihood (nats per token, lower is better) of a forced
target and the top-1 agreement (share of target tokens that are the model's argmax, higher is better), both ratios
of per-sentence sums over the corpus. With a baseline forced on the same targets, a paired bootstrap over sentences
gives each delta (system - baseline) with a 95% percentile interval and a one-sided p-value.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `int`): per sentence, the model's top-1 token id at each forced target position
        (`logits.argmax(-1)` under teacher forcing, padding removed).
    references (`list` of `list` of `int`): per sentence, the forced target token ids (the labels, final `</s>`
        included, padding removed).
    nll (`list` of `list` of `float`): per sentence, the negative log-likelihood (nats) of each target token
        (`-log_softmax(logits)[t, references[t]]`).
    baseline_predictions (`list` of `list` of `int`, optional): the baseline's top-1 ids on the same targets.
    baseline_nll (`list` of `list` of `float`, optional): the baseline's token NLLs on the same targets; with
        `baseline_predictions` it adds the paired bootstrap.
    bootstrap_samples (`int`, default 1000): bootstrap resamples.
    seed (`int`, default 12345): seed of the resampling.
Returns:
    nll (`float`): nats per target token, sum over sentences / token count.
    agreement (`float`): top-1 hits / token count.
    tokens (`int`), sentences (`int`): what was scored.
    paired_bootstrap (`dict`, with a baseline): per statistic (`nll`, `agreement`) the observed `delta`
        (system - baseline), `ci95` (2.5 and 97.5 percentiles of the resampled deltas) and a one-sided `p_value`.
Examples:
    >>> simulation = evaluate.load("agkd/simulation")
    >>> simulation.compute(predictions=[[5, 7, 2], [9, 2]], references=[[5, 8, 2], [9, 2]],
    ...                    nll=[[0.1, 2.0, 0.3], [0.2, 0.4]])
    {'nll': 0.6, 'agreement': 0.8, 'tokens': 5, 'sentences': 2}
"""


class SentenceSums(NamedTuple):
    """Per-sentence sums of a forced decode, in corpus order: `nll` (nats), `correct` (top-1 hits), `tokens`."""

    nll: np.ndarray
    correct: np.ndarray
    tokens: np.ndarray


def sentence_sums(predictions, references, nll) -> SentenceSums:
    """Per-token inputs (top-1 ids, target ids, token NLLs; one list per sentence) summed per sentence."""
    if not len(predictions) == len(references) == len(nll):
        raise ValueError(
            f"predictions, references and nll hold {len(predictions)}, {len(references)} and {len(nll)} sentences"
        )
    sums, correct, tokens = [], [], []
    for i, (pred, ref, values) in enumerate(zip(predictions, references, nll, strict=True)):
        if not len(pred) == len(ref) == len(values):
            raise ValueError(f"sentence {i}: {len(pred)} predictions, {len(ref)} references and {len(values)} NLLs")
        sums.append(float(np.sum(np.asarray(values, dtype=np.float64))))
        correct.append(int(np.sum(np.asarray(pred, dtype=np.int64) == np.asarray(ref, dtype=np.int64))))
        tokens.append(len(ref))
    return SentenceSums(
        np.asarray(sums, dtype=np.float64), np.asarray(correct, dtype=np.int64), np.asarray(tokens, dtype=np.int64)
    )


def corpus_ratios(nll: np.ndarray, correct: np.ndarray, tokens: np.ndarray) -> dict[str, float]:
    """Corpus figures as ratios of per-sentence sums: nats per token and the share of top-1 hits."""
    total = max(int(tokens.sum()), 1)
    return {"nll": float(nll.sum() / total), "agreement": float(correct.sum() / total)}


def one_sided_p_value(observed: float, deltas: np.ndarray) -> float:
    """One-sided: the share of resamples whose delta does not have the observed sign (+1 smoothing)."""
    against = np.sum(deltas <= 0) if observed > 0 else np.sum(deltas >= 0)
    return float((against + 1) / (len(deltas) + 1))


def paired_bootstrap(system, baseline, samples: int, seed: int) -> dict[str, dict]:
    """Paired bootstrap over sentences of system - baseline for token NLL and top-1 agreement.

    `system` and `baseline` hold per-sentence `nll`, `correct` and `tokens` arrays (a `SentenceSums`, or anything with
    those attributes), forced on the same sentences and targets (same token counts). Returns per statistic the observed
    delta, the 2.5/97.5 percentiles of the resampled deltas and a one-sided p-value."""
    if not np.array_equal(system.tokens, baseline.tokens):
        raise ValueError("paired bootstrap needs both systems forced on the same targets (token counts differ)")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(system.tokens), size=(samples, len(system.tokens)))
    tokens = system.tokens[indices].sum(1).clip(min=1)
    system_ratios = corpus_ratios(system.nll, system.correct, system.tokens)
    baseline_ratios = corpus_ratios(baseline.nll, baseline.correct, baseline.tokens)
    out = {}
    for statistic in ("nll", "agreement"):
        values_s = system.nll if statistic == "nll" else system.correct
        values_b = baseline.nll if statistic == "nll" else baseline.correct
        observed = system_ratios[statistic] - baseline_ratios[statistic]
        deltas = (values_s[indices].sum(1) - values_b[indices].sum(1)) / tokens
        out[statistic] = {
            "delta": float(observed),
            "ci95": [float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5))],
            "p_value": one_sided_p_value(observed, deltas),
        }
    return out


class Simulation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                    "nll": datasets.Sequence(datasets.Value("float64")),
                }
            ),
            homepage="https://huggingface.co/agkd",
            license="apache-2.0",
        )

    def _compute(self, predictions, references, nll, baseline_predictions=None, baseline_nll=None,
                 bootstrap_samples=1000, seed=12345):
        system = sentence_sums(predictions, references, nll)
        result = {**corpus_ratios(*system), "tokens": int(system.tokens.sum()), "sentences": len(system.tokens)}
        if (baseline_predictions is None) != (baseline_nll is None):
            raise ValueError("the paired bootstrap needs both baseline_predictions and baseline_nll")
        if baseline_predictions is not None:
            baseline = sentence_sums(baseline_predictions, references, baseline_nll)
            result["paired_bootstrap"] = paired_bootstrap(system, baseline, bootstrap_samples, seed)
        return result
