"""Evaluation: students under each test-time map protocol (`evaluate.py`) and every figure a result carries
(`scoring.py`)."""
