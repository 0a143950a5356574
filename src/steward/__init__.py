"""Steward: the data coordination centre of a research consortium."""

__version__ = "0.1.0"
