"""Out-of-tree models: `--plugin path/to/file.py` or `--plugin package.module`.

The module is imported and registers its models with `models.register`; no project file
is edited. Any failure to import, sys.exit() included, becomes one clear UserError naming the
plugin."""
import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path

from .core.errors import UserError


def load_plugin(spec):
    path = Path(spec)
    try:
        if spec.endswith(".py") or path.exists():
            if not path.is_file():
                raise UserError(f"Plugin file {spec} does not exist. Give a path to a .py file or an importable "
                                "module name.")
            # A stable, unique module name per file, so two plugins named model.py do not clash.
            name = f"bigan_bench_plugin_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
            if name in sys.modules:
                return sys.modules[name]
            mod_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            try:
                mod_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
            return module
        return importlib.import_module(spec)
    except UserError:
        raise
    except SystemExit as e:  # sys.exit() in a plugin must not end the program without a word
        raise UserError(f"Plugin {spec!r} called sys.exit({e.code!r}) while being imported{_where(e)}. A plugin only "
                        "registers models: remove the call (or guard it with `if __name__ == '__main__':`), "
                        "or leave out --plugin.") from None
    except Exception as e:  # noqa: BLE001 - any import failure is the plugin author's to fix
        raise UserError(
            f"Plugin {spec!r} failed to import: {type(e).__name__}: {e}{_where(e)}. "
            "Fix the plugin (run `python path/to/plugin.py` to see the full traceback) or leave out --plugin."
        ) from None


def _where(e):
    """' at file:line' of the innermost frame that raised `e`, or ''."""
    frames = traceback.extract_tb(e.__traceback__)
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
