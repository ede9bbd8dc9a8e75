import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("agkd/attribution_aer")
launch_gradio_widget(module)
