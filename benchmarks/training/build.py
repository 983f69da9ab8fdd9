"""What a row of the matrix builds: its model's resolved constructor arguments (the model's
defaults, the harness's, the config's options, an arm's), the model itself, and the checks that
stop a benchmark before anything trains: every model builds as configured, and the batch and
sample sizes fit the data and this machine's memory."""
import hashlib
import math
import os
import sys

import models
from models.registry import HARNESS_ARGS, check_options

from ..core.errors import USER_ERRORS, ConfigError


FIXED_MODEL_ARGS = ("data_shape", "total_steps", "arch")


def base_model(cfg, name):
    """The registered model a row of the matrix runs: `name` itself, or the model of arm `name`."""
    arm = cfg.arms.get(name)
    return arm["model"] if arm else name


def model_args(cfg, name, shape):
    """The full, resolved constructor arguments of one model (or arm) in this benchmark: the
    model's defaults, the harness's arguments, the config's model_options for the model, and an
    arm's own options last."""
    base = base_model(cfg, name)
    opts = cfg.model_options.get(base, {}) or {}
    arm_opts = (cfg.arms.get(name) or {}).get("options") or {}
    for where, given in ((f"model_options.{base}", opts), (f"arms.{name}.options", arm_opts)):
        clash = sorted(set(given) & set(FIXED_MODEL_ARGS))
        if clash:
            raise ConfigError(f"{where} may not set {', '.join(clash)}: the harness fixes them for every model.")
    args = {**models.options(base), "data_shape": list(shape), "z_dim": cfg.arch.z_dim,
            "width": cfg.arch.width, "arch": cfg.arch.style, "total_steps": cfg.train.steps, **opts,
            **arm_opts}
    return args


def plugin_source(name):
    """{"plugin_source": hash} for a model from a --plugin file or module (outside models/), so a
    run of an edited plugin is refused like a changed config; {} for a built-in model, whose
    code is recorded by the git commit. `name` is a registered model's."""
    module = sys.modules[models.get(name).__module__]
    path = getattr(module, "__file__", None)
    if module.__name__.split(".")[0] == "models" or not path:
        return {}
    return {"plugin_source": hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]}


def check_models(cfg, shape=None):
    """Before data is loaded or anything written: every model is known, its options are
    mappings of names it takes, and, when the data shape is known, it builds with the
    harness's arguments and has the networks it declares. A ModelConfigError (or an unknown
    option) stops the benchmark here; any other exception from a model's __init__ is left for
    its runs to record as failed, so the other models still run. An arm that changes only options
    of its model's search space (a sweep's trial) is not built again: the model builds with any
    value of those in their ranges (models.registry.check_search_space), and building is costly."""
    for name in list(cfg.model_options) + [arm["model"] for arm in cfg.arms.values()]:
        models.get(name)
    for name in cfg.models:
        if name not in cfg.arms:
            models.get(name)
    for name in dict.fromkeys([base_model(cfg, n) for n in cfg.models] + list(cfg.arms)):
        where = f"arms.{name}.options" if name in cfg.arms else f"model_options.{name}"
        base = base_model(cfg, name)
        given = (cfg.arms[name].get("options") if name in cfg.arms else cfg.model_options.get(name)) or {}
        unknown = sorted(set(given) - set(models.options(base)))
        if unknown:
            raise ConfigError(f"{where}: model {base!r} has no option {', '.join(unknown)}; its options are: "
                              f"{', '.join(sorted(set(models.options(base)) - set(HARNESS_ARGS))) or 'none'}.")
        check_options(models.get(base), base, given, where=where)  # named as given: an arm's as the arm's
        tuned_only = name in cfg.arms and set(given) <= set(models.search_space(base))  # its model is built
        if shape is not None and not tuned_only:
            try:
                build_model(cfg, name, shape)
            except USER_ERRORS:
                raise
            except (Exception, SystemExit):  # noqa: BLE001 - the run records it (failed, with error.txt)
                pass


# What a size may cost, as shares of this machine's memory: a batch's float32 inputs at most a
# sixteenth (the networks' activations and gradients take several times the inputs), every
# generated sample's retained outputs together at most a quarter (the data and models need the rest).
BATCH_SHARE, SAMPLES_SHARE = 16, 4


SAMPLE_BYTES = 1024  # what the metrics keep of one generated sample (decoded a batch at a time): domain


# features and logits, or a toy2d point with its distances to the mode centres
INCEPTION_BYTES = 2048 * 4 + 1008 * 8  # and with Inception: its pool features (float32) and logits (float64)


DINOV2_BYTES = 1024 * 4  # and with DINOv2: its ViT-L/14 features (float32)


def check_sizes(cfg, data):
    """Once the data is loaded and before anything is written: the batch and sample sizes fit
    the data and this machine's memory (config.MAX_COUNT has refused the absurd ones already)."""
    tc, ec, n = cfg.train, cfg.eval, len(data.train.x)
    if tc.batch_size > n:
        raise ConfigError(f"train.batch_size = {tc.batch_size} is larger than the {data.name} training split "
                          f"({n} examples): use at most {n}, e.g. --set train.batch_size={min(n, 64)}.")
    memory = physical_memory()
    if memory is None:
        return
    gb = lambda b: f"{b / 2**30:.1f} GB"  # noqa: E731
    one = 4 * math.prod(data.shape)
    for key, value in (("train.batch_size", tc.batch_size), ("eval.eval_batch_size", ec.eval_batch_size),
                       ("eval.grid_size", ec.grid_size)):  # the grid is decoded as one batch
        if value * one * BATCH_SHARE > memory:
            raise ConfigError(f"{key} = {value} does not fit this machine: one batch of {data.name} inputs alone takes "
                              f"{gb(value * one)}, and the networks several times more, against {gb(memory)} of "
                              f"memory; use at most {memory // (one * BATCH_SHARE)}.")
    per = {k: SAMPLE_BYTES for k in ("gen_samples", "truncation_samples", "track_samples")}
    per["inception_samples"] = SAMPLE_BYTES + INCEPTION_BYTES
    per["dinov2_samples"] = SAMPLE_BYTES + DINOV2_BYTES
    for k, b in per.items():
        count = getattr(ec, k)  # by name, as the message names it
        if count * b * SAMPLES_SHARE > memory:
            raise ConfigError(f"eval.{k} = {count} does not fit this machine: the metrics keep about {gb(count * b)} "
                              f"of outputs for that many samples, more than a quarter of its {gb(memory)} of memory; "
                              f"use at most {memory // (b * SAMPLES_SHARE)}.")


def physical_memory():
    """This machine's memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def build_model(cfg, name, shape):
    """Model `name` built as every run of this benchmark builds it (model_args), at data shape `shape`."""
    args = model_args(cfg, name, shape)
    return models.build(base_model(cfg, name), **{**args, "data_shape": tuple(args["data_shape"])})
