"""Shared fixtures. Everything is built locally (tiny configs, toy corpora); nothing is downloaded."""

from __future__ import annotations

import os
import random

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine they oversubscribe the cores.
torch.set_num_threads(1)

# A toy "language" per pair: a lexicon and word-order rules that a tiny model learns in a few hundred steps.
TOY_LEXICON = {
    "de-en": {
        "der Hund": "the dog", "die Katze": "the cat", "das Kind": "the child", "der Mann": "the man",
        "die Frau": "the woman", "das Haus": "the house", "der Baum": "the tree", "das Buch": "the book",
        "sieht": "sees", "liebt": "loves", "findet": "finds", "hat": "has", "kennt": "knows", "sucht": "seeks",
        "heute": "today", "morgen": "tomorrow", "oft": "often", "nie": "never",
    },
    "fr-en": {
        "le chien": "the dog", "le chat": "the cat", "l'enfant": "the child", "l'homme": "the man",
        "la femme": "the woman", "la maison": "the house", "l'arbre": "the tree", "le livre": "the book",
        "voit": "sees", "aime": "loves", "trouve": "finds", "a": "has", "connaît": "knows", "cherche": "seeks",
        "aujourd'hui": "today", "demain": "tomorrow", "souvent": "often", "jamais": "never",
    },
    "ar-en": {
        "الكلب": "the dog", "القطة": "the cat", "الطفل": "the child", "الرجل": "the man",
        "المرأة": "the woman", "البيت": "the house", "الشجرة": "the tree", "الكتاب": "the book",
        "يرى": "sees", "يحب": "loves", "يجد": "finds", "يملك": "has", "يعرف": "knows", "يبحث عن": "seeks",
        "اليوم": "today", "غدا": "tomorrow", "غالبا": "often", "أبدا": "never",
    },
}


def toy_pairs(pair: str, n: int, seed: int = 0) -> list[dict]:
    """`n` distinct toy sentence pairs: subject verb object adverb, English word order fixed."""
    lex = TOY_LEXICON[pair]
    items = list(lex)
    nouns, verbs, adverbs = items[:8], items[8:14], items[14:]
    rng = random.Random(seed)
    seen, rows = set(), []
    while len(rows) < n:
        s, o = rng.sample(nouns, 2)
        v, a = rng.choice(verbs), rng.choice(adverbs)
        if (s, v, o, a) in seen:
            continue
        seen.add((s, v, o, a))
        if pair == "ar-en":  # verb first, as in classical Arabic
            source = f"{v} {s} {o} {a}"
        elif pair == "de-en":  # adverb in second position: verb-second
            source = f"{s} {v} {a} {o}"
        else:
            source = f"{s} {v} {o} {a}"
        target = f"{lex[s]} {lex[v]} {lex[o]} {lex[a]}".capitalize() + "."
        rows.append({"id": f"toy-{pair}-{len(rows)}", "source": source + ".", "target": target, "origin": "toy"})
    return rows


@pytest.fixture(scope="session")
def toy_corpus_dir(tmp_path_factory):
    """A Hub-layout `agkd-parallel` folder with the toy pairs: configs de-en/fr-en/ar-en, train/validation/test."""
    import datasets

    from agkd.datasets_scripts.release_layout import write_card, write_split

    root = tmp_path_factory.mktemp("agkd-parallel")
    for pair in TOY_LEXICON:
        rows = toy_pairs(pair, 520, seed=len(pair))
        splits = {"train": rows[:400], "validation": rows[400:440], "test": rows[440:]}
        for split, split_rows in splits.items():
            write_split(root, pair, split, datasets.Dataset.from_list(split_rows))
    write_card(root, "# Toy agkd-parallel\n\nSynthetic pairs for tests.", license="cc0-1.0")
    return root
