"""Evaluation: students under each test-time map protocol (`evaluate.py`), every figure a result carries
(`scoring.py`) and the model cards that quote them (`cards.py`)."""
