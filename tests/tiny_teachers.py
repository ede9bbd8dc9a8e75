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


def _train_spm(lines: list[str], vocab_size: int, **ids) -> bytes:
    """A unigram sentencepiece model, serialised (written through `model_writer`: it records no path of this machine,
    as `train_teacher.train_sentencepiece`)."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
        num_threads=1,
        **ids,
    )
    return model.getvalue()


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


TINY_DIMS = {"d_model": 64, "layers": 2, "heads": 4, "ffn": 128}


def _toy_rows() -> list[dict]:
    return toy_pairs(PAIR, 520, seed=len(PAIR))[:400]


def _padded_pieces(pieces: list[str], size: int) -> list[str]:
    """`pieces` followed by never-matched filler pieces up to `size` entries."""
    return pieces + [f"▁agkdfiller{i}" for i in range(size - len(pieces))]


def _marian_tokenizer(out: Path, rows: list[dict], vocab_size: int | None = None):
    """A MarianTokenizer in the opus-mt layout written to `out`: source.spm, target.spm, vocab.json (</s>=0, <unk>=1,
    <pad>=last), filled up to `vocab_size` entries if given."""
    import sentencepiece as spm
    from transformers import MarianTokenizer

    pieces = ["</s>", "<unk>"]
    for side in ("source", "target"):
        (out / f"{side}.spm").write_bytes(
            _train_spm([r[side] for r in rows], 60, bos_id=-1, eos_id=2, unk_id=1, pad_id=-1)
        )
        sp = spm.SentencePieceProcessor(model_file=str(out / f"{side}.spm"))
        pieces += [p for p in (sp.id_to_piece(i) for i in range(sp.get_piece_size())) if p not in pieces and p != "<s>"]
    vocab = (_padded_pieces(pieces, vocab_size - 1) if vocab_size else pieces) + ["<pad>"]
    (out / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(vocab)}, ensure_ascii=False))
    return MarianTokenizer(str(out / "source.spm"), str(out / "target.spm"), str(out / "vocab.json"),
                           source_lang="de", target_lang="en", separate_vocabs=False)


def _mbart_tokenizer(rows: list[dict], spm_pieces: int | None = None):
    """An MBart50Tokenizer (de_DE -> en_XX) over one sentencepiece model of both sides, filled up to `spm_pieces`
    pieces if given (so the language codes sit at the real checkpoint's ids)."""
    import sentencepiece as spm
    from transformers import MBart50Tokenizer

    sp = spm.SentencePieceProcessor(
        model_proto=_train_spm([r["source"] for r in rows] + [r["target"] for r in rows], 100)
    )
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    if spm_pieces:
        vocab += [(p, -100.0) for p in _padded_pieces([p for p, _ in vocab], spm_pieces)[len(vocab):]]
    return MBart50Tokenizer(vocab=vocab, src_lang="de_DE", tgt_lang="en_XX")


def _untrained_teacher(family: str, tokenizer, dims: dict, seed: int, **config):
    """A Marian or mBART-50-style model of `dims` wired to `tokenizer`'s special tokens (Marian starts decoding from
    `<pad>`, mBART from `</s>` and forces `en_XX`); `config` adds or overrides config fields."""
    import torch
    from transformers import MarianConfig, MarianMTModel, MBartConfig, MBartForConditionalGeneration

    config = dict(
        d_model=dims["d_model"], encoder_layers=dims["layers"], decoder_layers=dims["layers"],
        encoder_attention_heads=dims["heads"], decoder_attention_heads=dims["heads"], encoder_ffn_dim=dims["ffn"],
        decoder_ffn_dim=dims["ffn"], pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id, scale_embedding=True, dropout=0.0, attention_dropout=0.0, **config,
    )
    torch.manual_seed(seed)
    if family == "marian":
        return MarianMTModel(
            MarianConfig(
                vocab_size=tokenizer.vocab_size,
                decoder_start_token_id=tokenizer.pad_token_id,
                share_encoder_decoder_embeddings=True,
                **config,
            )
        )
    if family == "mbart":
        config = {"bos_token_id": tokenizer.bos_token_id, **config}
        model = MBartForConditionalGeneration(MBartConfig(vocab_size=len(tokenizer),
                                                          decoder_start_token_id=tokenizer.eos_token_id, **config))
        model.generation_config.forced_bos_token_id = tokenizer.convert_tokens_to_ids("en_XX")
        return model
    raise ValueError(f"no teacher builder for family {family!r}")


def _save(model, tokenizer, out: Path) -> Path:
    model.generation_config.max_length = 64
    model.generation_config.num_beams = 1
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_teacher(out: Path, family: str, steps: int = TRAIN_STEPS, seed: int = 0) -> Path:
    """A trained de->en teacher: `marian` in the opus-mt layout, `mbart` mBART-50-style (MBart50Tokenizer with
    language codes, `</s>` as decoder start)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = _toy_rows()
    tokenizer = _marian_tokenizer(out, rows) if family == "marian" else _mbart_tokenizer(rows)
    model = _untrained_teacher(family, tokenizer, TINY_DIMS, seed, max_position_embeddings=128)
    _train(model, tokenizer, rows, steps, seed)
    return _save(model, tokenizer, out)


def build_untrained_teacher(out: Path, family: str = "marian", seed: int = 0) -> Path:
    """A de->en teacher of the tiny size with random weights, saved with plain `save_pretrained` (no
    `all_results.json`): a model that does not translate, built in seconds."""
    out.mkdir(parents=True, exist_ok=True)
    rows = _toy_rows()
    tokenizer = _marian_tokenizer(out, rows) if family == "marian" else _mbart_tokenizer(rows)
    return _save(_untrained_teacher(family, tokenizer, TINY_DIMS, seed, max_position_embeddings=128), tokenizer, out)


@pytest.fixture(scope="session")
def untrained_marian_dir(tmp_path_factory) -> Path:
    return build_untrained_teacher(tmp_path_factory.mktemp("teachers") / "untrained-marian-de-en", "marian")


@pytest.fixture(scope="session")
def tiny_marian_dir(tmp_path_factory) -> Path:
    return build_tiny_teacher(tmp_path_factory.mktemp("teachers") / "tiny-marian-de-en", "marian")


@pytest.fixture(scope="session")
def tiny_mbart_dir(tmp_path_factory) -> Path:
    return build_tiny_teacher(tmp_path_factory.mktemp("teachers") / "tiny-mbart", "mbart")


@pytest.fixture(scope="module")
def tiny_marian_teacher(tiny_marian_dir):
    """The tiny Marian loaded for attribution (`Teacher`, de-en, CPU)."""
    from agkd.datasets_scripts.attribution.teacher import Teacher

    return Teacher(str(tiny_marian_dir), PAIR, "cpu", compat=True)


def encoded_test_rows(teacher, n: int) -> list[dict]:
    """The first `n` test pairs of the toy corpus as attribution rows (id, texts, target kind, the teacher's ids)."""
    rows = []
    for pair in toy_pairs(PAIR, 520, seed=2)[440 : 440 + n]:  # pairs 440-519 are the toy corpus's test split
        source_ids, target_ids = teacher.encode(pair["source"], pair["target"])
        rows.append({**pair, "target_kind": "reference", "source_ids": source_ids, "target_ids": target_ids})
    return rows


# ================================================================================================ lookalikes
# The layouts of the real Hub teachers with tiny (untrained) weights: the real tokenizer classes, special-token ids,
# activation functions and vocabulary sizes, so the paths that depend on them (Inseq's and the fast engine's rules for
# an activation, memory that grows with the vocabulary, language codes) stay covered without a download.
OPUS_MT_VOCAB = 58_101  # Helsinki-NLP/opus-mt-de-en: </s>=0, <unk>=1, <pad>=58100 (also the decoder start)
MBART50_SPM_PIECES = 250_000  # facebook/mbart-large-50-many-to-many-mmt: + fairseq offset, 52 codes, <mask> = 250,054
LOOKALIKE_SIZES = {
    "tiny": {"d_model": 16, "layers": 2, "heads": 2, "ffn": 32},
    # what bench_space.py times: opus-mt-de-en's own size, and mBART-50's width with 2+2 of its 12+12 layers
    "marian-real": {"d_model": 512, "layers": 6, "heads": 8, "ffn": 2048},
    "mbart-real-width": {"d_model": 1024, "layers": 2, "heads": 16, "ffn": 4096},
}


def build_lookalike(out: Path, family: str, size: str = "tiny", seed: int = 0) -> Path:
    """An untrained teacher folder in the layout of the real Hub checkpoint of `family` (de-en), loadable by
    `AutoModelForSeq2SeqLM` / `AutoTokenizer`: `marian` as opus-mt-de-en (separate source/target spm, swish, vocab
    58,101), `mbart` as mbart-large-50-many-to-many-mmt (MBart50Tokenizer, ReLU, vocab 250,054, language codes at their
    real ids, en_XX = 250004)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = _toy_rows()
    if family == "marian":
        tokenizer = _marian_tokenizer(out, rows, vocab_size=OPUS_MT_VOCAB)
        config = dict(activation_function="swish", max_position_embeddings=512)
    elif family == "mbart":
        tokenizer = _mbart_tokenizer(rows, spm_pieces=MBART50_SPM_PIECES)
        # bos 0 as the real checkpoint's fairseq `<s>` (these toy sentencepiece models have no `<s>` piece)
        config = dict(activation_function="relu", max_position_embeddings=1024, bos_token_id=0)
    else:
        raise ValueError(f"no lookalike for family {family!r}")
    return _save(_untrained_teacher(family, tokenizer, LOOKALIKE_SIZES[size], seed, **config), tokenizer, out)


@pytest.fixture(scope="session")
def lookalike_marian_dir(tmp_path_factory) -> Path:
    return build_lookalike(tmp_path_factory.mktemp("lookalikes") / "opus-mt-de-en", "marian")


@pytest.fixture(scope="session")
def lookalike_mbart_dir(tmp_path_factory) -> Path:
    return build_lookalike(tmp_path_factory.mktemp("lookalikes") / "mbart-large-50-many-to-many-mmt", "mbart")
