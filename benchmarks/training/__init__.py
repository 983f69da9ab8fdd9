"""Training: the (model x seed) matrix of a benchmark (run.py) and one model's loop (train.py)."""
