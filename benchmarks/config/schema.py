"""The config schema: every key a benchmark config may set, its type, its default, and the typed
frozen classes a resolved config is read through.

SCHEMA lists the keys (a typo is an error, never a silent default; checks.py), DEFAULTS what a
config need not state, and Config (with Arch, Train and Eval, one class per section) is what
load_config returns: `cfg.train.steps`, `cfg.eval.gen_samples`, and `to_dict()`, the mapping the
results record.
"""
import dataclasses
from dataclasses import dataclass

BUDGETS_REQUIRED = ("smoke", "quick", "full")
FREE = dict  # a free-form mapping, checked by its consumer (dataset loader, model constructor)

# key -> type, or a nested schema. Defaults live in DEFAULTS; a config states what differs.
SCHEMA = {
    "dataset": str,
    "dataset_options": FREE,
    "models": list,
    "seeds": list,
    "arch": {"z_dim": int, "width": int, "style": str},
    "model_options": FREE,
    "train": {"steps": int, "batch_size": int, "log_every": int, "checkpoint_every": int, "hflip": bool,
              "validation_share": float},
    "eval": {"probe_max_train": int, "eval_batch_size": int, "grid_size": int, "gen_samples": int,
             "inception_samples": int, "dinov2_samples": int, "truncation": list, "truncation_samples": int,
             "track_every": int, "track_samples": int, "references": bool, "probe_labels": list, "split": str,
             "gen_reference": str},
    "arms": FREE,
}
ARCH_STYLES = ("shared", "paper")
EVAL_SPLITS = ("test", "validation")  # what a run is scored on (data/splits.py)
# The real images generated samples are scored against (FD, precision/recall/density/coverage):
# "train", or "scored", the split the run is scored on (validation in a study's selection, test
# otherwise), which no model trained on.
GEN_REFERENCES = ("train", "scored")
# Seeds: 0 <= seed < 2**32. numpy is seeded with seed % 2**32 (runtime.seed_everything) and
# Python's random with |seed|, so a seed outside this range would silently share its streams with
# another seed; inside it, the derived torch seeds (seed * 1_000_003 + epoch for the data order,
# seed + EVAL_NOISE_OFFSET for the evaluation noise) stay far inside torch's 64-bit range.
SEED_LIMIT = 2**32
# Counts that size tensors held in memory at once (a batch, every generated sample's features):
# beyond a million the features alone take gigabytes, and run.check_sizes bounds each by the data
# and the machine once the data is loaded. Checked when the config loads (checks.py), so 1e20 never
# reaches an allocator.
MAX_COUNT = 1_000_000
COUNTS = ("train.batch_size", "eval.eval_batch_size", "eval.grid_size", "eval.gen_samples", "eval.probe_max_train",
          "eval.inception_samples", "eval.dinov2_samples", "eval.truncation_samples", "eval.track_samples")

# What a config need not state (a folder recorded before a key existed reads it as recorded.BACKFILL
# says, which may differ: the behaviour from before the key).
DEFAULTS = {
    "arch": {"style": "shared"},
    "dataset_options": {},
    "seeds": [0],
    "model_options": {},
    "arms": {},
    # hflip: mirror each training image left-right with probability 1/2 (drawn per epoch and seed)
    # validation_share: the share of train held out as the validation split (data/splits.py); 0: none
    "train": {"log_every": 25, "checkpoint_every": 1000, "hflip": False, "validation_share": 0.0},
    # truncation: thresholds of the truncation sweep (Gaussian priors); track_every: steps between
    # the generation-metric points of the training curve (0: none); references: the model-free
    # reference scores of the protocol block (raw-pixel probe and kNN, chance levels);
    # probe_labels: labels per class of the label-efficiency probes (probe_acc_<n>), drawn from the
    # probe's train subset; a count larger than a class of that subset is left out, with a note;
    # dinov2_samples: generated images for FD, precision/recall, density/coverage in DINOv2
    # features (fd_dinov2_<n>, ...; 0: off), like inception_samples for the Inception columns
    "eval": {"probe_max_train": 20000, "eval_batch_size": 500, "grid_size": 64, "gen_samples": 2000,
             "inception_samples": 0, "dinov2_samples": 0, "truncation": [0.25, 0.5, 1.0, 1.5, 2.0],
             "truncation_samples": 2000, "track_every": 0, "track_samples": 1000, "references": True,
             "probe_labels": [1, 10, 100],
             # split: what a run is scored on, "test" or "validation" (hyperparameter selection)
             "split": "test",
             # gen_reference: the real images generated samples are compared with (GEN_REFERENCES)
             "gen_reference": "train"},
}

# What a folder of runs must agree on, and what one run must agree on to be resumed: `run`
# compares a recorded config with the new one on these keys, `report` refuses to merge folders
# that differ on them.
FOLDER_KEYS = ("benchmark", "budget", "dataset", "dataset_options", "arch", "train", "eval")


# The resolved config, typed: one class per section of SCHEMA, one field per key, in SCHEMA's
# order (tests/benchmarks/config/test_recorded_configs.py holds them to it), so that `cfg.train.steps` can be
# followed by name from the command line to the training loop. Frozen: a derived config is made
# with replace(). SCHEMA's lists are tuples here and values keep the type they were written with
# (validation_share 0 stays an int); to_dict() gives the lists back, so that the JSON records
# (written with sorted keys) are byte for byte what they were when the config was a dict.


class _Frozen:
    def replace(self, **changes):
        """A copy with `changes` (field: value) made: a derived config, e.g. other steps."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Arch(_Frozen):
    """arch: the size of the networks every model builds (passed to each as constructor arguments)."""
    z_dim: int
    width: int
    style: str  # one of ARCH_STYLES


@dataclass(frozen=True)
class Train(_Frozen):
    """train: the training loop's settings (training/train.py)."""
    steps: int  # G/E updates
    batch_size: int
    log_every: int
    checkpoint_every: int
    hflip: bool
    validation_share: float  # as written: a 0 given as such stays an int


@dataclass(frozen=True)
class Eval(_Frozen):
    """eval: what a run is scored on and how many samples each metric takes (evaluation/evaluate.py)."""
    probe_max_train: int
    eval_batch_size: int
    grid_size: int
    gen_samples: int
    inception_samples: int
    dinov2_samples: int
    truncation: tuple[float, ...]  # thresholds, numbers as written
    truncation_samples: int
    track_every: int
    track_samples: int
    references: bool
    probe_labels: tuple[int, ...]  # label counts per class
    split: str  # one of EVAL_SPLITS
    gen_reference: str  # one of GEN_REFERENCES


@dataclass(frozen=True)
class Config(_Frozen):
    """A resolved benchmark config. dataset_options, model_options and arms are free-form by
    design (their consumers check them: the dataset loader, the model constructors) and stay
    plain dicts: read-only by convention, since a frozen object does not freeze a dict; derive
    a config with replace() instead of changing one in place."""
    benchmark: str  # the config file's name
    budget: str
    dataset: str
    dataset_options: dict
    models: tuple[str, ...]  # model or arm names, each once
    seeds: tuple[int, ...]
    arch: Arch
    train: Train
    eval: Eval
    model_options: dict
    arms: dict
    # {row: extra seeds} some rows run beyond `seeds` (a study's claim rows get more seeds than the
    # rest); not part of the YAML schema, set by the study with replace()
    row_seeds: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, cfg):
        """The typed form of a checked, complete config mapping (load_config's)."""
        return cls(benchmark=cfg["benchmark"], budget=cfg["budget"], dataset=cfg["dataset"],
                   dataset_options=cfg["dataset_options"], models=tuple(cfg["models"]), seeds=tuple(cfg["seeds"]),
                   arch=Arch(**cfg["arch"]), train=Train(**cfg["train"]),
                   eval=Eval(**{**cfg["eval"], "truncation": tuple(cfg["eval"]["truncation"]),
                                "probe_labels": tuple(cfg["eval"]["probe_labels"])}),
                   model_options=cfg["model_options"], arms=cfg["arms"])

    def to_dict(self):
        """The config as a nested mapping, as load_config returned it before it was typed:
        sections as dicts, tuples as lists, free-form mappings copied. What the results record."""
        out = _plain(self)
        if not out["row_seeds"]:  # a plain benchmark's record stays as it was before the field existed
            del out["row_seeds"]
        return out

    def matrix_size(self):
        """How many (model, seed) runs the config holds."""
        return sum(len(set(self.seeds) | set(self.row_seeds.get(m, ()))) for m in self.models)

    def folder_record(self):
        """The part a results folder records and every run in it must agree on (FOLDER_KEYS),
        in that order: benchmark.json's config, and the start of each config.json's."""
        whole = self.to_dict()
        return {k: whole[k] for k in FOLDER_KEYS}


def _plain(value):
    """`value` as plain data, the containers copied: a dataclass as a dict of its fields in
    order, a tuple or list as a list."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value

