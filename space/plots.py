"""Heatmaps of attribution maps and cross-attention with the tokens on the axes (right-to-left scripts shaped).

matplotlib draws code points left to right and does no Arabic shaping: a label is reshaped (`arabic-reshaper`:
contextual letter forms) and reordered (`python-bidi`: visual order) before it is drawn. Without those packages
the label is drawn as is (a warning is logged once).
"""

from __future__ import annotations

import functools
import logging
import unicodedata

import numpy as np

logger = logging.getLogger(__name__)

SPIECE_UNDERLINE = "\u2581"


def _is_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text)


@functools.cache
def _shaper():
    try:
        import arabic_reshaper
        from bidi import get_display
    except ImportError:
        try:
            import arabic_reshaper
            from bidi.algorithm import get_display
        except ImportError:
            logger.warning("arabic-reshaper/python-bidi are not installed: Arabic labels are drawn unshaped")
            return None
    return lambda text: get_display(arabic_reshaper.reshape(text))


def display_token(token: str) -> str:
    """A tokenizer piece as a readable label: `▁word` -> `_word`; right-to-left text shaped and in visual order."""
    text = token.replace(SPIECE_UNDERLINE, "_")
    if _is_rtl(text):
        shape = _shaper()
        if shape is not None:
            text = shape(text)
    return text


def heatmap_figure(panels: list[dict], title: str | None = None):
    """One matplotlib figure with a heatmap per panel.

    panel: {"title": str, "matrix": [T, S] array or None, "rows": target tokens, "columns": source tokens,
            "note": text shown instead of the heatmap when matrix is None}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    width = max(
        (len(p["columns"]) for p in panels if p.get("matrix") is not None), default=6
    )
    height = max((len(p["rows"]) for p in panels if p.get("matrix") is not None), default=6)
    fig, axes = plt.subplots(
        1, n, figsize=(max(4.0, 0.32 * width + 1.8) * n, max(3.2, 0.3 * height + 2.0)), squeeze=False
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        ax.set_title(panel["title"], fontsize=9)
        matrix = panel.get("matrix")
        if matrix is None:
            ax.axis("off")
            ax.text(0.5, 0.5, panel.get("note", "not available"), ha="center", va="center", wrap=True, fontsize=8)
            continue
        matrix = np.asarray(matrix, dtype=np.float32)
        image = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xticks(range(matrix.shape[1]), [display_token(t) for t in panel["columns"]], rotation=90, fontsize=7)
        ax.set_yticks(range(matrix.shape[0]), [display_token(t) for t in panel["rows"]], fontsize=7)
        ax.set_xlabel("source tokens", fontsize=8)
        ax.set_ylabel("target tokens", fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    # Fixed margins in inches (tick labels of up to ~12 characters): tight_layout would draw the figure once more.
    fig_w, fig_h = fig.get_size_inches()
    fig.subplots_adjust(
        left=1.1 / fig_w,
        right=1 - 0.75 / fig_w,
        bottom=1.3 / fig_h,
        top=1 - (0.8 if title else 0.5) / fig_h,
        wspace=0.45,
    )
    plt.close(fig)  # gradio renders the figure object itself; closing keeps pyplot's registry empty
    return fig
