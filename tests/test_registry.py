from pathlib import Path

import pytest
import torch

import models
from models.errors import ModelConfigError
from models.base import BidirectionalGAN


def test_builtins_are_registered():
    assert "bigan" in models.available()
    assert models.available() == sorted(models.available())


def test_unknown_name_lists_close_matches():
    with pytest.raises(ModelConfigError, match="Did you mean bigan"):
        models.get("bigann")


def test_register_rejects_duplicates_and_bad_names():
    @models.register("test-dup")
    class A(BidirectionalGAN):
        pass

    with pytest.raises(ValueError, match="already registered"):
        @models.register("test-dup")
        class B(BidirectionalGAN):
            pass

    for bad in ("", "  ", " x"):
        with pytest.raises(ValueError):
            models.register(bad)


def test_build_rejects_unknown_option():
    with pytest.raises(ModelConfigError, match="no option 'lrr'"):
        models.build("bigan", data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10, lrr=1.0)


def test_options_report_defaults():
    opts = models.options("bigan")
    assert opts["lr"] == 2e-4 and opts["weight_decay"] == 2.5e-5
    assert opts["z_dim"] is None  # supplied by the harness


def test_plugin_model_runs_through_the_harness(tmp_path, cli):
    from tests.conftest import write_plugin

    plugin = write_plugin(tmp_path / "my_model.py", '''
@models.register("plugin-gan")
class PluginGAN(BiGAN):
    """A user's model living outside the project."""
''')
    code, out, _ = cli("list-models", "--plugin", plugin)
    assert code == 0 and "plugin-gan" in out
    code, out, err = cli("run", "digits", "--budget", "smoke", "--models", "plugin-gan", "--plugin", plugin,
                         "--out", tmp_path / "res")
    assert code == 0, err
    assert (tmp_path / "res" / "plugin-gan" / "seed0" / "metrics.json").exists()
    assert "plugin-gan" in (tmp_path / "res" / "summary.csv").read_text()


def test_plugin_by_module_name(tmp_path, cli, monkeypatch):
    from tests.conftest import write_plugin

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


def test_models_and_metrics_do_not_import_the_harness():
    """models/ and metrics/ are usable without benchmarks/: a fresh interpreter imports both
    and no benchmarks module is loaded."""
    import subprocess
    import sys

    code = "import sys, models, metrics; print(sorted(m for m in sys.modules if m.split('.')[0] == 'benchmarks'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == "[]", out.stdout
