"""AGKD training, evaluation and orchestration: `accelerate` scripts and the `agkd` command line."""
