"""Name-keyed model registry, extended from outside (a plugin file registers itself): a model's
class, its options (under today's names: an old name it declares in `renamed_options` is read as
the new one) and its search space by name, and the settings a sweep's trials draw."""
import difflib
import hashlib
import inspect
import re
import warnings
from pathlib import Path

import numpy as np

from models.errors import ModelConfigError
from models.search import OPTIMISER_SPACE, Choice, Distribution

_MODELS = {}


# A model's name is its results folder (DIR/<name>/seed<k>) and a column of the tables: letters,
# digits and . _ - only, starting with a letter or digit (no path separators, no "..", no hidden
# folder), so every filesystem and every reader of the tables takes it as written.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def register(name):
    """Class decorator: `@register("my-gan") class MyGAN(BidirectionalGAN): ...`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"model name {name!r} cannot be a results folder name: use letters, digits and . _ - "
                         "only, starting with a letter or digit, e.g. 'team-ae'")

    def deco(cls):
        check_contract(cls, name)
        cls.registry_name = name
        twin = next((n for n in _MODELS if n.lower() == name.lower() and n != name), None)
        if twin:  # on a case-insensitive filesystem (macOS, Windows) both would write one folder
            raise ValueError(f"model {name!r} differs from the registered {twin!r} only in case; pick another name")
        if name in _MODELS and _MODELS[name] is not cls:
            if _same_source(_MODELS[name], cls):
                return cls  # the first registration stays
            raise ValueError(f"model {name!r} is already registered (by {_MODELS[name].__module__}); pick another name")
        _MODELS[name] = cls
        return cls

    return deco


# What the harness passes to every model's constructor, as keyword arguments, besides the
# config's model_options. A model takes each by name (or **kwargs) and may ignore any.
HARNESS_ARGS = {
    "data_shape": "tuple: (C, H, W) of the images in [-1, 1], or (2,) for 2-D points",
    "z_dim": "int: latent dimension (the config's arch.z_dim)",
    "width": "int: base channel width of the shared networks (arch.width)",
    "arch": "str: 'shared' (the suite's common networks) or 'paper' (the method's own)",
    "total_steps": "int: G/E updates this run will make (for schedules)",
}


def check_contract(cls, name):
    """What registration requires, so a broken model fails at import with the fix named."""
    from .base import BidirectionalGAN

    where = f"model {name!r} ({cls.__module__}.{cls.__qualname__})"
    if not (isinstance(cls, type) and issubclass(cls, BidirectionalGAN)):
        raise ModelConfigError(f"{where} must subclass models.base.BidirectionalGAN.")
    if cls.train_step is BidirectionalGAN.train_step:
        raise ModelConfigError(f"{where} must define train_step(self, batch, step): one G/E update and its D "
                               "updates, returning a dict of scalar losses.")
    if cls.prior not in ("normal", "uniform"):
        raise ModelConfigError(f"{where}: prior must be 'normal' or 'uniform', got {cls.prior!r}.")
    for attr, least in (("batches_per_step", 1), ("d_steps_per_step", 0)):
        v = getattr(cls, attr)
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise ModelConfigError(f"{where}: {attr} must be an integer >= {least}, got {v!r}.")
    for attr in ("networks", "eval_networks", "fp32_networks"):
        v = getattr(cls, attr)
        if not isinstance(v, (tuple, list)) or not all(isinstance(n, str) and n.isidentifier() for n in v):
            raise ModelConfigError(f"{where}: {attr} must be a tuple of attribute names, got {v!r}.")
    if not cls.networks:
        raise ModelConfigError(f"{where}: networks must name at least one trained network, e.g. ('G', 'E', 'D').")
    missing = missing_harness_args(cls)
    if missing:
        raise ModelConfigError(f"{where}: __init__ must accept the harness's keyword arguments "
                               f"{', '.join(HARNESS_ARGS)} (name them, or take **kwargs); it lacks "
                               f"{', '.join(missing)}. models/registry.py HARNESS_ARGS says what each is.")
    check_renamed_options(cls, where)
    check_search_space(cls, where)


def check_renamed_options(cls, where):
    """A declared `renamed_options` maps old option names to options __init__ takes today. An old
    name is never an option again (an old config would mean something else by it), and a new name
    is not renamed again (map the oldest name straight to today's)."""
    renames = getattr(cls, "renamed_options", {})
    if not isinstance(renames, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in renames.items()):
        raise ModelConfigError(f"{where}: renamed_options must be a dict {{old option name: new option name}}, "
                               f"got {renames!r}.")
    taken = set(class_options(cls)) - set(HARNESS_ARGS)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in _params(cls))
    for old, new in renames.items():
        if old in taken or old in HARNESS_ARGS:
            raise ModelConfigError(f"{where}: renamed_options reads {old!r} as {new!r}, but {old!r} is still taken "
                                   "(an option of its __init__ or the harness's); an old name is never reused.")
        if new in renames:
            raise ModelConfigError(f"{where}: renamed_options renames {old!r} to {new!r} and {new!r} again to "
                                   f"{renames[new]!r}; map {old!r} straight to {renames[new]!r}.")
        if new not in taken and not takes_any:
            raise ModelConfigError(f"{where}: renamed_options renames {old!r} to {new!r}, which is not an option of "
                                   f"its __init__; its options are: {', '.join(sorted(taken)) or 'none'}.")


def check_search_space(cls, where):
    """A declared `search_space` maps the model's own options to distributions (models/search.py)
    whose draws lie in the options' `option_ranges`; an undeclared one, the shared optimiser space
    restricted to the model's options, must fit those ranges too."""
    declared = getattr(cls, "search_space", None)
    if declared is not None and not isinstance(declared, dict):
        raise ModelConfigError(f"{where}: search_space must be a dict {{option: distribution}} (models.search: "
                               f"LogUniform, Uniform, Choice), or {{}} for nothing to tune; got {declared!r}.")
    taken = set(class_options(cls)) - set(HARNESS_ARGS)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in _params(cls))  # **kwargs: any option name is its own
    ranges = getattr(cls, "option_ranges", {})
    defaults = {p.name: p.default for p in _params(cls) if p.default is not p.empty}
    renamed = getattr(cls, "renamed_options", {})
    for option, dist in space_of(cls).items():
        if option in renamed:
            raise ModelConfigError(f"{where}: search_space tunes {option!r}, the old name of {renamed[option]!r}; "
                                   f"tune {renamed[option]!r}.")
        if option in HARNESS_ARGS or (option not in taken and not takes_any):
            why = "is set by the harness" if option in HARNESS_ARGS else "is not an option of its __init__"
            raise ModelConfigError(f"{where}: search_space tunes {option!r}, which {why}; tune only the model's "
                                   f"options: {', '.join(sorted(taken)) or 'none'}.")
        if not isinstance(dist, Distribution):
            raise ModelConfigError(f"{where}: search_space[{option!r}] must be a distribution from models.search "
                                   f"(LogUniform, Uniform, Choice), got {dist!r}.")
        kind = _kind(defaults.get(option))
        wrong = _wrong_values(dist, kind)
        if wrong:
            raise ModelConfigError(f"{where}: search_space[{option!r}] = {dist.text} draws {wrong}, but {option} is "
                                   f"{KIND_TEXT[kind][0]} (its default is {defaults[option]!r}); draw "
                                   f"{KIND_TEXT[kind][1]} instead.")
        rng, extremes = ranges.get(option), dist.extremes()
        if rng is None or extremes is None:
            continue
        outside = [v for v in extremes if not rng.ok(v)]
        if outside:
            fix = "narrow the distribution" if declared is not None else \
                "declare a search_space whose ranges fit (models/search.py)"
            raise ModelConfigError(f"{where}: search_space[{option!r}] = {dist.text} can draw {outside[0]!r}, "
                                   f"outside the option's range ({option} {rng.text}); {fix}.")


# What a search space may draw for an option, by the type of the option's default (None: no
# default, or None as the default: anything). A float option takes whole numbers too.
KIND_TEXT = {int: ("an integer option", "Choice([...]) of whole numbers, e.g. Choice([1, 2, 4])"),
             float: ("a number option", "Uniform, LogUniform or Choice([...]) of numbers"),
             str: ("a text option", "Choice([...]) of its text values"),
             bool: ("a true/false option", "Choice([True, False])")}


def _kind(default):
    for kind in (bool, int, float, str):  # bool first: True is an int to Python
        if isinstance(default, kind):
            return kind
    return None


def _wrong_values(dist, kind):
    """What `dist` draws that an option of `kind` cannot take ("" when it fits): Uniform and
    LogUniform draw floats; Choice draws its values as declared."""
    if kind is None:
        return ""
    if not isinstance(dist, Choice):
        return "" if kind is float else "fractional numbers"
    fits = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
            float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            str: lambda v: isinstance(v, str), bool: lambda v: isinstance(v, bool)}[kind]
    bad = [v for v in dist.values if not fits(v)]
    return f"{bad[0]!r}" if bad else ""


def _params(cls):
    return [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]


def missing_harness_args(cls):
    params = _params(cls)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return []
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return [a for a in HARNESS_ARGS if a not in named]


def check_networks(model, name):
    """The built model has every network it declares, each an nn.Module."""
    import torch.nn as nn

    for attr in tuple(model.networks) + tuple(model.eval_networks):
        if not isinstance(getattr(model, attr, None), nn.Module):
            raise ModelConfigError(f"model {name!r} declares network {attr!r} (networks/eval_networks) but its "
                                   f"__init__ sets no nn.Module self.{attr}; set it or change the declaration.")


def _same_source(a, b):
    """The same class loaded twice (a built-in file also passed as --plugin) is not a clash."""
    try:
        if a.__qualname__ != b.__qualname__:
            return False
        return Path(inspect.getfile(a)).resolve() == Path(inspect.getfile(b)).resolve()
    except TypeError:
        return False


def available():
    return sorted(_MODELS)


def get(name):
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelConfigError(
            f"Unknown model {name!r}.{hint} Registered models: {', '.join(available())}. "
            "A model from outside the project is loaded with --plugin path/to/file.py or --plugin package.module."
        )
    return _MODELS[name]


def options(name):
    """The keyword options a model accepts with their defaults (None where the harness supplies
    the value, HARNESS_ARGS, or where the option has no default)."""
    return class_options(get(name))


def class_options(cls):
    """`options` of a model class, registered or not."""
    return {p.name: None if p.default is p.empty else p.default for p in _params(cls)
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def renamed_options(name):
    """{old name: new name} of the options registered model `name` has renamed (its class's
    `renamed_options`); {} for a name not registered, so a record of an unknown model reads as written."""
    cls = _MODELS.get(name) if isinstance(name, str) else None
    return dict(getattr(cls, "renamed_options", {})) if cls is not None else {}


def upgraded_options(name, given, where=None, warn=True):
    """`given`, options of model `name` as a config or a recorded run wrote them, with each renamed
    option under its new name (`renamed_options`). With `warn`, a FutureWarning names the new
    spelling (a user's config; a recorded run is read silently). Both spellings at once is a
    ModelConfigError: which value was meant cannot be told. A model not registered, or `given`
    that is not a mapping, comes back as given (its own check names the problem)."""
    cls = _MODELS.get(name) if isinstance(name, str) else None
    if cls is None or not isinstance(given, dict):
        return given
    return _upgraded(cls, name, given, where, warn)


def _upgraded(cls, name, given, where, warn):
    renames = getattr(cls, "renamed_options", {})
    where = where or f"model_options.{name}"
    out = {}
    for key, value in given.items():
        new = renames.get(key, key)
        if new != key:
            if new in given:
                raise ModelConfigError(f"{where} sets both {key} and {new}, the old and the new name of one option; "
                                       f"keep {new} alone.")
            if warn:
                warnings.warn(f"{where}.{key} is now spelt {new} (read as {where}.{new}={value!r}); the old name "
                              "still loads, for older configs, but write the new one.", FutureWarning, stacklevel=3)
        out[new] = value
    return out


def space_of(cls):
    """The search space of a model class: its own (or a base's) `search_space` where one is
    declared, else OPTIMISER_SPACE (models/search.py) restricted to the options its constructor names."""
    declared = getattr(cls, "search_space", None)
    if declared is not None:
        return dict(declared)
    taken = class_options(cls)
    return {k: d for k, d in OPTIMISER_SPACE.items() if k in taken}


def search_space(name):
    """{option: distribution} the sweep tunes for registered model `name`; {} means nothing to
    tune (its one trial is its defaults)."""
    return space_of(get(name))


def name_seed(name):
    """A 32-bit integer from the model name, the same in every process (Python's hash() of a
    string changes from one interpreter to the next)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def draw_setting(name, trial):
    """Options of trial `trial` of model `name`: {} (the defaults) for trial 0, else one draw of
    each option of its search space, in sorted option order, from a generator seeded by (name,
    trial). The same (name, trial) gives the same setting in every process and on every machine."""
    if isinstance(trial, bool) or not isinstance(trial, (int, np.integer)) or trial < 0:
        raise ValueError(f"trial must be an integer >= 0 (0: the model's defaults), got {trial!r}.")
    space = search_space(name)
    if trial == 0:
        return {}
    rng = np.random.default_rng([name_seed(name), int(trial)])
    return {option: space[option].draw(rng) for option in sorted(space)}


def build(name, **config):
    """Build a registered model; an option it has renamed is read under its new name (with a
    FutureWarning), an option the model does not take is a ModelConfigError naming it, and the
    built model must have the networks it declares."""
    cls = get(name)
    config = _upgraded(cls, name, config, None, warn=True)  # an option under its old name, as its new one
    params = _params(cls)
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        known = set(options(name))
        unknown = sorted(set(config) - known)
        if unknown:
            listed = ", ".join(sorted(known - set(HARNESS_ARGS))) or "none besides the harness's"
            raise ModelConfigError(f"Model {name!r} has no option {', '.join(map(repr, unknown))}. "
                                   f"Its options are: {listed}.")
    check_options(cls, name, {k: v for k, v in config.items() if k not in HARNESS_ARGS})
    model = cls(**config)
    check_networks(model, name)
    return model


def check_options(cls, name, given, where=None):
    """Each option has its default's type (a number for a numeric default) and lies in the range
    the model declares for it (`option_ranges`). `where`: the config key the options were given
    under, for the message (default model_options.<name>; an arm's are arms.<arm>.options)."""
    defaults = {p.name: p.default for p in _params(cls) if p.default is not p.empty}
    where = where or f"model_options.{name}"
    given = _upgraded(cls, name, given, where, warn=False)  # checked under the new name; both names refused
    for key, value in given.items():
        default = defaults.get(key)
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if numeric and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise ModelConfigError(f"{where}.{key} must be a number (default {default!r}), got {value!r}.")
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ModelConfigError(f"{where}.{key} must be true or false, got {value!r}.")
        rng = getattr(cls, "option_ranges", {}).get(key)
        if rng is not None and isinstance(value, (int, float)) and not rng.ok(value):
            raise ModelConfigError(f"{where}.{key} must be {rng.text}, got {value!r}.")
