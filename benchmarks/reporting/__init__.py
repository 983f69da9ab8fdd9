"""Reporting: tables and figures from what runs wrote (report.py, plots.py) and their statistics (stats.py)."""
