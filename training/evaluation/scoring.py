"""Every figure a result carries: BLEU/chrF of translations, teacher-forced simulation metrics, their paired
bootstrap against a baseline, intervals across seeds, and an Attributor's fidelity to the teacher's maps.

BLEU and chrF are sacrebleu corpus scores of detokenised hypotheses against the raw reference strings, with their
signatures kept.

Corpus BLEU cannot see small differences between weak students; a forced decode can. For every sentence the
student is teacher-forced on a target (the reference, or the teacher's own translation: simulatability, as in the
simulation literature) with exactly the map injection of the result row's protocol, and two per-sentence sums are
kept: the negative log-likelihood of the target tokens (nats) and how many of them are the student's top-1
prediction. Corpus figures are ratios of sums (nats per token, share of tokens), so a paired bootstrap resamples
sentences and recomputes both ratios exactly, like sacrebleu's paired bootstrap for BLEU.

`PRIMARY_METRIC` carries the verdict. It is fixed here, in code, before any result is read: the token NLL of the
reference is a proper scoring rule (it rewards probability on every reference token, not only the argmax, so it
moves before BLEU or agreement do), it is measured on the same targets the students are trained on and BLEU scores,
and it does not depend on decoding choices (beam size, length) that could favour one map over another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from agkd.modeling.attribution_injection import attribution_rows_to_distributions


@dataclass(frozen=True)
class Metric:
    """A teacher-forced metric: which target the student is forced on, and what is measured per token."""

    target: str  # "reference" or "teacher"
    statistic: str  # "nll" (nats per token) or "agreement" (share of tokens that are the student's top-1)
    description: str

    @property
    def higher_is_better(self) -> bool:
        return self.statistic == "agreement"


METRICS: dict[str, Metric] = {
    "nll_reference": Metric("reference", "nll", "token NLL of the reference (nats per token, lower is better)"),
    "agreement_reference": Metric("reference", "agreement", "top-1 agreement with the reference tokens"),
    "nll_teacher": Metric("teacher", "nll", "token NLL of the teacher's own translation (nats per token)"),
    "agreement_teacher": Metric("teacher", "agreement", "top-1 agreement with the teacher's translation tokens"),
}
PRIMARY_METRIC = "nll_reference"
FORCED_TARGETS = ("reference", "teacher")


def improvement(metric: str, delta: float) -> float:
    """A delta (student - baseline) turned into a gain: positive means the student is better on `metric`."""
    if metric in METRICS:
        return delta if METRICS[metric].higher_is_better else -delta
    return delta  # BLEU, chrF: higher is better


# ================================================================================================ per-sentence sums
@dataclass
class TokenStatistics:
    """Per-sentence sums of a forced decode, in evaluation-set order: `nll` (nats), `correct` (top-1 hits) and
    `tokens` (target tokens scored, final `</s>` included)."""

    nll: np.ndarray
    correct: np.ndarray
    tokens: np.ndarray

    def corpus(self) -> dict[str, float]:
        return simulation().corpus_ratios(self.nll, self.correct, self.tokens)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez(f, nll=self.nll, correct=self.correct, tokens=self.tokens)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TokenStatistics:
        with np.load(path) as data:
            return cls(data["nll"], data["correct"], data["tokens"])


def sentence_statistics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed NLL, top-1 hits and token counts per sentence from logits `[B, T, V]` and labels `[B, T]` (-100 = pad).

    The log-softmax runs one sentence at a time so that memory stays flat with large vocabularies."""
    nll, correct = [], []
    mask = labels != -100
    safe = labels.clamp(min=0)
    for i in range(logits.shape[0]):
        log_probs = torch.log_softmax(logits[i].float(), dim=-1)
        token_nll = -log_probs.gather(-1, safe[i, :, None])[:, 0]
        nll.append((token_nll * mask[i]).sum())
        correct.append(((log_probs.argmax(-1) == labels[i]) & mask[i]).sum())
    return torch.stack(nll).double(), torch.stack(correct).long(), mask.sum(-1).long()


@torch.no_grad()
def teacher_forced_statistics(model, dataloader, n_examples: int, attributor=None) -> TokenStatistics:
    """Force `model` on each batch's `labels` and collect per-sentence sums, put back in order by `index`.

    Batches carry `input_ids`, `attention_mask`, `labels`, `index` and, for a map protocol, `attribution_map` and
    `attribution_map_mask`. With `attributor`, the maps are predicted from the source and the forced prefix (the
    decoder inputs), row t for target token t, as in generation with `attributor=`."""
    model.eval()
    nll = np.zeros(n_examples)
    correct = np.zeros(n_examples, dtype=np.int64)
    tokens = np.zeros(n_examples, dtype=np.int64)
    seen = np.zeros(n_examples, dtype=bool)
    for batch in dataloader:
        index = batch.pop("index").cpu().numpy()
        batch = {key: value.to(model.device) for key, value in batch.items()}
        labels = batch["labels"]
        if attributor is not None:
            decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
            batch["attribution_map"] = attributor(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                decoder_input_ids=decoder_input_ids,
            ).attribution
            batch["attribution_map_mask"] = labels != -100
        logits = model(**batch).logits
        sums = sentence_statistics(logits, labels)
        nll[index], correct[index], tokens[index] = (s.cpu().numpy() for s in sums)
        seen[index] = True
    if not seen.all():
        raise RuntimeError(f"forced decoding lost {int((~seen).sum())} of {n_examples} examples")
    return TokenStatistics(nll, correct, tokens)


# ================================================================================================ statistics
def simulation():
    """The `simulation` evaluate module's functions, imported when first used: `import evaluate` (which the module
    needs for its Hub class) costs seconds of start-up in every process that only reads `TokenStatistics`."""
    from agkd.training.metrics.simulation import simulation as module

    return module


# The math of the simulation metrics (corpus ratios, their paired bootstrap, the one-sided p-value) lives in the
# `simulation` evaluate module (training/metrics/simulation), which ships to the Hub; scoring keeps the torch parts.


def paired_bootstrap_tokens(
    system: TokenStatistics, baseline: TokenStatistics, samples: int, seed: int
) -> dict[str, dict]:
    """Paired bootstrap over sentences of system - baseline for token NLL and top-1 agreement (the `simulation`
    module's `paired_bootstrap`): per statistic the observed delta, the 2.5/97.5 percentiles of the resampled deltas
    and a one-sided p-value. Both systems must be scored on the same sentences and targets (same token counts)."""
    return simulation().paired_bootstrap(system, baseline, samples, seed)


# ================================================================================================ translation
@dataclass
class TranslationScores:
    """Corpus BLEU and chrF (sacrebleu) with their signatures, and the hypotheses in corpus order."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    hypotheses: list[str]

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "hypotheses"}


def score_translations(hypotheses: Sequence[str], references: Sequence[str]) -> TranslationScores:
    """sacrebleu corpus BLEU and chrF of detokenised hypotheses against the raw reference strings."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    refs = [list(references)]
    return TranslationScores(
        bleu=bleu.corpus_score(list(hypotheses), refs).score,
        chrf=chrf.corpus_score(list(hypotheses), refs).score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        hypotheses=list(hypotheses),
    )


@torch.no_grad()
def evaluate_translation(
    accelerator,
    model,
    tokenizer,
    dataloader,
    references: Sequence[str],
    generation_kwargs: dict | None = None,
    desc: str = "generate",
) -> TranslationScores:
    """Generate for every batch (each batch carries `index`; other tensors than `labels` are passed to `generate`),
    gather across processes with `gather_for_metrics`,
    restore the corpus order, decode without special tokens and score against `references` (raw strings)."""
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    pad = tokenizer.pad_token_id
    by_index: dict[int, str] = {}
    for batch in tqdm(dataloader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        # Extra per-example tensors of the batch (e.g. `attribution_map`) go to `generate` too.
        extra = {k: v for k, v in batch.items() if k not in ("index", "labels", "input_ids", "attention_mask")}
        generated = unwrapped.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra, **(generation_kwargs or {})
        )
        generated = accelerator.pad_across_processes(generated, dim=1, pad_index=pad)
        generated, index = accelerator.gather_for_metrics((generated, batch["index"]))
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        for i, text in zip(index.tolist(), texts, strict=True):
            by_index[i] = text.strip()
    model.train()
    missing = [i for i in range(len(references)) if i not in by_index]
    if missing:
        raise RuntimeError(f"evaluation lost {len(missing)} of {len(references)} examples (e.g. index {missing[0]})")
    return score_translations([by_index[i] for i in range(len(references))], references)


def paired_bootstrap(
    hypotheses: list[str], baseline: list[str], references: list[str], samples: int, seed: int
) -> dict[str, dict]:
    """Paired bootstrap resampling (Koehn, 2004) of system - baseline for BLEU and chrF.

    Sentence statistics come from sacrebleu, so each resample is an exact corpus score. Returns per metric the
    observed delta, the 2.5/97.5 percentiles of the resampled deltas and a one-sided p-value: the share of
    resamples whose delta does not have the observed sign (with +1 smoothing)."""
    from sacrebleu.metrics import BLEU, CHRF

    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(references), size=(samples, len(references)))
    out = {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        # sacrebleu's own significance tests use these two methods; they are stable across sacrebleu 2.x.
        system_stats = np.asarray(metric._extract_corpus_statistics(hypotheses, [references]))
        baseline_stats = np.asarray(metric._extract_corpus_statistics(baseline, [references]))
        observed = (
            metric._compute_score_from_stats(list(system_stats.sum(0))).score
            - metric._compute_score_from_stats(list(baseline_stats.sum(0))).score
        )
        deltas = np.array(
            [
                metric._compute_score_from_stats(list(system_stats[i].sum(0))).score
                - metric._compute_score_from_stats(list(baseline_stats[i].sum(0))).score
                for i in indices
            ]
        )
        out[name] = {
            "delta": float(observed),
            "ci95": [float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5))],
            "p_value": simulation().one_sided_p_value(observed, deltas),
        }
    return out


# ================================================================================================ Attributor fidelity
FIDELITY_METRICS = ("kl", "top3_overlap", "kendall_tau", "spearman")


def row_fidelity(predicted: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """Agreement of one predicted row with the teacher's row (both distributions over the real source tokens)."""
    from scipy.stats import kendalltau, spearmanr

    eps = 1e-12
    k = min(3, len(teacher))
    metrics = {
        "kl": float(np.sum(np.where(teacher > 0, teacher * (np.log(teacher + eps) - np.log(predicted + eps)), 0.0))),
        "top3_overlap": len(set(np.argsort(-predicted)[:k]) & set(np.argsort(-teacher)[:k])) / k,
    }
    if np.ptp(teacher) > 0 and np.ptp(predicted) > 0 and len(teacher) > 1:
        metrics["kendall_tau"] = float(kendalltau(predicted, teacher).statistic)
        metrics["spearman"] = float(spearmanr(predicted, teacher).statistic)
    return metrics


@torch.no_grad()
def fidelity(accelerator, model, dataloader) -> dict[str, float]:
    """Mean of the row metrics over every real target row of the held-out pairs (rank metrics skip constant rows)."""
    model.eval()
    sums = {name: [0.0, 0] for name in FIDELITY_METRICS}
    for batch in dataloader:
        batch.pop("index", None)
        predicted = model(**batch).attribution
        predicted, teacher_maps, source_mask, row_mask = accelerator.gather_for_metrics(
            (predicted, batch["attribution_map"], batch["attention_mask"], batch["attribution_map_mask"])
        )
        teacher_rows = attribution_rows_to_distributions(teacher_maps.float(), source_mask)
        for b in range(predicted.shape[0]):
            n_source = int(source_mask[b].sum())
            for t in torch.nonzero(row_mask[b]).flatten().tolist():
                for name, value in row_fidelity(
                    predicted[b, t, :n_source].double().cpu().numpy(),
                    teacher_rows[b, t, :n_source].double().cpu().numpy(),
                ).items():
                    if not math.isnan(value):
                        sums[name][0] += value
                        sums[name][1] += 1
    model.train()
    return {name: total / count for name, (total, count) in sums.items() if count} | {"rows": sums["kl"][1]}
