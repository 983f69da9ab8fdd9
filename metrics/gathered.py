"""Per-sample outputs gathered from every process, in draw order (a torchmetrics Metric).

The generation metrics (FD, IS, KID, the classifier score, mode coverage) need the features of
every generated sample, and producing them (decode, then Inception at 299 px) is the expensive
part of an evaluation. Under torchrun each process decodes its share of the sample batches and
`compute()` gathers the shares with torchmetrics' synchronisation (uneven shares included).
Each update carries the samples' draw indices, so the gathered rows come back in the order one
process would have produced them and every metric equals its single-process value. With one
process (or `sync_on_compute=False`) it is a plain accumulator.
"""
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class DrawOrdered(Metric):
    full_state_update = False

    def __init__(self, n_outputs, **kwargs):
        super().__init__(**kwargs)
        self.n_outputs = int(n_outputs)
        self.add_state("index", default=[], dist_reduce_fx="cat")
        for k in range(self.n_outputs):
            self.add_state(f"out{k}", default=[], dist_reduce_fx="cat")

    def update(self, index, *outputs):
        """`index`: (B,) draw indices of this batch; `outputs`: n_outputs tensors with B rows."""
        if len(outputs) != self.n_outputs or any(len(o) != len(index) for o in outputs):
            raise ValueError(f"expected {self.n_outputs} outputs of {len(index)} rows, got "
                             f"{[tuple(o.shape) for o in outputs]}")
        # On the metric's device: NCCL gathers CUDA tensors only.
        self.index.append(torch.as_tensor(index, device=self.device))
        for k, o in enumerate(outputs):
            getattr(self, f"out{k}").append(o.detach().to(self.device))

    def compute(self):
        """The outputs of every process, rows sorted by draw index."""
        order = dim_zero_cat(self.index).argsort()
        return tuple(dim_zero_cat(getattr(self, f"out{k}"))[order] for k in range(self.n_outputs))
