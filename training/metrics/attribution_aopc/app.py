import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("agkd/attribution_aopc")
launch_gradio_widget(module)
