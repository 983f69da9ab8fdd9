"""The benchmark matrix: every (model, seed) trained under the same budget, then scored.

Each run lives in DIR/<model>/seed<k>/ with its resolved config, loss log, checkpoint,
figures and metrics.json. Finished runs are skipped, interrupted ones resume, a diverged or
crashed run is recorded and the benchmark goes on.
"""
import json
import shutil
import sys
import time
import traceback

import models

from . import report
from .errors import ConfigError, UserError
from .evaluate import Evaluator
from .io import atomic_write_json, atomic_write_text
from .runtime import versions
from .train import train

# What a folder of runs must agree on, and what one run must agree on to be resumed.
FOLDER_KEYS = ("benchmark", "budget", "dataset", "dataset_options", "arch", "train", "eval")
FIXED_MODEL_ARGS = ("data_shape", "total_steps", "arch")


def _jsonable(obj):
    return json.loads(json.dumps(obj))


def _diff(old, new, prefix=""):
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        a, b = old.get(k, "<unset>"), new.get(k, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


def model_args(cfg, name, data):
    """The full, resolved constructor arguments of one model in this benchmark."""
    opts = cfg["model_options"].get(name, {}) or {}
    clash = sorted(set(opts) & set(FIXED_MODEL_ARGS))
    if clash:
        raise ConfigError(f"model_options.{name} may not set {', '.join(clash)}: the harness fixes them for every model.")
    args = {**models.options(name), "data_shape": list(data.shape), "z_dim": cfg["arch"]["z_dim"],
            "width": cfg["arch"]["width"], "arch": cfg["arch"]["style"], "total_steps": cfg["train"]["steps"], **opts}
    return args


def check_folder(cfg, out_dir):
    """Refuse to mix runs of different configs in one folder; record the config on first use."""
    ident = _jsonable({k: cfg[k] for k in FOLDER_KEYS})
    path = out_dir / "benchmark.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())["config"]
        except (ValueError, KeyError):
            raise ConfigError(f"{path} is not a benchmark record; this folder is not a results folder, choose another --out.") from None
        changes = _diff(old, ident)
        if changes:
            raise ConfigError(
                f"The output folder {out_dir} holds runs of a different config ({'; '.join(changes)}). "
                "Nothing was changed. Use another --out, or move that folder away to start over."
            )
        return
    atomic_write_json(path, {"config": ident})


def run_one(name, seed, cfg, data, runtime, out_dir, force, command, evaluator):
    run_dir = out_dir / name / f"seed{seed}"
    args = model_args(cfg, name, data)
    ident = _jsonable({**{k: cfg[k] for k in FOLDER_KEYS}, "model": name, "model_args": args, "seed": seed})
    cfg_path, metrics_path = run_dir / "config.json", run_dir / "metrics.json"
    if cfg_path.exists() and not force:
        old = json.loads(cfg_path.read_text())["config"]
        changes = _diff(old, ident)
        if changes:
            raise ConfigError(
                f"Run {run_dir} was started with another config ({'; '.join(changes)}); refusing to resume it. "
                "Use another --out, or --force to retrain it from scratch."
            )
        if metrics_path.exists():
            row = json.loads(metrics_path.read_text())
            if row.get("status") in ("ok", "diverged"):  # a failed run is retried, from its checkpoint
                return row, "skipped"
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg_path, {"config": ident, "dataset_meta": data.meta, "runtime": runtime.describe(),
                                 "versions": versions(), "command": command,
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")})

    # Built before seeding: building the evaluator trains (or loads) its classifier, which draws random numbers.
    monitor = (lambda m, ev=evaluator(): ev.track(m, seed)) if cfg["eval"]["track_every"] else None
    runtime.seed_everything(seed)
    model = models.build(name, **{**args, "data_shape": tuple(args["data_shape"])}).to(runtime.device)
    counts = model.param_counts()
    row = {"model": name, "seed": seed, "params_g": counts["g"], "params_e": counts["e"], "params_d": counts["d"]}
    t0 = time.perf_counter()
    try:
        row.update(train(model, data.train.x, cfg, run_dir, runtime, seed, desc=f"{name} s{seed}", monitor=monitor))
        if row["status"] == "ok":
            row.update(evaluator().evaluate(model, run_dir, seed))
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a crashing model is a result to record, not a reason to stop
        atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        row.update({"status": "failed", "error": f"{type(e).__name__}: {e}"})
    row["wall_seconds"] = round(time.perf_counter() - t0, 3)
    atomic_write_json(metrics_path, row)
    return row, row["status"]


def check_models(cfg):
    """Unknown models or model options fail here, before data is loaded or anything written."""
    for name in list(cfg["models"]) + list(cfg["model_options"]):
        models.get(name)
    for name in cfg["models"]:
        unknown = sorted(set(cfg["model_options"].get(name, {}) or {}) - set(models.options(name)))
        if unknown:
            raise ConfigError(f"Model {name!r} has no option {', '.join(unknown)}; its options are: "
                              f"{', '.join(sorted(models.options(name)))}.")


def run_benchmark(cfg, data, runtime, out_dir, force=False, fid_weights=None):
    """Run the (model x seed) matrix; returns the exit code (1 when a run crashed)."""
    check_models(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_folder(cfg, out_dir)
    command = " ".join(["python -m benchmarks"] + sys.argv[1:]) if sys.argv[0].endswith("__main__.py") else " ".join(sys.argv)
    built = []

    def evaluator():  # built on first use: a benchmark whose runs are all finished needs none
        if not built:
            built.append(Evaluator(data, cfg, runtime, fid_weights))
        return built[0]

    failed = 0
    for name in cfg["models"]:
        for seed in cfg["seeds"]:
            row, how = run_one(name, seed, cfg, data, runtime, out_dir, force, command, evaluator)
            detail = f" at step {row.get('diverged_at')}" if row["status"] == "diverged" else ""
            print(f"[{name} seed {seed}] {how if how == 'skipped' else row['status']}{detail}", file=sys.stderr)
            failed += row["status"] == "failed"
    table = report.write_report(out_dir)
    print(table)
    print(f"\nResults: {out_dir}")
    return 1 if failed else 0
