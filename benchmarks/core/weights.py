"""The weights of the feature networks the evaluation loads from outside the repository, as one
value: the CLI builds it from --fid-weights, --lpips-weights and --dinov2-weights and passes it
down whole to the evaluation (evaluation/backbones.py) and to perf.
"""
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Weights:
    """The paths named on the command line for InceptionV3 (`fid`: FID, IS, KID), LPIPS (`lpips`: the
    folder of its VGG16 and linear layers) and DINOv2 ViT-L/14 (`dinov2`); None where none was named.
    They stay as given: metrics/ resolves each network's own order (this path, its
    $BIGAN_BENCH_*_WEIGHTS variable, the torch hub cache, a download) and its messages say whether
    a bad path came from the flag or the variable."""
    fid: str | None = None
    lpips: str | None = None
    dinov2: str | None = None

    @classmethod
    def from_args(cls, args):
        """The paths of the command line's --fid-weights, --lpips-weights and --dinov2-weights."""
        return cls(args.fid_weights, args.lpips_weights, args.dinov2_weights)

    def named(self, network):
        """The path the user named for `network` ("fid", "lpips" or "dinov2"): its flag's, else its
        variable's, else None. Named weights are asked for: the CLI checks that they load before
        anything trains, and a CPU runs the network only when they are named (it costs seconds per image)."""
        import metrics  # the variables' names live with the loaders that read them

        variable = {"fid": metrics.inception, "lpips": metrics.lpips, "dinov2": metrics.dinov2}[network].ENV_WEIGHTS
        return getattr(self, network) or os.environ.get(variable)
