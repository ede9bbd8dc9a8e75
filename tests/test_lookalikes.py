"""The real Hub teachers' layouts (tests/tiny_teachers.py `build_lookalike`: opus-mt-de-en and mbart-large-50 with
tiny weights, their tokenizer classes, special ids, activations and vocabulary sizes) through the paths that depend
on them: the per-method engine fallback, the probability check's memory, language codes."""

from __future__ import annotations

import json

from agkd.datasets_scripts import extract_attributions as ex

pytest_plugins = ["tests.tiny_teachers"]  # lookalike_marian_dir, lookalike_mbart_dir

def test_probability_check_projects_a_250k_vocabulary_in_chunks(lookalike_mbart_dir):
    """64 pairs of 64 tokens against mBART-50's 250,054-token vocabulary: a full softmax would hold 64 x 64 x 250,054
    float32 logits (4.1 GB, twice with the softmax). The check projects at most `LOGITS_PER_CHUNK` logits at a time
    (a hook on the LM head sees every projection) and gives the full softmax's probabilities."""
    import torch

    from agkd.datasets_scripts.attribution.teacher import LOGITS_PER_CHUNK, Teacher

    teacher = Teacher(str(lookalike_mbart_dir), "de-en", torch.device("cpu"), compat=False, name="mbart")
    assert teacher.model.config.vocab_size == 250_054
    tok = teacher.tokenizer
    assert tok.convert_tokens_to_ids(["de_DE", "en_XX", "<mask>"]) == [250_003, 250_004, 250_053]
    source = [[tok.convert_tokens_to_ids("de_DE"), *range(10 + i, 72 + i), tok.eos_token_id] for i in range(64)]
    target = [[tok.convert_tokens_to_ids("en_XX"), *range(20 + i, 82 + i), tok.eos_token_id] for i in range(64)]
    projected = []
    hook = teacher.model.get_output_embeddings().register_forward_hook(lambda m, i, out: projected.append(out.numel()))
    try:
        probs = teacher.probabilities(source, target)
    finally:
        hook.remove()
    assert max(projected) <= LOGITS_PER_CHUNK < 64 * 64 * 250_054
    assert sum(projected) == 64 * 64 * 250_054  # every position once
    with torch.no_grad():
        decoder_input = torch.tensor([[tok.eos_token_id, *t[:-1]] for t in target[:2]])
        logits = teacher.model(input_ids=torch.tensor(source[:2]), decoder_input_ids=decoder_input).logits.float()
    full = logits.softmax(-1).gather(-1, torch.tensor(target[:2])[..., None])[..., 0].numpy()
    assert abs(full - probs[:2]).max() < 1e-6


def test_fast_extraction_on_the_mbart_layout_falls_back_to_inseq_for_deeplift(
    lookalike_mbart_dir, toy_corpus_dir, tmp_path
):
    """mBART-50's ReLU modules: captum rescales them in DeepLIFT, the fast engine does not, so that method comes from
    Inseq while saliency stays on the fast engine; the extraction finishes and each config records its engine."""
    out = tmp_path / "agkd-attributions"
    code = ex.main([
        "--teacher", str(lookalike_mbart_dir), "--teacher_name", "mbart", "--corpus", str(toy_corpus_dir),
        "--output_dir", str(out), "--pair", "de-en", "--num_threads", "1", "--splits", "test", "--limit", "2",
        "--engine", "fast", "--methods", "deeplift", "saliency",
        "--allow_weak_teacher",  # untrained weights: its measured scores would refuse it (the guard's own test)
    ])
    assert code == 0
    engines = {}
    for method in ("deeplift", "saliency"):
        meta = json.loads((out / "meta" / f"mbart.de-en.{method}.json").read_text())
        engines[method] = meta["splits"]["test"]["fingerprint"].get("engine", "inseq")
        assert meta["teacher"]["tokenizer_kwargs"] == {"src_lang": "de_DE", "tgt_lang": "en_XX"}
    assert engines == {"deeplift": "inseq", "saliency": "fast"}
    card = (out / "README.md").read_text()
    assert "mbart.de-en.deeplift" in card and "Inseq" in card


def test_marian_lookalike_translates_and_attributes_with_the_fast_engine(lookalike_marian_dir):
    """opus-mt's layout (swish, vocabulary 58,101, <pad> = 58100 as the decoder start, separate source and target
    sentencepiece models): the fast engine serves every gradient method, and its probabilities agree with the plain
    forward pass."""
    import torch

    from agkd.datasets_scripts.attribution.engines import engine_for
    from agkd.datasets_scripts.attribution.fast_engine import attribute_pairs
    from agkd.datasets_scripts.attribution.teacher import Teacher, prob_deviation

    teacher = Teacher(str(lookalike_marian_dir), "de-en", torch.device("cpu"), compat=True, name="marian")
    assert teacher.model.config.vocab_size == 58_101 and teacher.tokenizer.pad_token_id == 58_100
    assert teacher.model.config.decoder_start_token_id == 58_100
    assert all(engine_for("fast", teacher, m) == "fast" for m in ("deeplift", "saliency", "integrated_gradients"))
    source = teacher.tokenizer(["Der Mann geht in das Haus."]).input_ids
    target = teacher.tokenizer(text_target=["The man goes into the house."]).input_ids
    (amap, probs), = attribute_pairs(teacher.model, "saliency", source, target, teacher.tokenizer.unk_token_id)
    assert amap.shape == (len(target[0]), len(source[0]))
    assert prob_deviation(probs, teacher.probabilities(source, target)[0]) < 1e-5
