"""The training loop: drives any registered model under the budget, never looks at a loss.

It owns what every run shares: the per-seed data order (batches.py), progress, the loss log
(losses.py), atomic checkpoints with resume, divergence detection and the accounting of what was
spent.
"""
import collections
import contextlib
import math
import time

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from ..core import parallel
from ..core.errors import UserError
from ..core.io import atomic_torch_save
from ..core.records import COMPILE_APART, training_seconds
from .batches import BatchStream
from .capture import CapturedStep
from .losses import LossLog, LossReader


class _NoModuleTracker:
    """Stands in for FlopCounterMode's ModuleTracker. Only the total is read, and the tracker's
    backward hooks make torch.autograd.grad fail inside the counted step (a gradient penalty)."""
    parents = frozenset({"Global"})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def flop_counter():
    """FlopCounterMode that counts the total only (no per-module attribution)."""
    counter = FlopCounterMode(display=False)
    if hasattr(counter, "mod_tracker"):
        counter.mod_tracker = _NoModuleTracker()
    return counter


def step_fn(model, data, stream, runtime, reader, per_step):
    """One training step on the runtime's path: cut this process's rows of the next batch,
    run the model's update under the runtime's precision, queue its losses for `reader`. With
    --capture, and a model that allows it, the step is replayed as one graph (capture.py).
    Called after `runtime.prepare(model)`."""

    def batch_of(idx, flip):
        idx = runtime.my_rows(idx, model.batches_per_step)
        flip = runtime.my_rows(flip, model.batches_per_step)
        return runtime.batch(data[idx], flip)

    if runtime.capture_blocker(model) is None:
        return CapturedStep(model, data, stream, runtime, reader, per_step, batch_of)

    def step(i):
        idx, flip = stream.next(per_step)
        with runtime.autocast():
            reader.add(i, model.train_step(batch_of(idx, flip), i))

    return step


def saved_step_flops(model, state):
    """{phase: FLOPs of one step} from a checkpoint. One written before phases were counted holds
    a single count, made at step 0, so it is step 0's phase's; an idle phase costs 0 whatever
    was counted for it."""
    per_step = state.get("phase_flops")
    if per_step is None:
        old = state.get("flops_per_step")
        per_step = {} if old is None else {model.phase(0): old}
    return {ph: 0 if ph in model.idle_phases else f for ph, f in per_step.items()}


def flops_by_phase(model, step_flops, steps):
    """{phase: FLOPs} of the first `steps` steps, each phase's one-step count times its steps,
    with the model's analytic extras beside them; None when a phase that ran was never counted
    (a checkpoint from before FLOPs were counted, resumed past that phase)."""
    steps_in = collections.Counter(model.phase(s) for s in range(steps))
    if not steps_in.keys() <= step_flops.keys():
        return None
    spent = {ph: step_flops[ph] * n for ph, n in steps_in.items()}
    for name, f in model.analytic_flops().items():
        spent[name] = spent.get(name, 0) + f
    return spent


def load_checkpoint(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user problem
        raise UserError(
            f"Checkpoint {path} cannot be read ({type(e).__name__}: {e}). It is left in place; "
            "move it away to restart that run from scratch, or rerun with --force."
        ) from None


class Stopwatch:
    """The run's time, summed over its sessions: training seconds, which run from `start()` on
    except inside `paused()` (the work that is not training: tracking, checkpoint writes) and
    except compilation, and the compilation seconds apart, as `runtime.compile_seconds()`
    reports them (torch.compile's own clock: tracing, graph capture and code generation of the
    forward and backward graphs) once `count_compilation` is called. Compilation happens inside
    the steps that first call a network in a new way, so the stopwatch takes out of each stretch
    it runs the compilation that ran in it."""

    def __init__(self, seconds=0.0, compile_seconds=0.0):
        self._seconds, self._since = seconds, None
        self._compile_seconds, self._runtime, self._compile_mark = compile_seconds, None, 0.0
        self._run_mark = 0.0  # the runtime's compilation count when the stopwatch last started

    def _compiled_so_far(self):
        return self._runtime.compile_seconds() if self._runtime is not None else 0.0

    def start(self):
        self._since, self._run_mark = time.perf_counter(), self._compiled_so_far()

    def stop(self):
        if self._since is not None:
            self._seconds += time.perf_counter() - self._since - (self._compiled_so_far() - self._run_mark)
            self._since = None

    @contextlib.contextmanager
    def paused(self):
        self.stop()
        try:
            yield
        finally:
            self.start()

    @property
    def seconds(self):
        """Training seconds, compilation excluded."""
        if self._since is None:
            return self._seconds
        return self._seconds + time.perf_counter() - self._since - (self._compiled_so_far() - self._run_mark)

    def count_compilation(self, runtime):
        """Count this session's compilation apart from now on: called after `runtime.prepare`,
        whose compiler reset is where the runtime's count starts."""
        self._runtime, self._compile_mark = runtime, runtime.compile_seconds()
        self._run_mark = self._compile_mark

    @property
    def compile_seconds(self):
        if self._runtime is None:
            return self._compile_seconds
        return self._compile_seconds + (self._runtime.compile_seconds() - self._compile_mark)


def counted_step(train_step, step, model, step_flops, runtime):
    """Run one training step. On the first step of a phase, also record in `step_flops` what one
    of its steps costs: counted once, eagerly (so that every op is seen), unless the phase is idle."""
    phase = model.phase(step)
    if phase in step_flops:
        train_step(step)
    elif phase in model.idle_phases:  # its steps train nothing: nothing to count
        step_flops[phase] = 0
        train_step(step)
    else:
        with runtime.eager(), flop_counter() as counter:
            train_step(step)
        step_flops[phase] = counter.get_total_flops() * runtime.world  # each process ran its share of the rows


def read_window(reader, log, bar, log_every, last_step, board=None):
    """Read the window's losses to the host, the one synchronisation of the window, and log every
    `log_every`-th step and the last (main process: `log` is None elsewhere), to the TensorBoard
    `board` too when there is one. Stops at the first step with a non-finite loss and returns
    (step, losses, names of the non-finite ones); None when every loss is finite."""
    for s, out in reader.read():
        bad = sorted(k for k, v in out.items() if not math.isfinite(v))
        if bad:
            return s, out, bad
        if log is not None and (s % log_every == 0 or s == last_step):
            log.append(s, out)
            if board is not None:
                board.scalars("loss", s, out)
            bar.set_postfix({k: f"{v:.3g}" for k, v in out.items()}, refresh=False)
    return None


def save_checkpoint(path, step, model, runtime, stream, watch, step_flops, log, track):
    """The logs, then the checkpoint they match, each written atomically (main process only)."""
    log.flush()
    if track is not None:
        track.flush()
    atomic_torch_save({"model": parallel.plain_state_dict(model), "optim": model.optimizer_state(),
                       "rng": runtime.rng_state(), "step": step, "consumed": stream.consumed,
                       "train_seconds": watch.seconds, "compile_seconds": watch.compile_seconds,
                       COMPILE_APART: True, "phase_flops": step_flops},
                      path)


def spend_record(model, step_flops, steps, per_step, watch, compiled):
    """What the first `steps` steps spent: the record `train` returns, less its status.

    FLOPs are the matmul and convolution FLOPs PyTorch's FlopCounterMode counts (2 per
    multiply-add), forward and backward, counted once, eagerly, on the first step of each phase
    the model declares (`model.phase(step)`; one phase, "train", by default) and charged to every
    step of that phase; a phase in `model.idle_phases` trains nothing and costs 0, and the
    model's `analytic_flops()` (work the counter cannot see) are added once.

    The record: g_steps, d_steps, images_seen, train_flops (the sum over phases), flops_by_phase
    ({phase: FLOPs}, with the analytic extras), flops_per_step (train_flops / g_steps: the mean
    cost of one G/E step with its D steps), train_seconds (the steps alone: compilation, tracking
    and checkpoint writes are not in it), compile_seconds (torch.compile's time, apart) and the
    compiled networks."""
    by_phase = flops_by_phase(model, step_flops, steps)
    total = sum(by_phase.values()) if by_phase is not None else None
    return {"g_steps": steps, "d_steps": model.d_updates(steps), "images_seen": steps * per_step,
            "flops_per_step": total / steps if total is not None and steps else None,
            "train_flops": total, "flops_by_phase": by_phase,
            "train_seconds": round(watch.seconds, 3), "compile_seconds": round(watch.compile_seconds, 3),
            COMPILE_APART: True, "compiled": ",".join(compiled)}


def resume(ckpt_path, model, runtime, stream):
    """(the step to start at, the stopwatch, {phase: FLOPs of one step}) of a run: from its
    checkpoint, whose model, optimiser, random and data-order states are restored, or from step 0."""
    if not ckpt_path.exists():
        return 0, Stopwatch(), {}
    state = load_checkpoint(ckpt_path)
    model.load_state_dict(state["model"])
    model.load_optimizer_state(state["optim"])
    runtime.set_rng_state(state["rng"])
    stream.consumed = state["consumed"]
    watch = Stopwatch(training_seconds(state) or 0.0, state.get("compile_seconds", 0.0))
    return state["step"], watch, saved_step_flops(model, state)


def record_blow_up(step, losses, log, board):
    """The losses of the step that diverged, in the loss log (main process) and TensorBoard: the
    checkpoint keeps the last finite state, the log shows the blow-up."""
    if log is not None:
        log.append(step, losses)
        log.flush()
    if board is not None:
        board.scalars("loss", step, losses)


def track_scores(step, model, monitor, track, board, runtime):
    """A tracking point: the monitor's scores of the model now, logged (track.csv, TensorBoard)
    by the main process, eagerly and at evaluation's precision; every process waits for it."""
    if track is not None:
        with runtime.evaluation():
            scores = monitor(model)
            track.append(step, scores)
            if board is not None:
                board.scalars("track", step, scores)
                board.pictures(step, model)
    parallel.barrier()  # only the main process has a monitor


def train(model, train_x, cfg, run_dir, runtime, seed, desc="", monitor=None, position=0, board=None):
    """Train until `cfg.train.steps` G/E updates; resume from run_dir/checkpoint.pt.

    `monitor(model)`, if given, returns generation scores; they are logged to track.csv every
    `cfg.eval.track_every` steps, outside the timed training (main process only). `board`, if
    given (main process only), is the run's TensorBoard log (board.py): it gets the logged losses,
    the tracked scores, and pictures at each tracking point and at the end.

    Returns the spend record (spend_record), with the status ("ok" or "diverged") and, for a
    diverged run, diverged_at/diverged_on."""
    tc, main = cfg.train, runtime.is_main
    steps, per_step = tc.steps, model.batches_per_step * tc.batch_size  # per_step: real examples a step takes
    ckpt_path = run_dir / "checkpoint.pt"
    data = runtime.place(train_x)
    stream = BatchStream(len(train_x), seed, device=data.device, hflip=tc.hflip)
    start, watch, step_flops = resume(ckpt_path, model, runtime, stream)
    compiled = runtime.prepare(model)
    if compiled:
        watch.count_compilation(runtime)
    log = LossLog(run_dir / "losses.csv", start) if main else None
    track = LossLog(run_dir / "track.csv", start) if monitor and main else None
    reader = LossReader(runtime, f"{type(model).__name__}.train_step")
    train_step = step_fn(model, data, stream, runtime, reader, per_step)
    if board is not None:
        board.begin(start)
    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=desc, dynamic_ncols=True, leave=False,
               disable=not main, position=position)  # parallel jobs: one line each
    watch.start()
    for step in bar:
        counted_step(train_step, step, model, step_flops, runtime)
        due_track = cfg.eval.track_every and (step + 1) % cfg.eval.track_every == 0
        due_ckpt = (step + 1) % tc.checkpoint_every == 0 and step + 1 < steps
        # The losses stay on the device between reads: a window ends every sync_every steps and
        # before tracking, a checkpoint and the end, so that none of them comes after a blow-up.
        if len(reader.pending) >= runtime.sync_every or due_track or due_ckpt or step == steps - 1:
            diverged = read_window(reader, log, bar, tc.log_every, steps - 1, board)
            if diverged is not None:
                s, out, bad = diverged
                watch.stop()
                bar.close()
                record_blow_up(s, out, log, board)
                runtime.release(model)
                return {"status": "diverged", "diverged_at": s, "diverged_on": ",".join(bad),
                        **spend_record(model, step_flops, s, per_step, watch, compiled)}
        if due_track:
            with watch.paused():
                track_scores(step, model, monitor, track, board, runtime)
        if due_ckpt and main:
            with watch.paused():
                save_checkpoint(ckpt_path, step + 1, model, runtime, stream, watch, step_flops, log, track)
    watch.stop()
    bar.close()
    if board is not None and start < steps:  # the trained model's pictures (unless the last tracking point drew them)
        with runtime.evaluation():
            board.pictures(steps - 1, model)
    runtime.release(model)
    if start < steps and main:  # a finished checkpoint (a run evaluated again) stays as it is, byte for byte
        save_checkpoint(ckpt_path, steps, model, runtime, stream, watch, step_flops, log, track)
    return {"status": "ok", **spend_record(model, step_flops, steps, per_step, watch, compiled)}
