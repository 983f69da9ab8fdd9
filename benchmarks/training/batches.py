"""The order in which a run sees its training data: a permutation per epoch drawn from the seed."""
import torch


class BatchStream:
    """A deterministic order over the training set for one seed: epoch e is a permutation
    (and, with `hflip`, a left-right flip bit per example) drawn from (seed, e). The whole
    state is the number of examples consumed, so every model sees the same examples in the
    same order, and a resumed run continues exactly. The epoch's tensors move to `device`
    once, so cutting a batch costs no host-to-device copy."""

    def __init__(self, n, seed, consumed=0, device="cpu", hflip=False):
        self.n, self.seed, self.consumed = n, seed, consumed
        self.device, self.hflip = torch.device(device), hflip
        self._epoch, self._perm, self._flip = None, None, None

    def _epoch_order(self, epoch):
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=g)
            flip = torch.rand(self.n, generator=g) < 0.5 if self.hflip else None
            self._epoch, self._perm = epoch, self._to_device(perm)
            self._flip = self._to_device(flip) if flip is not None else None
        return self._perm, self._flip

    def _to_device(self, t):
        # The order is drawn on the host (a CPU generator: the same order on every device). A copy
        # from pageable memory waits until the GPU has drained its queue of kernels; from pinned
        # memory it is queued behind them like a kernel, so the epoch boundary costs no stall.
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def next(self, k):
        """(indices, flip bits or None) of the next k examples."""
        epoch, pos = divmod(self.consumed, self.n)
        if pos + k <= self.n:  # the common case, within one epoch: views, no concatenation
            perm, flip = self._epoch_order(epoch)
            idx = perm[pos:pos + k]
            self.consumed += k
            return idx, (flip[idx] if flip is not None else None)
        idx, flips = [], []
        while k > 0:
            epoch, pos = divmod(self.consumed, self.n)
            take = min(k, self.n - pos)
            perm, flip = self._epoch_order(epoch)
            idx.append(perm[pos:pos + take])
            if flip is not None:
                flips.append(flip[perm[pos:pos + take]])
            self.consumed += take
            k -= take
        return torch.cat(idx), (torch.cat(flips) if flips else None)
