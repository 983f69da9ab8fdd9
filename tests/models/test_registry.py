from pathlib import Path

import pytest
import torch

import models
from models.errors import ModelConfigError
from models.base import BidirectionalGAN
from tests.helpers import ROOT


def test_builtins_are_registered():
    assert "bigan" in models.available()
    assert models.available() == sorted(models.available())


def test_no_two_classes_in_models_share_a_name():
    """A network's class says which method it belongs to (BiGANEncoder, ALIEncoder, BiGANQPEncoder),
    so a name found in a traceback, a docstring or a checkpoint's module list means one class."""
    import ast

    where = {}
    for path in sorted((Path(models.__file__).parent).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(path.name)
    assert {name: files for name, files in where.items() if len(files) > 1} == {}


def test_unknown_name_lists_close_matches():
    with pytest.raises(ModelConfigError, match="Did you mean bigan"):
        models.get("bigann")


class _Minimal(BidirectionalGAN):
    def __init__(self, *, data_shape, z_dim, width, arch, total_steps):
        super().__init__(data_shape=data_shape, z_dim=z_dim)

    def train_step(self, batch, step):
        return {}


def test_register_rejects_duplicates_and_bad_names():
    @models.register("test-dup")
    class A(_Minimal):
        pass

    with pytest.raises(ValueError, match="already registered"):
        @models.register("test-dup")
        class B(_Minimal):
            pass

    for bad in ("", "  ", " x"):
        with pytest.raises(ValueError):
            models.register(bad)


@pytest.mark.parametrize("bad", ["team/ae", "..", ".hidden", "a\\b", "ae ", "é", 5])
def test_model_names_must_be_folder_names(bad):
    """A model's name is its results folder DIR/<name>/seed<k>: no separators, no hidden folder."""
    with pytest.raises(ValueError, match="cannot be a results folder name"):
        models.register(bad)


def test_names_differing_only_in_case_are_refused():
    """On a case-insensitive filesystem, BiGAN and bigan would write one folder."""
    with pytest.raises(ValueError, match="differs from the registered 'bigan' only in case"):
        @models.register("BiGAN")
        class Shouting(_Minimal):
            pass


def test_build_rejects_unknown_option():
    with pytest.raises(ModelConfigError, match="no option 'lrr'"):
        models.build("bigan", data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10, lrr=1.0)


def test_options_report_defaults():
    opts = models.options("bigan")
    assert opts["lr"] == 2e-4 and opts["weight_decay"] == 2.5e-5
    assert opts["z_dim"] is None  # supplied by the harness


@pytest.mark.slow
def test_plugin_model_runs_through_the_harness(tmp_path, cli):
    from tests.helpers import write_plugin

    plugin = write_plugin(tmp_path / "my_model.py", '''
@models.register("plugin-gan")
class PluginGAN(BiGAN):
    """A user's model living outside the project."""
''')
    code, out, _ = cli("list-models", "--plugin", plugin)
    assert code == 0 and "plugin-gan" in out
    code, out, err = cli("run", "digits", "--budget", "smoke", "--no-figures", "--models", "plugin-gan",
                         "--plugin", plugin, "--out", tmp_path / "res")
    assert code == 0, err
    assert (tmp_path / "res" / "plugin-gan" / "seed0" / "metrics.json").exists()
    assert "plugin-gan" in (tmp_path / "res" / "summary.csv").read_text()


def test_plugin_by_module_name(tmp_path, cli, monkeypatch):
    from tests.helpers import write_plugin

    write_plugin(tmp_path / "pkg_plugin_mod.py", '@models.register("module-gan")\nclass M(BiGAN):\n    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = cli("list-models", "--plugin", "pkg_plugin_mod")
    assert code == 0 and "module-gan" in out


def test_state_dict_round_trip():
    kw = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10)
    torch.manual_seed(0)
    a = models.build("bigan", **kw)
    a.train_step(torch.rand(16, 1, 16, 16) * 2 - 1, 0)
    torch.manual_seed(1)
    b = models.build("bigan", **kw)
    b.load_state_dict(a.state_dict())
    b.load_optimizer_state(a.optimizer_state())
    a.eval(), b.eval()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    z = a.sample_latent(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.encode(x), b.encode(x))
    assert torch.equal(a.decode(z), b.decode(z))
    assert a.optimizers["d"].state_dict()["state"].keys() == b.optimizers["d"].state_dict()["state"].keys()


def test_builtin_file_passed_as_plugin_is_not_a_clash(cli):
    from pathlib import Path

    import models.bigan_qp

    code, out, err = cli("list-models", "--plugin", Path(models.bigan_qp.__file__))
    assert code == 0, err
    assert models.get("bigan-qp-simple") is models.bigan_qp.BiGANQPSimple  # the first registration stays


@pytest.mark.slow
def test_models_and_metrics_do_not_import_the_harness():
    """models/ and metrics/ are usable without benchmarks/: a fresh interpreter imports both
    and no benchmarks module is loaded."""
    import subprocess
    import sys

    code = "import sys, models, metrics; print(sorted(m for m in sys.modules if m.split('.')[0] == 'benchmarks'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(ROOT))
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("change,message", [
    (dict(base=object), "must subclass models.base.BidirectionalGAN"),
    (dict(train_step=None), "must define train_step"),
    (dict(prior="laplace"), "prior must be 'normal' or 'uniform'"),
    (dict(batches_per_step=0), "batches_per_step must be an integer >= 1"),
    (dict(d_steps_per_step=1.5), "d_steps_per_step must be an integer >= 0"),
    (dict(networks=()), "networks must name at least one"),
    (dict(networks="GED"), "networks must be a tuple of attribute names"),
    (dict(init="def __init__(self, *, data_shape, z_dim, width):\n    pass"), "it lacks arch, total_steps"),
])
def test_registration_checks_the_contract(change, message):
    """A broken model fails when it registers (at plugin import), with the fix named."""
    import textwrap

    base = change.pop("base", _Minimal)
    body = {k: v for k, v in change.items() if k not in ("init", "train_step")}
    if "train_step" in change:
        base = BidirectionalGAN  # the base class's train_step is not an implementation
        body["__init__"] = _Minimal.__init__
    if "init" in change:
        ns = {}
        exec(textwrap.dedent(change["init"]), ns)
        body["__init__"] = ns["__init__"]
    cls = type("Broken", (base,), body)
    with pytest.raises(ModelConfigError, match=message):
        models.register("test-broken")(cls)
    assert "test-broken" not in models.available()


def test_built_model_must_have_its_declared_networks():
    @models.register("test-no-d")
    class NoD(_Minimal):
        networks = ("G", "E", "D")

        def __init__(self, **kw):
            super().__init__(**kw)
            self.G, self.E = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    with pytest.raises(ModelConfigError, match="declares network 'D'"):
        models.build("test-no-d", data_shape=(2,), z_dim=2, width=8, arch="shared", total_steps=1)


def test_harness_arguments_are_declared_once():
    """run passes exactly HARNESS_ARGS (plus the config's model_options) to every model."""
    from benchmarks.config import load_config
    from benchmarks.training.build import model_args

    cfg = load_config("digits", budget="smoke")
    assert set(model_args(cfg, "bigan", (1, 16, 16))) - set(models.options("bigan")) == set()
    assert set(models.HARNESS_ARGS) <= set(model_args(cfg, "bigan", (1, 16, 16)))


def test_the_readme_skeleton_passes_the_contract_and_builds(monkeypatch):
    """The README's model skeleton is real code: as it stands (train_step left to the reader) it
    passes registration's contract checks and builds with the harness's arguments."""
    import models
    from models import registry

    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Adding a model", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setattr(models, "register", lambda name: (lambda cls: cls))  # not into the shared registry
    namespace = {}
    exec(block, namespace)
    cls = namespace["MyBiGAN"]
    registry.check_contract(cls, "my-bigan")
    model = cls(data_shape=(1, 16, 16), z_dim=4, width=8, arch="shared", total_steps=1)
    assert set(model.optimizers) == {"d", "ge"} and model.encode(torch.zeros(2, 1, 16, 16)).shape == (2, 4)


@pytest.mark.slow
def test_the_example_plugin_lists_trains_and_scores(tmp_path, cli):
    import json
    import shutil

    plugin = shutil.copy(ROOT / "examples" / "wgan_gp_bigan.py", tmp_path / "copied.py")
    code, out, _ = cli("list-models", "--plugin", plugin)
    assert code == 0 and "wgan-gp-bigan" in out and "Wasserstein critic" in out
    code, out, err = cli("run", "digits", "--budget", "smoke", "--models", "wgan-gp-bigan", "--plugin", plugin,
                         "--out", tmp_path / "res", "--set", "eval.references=false", "--no-figures")
    assert code == 0, err
    row = json.loads((tmp_path / "res" / "wgan-gp-bigan" / "seed0" / "metrics.json").read_text())
    assert row["status"] == "ok" and row["d_steps"] == 60 and row["flops_per_step"] > 0  # 2 critic steps x 30
    assert 0 < row["recon_mse"] < 1 and 0.1 < row["probe_acc"] <= 1 and row["fd_digits"] > 0


# --- options renamed since configs and runs were written ------------------------------------

BIGAN = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10)


def test_a_renamed_option_builds_as_its_new_name_with_a_warning():
    """BiGAN's Adam beta1 was the option `beta1`: an old config's value lands in adam_beta1."""
    with pytest.warns(FutureWarning, match=r"model_options.bigan.beta1 is now spelt adam_beta1"):
        old = models.build("bigan", **BIGAN, beta1=0.3)
    new = models.build("bigan", **BIGAN, adam_beta1=0.3)
    assert old.optimizers["d"].defaults["betas"] == new.optimizers["d"].defaults["betas"] == (0.3, 0.999)
    assert models.upgraded_options("bigan", {"beta1": 0.3, "lr": 1e-3}, warn=False) == {"adam_beta1": 0.3, "lr": 1e-3}
    assert models.upgraded_options("no-such-model", {"beta1": 0.3}) == {"beta1": 0.3}  # its own check names it
    assert models.renamed_options("bigan-qp-simple") == {"beta1": "z_cycle_weight", "beta2": "x_cycle_weight"}


def test_both_spellings_of_one_option_are_refused():
    message = r"model_options.bigan sets both beta1 and adam_beta1, the old and the new name of one option; keep " \
              r"adam_beta1 alone"
    with pytest.raises(ModelConfigError, match=message):
        models.build("bigan", **BIGAN, beta1=0.3, adam_beta1=0.3)
    with pytest.raises(ModelConfigError, match=message):
        models.upgraded_options("bigan", {"beta1": 0.3, "adam_beta1": 0.5})
    with pytest.raises(ModelConfigError, match="arms.quick.options sets both beta1 and adam_beta1"):
        models.registry.check_options(models.get("bigan"), "bigan", {"beta1": 0.3, "adam_beta1": 0.5},
                                      where="arms.quick.options")
    # checked under the new name: its type and range
    with pytest.raises(ModelConfigError, match=r"model_options.bigan.adam_beta1 must be in \[0, 1\), got 1.5"):
        models.registry.check_options(models.get("bigan"), "bigan", {"beta1": 1.5})


@pytest.mark.parametrize("renames,message", [
    ({"lr": "adam_beta1"}, "renamed_options reads 'lr' as 'adam_beta1', but 'lr' is still taken"),
    ({"z_dim": "lr"}, "renamed_options reads 'z_dim' as 'lr', but 'z_dim' is still taken"),
    ({"learning_rate": "lrate"}, "renames 'learning_rate' to 'lrate', which is not an option of its __init__"),
    ({"rate": "step_size", "step_size": "lr"}, "renames 'rate' to 'step_size' and 'step_size' again to 'lr'"),
    ([("rate", "lr")], "renamed_options must be a dict"),
])
def test_registration_checks_the_renamed_options(renames, message):
    class Renaming(_Minimal):
        def __init__(self, *, data_shape, z_dim, width, arch, total_steps, lr=1e-4, adam_beta1=0.5):
            super().__init__(data_shape=data_shape, z_dim=z_dim, width=width, arch=arch, total_steps=total_steps)

    Renaming.renamed_options = renames
    with pytest.raises(ModelConfigError, match=message):
        models.registry.check_contract(Renaming, "renaming")
    Renaming.renamed_options = {"rate": "lr", "beta1": "adam_beta1"}
    models.registry.check_contract(Renaming, "renaming")
    Renaming.search_space = {"rate": models.LogUniform(1e-5, 1e-2)}
    with pytest.raises(ModelConfigError, match="search_space tunes 'rate', the old name of 'lr'; tune 'lr'"):
        models.registry.check_contract(Renaming, "renaming")
