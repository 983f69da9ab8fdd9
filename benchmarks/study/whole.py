"""A study file's fields checked together (the second pass; schema.py checks each field's type
and range first): what they mean against the registered models, the phases' configs and the
columns each phase writes. Each failure is a ConfigError naming the study file, the key and the fix.
"""
import difflib

import models
from models.registry import HARNESS_ARGS, NAME_PATTERN, check_options

from ..config import in_study
from ..core import columns
from ..core.errors import USER_ERRORS
from .schema import TRIAL, Fields


def check_whole(study, path, shape_of, phase_configs, final_rows):
    """What the checked fields mean together (module docstring). `shape_of(dataset)`: the declared
    shape of a dataset (data.declared_shape), which says whether its columns are those of points
    or of images (None: both kinds' columns are allowed); `phase_configs`: {"select", "final"}: a
    function resolving that phase's config (the final one against a provisional selection);
    `final_rows`: the rows the final phase runs whatever the selection (study.py has both)."""
    f = Fields(path)
    for key in ("models", "references"):
        for m in getattr(study, key):
            try:
                models.get(m)
            except USER_ERRORS as e:
                f.fail(f"{key}: {e}")
    targets = {t.name for t in study.targets}
    for c in study.claims:
        bad = [m for m in c.models_a + c.models_b if m not in study.models]
        if bad:
            f.fail(f"claim {c.id!r} compares the trials of {bad[0]!r}, which the study does not sweep; name models "
                   f"of its models: {', '.join(study.models)}.")
    if study.controls and study.controls not in targets:
        f.fail(f"controls must name a target ({', '.join(sorted(targets))}): each swept model's untrained control is "
               "the setting chosen for it, at 0 steps.")
    shared = sorted(set(study.selection_seeds) & set(study.final_seeds + study.claim_seeds))
    if shared:
        f.fail(f"seed {shared[0]} is both a selection and a final seed. A chosen setting's final score must not "
               "include the run it was chosen on: use disjoint seeds, e.g. selection_seeds: [100, 101, 102] and "
               "final_seeds: [0, 1, ...].")
    _check_arms(study, f, targets)

    phases = {}
    for phase, resolve in phase_configs.items():
        try:
            phases[phase] = resolve()
        except USER_ERRORS as e:
            f.fail(f"the {phase} phase's config (benchmark {study.benchmark!r}, budget {study.budget!r}, with "
                   f"{phase}_set) does not resolve: {in_study(str(e), f'{phase}_set')}")
    final_steps = phases["final"].train.steps
    for name, arm in study.arms.items():
        if (arm.get("steps") or 0) > final_steps:
            f.fail(f"arms.{name}.steps = {arm['steps']} is more than the final phase's {final_steps} G/E updates: an "
                   f"arm trains at most the budget's (steps: 0 is an untrained control).")
    _check_metrics(study, f, phases, shape_of)

    for c in study.claims:
        missing = [n for n in (c.a, c.b, *c.rows) if n and not n.startswith("ref:") and n not in final_rows
                   and n.split("@")[0] not in study.models]
        missing += [n for n in (c.a, c.b, *c.rows) if "@" in n and n.split("@", 1)[1] not in targets]
        if missing:
            f.fail(f"claim {c.id!r} compares {missing[0]!r}, which the final phase does not run: name a swept model "
                   f"(or model@target, a target of {', '.join(sorted(targets))}), a reference or an arm of the study.")


def _check_arms(study, f, targets):
    """Every arm's model and options, and its name against every other row's."""
    registered = {n.lower(): n for n in models.available()}
    controls = {f"{m}-untrained".lower() for m in study.models} if study.controls else set()
    for name, arm in study.arms.items():
        model, _, target = arm["model"].partition("@")
        if not NAME_PATTERN.fullmatch(name):
            f.fail(f"arm name {name!r} cannot be a results folder name: use letters, digits and . _ - only, starting "
                   "with a letter or digit, e.g. bigbigan-unary-x.")
        if TRIAL.fullmatch(name):
            f.fail(f"arm name {name!r} has the form of a selection trial (<model>.tKK), whose row it would share in "
                   "the final phase; give the arm a name of its own, e.g. " + name.replace(".t", "-t") + ".")
        if name.lower() in registered:
            f.fail(f"arm {name!r} has the name of a registered model ({registered[name.lower()]!r}, letter case "
                   "aside); give the arm a name of its own.")
        if name.lower() in controls:
            f.fail(f"arm {name!r} has the name of a swept model's untrained control (controls: {study.controls}); "
                   "give the arm a name of its own.")
        try:
            models.get(model)
        except USER_ERRORS as e:
            f.fail(f"arm {name!r}: {e}")
        if target and (model not in study.models or target not in targets):
            f.fail(f"arm {name!r} derives from {arm['model']!r}: name a swept model ({', '.join(study.models)}) and a "
                   f"target of the study ({', '.join(sorted(targets))}), e.g. {study.models[0]}@{sorted(targets)[0]}.")
        options, known = arm.get("options") or {}, models.options(model)
        fixed = sorted(set(options) & set(HARNESS_ARGS))
        if fixed:
            f.fail(f"arms.{name}.options may not set {', '.join(fixed)}: the harness gives every model the config's "
                   "arch (z_dim, width, style), data shape and step budget, and the protocol states them for the "
                   "whole study; change arch.* in select_set and final_set for every row instead.")
        unknown = sorted(set(options) - set(known))
        if unknown and not _takes_any(model):
            close = difflib.get_close_matches(unknown[0], list(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            f.fail(f"arms.{name}.options: model {model!r} has no option {unknown[0]!r}.{hint} Its options: "
                   f"{', '.join(sorted(set(known) - set(HARNESS_ARGS))) or 'none'}.")
        try:
            check_options(models.get(model), model, options, where=f"arms.{name}.options")
        except USER_ERRORS as e:
            f.fail(str(e))
    lowered = {}
    for name in study.arms:
        if name.lower() in lowered:
            f.fail(f"arms {lowered[name.lower()]!r} and {name!r} differ only in letter case; the two would share one "
                   "results folder on macOS and Windows: rename one.")
        lowered[name.lower()] = name


def _takes_any(model):
    import inspect

    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(models.get(model).__init__).parameters.values())


def _check_metrics(study, f, phases, shape_of):
    """Every metric the study names is a column of the phase it is read from: targets and the
    collapse line of the selection runs, sweep claims of the trials, the other claims of the
    final runs (trend claims of their truncation sweeps)."""
    select, final = phases["select"], phases["final"]
    shape = shape_of(select.dataset) if shape_of else None
    points = None if shape is None else len(shape) == 1

    def check(metric, cfg, phase, where, available=None):
        cols = available if available is not None else columns.produced(cfg, points)
        if metric in cols:
            return
        other = columns.produced(final if phase == "select" else select, points)
        if available is not None:  # a truncation claim reads the sweep's scores, truncation.csv
            f.fail(f"{where}: metric {metric!r} is not a score of the truncation sweep (truncation.csv), which "
                   f"scores the generated samples only: {', '.join(cols)}.")
        if metric in other:  # a column of the other phase, left out of this one by its settings
            hint = (f" The {'final' if phase == 'select' else 'select'} phase writes it, but this phase's settings "
                    f"({phase}_set) leave it out.")
        else:
            close = difflib.get_close_matches(metric, cols, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
        f.fail(f"{where}: metric {metric!r} is not a column the {phase} phase writes.{hint} Its columns: "
               f"{', '.join(cols)}.")

    for t in study.targets:
        check(t.metric, select, "select", f"targets.{t.name}")
        want = {"↑": "max", "↓": "min"}.get(columns.direction(t.metric))
        if want and t.goal != want:
            f.fail(f"targets.{t.name}: {t.metric} is {'higher' if want == 'max' else 'lower'}-is-better, so its goal "
                   f"is {want}, not {t.goal}.")
    if study.collapse:
        check(study.collapse["metric"], select, "select", "collapse")
    for c in study.claims:
        where = f"claim {c.id!r}"
        if c.kind == "sweep":
            check(c.metric, select, "select", where)
        elif c.kind == "paired":
            check(c.metric, final, "final", where)
            ref = c.b[4:] if c.b.startswith("ref:") else None
            if ref is not None and ref not in columns.reference_keys(c.metric):
                # a reference of another column would compare two different quantities (and an
                # unknown key would only surface after training as "no reference value")
                f.fail(f"{where}: b {c.b!r} is not a reference of {c.metric}; references.json holds "
                       f"{', '.join('ref:' + k for k in columns.reference_keys(c.metric))} for it (the ones "
                       f"the benchmark's data and settings give).")
        else:
            kinds = (True, False) if points is None else (points,)
            sweep = [col for kind in kinds for col in columns.generation_columns(final, kind)]
            check(c.metric, final, "final", f"{where} (a truncation trend)", available=sweep)
            if not c.premise and len(final.eval.truncation) < 2:
                f.fail(f"{where} tests the shape of the truncation sweep, but the final phase has "
                       f"{len(final.eval.truncation)} threshold(s) (eval.truncation): set at least 2 in final_set, "
                       "e.g. eval.truncation: [0.5, 1.0, 2.0].")
