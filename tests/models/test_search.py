"""Search spaces (models/search.py's distributions, looked up and drawn by models/registry.py):
each model's space, the reproducible draw of trial k, and registration's check of a declared space."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import models
from models import registry
from models.base import ADAM, UNIT, BidirectionalGAN, Range
from models.errors import ModelConfigError
from models.registry import draw_setting, search_space, space_of
from models.search import OPTIMISER_SPACE, Choice, LogUniform, Uniform
from tests.helpers import ROOT

# The built-in models only: other tests register plugin models in the same session.
BUILTIN = [n for n in models.available() if models.get(n).__module__.startswith("models.")]
TUNED = [n for n in BUILTIN if search_space(n)]
BUILD = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10, arch="shared")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread is faster


def test_builtins_cover_the_suite():
    assert set(BUILTIN) >= {"bigan", "ali", "bigan-qp-simple", "bigbigan", "autoencoder", "gan-posthoc-encoder",
                            "pca", "random-init", "bigan-wgan", "bigan-wgan-nogp"}
    assert set(BUILTIN) - set(TUNED) == {"pca", "random-init"}


# --- the draw ---------------------------------------------------------------------------

def test_trial_zero_is_the_defaults():
    for name in BUILTIN:
        assert draw_setting(name, 0) == {}


@pytest.mark.slow
def test_the_same_trial_draws_the_same_setting_here_and_in_a_fresh_process():
    """Seeded from the name by sha256, not Python's hash(), which a fresh interpreter salts anew."""
    here = {name: [draw_setting(name, k) for k in range(6)] for name in BUILTIN}
    assert here == {name: [draw_setting(name, k) for k in range(6)] for name in BUILTIN}
    code = ("import json, models; print(json.dumps({n: [models.draw_setting(n, k) for k in range(6)] "
            f"for n in {BUILTIN!r}}}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == here
    for setting in here["bigan"][1:]:
        assert list(setting) == sorted(setting)  # drawn in sorted option order
        assert all(type(v) is float for v in setting.values())  # plain floats, not numpy scalars


def test_distinct_trials_and_models_draw_distinct_settings():
    for name in TUNED:
        settings = [draw_setting(name, k) for k in range(1, 21)]
        assert len({json.dumps(s) for s in settings}) == 20, name
        assert set(settings[0]) == set(search_space(name))
    # The four BiGAN-QP variants share a space but not their draws: the seed is the name's.
    variants = [n for n in BUILTIN if n.startswith("bigan-qp-")]
    assert len(variants) == 4 and len({json.dumps(draw_setting(n, 1)) for n in variants}) == 4


def test_draws_are_rounded_to_four_significant_digits():
    for name in TUNED:
        for k in range(1, 11):
            for v in draw_setting(name, k).values():
                assert float(f"{v:.4g}") == v, (name, k, v)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_a_bad_trial_is_refused(bad):
    with pytest.raises(ValueError, match="trial must be an integer >= 0"):
        draw_setting("bigan", bad)


@pytest.mark.slow
def test_every_draw_passes_the_option_checks_and_builds():
    for name in BUILTIN:
        cls = models.get(name)
        for k in range(1, 51):
            setting = draw_setting(name, k)
            registry.check_options(cls, name, setting)
            torch.manual_seed(0)
            model = models.build(name, **BUILD, **setting)
            assert model.param_counts()["g"] > 0


def test_the_spaces_reach_the_optimisers():
    """A drawn setting is what the optimisers run with (BigBiGAN's E at lr_g x lr_e_mult)."""
    s = draw_setting("bigan", 3)
    m = models.build("bigan", **BUILD, **s)
    group = m.optimizers["d"].param_groups[0]
    assert (group["lr"], group["betas"][0], group["weight_decay"]) == (s["lr"], s["adam_beta1"], s["weight_decay"])
    s = draw_setting("bigbigan", 3)
    m = models.build("bigbigan", **BUILD, size="tiny", **s)
    lrs = {k: o.param_groups[0]["lr"] for k, o in m.optimizers.items()}
    assert lrs["d"] == s["lr_d"] and lrs["g"] == s["lr_g"] and lrs["e"] == pytest.approx(s["lr_g"] * s["lr_e_mult"])


# --- the distributions --------------------------------------------------------------------

def test_log_uniform_draws_are_in_range_and_spread_in_the_exponent():
    d = LogUniform(1e-5, 1e-2)
    rng = np.random.default_rng(0)
    draws = np.array([d.draw(rng) for _ in range(2000)])
    assert draws.min() >= 1e-5 and draws.max() <= 1e-2
    # Median at the geometric mean 10^-3.5 (a uniform draw's would be near 5e-3), and each
    # decade drawn about a third of the time.
    assert abs(np.log10(np.median(draws)) + 3.5) < 0.1
    per_decade = np.histogram(np.log10(draws), bins=[-5, -4, -3, -2])[0] / len(draws)
    assert np.all(np.abs(per_decade - 1 / 3) < 0.05), per_decade


def test_uniform_draws_stay_below_hi_after_rounding():
    """U[0, 1) serves UNIT options ([0, 1)): a draw that would round up to 1.0 rounds down."""

    class Fixed:  # a generator whose every uniform draw is `value`
        def __init__(self, value):
            self.value = value

        def uniform(self, lo, hi):
            return self.value

    d = Uniform(0.0, 1.0)
    assert d.draw(Fixed(0.99996)) == 0.9999 and d.draw(Fixed(0.123456)) == 0.1235 and d.draw(Fixed(0.0)) == 0.0
    assert d.extremes() == (0.0, 0.9999) and UNIT.ok(d.extremes()[1])
    assert Uniform(0.0, 0.5).draw(Fixed(0.499996)) == 0.4999
    assert Uniform(0.12344, 0.2).draw(Fixed(0.12344)) == 0.12344  # rounding down would leave the range
    big = LogUniform(0.1, 10.0)  # closed: rounded values are clipped into [lo, hi]
    assert big.draw(Fixed(math.log10(9.99996))) == 10.0 and big.draw(Fixed(-1.0)) == 0.1
    rng = np.random.default_rng(1)
    assert all(0 <= d.draw(rng) < 1 for _ in range(2000))


def test_choice_draws_each_value():
    d = Choice(["a", "b", "c"])
    rng = np.random.default_rng(0)
    assert {d.draw(rng) for _ in range(100)} == {"a", "b", "c"}
    assert d.extremes() is None and Choice([1, 4]).extremes() == (1, 4)


def test_texts():
    assert LogUniform(1e-5, 1e-2).text == "10^U[-5, -2]"
    assert Uniform(0.0, 1.0).text == "U[0, 1)"
    assert Choice(["a", "b"]).text == "one of a, b"


@pytest.mark.parametrize("make,message", [
    (lambda: Uniform(1.0, 0.0), "lo < hi"),
    (lambda: Uniform(0.5, 0.5), "lo < hi"),
    (lambda: Uniform(float("nan"), 1.0), "finite number"),
    (lambda: Uniform("0", 1.0), "finite number"),
    (lambda: LogUniform(0.0, 1.0), "lo > 0"),
    (lambda: LogUniform(-1.0, 1.0), "lo > 0"),
    (lambda: LogUniform(1.0, 0.1), "lo < hi"),
    (lambda: Choice([]), "non-empty"),
    (lambda: Choice("ab"), "non-empty list or tuple"),
])
def test_bad_distributions_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# --- the spaces ---------------------------------------------------------------------------

def test_each_models_space():
    lucic = {"lr": "10^U[-5, -2]", "adam_beta1": "U[0, 1)"}

    def texts(name):
        return {k: d.text for k, d in search_space(name).items()}

    assert {k: d.text for k, d in OPTIMISER_SPACE.items()} == lucic
    assert texts("bigan") == {**lucic, "weight_decay": "10^U[-6, -3]"}
    assert texts("ali") == {**lucic, "dropout": "U[0, 0.5)"}
    for name in ("bigan-qp-simple", "bigan-qp-simple-nosg", "bigan-qp-full", "bigan-qp-full-nosg"):
        assert texts(name) == {**lucic, "lam": "10^U[0, 2]", "z_cycle_weight": "10^U[-1, 1]",
                               "x_cycle_weight": "10^U[-1, 1]"}
    assert texts("bigbigan") == {"lr_d": lucic["lr"], "lr_g": lucic["lr"], "adam_beta1": lucic["adam_beta1"],
                                 "lr_e_mult": "10^U[0, 1.48]"}
    # The WGAN BiGANs: the shared space only; gp_weight is the ablated design choice, never tuned.
    assert texts("bigan-wgan") == texts("bigan-wgan-nogp") == lucic
    # No declaration: the shared space, restricted to the options the model takes.
    assert texts("autoencoder") == texts("gan-posthoc-encoder") == lucic
    assert search_space("pca") == search_space("random-init") == {}


def test_the_docs_table_lists_each_models_space():
    text = (ROOT / "docs" / "models.md").read_text().split("## Search spaces", 1)[1].split("\n## ", 1)[0]
    rows = dict(line.strip("|").split("|")[:2] for line in text.splitlines() if line.startswith("| `"))
    rows = {k.strip().strip("`"): v.strip() for k, v in rows.items()}
    for name in BUILTIN:
        listed = rows[next(k for k in rows if k == name or (k.endswith("*") and name.startswith(k[:-1])))]
        space = search_space(name)
        expected = "; ".join(f"`{k}` {d.text}" for k, d in sorted(space.items())) or \
            "nothing (its one trial is its defaults)"
        assert listed == expected, name


# --- registration's check -------------------------------------------------------------------

class _Tunable(BidirectionalGAN):
    option_ranges = {**ADAM, "dropout": UNIT}

    def __init__(self, *, data_shape, z_dim, width, arch, total_steps, lr=1e-4, adam_beta1=0.5, adam_beta2=0.999,
                 init_std=0.02, dropout=0.2):
        super().__init__(data_shape=data_shape, z_dim=z_dim)

    def train_step(self, batch, step):
        return {}


def _with(space, base=_Tunable, **attrs):
    return type("Candidate", (base,), {"search_space": space, **attrs})


def test_good_spaces_pass_the_contract():
    for space in ({}, dict(OPTIMISER_SPACE), {"dropout": Uniform(0.0, 1.0), "init_std": LogUniform(1e-3, 1e-1)},
                  {"dropout": Choice([0.0, 0.2, 0.5])}):
        registry.check_contract(_with(space), "candidate")
    registry.check_contract(_Tunable, "candidate")  # no declaration: the shared space fits ADAM's ranges
    child = type("Child", (_with({"dropout": Uniform(0.0, 0.5)}),), {})
    assert space_of(child) == {"dropout": child.search_space["dropout"]}  # a base's declaration is inherited


@pytest.mark.parametrize("space,message", [
    ({"lrr": LogUniform(1e-5, 1e-2)}, r"tunes 'lrr', which is not an option of its __init__; tune only the "
                                      r"model's options: adam_beta1, adam_beta2, dropout, init_std, lr"),
    ({"z_dim": Choice([4, 8])}, "tunes 'z_dim', which is set by the harness"),
    ({"lr": (1e-5, 1e-2)}, r"search_space\['lr'\] must be a distribution from models.search"),
    ({"lr": 1e-4}, r"search_space\['lr'\] must be a distribution"),
    ({"adam_beta1": Uniform(0.0, 1.5)}, r"search_space\['adam_beta1'\] = U\[0, 1.5\) can draw 1.499, outside the "
                                        r"option's range \(adam_beta1 in \[0, 1\)\); narrow the distribution"),
    ({"lr": Uniform(-1.0, 1.0)}, r"can draw -1.0, outside the option's range \(lr > 0\)"),
    ({"dropout": Choice([0.1, 1.0])}, r"can draw 1.0, outside the option's range"),
    ([("lr", LogUniform(1e-5, 1e-2))], "search_space must be a dict"),
])
def test_the_contract_refuses_a_bad_space(space, message):
    with pytest.raises(ModelConfigError, match=message):
        registry.check_contract(_with(space), "candidate")


def test_the_contract_refuses_a_default_space_outside_the_models_ranges():
    """A model declaring no space gets the shared one; where its own ranges are narrower, it is
    told to declare one."""
    narrow = {**ADAM, "lr": Range("< 1e-3", lambda v: 0 < v < 1e-3)}
    cls = type("Narrow", (_Tunable,), {"option_ranges": narrow})
    with pytest.raises(ModelConfigError, match=r"search_space\['lr'\] = 10\^U\[-5, -2\] can draw 0.01, outside "
                                               r"the option's range \(lr < 1e-3\); declare a search_space"):
        registry.check_contract(cls, "narrow")


def test_registering_a_bad_space_fails_at_import():
    with pytest.raises(ModelConfigError, match="not an option of its __init__"):
        models.register("test-search-bad")(_with({"learning_rate": LogUniform(1e-5, 1e-2)}))
    assert "test-search-bad" not in models.available()


def test_a_model_taking_kwargs_may_tune_any_option_name():
    class Open(_Tunable):
        def __init__(self, **kwargs):
            super().__init__(**{k: kwargs[k] for k in ("data_shape", "z_dim", "width", "arch", "total_steps")})

    registry.check_contract(_with({"momentum": Uniform(0.0, 1.0)}, base=Open), "open")
    assert space_of(Open) == {}  # the shared space keeps only options __init__ names
