"""A study file checked whole before anything trains.

A study runs for hours, and its final phase is resolved from the selection: a mistake found there
(an arm option out of range, a mistyped metric) costs the whole selection. So every part of the
file is checked when it is read, in two passes:

- `check_fields`: each key has its type and range (a mapping, a list of names, seeds in range,
  a share in (0, 1), ...), unknown keys get a did-you-mean hint;
- `check_whole` (whole.py): what the fields mean together: every model and arm is registered,
  every arm's options exist and lie in their model's ranges (a `model@target` arm against its
  model's own), no arm takes the name of a trial, a control or another row, the seeds are
  disjoint, both phases' configs resolve (select_set, final_set), and every metric a target, the
  collapse line or a claim names is a column the phase it is read from writes (core/columns.py).

Each failure is a ConfigError naming the study file, the key and the fix.
"""
import difflib
import re

from models.registry import NAME_PATTERN, ModelConfigError, upgraded_options

from ..config import SEED_LIMIT
from ..core.errors import ConfigError

GOALS = ("min", "max")
CLAIM_KINDS = ("paired", "sweep", "monotone", "interior-minimum")
KEYS = {"benchmark", "budget", "models", "trials", "validation_share", "selection_seeds", "final_seeds",
        "targets", "arms", "references", "select_set", "final_set", "collapse", "claims", "confirm_top",
        "claim_seeds", "controls"}
REQUIRED = ("benchmark", "models", "targets", "final_seeds")
MAX_TRIALS = 1000  # per swept model: each trial is a training run; a million would only fill memory with arms
MAX_SEEDS = 1000
TARGET_KEYS = ("metric", "goal")
ARM_KEYS = ("model", "options", "steps")
COLLAPSE_KEYS = ("metric", "below", "relative")
CLAIM_KEYS = ("id", "text", "source", "kind", "metric", "a", "b", "models_a", "models_b", "family", "premise", "pivot",
              "rows", "adjust")
# Config keys a phase's select_set / final_set may not set: the study sets them itself.
STUDY_SET = {"models": "models (and arms, references)", "seeds": "selection_seeds / final_seeds",
             "arms": "arms", "train.validation_share": "validation_share", "eval.split": "the phase",
             "eval.gen_reference": "the phase (generated samples are scored against the scored split)"}
TRIAL = re.compile(r".+\.t\d+")  # trial k of model m is the row m.tKK (study.trial_name)


class Fields:
    """The checks of one study file's fields, each failure a ConfigError naming the file."""

    def __init__(self, path):
        self.path = path

    def fail(self, text):
        raise ConfigError(f"Study {self.path}: {text}")

    def unknown(self, keys, allowed, where):
        extra = [k for k in keys if k not in allowed]
        if extra:
            close = difflib.get_close_matches(str(extra[0]), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            self.fail(f"unknown key {extra[0]!r}{where}.{hint} Allowed: {', '.join(allowed)}.")

    def mapping(self, value, key, example):
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(f"{key} must be a mapping, e.g. {example}; got {value!r}.")
        bad = [k for k in value if not isinstance(k, str) or not k]
        if bad:
            self.fail(f"{key} holds the key {bad[0]!r}; its keys must be names (text).")
        return value

    def text(self, value, key, example):
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{key} must be a name (text), e.g. {key}: {example}; got {value!r}.")
        return value

    def names(self, value, key, example, empty=False):
        if value is None:
            value = []
        if not isinstance(value, list):
            self.fail(f"{key} must be a list of names, e.g. {key}: {example}; got {value!r}.")
        bad = [v for v in value if not isinstance(v, str) or not v.strip()]
        if bad:
            self.fail(f"{key} must be a list of names, e.g. {key}: {example}; got {bad[0]!r} in {value!r}.")
        if not value and not empty:
            self.fail(f"{key} must name at least one, e.g. {key}: {example}.")
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            self.fail(f"{key} names {twice[0]!r} twice.")
        return value

    def integer(self, value, key, lo, hi, example):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.fail(f"{key} must be a whole number from {lo} to {hi}, e.g. {key}: {example}; got {value!r}.")
        return value

    def number(self, value, key, ok, text, example):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            self.fail(f"{key} must be a number {text}, e.g. {key}: {example}; got {value!r}.")
        return value

    def seeds(self, value, key, example, empty=False):
        if value is None and empty:
            return []
        if not isinstance(value, list) or (not value and not empty):
            self.fail(f"{key} must be a {'' if empty else 'non-empty '}list of seeds, e.g. {key}: {example}; "
                      f"got {value!r}.")
        bad = [s for s in value if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < SEED_LIMIT]
        if bad:
            self.fail(f"{key}: seed {bad[0]!r} is not a whole number from 0 to {SEED_LIMIT - 1} (numpy's random "
                      f"generator takes 32-bit seeds); e.g. {key}: {example}.")
        if len(value) > MAX_SEEDS:
            self.fail(f"{key} lists {len(value)} seeds; at most {MAX_SEEDS}.")
        twice = sorted({s for s in value if value.count(s) > 1})
        if twice:
            self.fail(f"{key} lists seed {twice[0]} twice.")
        return value


def check_fields(raw, path, trials=None):
    """The study file's mapping `raw` with every field of its type and range, as the Study's
    fields (the claims as checked mappings); `trials`: --trials, which overrides the file's."""
    f = Fields(path)
    if not isinstance(raw, dict):
        f.fail("a study file must be a YAML mapping of its keys (benchmark, models, targets, ...).")
    f.unknown(list(raw), sorted(KEYS), "")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        f.fail(f"{missing[0]!r} must be set (every study sets {', '.join(REQUIRED)}).")
    out = {"benchmark": f.text(raw["benchmark"], "benchmark", "digits"),
           "budget": f.text(raw.get("budget", "quick"), "budget", "quick"),
           "models": tuple(f.names(raw["models"], "models", "[bigan, ali]"))}
    if trials is None:
        out["trials"] = f.integer(raw.get("trials", 16), "trials", 1, MAX_TRIALS, 16)
    elif isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        f.fail(f"--trials {trials} is out of range: the number of trials per swept model is from 1 to {MAX_TRIALS}, "
               "e.g. --trials 16.")
    else:
        out["trials"] = trials
    out["validation_share"] = float(f.number(raw.get("validation_share", 0.2), "validation_share",
                                             lambda v: 0 < v < 1, "in (0, 1), the share of train held out", 0.2))
    out["selection_seeds"] = tuple(f.seeds(raw.get("selection_seeds", [0]), "selection_seeds", "[100, 101, 102]"))
    out["final_seeds"] = tuple(f.seeds(raw["final_seeds"], "final_seeds", "[0, 1, 2, 3, 4]"))
    out["claim_seeds"] = tuple(f.seeds(raw.get("claim_seeds"), "claim_seeds", "[10, 11, 12]", empty=True))
    out["confirm_top"] = f.integer(raw.get("confirm_top", 0), "confirm_top", 0, out["trials"], 3)

    out["targets"] = _targets(f, raw["targets"])
    out["arms"] = _arms(f, raw.get("arms"))
    out["references"] = tuple(f.names(raw.get("references"), "references", "[random-init, pca]", empty=True))
    for key in ("select_set", "final_set"):
        out[key] = _overrides(f, raw.get(key), key)
    out["collapse"] = _collapse(f, raw.get("collapse"))
    out["claims"] = _claims(f, raw.get("claims"))
    controls = raw.get("controls")
    out["controls"] = "" if controls in (None, "") else f.text(controls, "controls", "representation")
    return out


def _targets(f, targets):
    """{name: {metric, goal}}: what a setting is chosen for, one choice per target."""
    targets = f.mapping(targets, "targets", "{generation: {metric: fd_digits, goal: min}}")
    if not targets:
        f.fail("targets names no target: a setting is chosen per target, e.g. targets: {generation: {metric: "
               "fd_digits, goal: min}}.")
    for name, t in targets.items():
        if not NAME_PATTERN.fullmatch(name):
            f.fail(f"target name {name!r} must be letters, digits and . _ - (it is written model@{name}).")
        if not isinstance(t, dict) or t.get("goal") not in GOALS or not isinstance(t.get("metric"), str):
            f.fail(f"target {name!r} must be {{metric: <column>, goal: min|max}}, got {t!r}.")
        f.unknown(list(t), TARGET_KEYS, f" in target {name!r}")
    return targets


def _arms(f, arms):
    """{name: {model, options, steps?}}, each option under today's name (a model's renamed_options);
    whether the model takes the options is checked with the models (check_whole)."""
    arms = f.mapping(arms, "arms", "{bigan-nolr: {model: bigan, options: {lr: 0.001}}}")
    out = {}
    for name, arm in arms.items():
        if not isinstance(arm, dict) or not isinstance(arm.get("model"), str):
            f.fail(f"arm {name!r} must be a mapping {{model: <model or model@target>, options: {{...}}}} (and "
                   f"optionally steps: N), got {arm!r}.")
        f.unknown(list(arm), ARM_KEYS, f" in arm {name!r}")
        f.mapping(arm.get("options"), f"arms.{name}.options", "{lr: 0.001}")
        if arm.get("steps") is not None:
            f.integer(arm["steps"], f"arms.{name}.steps", 0, 10**9, 0)
        try:
            options = upgraded_options(arm["model"].partition("@")[0], dict(arm.get("options") or {}),
                                       where=f"arms.{name}.options")
        except ModelConfigError as e:
            f.fail(str(e))
        out[name] = {**arm, "options": options}
    return out


def _overrides(f, sets, key):
    """A phase's config overrides (select_set, final_set), sorted: never a key the study sets itself."""
    sets = f.mapping(sets, key, "{eval.track_every: 0}")
    for k in _flat(sets):
        owner = next((v for r, v in STUDY_SET.items() if k == r or k.startswith(r + ".")), None)
        if owner:
            f.fail(f"{key} may not set {k}: the study sets it ({owner}).")
    return tuple(sorted(sets.items()))


def _collapse(f, collapse):
    """{metric, below} (a fixed line) or {metric, relative} (a share of the model's best trial), or {}."""
    collapse = f.mapping(collapse, "collapse", "{metric: coverage_digits, relative: 0.25}")
    if collapse:
        f.unknown(list(collapse), COLLAPSE_KEYS, " in collapse")
        if not isinstance(collapse.get("metric"), str) or ("below" in collapse) == ("relative" in collapse):
            f.fail("collapse must be {metric: <column>, below: <value>} (a fixed line) or {metric: <column>, "
                   f"relative: <share of the model's best trial>}}, e.g. {{metric: coverage_digits, relative: 0.25}}; "
                   f"got {collapse!r}.")
        if "below" in collapse:
            f.number(collapse["below"], "collapse.below", lambda v: True, "(the line under which a trial collapsed)",
                     0.05)
        else:
            f.number(collapse["relative"], "collapse.relative", lambda v: 0 < v <= 1,
                     "in (0, 1], the share of the model's best trial", 0.25)
    return dict(collapse)


def _claims(f, claims):
    """The claims as checked mappings: each with its own id, a known kind and the fields it needs."""
    claims = claims or []
    if not isinstance(claims, list):
        f.fail(f"claims must be a list of claims, each {{id, text, source, kind, metric, ...}}; got {claims!r}.")
    ids = []
    for c in claims:
        if not isinstance(c, dict):
            f.fail(f"a claim must be a mapping with id, text, source, kind ({', '.join(CLAIM_KINDS)}) and metric; "
                   f"got {c!r}.")
        where = f"claims[{c.get('id', len(ids))}]"
        f.unknown(list(c), CLAIM_KEYS, f" in {where}")
        if not isinstance(c.get("id"), str) or not c["id"]:
            f.fail(f"{where} needs an id (text), e.g. id: recon-terms; got {c.get('id')!r}.")
        if c["id"] in ids:
            f.fail(f"two claims have the id {c['id']!r}; each claim needs its own.")
        ids.append(c["id"])
        _claim(f, c, where)
    return claims


def _claim(f, c, where):
    if c.get("kind", "paired") not in CLAIM_KINDS:
        f.fail(f"{where}.kind must be one of {', '.join(CLAIM_KINDS)}, got {c.get('kind')!r}.")
    f.text(c.get("metric"), f"{where}.metric", "fd_digits")
    for key in ("a", "b", "family", "text", "source"):
        if c.get(key) is not None and not isinstance(c[key], (str, int, float)):
            f.fail(f"{where}.{key} must be text, got {c[key]!r}.")
    kind = c.get("kind", "paired")
    if kind == "paired" and not (c.get("a") and c.get("b")):
        f.fail(f"{where} is a paired claim: it needs a and b, the rows it compares (a: the design choice, "
               "b: without it).")
    for key in ("models_a", "models_b"):
        f.names(c.get(key), f"{where}.{key}", "[bigan, ali]", empty=kind != "sweep")
    for key in ("rows", "adjust"):
        f.names(c.get(key), f"{where}.{key}", "[lr, adam_beta1]" if key == "adjust" else "[bigan@generation]",
                empty=True)
    if "pivot" in c:
        f.number(c["pivot"], f"{where}.pivot", lambda v: v > 0, "> 0 (a truncation threshold)", 1.0)


def _flat(sets, prefix=""):
    """The dotted keys a {key: value} mapping of overrides sets, nested mappings opened."""
    for k, v in sets.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from _flat(v, key + ".")
        else:
            yield key
