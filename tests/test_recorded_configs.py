"""Run records written before an option was renamed still resume and compare: `run` reads a
recorded config.json through config.backfilled before comparing it with today's config."""
import json
from pathlib import Path

import pytest

import models
from benchmarks.config import RENAMED_OPTIONS, backfilled, config_diff, load_config
from benchmarks.training.run import model_args

ROOT = Path(__file__).resolve().parent.parent


def _ident(cfg, name, args):
    """What run_one records as a run's config (and compares on resume)."""
    return json.loads(json.dumps({**cfg.folder_record(), "model": name, "model_args": args, "seed": 0}))


@pytest.mark.parametrize("name,old", [
    ("ali", {"adam_beta1": "beta1", "adam_beta2": "beta2"}),  # Adam's betas, once beta1 / beta2
    ("bigan-qp-simple", {"z_cycle_weight": "beta1", "x_cycle_weight": "beta2"}),  # loss weights, once beta1 / beta2
])
def test_a_record_with_the_old_option_names_is_the_same_config(name, old):
    cfg = load_config("toy2d-ali" if name == "ali" else "toy2d", budget="smoke")
    today = _ident(cfg, name, model_args(cfg, name, (2,)))
    recorded = json.loads(json.dumps(today))
    for new, before in old.items():
        recorded["model_args"][before] = recorded["model_args"].pop(new)
    assert config_diff(backfilled(recorded), today) == []
    recorded["model_args"]["beta1"] = 0.123  # a changed value is still a different config
    assert config_diff(backfilled(recorded), today) != []


def test_committed_run_records_use_only_options_the_models_take():
    """Every committed run's recorded options, read back, are options its model takes today."""
    paths = sorted(ROOT.glob("results/*/*/seed*/config.json"))
    assert paths
    for path in paths:
        c = backfilled(json.loads(path.read_text())["config"])
        unknown = set(c["model_args"]) - set(models.options(c["model"])) - set(models.HARNESS_ARGS)
        assert not unknown, (path, unknown)


def test_renamed_options_name_registered_models_and_their_options():
    for name, renames in RENAMED_OPTIONS.items():
        assert set(renames.values()) <= set(models.options(name)), name
        assert not set(renames) & set(models.options(name)), name  # an old name is free, never reused
