"""TensorBoard logs of a run, opt-in (`run --tensorboard`, `--log-dir DIR`), to watch a run train.

One event file per training session of a run: the losses as the loss log records them (every
`train.log_every` steps and the last), the tracked generation scores (every `eval.track_every`
steps), and at each tracking point and at the end of training a grid of samples on the run's
fixed evaluation noise (what samples.png shows at the end) and the first test images beside
their reconstructions (recon.png's). Nothing here changes what a run computes: the pictures are
drawn in eval mode, outside the timed training, with every random stream restored, as tracking
is. tensorboard is an optional dependency, imported only when a log is written.
"""
import torch

from ..core.errors import UserError
from ..core.protocol import eval_noise, to_unit

RECON_IMAGES = 32  # the test images shown beside their reconstructions, as in recon.png
GRID_ROW = 8  # pictures per row, as in samples.png and recon.png


def check_available():
    """Before anything trains: --tensorboard needs the tensorboard package."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as e:
        raise UserError(f"--tensorboard writes TensorBoard logs, which needs the tensorboard package ({e}): "
                        "pip install 'bigan-bench[tensorboard]' (or pip install tensorboard), or leave out "
                        "--tensorboard and --log-dir.") from None


class Board:
    """The TensorBoard log of one run in `log_dir`, written by the main process. `real`: the uint8
    test images to reconstruct, None for 2-D points (no pictures). The event file is opened at the
    first write, with TensorBoard's purge step at the step this session starts from: a resumed
    run's curves drop what the interrupted session logged past its last checkpoint."""

    def __init__(self, log_dir, runtime, seed, real, grid_size):
        self.log_dir, self.runtime, self.seed = log_dir, runtime, seed
        self.real, self.grid_size = real, grid_size
        self.start, self.writer, self.drawn_at = 0, None, None

    def begin(self, start):
        """The step this training session starts from (0, or a resumed checkpoint's)."""
        self.start = start

    def _writer(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.log_dir), purge_step=self.start)
        return self.writer

    def scalars(self, group, step, values):
        """`values` ({name: number}) under `group/name` at `step`."""
        writer = self._writer()
        for name, value in values.items():
            writer.add_scalar(f"{group}/{name}", value, step)

    @torch.no_grad()
    def pictures(self, step, model):
        """The sample grid and the reconstructions at `step`, once per step; nothing for points."""
        if self.real is None or step == self.drawn_at:
            return
        self.drawn_at = step
        rng = self.runtime.rng_state()
        model.eval()
        try:
            samples = model.decode(model.sample_latent(self.grid_size, generator=eval_noise(self.seed))).float().cpu()
            x = self.runtime.batch(self.real)
            rec = model.decode(model.encode(x)).float().cpu()
        finally:
            model.train()
            self.runtime.set_rng_state(rng)
        from torchvision.utils import make_grid

        writer = self._writer()
        writer.add_image("images/samples", make_grid(to_unit(samples).clamp(0, 1), nrow=GRID_ROW), step)
        pairs = torch.stack([x.float().cpu(), rec], 1).flatten(0, 1)  # each test image beside its reconstruction
        writer.add_image("images/reconstructions", make_grid(to_unit(pairs).clamp(0, 1), nrow=GRID_ROW), step)

    def close(self):
        if self.writer is not None:
            self.writer.close()
