"""AGKD training: the `accelerate` scripts (teachers, students, Attributors, the instrument check), evaluation
(`evaluation/`), the verdict and its statistics (`verdict/`), orchestration and executors (`orchestration/`), model
cards and the `agkd` command line (`cli.py`)."""
