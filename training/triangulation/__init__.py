"""Yardsticks beside the verdict: plausibility, faithfulness, sanity, and how far they agree."""
