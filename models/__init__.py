"""Bidirectional GAN models: a registry, one base class, shared blocks, one file per model.

Importing this package registers every built-in model. Out-of-tree models call
`models.register(name)` on a `BidirectionalGAN` subclass and are loaded with `--plugin`.
"""
from .base import BidirectionalGAN
from .registry import (HARNESS_ARGS, available, build, draw_setting, get, options, register, renamed_options,
                       search_space, upgraded_options)
from .search import OPTIMISER_SPACE, Choice, Distribution, LogUniform, Uniform

# Built-in models register themselves on import.
from . import ali, autoencoder, bigan, bigan_qp, bigbigan, gan_posthoc_encoder, pca, random_init  # noqa: E402,F401
from . import bigan_wgan  # noqa: E402,F401

__all__ = ["BidirectionalGAN", "HARNESS_ARGS", "available", "build", "get", "options", "register",
           "OPTIMISER_SPACE", "Choice", "Distribution", "LogUniform", "Uniform", "draw_setting", "search_space",
           "renamed_options", "upgraded_options"]
