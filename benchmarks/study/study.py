"""A study: budgeted hyperparameter sweeps, then the chosen settings and ablation arms rerun.

A study file (configs/studies/<name>.yaml) names a benchmark and budget, the models to sweep,
the number of trials, the targets a setting is chosen for, the ablation arms and the claims the
report tests. It runs in two phases, each an ordinary results folder with every guarantee a
`run` folder has (lock, resume, shards, provenance):

  select  OUT/select: trial k of model m is the arm `m.tKK` with the options that
          models.draw_setting(m, k) draws (trial 0: the model's defaults), trained on the
          training split less a validation split and scored on that validation split. The test
          split is not in the Dataset these runs see (data/splits.py).
  final   OUT/final: for each model and target, the trial whose validation score is best, the
          ablation arms and the reference models, each with the final seeds, scored on test.

Everything here is a pure function of the study file and the finished selection runs, so every
process of a sharded or resumed study computes the same arms.
"""
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import models

from ..config import CONFIG_DIR, check_arms, load_config
from ..core.errors import ConfigError

STUDY_DIR = CONFIG_DIR / "studies"
GOALS = ("min", "max")
CLAIM_KINDS = ("paired", "sweep", "monotone", "interior-minimum")


@dataclass(frozen=True)
class Target:
    """What a setting is chosen for: the validation metric and whether lower or higher is better."""
    name: str
    metric: str
    goal: str

    def better(self, a, b):
        return a < b if self.goal == "min" else a > b


@dataclass(frozen=True)
class Claim:
    """One claim of a source text, with the arms and metric that test it (reporting/claims.py)."""
    id: str
    text: str
    source: str
    kind: str  # paired: row a against row b by seed; sweep: the selection phase's trials of two groups of
    # models; monotone / interior-minimum: the shape of the truncation sweeps of the final runs
    metric: str
    a: str = ""
    b: str = ""
    models_a: tuple = ()  # kind sweep: the two groups of models whose trials are compared
    models_b: tuple = ()


@dataclass(frozen=True)
class Study:
    name: str
    benchmark: str
    budget: str
    models: tuple  # swept models (those with an empty search space run their defaults once)
    trials: int
    validation_share: float
    selection_seeds: tuple
    final_seeds: tuple
    targets: tuple  # of Target
    arms: dict  # ablation arms, {name: {"model", "options"}}: final phase, no sweep
    references: tuple  # models run in the final phase at their defaults (untrained encoder, PCA, ...)
    select_set: tuple  # ((config key, value), ...): overrides of the selection phase (cheaper evaluation)
    final_set: tuple  # and of the final phase
    collapse: dict  # {"metric", "below"}: a trial scoring below counts as collapsed
    claims: tuple = field(default=())


def study_path(name_or_path):
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"Study file {p} does not exist.")
        return p
    p = STUDY_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        names = sorted(q.stem for q in STUDY_DIR.glob("*.yaml"))
        close = difflib.get_close_matches(str(name_or_path), names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"Unknown study {name_or_path!r}.{hint} Built-in studies: {', '.join(names)} (in "
                          f"{STUDY_DIR}); a path to a .yaml file works too.")
    return p


KEYS = {"benchmark", "budget", "models", "trials", "validation_share", "selection_seeds", "final_seeds",
        "targets", "arms", "references", "select_set", "final_set", "collapse", "claims"}


def load_study(name_or_path, trials=None):
    """The study file, checked: every key known, every model and arm registered or declared."""
    path = study_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"Study {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"Study {path} must be a YAML mapping.")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ConfigError(f"Study {path}: unknown key {unknown[0]!r}. Allowed: {', '.join(sorted(KEYS))}.")
    for key in ("benchmark", "models", "targets", "final_seeds"):
        if key not in raw:
            raise ConfigError(f"Study {path} must set {key!r}.")
    trials = raw.get("trials", 16) if trials is None else trials
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise ConfigError(f"The number of trials must be a positive integer, got {trials!r}; e.g. --trials 16.")
    targets = []
    for name, t in (raw["targets"] or {}).items():
        if not isinstance(t, dict) or t.get("goal") not in GOALS or not isinstance(t.get("metric"), str):
            raise ConfigError(f"Study {path}: target {name!r} must be {{metric: <column>, goal: min|max}}, got {t!r}.")
        targets.append(Target(name, t["metric"], t["goal"]))
    if not targets:
        raise ConfigError(f"Study {path} names no target: a setting is chosen per target (e.g. generation: "
                          "{metric: fd_digits, goal: min}).")
    claims = tuple(_claim(c, path) for c in raw.get("claims") or [])
    study = Study(
        name=path.stem, benchmark=str(raw["benchmark"]), budget=str(raw.get("budget", "quick")),
        models=tuple(raw["models"]), trials=trials, validation_share=float(raw.get("validation_share", 0.2)),
        selection_seeds=tuple(raw.get("selection_seeds", [0])), final_seeds=tuple(raw["final_seeds"]),
        targets=tuple(targets), arms=dict(raw.get("arms") or {}), references=tuple(raw.get("references") or ()),
        select_set=_settings(raw, "select_set", path), final_set=_settings(raw, "final_set", path),
        collapse=dict(raw.get("collapse") or {}), claims=claims)
    for m in study.models + study.references:
        models.get(m)
    check_arms(study.arms)
    rows = set(final_models(study, {}))
    for c in claims:
        missing = [n for n in (c.a, c.b) if n and not n.startswith("ref:") and n not in rows
                   and n.split("@")[0] not in study.models]
        missing += [n for n in (c.a, c.b) if "@" in n and n.split("@", 1)[1] not in {t.name for t in targets}]
        if missing:
            raise ConfigError(f"Study {path}: claim {c.id!r} compares {missing[0]!r}, which the final phase does not "
                              "run: name a swept model, a reference or an arm of the study.")
    return study


def _settings(raw, key, path):
    """A phase's config overrides, {dotted.key: value}, as sorted (key, value) pairs."""
    sets = raw.get(key) or {}
    if not isinstance(sets, dict):
        raise ConfigError(f"Study {path}: {key} must map config keys to values, e.g. {{eval.track_every: 0}}; "
                          f"got {sets!r}.")
    return tuple(sorted(sets.items()))


def _claim(c, path):
    if not isinstance(c, dict) or c.get("kind", "paired") not in CLAIM_KINDS or not c.get("id") or not c.get("metric"):
        raise ConfigError(f"Study {path}: a claim must be a mapping with id, text, source, kind "
                          f"({', '.join(CLAIM_KINDS)}) and metric; got {c!r}.")
    return Claim(id=str(c["id"]), text=str(c.get("text", "")), source=str(c.get("source", "")),
                 kind=c.get("kind", "paired"), metric=str(c["metric"]), a=str(c.get("a", "")), b=str(c.get("b", "")),
                 models_a=tuple(c.get("models_a", ())), models_b=tuple(c.get("models_b", ())))


def trial_name(model, k):
    return f"{model}.t{k:02d}"


def trial_arms(study):
    """{arm name: {"model", "options"}} of every trial of the selection phase, in model order."""
    arms = {}
    for m in study.models:
        n = study.trials if models.search_space(m) else 1  # nothing to tune: its defaults, once
        for k in range(n):
            arms[trial_name(m, k)] = {"model": m, "options": models.draw_setting(m, k)}
    return arms


def _overrides(sets, share, split):
    """--set overrides from a study's {key: value} mapping, then the phase's split."""
    return [*(f"{k}={json.dumps(v)}" for k, v in sets), f"train.validation_share={share}", f"eval.split={split}"]


def select_config(study):
    """The resolved config of the selection phase: every trial, the selection seeds, scored on validation."""
    arms = trial_arms(study)
    cfg = load_config(study.benchmark, budget=study.budget, models=list(arms), seeds=list(study.selection_seeds),
                      overrides=_overrides(study.select_set, study.validation_share, "validation"))
    check_arms(arms)
    return cfg.replace(arms={**cfg.arms, **arms})


def select(study, rows):
    """{model: {target: {"trial", "arm", "options", "value"}}}: per model and target, the trial with
    the best mean validation score over the selection seeds among its finished (ok) runs; ties go
    to the lower trial number (the default first). `rows`: the selection folder's run records."""
    arms = trial_arms(study)
    chosen = {}
    for m in study.models:
        for t in study.targets:
            best = None
            for k in range(study.trials):
                name = trial_name(m, k)
                if name not in arms:
                    break
                values = [r.get(t.metric) for r in rows if r.get("model") == name and r.get("status") == "ok"]
                values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
                if not values:
                    continue
                v = sum(values) / len(values)
                if best is None or t.better(v, best["value"]):
                    best = {"trial": k, "arm": name, "options": arms[name]["options"], "value": v,
                            "row": name if k else m}  # its row in the final phase (final_name)
            chosen.setdefault(m, {})[t.name] = best  # None: no trial of this model finished
    return chosen


def final_models(study, chosen):
    """{row name: arm or None}: the final phase's rows. A chosen trial keeps its selection name
    (each distinct one once), an ablation arm its own name, a model run at its defaults (a
    reference, or a model a claim compares by name) its registered name."""
    rows = {}
    for m in study.models:
        for pick in (chosen.get(m) or {}).values():
            if pick is not None:  # trial 0 is the model's defaults: the row of its registered name
                rows[pick["row"]] = {"model": m, "options": pick["options"]} if pick["trial"] else None
    for name, arm in study.arms.items():
        rows[name] = arm
    for m in study.references + tuple(n for c in study.claims for n in (c.a, c.b) if n in study.models):
        rows.setdefault(m, None)
    return rows


def final_config(study, chosen):
    rows = final_models(study, chosen)
    cfg = load_config(study.benchmark, budget=study.budget, models=list(rows), seeds=list(study.final_seeds),
                      overrides=_overrides(study.final_set, study.validation_share, "test"))
    arms = {n: a for n, a in rows.items() if a is not None}
    check_arms(arms)
    return cfg.replace(arms={**cfg.arms, **arms})
