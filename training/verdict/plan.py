"""The verdict's analysis plan: what will be tested, on what, by which rules, written before a run trains anything.

The plan is data (`AnalysisPlan`): the metric, the design, the claim's contrasts and the content check, every
decision rule and its constant, the equivalence bound, and the run's seeds and warm-start layout. `agkd pipeline`
writes it to `results/analysis_plan.json` before it starts any job, with its SHA-256 over the canonical JSON; the report
rebuilds the plan from the code and the results it reads and prints both hashes: a report made under another plan
(other code rules, other seeds) says so. `docs/analysis-plan.md` records the demo's plan and hash, dated, before the
demo run whose numbers the README quotes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agkd.datasets_scripts.release_layout import ANALYSIS_PLAN_FILE
from agkd.training.evaluation.scoring import PRIMARY_METRIC
from agkd.training.presets import PRESETS
from agkd.training.verdict import statistics as verdict
from agkd.training.verdict.design import CLAIM_CONTRAST, CONTENT_CONTRAST, PRIMARY_DESIGN


@dataclass(frozen=True)
class AnalysisPlan:
    """Everything the verdict's answer depends on that is fixed before the data: any change changes the hash."""

    preset: str
    seeds: tuple[int, ...]
    student_init: str
    warm_starts: int  # distinct warm starts the seeds fine-tune (`Preset.warm_start_of`); 0 for scratch
    # The positive control's size where the preset departs from the students' (`presets.ControlPreset`); left out of
    # the plan at the default, so that plans written before the field existed keep their hashes.
    control: dict | None = None
    metric: str = PRIMARY_METRIC
    design: tuple[str, str] = PRIMARY_DESIGN
    sentences: str = "the whole test split (students of the primary design need no map at test time)"
    claim: str = (f"each of {', '.join(verdict.PAPER_TOP)} gains more than each of {', '.join(verdict.PAPER_REST)}")
    contrasts: tuple[tuple[str, str], ...] = tuple(itertools.product(verdict.PAPER_TOP, verdict.PAPER_REST))
    claim_contrast: str = CLAIM_CONTRAST
    content_check: str = CONTENT_CONTRAST
    rules: dict = field(default_factory=lambda: {
        "alpha": verdict.ALPHA,
        "power": verdict.POWER,
        "equivalence_bound": verdict.EQUIVALENCE_BOUND,
        "holds": "all 15 two-sided 95% intervals above 0 (intersection-union test, no multiplicity correction)",
        "does not hold": "a contrast significantly negative after Holm over the 15 two-sided p-values",
        "not by a practically relevant margin": "a contrast equivalent to 0 within the bound, TOST, Holm over 15",
        "order": "does not hold, then not by a relevant margin, then holds, else inconclusive",
        "variance": "crossed random effects (replicates x sentences), each term once, seeds of one warm start "
                    "averaged into one replicate",
        "df_rule": verdict.DF_RULE,
        "min_replicates": verdict.MIN_REPLICATES,
        "seeds": "one common seed set for every system, else inconclusive",
        "sign_rule": "none",
    })

    def as_dict(self) -> dict:
        plan = json.loads(json.dumps(asdict(self)))
        if self.control is None:
            del plan["control"]
        return plan

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


def plan_for(preset: str, seeds: list[int] | None = None, student_init: str | None = None) -> AnalysisPlan:
    """The plan of a run of `preset` (its seeds and init unless narrowed)."""
    spec = PRESETS[preset]
    init = student_init or spec.student_init
    seeds = tuple(sorted(seeds if seeds is not None else spec.seeds))
    warm_starts = len({spec.warm_start_of(s) for s in seeds}) if init == "warm" else 0
    control = None if spec.control.is_default() else asdict(spec.control)
    return AnalysisPlan(preset, seeds, init, warm_starts, control=control)


def write_plan(results_dir: str | Path, plan: AnalysisPlan) -> Path:
    """`results/analysis_plan.json` with the hash and when it was written; an existing plan with the same hash is
    kept (its date is the first writing), another one is replaced and the replacement logged by the caller."""
    path = Path(results_dir) / ANALYSIS_PLAN_FILE
    if path.exists() and json.loads(path.read_text()).get("sha256") == plan.sha256():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"sha256": plan.sha256(), "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "plan": plan.as_dict()}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_plan(results_dir: str | Path) -> dict | None:
    path = Path(results_dir) / ANALYSIS_PLAN_FILE
    return json.loads(path.read_text()) if path.exists() else None


def plan_line(results_dir: str | Path, current: AnalysisPlan | None) -> str:
    """The report's sentence on the plan: its hash and date, or that it is missing or another plan."""
    written = read_plan(results_dir)
    if written is None:
        return ("No analysis plan was written before this run (`results/analysis_plan.json`): the rules are the "
                "code's, but nothing records that they preceded the data.")
    line = f"Analysis plan `{written['sha256'][:12]}`, written {written['written']} before the run's first training job"
    if current is None or current.sha256() == written["sha256"]:
        return line + " (`results/analysis_plan.json`); this report follows it."
    differences = sorted(key for key, value in current.as_dict().items() if written["plan"].get(key) != value)
    return (line + f"; **this report was made under another plan** (`{current.sha256()[:12]}`: "
            f"{', '.join(differences)} differ).")
