"""Metrics as plain functions on tensors, usable outside the harness.

One module per family: frechet (FD, IS, KID formulas on features), inception (the standard
TF-ported InceptionV3 back end and cached reference statistics), domain (an offline per-dataset
classifier back end: fd_<dataset>, cs_<dataset>), prdc (precision, recall, density, coverage),
probe (logistic regression, with every label and with a few per class), knn, modes (2-D mixture
coverage), reconstruction (x and z cycles, label agreement), lpips (the perceptual reconstruction distance)
and dinov2 (DINOv2 features for FD and the k-NN metrics), both with their weights found as
weights.py says; gathered collects per-sample outputs across torchrun processes.
"""
from . import dinov2, lpips
from .dinov2 import dinov2_features, load_dinov2
from .domain import DomainClassifier, classifier_score, get_domain_classifier
from .frechet import feature_stats, frechet_distance, frechet_from_stats, inception_score, kernel_distance
from .inception import inception_features, load_inception, reference_stats, resolve_inception_weights, to_uint8
from .knn import knn_accuracy, nearest_neighbours
from .lpips import load_lpips, lpips_distance
from .modes import mode_coverage
from .prdc import density_coverage, knn_radii, prdc_scores, precision_recall
from .probe import bn_crelu, label_draws, label_efficiency, linear_probe
from .reconstruction import label_agreement, latent_cycle_mse, reconstruction_mse

__all__ = [
    "DomainClassifier", "DrawOrdered", "bn_crelu", "classifier_score", "density_coverage", "dinov2",
    "dinov2_features", "feature_stats", "frechet_distance", "frechet_from_stats", "get_domain_classifier",
    "inception_features", "inception_score", "kernel_distance", "knn_accuracy", "knn_radii", "label_agreement",
    "label_draws", "label_efficiency", "latent_cycle_mse", "linear_probe", "load_dinov2", "load_inception",
    "load_lpips", "lpips", "lpips_distance", "mode_coverage", "nearest_neighbours", "prdc_scores",
    "precision_recall", "reconstruction_mse", "reference_stats", "resolve_inception_weights", "to_uint8",
]


def __getattr__(name):
    """DrawOrdered on first use: it imports torchmetrics (seconds of start-up, torchvision and
    scipy.signal included), which only a multi-process evaluation needs."""
    if name == "DrawOrdered":
        from .gathered import DrawOrdered

        return DrawOrdered
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
