"""The data floor of AGKD: the teacher registry (`teachers.py`), the builders of the Hub-layout datasets agkd-parallel
(`build_corpus.py`) and agkd-attributions (`extract_attributions.py`, with its engines and card), and the Hub layout
they write (`release_layout.py`). Nothing here imports `training`, `space` or `benchmarks`."""
