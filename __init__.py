"""AGKD: evaluate attribution methods for machine translation by what they teach (attention-guided knowledge
distillation, Hub-native).

Installed, the repository's folders live under this one import name: `agkd.modeling`, `agkd.datasets_scripts`,
`agkd.training`, `agkd.space` (pyproject.toml's `package-dir` maps them; this file is the repository root's).
"""

__version__ = "0.1.0"  # the one place: pyproject.toml, `agkd --version` and the Space's requirements read it
