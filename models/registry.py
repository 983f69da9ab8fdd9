"""Name-keyed model registry, extended from outside (a plugin file registers itself)."""
import difflib
import inspect
from pathlib import Path

from models.errors import ModelConfigError

_MODELS = {}


def register(name):
    """Class decorator: `@register("my-gan") class MyGAN(BidirectionalGAN): ...`."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"model name must be a non-empty string without surrounding spaces, got {name!r}")

    def deco(cls):
        cls.registry_name = name
        if name in _MODELS and _MODELS[name] is not cls:
            if _same_source(_MODELS[name], cls):
                return cls  # the first registration stays
            raise ValueError(f"model {name!r} is already registered (by {_MODELS[name].__module__}); pick another name")
        _MODELS[name] = cls
        return cls

    return deco


def _same_source(a, b):
    """The same class loaded twice (a built-in file also passed as --plugin) is not a clash."""
    try:
        return a.__qualname__ == b.__qualname__ and Path(inspect.getfile(a)).resolve() == Path(inspect.getfile(b)).resolve()
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
    """The keyword options a model accepts with their defaults (None where the harness
    supplies the value: data_shape, z_dim, width, total_steps)."""
    sig = inspect.signature(get(name).__init__)
    return {
        p.name: None if p.default is p.empty else p.default
        for p in sig.parameters.values()
        if p.kind is p.KEYWORD_ONLY
    }


def build(name, **config):
    """Build a registered model; an option the model does not take is a ModelConfigError naming it."""
    cls = get(name)
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ModelConfigError(
            f"Model {name!r} has no option {', '.join(map(repr, unknown))}. "
            f"Its options are: {', '.join(sorted(known))}."
        )
    return cls(**config)
