"""One recorded piece of device work replayed with a single launch: a CUDA graph on a GPU, and
on a CPU an emulation that keeps a graph's rules, so that the code around a graph (static
inputs, outputs overwritten by the next replay, host state that a replay does not touch) runs
and is tested where there is no GPU.

A graph records the kernels that one call of a function launched, with the addresses of every
tensor they touched. A replay runs those kernels again on whatever those tensors hold now:
inputs change by writing into the static tensors the function read, outputs come back in the
static tensors it returned, and nothing on the host runs (no Python, so no host-side state
changes: a learning-rate scheduler's counter, a branch on a Python value).
"""
import torch


def warm_up(fn, device):
    """One eager call of `fn` before a capture, on a side stream on CUDA (PyTorch's rule for
    capture: lazy initialisation such as cuBLAS workspaces and optimiser state must not happen on
    the capturing stream). Returns fn's result."""
    device = torch.device(device)
    if device.type != "cuda":
        return fn()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        out = fn()
    torch.cuda.current_stream(device).wait_stream(side)
    # What the side stream allocated (the losses) is read on the main stream later; waiting here
    # keeps the caching allocator from handing those blocks to a recycled side stream meanwhile.
    torch.cuda.synchronize(device)
    return out


class StepGraph:
    """`fn()` captured once (`capture`), then run by `replay()`, which returns the static
    outputs: a dict of tensors that the next replay overwrites.

    `host_state` is a list of objects with `state_dict`/`load_state_dict` whose state `fn` changes
    on the host (the model's LR schedulers): a capture runs `fn`'s Python once without running its
    kernels, so that state is put back afterwards; the emulation puts it back after every replay,
    as a graph's replay never touches it."""

    def __init__(self, device, host_state=()):
        self.device, self.host_state = torch.device(device), list(host_state)
        self.cuda = self.device.type == "cuda"
        self._fn, self._graph, self.outputs = None, None, None

    def capture(self, fn):
        saved = [s.state_dict() for s in self.host_state]
        if self.cuda:
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self.outputs = fn()
            for s, state in zip(self.host_state, saved):
                s.load_state_dict(state)
        else:
            self._fn = fn  # the emulation records the call itself; nothing runs until a replay
        return self

    def replay(self):
        if self.cuda:
            self._graph.replay()
            return self.outputs
        saved = [s.state_dict() for s in self.host_state]
        out = self._fn()
        for s, state in zip(self.host_state, saved):
            s.load_state_dict(state)
        with torch.no_grad():
            if self.outputs is None:  # the emulation's static outputs: allocated at the first replay
                self.outputs = {k: torch.empty_like(v) for k, v in out.items()}
            for k, v in out.items():  # the next replay overwrites them, as on a GPU
                self.outputs[k].copy_(v)
        return self.outputs
