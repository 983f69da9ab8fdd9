"""What git says about a folder: whether it is, or would be made inside, a folder whose files the
repository tracks (a committed results folder). `report` and `sweep` write only into folders of
their own; a committed folder is the published record, copied in by hand from a working folder,
never rewritten (or added to) by a command pointed at it.
"""
import subprocess
from pathlib import Path


def _git(folder, *args):
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def committed(path):
    """The committed folder `path` is or lies in, or None: the nearest folder that exists at or
    above `path`, when git tracks files under it and it is not the checkout's top (a new folder
    beside the checkout's tracked ones, runs/ say, is no one's record). None outside a checkout
    or without git."""
    folder = Path(path).absolute()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return None
    top = _git(folder, "rev-parse", "--show-toplevel")
    if not top or Path(top.decode().strip()).resolve() == folder.resolve():
        return None
    return folder if _git(folder, "ls-files", "-z", "--", ".") else None
