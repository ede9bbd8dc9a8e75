"""Where the Space finds its models, maps and results: a local release folder or a Hub organisation.

A release is the Hub layout that the pipeline writes (`runs/<preset>/hub/`):

    models/teacher-marian-<pair>, models/teacher-mbart              teachers (datasets_scripts/teachers.py registry)
    models/student-<teacher>-<pair>-<method>[-<operator>]...-s<seed>  students, each with agkd_run.json
    models/attributor-<teacher>-<pair>-<method without underscores>   Attributors (optional)
    datasets/agkd-attributions, datasets/agkd-parallel               maps and the corpus
    ../results/results.jsonl                                         written by `agkd evaluate`
    ../results/report.md                                             the page quotes its verdict and triangulation

Environment variables (read by `Release.from_env`):

    AGKD_RELEASE   local release folder (default `runs/demo/hub`)
    AGKD_HUB_ORG   a Hub organisation or user that holds the same repos (`<org>/student-...`); overrides AGKD_RELEASE
    AGKD_RESULTS   results.jsonl to show (default `<release>/../results/results.jsonl`)

Models are loaded once per process and kept (`functools.lru_cache`); a lock serialises the first load.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from agkd.datasets_scripts.attribution.configs import BASELINE
from agkd.datasets_scripts.attribution.teacher import Teacher
from agkd.datasets_scripts.release_layout import (
    RESULTS_FILE,
    TRIANGULATION_HEADING,
    load_config,
    read_results,
    split_curve_rows,
)
from agkd.datasets_scripts.teachers import (
    LANGUAGE_PAIRS,
    TEACHER_FAMILIES,
    generation_kwargs,
    load_teacher,
    resolve_teacher,
    teacher_spec,
)
from agkd.training.presets import GRID_OPERATORS, SCALE_FAIR_NORMALIZATION
from agkd.training.verdict.design import VERDICT_LEAD
from agkd.training.verdict.tables import method_order

logger = logging.getLogger(__name__)

DEFAULT_RELEASE = "runs/demo/hub"
_LOAD_LOCK = threading.RLock()


class SpaceError(Exception):
    """A problem the visitor can act on (bad input, a model that is not in the release): shown in the page."""


# Which normalisation the page shows where a cell was trained under several: the scale-fair one the verdict reads,
# then the paper's raw maps.
NORMALIZATION_PREFERENCE = (SCALE_FAIR_NORMALIZATION, "none")


def normalization_rank(normalization: str) -> int:
    if normalization in NORMALIZATION_PREFERENCE:
        return NORMALIZATION_PREFERENCE.index(normalization)
    return len(NORMALIZATION_PREFERENCE)


@dataclass(frozen=True)
class StudentInfo:
    """One trained student, as described by its agkd_run.json."""

    name: str
    ref: str  # local folder or Hub id
    method: str
    operator: str
    pair: str
    teacher_name: str
    seed: int
    map_normalization: str = "none"
    target_kind: str = "reference"
    teacher: str = ""  # the teacher it learnt from: a release folder's name, or a Hub id (`--hub_teachers`)

    @property
    def is_baseline(self) -> bool:
        return self.method == BASELINE

    @property
    def is_default_variant(self) -> bool:
        """A student of the reference targets (layer/head subsets are encoded in the name); of several normalisations
        `Release.student` takes the scale-fair one first (`NORMALIZATION_PREFERENCE`)."""
        return self.target_kind == "reference"


class Release:
    """A local release folder (`root`) or a Hub organisation (`hub_org`)."""

    def __init__(self, root: str | Path | None = None, hub_org: str | None = None, results: str | Path | None = None):
        self.hub_org = hub_org
        self.root = None if hub_org else Path(root or DEFAULT_RELEASE)
        if results is not None:
            self.results_path = Path(results)
        elif self.root is not None:
            self.results_path = self.root.parent / "results" / RESULTS_FILE
        else:
            self.results_path = None
        self._students: list[StudentInfo] | None = None
        self._model_names: list[str] | None = None
        self.problem: str | None = None  # why the release holds no models, for the page

    @classmethod
    def from_env(cls) -> Release:
        """`AGKD_HUB_ORG` (Hub repo ids), else on a Hub Space (`SPACE_ID` set) without `AGKD_RELEASE` the Space's own
        owner (where `agkd push` put the models next to it), else the local folder `AGKD_RELEASE`."""
        hub_org = os.environ.get("AGKD_HUB_ORG") or None
        if hub_org is None and os.environ.get("SPACE_ID") and not os.environ.get("AGKD_RELEASE"):
            hub_org = os.environ["SPACE_ID"].split("/")[0]
        return cls(
            root=os.environ.get("AGKD_RELEASE") or DEFAULT_RELEASE,
            hub_org=hub_org,
            results=os.environ.get("AGKD_RESULTS") or None,
        )

    def describe(self) -> str:
        return f"Hub organisation `{self.hub_org}`" if self.hub_org else f"release folder `{self.root}`"

    # -------------------------------------------------------------------------------------------- names
    @property
    def models_root(self) -> Path | None:
        return None if self.root is None else self.root / "models"

    def model_names(self) -> list[str]:
        if self._model_names is None:
            if self.hub_org:
                from huggingface_hub import HfApi

                try:
                    self._model_names = sorted(m.id.split("/", 1)[1] for m in HfApi().list_models(author=self.hub_org))
                except Exception as err:  # noqa: BLE001  (offline, no such organisation: the page says so)
                    self.problem = (
                        f"the models of `{self.hub_org}` cannot be listed on the Hub ({type(err).__name__}: {err})"
                    )
                    self._model_names = []
            elif self.models_root.is_dir():
                self._model_names = sorted(p.name for p in self.models_root.iterdir() if (p / "config.json").exists())
            else:
                self.problem = f"there is no folder `{self.models_root}`"
                self._model_names = []
        return self._model_names

    def model_ref(self, name: str) -> str:
        return f"{self.hub_org}/{name}" if self.hub_org else str(self.models_root / name)

    def dataset_ref(self, name: str) -> str:
        return f"{self.hub_org}/{name}" if self.hub_org else str(self.root / "datasets" / name)

    def has_dataset(self, name: str) -> bool:
        if self.hub_org:
            return True  # asked lazily; a missing repo surfaces as a SpaceError where it is read
        return (self.root / "datasets" / name / "README.md").exists()

    def _read_run(self, name: str) -> dict | None:
        if self.hub_org:
            from huggingface_hub import hf_hub_download

            try:
                return json.loads(Path(hf_hub_download(self.model_ref(name), "agkd_run.json")).read_text())
            except Exception as err:  # noqa: BLE001  (a repo without the file is not a student)
                logger.warning("%s: no agkd_run.json (%s)", name, err)
                return None
        path = self.models_root / name / "agkd_run.json"
        return json.loads(path.read_text()) if path.exists() else None

    # -------------------------------------------------------------------------------------------- students
    def students(self) -> list[StudentInfo]:
        if self._students is None:
            found = []
            for name in self.model_names():
                if not name.startswith("student-"):
                    continue
                run = self._read_run(name)
                if run is None:
                    continue
                found.append(
                    StudentInfo(
                        name=name,
                        ref=self.model_ref(name),
                        method=run["method"],
                        operator=run["operator"],
                        pair=run["pair"],
                        teacher_name=run["teacher_name"],
                        seed=int(run["seed"]),
                        map_normalization=run.get("map_normalization", "none"),
                        target_kind=run.get("target_kind", "reference"),
                        teacher=run.get("teacher", ""),
                    )
                )
            self._students = found
            logger.info("%s: %d students", self.describe(), len(found))
        return self._students

    def pairs(self) -> list[str]:
        """Language pairs with a baseline student (the page compares everything with it)."""
        present = {s.pair for s in self.students() if s.is_baseline}
        return [p for p in LANGUAGE_PAIRS if p in present]

    def teachers(self, pair: str) -> list[str]:
        present = {s.teacher_name for s in self.students() if s.pair == pair and s.is_baseline}
        return [f for f in TEACHER_FAMILIES if f in present] + sorted(present - set(TEACHER_FAMILIES))

    def methods(self, pair: str, teacher: str) -> list[str]:
        return method_order({s.method for s in self._variants(pair, teacher) if not s.is_baseline})

    def operators(self, pair: str, teacher: str, method: str) -> list[str]:
        present = {s.operator for s in self._variants(pair, teacher) if s.method == method}
        return [o for o in GRID_OPERATORS if o in present] + sorted(present - set(GRID_OPERATORS))

    def _variants(self, pair: str, teacher: str) -> list[StudentInfo]:
        return [s for s in self.students() if s.pair == pair and s.teacher_name == teacher and s.is_default_variant]

    def student(self, pair: str, teacher: str, method: str, operator: str | None = None) -> StudentInfo:
        """The student of (pair, teacher, method, operator) with the lowest seed; SpaceError if there is none."""
        matches = [
            s
            for s in self._variants(pair, teacher)
            if s.method == method and (s.is_baseline or operator is None or s.operator == operator)
        ]
        if not matches:
            what = (
                "baseline student" if method == BASELINE else f"student for method {method!r} and operator {operator!r}"
            )
            available = ", ".join(
                sorted({f"{s.method}/{s.operator}" for s in self._variants(pair, teacher) if not s.is_baseline})
            )
            raise SpaceError(
                f"No {what} for {teacher} {pair} in the {self.describe()}."
                + (f" Available: {available}." if available else "")
            )
        return min(matches, key=lambda s: (normalization_rank(s.map_normalization), s.seed, s.name))

    # -------------------------------------------------------------------------------------------- other models
    def teacher_ref(self, family: str, pair: str) -> str:
        if self.hub_org:
            local = teacher_spec(family, pair).local_name
            return self.model_ref(local) if local in self.model_names() else teacher_spec(family, pair).hub_id
        try:
            ref = resolve_teacher(family, pair, self.models_root)
        except FileNotFoundError as err:
            # A release built with `--hub_teachers` holds no teacher folder: its students name the Hub checkpoint.
            hub_ids = sorted(
                {
                    s.teacher
                    for s in self.students()
                    if s.pair == pair and s.teacher_name == family and is_hub_id(s.teacher)
                }
            )
            if hub_ids:
                return hub_ids[0]
            raise SpaceError(f"The {family} teacher for {pair} is missing: {err}") from err
        if not Path(ref).is_dir():
            raise SpaceError(f"The {family} teacher for {pair} is not in the {self.describe()} (looked for {ref}).")
        return ref

    def attributor_ref(self, teacher: str, pair: str, method: str) -> str | None:
        """The Attributor of (teacher, pair, method), or None if the release has none."""
        name = f"attributor-{teacher}-{pair}-{method.replace('_', '')}"
        if name not in self.model_names():
            return None
        if not self.hub_org and not (self.models_root / name / "model.safetensors").exists():
            return None
        return self.model_ref(name)

    # -------------------------------------------------------------------------------------------- results
    def results(self) -> list[dict]:
        if self.results_path is None or not self.results_path.exists():
            return []
        return split_curve_rows(read_results(self.results_path))[0]  # the grid's rows: the tables compare cells


def is_hub_id(ref: str) -> bool:
    """`owner/name` that is no path of this machine."""
    return ref.count("/") == 1 and not ref.startswith(("/", ".")) and not Path(ref).exists()


# ================================================================================================ cached loaders
def _missing(ref: str, err: Exception) -> SpaceError:
    return SpaceError(f"Cannot load the model at `{ref}`: {type(err).__name__}: {err}")


@functools.lru_cache(maxsize=32)
def load_student(ref: str):
    """(model, tokenizer) of a student, eager attention so every layer reports its cross-attention."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from agkd import modeling  # noqa: F401  (registers the AGKD classes: local folders load without remote code)

    with _LOAD_LOCK:
        try:
            model = AutoModelForSeq2SeqLM.from_pretrained(ref, trust_remote_code=True).eval()
            tokenizer = AutoTokenizer.from_pretrained(ref)
        except (OSError, ValueError) as err:
            raise _missing(ref, err) from err
        model.set_attn_implementation("eager")
        logger.info("loaded student %s", ref)
        return model, tokenizer


@functools.lru_cache(maxsize=8)
def load_teacher_model(family: str, pair: str, ref: str):
    """(model, tokenizer, generate kwargs) of a teacher, through the registry of datasets_scripts/teachers.py."""
    with _LOAD_LOCK:
        try:
            model, tokenizer = load_teacher(family, pair, ref)
        except (OSError, ValueError) as err:
            raise _missing(ref, err) from err
        logger.info("loaded teacher %s", ref)
        return model.eval(), tokenizer, generation_kwargs(family, tokenizer, pair)


@functools.lru_cache(maxsize=8)
def load_attribution_teacher(pair: str, ref: str, family: str):
    """The extraction stage's teacher wrapper (Inseq models per method), for maps of typed sentences."""
    import torch

    with _LOAD_LOCK:
        return Teacher(ref, pair, torch.device("cpu"), compat=True, name=family)


@functools.lru_cache(maxsize=32)
def load_attributor(ref: str):
    from transformers import AutoModel

    from agkd import modeling  # noqa: F401

    with _LOAD_LOCK:
        try:
            model = AutoModel.from_pretrained(ref, trust_remote_code=True).eval()
        except (OSError, ValueError) as err:
            raise _missing(ref, err) from err
        logger.info("loaded attributor %s", ref)
        return model


@functools.lru_cache(maxsize=64)
def stored_maps(dataset_ref: str, config: str, split: str = "test") -> dict[str, dict]:
    """Rows of one agkd-attributions config and split, by source sentence ({} if the config does not exist)."""
    try:
        data = load_config(dataset_ref, config)
    except (ValueError, FileNotFoundError, OSError) as err:
        logger.info("no stored maps %s/%s: %s", dataset_ref, config, err)
        return {}
    if split not in data:
        return {}
    return {row["source"]: row for row in data[split]}


def clear_caches() -> None:
    for f in (load_student, load_teacher_model, load_attribution_teacher, load_attributor, stored_maps):
        f.cache_clear()


# ================================================================================================ the report's excerpt
def triangulation_sections(report: str, pair: str, teacher: str | None) -> list[str]:
    """The report's "Beside the verdict" sections of the pair (plausibility, faithfulness, sanity and their agreement
    with what each method teaches), without their plots (paths of the report's folder)."""
    sections, current = [], None
    for line in report.splitlines():
        if line.startswith("## "):
            current = None
            heading = line.removeprefix("## ")
            if heading.startswith(TRIANGULATION_HEADING) and heading.endswith(f"{pair})") and (
                teacher is None or f"({teacher} " in heading
            ):
                current = [f"#### {heading}"]
                sections.append(current)
        elif current is not None and not line.startswith("!["):
            current.append(line)
    return ["\n".join(section).strip() for section in sections]


def page_excerpt(report: str) -> str:
    """What the page quotes of a report and nothing else: its verdict sentences and its "Beside the verdict" sections
    without plots. The Space folder gets this, not the whole report, whose header names the build machine's folders."""
    keep, inside = [], False
    for line in report.splitlines():
        if line.startswith("## "):
            inside = line.removeprefix("## ").startswith(TRIANGULATION_HEADING)
        if line.startswith(VERDICT_LEAD) or (inside and not line.startswith("![")):
            keep.append(line)
    return "\n".join(keep) + "\n"
