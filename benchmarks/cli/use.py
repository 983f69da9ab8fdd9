"""`report`, `perf`, `sample` and `encode`: tables of finished folders, throughput, and a finished
run's model used without writing Python (api/)."""
import json
from pathlib import Path

from ..core.errors import UserError
from .run import runtime_from


def cmd_perf(args):
    from ..perf.perf import main_perf

    if args.steps < 1 or args.warmup < 0 or args.profile < 0:
        raise UserError("--steps must be at least 1, and --warmup and --profile at least 0.")
    return main_perf(args, runtime_from(args, fast={"auto": None, "fast": True, "plain": False}[args.path]))


def cmd_sample(args):
    import numpy as np

    from ..api import load_run
    from ..core.io import atomic_write
    from ..evaluation.figures import save_png, to_unit

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

    from ..api import load_run
    from ..core.io import atomic_write, atomic_write_text
    from ..data.images import read_images

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
    from ..core import git
    from ..reporting.report import locked_report

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
    from ..core import git

    if git.committed(d):  # a published study is not rewritten in place: both fixes write elsewhere
        own = Path("runs") / d.resolve().name
        raise UserError(f"{d} is a study folder (`sweep`), committed to git: its report, study.md, is rewritten by "
                        f"running the study into a folder of your own, `python -m benchmarks sweep {study} --out "
                        f"{own}`; its phases are results folders of their own, e.g. `python -m benchmarks report "
                        f"{d / 'final'} --out {own}-final-report`.")
    raise UserError(f"{d} is a study folder (`sweep`): its report, study.md, is rewritten by `python -m benchmarks "
                    f"sweep {study} --out {d}`; its phases are results folders of their own, e.g. `python -m "
                    f"benchmarks report {d / 'final'}`.")
