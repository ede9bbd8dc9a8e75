"""The `attribution_aer` evaluate module's widget: `{org}/attribution_aer` from the Hub when an org is known
(`ORG`, else the environment's `AGKD_HUB_ORG`), else the module in this folder (offline)."""

import os
from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

ORG = None
org = ORG or os.environ.get("AGKD_HUB_ORG")
module = evaluate.load(f"{org}/attribution_aer" if org else str(Path(__file__).resolve().parent))
launch_gradio_widget(module)
