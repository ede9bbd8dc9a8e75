"""Triangulation beside the verdict: plausibility (AER against word alignments), faithfulness and sanity."""
