"""The whole training step as one graph (`--capture`): forward, backward, optimiser and EMA
launched with one call per step.

Why: a small model's step on a GPU is bound by the host, not by arithmetic. BiGAN's celeba64
step needs about 0.4 ms of bf16 arithmetic but launches about 263 kernels, each costing the
host several microseconds, between the compiled regions' Python. A graph replays them all.

What a model must promise to be captured (`capturable = True`): within a phase (`model.phase`)
its train_step launches the same kernels on every step whatever `step` is, reads nothing back
to the host, returns tensors only, and changes no host state except its LR schedulers, each
stepped once per train_step (the harness steps them after each replay, as a replay runs no
Python). A model that does not declare it keeps the eager step; `Runtime.capture_blocker` says why.

How, per phase: the first WARMUP_STEPS steps run eagerly (optimiser state, cuBLAS workspaces and
compiled graphs are built there; the first of them is the step whose FLOPs are counted). The
next step is captured with its batch cut from static index buffers and then replayed; every
later step writes its indices into those buffers and replays. Learning rates are device tensors
(runtime.prepare), so a schedule's new value reaches the graph. Each replay's losses are copied
out at once, since the next replay overwrites them.
"""
import torch

from ..core.graphs import StepGraph, warm_up

WARMUP_STEPS = 3  # eager steps per phase before its capture (PyTorch's whole-network example uses 3)


class CapturedStep:
    """step(i) for train.step_fn: the eager warm-up steps, then one graph per phase, replayed."""

    def __init__(self, model, data, stream, runtime, reader, per_step, batch_of, warmup=WARMUP_STEPS):
        self.model, self.data, self.stream, self.runtime, self.reader = model, data, stream, runtime, reader
        self.per_step, self.batch_of, self.warmup = per_step, batch_of, warmup
        self.graphs, self.eager_steps = {}, {}
        self.idx = self.flip = None  # the static index buffers, shared by every phase's graph

    def __call__(self, i):
        phase = self.model.phase(i)
        idx, flip = self.stream.next(self.per_step)
        graph = self.graphs.get(phase)
        if graph is None and self.eager_steps.get(phase, 0) < self.warmup:
            self.eager_steps[phase] = self.eager_steps.get(phase, 0) + 1
            self.reader.add(i, warm_up(lambda: self._train_step(idx, flip, i), self.runtime.device))
            return
        if graph is None:
            graph = self.graphs[phase] = self._capture(idx, flip, i)
        self.idx.copy_(idx)
        if flip is not None:
            self.flip.copy_(flip)
        out = graph.replay()
        self.reader.add(i, snapshot(out))
        for s in self.model.schedulers.values():
            s.step()

    def _train_step(self, idx, flip, i):
        with self.runtime.autocast(cache=False):  # autocast's cast cache would outlive the capture
            return self.model.train_step(self.batch_of(idx, flip), i)

    def _capture(self, idx, flip, i):
        if self.idx is None:
            self.idx = idx.clone()
            self.flip = flip.clone() if flip is not None else None
        graph = StepGraph(self.runtime.device, host_state=self.model.schedulers.values())
        # the step the graph was captured at is the one it replays: a capturable model ignores it within a phase
        graph.capture(lambda: self._checked(self._train_step(self.idx, self.flip, i)))
        return graph

    def _checked(self, out):
        bad = {k: type(v).__name__ for k, v in out.items() if not hasattr(v, "detach")}
        if bad:
            raise TypeError(f"{type(self.model).__name__} declares capturable = True, but its train_step returns "
                            f"host values {bad}: a replay cannot update them. Return device tensors "
                            "(loss.detach()), or leave capturable False.")
        return out


def snapshot(out):
    """The replay's losses copied out of the graph's static outputs (one stack, one copy)."""
    with torch.no_grad():
        values = torch.stack([v.detach().reshape(()).float() for v in out.values()])
    return dict(zip(out, values.unbind()))
