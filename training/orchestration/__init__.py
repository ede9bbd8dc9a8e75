"""Orchestration: the pipeline of a preset (`pipeline.py`), where its jobs run (`executors.py`) and the upload of a
release (`push.py`). The presets themselves are `training/presets.py`, which every stage reads."""
