"""The worked examples of docs/ are real code: each page's code blocks run here as written."""
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmarks.config import load_config
from benchmarks.core import columns
from benchmarks.core.errors import ConfigError
from benchmarks.data import load_dataset, registry
from benchmarks.reporting.report import metric_columns
from tests.helpers import ROOT


def blocks(page, language):
    """The ```language blocks of docs/<page>, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", (ROOT / "docs" / page).read_text(), re.M | re.S)


@pytest.fixture
def ring12(monkeypatch):
    """The dataset page's loader, registered for this test only."""
    for table in ("_LOADERS", "_SHAPES", "_FROM_IMAGE"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    exec(compile(blocks("adding-a-dataset.md", "python")[0], "docs/adding-a-dataset.md", "exec"), {})


def test_the_dataset_page_registers_a_loader_with_checked_options(ring12):
    data = load_dataset("ring12", n_train=300, n_test=100)
    assert (data.kind, data.shape, len(data.train), len(data.test)) == ("points", (2,), 300, 100)
    assert data.train.x.dtype.is_floating_point and data.train.y.max() < 12 == len(data.meta["centres"])
    again = load_dataset("ring12", n_train=300, n_test=100)  # the data's own seeds: the same points every time
    assert data.train.x.equal(again.train.x) and not data.train.x[:100].equal(data.test.x)
    with pytest.raises(ConfigError, match="radius"):
        load_dataset("ring12", radius=0)
    with pytest.raises(ConfigError, match="Allowed options: radius, n_train, n_test"):
        load_dataset("ring12", raduis=1.0)


def test_the_dataset_pages_config_runs(ring12, tmp_path, cli):
    config = tmp_path / "ring12.yaml"
    config.write_text(blocks("adding-a-dataset.md", "yaml")[0])
    smaller = ["arch.width=16", "dataset_options.n_train=500", "dataset_options.n_test=200", "eval.gen_samples=300",
               "eval.probe_max_train=500", "eval.references=false", "eval.probe_labels=[]", "eval.truncation=[]"]
    code, _, err = cli("run", config, "--budget", "smoke", "--models", "autoencoder", "--out", "r", "--no-figures",
                       *[a for s in smaller for a in ("--set", s)])
    assert code == 0, err
    record = json.loads(Path("r/autoencoder/seed0/metrics.json").read_text())
    assert record["status"] == "ok" and 0 <= record["modes_nearest"] <= 12
    assert json.loads(Path("r/autoencoder/seed0/config.json").read_text())["dataset_meta"]["std"] == 0.04


def test_the_metric_pages_formula_and_what_an_undeclared_column_gets():
    scope = {}
    exec(compile(blocks("adding-a-metric.md", "python")[0], "docs/adding-a-metric.md", "exec"), scope)
    code_prior_fd = scope["code_prior_fd"]
    g = torch.Generator().manual_seed(0)
    prior, codes = torch.randn(20_000, 4, generator=g), torch.randn(20_000, 4, generator=g)
    assert code_prior_fd(codes, prior) == pytest.approx(0.0, abs=0.01)  # distributed as the prior
    assert code_prior_fd(codes + 1, prior) == pytest.approx(4.0, abs=0.05)  # |mean shift|^2 = 4 x 1
    assert code_prior_fd(2 * codes, prior) == pytest.approx(4.0, abs=0.05)  # tr(4I + I - 2 * 2I) = 4
    # The page's third step: a column in neither HIGHER nor LOWER has no direction, so the report
    # leaves it out of the table, and no config's runs are said to write it.
    assert columns.direction("code_prior_fd") is None and columns.direction("latent_cycle_mse") == "↓"
    table = pd.DataFrame({"model": ["m"], "seed": [0], "latent_cycle_mse": [0.1], "code_prior_fd": [0.2]})
    assert metric_columns(table) == ["latent_cycle_mse"]
    assert "code_prior_fd" not in columns.produced(load_config("digits", budget="smoke"))
