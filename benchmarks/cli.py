"""python -m benchmarks {list-models, run, sweep, perf, report, sample, encode}: the one place that
wires the stages together."""
import argparse
import os
import sys
import warnings
from pathlib import Path

from .core.errors import USER_ERRORS, UserError, filesystem_message


def _csv(kind):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if kind is int:
            try:
                return [int(t) for t in items]
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        return items
    return parse


def _compile_options(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-compile", dest="compile", action="store_false", default=None,
                       help="no torch.compile (it is on by default on the CUDA fast path)")
    group.add_argument("--compile", dest="compile", action="store_true",
                       help="torch.compile the networks on any device and path (reproduces the GPU path on a CPU)")
    parser.add_argument("--compile-backend", default="inductor", metavar="NAME",
                        help="torch.compile backend (default inductor; aot_eager traces the same graphs "
                             "without generating code)")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false", default=None,
                        help="IEEE fp32 matmuls and convolutions on the fast path too (default: TF32 there on "
                             "GPUs that have it; the plain path and evaluation are always IEEE fp32)")


def runtime_from(args, fast=None):
    """The Runtime the command line asks for."""
    from .core.runtime import Runtime

    return Runtime(args.device, fast=fast, compile=args.compile, compile_backend=args.compile_backend,
                   tf32=getattr(args, "tf32", None))


def build_parser():
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="BiGAN Bench: train and score bidirectional GANs.")
    sub = p.add_subparsers(dest="command", required=True)

    lm = sub.add_parser("list-models", help="list registered models")
    lm.add_argument("--plugin", action="append", default=[], help="module or .py file that registers models")

    r = sub.add_parser("run", help="train and score a benchmark")
    r.add_argument("config", help="benchmark name (digits, fashion-mnist, celeba64, toy2d) or a path to a .yaml")
    r.add_argument("--budget", default="quick", help="named budget in the config: smoke, quick, full (default quick)")
    r.add_argument("--models", type=_csv(str), help="comma-separated model names (default: the config's list)")
    r.add_argument("--seeds", type=_csv(int), help="comma-separated seeds (default: the config's)")
    r.add_argument("--out", type=Path, help="results folder (default runs/<config>-<budget>, which git ignores; "
                   "the committed results are in results/)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set train.steps=200 (repeatable)")
    r.add_argument("--force", action="store_true", help="retrain the selected runs (--models, --seeds) even if finished")
    _run_options(r)

    sw = sub.add_parser("sweep", help="a study: hyperparameter trials scored on validation, the chosen settings and "
                        "ablation arms rerun with more seeds on test, and a claims report")
    sw.add_argument("study", help="study name (configs/studies: digits) or a path to a .yaml")
    sw.add_argument("--trials", type=int, help="trials per swept model, trial 0 its defaults (default: the study's)")
    sw.add_argument("--phase", choices=("select", "confirm", "final", "all"), default="all",
                    help="select: every trial on the first selection seed, on validation; confirm: the best trials "
                    "on the other selection seeds; final: the chosen settings on test; all (default): the three")
    sw.add_argument("--out", type=Path, help="study folder (default runs/study-<name>): select/, final/, study.md")
    sw.add_argument("--force", action="store_true", help="retrain every run of the phase even if finished")
    _run_options(sw)
    _other_commands(sub)
    _use_commands(sub)
    return p


def _run_options(r):
    """The options of every command that trains: where, on what, in how many processes."""
    r.add_argument("--plugin", action="append", default=[], help="module or .py file that registers models (repeatable)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    r.add_argument("--data-root", help="folder holding the dataset files (else $BIGAN_BENCH_DATA / $CELEBA_ROOT)")
    r.add_argument("--fid-weights", help="torch-fidelity's InceptionV3 weights file (else $BIGAN_BENCH_FID_WEIGHTS, "
                   "the torch hub cache, a download when online)")
    r.add_argument("--lpips-weights", metavar="DIR", help="folder holding torch-fidelity's LPIPS weights "
                   "(weights-vgg16-lpips.pth and vgg16-397923af.pth) for recon_lpips_vgg16 (else "
                   "$BIGAN_BENCH_LPIPS_WEIGHTS, the torch hub cache, a download when online)")
    r.add_argument("--dinov2-weights", metavar="PATH", help="DINOv2 ViT-L/14 weights file "
                   "(dinov2_vitl14_pretrain.pth) for the eval.dinov2_samples columns (else "
                   "$BIGAN_BENCH_DINOV2_WEIGHTS, the torch hub cache, a download when online)")
    r.add_argument("--debug", action="store_true", help="print a failed run's traceback (it is always in its error.txt)")
    r.add_argument("--shard", metavar="I/N", help="run only the I-th of N deterministic parts of the (model, seed) "
                   "matrix, e.g. one per machine or job-array task; `report DIR...` merges the folders. "
                   "--shard slurm: this SLURM array task's part (SLURM_ARRAY_TASK_ID of the array's range)")
    r.add_argument("--jobs", type=int, default=1, metavar="N", help="run the matrix as N local shard processes "
                   "sharing the CPU cores (faster than one process on a small CPU), then report once")
    r.add_argument("--no-figures", dest="figures", action="store_false",
                   help="write the result tables but not the figures (a scripted sweep; `report DIR` draws them)")
    r.add_argument("--tensorboard", action="store_true", help="write a TensorBoard log of each trained run into its "
                   "folder: the losses, the tracked scores, sample grids and reconstructions (needs tensorboard: "
                   "pip install 'bigan-bench[tensorboard]')")
    r.add_argument("--log-dir", type=Path, metavar="DIR", help="write the TensorBoard logs under DIR/<model>/seed<k> "
                   "instead (implies --tensorboard; a sweep adds the phase: DIR/<phase>/...)")
    r.add_argument("--job-of", help=argparse.SUPPRESS)  # I/N, set by --jobs on its shard processes
    path = r.add_mutually_exclusive_group()
    path.add_argument("--plain", dest="fast", action="store_false", default=None,
                      help="fp32 eager with host-side data even on CUDA "
                           "(the fast path is the default there: device-resident data, bf16 autocast, compile)")
    path.add_argument("--fast", dest="fast", action="store_true",
                      help="the fast path on any device (on a CPU only to reproduce the GPU path: it is slower there)")
    _compile_options(r)


def _other_commands(sub):
    """perf and report."""
    pf = sub.add_parser("perf", help="training and evaluation throughput: the harness against a plain PyTorch loop")
    pf.add_argument("config", help="benchmark name or .yaml (sizes from its budget)")
    pf.add_argument("--budget", help="whose sizes to time (default: full on CUDA, smoke on CPU)")
    pf.add_argument("--models", type=_csv(str), help="comma-separated model names (default: the config's list)")
    pf.add_argument("--steps", type=int, default=50, help="timed training steps per model and path (default 50)")
    pf.add_argument("--warmup", type=int, default=10, help="untimed steps first, compilation included (default 10)")
    pf.add_argument("--profile", type=int, default=0, metavar="N", help="profile N more steps of each loop after "
                    "timing it: the share of the time the GPU is busy, and its kernels per step (default 0: none)")
    pf.add_argument("--no-eval", dest="eval_timing", action="store_false",
                    help="time training only: no InceptionV3, DINOv2 or probe timing")
    pf.add_argument("--ops", action="store_true", help="count operators per training step (the proxy for a GPU's "
                    "kernel launches) on the plain path and, with --compile, compiled, instead of timing: "
                    "<device>-ops.md; --steps steps are profiled (use a few)")
    pf.add_argument("--path", choices=("auto", "fast", "plain"), default="auto",
                    help="the harness path to time (default: fast on CUDA, plain on CPU)")
    _compile_options(pf)
    pf.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    pf.add_argument("--data-root", help="folder holding the dataset files (else $BIGAN_BENCH_DATA / $CELEBA_ROOT)")
    pf.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override one config value (repeatable)")
    pf.add_argument("--fid-weights", help="InceptionV3 weights file (else random weights, labelled, for timing)")
    pf.add_argument("--dinov2-weights", metavar="PATH", help="DINOv2 ViT-L/14 weights file, timed on a GPU (else random "
                    "weights, labelled)")
    pf.add_argument("--plugin", action="append", default=[], help="module or .py file that registers models")
    pf.add_argument("--out", default="runs/perf", help="folder for <device>.md and .json (default runs/perf, which "
                    "git ignores; the committed tables are in results/perf)")

    rep = sub.add_parser("report", help="write tables for a results folder (several folders: merged)")
    rep.add_argument("dirs", type=Path, nargs="+", metavar="DIR")
    rep.add_argument("--out", type=Path, help="where the merged tables go (default: the first DIR)")
    rep.add_argument("--no-figures", dest="figures", action="store_false", help="the tables only, no figures")


def _use_commands(sub):
    """sample and encode: a finished run's model, used without writing Python (api.py)."""
    sa = sub.add_parser("sample", help="draw samples from a finished run's generator into a picture grid")
    sa.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run: DIR/<model>/seed<k>")
    sa.add_argument("--n", type=int, default=64, help="samples to draw (default 64)")
    sa.add_argument("--truncation", type=float, metavar="T", help="redraw every coordinate of z outside [-T, T] "
                    "(Gaussian priors)")
    sa.add_argument("--seed", type=int, help="noise seed (default: the run's fixed evaluation noise, so --n 64 "
                    "draws what its samples.png shows)")
    sa.add_argument("--out", type=Path, default=Path("grid.png"), help="a .png grid, 8 per row (default grid.png), "
                    "or a .npy file of the samples in [-1, 1]")
    enc = sub.add_parser("encode", help="encode a folder of pictures with a finished run's encoder")
    enc.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run: DIR/<model>/seed<k>")
    enc.add_argument("--images", type=Path, required=True, metavar="FOLDER", help="the pictures to encode (every "
                     "file PIL reads, directly in FOLDER), each prepared as the run's dataset prepares its images")
    enc.add_argument("--out", type=Path, required=True, help="a .npy file: one row of codes per picture, in file "
                     "name order, listed one per line in the .txt file beside it")
    for c in (sa, enc):
        c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
        c.add_argument("--plugin", action="append", default=[], help="the plugin a plugin model was trained with")


def cmd_list_models(args):
    import models

    for name in models.available():
        cls = models.get(name)
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip()
        title = " ".join(doc.split("\n\n")[0].split())  # the first paragraph, unwrapped
        print(f"{name:24s} {title}")
    return 0


def cmd_run(args):
    from .config import load_config

    cfg = load_config(args.config, budget=args.budget, overrides=args.overrides, models=args.models, seeds=args.seeds)
    out = args.out or Path("runs") / f"{cfg.benchmark}-{cfg.budget}"
    return run_config(args, cfg, out, args.argv)


def run_config(args, cfg, out, argv):
    """Train and score the resolved config `cfg` (a config.Config) into folder `out`: here, as one
    shard (--shard), or as --jobs local shard processes, each running `argv` with its --shard."""
    from .core import parallel
    from .data import declared_shape, load_dataset, splits
    from .evaluation.evaluate import Evaluator
    from .training.run import check_models, parse_shard, run_benchmark, run_jobs

    import metrics

    shard = parse_shard(args.shard) if args.shard else None
    board_root = _board_root(args, out)
    check_models(cfg, declared_shape(cfg.dataset))  # before any data is loaded or anything written
    for problem in (metrics.lpips.problem(args.lpips_weights), metrics.dinov2.problem(args.dinov2_weights)):
        if problem:  # a weights path named but wrong: said now, not after the training
            raise UserError(f"{problem}.")
    if args.jobs != 1:
        if args.jobs < 1 or args.shard or parallel.launched():
            raise UserError("--jobs N needs N >= 1 and goes without --shard and torchrun (it makes the shards itself).")
        cores = os.cpu_count() or 1
        if args.jobs > cores:  # each shard trains in a process of its own, with its own copy of the data
            raise UserError(f"--jobs {args.jobs} is more than the {cores} CPU cores of this machine: more shard "
                            f"processes than cores only share the cores and multiply the memory. Use --jobs {cores} "
                            "or fewer.")
        jobs = min(args.jobs, cfg.matrix_size())  # a shard without a run would start for nothing
        if jobs > 1:
            code = run_jobs(argv, jobs)
            if (out / "benchmark.json").exists():  # one report over what the shards wrote
                print_report(out, args.figures)
            return code
    runtime = runtime_from(args, fast=args.fast)
    job = parse_shard(args.job_of) if args.job_of else None
    try:
        data = splits.prepare(load_dataset(cfg.dataset, root=args.data_root, **cfg.dataset_options),
                              cfg.train, cfg.eval)

        def make_evaluator():  # the evaluation stage; the matrix builds it when its first run needs it
            return Evaluator(data, cfg, runtime, args.fid_weights, args.lpips_weights, args.dinov2_weights)

        code = run_benchmark(cfg, data, runtime, out, make_evaluator, force=args.force, shard=shard, job=job,
                             debug=args.debug, board_root=board_root)
        if runtime.is_main and job is None:  # a --jobs shard leaves the report to its parent
            print_report(out, args.figures)
        return code
    finally:
        parallel.shutdown()


def print_report(out, figures):
    """The report of folder `out` (reporting.report), printed at the end of a run."""
    from .reporting.report import locked_report

    print(locked_report(out, figures=figures))
    print(f"\nResults: {out}")


def _board_root(args, out):
    """Where the runs' TensorBoard logs go (<root>/<model>/seed<k>), or None without --tensorboard
    and --log-dir; checks that tensorboard is installed before anything trains."""
    if not args.tensorboard and args.log_dir is None:
        return None
    from .training.board import check_available

    check_available()
    if args.log_dir is None:
        return out  # each log in its run's folder
    return args.log_dir / out.name if args.command == "sweep" else args.log_dir  # a sweep's phases apart


def cmd_sweep(args):
    """The study's phases in order: each an ordinary results folder under OUT, then the study report."""
    from .core.io import atomic_write_json
    from .reporting.folders import collect
    from .reporting.study import locked_study_report
    from .study import study as studies

    study = studies.load_study(args.study, trials=args.trials)
    out = args.out or Path("runs") / f"study-{study.name}"
    phases = ("select", "confirm", "final") if args.phase == "all" else (args.phase,)
    code = 0
    for phase in phases:
        if phase == "select":
            cfg = studies.select_config(study)
        else:
            if not (out / "select").is_dir():
                raise UserError(f"The {phase} phase chooses among the trials in {out / 'select'}, which does not "
                                f"exist: run `sweep {args.study} --phase select` (or --phase all) first.")
            rows = collect([out / "select"]).to_dict("records")
            if phase == "confirm":
                cfg = studies.confirm_config(study, rows)
                if cfg is None:  # one selection seed, or confirm_top 0: nothing to confirm
                    continue
            else:
                missing = studies.missing_confirmations(study, rows)
                if missing:
                    raise UserError(f"The final phase chooses on every selection seed, and {len(missing)} selection "
                                    f"runs are missing (e.g. {missing[0][0]} seed {missing[0][1]}): run `sweep "
                                    f"{args.study} --phase select` and `--phase confirm` (or --phase all) first.")
                chosen = studies.select(study, rows)
                if not args.shard and not args.job_of:  # the shards of a --jobs run share the parent's record
                    atomic_write_json(out / "selection.json", chosen)
                cfg = studies.final_config(study, chosen)
        folder = out / ("select" if phase == "confirm" else phase)
        code = max(code, run_config(args, cfg, folder, _with_phase(args.argv, phase)))
    if not args.shard and not args.job_of:
        print(locked_study_report(out, study, figures=args.figures))
    return code


def _with_phase(argv, phase):
    """The sweep command line for one phase: --phase PHASE in place of the given one."""
    rest, items = [], iter(argv)
    for a in items:
        if a == "--phase":
            next(items, None)
        elif not a.startswith("--phase="):
            rest.append(a)
    return [*rest, "--phase", phase]


def cmd_perf(args):
    from .perf.perf import main_perf

    if args.steps < 1 or args.warmup < 0 or args.profile < 0:
        raise UserError("--steps must be at least 1, and --warmup and --profile at least 0.")
    return main_perf(args, runtime_from(args, fast={"auto": None, "fast": True, "plain": False}[args.path]))


def cmd_sample(args):
    import numpy as np

    from .api import load_run
    from .core.io import atomic_write
    from .evaluation.figures import save_png, to_unit

    run = load_run(args.run_dir, device=args.device)  # main() has loaded the --plugin files already
    samples = run.sample(args.n, seed=args.seed, truncation=args.truncation).cpu()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".npy":
        atomic_write(args.out, lambda f: np.save(f, samples.numpy()))
    elif samples.dim() != 4:
        raise UserError(f"Run {run.path} generates {samples.shape[1]}-D points, not pictures: write them to a .npy "
                        "file, e.g. --out samples.npy.")
    else:
        save_png(args.out, to_unit(samples), nrow=8)  # the layout of a run's samples.png
    print(f"{args.n} samples of {run.name} seed {run.seed} -> {args.out}")
    return 0


def cmd_encode(args):
    import numpy as np

    from .api import load_run
    from .core.io import atomic_write, atomic_write_text
    from .data.images import read_images

    run = load_run(args.run_dir, device=args.device)
    if args.out.suffix != ".npy":
        raise UserError(f"--out {args.out} must be a .npy file (numpy.load reads it), e.g. --out codes.npy.")
    images, files = read_images(args.images, run.config["dataset"], run.data_shape)
    codes = run.encode(images).cpu().numpy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda f: np.save(f, codes))
    names = args.out.with_suffix(".txt")
    atomic_write_text(names, "".join(f"{f.name}\n" for f in files))
    print(f"{len(files)} pictures of {args.images}, prepared as {run.config['dataset']} images "
          f"{'x'.join(map(str, run.data_shape))}, encoded by {run.name} seed {run.seed} -> {args.out} "
          f"{codes.shape}; their order: {names}")
    return 0


def cmd_report(args):
    from .reporting.report import locked_report

    print(locked_report(args.out or args.dirs[0], args.dirs, figures=args.figures))
    return 0


def _one_line_warnings():
    """The project's own warnings (a damaged or unwritable cache entry) print as one `warning: ...`
    line, like its other messages; other libraries' warnings keep Python's format."""
    root, python_format = Path(__file__).resolve().parents[1], warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None):
        try:
            ours = Path(filename).resolve().relative_to(root).parts[0] in ("benchmarks", "metrics", "models")
        except ValueError:  # outside the project
            ours = False
        return f"warning: {message}\n" if ours else python_format(message, category, filename, lineno, line)

    warnings.formatwarning = fmt


def main(argv=None):
    args = build_parser().parse_args(argv)
    _one_line_warnings()
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        from .plugins import load_plugin

        import models  # noqa: F401 - registers the built-in models before plugins add theirs
        for spec in getattr(args, "plugin", []):
            load_plugin(spec)
        commands = {"list-models": cmd_list_models, "run": cmd_run, "sweep": cmd_sweep, "report": cmd_report,
                    "perf": cmd_perf, "sample": cmd_sample, "encode": cmd_encode}
        return commands[args.command](args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return UserError.exit_code
    except OSError as e:  # an unwritable, read-only or full output folder is the user's to fix
        print(f"error: {filesystem_message(e)}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs and the last checkpoint of the current run are kept; "
              "run the same command again to resume.", file=sys.stderr)
        return 130
