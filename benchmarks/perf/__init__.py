"""Throughput: `python -m benchmarks perf` (perf.py) and the hand-written loops it is measured
against (plain_bigan.py, toy2d/)."""
