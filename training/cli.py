"""The `agkd` command line: one sub-command per stage of the pipeline.

Every stage is a module with a `main(argv)` function, built with `stage_main` and run as a script with
`run_as_script` (both defined in `agkd.datasets_scripts.stage`, the bottom floor); the
registry below is the one place that names them, so `agkd --help`, the pipeline and the docs use the same names.
Modules are imported only when their stage runs, which keeps `agkd --help` fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass

from agkd import __version__
from agkd.datasets_scripts.stage import setup_logging

__all__ = ["STAGES", "main", "run_stage"]

logger = logging.getLogger("agkd")


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    help: str


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "corpus",
            "agkd.datasets_scripts.build_corpus",
            "build the parallel corpus agkd-parallel (de-en, fr-en, ar-en) offline",
        ),
        Stage(
            "teacher",
            "agkd.training.train_teacher",
            "train a Marian or mBART teacher on agkd-parallel (accelerate script)",
        ),
        Stage(
            "extract",
            "agkd.datasets_scripts.extract_attributions",
            "extract attribution maps with Inseq into agkd-attributions",
        ),
        Stage("student", "agkd.training.train_student", "train an attribution-injected student (accelerate script)"),
        Stage("attributor", "agkd.training.train_attributor", "train an Attributor that reconstructs a teacher's maps"),
        Stage(
            "instrument",
            "agkd.training.verdict.instrument",
            "the verdict's positive control: can the students' regime see planted alignment content?",
        ),
        Stage(
            "triangulate",
            "agkd.training.triangulation.triangulate",
            "beside the verdict: AER of each method's maps against silver and gold alignments, faithfulness (AOPC) and "
            "a randomisation sanity check",
        ),
        Stage(
            "evaluate",
            "agkd.training.evaluation.evaluate",
            "BLEU/chrF and teacher-forced simulation metrics of students under each test-time map protocol",
        ),
        Stage("report", "agkd.training.verdict.report", "write report.md and plots from results/*.jsonl"),
        Stage(
            "pipeline",
            "agkd.training.orchestration.pipeline",
            "run every stage of a preset (smoke, demo, lab, paper), skipping finished ones",
        ),
        Stage("push", "agkd.training.orchestration.push", "upload the release folders to the Hub (dry-run by default)"),
        Stage("space", "agkd.space.app", "launch the Gradio Space on the local release folders"),
        Stage(
            "space-repo", "agkd.space.repo", "write a release's Space repo folder (app.py, requirements, card, results)"
        ),
        Stage(
            "metric-spaces",
            "agkd.training.metrics.release",
            "write the evaluate modules (training/metrics) into a release as Spaces",
        ),
    )
}


def build_parser() -> argparse.ArgumentParser:
    lines = [f"  {s.name:<11} {s.help}" for s in STAGES.values()]
    parser = argparse.ArgumentParser(
        prog="agkd",
        description="AGKD: score attribution methods for machine translation by how much their maps teach a student.",
        epilog="stages:\n" + "\n".join(lines) + "\n\nRun `agkd <stage> --help` for the options of a stage.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("stage", choices=list(STAGES), metavar="stage", help="one of: " + ", ".join(STAGES))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the stage")
    return parser


def run_stage(name: str, argv: list[str]) -> int:
    """Run one stage by its registry name (`agkd extract --preset NAME` gets the preset's extraction options)."""
    stage = STAGES[name]
    if name == "extract":
        try:
            argv = with_extract_preset(argv)
        except ValueError as err:
            logger.error("%s", err)
            return 2
    module = importlib.import_module(stage.module)
    return module.main(argv) or 0


def with_extract_preset(argv: list[str]) -> list[str]:
    """`agkd extract --preset NAME ...`: `--preset NAME` replaced by the preset's `ExtractPreset.options()`, leaving out
    those the user gave."""
    index = next((i for i, a in enumerate(argv) if a == "--preset" or a.startswith("--preset=")), None)
    if index is None:
        return argv
    if argv[index] == "--preset":
        if index + 1 == len(argv):
            raise ValueError("--preset needs a preset name")
        name, rest = argv[index + 1], argv[:index] + argv[index + 2 :]
    else:
        name, rest = argv[index].split("=", 1)[1], argv[:index] + argv[index + 1 :]
    from agkd.training.presets import PRESETS

    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    given = {a.split("=", 1)[0] for a in rest if a.startswith("--")}
    options, group = [], []
    for token in [*PRESETS[name].extract.options(), "--"]:
        if token.startswith("--"):
            options += group if group and group[0] not in given else []
            group = []
        group.append(token)
    return rest + options


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    return run_stage(args.stage, args.args)


if __name__ == "__main__":
    sys.exit(main())
