"""An offline generation-metric backbone for small images: a small CNN trained on the benchmark's
own training labels (digits, Fashion-MNIST: 10 classes, softmax; CelebA: 40 attributes, BCE).

The harness reports fd_<dataset> (Fréchet distance of its penultimate features, a fixed subset
of the real TRAIN images, as many as there are generated samples, vs generated) and
cs_<dataset> (a classifier score from its posteriors). These are NOT FID/IS: the
backbone is ours, trained once per dataset with a fixed seed and recipe, and cached on disk with
its test accuracy so every run and model is scored by the very same network.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cache import read_entry, save_entry
from .frechet import FIDELITY_SEED, inception_score
from .inception import content_hash, short_hash, source_hash

RECIPE_VERSION = "dom1"  # bump when anything below changes: it is part of the cache key
RECIPE = {"optimizer": "Adam", "lr": 1e-3, "batch_size": 128, "seed": 0, "width": 16, "feat_dim": 128}
EPOCHS = {"digits": 40, "fashion-mnist": 4, "celeba64": 3}  # others: DEFAULT_EPOCHS
DEFAULT_EPOCHS = 5
EVAL_BATCH = 1000


class DomainNet(nn.Module):
    """Strided 3x3 convs (BN, ReLU) halving the size down to 4x4, widths 16, 32, 64, ... (<= 256);
    then Linear -> 128 + ReLU (the features) and a linear head. Kept small so Fashion-MNIST trains
    in about 30-40 s on two CPU cores (4 epochs, one thread)."""

    def __init__(self, channels, size, n_out, width=16, feat_dim=128):
        super().__init__()
        layers, c, s = [], channels, size
        while s > 4:
            layers += [nn.Conv2d(c, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c, width, s = width, min(2 * width, 256), (s + 1) // 2
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * s * s, feat_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feat_dim, n_out)

    def forward(self, x):
        f = self.body(x)
        return f, self.head(f)


def _prep(x, device):
    """uint8 -> float in [-1, 1], exactly as the GAN sees the data (Runtime.batch)."""
    if x.dtype != torch.uint8:
        raise ValueError(f"the domain classifier takes uint8 images (quantise generated ones with "
                         f"metrics.to_uint8), got {x.dtype}")
    return x.to(device).float().div_(127.5).sub_(1.0)


def _loss(logits, y, multilabel):
    if multilabel:
        return nn.functional.binary_cross_entropy_with_logits(logits, y.float())
    return nn.functional.cross_entropy(logits, y)


def _accuracy(logits, y, multilabel):
    pred = (logits > 0).long() if multilabel else logits.argmax(1)
    return (pred == y).double().mean().item()  # multi-label: mean over samples and attributes


def _train(dataset, device, progress):
    """Fixed recipe; runs under fork_rng so the harness's global RNG streams are untouched."""
    x, y = dataset.train.x, dataset.train.y
    multilabel = y.dim() == 2
    n_out = y.shape[1] if multilabel else int(y.max()) + 1
    arch = {"channels": x.shape[1], "size": x.shape[-1], "n_out": n_out,
            "width": RECIPE["width"], "feat_dim": RECIPE["feat_dim"]}
    epochs = EPOCHS.get(dataset.name, DEFAULT_EPOCHS)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        # These convs are so small that per-op overhead dominates; with OpenMP threads spinning on
        # a busy 2-core machine a step was measured 25x slower with 2 threads than with 1.
        torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        net = _fit(x, y, arch, epochs, device, dataset.name, progress)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        xt = dataset.test.x
        logits = [net(_prep(xt[i:i + EVAL_BATCH], device))[1].cpu() for i in range(0, len(xt), EVAL_BATCH)]
    acc = _accuracy(torch.cat(logits), dataset.test.y, multilabel) if logits else float("nan")
    state = {k: v.cpu() for k, v in net.state_dict().items()}
    return {"state_dict": state, "arch": arch, "multilabel": multilabel, "epochs": epochs,
            "test_accuracy": acc, "train_seconds": round(seconds, 2), "recipe": dict(RECIPE),
            "recipe_version": RECIPE_VERSION, "torch": str(torch.__version__), "device": str(device)}


def _fit(x, y, arch, epochs, device, name, progress):
    multilabel = y.dim() == 2
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(RECIPE["seed"])
        net = DomainNet(**arch).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
        g = torch.Generator().manual_seed(RECIPE["seed"])
        bs = RECIPE["batch_size"]
        loss = torch.tensor(float("nan"))
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), bs):
                idx = order[i:i + bs]
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                _, logits = net(_prep(x[idx], device))
                loss = _loss(logits, y[idx].to(device), multilabel)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if progress:
                print(f"[domain classifier {name}] epoch {epoch + 1}/{epochs} loss {loss.item():.4f}",
                      file=sys.stderr, flush=True)
    return net.eval()


def domain_key(dataset):
    """Cache key: dataset, split trained on, resolution, source hash, a hash of the exact training
    tensors (CelebA's `limit` keeps the source hash but changes the images), recipe version."""
    src = source_hash(dataset.meta, "train")
    xy = content_hash(dataset.train.x) + content_hash(dataset.train.y)
    parts = ["domain", dataset.name, "train", f"{dataset.train.x.shape[-1]}px",
             f"src{short_hash(src) if src else 'none'}", f"x{short_hash(xy)}", RECIPE_VERSION]
    return "-".join("".join(c if c.isalnum() or c in "._-" else "_" for c in p) for p in parts)


class DomainClassifier:
    """Inputs: uint8 (N, C, H, W) images. Outputs on the CPU, computed in batches of 1000."""

    def __init__(self, obj, device):
        self.net = DomainNet(**obj["arch"])
        self.net.load_state_dict(obj["state_dict"])
        self.net.to(device).eval()
        self.device = device
        self.multilabel = obj["multilabel"]
        self.test_accuracy = obj["test_accuracy"]
        self.train_seconds = obj["train_seconds"]
        self.key = obj["key"]
        self.info = {k: v for k, v in obj.items() if k != "state_dict"}

    @torch.no_grad()
    def _run(self, x):
        outs = [self.net(_prep(x[i:i + EVAL_BATCH], self.device)) for i in range(0, len(x), EVAL_BATCH)]
        return torch.cat([f.cpu() for f, _ in outs]), torch.cat([l.cpu() for _, l in outs])

    def features(self, x):
        """(N, 128) penultimate (post-ReLU) features, float32."""
        return self._run(x)[0]

    def logits(self, x):
        """(N, C) class logits, or (N, K) per-attribute logits when multi-label. float64."""
        return self._run(x)[1].double()

    def probs(self, x):
        """Multi-class: (N, C) softmax posteriors; multi-label: (N, K) per-attribute sigmoids. float64."""
        logits = self.logits(x)
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, 1)

    def predict(self, x):
        """Class index (N,), or the 0/1 attribute matrix (N, K)."""
        logits = self._run(x)[1]
        return (logits > 0).long() if self.multilabel else logits.argmax(1)


def get_domain_classifier(dataset, device, cache_dir, progress=True):
    """The cached classifier for `dataset` (an image Dataset), training it on first use.
    Cached as <cache_dir>/<key>.pt with its test accuracy."""
    if dataset.kind != "image":
        raise ValueError(f"the domain classifier is for image datasets; {dataset.name!r} is {dataset.kind!r}")
    device = torch.device(device)
    key = domain_key(dataset)
    path = Path(cache_dir) / f"{key}.pt"

    def check(obj):  # the entry of this very key, whose network loads: anything else is retrained
        if not isinstance(obj, dict) or obj.get("key") != key:
            raise ValueError(f"not the classifier of key {key}")
        return DomainClassifier(obj, device)

    clf = read_entry(path, check, "domain classifier cache file")
    if clf is None:
        if progress:
            print(f"[domain classifier {dataset.name}] training once (cache {path})", file=sys.stderr, flush=True)
        obj = _train(dataset, device, progress)
        obj["key"] = key
        save_entry(obj, path)
        clf = DomainClassifier(obj, device)
    return clf


def classifier_score(logits, multilabel=False, splits=10):
    """cs_<dataset>: (mean, std) over splits, from the domain classifier's logits. Multi-class:
    the Inception-Score formula (torch-fidelity's, shuffled with its seed) on the domain
    posteriors. Multi-label (CelebA): each attribute k is a binary task with posterior
    (1 - p_k, p_k) = softmax(0, logit_k); the score is the mean over attributes of that binary
    IS (range [1, 2]) per split (the same shuffle and splits for every attribute), then mean and
    std over splits."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    if not multilabel:
        return inception_score(logits, splits=splits)
    n = len(logits)
    logits = logits[torch.from_numpy(np.random.RandomState(FIDELITY_SEED).permutation(n))]
    per_split = np.zeros(splits)
    for k in range(logits.shape[1]):
        pair = torch.stack([torch.zeros_like(logits[:, k]), logits[:, k]], 1)
        for s in range(splits):
            per_split[s] += inception_score(pair[s * n // splits:(s + 1) * n // splits], splits=1)[0]
    per_split /= logits.shape[1]
    return float(per_split.mean()), float(per_split.std())
