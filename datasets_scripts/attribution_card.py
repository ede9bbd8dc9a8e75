"""The dataset card of agkd-attributions and the raw map scale it tabulates.

`write_dataset_card` (re)writes the README of an agkd-attributions folder from every config's `meta/<config>.json`
(written by `extract_attributions.py`, configs of earlier runs included). Raw scale differs by orders of magnitude
between methods, so every split's summary records it (`scale`: `map_scale` of its maps, read from the merged parquet
by `parquet_map_scale`) and the card's "Raw map scale" table shows it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from agkd.datasets_scripts.release_layout import META_DIR, write_card

SCALE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _significant(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") + 0.0  # + 0.0: no "-0" for a one-hot row's entropy


class _ScaleAccumulator:
    """Per-target-row statistics of raw maps, gathered chunk by chunk (a whole split never sits in memory as floats
    beyond one number per row and statistic)."""

    def __init__(self):
        self.row_stats: dict[str, list[np.ndarray]] = {
            "row_sum": [],
            "row_l1": [],
            "row_max_abs": [],
            "row_entropy": [],
        }
        self.n_rows = self.n_values = self.n_negative = 0
        self.min, self.max = np.inf, -np.inf

    def add(self, values: np.ndarray, row_lengths: np.ndarray) -> None:
        """`values`: the entries of consecutive target rows, flat; `row_lengths`: the length of each row."""
        row_lengths = row_lengths[row_lengths > 0]  # an empty row has no values and no statistics
        if not len(row_lengths):
            return
        values = np.asarray(values, dtype=np.float64)
        starts = np.concatenate([[0], np.cumsum(row_lengths)[:-1]])
        magnitude = np.abs(values)
        l1 = np.add.reduceat(magnitude, starts)
        share = magnitude / np.repeat(np.where(l1 > 0, l1, 1.0), row_lengths)
        plogp = np.where(share > 0, share * np.log(np.where(share > 0, share, 1.0)), 0.0)
        # Normalised entropy of |A| / sum |A|: undefined for one-column rows (log 1 = 0) and all-zero rows; skipped.
        defined = (row_lengths > 1) & (l1 > 0)
        entropy = -np.add.reduceat(plogp, starts)[defined] / np.log(row_lengths[defined])
        for name, stat in (
            ("row_sum", np.add.reduceat(values, starts)),
            ("row_l1", l1),
            ("row_max_abs", np.maximum.reduceat(magnitude, starts)),
            ("row_entropy", entropy),
        ):
            self.row_stats[name].append(stat.astype(np.float32))
        self.n_rows += len(row_lengths)
        self.n_values += len(values)
        self.n_negative += int((values < 0).sum())
        self.min, self.max = min(self.min, float(values.min())), max(self.max, float(values.max()))

    def summary(self) -> dict:
        out: dict = {"rows": self.n_rows}
        for name, parts in self.row_stats.items():
            stat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
            quantiles = (
                np.quantile(stat.astype(np.float64), SCALE_QUANTILES) if len(stat) else [None] * len(SCALE_QUANTILES)
            )
            out[name] = {
                f"q{round(q * 100):02d}": None if v is None else _significant(v)
                for q, v in zip(SCALE_QUANTILES, quantiles, strict=True)
            }
        empty = self.n_values == 0
        out["min"] = None if empty else _significant(self.min)
        out["max"] = None if empty else _significant(self.max)
        out["share_negative"] = None if empty else _significant(self.n_negative / self.n_values)
        return out


def map_scale(attributions) -> dict:
    """Raw scale of attribution maps (each [T][S], an array or nested lists), over all their target rows.

    Methods differ by orders of magnitude in raw value and the injection operators act on raw values, so the scale
    is recorded next to the maps. Returns
    `rows` (target rows), quantiles q05..q95 of the row sum, row L1 sum, row max |A| and normalised row entropy of
    |A| / sum |A| (entropy / log S: 1 = flat, 0 = one-hot; one-column and all-zero rows left out), and the global
    `min`, `max` and `share_negative` of the entries; floats to 4 significant digits, None where there are no rows.
    """
    acc = _ScaleAccumulator()
    for attribution in attributions:
        amap = np.asarray(attribution, dtype=np.float64)
        if amap.size == 0:
            continue
        if amap.ndim != 2:
            raise ValueError(f"an attribution map is [T][S]; got shape {amap.shape}")
        acc.add(amap.ravel(), np.full(amap.shape[0], amap.shape[1]))
    return acc.summary()


def parquet_map_scale(path: str | Path, batch_size: int = 1024) -> dict:
    """`map_scale` of the `attribution` column of a parquet file, read in record batches straight into numpy."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    acc = _ScaleAccumulator()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=["attribution"]):
        target_rows = batch.column("attribution").flatten()  # one list per target row
        values = target_rows.flatten().to_numpy(zero_copy_only=False)
        acc.add(values, pc.list_value_length(target_rows).fill_null(0).to_numpy(zero_copy_only=False))
    return acc.summary()


def _scale_section(metas: dict[str, dict]) -> list[str]:
    """The card's "Raw map scale" table: one row per config, its `train` split if it has one, else its first."""
    lines = [
        "## Raw map scale",
        "",
        "The injection operators act on the raw values, so raw scale, not content, can decide a ranking of methods",
        "(under `add` a map of 1e-6 changes nothing, under `multiply` or `replace` it flattens attention); the",
        "students' `map_normalization` (e.g. `row_sum`) removes it at injection time. Medians over target rows;",
        "entropy of |A| / sum |A| over log of the source length (1 = flat, 0 = one-hot). Quantiles of every split are",
        "in `meta/<config>.json` (`splits.<split>.scale`).",
        "",
        "| config | split | median row L1 sum | median row max abs | median normalised entropy | min | max | share "
        "negative |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(value) -> str:
        return "-" if value is None else f"{value:.3g}"

    for name, m in metas.items():
        splits = m.get("splits", {})
        split = "train" if "train" in splits else next(iter(splits), None)
        scale = splits.get(split, {}).get("scale", {})
        medians = [scale.get(stat, {}).get("q50") for stat in ("row_l1", "row_max_abs", "row_entropy")]
        extremes = [scale.get(key) for key in ("min", "max", "share_negative")]
        lines.append(f"| `{name}` | {split or '-'} | " + " | ".join(cell(v) for v in medians + extremes) + " |")
    return lines


def _quality_section(metas: dict[str, dict]) -> list[str]:
    """The card's "Teacher quality" table: per teacher and pair, the validation scores its maps were extracted under,
    recorded by `agkd teacher` or measured at extraction (greedy, on the first pairs of the corpus's validation split)
    for a teacher that records none."""
    seen: dict[tuple, dict] = {}
    for m in metas.values():
        if m.get("teacher_quality"):
            seen.setdefault((m["teacher"]["name"], m["teacher"]["path"], m.get("pair")), m["teacher_quality"])
    if not seen:
        return []
    lines = [
        "## Teacher quality",
        "",
        "No teacher is explained without a score: the validation BLEU/chrF (sacrebleu) recorded by `agkd teacher`, or,",
        "for a teacher that records none, measured by `agkd extract` before extracting (greedy translations of the",
        "first pairs of the corpus's validation split), beside copy-the-source (the untranslated source as output).",
        "",
        "| teacher | pair | scores | pairs | BLEU | chrF | copy-the-source BLEU | copy-the-source chrF | passes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, path, pair), q in seen.items():
        lines.append(
            f"| {name} ({path}) | {pair} | {q.get('source', '-')} | {q.get('examples', '-')} | {q['bleu']:.2f} | "
            f"{q['chrf']:.2f} | {q['copy_source_bleu']:.2f} | {q['copy_source_chrf']:.2f} | "
            f"{'yes' if q.get('passes', True) else 'no (--allow_weak_teacher)'} |"
        )
    return [*lines, ""]


def _yardsticks_section(root: Path) -> list[str]:
    """The card's "Beside the verdict" table: per config, the yardsticks `agkd triangulate` measured on its maps
    (`meta/yardsticks/<teacher>.<pair>.json`)."""
    from agkd.datasets_scripts.release_layout import META_DIR

    files = sorted((root / META_DIR / "yardsticks").glob("*.json"))
    if not files:
        return []
    lines = [
        "## Beside the verdict: plausibility, faithfulness, sanity",
        "",
        "Measured by `agkd triangulate` on each config's evaluation pairs (the report explains every column and sets",
        "them beside what each method's maps teach a student): AER of the links read from the maps against silver",
        "(eflomal) and human gold alignments (lower is better), deletion and insertion AOPC on the teacher (higher is",
        "more faithful, 0 = a random order) forced on the reference and on the teacher's own translation, with removed",
        "tokens replaced by `<unk>` or masked out of attention, and the Spearman between the maps of the trained and",
        "of a randomised teacher whose layers are random and input embeddings kept (a method whose maps barely change",
        "fails the sanity check; undetermined where most rows are constant).",
        "",
        "| config | silver AER | gold AER | AOPC deletion | AOPC insertion | AOPC del. / ins., teacher's output | "
        "AOPC del. / ins., masked | randomisation Spearman (decoder+encoder) | sanity |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    def pair(row: dict, suffix: str) -> str:
        values = [row.get(f"aopc_{curve}{suffix}") for curve in ("deletion", "insertion")]
        return "-" if all(v is None for v in values) else " / ".join(map(cell, values))

    for path in files:
        for name, row in json.loads(path.read_text()).items():
            values = [row.get(k) for k in ("silver_aer", "gold_aer", "aopc_deletion", "aopc_insertion")]
            cells = [*map(cell, values), pair(row, "_teacher"), pair(row, "_mask"),
                     cell(row.get("sanity_spearman_decision")), row.get("sanity_verdict") or "-"]
            lines.append(f"| `{path.stem}.{name}` | " + " | ".join(cells) + " |")
    return [*lines, ""]


def write_dataset_card(output_dir: str | Path) -> Path:
    """(Re)write README.md from every config's meta/<config>.json (configs written by earlier runs included)."""
    root = Path(output_dir)
    metas = {p.stem: json.loads(p.read_text()) for p in sorted((root / META_DIR).glob("*.json"))}
    lines = [
        "# agkd-attributions",
        "",
        "Attribution maps of translation teachers on agkd-parallel, extracted with Inseq (or the equivalent fast "
        "engine,",
        "`engine` per config) by `agkd extract`",
        "(`datasets_scripts/extract_attributions.py`), for attribution-guided knowledge distillation (AGKD).",
        "",
        "## Configs",
        "",
        "`<teacher>.<pair>.<method>`: forced decoding on the gold reference (the paper's protocol; the maps see the",
        "reference). `<teacher>.<pair>.<method>.teacher`: the teacher attributes its own translation (`target` holds "
        "it;",
        "leakage-free protocol). Controls `random`, `uniform`, `diagonal` take the place of the method, with the same",
        "shapes. Shuffled controls `<method>-shuffled` hold the method's own maps with each target row's values",
        "permuted over the source positions (same values, sharpness and scale per row; no alignment), every other",
        "field as in the method's config (`shuffled_from` in `meta/<config>.json`). Every row also has `target_kind`",
        "(`reference` or `teacher`).",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("<this folder or repo>", "marian.de-en.saliency", split="train")',
        "```",
        "",
        "## Fields",
        "",
        "- `id`, `source`, `target`, `target_kind`",
        "- `source_tokens`, `source_ids`: the teacher's tokenisation of the source, special tokens included",
        "  (`</s>`; for mBART the source language code first)",
        "- `target_tokens`, `target_ids`: the labels, i.e. the tokens the decoder predicts (final `</s>` included; for",
        "  mBART the target language code first); the decoder-start token is not attributed",
        "- `attribution`: [T][S] float32, row t = target token t, column s = source token s (Inseq returns",
        "  source x target; transposed here). Raw maps: Inseq's default aggregation functions (`vnorm` over the",
        "  embedding dimension for gradient methods, mean over heads and layers for attention, mean over layers for",
        "  value zeroing) with `normalize=False`, as the authors; NaN set to 0. Normalise at use time.",
        "- `prob_check`: max over target tokens of |Inseq's `probability` step score - the teacher's probability from",
        "  a plain forward pass| (null for controls; engine fast: its own probabilities); shards above the tolerance",
        "  are never published.",
        "",
        "## Extraction details",
        "",
        "| config | teacher | target kind | method / control | arguments | aggregation | split: rows (skipped > max "
        "tokens) | max prob_check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metas.items():
        splits = "; ".join(
            f"{s}: {v['rows']} ({v['skipped_too_long']})" for s, v in sorted(m.get("splits", {}).items())
        )
        checks = [v["max_prob_check"] for v in m.get("splits", {}).values() if v.get("max_prob_check") is not None]
        args = {k: m[k] for k in ("attribute_args", "attribute_target", "target_layer", "seeds", "engine") if k in m}
        lines.append(
            f"| `{name}` | {m['teacher']['name']} ({m['teacher']['path']}) | {m['target_kind']} | {m['method']} | "
            f"`{json.dumps(args)}` | {m['aggregation']} | {splits} | {max(checks):.2e} |"
            if checks
            else f"| `{name}` | {m['teacher']['name']} ({m['teacher']['path']}) | {m['target_kind']} | {m['method']} | "
            f"`{json.dumps(args)}` | {m['aggregation']} | {splits} | - |"
        )
    versions = sorted({json.dumps(m["versions"], sort_keys=True) for m in metas.values()})
    lines += ["", "Software: " + "; ".join(versions), ""]
    compat = sorted(
        {
            json.dumps(v["compat"], sort_keys=True)
            for m in metas.values()
            for v in m.get("splits", {}).values()
            if v.get("compat")
        }
    )
    if compat:
        lines += ["Inseq compatibility layer (`datasets_scripts/attribution/inseq_compat.py`), probe results:", ""]
        lines += [f"- `{c}`" for c in compat]
        lines.append("")
    lines += [
        "Per-config details (teacher, versions, arguments, counts, fingerprints) are in `meta/<config>.json`.",
        "",
    ]
    lines += _quality_section(metas)
    lines += _scale_section(metas)
    lines += ["", *_yardsticks_section(root)]
    return write_card(
        root, "\n".join(lines), pretty_name="agkd-attributions", tags=["attribution", "translation", "xai"]
    )


__all__ = ["SCALE_QUANTILES", "map_scale", "parquet_map_scale", "write_dataset_card"]
