"""Finding, reading and merging a config: a bundled name or a path (find_yaml, shared with the
study files), the YAML read, then defaults -> file -> budget -> `--set` overrides -> the CLI's
model and seed lists, checked at each step (checks.py) and returned as a Config.
"""
import copy
import difflib
from pathlib import Path

from models.registry import upgraded_options  # load_config's `models` parameter hides the package

from ..core import yamlfile
from ..core.errors import ConfigError
from .checks import check_keys, check_resolved
from .schema import BUDGETS_REQUIRED, DEFAULTS, SCHEMA, Config

CONFIG_DIR = Path(__file__).parent.parent / "configs"  # benchmarks/configs


def find_yaml(name_or_path, folder, file, kind, kinds):
    """The YAML file `name_or_path` names: a path (anything ending in .yaml or .yml, or that exists)
    or the name of a file bundled in `folder`. The messages name the thing looked for: `file` a
    path's ("Config file"), `kind` and `kinds` a name's ("benchmark", "benchmarks")."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"{file} {p} does not exist.")
        return p
    p = folder / f"{name_or_path}.yaml"
    if not p.is_file():
        names = bundled(folder)
        close = difflib.get_close_matches(str(name_or_path), names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"Unknown {kind} {name_or_path!r}.{hint} Built-in {kinds}: {', '.join(names)} "
                          f"(in {folder}); a path to a .yaml file works too.")
    return p


def bundled(folder):
    """The names of the YAML files bundled in `folder`, sorted."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def config_path(name_or_path):
    """A benchmark config file: the name of one in configs/ (digits) or a path to a .yaml."""
    return find_yaml(name_or_path, CONFIG_DIR, "Config file", "benchmark", "benchmarks")


def available_configs():
    """The bundled benchmarks' names (configs/*.yaml)."""
    return bundled(CONFIG_DIR)


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
    check_keys(raw, SCHEMA, "")
    if not isinstance(budgets, dict) or any(b not in budgets for b in BUDGETS_REQUIRED):
        raise ConfigError(f"Config {path} must define the budgets {', '.join(BUDGETS_REQUIRED)} under 'budgets'.")
    budget_schema = {k: v for k, v in SCHEMA.items() if k != "dataset"}
    for name, over in budgets.items():
        check_keys(over or {}, budget_schema, f"budgets.{name}")
    if budget not in budgets:
        raise ConfigError(f"Config {path} has no budget {budget!r}; it has: {', '.join(budgets)}.")

    cfg = _merge(_merge(DEFAULTS, raw), budgets[budget] or {})
    for text in overrides:
        keys, value = parse_override(text)
        over = _nest(keys, value)
        check_keys(over, SCHEMA, "")
        cfg = _merge(cfg, over)
    if models is not None:
        cfg["models"] = list(models)
    if seeds is not None:
        cfg["seeds"] = list(seeds)
    check_resolved(cfg, path, budget)
    # An option written under its old name (a model's renamed_options) is recorded under today's,
    # so that a run configured either way is the same run.
    cfg["model_options"] = {name: upgraded_options(name, opts, where=f"model_options.{name}")
                            for name, opts in cfg["model_options"].items()}
    for name, arm in cfg["arms"].items():
        if arm.get("options"):
            arm["options"] = upgraded_options(arm["model"], arm["options"], where=f"arms.{name}.options")
    cfg["models"], cfg["seeds"] = _unique(cfg["models"]), _unique(cfg["seeds"])
    cfg["benchmark"] = path.stem
    cfg["budget"] = budget
    return Config.from_dict(cfg)
