"""The verdict: its design and rules (`design.py`), statistics (`statistics.py`: pure numpy/scipy), tables
(`tables.py`), plots (`plots.py`), positive control (`control.py`; its stage `instrument.py`), analysis plan
(`plan.py`) and the report stage that composes them (`report.py`)."""
