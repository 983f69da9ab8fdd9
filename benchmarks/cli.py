"""python -m benchmarks {list-models, run, sweep, perf, report, sample, encode}: the one place that
wires the stages together."""
import argparse
import json
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
    p = argparse.ArgumentParser(prog="python -m benchmarks",
                                description="BiGAN Bench: train and score bidirectional GANs.")
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
    r.add_argument("--force", action="store_true",
                   help="retrain the selected runs (--models, --seeds) even if finished")
    _run_options(r)

    sw = sub.add_parser("sweep", help="a study: hyperparameter trials scored on validation, the chosen settings and "
                        "ablation arms rerun with more seeds on test, and a claims report")
    sw.add_argument("study", help="study name (configs/studies: digits) or a path to a .yaml")
    sw.add_argument("--trials", type=int, help="trials per swept model, trial 0 its defaults (default: the study's)")
    sw.add_argument("--phase", choices=("select", "confirm", "final", "all"), default="all",
                    help="select: every trial on the first selection seed, on validation; confirm: the best trials "
                    "on the other selection seeds; final: the chosen settings on test; all (default): the three")
    sw.add_argument("--out", type=Path, help="study folder (default runs/study-<name>): select/, final/, study.md")
    sw.add_argument("--force", action="store_true", help="retrain the runs of the phase that cannot be resumed as "
                    "they are (an unreadable config.json or checkpoint, a config changed since, e.g. an edited "
                    "plugin's); every finished run whose records read is kept")
    _run_options(sw)
    _other_commands(sub)
    _use_commands(sub)
    return p


def _run_options(r):
    """The options of every command that trains: where, on what, in how many processes."""
    r.add_argument("--plugin", action="append", default=[],
                   help="module or .py file that registers models (repeatable)")
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
    r.add_argument("--debug", action="store_true",
                   help="print a failed run's traceback (it is always in its error.txt)")
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
    pf.add_argument("--dinov2-weights", metavar="PATH",
                    help="DINOv2 ViT-L/14 weights file, timed on a GPU (else random weights, labelled)")
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
    from .training.run import check_models, jobs_threads, parse_shard, run_benchmark, run_jobs

    shard = parse_shard(args.shard) if args.shard else None
    board_root = _board_root(args, out)
    check_models(cfg, declared_shape(cfg.dataset))  # before any data is loaded or anything written
    weights = check_weights(args)
    check_jobs(args)
    sweep = args.command == "sweep"
    if args.jobs != 1:
        jobs = min(args.jobs, cfg.matrix_size())  # a shard without a run would start for nothing
        if jobs > 1 or sweep:  # a sweep's runs all train with the threads of its --jobs share
            code = run_jobs(argv, jobs, threads=jobs_threads(args.jobs))
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

        code = run_benchmark(cfg, data, runtime, out, make_evaluator, force=args.force, shard=shard, job=job,
                             debug=args.debug, board_root=board_root, sweep=sweep)
        if runtime.is_main and job is None:  # a --jobs shard leaves the report to its parent
            print_report(out, args.figures)
        return code
    finally:
        parallel.shutdown()


def check_jobs(args):
    """--jobs N: at least 1, without --shard and torchrun, and no more than this machine's cores."""
    from .core import parallel

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

    from .core.weights import Weights

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
    """The study's phases in order: each an ordinary results folder under OUT, then the study report.
    Everything is checked before anything is written: the study file whole, the models it builds,
    the weights named, the folder (its own, never a committed one), its recorded study and how far
    its selection has got (study_state)."""
    from .core.io import atomic_write_json
    from .core.lock import FolderLock
    from .data import declared_shape
    from .reporting.study import locked_study_report
    from .study import record as studyrec
    from .study import study as studies
    from .training.run import check_folder, check_models

    study = studies.load_study(args.study, trials=args.trials, shape_of=declared_shape)
    out = args.out or Path("runs") / f"study-{study.name}"
    phases = ("select", "confirm", "final") if args.phase == "all" else (args.phase,)
    if args.job_of:  # a --jobs shard: its parent checked and recorded the study, and runs the phases in turn
        return run_config(args, _phase_config(args, study, out, phases[0]), out / _folder(phases[0]),
                          _with_phase(args.argv, phases[0]))
    select_cfg = studies.select_config(study)
    check_jobs(args)
    _check_study_folder(args, out)
    record = study_state(args, study, out, phases, select_cfg)  # refuses a changed study or an early phase
    redo_selection = _selection_to_redo(args, study, out, phases)
    for cfg in (select_cfg, studies.final_config(study, studies.provisional_selection(study))):
        check_models(cfg, declared_shape(cfg.dataset))  # every model, arm and control builds (seconds)
    check_weights(args)
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out, "Study folder").acquire(wait=60):  # shards starting together: one writes it
        if studyrec.read(out) is None:
            atomic_write_json(out / studyrec.RECORD, record)
    if redo_selection:
        print(f"warning: {out / 'selection.json'} was damaged ({redo_selection}); computed again from "
              f"{out / 'select'}", file=sys.stderr)
        atomic_write_json(out / "selection.json", studies.select(study, _selection_rows(out)))
    code = 0
    for phase in phases:
        cfg = _phase_config(args, study, out, phase)
        if cfg is None:  # one selection seed, or confirm_top 0: nothing to confirm
            continue
        folder = out / _folder(phase)
        if phase == "final":
            check_folder(cfg, folder, write=False)  # refused before the selection is written, not after
            if not args.shard:  # the shards compute the same selection; the unsharded command records it
                atomic_write_json(out / "selection.json", studies.select(study, _selection_rows(out)))
        code = max(code, run_config(args, cfg, folder, _with_phase(args.argv, phase)))
    if not args.shard:
        print(locked_study_report(out, study, figures=args.figures))
    return code


def _folder(phase):
    return "select" if phase in ("select", "confirm") else phase


def _selection_rows(out):
    from .reporting.folders import collect

    return collect([out / "select"]).to_dict("records") if (out / "select").is_dir() else []


def _phase_config(args, study, out, phase):
    """The resolved config of one phase (None: nothing to confirm), once the phases before it are
    complete: the confirmation and the final choice read the whole selection, so a phase that
    starts before every shard of the one before has finished would choose among part of it."""
    from .study import record as studyrec
    from .study import study as studies

    if phase == "select":
        return studies.select_config(study)
    rows = _selection_rows(out)
    screen = studyrec.screen_missing(study, rows, studies.select_config(study).models)
    missing = screen or (studies.missing_confirmations(study, rows) if phase == "final" else [])
    if missing:
        before = "select" if screen else "confirm"
        raise UserError(f"The {phase} phase chooses among every selection run, and {len(missing)} are missing from "
                        f"{out / 'select'} (e.g. {missing[0][0]} seed {missing[0][1]}). Run the {before} phase first "
                        f"(on every task of a job array): {_sweep_command(args, out, before)}.")
    if phase == "confirm":
        return studies.confirm_config(study, rows)
    return studies.final_config(study, studies.select(study, rows))


def _sweep_command(args, out, phase, *extra, drop=()):
    """This sweep command line with `--out OUT --phase PHASE` and `extra` in place of its own (and
    without the options in `drop`, nor --force), quoted for a message: the user's other options
    (--plugin, --shard, --trials, --device, ...) stay as they gave them."""
    import shlex

    words = _without(args.argv, ("--out", "--phase", *drop), flags=("--force",))
    return f"`{shlex.join(['python', '-m', 'benchmarks', *words, '--out', str(out), '--phase', phase, *extra])}`"


def _without(argv, options, flags=()):
    """`argv` without each of `options` and its value (`--opt V` or `--opt=V`), nor `flags`."""
    rest, items = [], iter(argv)
    for a in items:
        if a in options:
            next(items, None)
        elif a not in flags and not a.startswith(tuple(f"{o}=" for o in options)):
            rest.append(a)
    return rest


def _check_study_folder(args, out):
    """A sweep writes only into a study folder of its own: a new or empty folder, or one that holds
    a study (study.json, or the select/ and final/ of a study recorded before study.json existed);
    never a committed folder, a `run` folder, or anyone's other files."""
    from .core import git
    from .study import record as studyrec

    record = git.committed(out)
    if record:
        where = "is committed to git" if record == out.absolute() else f"is inside {record}, committed to git"
        own = Path("runs") / f"study-{Path(str(args.study)).stem}"
        raise UserError(f"{out} {where}: a published record, whose files a sweep would overwrite or add to. Run the "
                        "study into a folder of your own and copy what should be published, e.g. "
                        f"{_sweep_command(args, own, args.phase)}. Nothing was changed.")
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a new or empty folder for the study.")
    if (out / studyrec.RECORD).exists() or not any(out.iterdir()):
        return
    if (out / "select" / "benchmark.json").exists() or (out / "selection.json").exists():
        return  # a study folder from before study.json: recorded from now on
    what = ("a results folder of `run` (it holds benchmark.json)" if (out / "benchmark.json").exists()
            else "not a study folder (no study.json, select/ or selection.json)")
    raise UserError(f"--out {out} is {what}; its files are left as they are. Choose a new or empty folder for the "
                    f"study, e.g. {_sweep_command(args, Path(f'{out}-study'), args.phase)}.")


def study_threads(args):
    """(device kind, threads each run trains with) of this command: a --jobs N share of the cores
    (run_jobs), else this process's own PyTorch thread count (OMP_NUM_THREADS or the cores)."""
    import torch

    from .training.run import jobs_threads

    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    return ("cuda" if cuda else "cpu"), (jobs_threads(args.jobs) if args.jobs > 1 else torch.get_num_threads())


def study_state(args, study, out, phases, select_cfg):
    """The record this command would make of the study (study.json), after refusing what would mix
    two studies in one folder: another study (or --trials) than the one recorded, another thread
    count per run, or, under --shard, `--phase all` before the selection is complete."""
    from .study import record as studyrec
    from .study.study import study_path

    device, threads = study_threads(args)
    new = studyrec.record(study, study_path(args.study), threads, device)
    old = studyrec.read(out)
    if old is not None:
        changes = studyrec.differences(old, new)
        if changes == [studyrec.threads_difference(old, new)] and not _trains(args, study, out, phases):
            changes = []  # another thread count only rewrites the report here: no run would mix with the others
        if changes:
            shown = "; ".join(c if len(c) < 200 else c[:200] + "..." for c in changes[:5])
            fix = _threads_fix(args, out, old["threads"]) if changes[0].startswith("threads per run") else (
                f"Run the study {out / studyrec.RECORD} records (from {old.get('file')}), or give the changed one "
                f"a folder of its own: {_sweep_command(args, Path(str(out) + '-2'), args.phase)}.")
            raise UserError(f"{out} holds another study's runs ({shown}{'; ...' if len(changes) > 5 else ''}); a "
                            f"phase or resume of this one would mix the two. Nothing was changed. {fix}")
    if args.shard and args.phase == "all":
        rows = _selection_rows(out)
        from .study import study as studies

        missing = (studyrec.screen_missing(study, rows, select_cfg.models)
                   or studies.missing_confirmations(study, rows))
        if missing:
            raise UserError(f"--phase all with --shard would let each shard confirm and choose among its own part of "
                            f"the selection, and {len(missing)} selection runs are missing (e.g. {missing[0][0]} seed "
                            f"{missing[0][1]}). Run the phases one after another on every task: first "
                            f"{_sweep_command(args, out, 'select')}, then {_sweep_command(args, out, 'confirm')}, "
                            f"then {_sweep_command(args, out, 'final')} (examples/slurm/study.sh chains them).")
    if phases[0] != "select":
        _phase_config(args, study, out, phases[0])  # refused unless the phases before it are complete
    return new


def _trains(args, study, out, phases):
    """Whether this command would train any run: a run of its phases (its shard of them) without
    a finished record (ok or diverged). A phase after one with runs to train trains too."""
    from .reporting.folders import collect
    from .training.run import parse_shard, shard_matrix

    shard = parse_shard(args.shard) if args.shard else None
    for phase in phases:
        try:
            cfg = _phase_config(args, study, out, phase)
        except UserError:  # the phases before it are not complete: they, or it, will train
            return True
        if cfg is None:
            continue
        folder = out / _folder(phase)
        done = {(r["model"], str(r["seed"])) for r in collect([folder]).to_dict("records")
                if r.get("status") in ("ok", "diverged")} if folder.is_dir() else set()
        if any((m, str(s)) not in done for m, s in shard_matrix(cfg.models, cfg.seeds, shard, cfg.row_seeds)):
            return True
    return False


def _threads_fix(args, out, threads):
    """The command line that trains with `threads` threads per run on this machine."""
    from .training.run import jobs_threads

    cores = os.cpu_count() or 1
    jobs = next((j for j in range(2, cores + 1) if jobs_threads(j) == threads), None)
    if jobs:
        return (f"Run it with the recorded threads: "
                f"{_sweep_command(args, out, args.phase, '--jobs', str(jobs), drop=('--jobs',))}.")
    return (f"Run it with the recorded threads: set OMP_NUM_THREADS={threads} and run "
            f"{_sweep_command(args, out, args.phase, drop=('--jobs',))} (no --jobs).")


def _selection_to_redo(args, study, out, phases):
    """Why selection.json must be computed again before the report reads it (cut off, or not a
    selection), or None. Only an unsharded command reads it; the final phase writes it anew; a
    damaged one is otherwise computed again from select/ once the selection is complete, and
    refused, with the fix, while it is not."""
    from .study import record as studyrec
    from .study import study as studies

    path = out / "selection.json"
    if args.shard or not path.exists():
        return None
    try:
        studyrec.check_selection(json.loads(path.read_text()), study)
        return None
    except (OSError, ValueError) as e:
        why = f"{type(e).__name__}: {e}"
    rows = _selection_rows(out)
    if not (studyrec.screen_missing(study, rows, studies.select_config(study).models)
            or studies.missing_confirmations(study, rows)):
        return why
    if "final" in phases:
        return None  # the final phase chooses once the selection is complete, and writes it
    raise UserError(f"{path} is damaged ({why}) and the selection in {out / 'select'} is not complete, so it cannot "
                    "be computed again yet. Nothing was changed. Delete it, then run this command again; the final "
                    f"phase writes it once the selection is complete ({_sweep_command(args, out, 'final')}).")


def _with_phase(argv, phase):
    """The sweep command line for one phase: --phase PHASE in place of the given one."""
    return [*_without(argv, ("--phase",)), "--phase", phase]


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
    from .core import git
    from .reporting.report import locked_report

    for d in args.dirs:
        _not_a_study_folder(d)
    out = args.out or args.dirs[0]
    record = git.committed(out)  # report writes its tables with the time they were written: never the published ones
    if record:
        name = Path(out).resolve().name
        where = "is committed to git" if record == Path(out).absolute() else f"is inside {record}, committed to git"
        raise UserError(f"{out} {where}: a published record, whose files report would rewrite or add to. Write the "
                        "report into a folder of your own, e.g. `python -m benchmarks report "
                        f"{' '.join(map(str, args.dirs))} --out runs/{name}-report`. Nothing was changed.")
    print(locked_report(out, args.dirs, figures=args.figures))
    return 0


def _not_a_study_folder(d):
    """`report` reads results folders; a study folder holds two (select/, final/) and its own report."""
    d = Path(d)
    if not (d / "select").is_dir() or next(d.glob("*/seed*/metrics.json"), None):
        return
    try:
        study = json.loads((d / "study.json").read_text())["file"]
    except (OSError, ValueError, KeyError, TypeError):
        study = "STUDY"
    from .core import git

    if git.committed(d):  # a published study is not rewritten in place: both fixes write elsewhere
        own = Path("runs") / d.resolve().name
        raise UserError(f"{d} is a study folder (`sweep`), committed to git: its report, study.md, is rewritten by "
                        f"running the study into a folder of your own, `python -m benchmarks sweep {study} --out "
                        f"{own}`; its phases are results folders of their own, e.g. `python -m benchmarks report "
                        f"{d / 'final'} --out {own}-final-report`.")
    raise UserError(f"{d} is a study folder (`sweep`): its report, study.md, is rewritten by `python -m benchmarks "
                    f"sweep {study} --out {d}`; its phases are results folders of their own, e.g. `python -m "
                    f"benchmarks report {d / 'final'}`.")


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
