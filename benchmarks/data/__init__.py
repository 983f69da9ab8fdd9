"""Datasets: `load_dataset(name, root=None, cache_dir=None, **options) -> Dataset`.

Importing this package registers the built-in datasets: digits, fashion-mnist,
celeba64 and toy2d.
"""
from benchmarks.data.registry import (Dataset, Split, available_datasets, declared_shape, load_dataset,
                                      register_dataset)

# Imported for their @register_dataset side effect.
from benchmarks.data import celeba, digits, fashion_mnist, toy2d  # noqa: E402,F401

__all__ = ["Dataset", "Split", "available_datasets", "declared_shape", "load_dataset", "register_dataset"]
