"""Benchmark (not a test): what the Space loads before it can serve its first page.

Imports the Space's module (`agkd.space.app`) in a fresh interpreter and counts the project's modules that came
with it (entries of `sys.modules` named `agkd` or `agkd.*`) and their source lines, and the import's wall time.
Every module the page loads is code a visitor waits for and a reader must hold in mind; a stage module among
them (the report, the evaluation) is a sign that the Space reaches past the libraries it needs.

    .venv/bin/python benchmarks/bench_space_startup.py            # modules, lines, seconds
    .venv/bin/python benchmarks/bench_space_startup.py --list     # and every module with its lines
    .venv/bin/python -X importtime -c "import agkd.space.app" 2>&1 | sort -t'|' -k2 -n | tail   # the slow ones
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

PROBE = """
import json, sys, time
start = time.perf_counter()
import agkd.space.app
seconds = time.perf_counter() - start
files = {name: module.__file__ for name, module in sys.modules.items()
         if (name == "agkd" or name.startswith("agkd.")) and getattr(module, "__file__", None)}
print(json.dumps({"seconds": seconds, "files": files}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print every module with its lines")
    args = parser.parse_args(argv)
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = {name: sum(1 for _ in open(path, encoding="utf-8")) for name, path in found["files"].items()}
    if args.list:
        for name in sorted(lines, key=lines.get, reverse=True):
            print(f"{lines[name]:6d}  {name}")
    print(f"agkd modules loaded by `import agkd.space.app`: {len(lines)}, {sum(lines.values())} source lines, "
          f"import {found['seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
