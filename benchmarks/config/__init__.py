"""Benchmark configs: YAML files with a strict schema, named budgets and `--set` overrides.

A config names the dataset, the models, the seeds, the shared architecture size and the
training/evaluation settings; each named budget (smoke, quick, full) overrides part of it.
Every key is checked against SCHEMA: a typo is an error, never a silent default.
`load_config` checks the merged mapping and returns it as a `Config`, a small frozen object
(`cfg.train.steps`, `cfg.eval.gen_samples`) whose `to_dict()` is the mapping the results record.
"""
import copy
import dataclasses
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import models
from models.registry import HARNESS_ARGS, NAME_PATTERN

from ..core import yamlfile
from ..core.errors import ConfigError

CONFIG_DIR = Path(__file__).parent.parent / "configs"  # benchmarks/configs
BUDGETS_REQUIRED = ("smoke", "quick", "full")
FREE = dict  # a free-form mapping, checked by its consumer (dataset loader, model constructor)

# key -> type, or a nested schema. Defaults live in DEFAULTS; a config states what differs.
SCHEMA = {
    "dataset": str,
    "dataset_options": FREE,
    "models": list,
    "seeds": list,
    "arch": {"z_dim": int, "width": int, "style": str},
    "model_options": FREE,
    "train": {"steps": int, "batch_size": int, "log_every": int, "checkpoint_every": int, "hflip": bool,
              "validation_share": float},
    "eval": {"probe_max_train": int, "eval_batch_size": int, "grid_size": int, "gen_samples": int,
             "inception_samples": int, "dinov2_samples": int, "truncation": list, "truncation_samples": int,
             "track_every": int, "track_samples": int, "references": bool, "probe_labels": list, "split": str,
             "gen_reference": str},
    "arms": FREE,
}
ARCH_STYLES = ("shared", "paper")
EVAL_SPLITS = ("test", "validation")  # what a run is scored on (data/splits.py)
# The real images generated samples are scored against (FD, precision/recall/density/coverage):
# "train", or "scored", the split the run is scored on (validation in a study's selection, test
# otherwise), which no model trained on.
GEN_REFERENCES = ("train", "scored")
# Seeds: 0 <= seed < 2**32. numpy is seeded with seed % 2**32 (runtime.seed_everything) and
# Python's random with |seed|, so a seed outside this range would silently share its streams with
# another seed; inside it, the derived torch seeds (seed * 1_000_003 + epoch for the data order,
# seed + EVAL_NOISE_OFFSET for the evaluation noise) stay far inside torch's 64-bit range.
SEED_LIMIT = 2**32
# Counts that size tensors held in memory at once (a batch, every generated sample's features):
# beyond a million the features alone take gigabytes, and run.check_sizes bounds each by the data
# and the machine once the data is loaded. Checked here first, so 1e20 never reaches an allocator.
MAX_COUNT = 1_000_000
COUNTS = ("train.batch_size", "eval.eval_batch_size", "eval.grid_size", "eval.gen_samples", "eval.probe_max_train",
          "eval.inception_samples", "eval.dinov2_samples", "eval.truncation_samples", "eval.track_samples")
# Keys added after results were first published, with the value that reproduces the older
# behaviour: a results folder recorded before a key existed is read as having that value.
# eval.references only adds protocol lines and changes no number, so older folders count as
# having it on: they can be completed under today's defaults. eval.probe_labels likewise only adds
# columns (probe_acc_<n>) and changes no number: older folders count as having today's default,
# so they can be completed and merged with newer ones; their older runs leave those cells blank.
# train.validation_share and eval.split (a validation split carved from train, and the split a run
# is scored on) change no number at their defaults: older folders trained on all of train, scored on test.
# eval.dinov2_samples = 0 is the DINOv2 metrics off, as they were before the key existed.
# eval.gen_reference = train: generated samples were scored against train images before it existed.
BACKFILL = {("train", "hflip"): False, ("eval", "references"): True, ("eval", "probe_labels"): [1, 10, 100],
            ("train", "validation_share"): 0.0, ("eval", "split"): "test", ("eval", "dinov2_samples"): 0,
            ("eval", "gen_reference"): "train"}
DEFAULTS = {
    "arch": {"style": "shared"},
    "dataset_options": {},
    "seeds": [0],
    "model_options": {},
    "arms": {},
    # hflip: mirror each training image left-right with probability 1/2 (drawn per epoch and seed)
    # validation_share: the share of train held out as the validation split (data/splits.py); 0: none
    "train": {"log_every": 25, "checkpoint_every": 1000, "hflip": False, "validation_share": 0.0},
    # truncation: thresholds of the truncation sweep (Gaussian priors); track_every: steps between
    # the generation-metric points of the training curve (0: none); references: the model-free
    # reference scores of the protocol block (raw-pixel probe and kNN, chance levels);
    # probe_labels: labels per class of the label-efficiency probes (probe_acc_<n>), drawn from the
    # probe's train subset; a count larger than a class of that subset is left out, with a note;
    # dinov2_samples: generated images for FD, precision/recall, density/coverage in DINOv2
    # features (fd_dinov2_<n>, ...; 0: off), like inception_samples for the Inception columns
    "eval": {"probe_max_train": 20000, "eval_batch_size": 500, "grid_size": 64, "gen_samples": 2000,
             "inception_samples": 0, "dinov2_samples": 0, "truncation": [0.25, 0.5, 1.0, 1.5, 2.0],
             "truncation_samples": 2000, "track_every": 0, "track_samples": 1000, "references": True,
             "probe_labels": [1, 10, 100],
             # split: what a run is scored on, "test" or "validation" (hyperparameter selection)
             "split": "test",
             # gen_reference: the real images generated samples are compared with (GEN_REFERENCES)
             "gen_reference": "train"},
}


# The resolved config, typed: one class per section of SCHEMA, one field per key, in SCHEMA's
# order (tests/test_recorded_configs.py holds them to it), so that `cfg.train.steps` can be
# followed by name from the command line to the training loop. Frozen: a derived config is made
# with replace(). SCHEMA's lists are tuples here and values keep the type they were written with
# (validation_share 0 stays an int); to_dict() gives the lists back, so that the JSON records
# (written with sorted keys) are byte for byte what they were when the config was a dict.


class _Frozen:
    def replace(self, **changes):
        """A copy with `changes` (field: value) made: a derived config, e.g. other steps."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Arch(_Frozen):
    """arch: the size of the networks every model builds (passed to each as constructor arguments)."""
    z_dim: int
    width: int
    style: str  # one of ARCH_STYLES


@dataclass(frozen=True)
class Train(_Frozen):
    """train: the training loop's settings (training/train.py)."""
    steps: int  # G/E updates
    batch_size: int
    log_every: int
    checkpoint_every: int
    hflip: bool
    validation_share: float  # as written: a 0 given as such stays an int


@dataclass(frozen=True)
class Eval(_Frozen):
    """eval: what a run is scored on and how many samples each metric takes (evaluation/evaluate.py)."""
    probe_max_train: int
    eval_batch_size: int
    grid_size: int
    gen_samples: int
    inception_samples: int
    dinov2_samples: int
    truncation: tuple[float, ...]  # thresholds, numbers as written
    truncation_samples: int
    track_every: int
    track_samples: int
    references: bool
    probe_labels: tuple[int, ...]  # label counts per class
    split: str  # one of EVAL_SPLITS
    gen_reference: str  # one of GEN_REFERENCES


@dataclass(frozen=True)
class Config(_Frozen):
    """A resolved benchmark config. dataset_options, model_options and arms are free-form by
    design (their consumers check them: the dataset loader, the model constructors) and stay
    plain dicts: read-only by convention, since a frozen object does not freeze a dict; derive
    a config with replace() instead of changing one in place."""
    benchmark: str  # the config file's name
    budget: str
    dataset: str
    dataset_options: dict
    models: tuple[str, ...]  # model or arm names, each once
    seeds: tuple[int, ...]
    arch: Arch
    train: Train
    eval: Eval
    model_options: dict
    arms: dict
    # {row: extra seeds} some rows run beyond `seeds` (a study's claim rows get more seeds than the
    # rest); not part of the YAML schema, set by the study with replace()
    row_seeds: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, cfg):
        """The typed form of a checked, complete config mapping (load_config's)."""
        return cls(benchmark=cfg["benchmark"], budget=cfg["budget"], dataset=cfg["dataset"],
                   dataset_options=cfg["dataset_options"], models=tuple(cfg["models"]), seeds=tuple(cfg["seeds"]),
                   arch=Arch(**cfg["arch"]), train=Train(**cfg["train"]),
                   eval=Eval(**{**cfg["eval"], "truncation": tuple(cfg["eval"]["truncation"]),
                                "probe_labels": tuple(cfg["eval"]["probe_labels"])}),
                   model_options=cfg["model_options"], arms=cfg["arms"])

    def to_dict(self):
        """The config as a nested mapping, as load_config returned it before it was typed:
        sections as dicts, tuples as lists, free-form mappings copied. What the results record."""
        out = _plain(self)
        if not out["row_seeds"]:  # a plain benchmark's record stays as it was before the field existed
            del out["row_seeds"]
        return out

    def matrix_size(self):
        """How many (model, seed) runs the config holds."""
        return sum(len(set(self.seeds) | set(self.row_seeds.get(m, ()))) for m in self.models)

    def folder_record(self):
        """The part a results folder records and every run in it must agree on (FOLDER_KEYS),
        in that order: benchmark.json's config, and the start of each config.json's."""
        whole = self.to_dict()
        return {k: whole[k] for k in FOLDER_KEYS}


def _plain(value):
    """`value` as plain data, the containers copied: a dataclass as a dict of its fields in
    order, a tuple or list as a list."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def config_path(name_or_path):
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"Config file {p} does not exist.")
        return p
    p = CONFIG_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        names = available_configs()
        close = difflib.get_close_matches(str(name_or_path), names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"Unknown benchmark {name_or_path!r}.{hint} Built-in benchmarks: {', '.join(names)} "
            f"(in {CONFIG_DIR}); a path to a .yaml file works too."
        )
    return p


def available_configs():
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _check(tree, schema, where):
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
            _check(value, kind, path)
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


def _unique(values):
    """The list without repeats, in first-seen order: a run named twice is one run (and two
    --jobs shards must never both write it)."""
    return list(dict.fromkeys(values))


def _merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(text):
    """'train.steps=100' -> (['train', 'steps'], 100). Values are YAML scalars or lists."""
    if "=" not in text:
        raise ConfigError(f"Override {text!r} must look like key.path=value, e.g. train.steps=100.")
    key, value = text.split("=", 1)
    parsed = yamlfile.parse(value, f"Override {text!r}: the value")
    if isinstance(parsed, str):  # YAML 1.1 reads 4e-4 (no dot) as text; a number was meant
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return key.strip().split("."), parsed


def in_study(message, where="select_set or final_set"):
    """A config message's `--set key=value` fix as a study states it (`sweep` has no --set: a study
    sets config keys per phase, in its select_set and final_set)."""
    return re.sub(r"--set ([\w.\-]+)=([^\s,;)]*[^\s,;).])", rf"{where}: {{\1: \2}}", message).replace(
        "--set ", f"{where} ")


def _nest(path, value):
    for k in reversed(path):
        value = {k: value}
    return value


def load_config(name_or_path, budget="quick", overrides=(), models=None, seeds=None):
    """Resolve a benchmark config: file -> defaults -> budget -> overrides -> CLI lists. The
    checks run on the merged mapping; the result is a Config."""
    path = config_path(name_or_path)
    raw = yamlfile.read(path, "Config")
    if not isinstance(raw, dict):
        raise ConfigError(f"Config {path} must be a YAML mapping.")
    budgets = raw.pop("budgets", None)
    _check(raw, SCHEMA, "")
    if not isinstance(budgets, dict) or any(b not in budgets for b in BUDGETS_REQUIRED):
        raise ConfigError(f"Config {path} must define the budgets {', '.join(BUDGETS_REQUIRED)} under 'budgets'.")
    budget_schema = {k: v for k, v in SCHEMA.items() if k != "dataset"}
    for name, over in budgets.items():
        _check(over or {}, budget_schema, f"budgets.{name}")
    if budget not in budgets:
        raise ConfigError(f"Config {path} has no budget {budget!r}; it has: {', '.join(budgets)}.")

    cfg = _merge(_merge(DEFAULTS, raw), budgets[budget] or {})
    for text in overrides:
        keys, value = parse_override(text)
        over = _nest(keys, value)
        _check(over, SCHEMA, "")
        cfg = _merge(cfg, over)
    if models is not None:
        cfg["models"] = list(models)
    if seeds is not None:
        cfg["seeds"] = list(seeds)

    missing = [k for k in SCHEMA if k not in cfg] + [
        f"{k}.{sub}" for k, kind in SCHEMA.items() if isinstance(kind, dict)
        for sub in kind if sub not in cfg.get(k, {})
    ]
    if missing:
        raise ConfigError(f"Config {path} (budget {budget!r}) does not set: {', '.join(missing)}.")
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
    cfg["models"], cfg["seeds"] = _unique(cfg["models"]), _unique(cfg["seeds"])
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
    check_arms(cfg["arms"])
    for name, opts in cfg["model_options"].items():
        if opts is not None and not isinstance(opts, dict):
            raise ConfigError(f"model_options.{name} must be a mapping of option: value, e.g. "
                              f"--set model_options.{name}.lr=1e-4; got {opts!r}.")
        fixed = sorted(set(opts or {}) & set(HARNESS_ARGS))
        if fixed:
            raise ConfigError(f"model_options.{name} may not set {', '.join(fixed)}: the harness gives every model "
                              "the config's arch (z_dim, width, style), data shape and step budget, and the protocol "
                              "states them for the whole benchmark; change arch.* (e.g. --set arch.width=16) for all "
                              "rows instead.")
    cfg["benchmark"] = path.stem
    cfg["budget"] = budget
    return Config.from_dict(cfg)


def check_arms(arms):
    """Arms: {name: {"model": registered model, "options": {option: value}, "steps": N}}, each a
    registered model run under another name with some options changed (an ablation, a sweep trial)
    and, with `steps`, trained for N G/E updates instead of the budget's (0: an untrained control
    of the model's own architecture; the model is built for the budget's steps all the same). The
    name is its results folder, so it follows a model name's rules; the model and its options
    are checked with the models (training.run.check_models), once plugins have registered theirs."""
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


# What a folder of runs must agree on, and what one run must agree on to be resumed: `run`
# compares a recorded config with the new one on these keys, `report` refuses to merge folders
# that differ on them.
FOLDER_KEYS = ("benchmark", "budget", "dataset", "dataset_options", "arch", "train", "eval")


# Model options renamed since results were recorded, {model: {old name: new name}}, so that an
# option name means one thing in every model: Adam's betas were beta1 / beta2 in most models,
# while BiGAN-QP's beta1 / beta2 weighted its z- and x-cycle losses (it named Adam's adam_beta*).
_ADAM_BETAS = {"beta1": "adam_beta1", "beta2": "adam_beta2"}
_QP_WEIGHTS = {"beta1": "z_cycle_weight", "beta2": "x_cycle_weight"}
RENAMED_OPTIONS = {
    **dict.fromkeys(("ali", "autoencoder", "bigan", "bigbigan", "gan-posthoc-encoder"), _ADAM_BETAS),
    **dict.fromkeys(("bigan-qp-simple", "bigan-qp-full", "bigan-qp-simple-nosg", "bigan-qp-full-nosg"), _QP_WEIGHTS),
}


def backfilled(old):
    """A recorded config read as today's code names it: renamed model options under their new
    names, and the keys added since it was written set to their old behaviour."""
    old = json.loads(json.dumps(old))
    for (section, key), value in BACKFILL.items():
        if isinstance(old.get(section), dict):
            old[section].setdefault(key, value)
    args = old.get("model_args")
    model = old.get("base_model", old.get("model"))  # an arm's run records the model it runs
    if isinstance(args, dict):
        for before, after in RENAMED_OPTIONS.get(model, {}).items():
            if before in args and after not in args:
                args[after] = args.pop(before)
    if isinstance(args, dict) and isinstance(model, str) and model in models.available():
        # A model option added since the run started: new options default to the old behaviour.
        for key, value in models.options(model).items():
            args.setdefault(key, value)
    return old


def config_diff(old, new, prefix=""):
    """Every key where two (nested) configs differ, as 'key.sub: old -> new'."""
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        a, b = old.get(k, "<unset>"), new.get(k, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
