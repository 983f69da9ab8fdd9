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


from ..config import backfilled, config_diff, in_study
from ..core import parallel
from ..core.errors import USER_ERRORS, ConfigError
from ..core.io import atomic_write_json, atomic_write_text
from ..core.lock import Busy, FolderLock
from ..core.runtime import versions
from .board import RECON_IMAGES, Board
from .build import base_model, build_model, check_models, check_sizes, model_args, plugin_source
from .shards import shard_matrix
from .train import train


def _jsonable(obj):
    return json.loads(json.dumps(obj))


def _recorded_config(path):
    """The "config" mapping of a benchmark.json or config.json record, with the keys added since
    it was written set to their old behaviour; (record, config). A file that cannot be read raises
    OSError; one that does not parse, or parses to anything but {"config": {...}}, ValueError."""
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError(f"expected a mapping with a 'config' mapping, got {_shape(record)}")
    return record, backfilled(record["config"])


def _shape(obj):
    """What a JSON value is, for a message: 'a list', 'null', "a mapping of 'model', 'seed'"."""
    if obj is None:
        return "null"
    if isinstance(obj, dict):
        return f"a mapping of {', '.join(map(repr, sorted(obj)[:5]))}" if obj else "an empty mapping"
    return f"a {type(obj).__name__}"


def check_folder(cfg, out_dir, write=True):
    """Refuse to mix runs of different configs in one folder; record the config on first use."""
    ident = _jsonable(cfg.folder_record())
    path = out_dir / "benchmark.json"
    if path.exists():
        try:
            old = _recorded_config(path)[1]
        except (ValueError, OSError) as e:
            if not any(out_dir.glob("*/seed*/config.json")):
                raise ConfigError(f"{path} is not a benchmark record and {out_dir} holds no runs: this is not a "
                                  "results folder; choose another --out.") from None
            # Damaged (a cut-off write): every run's own config.json still guards its resumption.
            print(f"warning: {path} is unreadable ({type(e).__name__}); recorded again from this config",
                  file=sys.stderr)
            old = None
        if old is None:
            if write:
                atomic_write_json(path, {"config": ident})
            return
        changes = config_diff(old, ident)
        if changes:
            raise ConfigError(
                f"The output folder {out_dir} holds runs of a different config ({'; '.join(changes)}). "
                "Nothing was changed. Use another --out, or move that folder away to start over."
            )
        return
    if write:
        atomic_write_json(path, {"config": ident})


def run_one(name, seed, cfg, data, runtime, out_dir, *args, **kwargs):
    """One (model, seed) run, under its lock: a second process that would write the same run
    stops with exit code 2 (lock.Busy) instead of interleaving its logs with the first's."""
    lock = FolderLock(out_dir / name / f"seed{seed}", "Run", lock_file=out_dir / name / f".seed{seed}.lock")
    busy = None
    if runtime.is_main:  # rank 0 writes the run's files; the lock is its
        try:
            lock.acquire()
        except Busy as e:
            busy = e
    if not parallel.all_agree(busy is None, runtime.device):
        raise busy or Busy(f"Run {out_dir / name / f'seed{seed}'} is being written by another process "
                           "(rank 0 says which).")
    try:
        return _run_one(name, seed, cfg, data, runtime, out_dir, *args, **kwargs)
    finally:
        lock.release()


def retrain_hint(name, seed, sweep):
    """How the user retrains just run (name, seed): `run` selects it with --models and --seeds; a
    sweep's --force retrains only the runs that cannot be resumed (damage)."""
    if sweep:
        return ("run the same sweep command with --force: in a sweep it retrains only the runs that cannot be "
                "resumed as they are (this one among them) and keeps every finished run")
    return f"retrain just this run with --force --models {name} --seeds {seed}"


def damage(run_dir, ident):
    """Why run `run_dir` cannot be resumed or kept as it is (its config.json unreadable, or recorded
    for another config, an edited plugin's for one; its checkpoint unreadable), or None: what a
    sweep's --force retrains."""
    from .train import load_checkpoint

    cfg_path = run_dir / "config.json"
    if cfg_path.exists():
        try:
            changes = config_diff(_recorded_config(cfg_path)[1], ident)
        except (ValueError, OSError) as e:
            return f"{cfg_path} is unreadable ({type(e).__name__})"
        if changes:
            return f"it was started with another config ({'; '.join(changes)})"
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists():
        try:
            load_checkpoint(checkpoint)
        except USER_ERRORS:
            return f"{checkpoint} cannot be read"
    return None


def _run_one(name, seed, cfg, data, runtime, out_dir, force, command, evaluator, position=0, board_root=None,
             sweep=False):
    """One run, top to bottom: what it is (its identity), whether a finished record stands or a
    started one resumes, then training and scoring, whose row is the run's metrics.json."""
    run_dir = out_dir / name / f"seed{seed}"
    ident, arm = run_identity(cfg, name, seed, data.shape)
    if force and sweep:  # a sweep's --force: only what cannot be resumed or kept is retrained
        why = damage(run_dir, ident) if runtime.is_main else None
        force = not parallel.all_agree(why is None, runtime.device)  # every process decides alike
        if why and runtime.is_main:
            print(f"[{name} seed {seed}] retrained (--force): {why}", file=sys.stderr)
    if runtime.is_main and run_dir.is_dir():  # under the run's lock: no live writer owns these
        for tmp in run_dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)  # an atomic write cut short by a kill
    parallel.barrier()  # every process decides on the same files

    record, finished = (None, None) if force else _resume(run_dir, ident, name, seed, runtime, sweep)
    if finished is not None:
        return finished, "skipped"
    parallel.barrier()
    if runtime.is_main:
        _start(run_dir, record, ident, data, command, runtime, fresh=force)
    parallel.barrier()  # the folder (and any checkpoint to resume from) is in place for every process

    row = _execute(name, seed, cfg, data, runtime, run_dir, evaluator, arm, position, board_root)
    if runtime.is_main:
        atomic_write_json(run_dir / "metrics.json", row)
    return row, row["status"]


def run_identity(cfg, name, seed, shape):
    """(what makes run (name, seed) this run, as its config.json records it and a resume compares;
    the arm fields of its row): the folder's config, the model's resolved arguments, the seed, the
    arm it runs and a plugin's source."""
    args, base = model_args(cfg, name, shape), base_model(cfg, name)
    arm = {"base_model": base} if base != name else {}  # a run of an arm records the model it runs
    steps = (cfg.arms.get(name) or {}).get("steps")
    if steps is not None:  # an arm trained for fewer updates than the budget (0: untrained)
        arm["arm_steps"] = steps
    ident = _jsonable({**cfg.folder_record(), "model": name, **arm, "model_args": args, "seed": seed,
                       **plugin_source(base)})
    return ident, arm


def _resume(run_dir, ident, name, seed, runtime, sweep):
    """(the run's record so far or None, its finished row or None) from run_dir's config.json and
    metrics.json. A record of another config is refused; a finished (ok or diverged) row stands;
    a failed or unreadable one is retried from the checkpoint."""
    cfg_path, metrics_path = run_dir / "config.json", run_dir / "metrics.json"
    if not cfg_path.exists():
        return None, None
    try:
        record, old = _recorded_config(cfg_path)
        if not isinstance(record.get("resumed", []), list):
            raise ValueError("its 'resumed' entry is not a list")
    except (ValueError, OSError) as e:
        raise ConfigError(f"{cfg_path} is unreadable ({type(e).__name__}: {e}). It records the config this run "
                          f"was started with, so the run cannot be resumed safely: restore the file, or "
                          f"{retrain_hint(name, seed, sweep)}.") from None
    changes = config_diff(old, ident)
    if changes:
        raise ConfigError(f"Run {run_dir} was started with another config ({'; '.join(changes)}); refusing to resume "
                          f"it. To {retrain_hint(name, seed, sweep)}; or use another --out.")
    if not metrics_path.exists():
        return record, None
    try:
        row = json.loads(metrics_path.read_text())
        if not isinstance(row, dict) or "status" not in row:
            raise ValueError(f"expected a mapping with a 'status', got {_shape(row)}")
    except (ValueError, OSError) as e:  # resumed: its checkpoint is evaluated again (retrained if gone)
        if runtime.is_main:
            print(f"warning: {metrics_path} is unreadable ({type(e).__name__}: {e}); the run is resumed from "
                  "its checkpoint and evaluated again", file=sys.stderr)
        return record, None
    return record, (row if row.get("status") in ("ok", "diverged") else None)  # a failed run is retried


def _start(run_dir, record, ident, data, command, runtime, fresh):
    """Rank 0 writes the run's config.json before training: the first start's record (how the run
    was trained), with each resume added to it. `fresh` (--force): the old folder goes first."""
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    start = {"runtime": runtime.describe(), "versions": versions(), "command": command,
             "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if record is None:
        record = {"config": ident, "dataset_meta": data.meta, **start}
    else:
        record = {**record, "config": ident, "resumed": [*record.get("resumed", []), start]}
    atomic_write_json(run_dir / "config.json", record)


def _execute(name, seed, cfg, data, runtime, run_dir, evaluator, arm, position, board_root):
    """Build, train and score the model; returns its row. A model that crashes (or calls
    sys.exit) is a result, recorded with its reason and traceback (error.txt); bad input and a
    full disk are the user's to fix and stop the benchmark (exit 2)."""
    # Built before seeding: building the evaluator trains (or loads) its classifier, which draws random numbers.
    ev = evaluator()  # on every process, at the same point: building it is collective
    monitor = (lambda m: ev.track(m, seed)) if cfg.eval.track_every and runtime.is_main else None
    board = None  # the run's TensorBoard log (--tensorboard): board_root/<model>/seed<k>, written by rank 0
    if board_root is not None and runtime.is_main:
        real = data.test.x[:RECON_IMAGES] if data.kind == "image" else None
        board = Board(board_root / name / f"seed{seed}", runtime, seed, real, cfg.eval.grid_size)
    steps = arm.get("arm_steps")
    run_cfg = cfg if steps is None else cfg.replace(train=cfg.train.replace(steps=min(steps, cfg.train.steps)))
    runtime.seed_everything(seed)
    row = {"model": name, **arm, "seed": seed}
    t0 = time.perf_counter()
    try:
        model = build_model(cfg, name, data.shape).to(runtime.device)
        row.update({f"params_{k}": v for k, v in model.param_counts().items()})
        if model.drawn:
            row["drawn"] = dict(model.drawn)
        row.update(train(model, data.train.x, run_cfg, run_dir, runtime, seed, desc=f"{name} s{seed}",
                         monitor=monitor, position=position, board=board))
        if row["status"] == "ok":  # every process evaluates: they share the sample metrics
            row.update(ev.evaluate(model, run_dir, seed))
    except USER_ERRORS + (OSError,):  # bad input, or a full or unwritable disk: the user's to fix (exit 2)
        raise
    except (Exception, SystemExit) as e:  # noqa: BLE001 - a crashing model is a result to record, not a reason to
        # stop; so is one whose code calls sys.exit(), which would otherwise end the whole benchmark without a word
        if runtime.world > 1:
            raise  # the other processes are waiting in a collective: stop them all (torchrun does)
        atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        error = f"the model called sys.exit({e.code!r})" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
        row.update({"status": "failed", "error": error})
    else:
        if runtime.is_main:
            (run_dir / "error.txt").unlink(missing_ok=True)  # an earlier failure of this run is history
    finally:
        if board is not None:
            board.close()
    row["wall_seconds"] = round(time.perf_counter() - t0, 3)
    return row


def run_benchmark(cfg, data, runtime, out_dir, make_evaluator, command, force=False, shard=None, job=None,
                  debug=False, board_root=None, sweep=False):
    """Run the (model x seed) matrix, or one shard of it; returns the exit code (1 when a run failed,
    after the whole matrix). The caller writes the report (the CLI, after this returns).
    `make_evaluator()`: the evaluation stage's scorer of this benchmark (evaluation.evaluate.Evaluator),
    built here at most once per process, when the first run needs it. `command`: the command line
    as the user typed it, which each run records.
    `job` = (i, n) when this process is job i of a `--jobs n` run: its progress bar takes line i.
    `debug`: print a failed run's traceback, not just its reason. `board_root`: a folder to write each
    trained run's TensorBoard log under, as <model>/seed<k> (board.py); None: no log. `sweep`: a phase
    of a study, whose --force retrains only the runs that cannot be resumed (damage), and whose
    messages name sweep's options."""
    from ..data import declared_shape

    # `run` already built every model at the declared shape; build again only at another one.
    check_models(cfg, None if tuple(data.shape) == declared_shape(cfg.dataset) else data.shape)
    try:
        check_sizes(cfg, data)
    except ConfigError as e:  # a study sets config keys in its phases' sets, not with --set
        raise ConfigError(in_study(str(e))) if sweep else e from None
    if runtime.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    parallel.barrier()
    check_folder(cfg, out_dir, write=runtime.is_main)
    built = []

    def evaluator():  # built on first use: a benchmark whose runs are all finished needs none
        if not built:  # every process builds one (they share the sample metrics); rank 0 first, so
            for first in (True, False):  # the others load its cached classifier and statistics
                if runtime.is_main == first:
                    built.append(make_evaluator())
                parallel.barrier()
        return built[0]

    # The references are model-free, so they are written first: a folder whose runs finished long
    # ago gets current ones too, and a matrix stopped part-way (a study's final phase runs for
    # hours) already holds the references its claims compare with.
    if cfg.eval.references:
        references = evaluator().references()  # building the evaluator is collective
        if runtime.is_main:
            atomic_write_json(out_dir / "references.json", references)
    failed = 0
    matrix = list(shard_matrix(cfg.models, cfg.seeds, shard, cfg.row_seeds))
    part = "this shard's" if shard or job else "the"  # a --jobs process is one shard of the matrix
    for i, (name, seed) in enumerate(matrix, 1):
        row, how = run_one(name, seed, cfg, data, runtime, out_dir, force, command, evaluator,
                           position=job[0] - 1 if job else 0, board_root=board_root, sweep=sweep)
        detail = f" at step {row.get('diverged_at')}" if row["status"] == "diverged" else ""
        if row["status"] == "failed" and how != "skipped":
            error_txt = out_dir / name / f"seed{seed}" / "error.txt"
            detail = f": {row['error'][:300]} (traceback: {error_txt})"
            if debug and runtime.is_main:
                print(error_txt.read_text(), file=sys.stderr)
        if runtime.is_main:
            print(f"[{name} seed {seed}] {how if how == 'skipped' else row['status']}{detail} ({i} of {part} "
                  f"{len(matrix)} runs)", file=sys.stderr)
        failed += row["status"] == "failed"
    parallel.barrier()
    return 1 if failed else 0


