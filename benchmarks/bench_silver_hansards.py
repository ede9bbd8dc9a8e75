"""Benchmark (not a test): eflomal's own AER on the Hansards gold (447 en-fr pairs, fr -> en) under the silver
aligner's tokenisations, to bound what the words eflomal sees cost the silver links (review M7).

Readings of the same 447 pairs, each aligned by `alignment.eflomal_links` (eflomal, grow-diag-final-and) on the 447
pairs alone, `--repeats` times (eflomal seeds itself from /dev/urandom):

- `gold-tokens`: the gold file's own tokens, lower-cased (the 2026-12-02 measurement's setting);
- `detok-whitespace`: each side detokenised (sacremoses' Moses detokenizer), then the aligner's reading before
  2026-12-05: lower-cased whitespace words, so punctuation stays glued (`oh,`);
- `detok-silver`: the same detokenised text read with `alignment.silver_tokens` (punctuation split off), the reading
  since 2026-12-05;
- `gold-silver`: the gold file's text read with `silver_tokens` (it splits `Mr.` and `aujourd'` further).

Links between tokens are scored on the gold's words: a token covering several gold words (`oh,` = `oh` + `,`) links
all of them (characters matched as in `piece_word_ids`). AER against sure/possible links, over all 447 pairs.

    nice -n 19 env OMP_NUM_THREADS=1 PYTHONPATH=/work/shim-align python benchmarks/bench_silver_hansards.py \
        --gold ../shared/alignment-gold --repeats 3 --out /tmp/silver-hansards.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

logger = logging.getLogger(__name__)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (eflomal runs its aligner as a child process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def covered_words(tokens: list[str], words: list[str]) -> list[set[int]]:
    """Per token the gold words its characters cover (both sides NFKC, spaces removed; texts whose characters differ
    fall back to each token's first character, `piece_word_ids`)."""
    from agkd.training.triangulation.alignment import nfkc, piece_word_ids

    word_of = [k for k, word in enumerate(words) for _ in "".join(nfkc(word).split())]
    token_chars = ["".join(nfkc(token).split()) for token in tokens]
    if "".join(token_chars) != "".join("".join(nfkc(w).split()) for w in words):
        return [{k} for k in piece_word_ids(tokens, words, [])]
    out, start = [], 0
    for chars in token_chars:
        out.append(set(word_of[start : start + len(chars)]))
        start += len(chars)
    return out


def main(argv: list[str] | None = None) -> None:
    from sacremoses import MosesDetokenizer

    from agkd.training.metrics.attribution_aer.attribution_aer import aer, aer_counts, parse_links
    from agkd.training.triangulation.alignment import eflomal_links, read_gold, silver_tokens

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", required=True, help="the folder of en-fr.hansards.src-tgt and .gold")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="a JSON file for the figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    gold = read_gold(args.gold, "fr-en")  # sources French, targets English, links target-first
    detok = {"fr": MosesDetokenizer(lang="fr"), "en": MosesDetokenizer(lang="en")}
    detok_sources = [detok["fr"].detokenize(s.split()) for s in gold.sources]
    detok_targets = [detok["en"].detokenize(t.split()) for t in gold.targets]
    readings = {
        "gold-tokens": ([s.split() for s in gold.sources], [t.split() for t in gold.targets]),
        "detok-whitespace": ([s.split() for s in detok_sources], [t.split() for t in detok_targets]),
        "detok-silver": ([silver_tokens(s) for s in detok_sources], [silver_tokens(t) for t in detok_targets]),
        "gold-silver": ([silver_tokens(s) for s in gold.sources], [silver_tokens(t) for t in gold.targets]),
    }
    figures = {}
    for name, (sources, targets) in readings.items():
        source_cover = [covered_words(tok, s.split()) for tok, s in zip(sources, gold.sources, strict=True)]
        target_cover = [covered_words(tok, t.split()) for tok, t in zip(targets, gold.targets, strict=True)]
        runs = []
        lowered = [[w.lower() for w in s] for s in sources], [[w.lower() for w in t] for t in targets]
        for _ in range(args.repeats):
            start = cpu_seconds()
            aligned = eflomal_links(*lowered)
            seconds = cpu_seconds() - start
            counts = []
            for k, links in enumerate(aligned):
                words = {(t, s) for i, j in links for t in target_cover[k][i] for s in source_cover[k][j]}
                counts.append(aer_counts(words, *parse_links(gold.links[k])))
            runs.append({**{key: 100 * value for key, value in aer(counts).items()}, "cpu_seconds": seconds})
        tokens = sum(map(len, sources)) + sum(map(len, targets))
        figures[name] = {"runs": runs, "tokens": tokens,
                         "aer_mean": statistics.mean(r["aer"] for r in runs),
                         "aer_range": [min(r["aer"] for r in runs), max(r["aer"] for r in runs)]}
        logger.info("%s: AER %s (%d tokens)", name, ", ".join(f"{r['aer']:.1f}" for r in runs), tokens)
    text = json.dumps(figures, indent=1)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    logger.info("figures:\n%s", text)


if __name__ == "__main__":
    main()
