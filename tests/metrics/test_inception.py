"""Generation-metric back ends, offline: the Inception path with a random state dict of the real
architecture, the reference-statistics cache, and the per-dataset domain classifier."""
from dataclasses import replace

import pytest
import torch

import metrics
from benchmarks.data import load_dataset
from metrics import domain, inception
from tests.helpers import no_network


# --- Inception (the random weights: conftest's random_weights) -------------------------------

def test_to_uint8_inverts_the_data_scaling_and_clamps():
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = u.float().div(127.5).sub(1.0)  # exactly Runtime.batch
    assert torch.equal(metrics.to_uint8(x), u)
    assert metrics.to_uint8(torch.tensor([-3.0, 2.0, 0.0])).tolist() == [0, 255, 128]


def test_inception_loads_a_given_file_offline_and_streams_features(random_weights, monkeypatch):
    no_network(monkeypatch)
    net, reason = metrics.load_inception(random_weights)
    assert reason is None and net.weights_sha256 == inception.file_sha256(random_weights)
    assert net.backbone.startswith("incv3compat-w")
    g = torch.Generator().manual_seed(0)
    gray = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8, generator=g)
    rgb = gray[:1].expand(-1, 3, -1, -1).clone()
    # 3 images (Inception at 299 px is slow on a CPU); batch_size=1 also cuts the batches up.
    feats, logits = metrics.inception_features(iter([gray, rgb]), net, "cpu", batch_size=1)
    assert feats.shape == (3, 2048) and feats.dtype == torch.float64 and torch.isfinite(feats).all()
    assert logits.shape == (3, 1008) and logits.dtype == torch.float64 and torch.isfinite(logits).all()
    torch.testing.assert_close(feats[0], feats[2])  # grayscale is the 3-channel repeat
    assert not torch.allclose(feats[0], feats[1])
    with pytest.raises(ValueError, match="uint8"):
        metrics.inception_features([gray.float()], net, "cpu")


def test_weights_resolution_order_and_missing_weights(random_weights, tmp_path, monkeypatch):
    no_network(monkeypatch, socket_error=OSError)
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(inception.ENV_WEIGHTS, raising=False)
    # Nothing anywhere and offline (connect refused): None and a reason, no exception.
    net, reason = metrics.load_inception(None)
    assert net is None and "offline" in reason and "--fid-weights" in reason
    assert metrics.resolve_inception_weights(None, download=False)[0] is None
    # Online but the download fails: the same, with the error in the reason.
    monkeypatch.setattr(inception, "online", lambda: True)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: 1 / 0)
    path, reason = metrics.resolve_inception_weights(None)
    assert path is None and "division by zero" in reason
    # The hub cache file name torch-fidelity's loader would have downloaded.
    (hub / "checkpoints").mkdir(parents=True)
    cached = hub / "checkpoints" / inception.WEIGHTS_FILE
    cached.write_bytes(b"")
    assert metrics.resolve_inception_weights(None) == (cached, None)
    # The environment variable beats the hub cache; an explicit path beats both.
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(random_weights))
    assert metrics.resolve_inception_weights(None) == (random_weights, None)
    other = tmp_path / "other.pth"
    other.write_bytes(b"x")
    assert metrics.resolve_inception_weights(other) == (other, None)
    # A named file that is missing is reported, never replaced by another one.
    path, reason = metrics.resolve_inception_weights(tmp_path / "nope.pth")
    assert path is None and "nope.pth" in reason
    # A corrupt file: None and the reason, not a crash.
    net, reason = metrics.load_inception(other)
    assert net is None and "could not be loaded" in reason


# --- reference statistics cache ----------------------------------------------------------

def test_reference_stats_are_cached_and_keyed(tmp_path):
    ds = load_dataset("digits")
    calls = []

    def feats(x):
        calls.append(len(x))
        return x.flatten(1).float()

    images = ds.test.x[:100]
    a = metrics.reference_stats(images, ds, "test", "toy-backbone", feats, cache_dir=tmp_path, kid_max=30)
    b = metrics.reference_stats(images, ds, "test", "toy-backbone", feats, cache_dir=tmp_path, kid_max=30)
    assert calls == [100] and torch.equal(a["mu"], b["mu"]) and a["kid_feats"].shape == (30, 256)
    assert torch.equal(b["feats"], images.flatten(1).float())  # every real feature, in order, for the k-NN metrics
    mu, sigma = metrics.feature_stats(images.flatten(1).float())
    torch.testing.assert_close(a["sigma"], sigma)
    assert a["key"].startswith("digits-test-nocrop-16px-n100-toy-backbone-srcnone-x")
    assert (tmp_path / f"{a['key']}.pt").is_file()
    moved = replace(ds, meta={**ds.meta, "source_hash": {"test": "abc"}})
    keys = {a["key"], inception.reference_key(moved, "test", images, "toy-backbone"),
            inception.reference_key(ds, "test", ds.test.x[1:101], "toy-backbone"),
            inception.reference_key(ds, "test", images, "other-backbone")}
    assert len(keys) == 4


# --- domain classifier ---------------------------------------------------------------------

def test_domain_classifier_trains_once_caches_and_scores(tmp_path, monkeypatch):
    ds = load_dataset("digits")
    monkeypatch.setitem(domain.EPOCHS, "digits", 15)  # the real recipe runs 40; 15 is plenty here
    clf = metrics.get_domain_classifier(ds, "cpu", cache_dir=tmp_path, progress=False)
    assert clf.test_accuracy > 0.8 and clf.info["epochs"] == 15
    assert (tmp_path / f"{clf.key}.pt").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(domain, "_train", no_training)
    again = metrics.get_domain_classifier(ds, "cpu", cache_dir=tmp_path, progress=False)
    assert again.key == clf.key and again.test_accuracy == clf.test_accuracy
    x = ds.test.x[:50]
    assert again.features(x).shape == (50, 128)
    probs = again.probs(x)
    assert probs.shape == (50, 10) and torch.allclose(probs.sum(1), torch.ones(50, dtype=torch.float64))
    assert torch.equal(again.predict(x), probs.argmax(1))
    assert (again.predict(x) == ds.test.y[:50]).float().mean() > 0.8
    with pytest.raises(ValueError, match="uint8"):
        again.features(x.float())
    # The real test split against itself: FD about 0; the classifier score is well above 1.
    assert metrics.frechet_distance(again.features(ds.test.x), again.features(ds.test.x)) == pytest.approx(0, abs=1e-6)
    assert metrics.classifier_score(again.logits(ds.test.x), splits=5)[0] > 5
    # A changed source (or changed images) is a different classifier.
    moved = replace(ds, meta={**ds.meta, "source_hash": {"train": "abc", "test": "def"}})
    assert domain.domain_key(moved) != clf.key
    fewer = replace(ds, train=replace(ds.train, x=ds.train.x[:-1], y=ds.train.y[:-1]))
    assert domain.domain_key(fewer) != clf.key


def test_multilabel_classifier_score():
    # Two attributes, each present in exactly half the rows and always predicted confidently:
    # the binary IS of each is 2 when a split holds as many positives as negatives.
    sure = torch.tensor([[60.0, -60.0], [-60.0, 60.0]]).repeat(200, 1)
    mean, std = metrics.classifier_score(sure, multilabel=True, splits=2)
    assert 1.98 < mean <= 2.0 and std < 0.02
    unsure = torch.full((20, 3), -0.85)  # the same posterior everywhere: no information, score 1
    assert metrics.classifier_score(unsure, multilabel=True, splits=2) == pytest.approx((1.0, 0.0))
