"""Measures beside the verdict, each an `evaluate` module folder that ships as a Hub metric repo."""
