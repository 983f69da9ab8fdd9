"""A finished run's records read back and checked (api/run.py builds the run from them): its
config.json, metrics.json and checkpoint.pt, and the plugin source of its model. Whatever is
wrong is a UserError that names the fix (the command that resumes or retrains the run)."""
import json
import shlex

import numpy as np
import torch

import models

from ..config import config_diff
from ..core.errors import ConfigError, UserError
from ..plugins import load_plugin

RUN_FILES = "config.json, metrics.json and checkpoint.pt"
# What a checkpoint may hold besides tensors and plain containers: the numpy random state the
# harness saves with it (runtime.rng_state: an array, rebuilt through these, of a numeric dtype,
# whose class the loader allows too). Everything else is refused by torch's weights-only loader,
# so loading someone else's checkpoint cannot run code.
NUMPY_GLOBALS = {"numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct",
                 "numpy._core.multiarray._reconstruct"}


def run_record(path):
    """config.json of a run folder, checked: a mapping with a config naming its model and seed."""
    if not path.is_dir():
        raise UserError(f"{path} is not a folder. A run folder is DIR/<model>/seed<k> inside a results folder, "
                        f"holding {RUN_FILES}.")
    if not (path / "config.json").is_file():
        runs = sorted(p.parent for p in path.glob("*/seed*/config.json"))
        hint = (f" {path} is a results folder; pass one of its runs, e.g. {runs[0]}." if runs else
                f" A run folder is DIR/<model>/seed<k> inside a results folder, holding {RUN_FILES}.")
        raise UserError(f"{path} is not a run folder: it has no config.json.{hint}")
    try:
        record = json.loads((path / "config.json").read_text())
        cfg = record["config"]
        if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), str) or not isinstance(cfg.get("seed"), int):
            raise ValueError("its 'config' does not name a model and a seed")
        for key in ("train", "eval", "model_args"):
            if not isinstance(cfg.get(key), dict):
                raise ValueError(f"its config has no {key!r} mapping")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path / 'config.json'} is not a run record ({type(e).__name__}: {e}); it records how the "
                        "run was built, so the run cannot be loaded without it: restore the file.") from None
    return record


def retrain_command(path, record):
    """The command that retrains this run, for a message: `run` selects it with --models and
    --seeds; a sweep (which has neither) retrains with --force only the runs it cannot resume or
    keep, this damaged one among them. A --jobs shard's own options are left out."""
    import shlex

    cfg = record["config"]
    command = record.get("command", "python -m benchmarks run ...")
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if "sweep" not in words:
        return f"`{command} --force --models {cfg['model']} --seeds {cfg['seed']}`"
    kept, skip = [], False
    for w in words:
        if skip or w == "--force":
            skip = False
            continue
        if w in ("--shard", "--job-of"):
            skip = True
        elif not w.startswith(("--shard=", "--job-of=")):
            kept.append(w)
    return f"`{shlex.join(kept)} --force`"


def finished_metrics(path, record):
    """metrics.json of a finished (ok) run; anything else is an error naming what to do."""
    mpath = path / "metrics.json"
    if not mpath.is_file():
        raise UserError(f"Run {path} is not finished: it has no metrics.json (it is still training, or was "
                        f"interrupted). Finish it with the command that started it: `{record.get('command', '')}` "
                        "resumes it from its last checkpoint.")
    try:
        metrics = json.loads(mpath.read_text())
        if not isinstance(metrics, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError) as e:
        raise UserError(f"{mpath} is unreadable ({type(e).__name__}: {e}); rerun the command that started the run "
                        f"(`{record.get('command', '')}`): it evaluates the run again from its checkpoint.") from None
    status = metrics.get("status")
    if status == "diverged":
        raise UserError(f"Run {path} diverged at step {metrics.get('diverged_at')} (a loss became "
                        f"{metrics.get('diverged_on', 'non-finite')}): it has no trained model to load, only the "
                        "last finite checkpoint before the blow-up. Load another seed or setting.")
    if status != "ok":
        raise UserError(f"Run {path} did not finish (status {status!r}: {metrics.get('error', 'see error.txt')}). "
                        f"Retrain it with {retrain_command(path, record)}.")
    return metrics


def check_model_source(path, base, cfg, record, plugins):
    """The run's model is registered, from the same plugin source when it came from one: the
    refusal `run` makes before resuming a run whose plugin changed."""
    for spec in plugins:
        load_plugin(str(spec))
    if base not in models.available():
        given = recorded_plugins(record)
        how = (f"it was trained with {' '.join(f'--plugin {p}' for p in given)}; pass those to load_run(..., "
               "plugins=[...]) (or --plugin to `sample` and `encode`)" if given else
               "pass the plugin that registers it: load_run(..., plugins=[...]), or --plugin")
        raise UserError(f"Run {path} is of model {base!r}, which is not registered: {how}.")
    from ..training.build import plugin_source

    changes = config_diff({"plugin_source": cfg.get("plugin_source")},
                          {"plugin_source": plugin_source(base).get("plugin_source")})
    if changes:
        raise ConfigError(f"Run {path} was trained with another source of model {base!r} ({'; '.join(changes)}): "
                          "the plugin changed since, so the checkpoint may not fit it or mean what it did. Restore "
                          "the plugin file the run was trained with, or retrain the run.")


def recorded_plugins(record):
    try:
        argv = shlex.split(record.get("command", ""))
    except ValueError:
        return []
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--plugin"] + \
        [a.split("=", 1)[1] for a in argv if a.startswith("--plugin=")]


def checkpoint_state(path, steps, record):
    """The run's checkpoint, loaded without running code and checked to be the finished one
    (`steps` updates); None for a run of 0 steps, which saves none."""
    ckpt = path / "checkpoint.pt"
    if not ckpt.is_file():
        if steps == 0:
            return None
        raise UserError(f"Run {path} has no checkpoint.pt: the trained weights are not in this folder (the results "
                        "committed to git hold none). Retrain the run into a folder of your own to load it.")
    damaged = (f"The checkpoint {ckpt} is damaged or is not a checkpoint of this harness ({{}}). Retrain the run "
               f"to load it: {retrain_command(path, record).replace('{', '{{').replace('}', '}}')}.")
    try:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(ckpt))
        if unsafe - NUMPY_GLOBALS:
            raise UserError(damaged.format(f"it holds Python objects other than tensors and the harness's random "
                                           f"state: {', '.join(sorted(unsafe - NUMPY_GLOBALS))}"))
        numeric = {type(np.dtype(c)) for c in np.typecodes["AllInteger"] + np.typecodes["AllFloat"]}
        allowed = [resolve_global(name) for name in sorted(unsafe)] + sorted(numeric, key=str)
        with torch.serialization.safe_globals(allowed):
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a cut-off or overwritten file fails in many ways, all the same problem
        raise UserError(damaged.format(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")) \
            from None
    if not (isinstance(state, dict) and isinstance(state.get("model"), dict) and isinstance(state.get("step"), int)):
        raise UserError(damaged.format("it has no model state and step"))
    if state["step"] != steps:
        raise UserError(f"The checkpoint {ckpt} is at step {state['step']} of {steps}: the run is unfinished. "
                        f"Finish it with the command that started it, `{record.get('command', '')}`, which resumes "
                        "it from this checkpoint.")
    return state


def resolve_global(name):
    import importlib

    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)
