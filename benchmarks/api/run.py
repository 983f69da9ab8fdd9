"""`load_run(RUN_DIR)`: a finished run as a Python object (Run), its model rebuilt the way `run`
built it and its checkpoint loaded strictly (records.py checks what it reads)."""
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

import models

from ..config import backfilled
from ..core.errors import UserError
from ..core.runtime import Runtime
from .records import check_model_source, checkpoint_state, finished_metrics, run_record


def load_run(run_dir, device="auto", plugins=()):
    """The finished run in `run_dir` (DIR/<model>/seed<k>, as `run` writes it) as a Run: its
    model in eval mode on `device` (auto, cpu, cuda, cuda:N), its metrics and provenance.
    `plugins`: the --plugin files or modules a plugin model was trained with."""
    path = Path(run_dir)
    record = run_record(path)
    cfg = backfilled(record["config"])
    metrics = finished_metrics(path, record)
    base = cfg.get("base_model", cfg.get("model"))
    check_model_source(path, base, cfg, record, plugins)
    steps = cfg["train"]["steps"]
    if isinstance(cfg.get("arm_steps"), int):  # an arm trained for fewer updates than the budget
        steps = min(cfg["arm_steps"], steps)
    runtime = Runtime(device, fast=False)  # IEEE fp32, as every run is evaluated
    model = _build(base, cfg, runtime)
    state = checkpoint_state(path, steps, record)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except (RuntimeError, KeyError, TypeError) as e:
            raise UserError(f"The checkpoint {path / 'checkpoint.pt'} does not fit model {base!r} as its recorded "
                            f"config builds it now ({str(e).splitlines()[0][:300]}): the model's code changed since "
                            "the run was trained. Check out the run's commit (provenance: versions.git_commit) or "
                            "retrain it.") from None
    model.to(runtime.device).eval()
    provenance = {k: record[k] for k in ("command", "started", "versions", "runtime", "resumed", "dataset_meta")
                  if k in record}
    provenance["checkpoint_step"] = state["step"] if state is not None else 0
    return Run(path=path, model=model, name=cfg["model"], base_model=base, seed=cfg["seed"], config=cfg,
               metrics=metrics, provenance=provenance, runtime=runtime)


def _build(base, cfg, runtime):
    """The model as `run` built it: the recorded constructor arguments through the registry, under
    the run's seed (so a model that was never trained, 0 steps, gets its exact initial weights),
    leaving the caller's random streams as they were."""
    rng = runtime.rng_state()
    try:
        runtime.seed_everything(cfg["seed"])
        args = cfg["model_args"]
        return models.build(base, **{**args, "data_shape": tuple(args["data_shape"])})
    finally:
        runtime.set_rng_state(rng)


@dataclass
class Run:
    """A finished run, loaded back (`load_run`). `model` is the trained BidirectionalGAN in eval
    mode on `device`; `encode`, `decode`, `sample_latent` and `sample` call it without gradients,
    in batches of the run's eval.eval_batch_size, and return tensors on `device`. `config` is the
    run's recorded config (its model, model_args and seed included), `metrics` its metrics.json,
    `provenance` how it was made: command, start time, versions (the git commit), runtime,
    later resumes, the dataset's protocol facts and the checkpoint's step."""
    path: Path
    model: torch.nn.Module
    name: str  # the run's row: the model, or the arm (a setting of a model) it ran
    base_model: str  # the registered model it built
    seed: int
    config: dict
    metrics: dict
    provenance: dict
    runtime: Runtime = field(repr=False)

    @property
    def device(self):
        return self.runtime.device

    @property
    def data_shape(self):
        return tuple(self.model.data_shape)

    def _batched(self, fn, x):
        bs = self.config["eval"]["eval_batch_size"]
        with torch.no_grad():
            return torch.cat([fn(self.runtime.batch(x[i:i + bs])).float() for i in range(0, len(x), bs)])

    def encode(self, x):
        """Codes E(x) of real data x: uint8 images (N, C, H, W) as the datasets store them, which
        are mapped to [-1, 1] as training saw them, or floats already in [-1, 1] (points as they are)."""
        x = torch.as_tensor(x)
        if tuple(x.shape[1:]) != self.data_shape:
            raise UserError(f"encode takes a batch of shape (N, {', '.join(map(str, self.data_shape))}), the run's "
                            f"data; got {tuple(x.shape)}.")
        return self._batched(self.model.encode, x)

    def decode(self, z):
        """G(z) for codes z (N, z_dim): images in [-1, 1] (figures.to_unit maps them to [0, 1])."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.dim() != 2 or z.shape[1] != self.model.z_dim:
            raise UserError(f"decode takes codes of shape (N, {self.model.z_dim}); got {tuple(z.shape)}.")
        return self._batched(self.model.decode, z)

    def sample_latent(self, n, generator=None):
        """n draws from the model's prior; with a CPU `generator`, the same on every device."""
        return self.model.sample_latent(n, generator=generator)

    def sample(self, n=64, seed=None, truncation=None):
        """n generated samples, G(z), in [-1, 1]. The noise is the run's fixed evaluation noise
        unless `seed` is given, so sample(64) is what samples.png shows; `truncation` t redraws every
        coordinate of z outside [-t, t] (BigGAN's truncation trick; Gaussian priors, as the truncation
        sweep)."""
        from ..core.protocol import eval_noise
        from ..evaluation.evaluate import truncated_latent

        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UserError(f"The number of samples must be a positive integer, got {n!r}.")
        if truncation is not None:
            if not (isinstance(truncation, (int, float)) and math.isfinite(truncation) and truncation > 0):
                raise UserError(f"The truncation threshold must be a positive number, got {truncation!r}.")
            if self.model.prior != "normal":
                raise UserError(f"Model {self.base_model!r} draws z from a uniform prior on [-1, 1], which has no "
                                "tails to truncate; truncation applies to Gaussian priors. Leave it out.")
        g = eval_noise(self.seed) if seed is None else torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            z = truncated_latent(self.model, n, truncation, g)
        return self.decode(z)

    def data(self, data_root=None):
        """The run's dataset as the run saw it (benchmarks.data.Dataset): its validation split
        carved as the run's config carved it, and `test` the split the run was scored on.
        `data_root`: the dataset's folder where it needs one (else its environment variable)."""
        from ..data import load_dataset, splits

        cfg = self.config
        data = load_dataset(cfg["dataset"], root=data_root, **(cfg.get("dataset_options") or {}))
        return splits.scored_on(splits.carve_validation(data, cfg["train"]["validation_share"]),
                                cfg["eval"]["split"])

    def __repr__(self):
        return (f"Run({str(self.path)!r}: {self.name} seed {self.seed}, {self.config.get('dataset')} "
                f"{self.config.get('budget')}, on {self.device})")
