"""Run records written before an option was renamed still resume and compare: `run` reads a
recorded config.json through config.backfilled before comparing it with today's config."""
import dataclasses
import json

import pytest

import models
from benchmarks.config import (FOLDER_KEYS, SCHEMA, Arch, Config, Eval, Train, backfilled, config_diff,
                               load_config)
from benchmarks.training.build import model_args
from tests.helpers import ROOT


def _ident(cfg, name, args):
    """What run_one records as a run's config (and compares on resume)."""
    return json.loads(json.dumps({**cfg.folder_record(), "model": name, "model_args": args, "seed": 0}))


@pytest.mark.parametrize("name,old", [
    ("ali", {"adam_beta1": "beta1", "adam_beta2": "beta2", "adam_eps": "eps"}),  # Adam's, once beta1 / beta2 / eps
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


def test_a_config_with_an_old_option_name_is_the_same_config_as_today(tmp_path):
    """A user's YAML (or --set) that still says ALI's eps loads, with a warning, as adam_eps."""
    with pytest.warns(FutureWarning, match="model_options.ali.eps is now spelt adam_eps"):
        old = load_config("toy2d-ali", "smoke", overrides=["model_options.ali.eps=1e-6"])
    new = load_config("toy2d-ali", "smoke", overrides=["model_options.ali.adam_eps=1e-6"])
    assert old.model_options == new.model_options and new.model_options["ali"]["adam_eps"] == 1e-6
    assert "eps" not in old.model_options["ali"]


def test_the_typed_config_has_one_field_per_schema_key():
    """Arch, Train and Eval name SCHEMA's keys, in its order; Config its top level, the two
    keys load_config adds and the per-row seeds a study sets."""
    for cls, section in ((Arch, "arch"), (Train, "train"), (Eval, "eval")):
        assert [f.name for f in dataclasses.fields(cls)] == list(SCHEMA[section])
    assert {f.name for f in dataclasses.fields(Config)} == set(SCHEMA) | {"benchmark", "budget", "row_seeds"}


@pytest.mark.parametrize("name", ["digits", "toy2d-ali"])
def test_the_typed_config_reads_and_records_as_the_mapping(name):
    """to_dict() is plain JSON data (lists, not tuples) that reads back as the same Config; the
    object is frozen, and replace() derives a new one without touching it."""
    cfg = load_config(name, budget="smoke", overrides=["train.validation_share=0"])
    as_dict = cfg.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict and Config.from_dict(as_dict) == cfg
    assert isinstance(as_dict["models"], list) and isinstance(as_dict["eval"]["truncation"], list)
    assert as_dict["train"]["validation_share"] == 0 and type(as_dict["train"]["validation_share"]) is int
    assert cfg.arch.z_dim == as_dict["arch"]["z_dim"] and cfg.eval.gen_samples == as_dict["eval"]["gen_samples"]
    assert list(cfg.folder_record()) == list(FOLDER_KEYS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.steps = 1
    longer = cfg.replace(train=cfg.train.replace(steps=cfg.train.steps + 1))
    assert longer.train.steps == cfg.train.steps + 1 and longer.eval is cfg.eval
    assert load_config(name, budget="smoke", overrides=["train.validation_share=0"]) == cfg
