"""The committed benchmark configs compare models at matched capacity: every row's E and G
within 2x of the median of the other rows' (the rule the report's † marks), so a ranking is not
a ranking of network sizes. PCA is exempt: it is the linear reference, small by definition
(the configs say so). A D more than 2x the median of the other rows' D is one the model
declares larger by design (`capacity_by_design`: ALI's published D)."""

import numpy as np
import pytest

import models
from benchmarks.config import load_config
from benchmarks.training.build import build_model

LINEAR = {"pca"}


@pytest.mark.slow
@pytest.mark.parametrize("config,budget,shape", [("digits", "quick", (1, 16, 16)),
                                                  ("fashion-mnist", "quick", (1, 32, 32)),
                                                  ("celeba64", "full", (3, 64, 64))])
def test_committed_configs_match_capacity(config, budget, shape):
    cfg = load_config(config, budget=budget)
    counts = {}
    for name in cfg.models:
        counts[name] = build_model(cfg, name, shape).param_counts()
    assert LINEAR <= set(counts)  # the reference rows are listed
    for net in ("e", "g"):
        for name in set(counts) - LINEAR:
            others = [c[net] for m, c in counts.items() if m != name and m not in LINEAR]
            median = float(np.median(others))
            assert median / 2 <= counts[name][net] <= 2 * median, (config, name, net, counts[name][net], median)
    with_d = {name: c["d"] for name, c in counts.items() if c["d"]}
    for name, d in with_d.items():
        median = float(np.median([v for m, v in with_d.items() if m != name]))
        if d > 2 * median:
            assert "params_d" in models.get(name).capacity_by_design, (config, name, d, median)


def test_capacity_by_design_is_declared_with_a_reason():
    assert models.BidirectionalGAN.capacity_by_design == {}
    for name in models.available():
        for column, reason in models.get(name).capacity_by_design.items():
            assert column in ("params_g", "params_e", "params_d") and reason and "\n" not in reason, (name, column)
    assert "published D" in models.get("ali").capacity_by_design["params_d"]
