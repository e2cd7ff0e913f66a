"""The reference model: a MiniLM sentiment classifier trained on VADER's human-rated snippets.

prepare (data.py) -> train (train.py) -> evaluate (evaluate.py) -> export (export.py);
``python -m examples.sentiment`` runs them in order and caches the result.
"""
