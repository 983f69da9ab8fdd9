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
__init__ import this module (tests/repository/test_layout.py).
"""
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import models

from .config import backfilled, config_diff
from .core.errors import ConfigError, UserError
from .core.runtime import Runtime
from .plugins import load_plugin

RUN_FILES = "config.json, metrics.json and checkpoint.pt"
# What a checkpoint may hold besides tensors and plain containers: the numpy random state the
# harness saves with it (runtime.rng_state: an array, rebuilt through these, of a numeric dtype,
# whose class the loader allows too). Everything else is refused by torch's weights-only loader,
# so loading someone else's checkpoint cannot run code.
NUMPY_GLOBALS = {"numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct",
                 "numpy._core.multiarray._reconstruct"}


def load_run(run_dir, device="auto", plugins=()):
    """The finished run in `run_dir` (DIR/<model>/seed<k>, as `run` writes it) as a Run: its
    model in eval mode on `device` (auto, cpu, cuda, cuda:N), its metrics and provenance.
    `plugins`: the --plugin files or modules a plugin model was trained with."""
    path = Path(run_dir)
    record = _run_record(path)
    cfg = backfilled(record["config"])
    metrics = _finished_metrics(path, record)
    base = cfg.get("base_model", cfg.get("model"))
    _check_model_source(path, base, cfg, record, plugins)
    steps = cfg["train"]["steps"]
    if isinstance(cfg.get("arm_steps"), int):  # an arm trained for fewer updates than the budget
        steps = min(cfg["arm_steps"], steps)
    runtime = Runtime(device, fast=False)  # IEEE fp32, as every run is evaluated
    model = _build(base, cfg, runtime)
    state = _checkpoint(path, steps, record)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except (RuntimeError, KeyError, TypeError) as e:
            raise UserError(f"The checkpoint {path / 'checkpoint.pt'} does not fit model {base!r} as its recorded "
                            f"config builds it now ({str(e).splitlines()[0][:300]}): the model's code changed since "
                            "the run was trained. Check out the run's commit (provenance: versions.git_commit) or "
                            "retrain it.") from None
    model.to(runtime.device).eval()
    provenance = {k: record[k] for k in ("command", "started", "versions", "runtime", "resumed", "dataset_meta")
                  if k in record}
    provenance["checkpoint_step"] = state["step"] if state is not None else 0
    return Run(path=path, model=model, name=cfg["model"], base_model=base, seed=cfg["seed"], config=cfg,
               metrics=metrics, provenance=provenance, runtime=runtime)


def _run_record(path):
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


def _retrain(path, record):
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


def _finished_metrics(path, record):
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
                        f"Retrain it with {_retrain(path, record)}.")
    return metrics


def _check_model_source(path, base, cfg, record, plugins):
    """The run's model is registered, from the same plugin source when it came from one: the
    refusal `run` makes before resuming a run whose plugin changed."""
    for spec in plugins:
        load_plugin(str(spec))
    if base not in models.available():
        given = _recorded_plugins(record)
        how = (f"it was trained with {' '.join(f'--plugin {p}' for p in given)}; pass those to load_run(..., "
               "plugins=[...]) (or --plugin to `sample` and `encode`)" if given else
               "pass the plugin that registers it: load_run(..., plugins=[...]), or --plugin")
        raise UserError(f"Run {path} is of model {base!r}, which is not registered: {how}.")
    from .training.run import plugin_source

    changes = config_diff({"plugin_source": cfg.get("plugin_source")},
                          {"plugin_source": plugin_source(base).get("plugin_source")})
    if changes:
        raise ConfigError(f"Run {path} was trained with another source of model {base!r} ({'; '.join(changes)}): "
                          "the plugin changed since, so the checkpoint may not fit it or mean what it did. Restore "
                          "the plugin file the run was trained with, or retrain the run.")


def _recorded_plugins(record):
    try:
        argv = shlex.split(record.get("command", ""))
    except ValueError:
        return []
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--plugin"] + \
        [a.split("=", 1)[1] for a in argv if a.startswith("--plugin=")]


def _build(base, cfg, runtime):
    """The model as `run` built it: the recorded constructor arguments through the registry, under
    the run's seed (so a model that was never trained, 0 steps, gets its exact initial weights),
    leaving the caller's random streams as they were."""
    rng = runtime.rng_state()
    try:
        runtime.seed_everything(cfg["seed"])
        args = cfg["model_args"]
        return models.build(base, **{**args, "data_shape": tuple(args["data_shape"])})
    finally:
        runtime.set_rng_state(rng)


def _checkpoint(path, steps, record):
    """The run's checkpoint, loaded without running code and checked to be the finished one
    (`steps` updates); None for a run of 0 steps, which saves none."""
    ckpt = path / "checkpoint.pt"
    if not ckpt.is_file():
        if steps == 0:
            return None
        raise UserError(f"Run {path} has no checkpoint.pt: the trained weights are not in this folder (the results "
                        "committed to git hold none). Retrain the run into a folder of your own to load it.")
    damaged = (f"The checkpoint {ckpt} is damaged or is not a checkpoint of this harness ({{}}). Retrain the run "
               f"to load it: {_retrain(path, record).replace('{', '{{').replace('}', '}}')}.")
    try:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(ckpt))
        if unsafe - NUMPY_GLOBALS:
            raise UserError(damaged.format(f"it holds Python objects other than tensors and the harness's random "
                                           f"state: {', '.join(sorted(unsafe - NUMPY_GLOBALS))}"))
        numeric = {type(np.dtype(c)) for c in np.typecodes["AllInteger"] + np.typecodes["AllFloat"]}
        with torch.serialization.safe_globals([_resolve(name) for name in sorted(unsafe)] + sorted(numeric, key=str)):
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


def _resolve(name):
    import importlib

    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


@dataclass
class Run:
    """A finished run, loaded back (`load_run`). `model` is the trained BidirectionalGAN in eval
    mode on `device`; `encode`, `decode`, `sample_latent` and `sample` call it without gradients,
    in batches of the run's eval.eval_batch_size, and return tensors on `device`. `config` is the
    run's recorded config (its model, model_args and seed included), `metrics` its metrics.json,
    `provenance` how it was made: command, start time, versions (the git commit), runtime,
    later resumes, the dataset's protocol facts and the checkpoint's step."""
    path: Path
    model: torch.nn.Module
    name: str  # the run's row: the model, or the arm (a setting of a model) it ran
    base_model: str  # the registered model it built
    seed: int
    config: dict
    metrics: dict
    provenance: dict
    runtime: Runtime = field(repr=False)

    @property
    def device(self):
        return self.runtime.device

    @property
    def data_shape(self):
        return tuple(self.model.data_shape)

    def _batched(self, fn, x):
        bs = self.config["eval"]["eval_batch_size"]
        with torch.no_grad():
            return torch.cat([fn(self.runtime.batch(x[i:i + bs])).float() for i in range(0, len(x), bs)])

    def encode(self, x):
        """Codes E(x) of real data x: uint8 images (N, C, H, W) as the datasets store them, which
        are mapped to [-1, 1] as training saw them, or floats already in [-1, 1] (points as they are)."""
        x = torch.as_tensor(x)
        if tuple(x.shape[1:]) != self.data_shape:
            raise UserError(f"encode takes a batch of shape (N, {', '.join(map(str, self.data_shape))}), the run's "
                            f"data; got {tuple(x.shape)}.")
        return self._batched(self.model.encode, x)

    def decode(self, z):
        """G(z) for codes z (N, z_dim): images in [-1, 1] (figures.to_unit maps them to [0, 1])."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.dim() != 2 or z.shape[1] != self.model.z_dim:
            raise UserError(f"decode takes codes of shape (N, {self.model.z_dim}); got {tuple(z.shape)}.")
        return self._batched(self.model.decode, z)

    def sample_latent(self, n, generator=None):
        """n draws from the model's prior; with a CPU `generator`, the same on every device."""
        return self.model.sample_latent(n, generator=generator)

    def sample(self, n=64, seed=None, truncation=None):
        """n generated samples, G(z), in [-1, 1]. The noise is the run's fixed evaluation noise
        unless `seed` is given, so sample(64) is what samples.png shows; `truncation` t redraws every
        coordinate of z outside [-t, t] (BigGAN's truncation trick; Gaussian priors, as the truncation
        sweep)."""
        from .core.protocol import eval_noise
        from .evaluation.evaluate import truncated_latent

        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UserError(f"The number of samples must be a positive integer, got {n!r}.")
        if truncation is not None:
            if not (isinstance(truncation, (int, float)) and math.isfinite(truncation) and truncation > 0):
                raise UserError(f"The truncation threshold must be a positive number, got {truncation!r}.")
            if self.model.prior != "normal":
                raise UserError(f"Model {self.base_model!r} draws z from a uniform prior on [-1, 1], which has no "
                                "tails to truncate; truncation applies to Gaussian priors. Leave it out.")
        g = eval_noise(self.seed) if seed is None else torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            z = truncated_latent(self.model, n, truncation, g)
        return self.decode(z)

    def data(self, data_root=None):
        """The run's dataset as the run saw it (benchmarks.data.Dataset): its validation split
        carved as the run's config carved it, and `test` the split the run was scored on.
        `data_root`: the dataset's folder where it needs one (else its environment variable)."""
        from .data import load_dataset, splits

        cfg = self.config
        data = load_dataset(cfg["dataset"], root=data_root, **(cfg.get("dataset_options") or {}))
        return splits.scored_on(splits.carve_validation(data, cfg["train"]["validation_share"]),
                                cfg["eval"]["split"])

    def __repr__(self):
        return (f"Run({str(self.path)!r}: {self.name} seed {self.seed}, {self.config.get('dataset')} "
                f"{self.config.get('budget')}, on {self.device})")


# --- studies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """The setting a study chose for one model and target, with its final-phase runs.
    `row`: its row (folder) in final/; `trial`: the selection trial (0: the model's defaults);
    `options`: the options it sets; `value`: its validation score on the target's metric;
    `runs`: the final phase's run folders of the row, in seed order."""
    model: str
    target: str
    row: str
    trial: int | None
    options: dict
    value: float | None
    runs: tuple

    def metrics(self):
        """The metrics.json of each run (None for one not finished), in seed order."""
        out = []
        for run_dir in self.runs:
            try:
                out.append(json.loads((run_dir / "metrics.json").read_text()))
            except (OSError, ValueError):
                out.append(None)
        return out

    def load(self, seed=None, device="auto", plugins=()):
        """The Run of seed `seed` (default: the first seed), loaded with load_run."""
        if not self.runs:
            raise UserError(f"The final phase holds no runs of {self.row!r} ({self.model}, chosen for "
                            f"{self.target}): run the study's final phase first.")
        by_seed = {p.name: p for p in self.runs}
        if seed is None:
            return load_run(self.runs[0], device=device, plugins=plugins)
        if f"seed{seed}" not in by_seed:
            raise UserError(f"{self.row!r} has no final run of seed {seed}; its seeds: "
                            f"{', '.join(p.name[4:] for p in self.runs)}.")
        return load_run(by_seed[f"seed{seed}"], device=device, plugins=plugins)


@dataclass(frozen=True)
class StudyRuns:
    """A study folder read back (`load_study`): `choices[model][target]` is a Choice; `unchosen`
    lists the (model, target) pairs for which no trial finished; `selection` is selection.json
    as written."""
    folder: Path
    choices: dict
    unchosen: tuple
    selection: dict

    def choice(self, model, target):
        if model not in self.choices or target not in self.choices[model]:
            known = ", ".join(f"{m}/{t}" for m in self.choices for t in self.choices[m]) or "none"
            raise UserError(f"The study in {self.folder} chose no setting of {model!r} for {target!r}; its "
                            f"choices: {known}.")
        return self.choices[model][target]


def load_study(folder):
    """A study folder (`sweep`: select/, final/, selection.json) as a StudyRuns: per swept model
    and target the chosen setting and its final runs. selection.json is read for what it says
    (each model's chosen trial per target) and any other entry is left alone, so a record written
    by another version of the study code still reads."""
    folder = Path(folder)
    sel_path = folder / "selection.json"
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; a study folder is what `sweep` writes: select/, final/ and "
                        "selection.json.")
    if not sel_path.is_file():
        raise UserError(f"{folder} holds no selection.json, so it is not a study folder or its final phase has not "
                        "started: `python -m benchmarks sweep STUDY --phase final --out "
                        f"{folder}` writes it.")
    try:
        selection = json.loads(sel_path.read_text())
        if not isinstance(selection, dict):
            raise ValueError(f"expected a mapping of models, got a {type(selection).__name__}")
    except (OSError, ValueError) as e:
        raise UserError(f"{sel_path} is unreadable ({type(e).__name__}: {e}); rerun the study's final phase "
                        "(`sweep STUDY --phase final`), which writes it again.") from None
    choices, unchosen = {}, []
    for model, targets in selection.items():
        if not isinstance(targets, dict):
            continue  # not a model's choices: another entry of the record
        for target, pick in targets.items():
            if not isinstance(pick, dict):
                unchosen.append((model, target))
                continue
            trial = pick.get("trial") if isinstance(pick.get("trial"), int) else None
            row = pick.get("row") or (pick.get("arm") if trial else model)
            if not isinstance(row, str):
                unchosen.append((model, target))
                continue
            value = pick.get("value")
            runs = tuple(sorted((p.parent for p in (folder / "final" / row).glob("seed*/config.json")),
                                key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else math.inf))
            choices.setdefault(model, {})[target] = Choice(
                model=model, target=target, row=row, trial=trial,
                options=dict(pick.get("options") or {}) if isinstance(pick.get("options") or {}, dict) else {},
                value=float(value) if isinstance(value, (int, float)) else None, runs=runs)
    return StudyRuns(folder=folder, choices=choices, unchosen=tuple(unchosen), selection=selection)
