"""The training loop: drives any registered model under the budget, never looks at a loss.

It owns what every run shares: the per-seed data order, progress, the loss log, atomic
checkpoints with resume, divergence detection and the accounting of what was spent.
"""
import csv
import math
import time

import torch
from tqdm.auto import tqdm

from .errors import UserError
from .io import atomic_torch_save


class BatchStream:
    """A deterministic order over the training set for one seed: epoch e is a permutation
    drawn from (seed, e). The whole state is the number of examples consumed, so every
    model sees the same examples in the same order, and a resumed run continues exactly."""

    def __init__(self, n, seed, consumed=0):
        self.n, self.seed, self.consumed = n, seed, consumed
        self._epoch, self._perm = None, None

    def _permutation(self, epoch):
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm

    def next(self, k):
        out = []
        while k > 0:
            epoch, pos = divmod(self.consumed, self.n)
            take = min(k, self.n - pos)
            out.append(self._permutation(epoch)[pos:pos + take])
            self.consumed += take
            k -= take
        return torch.cat(out)


class LossLog:
    """Loss rows in memory, appended to `losses.csv` at each checkpoint, so the file on disk
    always matches the last checkpoint; rows past it are dropped on resume."""

    def __init__(self, path, resume_step):
        self.path, self.rows, self.fields = path, [], None
        if path.exists():
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) < resume_step]
            self.rows = kept
        self.written = 0
        self._rewrite()

    def append(self, step, values):
        self.rows.append({"step": step, **{k: f"{v:.6g}" for k, v in values.items()}})

    def _rewrite(self):
        fields = ["step"] + sorted({k for r in self.rows for k in r} - {"step"})
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fields)
            w.writeheader()
            w.writerows(self.rows)
        self.fields, self.written = fields, len(self.rows)

    def flush(self):
        new = self.rows[self.written:]
        if not new:
            return
        if any(set(r) - set(self.fields) for r in new):
            return self._rewrite()
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields).writerows(new)
        self.written = len(self.rows)


def load_checkpoint(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user problem
        raise UserError(
            f"Checkpoint {path} cannot be read ({type(e).__name__}: {e}). It is left in place; "
            "move it away to restart that run from scratch, or rerun with --force."
        ) from None


def train(model, train_x, cfg, run_dir, runtime, seed, desc="", monitor=None):
    """Train until `cfg['train']['steps']` G/E updates; resume from run_dir/checkpoint.pt.

    `monitor(model)`, if given, returns generation scores; they are logged to track.csv every
    `cfg['eval']['track_every']` steps, outside the timed training.

    Returns the spend record: status ("ok" or "diverged"), g_steps, d_steps, images_seen,
    train_seconds, and diverged_at/diverged_on for a diverged run."""
    tc = cfg["train"]
    steps, batch_size = tc["steps"], tc["batch_size"]
    per_step = model.batches_per_step * batch_size
    ckpt_path = run_dir / "checkpoint.pt"
    stream = BatchStream(len(train_x), seed)
    start, elapsed = 0, 0.0
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        model.load_optimizer_state(state["optim"])
        runtime.set_rng_state(state["rng"])
        start, elapsed, stream.consumed = state["step"], state["train_seconds"], state["consumed"]
    log = LossLog(run_dir / "losses.csv", start)
    track = LossLog(run_dir / "track.csv", start) if monitor else None
    track_every = cfg["eval"]["track_every"]

    def spent(step):
        return {"g_steps": step, "d_steps": model.d_updates(step),
                "images_seen": step * per_step, "train_seconds": round(elapsed, 3)}

    def checkpoint(step):
        log.flush()
        if track:
            track.flush()
        atomic_torch_save({"model": model.state_dict(), "optim": model.optimizer_state(),
                           "rng": runtime.rng_state(), "step": step, "consumed": stream.consumed,
                           "train_seconds": elapsed}, ckpt_path)

    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=desc, dynamic_ncols=True, leave=False)
    tick = time.perf_counter()
    for step in bar:
        batch = runtime.batch(train_x[stream.next(per_step)])
        out = model.train_step(batch, step)
        bad = sorted(k for k, v in out.items() if not math.isfinite(v))
        if bad:
            elapsed += time.perf_counter() - tick
            log.append(step, out)
            log.flush()  # the checkpoint keeps the last finite state; the log shows the blow-up
            bar.close()
            return {"status": "diverged", "diverged_at": step, "diverged_on": ",".join(bad), **spent(step)}
        if step % tc["log_every"] == 0 or step == steps - 1:
            log.append(step, out)
            bar.set_postfix({k: f"{v:.3g}" for k, v in out.items()}, refresh=False)
        if track and (step + 1) % track_every == 0:
            elapsed += time.perf_counter() - tick
            track.append(step, monitor(model))
            tick = time.perf_counter()
        if (step + 1) % tc["checkpoint_every"] == 0 and step + 1 < steps:
            elapsed += time.perf_counter() - tick
            tick = time.perf_counter()
            checkpoint(step + 1)
    elapsed += time.perf_counter() - tick
    bar.close()
    checkpoint(steps)
    return {"status": "ok", **spent(steps)}
