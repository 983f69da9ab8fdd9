"""Finding a pretrained backbone's weights without ever substituting another network: the
resolution order of the Inception weights (inception.resolve_inception_weights), for backbones
whose weights are one file (DINOv2) or several (LPIPS: its linear layers and VGG16).

Order: the path given (a command-line flag), then an environment variable, then the torch hub
cache (torch.hub.get_dir()/checkpoints/, where torch-fidelity's own loaders keep these files under
the same names), then a download into that cache when online. A path named explicitly (flag or
variable) but missing is reported, never a cue to look elsewhere. Nothing found: (None, a
one-line reason), and the caller leaves its columns empty with that reason.
"""
import os
import socket
from pathlib import Path

import torch

from . import inception


def hub_checkpoints():
    return Path(torch.hub.get_dir()) / "checkpoints"


def explicit_problem(given, names, what, origin):
    """Why the explicitly named `given` cannot be the weights, or None. One file: `given` is that
    file. Several: `given` is a folder holding all of them under `names`."""
    p = Path(given).expanduser()
    if len(names) == 1:
        return None if p.is_file() else f"{what} weights {origin}={given} is not a file"
    if not p.is_dir():
        return f"{what} weights {origin}={given} is not a folder (it must hold {' and '.join(names)})"
    missing = [n for n in names if not (p / n).is_file()]
    return f"{what} weights folder {origin}={given} lacks {' and '.join(missing)}" if missing else None


def resolve_weights(files, *, what, flag, env, path=None, download=True, progress=False):
    """({file name: Path}, None) or (None, one-line reason). `files`: {file name: URL}, the names
    the torch hub cache keeps them under. See the module docstring for the order."""
    names = list(files)
    for given, origin in ((path, flag), (os.environ.get(env), f"${env}")):
        if given:
            problem = explicit_problem(given, names, what, origin)
            if problem:
                return None, problem
            p = Path(given).expanduser()
            return ({names[0]: p} if len(names) == 1 else {n: p / n for n in names}), None
    hub = hub_checkpoints()
    found = {n: hub / n for n in names}
    if all(p.is_file() for p in found.values()):
        return found, None
    how = (f"pass {flag} {'PATH' if len(names) == 1 else 'DIR'}, set ${env}, or put {' and '.join(names)} "
           f"in {hub}")
    if not download:
        return None, f"no {what} weights: {how}"
    if not inception.online():
        return None, f"no {what} weights and offline: {how}"
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)  # urlopen has no timeout of its own
    url = None
    try:
        hub.mkdir(parents=True, exist_ok=True)
        for name, url in files.items():
            if not found[name].is_file():  # written to a temporary file, then renamed: never half a file
                torch.hub.download_url_to_file(url, str(found[name]), progress=progress)
    except Exception as e:  # noqa: BLE001 - any failure means "no weights", with the reason
        return None, f"downloading the {what} weights from {url} failed: {e}"
    finally:
        socket.setdefaulttimeout(old)
    missing = [str(p) for p in found.values() if not p.is_file()]
    return (None, f"download finished but {', '.join(missing)} is missing") if missing else (found, None)
