"""A teacher loaded for attribution, and what both extraction engines share about it.

- `Teacher`: the model (eager attention, on one device), its tokenizer (mBART: the pair's language codes from
  `teachers.py`), tokenisation, translation (the `teacher` target kind) and the plain forward-pass probabilities of
  the labels that every engine's maps are self-checked against;
- `make_batch`: teacher-forced right padding of (source ids, labels) pairs, decoder input `[start] + labels[:-1]`;
- `seed_everything`: the seeding of the stochastic methods before each shard (both engines, so gradient_shap's draws
  replay).

The engines themselves are `attribution/inseq_engine.py` and `attribution/fast_engine.py`, behind `engines.attribute`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from agkd.datasets_scripts.teachers import MBART_LANG_CODES

# Max |difference| between the teacher's outputs from token ids and from the embeddings an engine feeds it that counts
# as "equal": the embedding-divisor probes of the fast engine and of the Inseq compatibility layer.
PROBE_TOLERANCE = 1e-4

@dataclass
class PairBatch:
    """Right-padded pairs. `dec_in[i, :T_i] = [start] + labels[i][:-1]`; padding is masked (source) or causal-harmless
    (target), and maps are cut back to each pair's lengths."""

    src: torch.Tensor  # [B, S] source ids
    src_mask: torch.Tensor  # [B, S]
    dec_in: torch.Tensor  # [B, T] decoder input ids
    labels: torch.Tensor  # [B, T] forced tokens
    dec_mask: torch.Tensor  # [B, T]
    src_lens: list[int]
    tgt_lens: list[int]

    def __len__(self) -> int:
        return len(self.src_lens)


def make_batch(model, source_ids: list[list[int]], target_ids: list[list[int]]) -> PairBatch:
    """Teacher-forced batch of the pairs (source ids, labels), on the model's device."""
    cfg = model.config
    device = next(model.parameters()).device
    B, S, T = len(source_ids), max(map(len, source_ids)), max(map(len, target_ids))
    src = torch.full((B, S), cfg.pad_token_id, dtype=torch.long)
    dec = torch.full((B, T), cfg.pad_token_id, dtype=torch.long)
    lab = torch.full((B, T), cfg.pad_token_id, dtype=torch.long)
    src_mask = torch.zeros((B, S), dtype=torch.long)
    dec_mask = torch.zeros((B, T), dtype=torch.long)
    for i, (s, t) in enumerate(zip(source_ids, target_ids, strict=True)):
        src[i, : len(s)] = torch.tensor(s)
        src_mask[i, : len(s)] = 1
        dec[i, : len(t)] = torch.tensor([cfg.decoder_start_token_id, *t[:-1]])
        lab[i, : len(t)] = torch.tensor(t)
        dec_mask[i, : len(t)] = 1
    return PairBatch(
        src.to(device),
        src_mask.to(device),
        dec.to(device),
        lab.to(device),
        dec_mask.to(device),
        [len(s) for s in source_ids],
        [len(t) for t in target_ids],
    )


def seed_everything(seed: int) -> None:
    """Seed random, numpy and torch (the stochastic methods draw from all three)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


LOGITS_PER_CHUNK = 1 << 20  # logits held at once by `label_probs`: 4 MB of float32 whatever the vocabulary


def _label_scores(model, h: torch.Tensor, labels: torch.Tensor, normalise) -> torch.Tensor:
    """normalise(logits)[labels[t]] from decoder states h [N, T, d] (the LM head and Marian/mBART's
    final_logits_bias), projected onto the vocabulary a few positions at a time (at most `LOGITS_PER_CHUNK` logits),
    not [N, T, vocab] at once."""
    head = model.get_output_embeddings()
    bias = getattr(model, "final_logits_bias", None)
    flat_h, flat_labels = h.reshape(-1, h.shape[-1]), labels.reshape(-1)
    rows = max(1, LOGITS_PER_CHUNK // head.weight.shape[0])
    scores = []
    for start in range(0, flat_h.shape[0], rows):
        logits = head(flat_h[start : start + rows])
        if bias is not None:
            logits = logits + bias.to(logits.dtype)
        scores.append(normalise(logits.float()).gather(-1, flat_labels[start : start + rows, None])[:, 0])
    return torch.cat(scores).reshape(labels.shape)


def label_probs(model, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """p(labels[t]) from decoder states h [N, T, d] (`_label_scores` with a float32 softmax)."""
    return _label_scores(model, h, labels, lambda logits: logits.softmax(-1))


def label_log_probs(model, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels[t]) from decoder states h [N, T, d] by log_softmax: finite however small p is, where the log of a
    float32 softmax stops at log(float32 tiny) = -87.3 (the AOPC curves read large drops)."""
    return _label_scores(model, h, labels, lambda logits: logits.log_softmax(-1))


def forced_states(model, batch: PairBatch) -> torch.Tensor:
    """The decoder's last hidden states [B, T, d] of a teacher-forced batch (the input of `label_probs`)."""
    return model.base_model(
        input_ids=batch.src,
        attention_mask=batch.src_mask,
        decoder_input_ids=batch.dec_in,
        decoder_attention_mask=batch.dec_mask,
    ).last_hidden_state


def prob_deviation(engine_probs, model_probs: np.ndarray) -> float:
    """A row's `prob_check`: max |engine probability - plain forward pass probability| over its target tokens."""
    return float(np.abs(np.asarray(engine_probs) - model_probs).max())


class Teacher:
    """The teacher model and its tokenizer (language codes set for mBART), loaded for attribution.

    `inseq_models` and `compat_reports` hold the Inseq engine's wrappers of the model, one per method, and what the
    compatibility layer found for each (see `inseq_engine.inseq_model`)."""

    def __init__(self, path: str, pair: str, device, compat: bool, name: str | None = None):
        from transformers import AutoModelForSeq2SeqLM

        self.path, self.pair, self.device, self.compat = path, pair, device, compat
        self.model = AutoModelForSeq2SeqLM.from_pretrained(path, attn_implementation="eager").to(device).eval()
        self.family = self.model.config.model_type
        self.name = name or self.family
        src, tgt = pair.split("-")
        self.tokenizer_kwargs = {}
        if self.family == "mbart":
            self.tokenizer_kwargs = {"src_lang": MBART_LANG_CODES[src], "tgt_lang": MBART_LANG_CODES[tgt]}
        self.tokenizer = self.load_tokenizer()
        self.generation_kwargs = {}
        if self.family == "mbart":
            code_id = self.tokenizer.convert_tokens_to_ids(self.tokenizer_kwargs["tgt_lang"])
            if code_id == self.tokenizer.unk_token_id:
                raise ValueError(f"tokenizer of {path} has no language code {self.tokenizer_kwargs['tgt_lang']}")
            self.generation_kwargs["forced_bos_token_id"] = code_id
        self.inseq_models: dict[str, object] = {}
        self.compat_reports: dict[str, dict] = {}
        torch.set_grad_enabled(True)

    def load_tokenizer(self):
        """A fresh tokenizer of the teacher with the pair's language codes (a saved one keeps those it was saved
        with)."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.path, **self.tokenizer_kwargs)
        for key, value in self.tokenizer_kwargs.items():
            setattr(tokenizer, key, value)
        return tokenizer

    def tokens(self, ids: list[int]) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(ids)

    def encode(self, source: str, target: str) -> tuple[list[int], list[int]]:
        enc = self.tokenizer(source, text_target=target)
        return list(enc["input_ids"]), list(enc["labels"])

    def translate(self, sources: list[str], max_new_tokens: int, num_beams: int, batch_size: int = 16) -> list[str]:
        out = []
        for i in range(0, len(sources), batch_size):
            enc = self.tokenizer(sources[i : i + batch_size], return_tensors="pt", padding=True).to(self.device)
            with torch.no_grad():
                gen = self.model.generate(
                    **enc, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False, **self.generation_kwargs
                )
            out += self.tokenizer.batch_decode(gen, skip_special_tokens=True)
        return out

    def probabilities(self, source_ids: list[list[int]], target_ids: list[list[int]]) -> list[np.ndarray]:
        """p(labels[t] | source, labels[:t]) from a plain teacher-forced forward pass (`make_batch`); the vocabulary
        projection runs in chunks (`label_probs`), so a 250k-token vocabulary costs no more memory than a small one."""
        batch = make_batch(self.model, source_ids, target_ids)
        with torch.no_grad():
            probs = label_probs(self.model, forced_states(self.model, batch), batch.labels).cpu().numpy()
        return [probs[i, : len(t)] for i, t in enumerate(target_ids)]


__all__ = [
    "PairBatch",
    "Teacher",
    "forced_states",
    "label_log_probs",
    "label_probs",
    "make_batch",
    "prob_deviation",
    "seed_everything",
]
