"""Launching where you run: `--shard slurm` and the SLURM scripts of examples/slurm/, which are
executed here with stand-ins for sbatch and python that record what they were asked to do; and
the `bigan-bench` console command."""
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from benchmarks.cli import build_parser, main
from benchmarks.core.errors import ConfigError
from benchmarks.training.shards import parse_shard, shard_matrix
from tests.helpers import ROOT

SLURM = ROOT / "examples" / "slurm"


def _array_env(task, low, high, step=1, count=None):
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_ARRAY_TASK_MAX": str(high),
           "SLURM_ARRAY_TASK_COUNT": str(count if count is not None else (high - low) // step + 1)}
    if step != 1:
        env["SLURM_ARRAY_TASK_STEP"] = str(step)
    return env


@pytest.mark.parametrize("low, high, step", [(1, 8, 1), (0, 7, 1), (0, 14, 2), (3, 3, 1)])
def test_shard_slurm_is_the_arrays_task_as_shard_i_of_n(low, high, step):
    tasks = range(low, high + 1, step)
    shards = [parse_shard("slurm", _array_env(t, low, high, step)) for t in tasks]
    n = len(tasks)
    assert shards == [parse_shard(f"{i}/{n}") for i in range(1, n + 1)]
    models, seeds = ["bigan", "ali", "pca"], [0, 1, 2]
    covered = [p for s in shards for p in shard_matrix(models, seeds, s)]
    assert sorted(covered) == sorted(shard_matrix(models, seeds))  # every run once


def test_shard_slurm_outside_an_array_or_on_an_irregular_one_says_what_to_do():
    with pytest.raises(ConfigError, match="not a task of one: submit it with `sbatch --array=1-N`"):
        parse_shard("slurm", {"SLURM_JOB_ID": "7"})
    with pytest.raises(ConfigError, match="MIN and _MAX are not"):
        parse_shard("slurm", {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"})
    with pytest.raises(ConfigError, match="not the range 1-7:1"):  # --array=1,2,7: three tasks in 1..7
        parse_shard("slurm", _array_env(2, 1, 7, count=3))
    with pytest.raises(ConfigError, match="is not an integer"):
        parse_shard("slurm", {**_array_env(2, 1, 4), "SLURM_ARRAY_TASK_ID": "x"})


def test_shard_slurm_outside_an_array_stops_the_command_with_exit_2(monkeypatch, capsys):
    for var in [v for v in os.environ if v.startswith("SLURM_")]:
        monkeypatch.delenv(var)
    assert main(["run", "digits", "--budget", "smoke", "--shard", "slurm", "--out", "r"]) == 2
    err = capsys.readouterr().err
    assert "SLURM_ARRAY_TASK_ID" in err and "Traceback" not in err and not Path("r").exists()


def _stub(folder, name, body):
    path = folder / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


# The stand-ins: sbatch records its arguments and answers a job id as --parsable does ("id;cluster");
# python records the command line it was given.
SBATCH = '''import json, os, sys
log = os.environ["STUB_LOG"]
n = sum(1 for _ in open(log)) if os.path.exists(log) else 0
open(log, "a").write(json.dumps({"sbatch": sys.argv[1:]}) + "\\n")
print(f"{1000 + n};cluster")
'''
PYTHON = '''import json, os, sys
record = {"python": sys.argv[1:], "task": os.environ.get("SLURM_ARRAY_TASK_ID")}
open(os.environ["STUB_LOG"], "a").write(json.dumps(record) + "\\n")
'''


def _run(script, args, tmp_path, env=()):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    _stub(bin_dir, "sbatch", SBATCH)
    _stub(bin_dir, "python", PYTHON)
    log = tmp_path / "log.jsonl"
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CONFIG", "STUDY", "OUT", "TASKS"))}
    full.update({"PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log), **dict(env)})
    done = subprocess.run(["bash", str(script), *args], cwd=ROOT, env=full, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _submitted(tmp_path, script, env=()):
    """What `script` (run.sh, study.sh) submits, and what python command each submission runs:
    every array task of a .sbatch script (run by bash as SLURM would, with the array's variables),
    or a --wrap command. Returns [(sbatch arguments, job id, [(task env, python argv)])]."""
    jobs = []
    for k, call in enumerate(_run(SLURM / script, [], tmp_path / script, env)):
        args = call["sbatch"]
        work = tmp_path / f"{script}-{k}"
        work.mkdir()
        runs = []
        if "--wrap" in args:
            wrapped = _run_wrap(args[args.index("--wrap") + 1], work)
            runs = [({}, r["python"]) for r in wrapped]
        else:
            array = next(a.split("=", 1)[1] for a in args if a.startswith("--array="))
            low, high = (int(v) for v in array.split("-"))
            sbatch_script, script_args = next((a, args[i + 1:]) for i, a in enumerate(args) if a.endswith(".sbatch"))
            for task in range(low, high + 1):
                task_env = _array_env(task, low, high)
                out = _run(ROOT / sbatch_script if not Path(sbatch_script).is_absolute() else Path(sbatch_script),
                           script_args, work / f"t{task}", {**dict(env), **task_env})
                runs += [(task_env, r["python"]) for r in out]
        jobs.append((args, str(1000 + k), runs))
    return jobs


def _run_wrap(command, work):
    work.mkdir(exist_ok=True)
    script = work / "wrap.sh"
    script.write_text(command + "\n")
    return _run(script, [], work)


def _parse(argv, task_env):
    """The python command line, parsed by the project's own parser; --shard slurm resolved."""
    assert argv[:2] == ["-m", "benchmarks"], argv
    args = build_parser().parse_args(argv[2:])
    shard = parse_shard(args.shard, task_env) if getattr(args, "shard", None) else None
    return args, shard


def test_the_sbatch_scripts_are_valid_bash():
    scripts = sorted(SLURM.iterdir())
    assert {p.name for p in scripts} >= {"run.sbatch", "run.sh", "study.sbatch", "study.sh"}
    for script in scripts:
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, (script, done.stderr)
    for script in SLURM.glob("*.sbatch"):
        assert "#SBATCH --array=" in script.read_text()


def test_run_sh_submits_an_array_of_shards_and_a_report_that_merges_them(tmp_path):
    jobs = _submitted(tmp_path, "run.sh", {"CONFIG": "digits", "BUDGET": "smoke", "TASKS": "3"})
    (array_args, array_id, tasks), (report_args, _, report) = jobs
    assert "--array=1-3" in array_args and len(tasks) == 3
    outs = []
    for task_env, argv in tasks:
        args, shard = _parse(argv, task_env)
        assert args.command == "run" and args.config == "digits" and args.budget == "smoke"
        assert shard == (int(task_env["SLURM_ARRAY_TASK_ID"]), 3)
        outs.append(str(args.out))
    assert outs == ["runs/digits-smoke-shard1", "runs/digits-smoke-shard2", "runs/digits-smoke-shard3"]
    assert f"--dependency=afterany:{array_id}" in report_args
    ((_, argv),) = report
    args, _ = _parse(argv, {})
    assert args.command == "report" and str(args.out) == "runs/digits-smoke"
    assert [str(d) for d in args.dirs] == ["runs/digits-smoke-shard*"]  # no folder here: the glob stays as written


def test_study_sh_chains_the_phases_with_afterok_and_reports_last(tmp_path):
    jobs = _submitted(tmp_path, "study.sh", {"STUDY": "digits", "TASKS": "2"})
    phases = []
    for k, (args, _, tasks) in enumerate(jobs[:-1]):
        deps = [a for a in args if a.startswith("--dependency=")]
        assert deps == ([] if k == 0 else [f"--dependency=afterok:{jobs[k - 1][1]}"])
        assert len(tasks) == 2
        for task_env, argv in tasks:
            parsed, shard = _parse(argv, task_env)
            assert parsed.command == "sweep" and parsed.study == "digits" and str(parsed.out) == "runs/study-digits"
            assert shard == (int(task_env["SLURM_ARRAY_TASK_ID"]), 2)
        phases.append(parsed.phase)
    sweep_phases = next(a for a in build_parser()._subparsers._group_actions[0].choices["sweep"]._actions
                        if a.dest == "phase").choices
    assert phases == [p for p in sweep_phases if p != "all"]  # every phase, in the order `--phase all` runs them
    report_args, _, report = jobs[-1]
    assert f"--dependency=afterok:{jobs[-2][1]}" in report_args
    ((_, argv),) = report
    parsed, shard = _parse(argv, {})
    assert (parsed.command, parsed.phase, shard) == ("sweep", "final", None)  # unsharded: selection.json, study.md


def test_the_console_command_is_the_cli():
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "bigan-bench"]
    assert ep.load() is main
