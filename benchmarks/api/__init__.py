"""Finished runs as Python objects: `load_run(RUN_DIR)` and `load_study(FOLDER)`.

    import benchmarks
    run = benchmarks.load_run("runs/digits-quick/bigan/seed0", device="cpu")
    codes = run.encode(images)          # uint8 (N, C, H, W) as the datasets store them, or floats in [-1, 1]
    pictures = run.sample(64)           # G on the run's fixed evaluation noise: what samples.png shows
    run.metrics["recon_mse"], run.provenance["command"]

A run is rebuilt the way `run` built it: the recorded model and constructor arguments
(config.json) through the model registry, a plugin model only from the same plugin source, then
the checkpoint of the finished run loaded strictly. Whatever is wrong (not a run folder, an
unfinished or failed run, a damaged checkpoint, a changed plugin) is a UserError that names the
fix; the CLI's `sample` and `encode` turn it into exit code 2. Only the CLI and the package's
__init__ import this package (tests/repository/test_layout.py).
records.py checks a run's files, run.py builds the Run, study.py reads a study's choices.
"""
from .run import Run, load_run
from .study import Choice, StudyRuns, load_study

__all__ = ["load_run", "load_study", "Run", "Choice", "StudyRuns"]
