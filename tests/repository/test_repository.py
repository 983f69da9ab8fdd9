"""What the repository tracks: results folders live under results/ only, and run or report locks
(which tests and runs leave beside their folders) are never committed."""
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT


def _tracked():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return out.splitlines()


def test_no_lock_file_and_no_results_folder_outside_results():
    files = _tracked()
    assert not [f for f in files if f.endswith(".lock")]
    # a results folder is marked by its benchmark.json or a run's metrics.json
    stray = [f for f in files if Path(f).name in ("benchmark.json", "metrics.json") and not f.startswith("results/")]
    assert not stray, stray
