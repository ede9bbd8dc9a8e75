"""The verdict: its statistics (`statistics.py`: pure numpy/scipy) and the report that states it (`report.py`)."""
