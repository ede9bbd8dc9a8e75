"""`agkd instrument`: the verdict's positive control (`control.py`) in a preset's students' regime, written to
`results/instrument_check.json`, which the report reads before the verdict may speak.

    agkd instrument --results_dir runs/demo/results --preset demo --corpus runs/demo/hub/datasets/agkd-parallel \
        --pair de-en
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from agkd.datasets_scripts.release_layout import INSTRUMENT_FILE, load_config
from agkd.datasets_scripts.stage import run_as_script, stage_main
from agkd.training.data import load_teacher_tokenizer
from agkd.training.presets import PRESETS
from agkd.training.verdict.control import CHECK_SEED_OFFSET, InstrumentConfig, write_instrument_check
from agkd.training.verdict.curve import curve_check_file
from agkd.training.verdict.design import control_failures

logger = logging.getLogger(__name__)


@dataclass
class InstrumentArguments:
    results_dir: str = field(metadata={"help": f"where {INSTRUMENT_FILE} goes"})
    preset: str = field(
        default="demo", metadata={"help": "whose students' regime to reproduce: size, recipe, budget, pairs, seeds"}
    )
    operator: str = field(
        default=InstrumentConfig.operator, metadata={"help": "the design under test (supervise, add, ...)"}
    )
    student_seeds: list[int] | None = field(
        default=None,
        metadata={"help": f"the students' seeds, whose replicates the check mirrors: student seed s gives training "
                          f"seed s + {CHECK_SEED_OFFSET} (default: the preset's)"},
    )
    seeds: list[int] | None = field(
        default=None, metadata={"help": "the check's training seeds themselves (default: from --student_seeds)"},
    )
    task_seed: int | None = field(default=None, metadata={"help": "the planted lexicon and order (default: the "
                                                                  "check's, not the one the budgets were explored on)"})
    warm_steps: int = field(default=InstrumentConfig.warm_steps, metadata={"help": "planted no-map warm-start steps"})
    finetune_steps: int | None = field(default=None, metadata={"help": "fine-tuning steps (default: the preset's)"})
    finetune_pairs: int | None = field(default=None, metadata={"help": "map-annotated pairs (default: the preset's)"})
    supervision_weight: float = field(
        default=InstrumentConfig.supervision_weight, metadata={"help": "supervise: weight"}
    )
    corpus_pairs: int | None = field(default=None, metadata={"help": "planted pairs of the warm start (default: "
                                                                     "4,000, or the annotated pairs if more)"})
    test_pairs: int | None = field(default=None, metadata={"help": "held-out planted pairs scored (default: the "
                                                                   "preset's, else as many as the corpus' test split "
                                                                   "has, else 200)"})
    corpus: str | None = field(default=None, metadata={"help": "agkd-parallel folder or Hub id: the test size is its "
                                                               "test split's, as the verdict's"})
    pair: str | None = field(default=None, metadata={"help": "the language pair of --corpus"})
    teacher: str | None = field(default=None, metadata={"help": "the teacher (folder or Hub id): with --corpus, the "
                                                                "test size counts the pairs within the preset's map "
                                                                "token limit, as the verdict's whole test split does"})
    teacher_name: str = field(default="marian", metadata={"help": "the teacher's family (marian, mbart)"})
    curve_pairs: list[int] | None = field(
        default=None, metadata={"help": "also run the check on the first N map-annotated pairs for each N (the planted "
                                        "learning curve, one file each beside the check's)"},
    )


def config_of(args: InstrumentArguments) -> InstrumentConfig:
    """The preset's regime with the command line's overrides."""
    overrides = {"operator": args.operator, "warm_steps": args.warm_steps,
                 "supervision_weight": args.supervision_weight}
    optional = {"finetune_steps": args.finetune_steps, "finetune_pairs": args.finetune_pairs,
                "corpus_pairs": args.corpus_pairs, "test_pairs": args.test_pairs, "task_seed": args.task_seed}
    overrides |= {key: value for key, value in optional.items() if value is not None}
    if args.test_pairs is None and PRESETS[args.preset].control.test_pairs is None and args.corpus and args.pair:
        overrides["test_pairs"] = verdict_test_size(args)
    if args.seeds is not None:
        overrides["seeds"] = tuple(args.seeds)
    return InstrumentConfig.for_preset(args.preset, student_seeds=args.student_seeds, **overrides)


def verdict_test_size(args: InstrumentArguments) -> int:
    """How many test sentences the verdict is scored on: the corpus' test pairs that fit the preset's map token limit
    in the teacher's tokenisation (`evaluate.load_whole_split`), or all of them without a teacher."""
    test = load_config(args.corpus, args.pair)["test"]
    if args.teacher is None:
        return len(test)
    tokenizer, _, _ = load_teacher_tokenizer(args.teacher, args.teacher_name, args.pair)
    limit = PRESETS[args.preset].extract.max_tokens
    encoded = tokenizer(list(test["source"]), text_target=list(test["target"]))
    pairs = zip(encoded["input_ids"], encoded["labels"], strict=True)
    return sum(len(source) <= limit and len(target) <= limit for source, target in pairs)


def instrument_and_log(args: InstrumentArguments) -> None:
    config = config_of(args)
    check_once(args.results_dir, config, INSTRUMENT_FILE)
    for pairs in args.curve_pairs or []:  # the planted learning curve: the same check on the first N pairs
        check_once(args.results_dir, replace(config, finetune_pairs=pairs), curve_check_file(pairs))


def check_once(results_dir: str, config: InstrumentConfig, file_name: str) -> None:
    """Run the check into `results_dir/file_name` unless it holds this very configuration already; log the outcome."""
    path = Path(results_dir) / file_name
    if path.exists() and json.loads(path.read_text()).get("config") == json.loads(json.dumps(asdict(config))):
        logger.info("%s already exists for this configuration: skipped", path)
        return
    path = write_instrument_check(results_dir, config, file_name)
    result = json.loads(path.read_text())
    if result["passed"]:
        logger.info("the design sees planted alignment content; MDE %.4f nats/token (%s)", result["mde"], path)
    else:
        logger.warning("the design cannot see planted alignment content: %s (%s)",
                       "; ".join(control_failures(result)), path)


main = stage_main(InstrumentArguments, instrument_and_log, prog="agkd instrument", doc=__doc__)


if __name__ == "__main__":
    run_as_script(main)
