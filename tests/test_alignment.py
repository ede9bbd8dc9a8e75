"""The plausibility yardstick: AER of maps against word alignments, piece->word merging, gold reading, eflomal."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from agkd.training.metrics.attribution_aer.attribution_aer import (
    aer,
    aer_counts,
    extract_links,
    format_links,
    parse_links,
    swap_links,
    word_scores,
)
from agkd.training.triangulation.alignment import grow_diag_final_and, piece_word_ids, read_gold, silver_alignments

METRIC_FOLDER = Path(__file__).resolve().parents[1] / "training" / "metrics" / "attribution_aer"
GOLD_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "alignment-gold"

pytest_plugins = ["tests.tiny_teachers"]  # untrained_marian_dir: a real Marian tokenizer and model in seconds

# Two words per side, each split in two pieces, plus `</s>` (rows: target pieces, columns: source pieces).
PIECE_MAP = [
    [0.1, 0.2, 0.3, 0.4],
    [0.5, -0.1, 0.2, 0.0],
    [0.0, 0.1, 0.6, 0.3],
    [0.2, 0.2, 0.2, 0.4],
]
SOURCE_IDS = [0, 0, 1, -1]  # ▁Hal lo ▁Welt </s>
TARGET_IDS = [0, 0, 1, -1]  # ▁Hel lo ▁world </s>


def test_aer_hand_computed_with_swap_to_target_first():
    # English (the target) indexed first, as in the gold files: nothing to swap for an X->en pair
    english_first = "1-2 2-1 2p3"
    sure, possible = parse_links(english_first)
    assert sure == {(0, 1), (1, 0)} and possible == {(0, 1), (1, 0), (1, 2)}
    predicted = {(0, 1), (1, 2), (2, 2)}
    counts = aer_counts(predicted, sure, possible)
    assert counts == [1, 2, 3, 2]
    scores = aer([counts])
    assert scores["aer"] == pytest.approx(1 - 3 / 5)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(1 / 2)
    # a file indexing the source first is swapped into the project's convention
    assert swap_links("2-1 1-2 3p2") == "1-2 2-1 2p3"
    assert format_links(sure, possible) == "1-2 2-1 2p3"


def test_merge_pieces_to_words_by_hand():
    summed = word_scores(PIECE_MAP, SOURCE_IDS, TARGET_IDS, merge="sum")
    np.testing.assert_allclose(summed, [[0.9, 0.5], [0.1, 0.6]])  # |-0.1| counts as 0.1
    maxed = word_scores(PIECE_MAP, SOURCE_IDS, TARGET_IDS, merge="max")
    np.testing.assert_allclose(maxed, [[0.5, 0.3], [0.1, 0.6]])
    assert extract_links(summed) == {(0, 0), (1, 1)}


def test_shift_reads_the_row_whose_input_is_the_piece():
    shifted = word_scores(PIECE_MAP, SOURCE_IDS, TARGET_IDS, merge="sum", shift=1)
    # piece t takes row t + 1: word 0 = rows 1 + 2, word 1 = row 3
    np.testing.assert_allclose(shifted, [[0.7, 0.8], [0.4, 0.2]])
    assert extract_links(shifted) == {(0, 1), (1, 0)}
    # at word level the last target word has no next row: no link for it
    word_level = word_scores([[1.0, 0.0], [0.0, 1.0]], shift=1)
    assert np.isnan(word_level[1]).all()
    assert extract_links(word_level) == {(0, 1)}


def test_planted_map_scores_zero():
    sure, possible = parse_links("1-1 2-3 3-2 3p1")
    # one-hot piece rows on the sure links; target word 1 has two pieces, source word 2 (0-based 1) two pieces
    target_ids, source_ids = [0, 1, 1, 2, -1], [0, 1, 1, 2, -1]
    rows = []
    for word in target_ids:
        row = [0.0] * len(source_ids)
        if word >= 0:
            (source_word,) = [s for t, s in sure if t == word]
            row[source_ids.index(source_word)] = 1.0
        rows.append(row)
    for extraction in ("argmax", "threshold"):
        scores = word_scores(rows, source_ids, target_ids)
        counts = aer_counts(extract_links(scores, extraction), sure, possible)
        assert aer([counts])["aer"] == 0.0


def test_uniform_map_by_hand():
    sure, possible = parse_links("1-1 2-2 3-3 3p4")
    uniform = word_scores(np.full((3, 4), 0.25).tolist())
    # argmax: ties go to the first source word -> {(0,0),(1,0),(2,0)}: |A&S|=1, |A&P|=1, |A|=3, |S|=3
    argmax_counts = aer_counts(extract_links(uniform, "argmax"), sure, possible)
    assert argmax_counts == [1, 1, 3, 3] and aer([argmax_counts])["aer"] == pytest.approx(1 - 2 / 6)
    # threshold 1/4: every equal share passes -> 12 links: |A&S|=3, |A&P|=4
    threshold_counts = aer_counts(extract_links(uniform, "threshold"), sure, possible)
    assert threshold_counts == [3, 4, 12, 3] and aer([threshold_counts])["aer"] == pytest.approx(1 - 7 / 15)
    assert extract_links(uniform, "threshold", threshold=0.3) == set()


def test_grow_diag_final_and_by_hand():
    forward = {(0, 0), (1, 1), (2, 3), (3, 2)}
    reverse = {(0, 0), (1, 2), (2, 3), (3, 3)}
    # intersection {(0,0),(2,3)}; grow-diag visits (0,0): adds (1,1) (row 1 unaligned); visits (2,3): adds (3,3)
    # (row 3 unaligned), then (1,2) (column 2 unaligned); (3,2) now has both ends aligned and is not added
    assert grow_diag_final_and(forward, reverse) == {(0, 0), (1, 1), (1, 2), (2, 3), (3, 3)}
    # final-and adds a union link only when both its ends are unaligned
    assert grow_diag_final_and({(0, 0), (5, 5)}, {(0, 0)}) == {(0, 0), (5, 5)}
    assert grow_diag_final_and({(0, 0), (0, 5)}, {(0, 0)}) == {(0, 0)}


def test_piece_word_ids_place_every_piece_by_character_spans():
    special = ["</s>", "<pad>", "<unk>"]
    assert piece_word_ids(["▁Eli", "m", "ch", ",", "▁der", "</s>"], ["Elimch,", "der"], special) == [0, 0, 0, 0, 1, -1]
    # what the old exact rebuild refused (returned None, the sentence dropped: review L6) now has word ids
    assert piece_word_ids(["▁gut", "so", "</s>"], ["gut", "so"], special) == [0, 1, -1]  # no `▁` before a word
    assert piece_word_ids(["▁<unk>", "▁so", "</s>"], ["ü", "so"], special) == [0, 1, -1]  # <unk> takes the gap
    assert piece_word_ids(["▁", "<unk>", "▁so", "</s>"], ["ü", "so"], special) == [0, 0, 1, -1]  # a bare `▁` opens
    assert piece_word_ids(["▁ﬁ", "x", "</s>"], ["ﬁx"], special) == [0, 0, -1]  # NFKC on both sides
    # the Hansards' broken accents: one piece over several one-character words takes its first character's word
    assert piece_word_ids(["▁H", "él", "ène", "▁dit", "</s>"], ["H", "é", "l", "è", "ne", "dit"], special) == [
        0, 1, 3, 5, -1]
    # quotes the tokenizer's punctuation normaliser changed: placed between their neighbours
    assert piece_word_ids(['▁"', "Oui", '"', "</s>"], ["«", "Oui", "»"], special) == [0, 1, 2, -1]


def test_a_sentence_whose_pieces_do_not_rebuild_its_words_is_scored(untrained_marian_dir, monkeypatch):
    """Review L6: a real tokenizer's pieces of words it cannot rebuild (an unknown character, a ligature) are placed by
    character spans, and the sentence is scored: its links count, where the old rebuild dropped the sentence."""
    from transformers import AutoTokenizer

    from agkd.training.triangulation.triangulate import aer_part, words_of

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(untrained_marian_dir))
    source, target = "das Ωhaus ﬁx", "the house"
    rows = [{"source": source, "target": target,
             "source_tokens": tokenizer.convert_ids_to_tokens(tokenizer(source)["input_ids"]),
             "target_tokens": tokenizer.convert_ids_to_tokens(tokenizer(text_target=target)["input_ids"])}]
    assert "<unk>" in rows[0]["source_tokens"]  # the toy vocabulary has no Ω: the pieces cannot rebuild the words
    source_ids, target_ids, ok = words_of(rows, set(tokenizer.all_special_tokens), words=str.split)
    assert ok.all() and sorted(set(source_ids[0]) - {-1}) == [0, 1, 2]
    # a map whose every target piece attends the first piece of "Ωhaus" (source word 2, 1-based)
    column = source_ids[0].index(1)
    rows[0]["attribution"] = [[float(s == column) for s in range(len(source_ids[0]))] for _ in target_ids[0]]
    result = aer_part({"planted": rows}, ["2-2"], source_ids, target_ids, ok, [3], [2])
    assert result["sentences"] == 1
    union = [r for r in result["readings"]["planted"] if (r["merge"], r["extraction"], r["shift"]) == ("union",
                                                                                                     "argmax", 0)]
    assert union[0]["recall"] == 1.0  # the sure link 2-2 (house - Ωhaus) is found


def test_piece_argmax_union_on_the_review_toy():
    """Review M1: one target piece whose row is 0.40 on a 1-piece source word and 0.15 on each piece of a 3-piece word.
    Summing pieces first links the 3-piece word; the literature's piece-argmax-union links the 1-piece word."""
    from agkd.training.metrics.attribution_aer.attribution_aer import word_links

    row = [[0.40, 0.15, 0.15, 0.15, 0.05]]
    source_ids, target_ids = [0, 1, 1, 1, -1], [0]
    np.testing.assert_allclose(word_scores(row, source_ids, target_ids, merge="sum"), [[0.40, 0.45]])
    assert word_links(row, source_ids, target_ids, merge="sum") == {(0, 1)}
    assert word_links(row, source_ids, target_ids, merge="union") == {(0, 0)}
    # the union gives many-to-many links: a 2-piece target word whose pieces point at two source words gets both
    two_pieces = [[0.1, 0.8, 0.0, 0.0, 0.1], [0.1, 0.0, 0.0, 0.7, 0.2], [0.9, 0.0, 0.0, 0.0, 0.1]]
    assert word_links(two_pieces, source_ids, [0, 0, -1], merge="union") == {(0, 1)}
    assert word_links(two_pieces, [0, 1, 2, 3, -1], [0, 0, -1], merge="union") == {(0, 1), (0, 3)}
    # the input reading: piece t reads row t + 1
    assert word_links(two_pieces, [0, 1, 2, 3, -1], [0, 1, -1], merge="union", shift=1) == {(0, 3), (1, 0)}


def test_argmax_null_gives_no_link_where_the_dropped_pieces_win():
    """Review L7: with `argmax_null`, a row whose largest score is on `</s>` (id -1) gives no link."""
    from agkd.training.metrics.attribution_aer.attribution_aer import word_links

    rows = [[0.6, 0.1, 0.3], [0.1, 0.2, 0.7]]  # row 1 peaks on `</s>`
    source_ids, target_ids = [0, 1, -1], [0, 1]
    assert word_links(rows, source_ids, target_ids, merge="union") == {(0, 0), (1, 1)}
    for merge in ("sum", "max", "union"):
        assert word_links(rows, source_ids, target_ids, merge=merge, extraction="argmax_null") == {(0, 0)}, merge


def test_the_metric_refuses_references_and_ids_that_do_not_fit_the_map(monkeypatch):
    """Review L5: a link past the merged word grid (e.g. a source-first reference), id lists whose sizes differ from
    the map's, are errors that name the sentence, not silently wrong AERs."""
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(str(METRIC_FOLDER))
    with pytest.raises(ValueError, match="sentence 0: reference link 5-7 .* 2 target x 2 source words"):
        metric.compute(predictions=[[[0.3, 0.7], [0.9, 0.1]]], references=["5-7"])
    # 2 target words x 3 source words; a source-first reference "3-1" reads as target word 3
    with pytest.raises(ValueError, match="sentence 1: reference link 3-1"):
        metric.compute(predictions=[PIECE_MAP, [[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]], references=["1-1", "3-1"],
                       source_word_ids=[SOURCE_IDS, None], target_word_ids=[TARGET_IDS, None])
    with pytest.raises(ValueError, match="sentence 0: target_word_ids has 3 entries, the map 4 rows"):
        metric.compute(predictions=[PIECE_MAP], references=["1-1"], target_word_ids=[TARGET_IDS[:3]])
    with pytest.raises(ValueError, match="source_word_ids has 3 entries, the map's widest row 4 columns"):
        metric.compute(predictions=[PIECE_MAP], references=["1-1"], source_word_ids=[SOURCE_IDS[:3]])
    with pytest.raises(ValueError, match="source_lengths has 2 entries"):
        metric.compute(predictions=[PIECE_MAP], references=["1-1"], source_lengths=[2, 2])
    # given lengths, a word without pieces is part of the grid: a link to it is a miss, not an error
    result = metric.compute(predictions=[PIECE_MAP], references=["1-1 3-3"], source_word_ids=[SOURCE_IDS],
                            target_word_ids=[TARGET_IDS], source_lengths=[3], target_lengths=[3])
    assert result["sentence_counts"] == [[1, 1, 2, 2]]


def test_silver_tokens_split_punctuation_before_the_aligner(tmp_path, monkeypatch):
    """Review M7: eflomal sees tokens with punctuation split off (as the gold sets are tokenised), lower-cased one by
    one, so that `naomi,` and `naomi.` are the type `naomi`; its links index those tokens."""
    import sys
    import types

    seen = {}

    class FakeAligner:  # records what eflomal would read, writes a diagonal alignment (source-first, 0-based)
        def align(self, sources, targets, links_filename_fwd, links_filename_rev, quiet):
            seen["sources"], seen["targets"] = sources, targets
            for path in (links_filename_fwd, links_filename_rev):
                with open(path, "w", encoding="utf-8") as handle:
                    for s, t in zip(sources, targets, strict=True):
                        handle.write(" ".join(f"{k}-{k}" for k in range(min(len(s.split()), len(t.split())))) + "\n")

    monkeypatch.setitem(sys.modules, "eflomal", types.SimpleNamespace(Aligner=FakeAligner))
    links = silver_alignments([("Naomi, komm.", "Naomi, come.")], [("Ruth sagte: Ja!", "Ruth said: yes!")], tmp_path)
    assert seen["sources"] == ["naomi , komm .", "ruth sagte : ja !"]
    assert seen["targets"] == ["naomi , come .", "ruth said : yes !"]
    assert links == ["1-1 2-2 3-3 4-4 5-5"]  # five tokens a side: `:` and `!` are words
    from agkd.training.triangulation.alignment import silver_tokens

    assert silver_tokens("Naomi, sagte: «Geh!» 1,800 two-thirds") == [
        "Naomi", ",", "sagte", ":", "«", "Geh", "!", "»", "1,800", "two", "-", "thirds"]

    class BrokenAligner:  # eflomal runs beside a progress bar, in a thread: its errors must still reach the caller
        def align(self, *args, **kwargs):
            raise RuntimeError("eflomal binary failed")

    monkeypatch.setitem(sys.modules, "eflomal", types.SimpleNamespace(Aligner=BrokenAligner))
    with pytest.raises(RuntimeError, match="eflomal binary failed"):
        silver_alignments([("a b", "c d")], [("e", "f")], tmp_path / "other")


def test_read_gold_tiny_folder_swaps_source_first_files(tmp_path):
    # a German-English file indexing German (the source) first: the reader swaps into target-first links
    (tmp_path / "de-en.tiny.src-tgt").write_text("das Haus ||| the house\nja ||| yes\n", encoding="utf-8")
    (tmp_path / "de-en.tiny.gold").write_text("1-1 2-2 1p2\n1-1\n", encoding="utf-8")
    gold = read_gold(tmp_path, "de-en")
    assert gold.name == "tiny" and gold.sources == ["das Haus", "ja"] and gold.targets == ["the house", "yes"]
    assert gold.links == ["1-1 2-2 2p1", "1-1"]
    assert (gold.n_sure, gold.n_possible) == (3, 4)
    with pytest.raises(FileNotFoundError, match="no gold set for the pair fr-en"):
        read_gold(tmp_path, "fr-en")
    with pytest.raises(FileNotFoundError, match="found none"):
        read_gold(tmp_path / "missing", "de-en")


@pytest.mark.skipif(not GOLD_FOLDER.exists(), reason=f"the Hansards gold set is not at {GOLD_FOLDER}")
def test_read_gold_hansards_counts_and_a_planted_map():
    gold = read_gold(GOLD_FOLDER, "fr-en")
    # README: 4,038 sure and 13,400 `p` links; P including S therefore holds 17,438
    assert (len(gold.sources), gold.n_sure, gold.n_possible) == (447, 4038, 4038 + 13400)
    assert gold.links[0] == "2-2 1-1"
    counts = []
    for source, target, links in zip(gold.sources, gold.targets, gold.links, strict=True):
        sure, possible = parse_links(links)
        planted = np.zeros((len(target.split()), len(source.split())))
        for t, s in sure:
            planted[t, s] = 1.0
        counts.append(aer_counts(extract_links(word_scores(planted.tolist()), "threshold"), sure, possible))
    assert aer(counts)["aer"] == 0.0


def test_evaluate_load_offline_matches_the_pure_functions(monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(str(METRIC_FOLDER))
    references = ["1-2 2-1 2p2", "1-1"]
    predictions = [PIECE_MAP, [[0.3, 0.7], [0.9, 0.1]]]
    kwargs = {"source_word_ids": [SOURCE_IDS, None], "target_word_ids": [TARGET_IDS, None], "merge": "max"}
    result = metric.compute(predictions=predictions, references=references, **kwargs, shift=1)
    expected = []
    for attribution, reference, source_ids, target_ids in zip(
        predictions, references, kwargs["source_word_ids"], kwargs["target_word_ids"], strict=True
    ):
        scores = word_scores(attribution, source_ids, target_ids, merge="max", shift=1)
        expected.append(aer_counts(extract_links(scores), *parse_links(reference)))
    assert result["sentence_counts"] == expected and result["n_sentences"] == 2
    assert result["aer"] == pytest.approx(aer(expected)["aer"])


def test_eflomal_recovers_a_planted_permutation(tmp_path):
    pytest.importorskip("eflomal")
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(30)]
    pairs, gold = [], []
    for _ in range(60):
        words = rng.sample(vocabulary, 6)
        order = list(range(6))
        rng.shuffle(order)
        target = [words[i].upper().replace("W", "t") for i in order]  # target word k translates source word order[k]
        pairs.append((" ".join(words), " ".join(target)))
        gold.append({(k, order[k]) for k in range(6)})
    links = silver_alignments(pairs[:40], pairs[40:], tmp_path)
    found = sum(len(parse_links(line)[0] & truth) for line, truth in zip(links, gold[40:], strict=True))
    assert found >= 0.8 * 6 * 20
    assert silver_alignments(pairs[:40], pairs[40:], tmp_path) == links  # the cache answers a rerun


@pytest.mark.skipif(not GOLD_FOLDER.exists(), reason=f"the Hansards gold set is not at {GOLD_FOLDER}")
def test_every_hansards_sentence_is_placed_and_scored(untrained_marian_dir, monkeypatch):
    """Review L6: all 447 gold sentences get word ids for every piece (a toy tokenizer whose vocabulary misses much of
    French: many `<unk>`), and a piece map planted on the sure links scores every sentence without an error."""
    from transformers import AutoTokenizer

    from agkd.training.metrics.attribution_aer.attribution_aer import word_links

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(untrained_marian_dir))
    special = set(tokenizer.all_special_tokens)
    gold = read_gold(GOLD_FOLDER, "fr-en")
    counts, unknown = [], 0
    for source, target, links in zip(gold.sources, gold.targets, gold.links, strict=True):
        source_tokens = tokenizer.convert_ids_to_tokens(tokenizer(source)["input_ids"])
        target_tokens = tokenizer.convert_ids_to_tokens(tokenizer(text_target=target)["input_ids"])
        unknown += "<unk>" in source_tokens + target_tokens
        source_ids = piece_word_ids(source_tokens, source.split(), special)
        target_ids = piece_word_ids(target_tokens, target.split(), special)
        assert len(source_ids) == len(source_tokens) and max(source_ids) < len(source.split())
        assert max(target_ids) < len(target.split()) and target_ids[-1] == -1  # `</s>` dropped
        sure, possible = parse_links(links)
        planted = np.zeros((len(target_tokens), len(source_tokens)))
        for t, s in sure:  # every piece of target word t points at the first piece of source word s
            rows = [k for k, w in enumerate(target_ids) if w == t]
            if s in source_ids:
                planted[rows, source_ids.index(s)] = 1.0
        predicted = word_links(planted.tolist(), source_ids, target_ids, merge="union",
                               source_length=len(source.split()), target_length=len(target.split()))
        counts.append(aer_counts(predicted, sure, possible))
    assert len(counts) == 447 and unknown > 100  # the pieces of most sentences cannot rebuild their words
    assert aer(counts)["precision"] == 1.0 and aer(counts)["recall"] > 0.9  # words without a piece of their own miss


def test_cross_attention_per_layer_averages_to_the_attention_maps(untrained_marian_dir):
    """Review M2: the gold part's per-layer cross-attention, averaged over layers, is the `attention` method's map."""
    import torch

    from agkd.datasets_scripts.attribution.engines import attribute
    from agkd.datasets_scripts.attribution.teacher import Teacher
    from agkd.training.triangulation.alignment import cross_attention_per_layer

    teacher = Teacher(str(untrained_marian_dir), "de-en", torch.device("cpu"), compat=True)
    rows = []
    for k, (source, target) in enumerate([("das Haus ist klein", "the house is small"), ("ja", "yes")]):
        source_ids, target_ids = teacher.encode(source, target)
        rows.append({"id": f"t{k}", "source": source, "target": target, "target_kind": "reference",
                     "source_ids": source_ids, "target_ids": target_ids})
    layers = cross_attention_per_layer(teacher, rows, batch_size=1)
    assert len(layers) == teacher.model.config.decoder_layers
    maps = attribute("fast", teacher, "attention", rows, seed=0)
    for k, row in enumerate(maps):
        per_layer = np.stack([np.asarray(layer[k]) for layer in layers])
        assert per_layer.shape[1:] == (len(row["target_ids"]), len(row["source_ids"]))
        np.testing.assert_allclose(per_layer.mean(0), row["attribution"], atol=1e-5)
        assert not np.allclose(per_layer[0], per_layer[1])  # the layers differ: a per-layer reading says something


def test_the_gold_part_scores_every_sentence_and_reads_attention_per_layer(untrained_marian_dir, tmp_path):
    """`gold_part` end to end on a three-sentence gold folder (target-first, as the Hansards' English-first file for
    fr-en): a sentence whose pieces cannot rebuild its words is scored (review L6), every reading of `READINGS` is
    there with the literature's among them, and cross-attention is read layer by layer at both steps (review M2)."""
    import torch

    from agkd.datasets_scripts.attribution.teacher import Teacher
    from agkd.training.triangulation.alignment import LAYER_READINGS, PRIMARY_READING, READINGS
    from agkd.training.triangulation.triangulate import TriangulateArguments, gold_part

    (tmp_path / "en-de.tiny.src-tgt").write_text(
        "the house is small ||| das Haus ist klein\nyes , Ωmega ||| ja , Ωmega\nthe small house ||| das kleine Haus\n",
        encoding="utf-8")
    (tmp_path / "en-de.tiny.gold").write_text("1-1 2-2 3-3 4-4\n1-1 2p2 3-3\n1-1 2-2 3-3\n", encoding="utf-8")
    teacher = Teacher(str(untrained_marian_dir), "de-en", torch.device("cpu"), compat=True)
    assert teacher.tokenizer.unk_token in teacher.tokens(teacher.encode("ja , Ωmega", "yes , Ωmega")[0])
    args = TriangulateArguments(teacher=str(untrained_marian_dir), pair="de-en", results_dir=str(tmp_path),
                                gold_alignments=str(tmp_path))
    result = gold_part(args, teacher, ["attention", "saliency", "attention-shuffled"])
    assert result["sentences"] == result["sentences_in_file"] == 3 and result["skipped_words"] == 0
    assert set(result["readings"]) == {"attention", "saliency", "attention-shuffled"}
    assert [{k: r[k] for k in PRIMARY_READING} for r in result["readings"]["saliency"]] == READINGS
    assert PRIMARY_READING in READINGS and np.asarray(result["sentence_counts"]["saliency"]).shape == (3, 4)
    layers = result["attention_layers"]
    assert layers["layers"] == teacher.model.config.decoder_layers == len(layers["readings"])
    for readings in layers["readings"].values():
        assert [{k: r[k] for k in PRIMARY_READING} for r in readings] == LAYER_READINGS
        assert {r["shift"] for r in readings} == {0, 1} and all(0 <= r["aer"] <= 1 for r in readings)
