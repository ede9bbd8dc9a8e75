"""AGKD training, evaluation and orchestration: `accelerate` scripts and the `agkd` command line."""

__version__ = "0.1.0"  # the one place: pyproject.toml, `agkd --version` and the Space's requirements read it
