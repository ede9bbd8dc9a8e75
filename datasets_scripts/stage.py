"""How every stage of `agkd` starts: `main = stage_main(Arguments, body, prog=..., doc=__doc__)` and, at the end of
the module, `if __name__ == "__main__": run_as_script(main)`.

It lives on the bottom floor so that the dataset builders here (`agkd corpus`, `agkd extract`) start the same way as
the stages of `agkd.training` and `agkd.space`; `agkd.training.cli`, the command line, imports it from here.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("agkd")


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if verbosity < 1:  # accelerate logs every file of every checkpoint at INFO
        logging.getLogger("accelerate").setLevel(logging.WARNING)


def stage_main(arguments_type, body, *, prog: str, doc: str | None):
    """A stage's `main(argv) -> int`: parse a dataclass of arguments with `HfArgumentParser` (each field's help is
    its metadata), then run `body(args)`. Bad input (ValueError, FileNotFoundError, PermissionError) is logged as
    one readable line and gives exit code 2; finished work stays on disk. `body` may return an exit code."""

    def main(argv: list[str] | None = None) -> int:
        from transformers import HfArgumentParser

        parser = HfArgumentParser(arguments_type, prog=prog, description=(doc or "").split("\n\n")[0])
        (args,) = parser.parse_args_into_dataclasses(args=argv)
        try:
            code = body(args)
        except (ValueError, FileNotFoundError, PermissionError) as err:
            logger.error("%s", err)
            return 2
        return code if isinstance(code, int) else 0

    return main


def run_as_script(main) -> None:
    """`python -m <stage module>`: log at INFO and exit with the stage's code."""
    setup_logging(0)
    sys.exit(main())
