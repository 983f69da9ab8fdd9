"""The validation split and which split a benchmark scores on.

Hyperparameters and checkpoints are chosen on validation data, never on the test split. A
dataset with an official validation partition (CelebA) keeps it; any other gets one carved
from its training split (`train.validation_share`), stratified by class and drawn with a fixed
seed, so every run, model and machine trains on the same remaining examples. With
`eval.split: validation` the run is scored on that split: the Dataset it sees holds the
validation split in place of the test split, so no code downstream can read the test data.
"""
import dataclasses

import torch
from sklearn.model_selection import train_test_split

from benchmarks.core.errors import ConfigError
from benchmarks.data.registry import Dataset, Split

SPLIT_SEED = 0  # the carve is part of the protocol, not of a run: one fixed seed


def carve_validation(data, share):
    """`data` with `share` of its training split moved to a validation split (stratified by class
    where the labels are one class per example), unless it has an official validation split."""
    if data.valid is not None or share == 0:
        return data
    n = len(data.train)
    n_valid = round(share * n)
    if not 0 < n_valid < n:
        raise ConfigError(f"train.validation_share = {share} leaves {n_valid} of the {n} {data.name} training "
                          "examples for validation; use a share between 0 and 1 that keeps both splits "
                          "non-empty, e.g. --set train.validation_share=0.2.")
    y = data.train.y
    stratify = y.numpy() if y.ndim == 1 else None  # multi-label attributes: a plain random carve
    try:
        keep, valid = train_test_split(torch.arange(n).numpy(), test_size=n_valid, random_state=SPLIT_SEED,
                                       stratify=stratify)
    except ValueError:  # a class too small to stratify: the carve stays reproducible, unstratified
        keep, valid = train_test_split(torch.arange(n).numpy(), test_size=n_valid, random_state=SPLIT_SEED)
    keep, valid = torch.as_tensor(keep), torch.as_tensor(valid)
    sizes = {**data.meta.get("split_sizes", {}), "train": len(keep), "validation": len(valid)}
    meta = {**data.meta, "split_sizes": sizes, "validation": {
        "method": "sklearn.model_selection.train_test_split of the training split",
        "share": share, "random_state": SPLIT_SEED, "stratify": stratify is not None,
        "carved_from_train": n}}
    return dataclasses.replace(data, train=_take(data.train, keep), valid=_take(data.train, valid), meta=meta)


def _take(split, idx):
    return Split(split.x[idx].contiguous(), split.y[idx].contiguous())


def scored_on(data, split):
    """The Dataset a run sees: as loaded for `split` = "test"; for "validation", the validation
    split stands in the test split's place and the test split is dropped, so selection cannot
    read it."""
    if split == "test":
        return data
    if split != "validation":
        raise ConfigError(f"eval.split must be test or validation, got {split!r}.")
    if data.valid is None:
        raise ConfigError(f"eval.split = validation, but {data.name} has no validation split: carve one from the "
                          "training split with --set train.validation_share=0.2.")
    meta = {**data.meta, "scored_on": "validation"}
    return Dataset(name=data.name, kind=data.kind, shape=data.shape, train=data.train, test=data.valid, valid=None,
                   label_names=data.label_names, meta=meta)


def prepare(data, train_cfg, eval_cfg):
    """The loaded dataset as a run of this config sees it (its config.Train and config.Eval
    sections): validation carved, scored split chosen."""
    return scored_on(carve_validation(data, train_cfg.validation_share), eval_cfg.split)
