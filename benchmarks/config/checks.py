"""The checks of a config: every key known and of its type (check_keys, on the file, each budget
and each --set), then the merged mapping whole (check_resolved): every key set, the runs well
named, every size in range, the arms and the model options sound. Each message names the key and
a fix; in_study restates the fix for a study file, which sets keys per phase instead of --set.
"""
import difflib
import re

import models
from models.registry import HARNESS_ARGS, NAME_PATTERN

from ..core.errors import ConfigError
from .schema import ARCH_STYLES, COUNTS, EVAL_SPLITS, FREE, GEN_REFERENCES, MAX_COUNT, SCHEMA, SEED_LIMIT


def check_keys(tree, schema, where):
    """Raise on keys not in the schema and on values of the wrong type."""
    if not isinstance(tree, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping, got {type(tree).__name__}.")
    for key, value in tree.items():
        path = f"{where}.{key}" if where else key
        if key not in schema:
            close = difflib.get_close_matches(str(key), schema, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown config key {path!r}.{hint} Allowed here: {', '.join(schema)}.")
        kind = schema[key]
        if isinstance(kind, dict):
            check_keys(value, kind, path)
        elif kind is FREE:
            _check_free(value, path)
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"Config key {path!r} must be an integer, got {value!r}.")
        elif kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"Config key {path!r} must be a number, got {value!r}.")
        elif kind is float:
            continue
        elif not isinstance(value, kind):
            raise ConfigError(f"Config key {path!r} must be a {kind.__name__}, got {value!r}.")


def _check_free(tree, where):
    """A free-form mapping (options passed on as keyword arguments): a mapping whose keys, at
    every level, are names."""
    if not isinstance(tree, dict):
        raise ConfigError(f"Config key {where!r} must be a mapping, got {tree!r}.")
    for key, value in tree.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"Config key {where!r} holds the key {key!r}; keys must be names (text), "
                              f"e.g. --set {where}.name=value.")
        if isinstance(value, dict):
            _check_free(value, f"{where}.{key}")


def check_resolved(cfg, path, budget):
    """The merged mapping of `path` under `budget` (defaults, file, budget, overrides, CLI lists),
    before it is typed; the first problem raises."""
    _check_complete(cfg, path, budget)
    _check_runs(cfg)
    _check_sizes(cfg)
    check_arms(cfg["arms"])
    _check_model_options(cfg["model_options"])


def _check_complete(cfg, path, budget):
    """Every key of SCHEMA set by the file, its budget, the overrides or DEFAULTS."""
    missing = [k for k in SCHEMA if k not in cfg] + [
        f"{k}.{sub}" for k, kind in SCHEMA.items() if isinstance(kind, dict)
        for sub in kind if sub not in cfg.get(k, {})
    ]
    if missing:
        raise ConfigError(f"Config {path} (budget {budget!r}) does not set: {', '.join(missing)}.")


def _check_runs(cfg):
    """The models and seeds of the run matrix."""
    if not cfg["models"]:
        raise ConfigError("No models to run: the config's 'models' list (or --models) is empty.")
    bad = [m for m in cfg["models"] if not isinstance(m, str) or not m.strip()]
    if bad:
        raise ConfigError(f"Models must be a list of model names, got {bad[0]!r} in {cfg['models']!r}; "
                          "e.g. --models bigan,ali (`python -m benchmarks list-models` lists them).")
    if not cfg["seeds"] or not all(isinstance(s, int) and not isinstance(s, bool) for s in cfg["seeds"]):
        raise ConfigError(f"Seeds must be a non-empty list of integers, got {cfg['seeds']!r}.")
    bad = [s for s in cfg["seeds"] if not 0 <= s < SEED_LIMIT]
    if bad:
        raise ConfigError(f"Seed {bad[0]} is out of range: seeds must be integers from 0 to {SEED_LIMIT - 1} "
                          "(numpy's random generator takes 32-bit seeds); e.g. --seeds 0,1,2.")


def _check_sizes(cfg):
    """arch, train and eval: each value in its range (a count is bounded by MAX_COUNT here, by the
    data and the machine in run.check_sizes once the data is loaded)."""
    if cfg["arch"]["style"] not in ARCH_STYLES:
        raise ConfigError(f"arch.style must be one of {', '.join(ARCH_STYLES)}, got {cfg['arch']['style']!r}: "
                          "'shared' gives every method the same backbone, 'paper' each method its published one.")
    for k in ("steps", "batch_size", "log_every", "checkpoint_every"):
        if cfg["train"][k] <= 0:
            raise ConfigError(f"train.{k} must be positive, got {cfg['train'][k]}.")
    ts = cfg["eval"]["truncation"]
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in ts):
        raise ConfigError(f"eval.truncation must be a list of positive thresholds, e.g. [0.5, 1.0, 2.0], got {ts!r}.")
    ns = cfg["eval"]["probe_labels"]
    counts = all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_COUNT for n in ns)
    if not counts or len(set(ns)) < len(ns):
        raise ConfigError(f"eval.probe_labels must be a list of distinct positive label counts per class, each at "
                          f"most {MAX_COUNT}, e.g. [1, 10, 100] (or [] for none), got {ns!r}.")
    for k in ("z_dim", "width"):
        if cfg["arch"][k] <= 0:
            raise ConfigError(f"arch.{k} must be positive, got {cfg['arch'][k]}.")
    for k in ("probe_max_train", "eval_batch_size", "grid_size", "gen_samples"):
        if cfg["eval"][k] <= 0:
            raise ConfigError(f"eval.{k} must be positive, got {cfg['eval'][k]}.")
    for k in ("track_every", "truncation_samples", "track_samples", "inception_samples", "dinov2_samples"):
        if cfg["eval"][k] < 0:
            raise ConfigError(f"eval.{k} must be zero or positive, got {cfg['eval'][k]}.")
    for k in ("gen_samples", "inception_samples", "dinov2_samples", "track_samples", "truncation_samples"):
        if cfg["eval"][k] == 1:  # a Frechet distance needs a covariance
            raise ConfigError(f"eval.{k} = 1 is too few samples to score; use at least 2 (or 0 where 0 means off).")
    for key in COUNTS:
        section, k = key.split(".")
        if cfg[section][k] > MAX_COUNT:
            raise ConfigError(f"{key} = {cfg[section][k]} is too large: use at most {MAX_COUNT} (a batch or a set of "
                              "generated samples of that size would not fit in memory).")
    share = cfg["train"]["validation_share"]
    if not 0 <= share < 1:
        raise ConfigError(f"train.validation_share must be in [0, 1) (the share of train held out for validation), "
                          f"got {share!r}; e.g. --set train.validation_share=0.2.")
    if cfg["eval"]["split"] not in EVAL_SPLITS:
        raise ConfigError(f"eval.split must be one of {', '.join(EVAL_SPLITS)}, got {cfg['eval']['split']!r}.")
    if cfg["eval"]["gen_reference"] not in GEN_REFERENCES:
        raise ConfigError(f"eval.gen_reference must be one of {', '.join(GEN_REFERENCES)}, got "
                          f"{cfg['eval']['gen_reference']!r}: train scores samples against the training images, "
                          "scored against the held-out split the run is scored on.")


def _check_model_options(model_options):
    """{model: {option: value}}: the options themselves are checked by the model constructors; the
    harness's own arguments (HARNESS_ARGS) are the config's to set, for every row at once."""
    for name, opts in model_options.items():
        if opts is not None and not isinstance(opts, dict):
            raise ConfigError(f"model_options.{name} must be a mapping of option: value, e.g. "
                              f"--set model_options.{name}.lr=1e-4; got {opts!r}.")
        fixed = sorted(set(opts or {}) & set(HARNESS_ARGS))
        if fixed:
            raise ConfigError(f"model_options.{name} may not set {', '.join(fixed)}: the harness gives every model "
                              "the config's arch (z_dim, width, style), data shape and step budget, and the protocol "
                              "states them for the whole benchmark; change arch.* (e.g. --set arch.width=16) for all "
                              "rows instead.")


def check_arms(arms):
    """Arms: {name: {"model": registered model, "options": {option: value}, "steps": N}}, each a
    registered model run under another name with some options changed (an ablation, a sweep trial)
    and, with `steps`, trained for N G/E updates instead of the budget's (0: an untrained control
    of the model's own architecture; the model is built for the budget's steps all the same). The
    name is its results folder, so it follows a model name's rules; the model and its options
    are checked with the models (training.build.check_models), once plugins have registered theirs."""
    for name, arm in arms.items():
        if not NAME_PATTERN.fullmatch(name):
            raise ConfigError(f"Arm name {name!r} cannot be a results folder name: use letters, digits and . _ - "
                              "only, starting with a letter or digit, e.g. bigbigan-unary-x.")
        if (not isinstance(arm, dict) or not isinstance(arm.get("model"), str)
                or set(arm) - {"model", "options", "steps"}):
            raise ConfigError(f"Arm {name!r} must be a mapping {{model: <registered model>, options: {{...}}}} (and "
                              f"optionally steps: N, fewer G/E updates than the budget's), got {arm!r}.")
        steps = arm.get("steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
            raise ConfigError(f"arms.{name}.steps must be a whole number of G/E updates >= 0 (0: the networks at "
                              f"initialisation, an untrained control), got {steps!r}.")
        if not isinstance(arm.get("options", {}), dict):
            raise ConfigError(f"arms.{name}.options must be a mapping of option: value, got {arm['options']!r}.")
        if name in models.available():
            raise ConfigError(f"Arm {name!r} has the name of a registered model; give the arm a name of its own, "
                              f"e.g. {name}-{next(iter(arm.get('options') or {'arm': 0}))}.")
        fixed = sorted(set(arm.get("options") or {}) & set(HARNESS_ARGS))
        if fixed:
            raise ConfigError(f"arms.{name}.options may not set {', '.join(fixed)}: the harness gives every model the "
                              "config's arch (z_dim, width, style), data shape and step budget, and the protocol "
                              "states them for the whole benchmark; change arch.* for all rows instead.")
    names = [*models.available(), *arms]
    for name in arms:
        twin = next((n for n in names if n.lower() == name.lower() and n != name), None)
        if twin:  # on a case-insensitive filesystem (macOS, Windows) both would write one folder
            raise ConfigError(f"Arm {name!r} differs from {twin!r} only in case; the two would share one results "
                              "folder on macOS and Windows: give the arm a name of its own.")


def in_study(message, where="select_set or final_set"):
    """A config message's `--set key=value` fix as a study states it (`sweep` has no --set: a study
    sets config keys per phase, in its select_set and final_set)."""
    return re.sub(r"--set ([\w.\-]+)=([^\s,;)]*[^\s,;).])", rf"{where}: {{\1: \2}}", message).replace(
        "--set ", f"{where} ")
