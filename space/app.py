"""AGKD Space: translate a German, French or Arabic sentence and see what the teacher's attribution maps teach.

The page shows, for one sentence:
- the translations of the no-map baseline student, of an attribution-injected student (method and operator chosen
  in the page) and of the teacher;
- heatmaps of the teacher's map for the chosen method, the Attributor's reconstruction of it, and the injected
  student's own cross-attention (mean over layers and heads), tokens on the axes;
- the results table of the report for the pair: which methods teach best.

Test-time map (the protocols of `agkd evaluate`): `teacher` (the teacher attributes its own translation; no
reference needed), `attributor` (the Attributor predicts each row from the student's prefix: no teacher), `gold`
(the teacher force-decoded on the reference: only for test-split sentences, and it leaks the reference).

    agkd space --release runs/demo/hub            # or AGKD_RELEASE=... / AGKD_HUB_ORG=<org> python space/app.py

Maps of test-split sentences are the stored rows of agkd-attributions (what `agkd evaluate` injects); a typed
sentence's map is computed on the spot with the extraction stage's fast engine
(datasets_scripts/attribution/fast_engine.py: the same maps as Inseq, one batched pass instead of one pass per target
token), Inseq where the engine refuses.
"""

from __future__ import annotations

import json
import logging
import os
import time
import unicodedata
from dataclasses import dataclass, field

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from agkd.datasets_scripts.attribution.configs import evaluation_config
from agkd.datasets_scripts.attribution.engines import attribute, engine_for
from agkd.datasets_scripts.attribution.methods import CONTROLS, METHODS, method_arguments
from agkd.datasets_scripts.release_layout import (
    BASELINE_PROTOCOL,
    REPORT_FILE,
    RESULTS_FILE,
    VERDICT_FILE,
    load_config,
    protocol_map_config,
    protocol_order,
    read_meta,
)
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.datasets_scripts.teachers import LANGUAGE_PAIRS
from agkd.space.plots import heatmap_figure
from agkd.space.release import (
    BASELINE,
    Release,
    SpaceError,
    load_attribution_teacher,
    load_attributor,
    load_student,
    load_teacher_model,
    stored_maps,
    triangulation_sections,
)
from agkd.training.evaluation.scoring import PRIMARY_METRIC
from agkd.training.verdict.design import PRIMARY_DESIGN, VERDICT_LEAD
from agkd.training.verdict.tables import method_gains, results_table

logger = logging.getLogger(__name__)

MAX_CHARS = 300
MAX_TOKENS = 64
MAP_SOURCES = ("teacher", "attributor", "gold")
EXAMPLES_PER_PAIR = 3
# A typed sentence's integrated gradients run on the Space's CPU: at most this many steps (bench_space.py measures
# the cost on the real teachers' sizes; example sentences read their stored maps and cost nothing).
LIVE_IG_STEPS = int(os.environ.get("AGKD_LIVE_IG_STEPS", "8"))
LANGUAGE_NAMES = {"de": "German", "fr": "French", "ar": "Arabic", "en": "English"}
PAIR_SCRIPTS = {"de-en": "LATIN", "fr-en": "LATIN", "ar-en": "ARABIC"}
# A few frequent function words: enough to tell German, French and English apart in a sentence of several words.
STOPWORDS = {
    "de": {
        "der",
        "die",
        "das",
        "und",
        "ist",
        "nicht",
        "ein",
        "eine",
        "ich",
        "zu",
        "mit",
        "sie",
        "es",
        "den",
        "auf",
        "von",
        "dem",
        "sich",
        "auch",
        "wir",
    },
    "fr": {
        "le",
        "la",
        "les",
        "et",
        "est",
        "un",
        "une",
        "je",
        "pas",
        "des",
        "du",
        "que",
        "qui",
        "dans",
        "il",
        "elle",
        "nous",
        "pour",
        "sur",
        "au",
    },
    "en": {
        "the",
        "and",
        "is",
        "of",
        "to",
        "a",
        "in",
        "that",
        "it",
        "was",
        "for",
        "on",
        "are",
        "with",
        "he",
        "she",
        "they",
        "this",
        "be",
        "not",
    },
}
ATTRIBUTION_DATASET = "agkd-attributions"
CORPUS_DATASET = "agkd-parallel"


# ================================================================================================ input checks
def dominant_script(text: str) -> str | None:
    """The Unicode script (first word of the character names: LATIN, ARABIC, CYRILLIC, ...) of most letters."""
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
            counts[name] = counts.get(name, 0) + 1
    return max(counts, key=counts.get) if counts else None


def guess_language(text: str) -> str | None:
    """de, fr or en when at least two function words of one language and more than of any other; else None."""
    words = [w.strip(".,;:!?\"'()«»„“”").lower() for w in text.replace("'", " ").replace("’", " ").split()]
    hits = {lang: sum(w in vocab for w in words) for lang, vocab in STOPWORDS.items()}
    best = max(hits, key=hits.get)
    if hits[best] >= 2 and all(hits[best] > n for lang, n in hits.items() if lang != best):
        return best
    return None


def check_text(text: str | None, pair: str) -> str:
    """The stripped sentence, or SpaceError with what to change."""
    text = (text or "").strip()
    if not text:
        raise SpaceError("Type a sentence (or pick an example below) to translate.")
    if len(text) > MAX_CHARS:
        raise SpaceError(
            f"The text has {len(text)} characters; the limit is {MAX_CHARS}. Translate one sentence at a time."
        )
    source = pair.split("-")[0]
    script = dominant_script(text)
    expected = PAIR_SCRIPTS.get(pair)
    if script is None:
        raise SpaceError("The text has no letters: type a sentence.")
    if expected and script != expected:
        fits = [p for p, s in PAIR_SCRIPTS.items() if s == script]
        hint = (
            f" Choose {' or '.join(fits)}."
            if fits
            else " The models only read German, French (Latin script) and Arabic."
        )
        raise SpaceError(
            f"The text is in {script.title()} script, but {LANGUAGE_NAMES[source]} ({pair}) is written in "
            f"{expected.title()} script.{hint}"
        )
    guessed = guess_language(text)
    if guessed and guessed != source:
        hint = "the models translate into English" if guessed == "en" else f"choose {guessed}-en"
        raise SpaceError(f"This looks like {LANGUAGE_NAMES[guessed]}, not {LANGUAGE_NAMES[source]}: {hint}.")
    return text


# ================================================================================================ results
@dataclass
class TranslationResult:
    """Everything one sentence produces; `as_outputs` gives the page's component values in order."""

    status: str = ""
    baseline: str = ""
    injected: str = ""
    teacher: str = ""
    figure: object = None
    details: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def as_outputs(self) -> tuple:
        return self.status, self.baseline, self.injected, self.teacher, self.figure, self.details


def _tokens(tokenizer, ids) -> list[str]:
    return tokenizer.convert_ids_to_tokens([int(i) for i in ids])


class SpaceApp:
    """The callbacks of the page, bound to one release; models are loaded on first use and cached."""

    def __init__(self, release: Release):
        self.release = release

    # -------------------------------------------------------------------------------------------- choices
    def default_pair(self) -> str | None:
        pairs = self.release.pairs()
        return pairs[0] if pairs else None

    def choices(self, pair: str | None, teacher: str | None = None, method: str | None = None) -> dict:
        """Teachers, methods and operators available for a pair, with the selected value of each."""
        teachers = self.release.teachers(pair) if pair else []
        teacher = teacher if teacher in teachers else (teachers[0] if teachers else None)
        methods = self.release.methods(pair, teacher) if teacher else []
        method = (
            method
            if method in methods
            else ("attention" if "attention" in methods else (methods[0] if methods else None))
        )
        operators = self.release.operators(pair, teacher, method) if method else []
        operator = "add" if "add" in operators else (operators[0] if operators else None)
        return {
            "teachers": teachers,
            "teacher": teacher,
            "methods": methods,
            "method": method,
            "operators": operators,
            "operator": operator,
        }

    # -------------------------------------------------------------------------------------------- maps
    def _stored_row(self, config: str, source: str) -> dict | None:
        if not self.release.has_dataset(ATTRIBUTION_DATASET):
            return None
        return stored_maps(self.release.dataset_ref(ATTRIBUTION_DATASET), config).get(source)

    def _ig_steps(self, config: str) -> tuple[int, str]:
        """(steps, note) of a typed sentence's integrated gradients: those the release's maps of `config` were
        extracted with (so typed and stored maps compare), at most `LIVE_IG_STEPS` (a CPU serves the page)."""
        meta = (
            read_meta(self.release.dataset_ref(ATTRIBUTION_DATASET), config)
            if self.release.has_dataset(ATTRIBUTION_DATASET)
            else None
        )
        steps = (meta or {}).get("attribute_args", {}).get("n_steps") or method_arguments("integrated_gradients")[
            "n_steps"
        ]
        if steps <= LIVE_IG_STEPS:
            return steps, f"{steps} integrated-gradients steps as the release's maps"
        return LIVE_IG_STEPS, (f"{LIVE_IG_STEPS} integrated-gradients steps, not the release's {steps}: capped on CPU "
                               "(AGKD_LIVE_IG_STEPS); the stored maps of the examples use all of them")

    def teacher_map(
        self, teacher: str, pair: str, method: str, source: str, target: str, source_ids, target_ids
    ) -> dict:
        """The teacher's raw map of `source` for `method` under the `teacher` protocol.

        A test-split sentence uses its stored row of `<teacher>.<pair>.<method>.teacher` (the map `agkd evaluate`
        injects; its target is the teacher's translation at extraction time). Any other sentence gets the map of
        (source, target) computed now with the fast engine (the same maps as Inseq,
        datasets_scripts/attribution/fast_engine.py), or with Inseq where the fast engine refuses a teacher. Returns
        {map, source_ids, target_ids, target, note}."""
        config = protocol_map_config(teacher, pair, method, "teacher")
        row = self._stored_row(config, source)
        if row is not None and list(row["source_ids"]) == list(source_ids):
            same = (
                "" if row["target"] == target else f" (of the teacher's translation at extraction: “{row['target']}”)"
            )
            return {
                "map": np.asarray(row["attribution"], dtype=np.float32),
                "source_ids": list(row["source_ids"]),
                "target_ids": list(row["target_ids"]),
                "note": "stored in agkd-attributions (config `.teacher`)" + same,
            }
        result = {"source_ids": list(source_ids), "target_ids": list(target_ids)}
        if method in CONTROLS:
            control = CONTROLS[method].build(len(target_ids), len(source_ids), source, 42)
            return {**result, "map": control, "note": f"control `{method}` built for this sentence"}
        if method not in METHODS:
            raise SpaceError(f"Unknown attribution method {method!r}.")
        extractor = load_attribution_teacher(pair, self.release.teacher_ref(teacher, pair), teacher)
        rows = [
            {
                "id": "space",
                "source": source,
                "target": target,
                "target_kind": "teacher",
                "source_ids": list(source_ids),
                "target_ids": list(target_ids),
            }
        ]
        ig_steps, steps_note = self._ig_steps(config) if method == "integrated_gradients" else (None, "")
        engine = engine_for("fast", extractor, method)  # Inseq where the fast engine refuses this teacher and method
        out = attribute(engine, extractor, method, rows, batch_size=1, seed=42, ig_steps=ig_steps)[0]
        engine = {"fast": "the fast engine", "inseq": "Inseq"}[engine]
        check = out["prob_check"]
        note = f"computed now with {engine}" + (f", {steps_note}" if steps_note else "")
        note += f" (probability check {check:.1e})" if check is not None else ""
        return {**result, "map": np.asarray(out["attribution"], dtype=np.float32), "note": note}

    # -------------------------------------------------------------------------------------------- main callback
    def translate(self, text: str, pair: str, teacher: str, method: str, operator: str, map_source: str):
        """Translate one sentence with the baseline, the injected student and the teacher; heatmaps of the maps.

        Returns (status, baseline translation, injected translation, teacher translation, figure, details)."""
        start = time.perf_counter()
        try:
            result = self._translate(text, pair, teacher, method, operator, map_source)
        except SpaceError as err:
            logger.info("refused: %s", err)
            return TranslationResult(status=f"⚠️ {err}").as_outputs()
        except Exception as err:  # noqa: BLE001  (the page shows a message, the app keeps serving)
            logger.exception("translation failed")
            return TranslationResult(status=f"⚠️ Something went wrong: {type(err).__name__}: {err}").as_outputs()
        total = time.perf_counter() - start
        result.timings["total"] = total
        result.status = f"✅ Translated in {total:.2f} s on CPU."
        result.details += "\n\nTimings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items())
        return result.as_outputs()

    def _translate(self, text, pair, teacher, method, operator, map_source) -> TranslationResult:
        import torch

        if pair not in self.release.pairs():
            available = ", ".join(self.release.pairs()) or "none"
            raise SpaceError(
                f"Language pair {pair!r} is not in the {self.release.describe()} (available: {available}). Run `make "
                "demo` to build it."
            )
        if teacher not in self.release.teachers(pair):
            raise SpaceError(
                f"No {teacher!r} teacher students for {pair}; choose one of {', '.join(self.release.teachers(pair))}."
            )
        if map_source not in MAP_SOURCES:
            raise SpaceError(f"Unknown test-time map {map_source!r}; choose one of {', '.join(MAP_SOURCES)}.")
        source = check_text(text, pair)
        baseline_info = self.release.student(pair, teacher, BASELINE)
        student_info = self.release.student(pair, teacher, method, operator)
        result = TranslationResult()
        timings = result.timings

        # ---- teacher translation and the map of the chosen method
        tick = time.perf_counter()
        t_model, t_tokenizer, t_kwargs = load_teacher_model(teacher, pair, self.release.teacher_ref(teacher, pair))
        source_ids = t_tokenizer(source)["input_ids"]
        if len(source_ids) > MAX_TOKENS:
            raise SpaceError(
                f"The sentence has {len(source_ids)} tokens; the models were trained on at most {MAX_TOKENS}. Shorten "
                "it."
            )
        with torch.no_grad():
            generated = t_model.generate(torch.tensor([source_ids]), max_length=MAX_TOKENS + 1, **t_kwargs)
        result.teacher = t_tokenizer.decode(generated[0], skip_special_tokens=True)
        timings["teacher"] = time.perf_counter() - tick

        tick = time.perf_counter()
        if map_source == "gold":
            row = self._stored_row(protocol_map_config(teacher, pair, method, "gold"), source)
            if row is None:
                raise SpaceError(
                    "Gold maps (the teacher force-decoded on the reference) exist only for test-split sentences: pick "
                    "an example, or use the `teacher` map."
                )
            map_target_ids, map_source_ids = list(row["target_ids"]), list(row["source_ids"])
            teacher_map, map_note = (
                np.asarray(row["attribution"], dtype=np.float32),
                f"stored gold map (reference: “{row['target']}”)",
            )
        else:
            target_ids = t_tokenizer(text_target=result.teacher)["input_ids"]
            try:
                found = self.teacher_map(teacher, pair, method, source, result.teacher, source_ids, target_ids)
            except SpaceError:
                raise
            except Exception as err:  # noqa: BLE001  (an attribution failure is reported, the app keeps serving)
                logger.exception("teacher map failed")
                raise SpaceError(
                    f"Could not compute the {method} map of this sentence: {type(err).__name__}: {err}"
                ) from err
            teacher_map, map_note = found["map"], found["note"]
            map_source_ids, map_target_ids = found["source_ids"], found["target_ids"]
        timings["teacher map"] = time.perf_counter() - tick
        source_tokens, map_target_tokens = _tokens(t_tokenizer, map_source_ids), _tokens(t_tokenizer, map_target_ids)
        input_ids = torch.tensor([map_source_ids])

        # ---- Attributor reconstruction of the same map
        tick = time.perf_counter()
        attributor_ref = self.release.attributor_ref(teacher, pair, method)
        attributor = load_attributor(attributor_ref) if attributor_ref else None
        reconstruction = None
        if attributor is not None:
            with torch.no_grad():
                reconstruction = (
                    attributor(input_ids=input_ids, labels=torch.tensor([map_target_ids])).attribution[0].numpy()
                )
        elif map_source == "attributor":
            raise SpaceError(f"The release has no Attributor for {teacher} {pair} {method}: choose the `teacher` map.")
        timings["attributor"] = time.perf_counter() - tick

        # ---- students
        tick = time.perf_counter()
        b_model, b_tokenizer = load_student(baseline_info.ref)
        with torch.no_grad():
            b_out = b_model.generate(input_ids, max_length=MAX_TOKENS + 1)
        result.baseline = b_tokenizer.decode(b_out[0], skip_special_tokens=True)
        timings["baseline student"] = time.perf_counter() - tick

        tick = time.perf_counter()
        s_model, s_tokenizer = load_student(student_info.ref)
        map_tensor = torch.tensor(teacher_map[None], dtype=torch.float32)
        with torch.no_grad():
            if map_source == "attributor":
                s_out = s_model.generate(input_ids, max_length=MAX_TOKENS + 1, attributor=attributor)
            else:
                s_out = s_model.generate(input_ids, max_length=MAX_TOKENS + 1, attribution_map=map_tensor)
            result.injected = s_tokenizer.decode(s_out[0], skip_special_tokens=True)
            # The student's own cross-attention on its output, with the map it generated with.
            decoder_input_ids = s_out[:, :-1]
            if map_source == "attributor":
                map_tensor = attributor(input_ids=input_ids, decoder_input_ids=decoder_input_ids).attribution
            forward = s_model(
                input_ids=input_ids,
                decoder_input_ids=decoder_input_ids,
                attribution_map=map_tensor,
                output_attentions=True,
            )
        cross = torch.stack([a[0] for a in forward.cross_attentions]).mean(dim=(0, 1)).numpy()  # [T, S]
        student_tokens = _tokens(s_tokenizer, s_out[0, 1:])
        timings["injected student"] = time.perf_counter() - tick

        tick = time.perf_counter()
        protocol_note = {
            "teacher": "teacher's map of its own translation",
            "gold": "gold map (reference)",
            "attributor": "Attributor's rows",
        }[map_source]
        result.figure = heatmap_figure(
            [
                {
                    "title": f"teacher map: {method} ({map_source})",
                    "matrix": teacher_map,
                    "rows": map_target_tokens,
                    "columns": source_tokens,
                },
                {
                    "title": "Attributor reconstruction",
                    "matrix": reconstruction,
                    "rows": map_target_tokens,
                    "columns": source_tokens,
                    "note": f"no Attributor for\n{method} in this release",
                },
                {
                    "title": f"student cross-attention ({operator})",
                    "matrix": cross,
                    "rows": student_tokens,
                    "columns": source_tokens,
                },
            ],
            title=f"{teacher} {pair}: rows = target tokens, columns = source tokens",
        )
        timings["plots"] = time.perf_counter() - tick
        result.details = (
            f"**Students**: baseline `{baseline_info.name}`; injected `{student_info.name}` (operator "
            f"`{student_info.operator}`).  \n"
            f"**Map injected at test time**: {protocol_note}; {map_note}.  \n"
            f"**Attributor**: {('`' + attributor_ref + '`') if attributor_ref else 'none in this release'}.  \n"
            "Maps are raw (as stored and injected); the student panel is its cross-attention averaged over layers and "
            "heads."
        )
        return result

    # -------------------------------------------------------------------------------------------- report table
    def results_markdown(self, pair: str | None, teacher: str | None = None) -> str:
        """The report's methods x operators tables of the pair (test split), one per protocol, with a ranking."""
        if not pair:
            return f"No students in the {self.release.describe()} yet: run `make demo`."
        rows = [
            r for r in self.release.results() if r["pair"] == pair and (teacher is None or r["teacher_name"] == teacher)
        ]
        if not rows:
            where = self.release.results_path or RESULTS_FILE
            return f"No evaluation results for {pair} yet (looked in `{where}`): run `agkd evaluate` and `agkd report`."
        split = "test" if any(r["split"] == "test" for r in rows) else rows[0]["split"]
        rows = [r for r in rows if r["split"] == split and r["target_kind"] == "reference"]
        lines = [
            f"### What teaches best: {teacher or ''} {pair}, `{split}` split".replace("  ", " "),
            f"**Primary design** (carries the report's verdict): operator `{PRIMARY_DESIGN[0]}` under protocol "
            f"`{PRIMARY_DESIGN[1]}`: the students' attention was trained toward the maps and they get no map at test "
            "time, so nothing they see was computed from the reference.",
        ]
        lines += self.verdict_table(pair, teacher, split)
        baselines = [r for r in rows if r["protocol"] == BASELINE_PROTOCOL]
        if baselines:
            lines.append(
                "Baseline (no map): BLEU "
                + ", ".join(f"{b['bleu']:.2f}" for b in baselines)
                + " / chrF "
                + ", ".join(f"{b['chrf']:.2f}" for b in baselines)
                + f" on {baselines[0]['examples']} sentences."
            )
        protocols = sorted(
            {r["protocol"] for r in rows} - {BASELINE_PROTOCOL},
            key=lambda p: (p != PRIMARY_DESIGN[1], protocol_order(p)),
        )
        for protocol in protocols:
            group = [r for r in rows if r["protocol"] == protocol]
            role = {
                PRIMARY_DESIGN[1]: ": the primary design (leak-free)",
                "gold": ": the paper's setting (leaks the reference)",
            }
            lines += [
                f"#### protocol `{protocol}`{role.get(protocol, '')}: every cell, on the map-annotated pairs",
                f"Gain over the no-map baseline on `{PRIMARY_METRIC}` / top-1 agreement with the reference / with the "
                "teacher's translation (baseline minus student for the NLL, so positive = better; mean ± sd over "
                "seeds; unmarked: only the verdict's rules mark a difference):",
                results_table(group, (PRIMARY_METRIC, "agreement_reference", "agreement_teacher")),
                "ΔBLEU / ΔchrF (mean ± sd over seeds):",
                results_table(group),
            ]
            gains = method_gains(group, PRIMARY_METRIC)
            if gains:
                ranking = sorted(gains, key=lambda m: float(np.mean(gains[m])), reverse=True)
                lines.append(
                    f"Order by mean gain on `{PRIMARY_METRIC}` (not a verdict): "
                    + ", ".join(f"{i + 1}. {m} ({np.mean(gains[m]):+.4f})" for i, m in enumerate(ranking))
                )
        report = self.release.results_path.parent / REPORT_FILE if self.release.results_path else None
        if report is not None and report.exists():
            verdicts = [line for line in report.read_text().splitlines() if line.startswith(VERDICT_LEAD)]
            lines[2:2] = verdicts[:1]  # the primary design's verdict, as the report's first screen states it
            lines += triangulation_sections(report.read_text(), pair, teacher)
            lines.append(f"The full report, with plots, is `{report}`.")
        return "\n\n".join(lines)

    def verdict_table(self, pair: str, teacher: str | None, split: str) -> list[str]:
        """The report's own estimates and marks for the primary design (`verdict.json`, written by `agkd report`):
        the same numbers, intervals and Holm marks as the report's first screen, labelled."""
        path = self.release.results_path.with_name(VERDICT_FILE) if self.release.results_path else None
        if path is None or not path.exists():
            return []
        found = [(title, record) for title, record in json.loads(path.read_text()).items()
                 if f" {pair}," in title and (teacher is None or title.startswith(f"{teacher} "))
                 and f"split `{split}`" in title and "targets `reference`" in title]
        lines = []
        for title, record in found:
            lines += [
                f"#### The verdict's estimates: {title}",
                f"Gain on `{PRIMARY_METRIC}` in nats/token of each method's students (positive = better), mean "
                f"[95% interval over {len(record['warm_starts'])} independent warm starts and {record['sentences']} "
                "test sentences]; `*`: significant after Holm over the design's family (the report's rule).",
                "| method | gain over no map | over its shuffled twin | over diagonal |",
                "|---|---|---|---|",
                *(f"| {method} | " + " | ".join((cells.get(c) or {}).get("text", "-") for c in
                                                 ("baseline", "shuffled", "diagonal")) + " |"
                  for method, cells in record["methods"].items()),
            ]
        return lines

    # -------------------------------------------------------------------------------------------- examples
    def examples(self, pair: str, limit: int = EXAMPLES_PER_PAIR) -> list[str]:
        """Short test-split sources of the pair: from the maps dataset (gold maps exist), else from the corpus."""
        teachers = self.release.teachers(pair)
        candidates = []
        for dataset, config in (
            (ATTRIBUTION_DATASET, evaluation_config(teachers[0], pair) if teachers else None),
            (CORPUS_DATASET, pair),
        ):
            if config is None or not self.release.has_dataset(dataset):
                continue
            try:
                data = load_config(self.release.dataset_ref(dataset), config)
            except (ValueError, FileNotFoundError, OSError) as err:
                logger.info("no examples from %s/%s: %s", dataset, config, err)
                continue
            if "test" in data:
                candidates = [s for s in data["test"]["source"][:200] if 0 < len(s) <= min(MAX_CHARS, 120)]
                if candidates:
                    break
        return candidates[:limit]


# ================================================================================================ page
INTRO = f"""# AGKD: which attribution methods teach a translation student?

A teacher's attribution map (which source words explain each target word, by one of eight Inseq methods) is
injected into the cross-attention of a small student. A method *teaches* if the student translates better
with it than the no-map baseline. Type or pick a sentence, choose the method and the operator that combines
the map with the attention logits, and compare. Example sentences (held-out test split) use the stored maps;
a typed sentence's map is computed on the spot, on this Space's CPU. On a teacher of opus-mt's size (74M parameters,
2 CPU threads, benchmarks/bench_space.py) that takes about 0.5 s for attention, 1.3 s for value zeroing, 2-3 s for the
gradient methods, 13 s for integrated gradients (capped here at {LIVE_IG_STEPS} steps; 72 s at the 50 steps of the stored
maps) and 22 s for GradientSHAP; at mBART-50's width (d_model 1024, 250k-token vocabulary) 7 s for attention, 9 s for
saliency and 60 s for integrated gradients. Pick an example sentence for an instant map."""  # noqa: E501 (the page text, byte for byte)


def build_demo(release: Release | None = None):
    """The gr.Blocks page; `release` defaults to `Release.from_env()`."""
    import gradio as gr

    app = SpaceApp(release or Release.from_env())
    pairs = app.release.pairs()
    pair0 = pairs[0] if pairs else "de-en"
    c = app.choices(pair0)
    with gr.Blocks(title="AGKD: attribution-guided distillation") as demo:
        gr.Markdown(INTRO)
        if not pairs:
            reason = f": {app.release.problem}" if app.release.problem else ""
            gr.Markdown(
                f"⚠️ No students found in the {app.release.describe()}{reason}. Build a release with `agkd pipeline` "
                "(`make demo`), or point the page at one: `AGKD_RELEASE=<runs/<preset>/hub>` or `AGKD_HUB_ORG=<org>`.",
                elem_id="release-problem",
            )
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(
                    label="Sentence (German, French or Arabic)",
                    lines=2,
                    max_length=MAX_CHARS * 2,
                    elem_id="source-text",
                )
                with gr.Row():
                    pair = gr.Dropdown(
                        choices=list(pairs or LANGUAGE_PAIRS),
                        value=pair0,
                        label="Language pair",
                        allow_custom_value=True,
                        elem_id="pair",
                    )
                    teacher = gr.Dropdown(
                        choices=c["teachers"],
                        value=c["teacher"],
                        label="Teacher",
                        allow_custom_value=True,
                        elem_id="teacher",
                    )
                with gr.Row():
                    method = gr.Dropdown(
                        choices=c["methods"],
                        value=c["method"],
                        label="Attribution method",
                        allow_custom_value=True,
                        elem_id="method",
                    )
                    operator = gr.Dropdown(
                        choices=c["operators"],
                        value=c["operator"],
                        label="Operator",
                        allow_custom_value=True,
                        elem_id="operator",
                    )
                    map_source = gr.Radio(
                        choices=list(MAP_SOURCES), value="teacher", label="Map at test time", elem_id="map-source"
                    )
                button = gr.Button("Translate", variant="primary", elem_id="translate-button")
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="status")
                baseline = gr.Textbox(label="Baseline student (no map)", interactive=False, elem_id="baseline-output")
                injected = gr.Textbox(
                    label="Attribution-injected student", interactive=False, elem_id="injected-output"
                )
                teacher_out = gr.Textbox(label="Teacher", interactive=False, elem_id="teacher-output")
        plot = gr.Plot(label="Maps", elem_id="heatmaps")
        details = gr.Markdown(elem_id="details")
        inputs = [text, pair, teacher, method, operator, map_source]
        outputs = [status, baseline, injected, teacher_out, plot, details]
        example_rows = []
        for p in pairs:
            cp = app.choices(p)
            example_rows += [[s, p, cp["teacher"], cp["method"], cp["operator"], "teacher"] for s in app.examples(p)]
        if example_rows:
            gr.Examples(
                examples=example_rows,
                inputs=inputs,
                outputs=outputs,
                fn=app.translate,
                cache_examples=True,
                cache_mode="lazy",
                label="Examples from the held-out test split",
                elem_id="examples",
            )
        results = gr.Markdown(app.results_markdown(pairs[0] if pairs else None, c["teacher"]), elem_id="results")

        def on_pair(p):
            cp = app.choices(p)
            return (
                gr.Dropdown(choices=cp["teachers"], value=cp["teacher"]),
                gr.Dropdown(choices=cp["methods"], value=cp["method"]),
                gr.Dropdown(choices=cp["operators"], value=cp["operator"]),
                app.results_markdown(p if p in app.release.pairs() else None, cp["teacher"]),
            )

        def on_teacher(p, t):
            cp = app.choices(p, t)
            return (
                gr.Dropdown(choices=cp["methods"], value=cp["method"]),
                gr.Dropdown(choices=cp["operators"], value=cp["operator"]),
                app.results_markdown(p, t),
            )

        def on_method(p, t, m):
            cp = app.choices(p, t, m)
            return gr.Dropdown(choices=cp["operators"], value=cp["operator"])

        pair.input(on_pair, [pair], [teacher, method, operator, results], api_visibility="private")
        teacher.input(on_teacher, [pair, teacher], [method, operator, results], api_visibility="private")
        method.input(on_method, [pair, teacher, method], [operator], api_visibility="private")
        button.click(app.translate, inputs, outputs, api_name="translate", concurrency_limit=1)
        text.submit(
            app.translate, inputs, outputs, api_name="translate_submit", api_visibility="private", concurrency_limit=1
        )
        gr.api(app.results_markdown, api_name="results")
    demo.agkd_app = app  # for tests and warm-up
    return demo


def warm_up(app: SpaceApp) -> None:
    """Load the default pair's teacher and students so the first visitor does not wait for them."""
    try:
        pair = app.default_pair()
        if pair is None:
            return
        c = app.choices(pair)
        load_teacher_model(c["teacher"], pair, app.release.teacher_ref(c["teacher"], pair))
        load_student(app.release.student(pair, c["teacher"], BASELINE).ref)
        if c["method"]:
            load_student(app.release.student(pair, c["teacher"], c["method"], c["operator"]).ref)
        logger.info("warm-up done for %s", pair)
    except Exception as err:  # noqa: BLE001  (warm-up is an optimisation; the page reports real problems)
        logger.warning("warm-up failed: %s", err)


def _on_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))  # a Hub Space serves on all interfaces


def _release_from_env() -> str | None:
    root = Release.from_env().root
    return str(root) if root else None


@dataclass
class SpaceArguments:
    """The defaults are read from the environment each time the parser is built (a Space sets them)."""

    release: str | None = field(
        default_factory=_release_from_env,
        metadata={"help": "release folder (runs/<preset>/hub; env AGKD_RELEASE)"},
    )
    hub_org: str | None = field(
        default_factory=lambda: Release.from_env().hub_org,
        metadata={"help": "read the release from this Hub organisation instead (env AGKD_HUB_ORG)"},
    )
    results: str | None = field(
        default_factory=lambda: os.environ.get("AGKD_RESULTS"),
        metadata={"help": "results.jsonl (default: <release>/../results/results.jsonl)"},
    )
    host: str = field(
        default_factory=lambda: os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0" if _on_space() else "127.0.0.1"),
        metadata={"help": "address to serve on (0.0.0.0 for all)"},
    )
    port: int = field(
        default_factory=lambda: int(os.environ.get("GRADIO_SERVER_PORT", 7860)), metadata={"help": "port"}
    )
    no_warm_up: bool = field(default=False, metadata={"help": "do not preload the default models at start"})


def serve(args: SpaceArguments) -> int:
    """`agkd space`: launch the page on the local release folders (or a Hub organisation)."""
    import threading

    # `agkd space` has set logging up already; a Space's launcher (`sys.exit(main())` in its app.py) has not
    # (basicConfig is a no-op otherwise)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    release = Release(root=args.release, hub_org=args.hub_org, results=args.results)
    if release.root is not None:
        # Lazily cached examples go next to the release (git-ignored), not into the working directory.
        os.environ.setdefault("GRADIO_EXAMPLES_CACHE", str(release.root.parent / "space-cache"))
    demo = build_demo(release)
    if not args.no_warm_up:
        threading.Thread(target=warm_up, args=(demo.agkd_app,), daemon=True).start()
    logger.info("serving the %s on http://%s:%d", release.describe(), args.host, args.port)
    demo.launch(server_name=args.host, server_port=args.port, footer_links=["gradio", "settings"])
    return 0


main = stage_main(SpaceArguments, serve, prog="agkd space", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
