"""What every stage shares and nothing of the harness above it: the device runtime (runtime.py,
and networks.py, which sets a model's networks up for its path), the process group, the
results-folder lock, atomic file writes and the user-facing errors; and the knowledge more than
one stage needs: the evaluation protocol (protocol.py), the intervals (stats.py), the metric
columns (columns.py), how run records read back (records.py) and the weights paths of the
evaluation's feature networks (weights.py)."""
