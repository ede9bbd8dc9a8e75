"""AGKD training: the `accelerate` scripts (teachers, students, Attributors), the presets they run (`presets.py`),
evaluation and model cards (`evaluation/`), the verdict, its statistics and positive control (`verdict/`), the
yardsticks beside it (`triangulation/`), orchestration and executors (`orchestration/`), and the `agkd` command line
(`cli.py`)."""
