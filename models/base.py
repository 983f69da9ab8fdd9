"""The one interface every model implements; the harness only ever talks to this.

A model owns its networks (G, E, D), its optimisers and its update schedule. The harness
hands `train_step` a batch of real data in [-1, 1] and reads back a dict of floats; it never
sees a loss. Declared class attributes tell the harness what one step consumes, so budgets
can be accounted without knowing the method.
"""
import contextlib

import torch
from torch import nn

from models.blocks import count_params


class Range:
    """An allowed interval of a numeric option: `ok(value)`, and `text` for the message."""

    def __init__(self, text, ok):
        self.text, self.ok = text, ok


POSITIVE = Range("> 0", lambda v: v > 0)
NON_NEGATIVE = Range(">= 0", lambda v: v >= 0)
UNIT = Range("in [0, 1)", lambda v: 0 <= v < 1)
ADAM = {"lr": POSITIVE, "adam_beta1": UNIT, "adam_beta2": UNIT, "init_std": POSITIVE}
# Adam's betas were the options beta1 / beta2 in most models until every model spelt them as
# above (BiGAN-QP's beta1 / beta2 were its loss weights): the models that had them declare this.
ADAM_BETAS_RENAMED = {"beta1": "adam_beta1", "beta2": "adam_beta2"}


class BidirectionalGAN(nn.Module):
    #: prior over z: "normal" for N(0, I), "uniform" for U(-1, 1)
    prior = "normal"
    #: real-data batches one `train_step` consumes (BiGAN-QP: 2 critic steps + 1 G/E step = 3)
    batches_per_step = 1
    #: D (critic) updates per G/E update
    d_steps_per_step = 1
    #: (rank, processes) of a data-parallel run, set by the runtime. Every process draws the
    #: global batch's noise from the same stream and keeps its own rows, so a run on n
    #: processes draws exactly what a single process would.
    shard = (0, 1)
    #: the networks the model trains, by attribute name: the runtime wraps exactly these (DDP,
    #: synchronised batch norm, precision, compile) and param_counts counts them, G, E and D as
    #: params_g / params_e / params_d (a model without a discriminator declares ("G", "E"))
    networks = ("G", "E", "D")
    #: networks used only to evaluate, such as an EMA copy of G: same batch-norm and precision
    #: treatment as the trained ones, no DDP wrapper, and not counted
    eval_networks = ()
    #: networks the fast path must run in fp32 rather than under bf16 autocast
    fp32_networks = ()
    #: the networks the runtime compiled (runtime.prepare): a compiled network's backward computes
    #: the gradient of every input that required one, so a model may give each loss its own pass
    #: through it (see `frozen`) where eager autograd would have pruned the unneeded gradients
    compiled_networks = frozenset()
    #: allowed values of numeric options, {name: Range}, checked before the model is built
    #: (models.registry.check_options); each model declares its own. An option name means one
    #: thing in every model: Adam's betas are adam_beta1 / adam_beta2 (ADAM below)
    option_ranges = {}
    #: options renamed since configs and runs were written with them, {old name: new name}: the
    #: registry reads an old name as its new one (models.registry.upgraded_options), so an old
    #: config still loads and an old run still resumes; an old name is never an option again
    renamed_options = {}
    #: what a hyperparameter sweep tunes, {option: distribution} (models/search.py: LogUniform,
    #: Uniform, Choice), each inside the option's range; {} for nothing to tune. None (not
    #: declared): models.search.OPTIMISER_SPACE, restricted to the options __init__ takes
    search_space = None
    #: options the model drew at random for this run (ALI's randomised toy protocol), set in
    #: __init__; the harness records them as `drawn` in the run's metrics.json
    drawn = {}
    #: networks larger than the other rows' by design, {param-count column: one-line reason},
    #: e.g. {"params_d": "the method's published D ..."}: the capacity check shows the reason
    #: instead of flagging a mismatch
    capacity_by_design = {}
    #: whether --capture may replay the whole train_step as one CUDA graph (benchmarks/training/
    #: capture.py): True only if, within a phase, train_step launches the same kernels whatever
    #: `step` is, reads nothing back to the host, returns device tensors, and changes no host state
    #: but its `schedulers`, each stepped once per call. Off by default: a plug-in opts in.
    capturable = False
    #: phases (names `phase` returns) whose steps train nothing, such as a forward pass run only
    #: for the loss log: the harness charges them no FLOPs
    idle_phases = frozenset()

    def __init__(self, *, data_shape, z_dim):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.z_dim = int(z_dim)
        self.optimizers = {}  # name -> torch.optim.Optimizer; saved in checkpoints
        self.schedulers = {}  # name -> LR scheduler; saved in checkpoints

    # --- what the harness calls -------------------------------------------------------
    def train_step(self, batch, step):
        """One G/E update and its D updates. `batch` holds `batches_per_step` batches
        concatenated on dim 0; returns a dict of floats for the loss log."""
        raise NotImplementedError

    def sample_latent(self, n, generator=None):
        """n draws from the prior, on the model's device. With a CPU `generator`, the draws
        are the same on every device (fixed evaluation noise)."""
        gen_device = generator.device if generator is not None else self.device
        rank, world = self.shard if generator is None else (0, 1)
        if self.prior == "normal":
            z = torch.randn(n * world, self.z_dim, generator=generator, device=gen_device)
        elif self.prior == "uniform":
            z = torch.rand(n * world, self.z_dim, generator=generator, device=gen_device) * 2 - 1
        else:
            raise ValueError(f"unknown prior {self.prior!r}")
        return z[rank * n:(rank + 1) * n].to(self.device)

    def noise_like(self, t):
        """Standard normal noise shaped like `t` (a batch), this process's rows of the global draw."""
        rank, world = self.shard
        n = t.shape[0]
        return torch.randn(n * world, *t.shape[1:], device=t.device, dtype=t.dtype)[rank * n:(rank + 1) * n]

    def encode(self, x):
        """Deterministic code of x (the mean, for a stochastic encoder)."""
        return self.E(x)

    def pooled_features(self, x):
        """Spatially pooled last feature map of E (for the second probe), or None if E has none."""
        fn = getattr(self.E, "pooled_features", None)
        return fn(x) if fn is not None else None

    def decode(self, z):
        return self.G(z)

    def phase(self, step):
        """The training phase `step` belongs to, a name. The harness counts one step's FLOPs at the
        first step of each phase and charges every step of that phase the same, so a model whose
        update changes during training (a post-hoc encoder phase) names its phases. A function of
        `step` alone, so that a resumed run is in the same phase."""
        return "train"

    def analytic_flops(self):
        """{name: FLOPs} of training work done once per run that FlopCounterMode cannot see (it
        counts matmuls and convolutions only), such as PCA's eigendecomposition; the harness
        adds each to the run's train_flops and lists it beside the phases."""
        return {}

    def d_updates(self, g_steps):
        """D updates made in the first `g_steps` steps; override when the ratio changes over training."""
        return g_steps * self.d_steps_per_step

    def param_counts(self):
        """{"g", "e", "d"}: parameters of the declared G, E and D (0 for one not declared)."""
        return {n.lower(): count_params(getattr(self, n)) if n in self.networks else 0 for n in ("G", "E", "D")}

    def optimizer_state(self):
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
        }

    def load_optimizer_state(self, state):
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])

    @property
    def device(self):
        return next(self.parameters()).device


def adam(modules, lr, betas, *, weight_decay=0.0, eps=1e-8):
    """Adam over the parameters of `modules`. Weight decay (coupled L2, as in the Theano and
    Keras code the papers released) applies to conv/linear weights only, never to BN gains
    or biases."""
    params = [p for m in modules for p in m.parameters()]
    if not weight_decay:
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    decay = [p for p in params if p.dim() > 1]
    rest = [p for p in params if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps)


@contextlib.contextmanager
def frozen(*nets, running_stats=True):
    """Forward passes of `nets` that train nothing of them: their parameters take no gradient,
    so no backward computes one. A compiled network's backward computes the gradient of every
    input that required one when its forward ran, whatever `backward(inputs=...)` later asks for,
    so a G/E loss read through an unfrozen D pays for D's weight gradients and throws them away.
    With `running_stats=False` batch norm also leaves its running averages alone (it still
    normalises with the batch's statistics): for a second pass over a batch whose statistics
    the first pass has recorded."""
    params = [p for net in nets for p in net.parameters()]
    flags = [p.requires_grad for p in params]
    norms = [] if running_stats else [m for net in nets for m in net.modules()
                                      if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for p in params:
        p.requires_grad_(False)
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        for m in norms:
            m.track_running_stats = True


def simultaneous_step(*pairs):
    """Update several players, every gradient taken at the current parameters before any
    optimiser steps (BiGAN's and ALI's schedule).

    `pairs` are (loss, optimizer); each loss is differentiated only w.r.t. its own
    optimizer's parameters. `backward(inputs=...)` rather than `autograd.grad`, because
    DistributedDataParallel averages gradients in hooks that only backward triggers. The
    built-in models give each loss a forward pass of its own (D's loss on detached G and E
    outputs, G's and E's through a `frozen` D), so that each backward computes only the
    gradients its optimiser takes; losses that share one forward pass work too (the graph
    is kept for the later ones), at the cost of D's weight gradients on a compiled D."""
    for _, opt in pairs:
        opt.zero_grad(set_to_none=True)
    for i, (loss, opt) in enumerate(pairs):
        params = [p for g in opt.param_groups for p in g["params"]]
        loss.backward(inputs=params, retain_graph=i < len(pairs) - 1)
    for _, opt in pairs:
        opt.step()
        opt.zero_grad(set_to_none=True)
