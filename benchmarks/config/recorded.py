"""Recorded configs read back: a config.json or benchmark.json written by an older version of
the harness, read under today's names and keys (backfilled), and compared with a new config key by
key (config_diff). `run` resumes a run only where they agree and `report` merges only folders that do
(on schema.FOLDER_KEYS).
"""
import json

import models

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


def backfilled(old):
    """A recorded config read as today's code names it: renamed model options under their new
    names (each model declares its renames, `renamed_options`), and the keys added since it was
    written set to their old behaviour."""
    old = json.loads(json.dumps(old))
    for (section, key), value in BACKFILL.items():
        if isinstance(old.get(section), dict):
            old[section].setdefault(key, value)
    args = old.get("model_args")
    model = old.get("base_model", old.get("model"))  # an arm's run records the model it runs
    if isinstance(args, dict):
        for before, after in models.renamed_options(model).items():
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
