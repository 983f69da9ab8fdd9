"""`run` and `list-models`: train and score a benchmark's (model, seed) matrix, here, as one
shard, or as --jobs local shard processes; the checks that refuse bad input before anything trains."""
import os
import shlex
import sys
from pathlib import Path

from ..core.errors import UserError


def runtime_from(args, fast=None):
    """The Runtime the command line asks for."""
    from ..core.runtime import Runtime

    return Runtime(args.device, fast=fast, compile=args.compile, compile_backend=args.compile_backend,
                   tf32=getattr(args, "tf32", None), capture=getattr(args, "capture", False))


def cmd_list_models(args):
    import models

    for name in models.available():
        cls = models.get(name)
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip()
        title = " ".join(doc.split("\n\n")[0].split())  # the first paragraph, unwrapped
        print(f"{name:24s} {title}")
    return 0


def cmd_run(args):
    from ..config import load_config

    cfg = load_config(args.config, budget=args.budget, overrides=args.overrides, models=args.models, seeds=args.seeds)
    out = args.out or Path("runs") / f"{cfg.benchmark}-{cfg.budget}"
    return run_config(args, cfg, out, args.argv)


def run_config(args, cfg, out, argv):
    """Train and score the resolved config `cfg` (a config.Config) into folder `out`: here, as one
    shard (--shard), or as --jobs local shard processes, each running `argv` with its --shard."""
    from ..core import parallel
    from ..data import declared_shape, load_dataset, splits
    from ..evaluation.evaluate import Evaluator
    from ..training.build import check_models
    from ..training.run import run_benchmark
    from ..training.shards import jobs_threads, parse_shard, run_jobs

    shard = parse_shard(args.shard) if args.shard else None
    boards = board_root(args, out)
    check_models(cfg, declared_shape(cfg.dataset))  # before any data is loaded or anything written
    weights = check_weights(args)
    check_jobs(args)
    sweep = args.command == "sweep"
    if args.jobs != 1:
        jobs = min(args.jobs, cfg.matrix_size())  # a shard without a run would start for nothing
        if jobs > 1 or sweep:  # a sweep's runs all train with the threads of its --jobs share
            code = run_jobs(without(argv, ("--jobs",)), jobs, threads=jobs_threads(args.jobs))
            if (out / "benchmark.json").exists():  # one report over what the shards wrote
                print_report(out, args.figures)
            return code
    runtime = runtime_from(args, fast=args.fast)
    job = parse_shard(args.job_of) if args.job_of else None
    try:
        data = splits.prepare(load_dataset(cfg.dataset, root=args.data_root, **cfg.dataset_options),
                              cfg.train, cfg.eval)

        def make_evaluator():  # the evaluation stage; the matrix builds it when its first run needs it
            return Evaluator(data, cfg, runtime, weights)

        code = run_benchmark(cfg, data, runtime, out, make_evaluator, typed_command(argv, runtime),
                             force=args.force, shard=shard, job=job, debug=args.debug, board_root=boards, sweep=sweep)
        if runtime.is_main and job is None:  # a --jobs shard leaves the report to its parent
            print_report(out, args.figures)
        return code
    finally:
        parallel.shutdown()


def check_jobs(args):
    """--jobs N: at least 1, without --shard and torchrun, and no more than this machine's cores."""
    from ..core import parallel

    if args.jobs == 1:
        return
    if args.jobs < 1 or args.shard or parallel.launched():
        raise UserError("--jobs N needs N >= 1 and goes without --shard and torchrun (it makes the shards itself).")
    cores = os.cpu_count() or 1
    if args.jobs > cores:  # each shard trains in a process of its own, with its own copy of the data
        raise UserError(f"--jobs {args.jobs} is more than the {cores} CPU cores of this machine: more shard "
                        f"processes than cores only share the cores and multiply the memory. Use --jobs {cores} "
                        "or fewer.")


_WEIGHTS_LOADED = set()  # (flag, path) of the named weights this process has loaded once already


def check_weights(args):
    """The weights paths of the command line as one value (core.weights.Weights), which the
    evaluation takes whole. Weights the user named (--fid-weights, --lpips-weights, --dinov2-weights
    or their variables) must load: a missing, empty, foreign or damaged file is refused now (exit
    2), not found out after the training as empty columns. Loaded once per process; a --jobs
    shard's parent has loaded them for it."""
    import metrics

    from ..core.weights import Weights

    weights = Weights.from_args(args)
    if args.job_of:
        return weights
    for network, load, flag in (("fid", metrics.inception.load_inception, "--fid-weights"),
                                ("lpips", metrics.lpips.load_lpips, metrics.lpips.FLAG),
                                ("dinov2", metrics.dinov2.load_dinov2, metrics.dinov2.FLAG)):
        named = weights.named(network)
        if not named or (flag, named) in _WEIGHTS_LOADED:
            continue
        net, reason = load(getattr(weights, network), download=False)
        if net is None:
            raise UserError(f"{reason}. Name the right file or folder with {flag}, or leave it out (the columns "
                            "that need these weights then stay empty, with the reason in the protocol).")
        _WEIGHTS_LOADED.add((flag, named))
    return weights


def print_report(out, figures):
    """The report of folder `out` (reporting.report), printed at the end of a run; left as it is
    when nothing it reads has changed (a resume that found every run finished)."""
    from ..reporting.report import locked_report

    print(locked_report(out, figures=figures, reuse=True))
    print(f"\nResults: {out}")


def board_root(args, out):
    """Where the runs' TensorBoard logs go (<root>/<model>/seed<k>), or None without --tensorboard
    and --log-dir; checks that tensorboard is installed before anything trains."""
    if not args.tensorboard and args.log_dir is None:
        return None
    from ..training.board import check_available

    check_available()
    if args.log_dir is None:
        return out  # each log in its run's folder
    return args.log_dir / out.name if args.command == "sweep" else args.log_dir  # a sweep's phases apart


def without(argv, options, flags=()):
    """`argv` without each of `options` and its value (`--opt V` or `--opt=V`), nor `flags`."""
    rest, items = [], iter(argv)
    for a in items:
        if a in options:
            next(items, None)
        elif a not in flags and not a.startswith(tuple(f"{o}=" for o in options)):
            rest.append(a)
    return rest


def typed_command(argv, runtime):
    """The command line as the user typed it, which every run records: shell-quoted, so a path with
    a space (or any shell character) runs again as written; the console script's name where it
    was started by it, and torchrun's process count under torchrun."""
    head = ["bigan-bench"] if Path(sys.argv[0]).name == "bigan-bench" else ["python", "-m", "benchmarks"]
    command = shlex.join([*head, *argv])
    if runtime.world > 1:
        command = f"torchrun ({runtime.world} processes) " + command.replace("python ", "", 1)
    return command
