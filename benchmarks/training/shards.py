"""A benchmark's (model, seed) matrix cut into shards: `--shard I/N` (one per machine or SLURM
array task) and `--jobs N` (N local shard processes sharing the CPU cores)."""
import os
import subprocess
import sys

from ..core.errors import ConfigError


def parse_shard(text, env=None):
    """'i/n' (1 <= i <= n) -> (i, n); 'slurm': this SLURM array task's shard (slurm_shard), read
    from `env` (default os.environ)."""
    if text == "slurm":
        return slurm_shard(os.environ if env is None else env)
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        i = n = 0
    if not 1 <= i <= n:
        raise ConfigError(f"--shard {text!r} must be i/n with 1 <= i <= n, e.g. --shard 2/4 for the second of four.")
    return i, n


def slurm_shard(env):
    """(i, n) of this task of a SLURM job array: the array's indices, in order, are shards 1..n.
    SLURM sets SLURM_ARRAY_TASK_ID in every task, with the array's SLURM_ARRAY_TASK_MIN, _MAX,
    _STEP (a range with a step, --array=0-14:2) and _COUNT; so --array=0-7 and --array=1-8 both
    give shards 1/8 to 8/8, as `--shard I/N` would by hand."""
    def read(name):
        value = env.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"--shard slurm: {name}={value!r} is not an integer; SLURM sets it to one.") from None

    task, low, high = read("SLURM_ARRAY_TASK_ID"), read("SLURM_ARRAY_TASK_MIN"), read("SLURM_ARRAY_TASK_MAX")
    if task is None:
        raise ConfigError("--shard slurm takes the shard from the SLURM job array (SLURM_ARRAY_TASK_ID), but this "
                          "process is not a task of one: submit it with `sbatch --array=1-N` (examples/slurm/), "
                          "or give the shard by hand, e.g. --shard 2/4.")
    if low is None or high is None:
        raise ConfigError("--shard slurm: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN and _MAX are not, so "
                          "the array's size is unknown; give the shard by hand, e.g. --shard "
                          f"{task}/<number of tasks>.")
    step = read("SLURM_ARRAY_TASK_STEP") or 1
    n = (high - low) // step + 1
    count = read("SLURM_ARRAY_TASK_COUNT")
    if count is not None and count != n or (task - low) % step or not low <= task <= high:
        raise ConfigError(f"--shard slurm: the array's indices are not the range {low}-{high}:{step} "
                          f"(task {task}, {count} tasks), so its tasks do not map to shards in order; submit the "
                          "array as one range, e.g. --array=1-8, or give --shard I/N by hand.")
    return (task - low) // step + 1, n


def shard_matrix(model_names, seeds, shard=None, row_seeds=None):
    """The (model, seed) pairs one shard runs: pair k of the model-major matrix goes to shard
    k mod n + 1, so n shards cover the matrix exactly once and each gets every model it can.
    `row_seeds`: {model: extra seeds} that some rows run beyond `seeds` (a study's claim rows)."""
    extra = row_seeds or {}
    pairs = [(m, s) for m in model_names for s in dict.fromkeys([*seeds, *extra.get(m, ())])]
    if shard is None:
        return pairs
    i, n = shard
    return [p for k, p in enumerate(pairs) if k % n == i - 1]


def _die_with_parent():
    """In a --jobs shard process (Linux): SIGTERM when the parent dies, even by kill -9, so no
    orphan keeps training into the folder a rerun would then collide with."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def jobs_threads(jobs):
    """The threads each of `jobs` shard processes trains with: this machine's cores shared out."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_jobs(argv, jobs, threads=None):
    """`run ... --jobs N`: N shard processes of the command `argv` (the CLI's, without its --jobs)
    on this machine, the CPU cores
    split between them (small convolutions use two threads poorly; two processes use them
    fully); the caller then writes one report over the whole folder. Returns the worst exit code.
    `threads`: each process's thread count, if not the cores' share of `jobs` (a sweep keeps its
    --jobs share in a phase of fewer runs than jobs, so every run of a study sums alike)."""
    threads = str(threads or jobs_threads(jobs))
    # Every thread pool of a shard gets its share: PyTorch's OpenMP, and the BLAS under numpy,
    # scipy and scikit-learn (OpenBLAS reads its own variable; its idle threads spin).
    env = {**os.environ, **{v: threads for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks", *argv, "--shard", f"{i}/{jobs}",
                               "--job-of", f"{i}/{jobs}"], env=env, preexec_fn=_die_with_parent)
             for i in range(1, jobs + 1)]
    try:
        codes = [p.wait() for p in procs]
    except BaseException:  # Ctrl-C or a kill of this process: take the shards down with it
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    bad = [c for c in codes if c]
    return (bad[0] if bad[0] > 0 else 1) if bad else 0  # a shard killed by a signal has a negative code
