"""The command line's grammar: every command, its arguments and their help."""
import argparse
from pathlib import Path


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
    parser.add_argument("--capture", action="store_true",
                        help="replay each training step of a capturable model as one CUDA graph (the fast path; "
                             "emulated on a CPU, where it runs the same code at the same speed)")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false", default=None,
                        help="IEEE fp32 matmuls and convolutions on the fast path too (default: TF32 there on "
                             "GPUs that have it; the plain path and evaluation are always IEEE fp32)")


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
    """sample and encode: a finished run's model, used without writing Python (api/)."""
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
