"""Tiny trained teachers for tests: a Marian (MarianTokenizer, two sentencepiece models) and an mBART-50-style model
(MBart50Tokenizer), both trained for a few hundred steps on the toy de-en corpus so that value zeroing and attention
are not degenerate (random weights give all-zero value-zeroing maps, see research/inseq.md).

Both are saved as standard Hub folders loadable by `AutoModelForSeq2SeqLM` / `AutoTokenizer`. Import the fixtures
from a test module (`from tests.tiny_teachers import tiny_marian_dir, tiny_mbart_dir`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import toy_pairs

TRAIN_STEPS = 200
PAIR = "de-en"


def _train_spm(lines: list[str], prefix: Path, vocab_size: int, **ids) -> None:
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
        num_threads=1,
        **ids,
    )


def _train(model, tokenizer, rows: list[dict], steps: int, seed: int) -> float:
    """Plain teacher-forced cross-entropy training; returns the last loss."""
    import torch

    torch.manual_seed(seed)
    # One thread: on a shared 2-core machine two threads under contention are many times slower (research/inseq.md).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    loss = None
    for _ in range(steps):
        batch = rng.sample(rows, 32)
        enc = tokenizer(
            [r["source"] for r in batch], text_target=[r["target"] for r in batch], padding=True, return_tensors="pt"
        )
        enc["labels"][enc["labels"] == tokenizer.pad_token_id] = -100
        loss = model(**enc).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    torch.set_num_threads(threads)
    return float(loss.detach())


def build_tiny_marian(out: Path, steps: int = TRAIN_STEPS, seed: int = 0) -> Path:
    """A Marian de->en teacher in the opus-mt layout: source.spm, target.spm, vocab.json (</s>=0, <unk>=1, <pad>=last)."""
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    out.mkdir(parents=True, exist_ok=True)
    rows = toy_pairs(PAIR, 520, seed=len(PAIR))[:400]
    for side, key in (("source", "source"), ("target", "target")):
        _train_spm([r[key] for r in rows], out / side, 60, bos_id=-1, eos_id=2, unk_id=1, pad_id=-1)
        (out / f"{side}.model").rename(out / f"{side}.spm")
        (out / f"{side}.vocab").unlink()
    import sentencepiece as spm

    pieces: list[str] = ["</s>", "<unk>"]
    for side in ("source", "target"):
        sp = spm.SentencePieceProcessor(model_file=str(out / f"{side}.spm"))
        pieces += [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.id_to_piece(i) not in pieces]
    pieces = [p for p in pieces if p not in ("<s>",)] + ["<pad>"]
    (out / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(pieces)}, ensure_ascii=False))
    tok = MarianTokenizer(
        str(out / "source.spm"), str(out / "target.spm"), str(out / "vocab.json"), source_lang="de", target_lang="en"
    )
    pad = tok.pad_token_id
    config = MarianConfig(
        vocab_size=len(pieces),
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_position_embeddings=128,
        pad_token_id=pad,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=pad,
        forced_eos_token_id=tok.eos_token_id,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        dropout=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    _train(model, tok, rows, steps, seed)
    model.generation_config.max_length = 64
    model.generation_config.num_beams = 1
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_mbart(out: Path, steps: int = TRAIN_STEPS, seed: int = 0) -> Path:
    """An mBART-50-style de->en teacher: MBart50Tokenizer with language codes, `</s>` as decoder start."""
    import sentencepiece as spm
    import torch
    from transformers import MBart50Tokenizer, MBartConfig, MBartForConditionalGeneration

    out.mkdir(parents=True, exist_ok=True)
    rows = toy_pairs(PAIR, 520, seed=len(PAIR))[:400]
    work = out / "_spm"
    work.mkdir()
    _train_spm([r["source"] for r in rows] + [r["target"] for r in rows], work / "spm", 100)
    sp = spm.SentencePieceProcessor(model_file=str(work / "spm.model"))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = MBart50Tokenizer(vocab=vocab, src_lang="de_DE", tgt_lang="en_XX")
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    config = MBartConfig(
        vocab_size=len(tok),
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,
        forced_eos_token_id=tok.eos_token_id,
        scale_embedding=True,
        dropout=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    model = MBartForConditionalGeneration(config)
    _train(model, tok, rows, steps, seed)
    model.generation_config.forced_bos_token_id = tok.convert_tokens_to_ids("en_XX")
    model.generation_config.max_length = 64
    model.generation_config.num_beams = 1
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_marian_dir(tmp_path_factory) -> Path:
    return build_tiny_marian(tmp_path_factory.mktemp("teachers") / "tiny-marian-de-en")


@pytest.fixture(scope="session")
def tiny_mbart_dir(tmp_path_factory) -> Path:
    return build_tiny_mbart(tmp_path_factory.mktemp("teachers") / "tiny-mbart")
