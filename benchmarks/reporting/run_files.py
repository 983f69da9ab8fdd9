"""What the figures read from each run's folder besides metrics.json: its logs (losses.csv,
track.csv, truncation.csv), its run-time pictures and the folder's references.json. Read
defensively: a file that cannot be read is left out of the figures with a warning naming it,
never a failed report (the tables still count its run).
"""
import sys
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd

from ..core.records import read_references


def run_dir(row):
    return Path(row["folder"]) / str(row["model"]) / f"seed{row['seed']}"


def warn_skipped(path, e):
    print(f"warning: {path} is unreadable ({type(e).__name__}: {e}); left out of the figures "
          "(the tables still count its run)", file=sys.stderr)


def read_csvs(df, name, key):
    """{model: [DataFrame of name per finished run]}; a log that cannot be read, or lacks its
    `key` column, is left out of the plot with a warning."""
    out = {}
    for _, row in df[df["status"] == "ok"].iterrows():
        path = run_dir(row) / name
        if path.exists():
            try:
                frame = pd.read_csv(path)
                if key not in frame.columns:
                    raise ValueError(f"no {key!r} column")
            except (ValueError, OSError, pd.errors.ParserError) as e:  # EmptyDataError is a ValueError
                warn_skipped(path, e)
                continue
            out.setdefault(row["model"], []).append(frame)
    return out


def folder_references(df):
    """The `values` of the first references.json among the runs' folders, or {}."""
    for folder in df["folder"].dropna().unique() if "folder" in df else ():
        refs = read_references(Path(folder) / "references.json")
        if refs:
            return refs["values"]
    return {}


def read_picture(path):
    """A run-time picture as an (H, W[, C]) array; raises on a file that is not a whole image."""
    im = mpimg.imread(path)
    if im.ndim not in (2, 3) or not im.size:
        raise ValueError(f"not an image (array of shape {im.shape})")
    return im
