"""Evaluation: a trained model's scores (evaluate.py) and the pictures of its run folder (figures.py)."""
