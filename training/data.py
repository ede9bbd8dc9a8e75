"""Data for the training scripts: tokenised pairs, length-grouped batches, collators.

Every example keeps an `index` (its position in the input), so outputs gathered across processes with
`gather_for_metrics` can be put back in corpus order. Map examples (`map_examples`) are checked against the
teacher's tokenizer before anything is trained, and `MapCollator` pads their maps into `attribution_map`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from agkd.datasets_scripts.teachers import generation_kwargs, load_tokenizer


def tokenize_pairs(
    tokenizer,
    sources: Sequence[str],
    targets: Sequence[str],
    max_length: int,
    *,
    batch_size: int = 1000,
    desc: str = "tokenize",
    disable_progress: bool = False,
) -> list[dict]:
    """Examples `{"index", "input_ids", "labels"}` (lists of ids, truncated to `max_length`); `index` is the
    position in the input, so generated outputs can be put back in order after `gather_for_metrics`."""
    examples: list[dict] = []
    for start in tqdm(range(0, len(sources), batch_size), desc=desc, disable=disable_progress, leave=False):
        enc = tokenizer(
            list(sources[start : start + batch_size]),
            text_target=list(targets[start : start + batch_size]),
            max_length=max_length,
            truncation=True,
        )
        for offset, (ids, labels) in enumerate(zip(enc["input_ids"], enc["labels"], strict=True)):
            examples.append({"index": start + offset, "input_ids": ids, "labels": labels})
    return examples


def length_grouped_batches(
    examples: Sequence[dict], batch_size: int, seed: int, group: int = 64, max_tokens: int | None = None
) -> list[list[dict]]:
    """Split `examples` into batches of similar length (less padding, hence more tokens/s): shuffle with `seed`,
    sort each run of `group * batch_size` examples by source+target length, cut into batches of `batch_size`
    (incomplete last batches are dropped). With `max_tokens`, batches are cut by a token budget instead: as many
    examples as keep the padded batch (examples x (longest source + longest target)) within `max_tokens`, at most
    `batch_size` of them, so short pairs fill a GPU step as long ones do. Feed the list to a shuffling
    `DataLoader(batches, batch_size=1, collate_fn=Seq2SeqCollator)`: the batches are fixed once, their order changes
    every epoch (and is restored on resume)."""
    import random

    def length(i: int) -> tuple[int, int]:
        return len(examples[i]["input_ids"]), len(examples[i]["labels"])

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    batches = []
    for start in range(0, len(order), group * batch_size):
        chunk = sorted(order[start : start + group * batch_size], key=lambda i: sum(length(i)))
        if max_tokens is None:
            batches += [
                [examples[i] for i in chunk[b : b + batch_size]]
                for b in range(0, len(chunk) - batch_size + 1, batch_size)
            ]
            continue
        current, longest = [], (0, 0)
        for i in chunk:
            grown = (max(longest[0], length(i)[0]), max(longest[1], length(i)[1]))
            if current and (len(current) == batch_size or (len(current) + 1) * sum(grown) > max_tokens):
                batches.append([examples[j] for j in current])
                current, grown = [], length(i)
            current.append(i)
            longest = grown
        if current:
            batches.append([examples[j] for j in current])
    return batches


@dataclass
class Seq2SeqCollator:
    """Pads `input_ids` with `pad_token_id` and `labels` with -100 (ignored by the loss); builds `attention_mask`
    and keeps `index` as a tensor. Extra keys with per-example tensors are stacked as they are."""

    pad_token_id: int
    label_pad_token_id: int = -100

    def __call__(self, examples: list[dict] | list[list[dict]]) -> dict[str, torch.Tensor]:
        if examples and isinstance(examples[0], list):  # one pre-built batch from `length_grouped_batches`
            examples = [e for batch in examples for e in batch]

        def pad(seqs, value):
            width = max(len(s) for s in seqs)
            return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)

        batch = {
            "input_ids": pad([e["input_ids"] for e in examples], self.pad_token_id),
            "index": torch.tensor([e["index"] for e in examples], dtype=torch.long),
        }
        batch["attention_mask"] = (batch["input_ids"] != self.pad_token_id).long()
        for i, e in enumerate(examples):  # a real pad id inside a sequence would be masked: keep its true length
            batch["attention_mask"][i, : len(e["input_ids"])] = 1
        if "labels" in examples[0]:
            batch["labels"] = pad([e["labels"] for e in examples], self.label_pad_token_id)
        return batch


def load_teacher_tokenizer(teacher: str, family: str, pair: str):
    """The teacher's tokenizer (mBART: with the pair's language codes) and the ids a student must share with it:
    the decoder start token, and for mBART the target language code forced as the first generated token."""
    from transformers import AutoConfig

    tokenizer = load_tokenizer(family, pair, teacher)
    config = AutoConfig.from_pretrained(teacher)
    return tokenizer, config, generation_kwargs(family, tokenizer).get("forced_bos_token_id")


def map_examples(rows, tokenizer, max_length: int, desc: str) -> tuple[list[dict], int]:
    """Examples `{index, input_ids, labels, attribution}` from attribution rows, checked against the tokenizer.

    Raises a ValueError naming the first row whose stored ids differ from the tokenizer's, or whose map shape
    differs from the tokenised lengths. Pairs longer than `max_length` are skipped and counted."""
    examples, skipped = [], 0
    columns = rows.select_columns(["id", "source", "target", "source_ids", "target_ids", "attribution"])
    for start in tqdm(range(0, len(columns), 512), desc=desc, leave=False, dynamic_ncols=True):
        chunk = columns[start : start + 512]
        encoded = tokenizer(chunk["source"], text_target=chunk["target"])
        for offset in range(len(chunk["id"])):
            row_id = chunk["id"][offset]
            source_ids, target_ids = chunk["source_ids"][offset], chunk["target_ids"][offset]
            if list(source_ids) != encoded["input_ids"][offset] or list(target_ids) != encoded["labels"][offset]:
                raise ValueError(
                    f"{desc}: example {row_id!r} (row {start + offset}) has token ids that differ from the tokenizer's "
                    "for its texts: the map dataset was made with another tokenizer than the teacher given"
                )
            attribution = np.asarray(chunk["attribution"][offset], dtype=np.float32)
            if attribution.shape != (len(target_ids), len(source_ids)):
                raise ValueError(
                    f"{desc}: example {row_id!r} (row {start + offset}) has a map of shape {attribution.shape}, but "
                    f"{len(target_ids)} target x {len(source_ids)} source tokens"
                )
            if len(source_ids) > max_length or len(target_ids) > max_length:
                skipped += 1
                continue
            examples.append(
                {"index": len(examples), "input_ids": source_ids, "labels": target_ids, "attribution": attribution}
            )
    return examples, skipped


@dataclass
class MapCollator(Seq2SeqCollator):
    """`Seq2SeqCollator` plus `attribution_map` `[B, T, S]` (zero padded) and `attribution_map_mask` `[B, T]`.

    `T` is the longest map of the batch, which need not be the labels' length: at test time a map of one target
    (the teacher's translation) can be injected while the student is forced on another (the reference); a decoder
    position beyond a map's last row gets no injection, as in generation."""

    with_maps: bool = True

    def __call__(self, examples: list[dict] | list[list[dict]]) -> dict[str, torch.Tensor]:
        if examples and isinstance(examples[0], list):
            examples = [e for batch in examples for e in batch]
        batch = super().__call__(examples)
        if self.with_maps:
            map_rows = max(e["attribution"].shape[0] for e in examples)
            maps = torch.zeros(len(examples), map_rows, batch["input_ids"].shape[1])
            rows = torch.zeros(maps.shape[:2], dtype=torch.bool)
            for i, example in enumerate(examples):
                target_length, source_length = example["attribution"].shape
                maps[i, :target_length, :source_length] = torch.from_numpy(example["attribution"])
                rows[i, :target_length] = True
            batch["attribution_map"], batch["attribution_map_mask"] = maps, rows
        return batch
