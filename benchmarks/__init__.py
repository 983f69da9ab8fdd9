"""BiGAN Bench. `python -m benchmarks` (or `bigan-bench`) is the command line; `load_run` and
`load_study` read finished runs and studies back as Python objects (api/).

The API is imported on first use, so that `import benchmarks` (every command starts with it)
stays as light as it was.
"""
__all__ = ["load_run", "load_study", "Run", "Choice", "StudyRuns"]


def __getattr__(name):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'benchmarks' has no attribute {name!r}")
