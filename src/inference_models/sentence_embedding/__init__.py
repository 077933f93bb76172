"""Sentence embeddings with all-MiniLM-L6-v2 (spec.py: the web's half; runner.py: the runner's)."""
