"""A study: budgeted hyperparameter sweeps, then the chosen settings and ablation arms rerun.

A study file (configs/studies/<name>.yaml) names a benchmark and budget, the models to sweep,
the number of trials, the targets a setting is chosen for, the ablation arms and the claims the
report tests. It runs in three phases, each writing an ordinary results folder with every
guarantee a `run` folder has (lock, resume, shards, provenance):

  select   OUT/select: trial k of model m is the arm `m.tKK` with the options that
           models.draw_setting(m, k) draws (trial 0: the model's defaults), trained on the
           training split less a validation split and scored on that validation split, on the
           first selection seed. The test split is not in the Dataset these runs see (data/splits.py).
  confirm  OUT/select as well: per model and target, the `confirm_top` trials the screen scored
           best, on the other selection seeds. The setting chosen is the best median over every
           selection seed among those that finished on all of them.
  final    OUT/final: the chosen settings, the ablation arms (which may derive from a chosen
           setting, `model@target`), each model's untrained control and the references, with
           final seeds disjoint from the selection seeds (claim rows with the claim seeds too),
           scored on test; generated samples are scored against the scored split in both phases.

Everything here is a pure function of the study file and the finished selection runs, so every
process of a sharded or resumed study computes the same arms.
"""
import json
import math
import statistics
from dataclasses import dataclass, field

import models

from ..config import CONFIG_DIR, check_arms, find_yaml, load_config
from ..core import yamlfile
from ..core.errors import ConfigError
from . import schema, whole
from .schema import CLAIM_KINDS, GOALS, KEYS  # noqa: F401 - what a study file holds, checked by schema.py

STUDY_DIR = CONFIG_DIR / "studies"


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
    """One claim of a source text, with the rows and metric that test it (reporting/claims.py)."""
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
    # Holm's correction and the simultaneous intervals run within a family: by default the claim's
    # own rows, so that a verdict does not depend on how many other claims the study tests
    family: str = ""
    premise: str = ""  # what the claim presupposes of the benchmark (PREMISES); unmet: outside its scope
    pivot: float = 1.0  # kind interior-minimum: the threshold between the "improves" and "worsens" halves
    rows: tuple = ()  # kinds monotone / interior-minimum: the final rows tested (default: each swept
    # model's row chosen for the target whose metric the claim tests)
    adjust: tuple = ("lr", "adam_beta1")  # kind sweep: the options the failure regression adjusts for

    @property
    def family_name(self):
        return self.family or self.id

    @property
    def scope_note(self):
        """Why the claim is outside this benchmark's scope ("" when its premise holds or it states none)."""
        return f"premise not met ({self.premise}): {PREMISES[self.premise]}" if self.premise else ""


# Premises a claim can state, and why no model of this harness meets them: every registered
# generator is unconditional (G takes z only), so a claim about class-conditional generators
# (BigGAN's truncation trade-off, measured with class-conditional IS) is outside this benchmark's scope.
PREMISES = {"class-conditional": "every generator here is unconditional (G takes z only, no class label), so the "
                                 "score must fall towards its floor as the threshold shrinks the latent spread; "
                                 "BigGAN's monotone-IS statement is about class-conditional models, where IS "
                                 "ignores the variety within a class"}


@dataclass(frozen=True)
class Study:
    name: str
    benchmark: str
    budget: str
    models: tuple  # swept models (those with an empty search space run their defaults once)
    trials: int
    validation_share: float
    # every trial runs on the first selection seed; each target's `confirm_top` best trials per model
    # run on the others too, and the setting chosen is the best median over all of them
    selection_seeds: tuple
    final_seeds: tuple  # every final row's seeds, disjoint from the selection seeds
    targets: tuple  # of Target
    arms: dict  # ablation arms, {name: {"model", "options", "steps"}}: final phase, no sweep; "model" may
    # be "model@target", the setting chosen for that target, with the arm's options changed
    references: tuple  # models run in the final phase at their defaults (untrained encoder, PCA, ...)
    select_set: tuple  # ((config key, value), ...): overrides of the selection phase (cheaper evaluation)
    final_set: tuple  # and of the final phase
    collapse: dict  # {"metric", "below"} or {"metric", "relative"}: see reporting/trials.py failed
    claims: tuple = field(default=())
    confirm_top: int = 0
    claim_seeds: tuple = ()  # extra final seeds of the rows a claim compares
    controls: str = ""  # a target: every swept model gets "<model>-untrained", that setting at 0 steps

    def trial_options(self):
        """{trial name: every option it ran with}: the drawn options over the model's defaults
        (the report reads them without knowing how trials are drawn)."""
        return {name: {**models.options(arm["model"]), **arm["options"]} for name, arm in trial_arms(self).items()}


def study_path(name_or_path):
    """A study file: the name of one in configs/studies/ (digits) or a path to a .yaml."""
    return find_yaml(name_or_path, STUDY_DIR, "Study file", "study", "studies")


CONTROL_SUFFIX = "-untrained"


def load_study(name_or_path, trials=None, shape_of=None):
    """The study file, checked whole before anything runs (schema.py: every field's type and
    range, every model, arm and metric); `trials`: --trials, over the file's; `shape_of`: a
    dataset's declared shape (data.declared_shape), for its columns."""
    path = study_path(name_or_path)
    raw = schema.check_fields(yamlfile.read(path, "Study"), path, trials)
    study = Study(
        name=path.stem, benchmark=raw["benchmark"], budget=raw["budget"], models=raw["models"], trials=raw["trials"],
        validation_share=raw["validation_share"], selection_seeds=raw["selection_seeds"],
        final_seeds=raw["final_seeds"],
        targets=tuple(Target(n, t["metric"], t["goal"]) for n, t in raw["targets"].items()),
        arms=raw["arms"], references=raw["references"], select_set=raw["select_set"], final_set=raw["final_set"],
        collapse=raw["collapse"], claims=tuple(_claim(c, path) for c in raw["claims"]), confirm_top=raw["confirm_top"],
        claim_seeds=raw["claim_seeds"], controls=raw["controls"])
    whole.check_whole(study, path, shape_of, {"select": lambda: select_config(study),
                                               "final": lambda: final_config(study, provisional_selection(study))},
                       set(final_models(study, {})))
    return study


def provisional_selection(study):
    """A selection with every model's defaults (trial 0) chosen for every target: the final
    phase's rows resolve against it before the selection is made, so the final phase's config
    and every arm that derives from a choice are checked up front."""
    return {m: {t.name: {"trial": 0, "arm": trial_name(m, 0), "options": {}, "row": m, "value": 0.0, "values": {}}
                for t in study.targets} for m in study.models}


def _claim(c, path):
    if not isinstance(c, dict) or c.get("kind", "paired") not in CLAIM_KINDS or not c.get("id") or not c.get("metric"):
        raise ConfigError(f"Study {path}: a claim must be a mapping with id, text, source, kind "
                          f"({', '.join(CLAIM_KINDS)}) and metric; got {c!r}.")
    c = {k: v for k, v in c.items() if v is not None}  # a key written without a value: as if left out
    premise = str(c.get("premise", ""))
    if premise and premise not in PREMISES:
        raise ConfigError(f"Study {path}: claim {c['id']!r} states the premise {premise!r}; known premises: "
                          f"{', '.join(PREMISES)}.")
    return Claim(id=str(c["id"]), text=str(c.get("text", "")), source=str(c.get("source", "")),
                 kind=c.get("kind", "paired"), metric=str(c["metric"]), a=str(c.get("a", "")), b=str(c.get("b", "")),
                 models_a=tuple(c.get("models_a", ())), models_b=tuple(c.get("models_b", ())),
                 family=str(c.get("family", "")), premise=premise, pivot=float(c.get("pivot", 1.0)),
                 rows=tuple(c.get("rows", ())), adjust=tuple(c.get("adjust", ("lr", "adam_beta1"))))


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
    """The resolved config of the selection phase's screen: every trial on the first selection
    seed, scored on validation."""
    arms = trial_arms(study)
    return _phase_config(study, arms, [study.selection_seeds[0]], study.select_set, "validation")


def confirm_config(study, rows):
    """The confirmation of the screen: each model's `confirm_top` best trials per target on the
    other selection seeds (into the same folder), or None when there is nothing to confirm."""
    names = sorted({n for per in candidates(study, rows).values() for names in per.values() for n in names})
    seeds = list(study.selection_seeds[1:])
    if not names or not seeds or not study.confirm_top:
        return None
    arms = trial_arms(study)
    return _phase_config(study, {n: arms[n] for n in names}, seeds, study.select_set, "validation")


def _phase_config(study, arms, seeds, sets, split, names=None):
    # Generated samples are scored against the split the phase is scored on (validation, then
    # test), which no model trained on; the held-out ceiling then comes from train.
    overrides = [*_overrides(sets, study.validation_share, split), "eval.gen_reference=scored"]
    cfg = load_config(study.benchmark, budget=study.budget, models=list(names or arms), seeds=seeds,
                      overrides=overrides)
    check_arms(arms)
    return cfg.replace(arms={**cfg.arms, **arms})


def _values(rows, name, metric, seeds=None):
    """{seed: value} of trial `name`'s finished (ok), finite runs, on `seeds` if given."""
    out = {}
    for r in rows:
        v = r.get(metric)
        if (r.get("model") == name and r.get("status") == "ok" and isinstance(v, (int, float)) and math.isfinite(v)
                and (seeds is None or r.get("seed") in seeds)):
            out[r["seed"]] = v
    return out


def candidates(study, rows):
    """{model: {target: [trial names]}}: per model and target, the trials the screen (the first
    selection seed) scored best, at most `confirm_top` of them (every finished trial when the study
    confirms nothing); ties go to the lower trial number (the defaults first)."""
    arms = trial_arms(study)
    screen = [study.selection_seeds[0]]
    top = study.confirm_top if study.confirm_top and len(study.selection_seeds) > 1 else None
    out = {}
    for m in study.models:
        names = [n for n in arms if arms[n]["model"] == m]
        for t in study.targets:
            scored = [(v[screen[0]], k, n) for k, n in enumerate(names)
                      if (v := _values(rows, n, t.metric, screen))]
            scored.sort(key=lambda x: (x[0] if t.goal == "min" else -x[0], x[1]))
            out.setdefault(m, {})[t.name] = [n for _, _, n in scored[:top]]
    return out


def missing_confirmations(study, rows):
    """The (trial, seed) runs the confirmation needs that the selection folder does not hold yet."""
    have = {(r.get("model"), r.get("seed")) for r in rows if r.get("status") in ("ok", "diverged", "failed")}
    names = {n for per in candidates(study, rows).values() for ns in per.values() for n in ns}
    return sorted((n, s) for n in names for s in study.selection_seeds if (n, s) not in have)


def select(study, rows):
    """{model: {target: {"trial", "arm", "options", "value", "values", "row"}}}: per model and
    target, among the screen's best trials (candidates), the one whose median validation score over
    every selection seed is best; a trial that diverged, failed or has no finite score on any
    selection seed is never chosen (a setting that blows up on one seed in three is fragile). Ties
    go to the lower trial number. `rows`: the selection folder's run records."""
    arms = trial_arms(study)
    chosen = {}
    for m, per in candidates(study, rows).items():
        for t in study.targets:
            best = None
            for name in per[t.name]:
                values = _values(rows, name, t.metric, study.selection_seeds)
                if len(values) < len(study.selection_seeds):
                    continue
                v = float(statistics.median(values.values()))
                if best is None or t.better(v, best["value"]):
                    k = int(name.rsplit(".t", 1)[1])
                    best = {"trial": k, "arm": name, "options": arms[name]["options"], "value": v,
                            "values": {str(s): values[s] for s in sorted(values)},
                            "row": name if k else m}  # its row in the final phase
            chosen.setdefault(m, {})[t.name] = best  # None: no trial of this model finished on every seed
    return chosen


def _resolve_arm(arm, chosen):
    """An arm as the run sees it: "model@target" becomes the model with the options chosen for
    that target and the arm's own options over them; None while that choice is not made."""
    model, _, target = arm["model"].partition("@")
    if not target:
        return arm
    pick = (chosen.get(model) or {}).get(target)
    if pick is None:
        return None
    return {**arm, "model": model, "options": {**pick["options"], **(arm.get("options") or {})}}


def final_models(study, chosen):
    """{row name: arm or None}: the final phase's rows. A chosen trial keeps its selection name
    (each distinct one once), an ablation arm its own name, an untrained control
    "<model>-untrained", a model run at its defaults (a reference, or a model a claim compares by
    name) its registered name. Arms that derive from a choice not made yet are left out.
    The rows run in this order: the untrained controls (0 steps) and the references first, as they
    cost seconds and every feature claim reads one, so a final phase stopped part-way has tested
    all it can; then the chosen settings; then the ablation arms."""
    rows = {}
    if study.controls:
        for m in study.models:
            resolved = _resolve_arm({"model": f"{m}@{study.controls}", "steps": 0}, chosen)
            if resolved is not None or not chosen:
                rows[m + CONTROL_SUFFIX] = resolved
    for m in study.references:
        rows[m] = None
    for m in study.models:
        for pick in (chosen.get(m) or {}).values():
            if pick is not None:  # trial 0 is the model's defaults: the row of its registered name
                rows[pick["row"]] = {"model": m, "options": pick["options"]} if pick["trial"] else None
    for name, arm in study.arms.items():
        resolved = _resolve_arm(arm, chosen)
        if resolved is not None or not chosen:
            rows[name] = resolved
    for m in (n for c in study.claims for n in (c.a, c.b) if n in study.models):
        rows.setdefault(m, None)  # a model a claim compares at its defaults
    return rows


def claim_rows(study, chosen):
    """The final rows compared paired by seed, which get the claim seeds as well: every row some
    claim compares, and every chosen row, since the report's per-target ranking compares each two
    of them (with 11 models, Holm over 55 pairs asks p < 0.05/55, out of reach of the signed-rank
    test on 10 seeds, whose smallest p is 0.002: their "any of these" would be the design's)."""
    names = {pick["row"] for m in study.models for pick in (chosen.get(m) or {}).values() if pick}
    for c in study.claims:
        for n in (c.a, c.b, *c.rows):
            if not n or n.startswith("ref:"):
                continue
            if "@" in n:
                model, target = n.split("@", 1)
                pick = (chosen.get(model) or {}).get(target)
                if pick:
                    names.add(pick["row"])
            else:
                names.add(n)
    return names  # a trend claim without rows of its own reads the chosen rows, already in


def final_config(study, chosen):
    rows = final_models(study, chosen)
    extra = {n: list(study.claim_seeds) for n in claim_rows(study, chosen) if n in rows} if study.claim_seeds else {}
    cfg = _phase_config(study, {n: a for n, a in rows.items() if a is not None}, list(study.final_seeds),
                        study.final_set, "test", names=list(rows))
    return cfg.replace(row_seeds=extra)
