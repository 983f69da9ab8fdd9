"""Studies: hyperparameter sweeps, the chosen settings rerun, ablation arms and claims (study.py)."""
