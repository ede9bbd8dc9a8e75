"""The attribution library that extraction (`agkd extract`) and the Space's maps of typed sentences share: method
and control registries (`methods.py`), the dataset's vocabulary (`configs.py`), a teacher loaded for attribution
(`teacher.py`), the one entry point `engines.attribute` and its two engines (`inseq_engine.py` with
`inseq_compat.py`, and `fast_engine.py`)."""
