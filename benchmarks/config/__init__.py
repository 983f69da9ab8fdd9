"""Benchmark configs: YAML files with a strict schema, named budgets and `--set` overrides.

A config names the dataset, the models, the seeds, the shared architecture size and the
training/evaluation settings; each named budget (smoke, quick, full) overrides part of it.
Every key is checked against SCHEMA: a typo is an error, never a silent default.
`load_config` checks the merged mapping and returns it as a `Config`, a small frozen object
(`cfg.train.steps`, `cfg.eval.gen_samples`) whose `to_dict()` is the mapping the results record.

One module per job, read in this order:
  schema.py    the keys, their types and defaults, and the typed classes (Config, Arch, Train, Eval)
  checks.py    every key known and typed, then the merged mapping whole; messages name the fix
  load.py      a bundled name or a path (shared with the study files), the YAML read and merged
  recorded.py  configs recorded by older versions, read under today's names and compared
"""
from .checks import check_arms, check_keys, check_resolved, in_study
from .load import CONFIG_DIR, available_configs, bundled, config_path, find_yaml, load_config, parse_override
from .recorded import BACKFILL, backfilled, config_diff
from .schema import (ARCH_STYLES, BUDGETS_REQUIRED, COUNTS, DEFAULTS, EVAL_SPLITS, FOLDER_KEYS, FREE, GEN_REFERENCES,
                     MAX_COUNT, SCHEMA, SEED_LIMIT, Arch, Config, Eval, Train)

__all__ = [
    "ARCH_STYLES", "BUDGETS_REQUIRED", "COUNTS", "DEFAULTS", "EVAL_SPLITS", "FOLDER_KEYS", "FREE", "GEN_REFERENCES",
    "MAX_COUNT", "SCHEMA", "SEED_LIMIT", "Arch", "Config", "Eval", "Train",
    "check_arms", "check_keys", "check_resolved", "in_study",
    "CONFIG_DIR", "available_configs", "bundled", "config_path", "find_yaml", "load_config", "parse_override",
    "BACKFILL", "backfilled", "config_diff",
]
