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


def test_piece_word_ids_and_failures_counted():
    special = ["</s>", "<pad>", "<unk>"]
    assert piece_word_ids(["▁Eli", "m", "ch", ",", "▁der", "</s>"], ["Elimch,", "der"], special) == [0, 0, 0, 0, 1, -1]
    sentences = [
        (["▁gut", "▁so", "</s>"], ["gut", "so"]),
        (["▁gut", "so", "</s>"], ["gut", "so"]),  # merged into one word: cannot be matched
        (["▁<unk>", "▁so", "</s>"], ["ü", "so"]),
        (["▁ﬁ", "x", "</s>"], ["ﬁx"]),  # NFKC: the ligature becomes "fi" in the word and stays in the piece
    ]
    results = [piece_word_ids(tokens, words, special) for tokens, words in sentences]
    assert results[0] == [0, 1, -1]
    assert sum(result is None for result in results) == 3


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
