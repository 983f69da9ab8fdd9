"""`sweep`: a study's phases in order (select, confirm, final), each an ordinary results folder,
then the study report; and the refusals that keep two studies, thread counts or a half-done
selection from mixing in one folder."""
import json
import os
import sys
from pathlib import Path

from ..core.errors import UserError
from .run import check_jobs, check_weights, run_config, without


def cmd_sweep(args):
    """The study's phases in order: each an ordinary results folder under OUT, then the study report.
    Everything is checked before anything is written: the study file whole, the models it builds,
    the weights named, the folder (its own, never a committed one), its recorded study and how far
    its selection has got (study_state)."""
    from ..core.io import atomic_write_json
    from ..core.lock import FolderLock
    from ..data import declared_shape
    from ..reporting.study import locked_study_report
    from ..study import record as studyrec
    from ..study import study as studies
    from ..training.build import check_models
    from ..training.run import check_folder

    study = studies.load_study(args.study, trials=args.trials, shape_of=declared_shape)
    out = args.out or Path("runs") / f"study-{study.name}"
    phases = ("select", "confirm", "final") if args.phase == "all" else (args.phase,)
    if args.job_of:  # a --jobs shard: its parent checked and recorded the study, and runs the phases in turn
        return run_config(args, _phase_config(args, study, out, phases[0]), out / _folder(phases[0]),
                          _with_phase(args.argv, phases[0]))
    select_cfg = studies.select_config(study)
    check_jobs(args)
    _check_study_folder(args, out)
    record = study_state(args, study, out, phases, select_cfg)  # refuses a changed study or an early phase
    redo_selection = _selection_to_redo(args, study, out, phases)
    for cfg in (select_cfg, studies.final_config(study, studies.provisional_selection(study))):
        check_models(cfg, declared_shape(cfg.dataset))  # every model, arm and control builds (seconds)
    check_weights(args)
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out, "Study folder").acquire(wait=60):  # shards starting together: one writes it
        if studyrec.read(out) is None:
            atomic_write_json(out / studyrec.RECORD, record)
    if redo_selection:
        print(f"warning: {out / 'selection.json'} was damaged ({redo_selection}); computed again from "
              f"{out / 'select'}", file=sys.stderr)
        atomic_write_json(out / "selection.json", studies.select(study, _selection_rows(out)))
    code = 0
    for phase in phases:
        cfg = _phase_config(args, study, out, phase)
        if cfg is None:  # one selection seed, or confirm_top 0: nothing to confirm
            continue
        folder = out / _folder(phase)
        if phase == "final":
            check_folder(cfg, folder, write=False)  # refused before the selection is written, not after
            if not args.shard:  # the shards compute the same selection; the unsharded command records it
                atomic_write_json(out / "selection.json", studies.select(study, _selection_rows(out)))
        code = max(code, run_config(args, cfg, folder, _with_phase(args.argv, phase)))
    if not args.shard:
        print(locked_study_report(out, study, figures=args.figures))
    return code


def _folder(phase):
    return "select" if phase in ("select", "confirm") else phase


def _selection_rows(out):
    from ..reporting.folders import collect

    return collect([out / "select"]).to_dict("records") if (out / "select").is_dir() else []


def _phase_config(args, study, out, phase):
    """The resolved config of one phase (None: nothing to confirm), once the phases before it are
    complete: the confirmation and the final choice read the whole selection, so a phase that
    starts before every shard of the one before has finished would choose among part of it."""
    from ..study import record as studyrec
    from ..study import study as studies

    if phase == "select":
        return studies.select_config(study)
    rows = _selection_rows(out)
    screen = studyrec.screen_missing(study, rows, studies.select_config(study).models)
    missing = screen or (studies.missing_confirmations(study, rows) if phase == "final" else [])
    if missing:
        before = "select" if screen else "confirm"
        raise UserError(f"The {phase} phase chooses among every selection run, and {len(missing)} are missing from "
                        f"{out / 'select'} (e.g. {missing[0][0]} seed {missing[0][1]}). Run the {before} phase first "
                        f"(on every task of a job array): {_sweep_command(args, out, before)}.")
    if phase == "confirm":
        return studies.confirm_config(study, rows)
    return studies.final_config(study, studies.select(study, rows))


def _sweep_command(args, out, phase, *extra, drop=()):
    """This sweep command line with `--out OUT --phase PHASE` and `extra` in place of its own (and
    without the options in `drop`, nor --force), quoted for a message: the user's other options
    (--plugin, --shard, --trials, --device, ...) stay as they gave them."""
    import shlex

    words = without(args.argv, ("--out", "--phase", *drop), flags=("--force",))
    return f"`{shlex.join(['python', '-m', 'benchmarks', *words, '--out', str(out), '--phase', phase, *extra])}`"




def _check_study_folder(args, out):
    """A sweep writes only into a study folder of its own: a new or empty folder, or one that holds
    a study (study.json, or the select/ and final/ of a study recorded before study.json existed);
    never a committed folder, a `run` folder, or anyone's other files."""
    from ..core import git
    from ..study import record as studyrec

    record = git.committed(out)
    if record:
        where = "is committed to git" if record == out.absolute() else f"is inside {record}, committed to git"
        own = Path("runs") / f"study-{Path(str(args.study)).stem}"
        raise UserError(f"{out} {where}: a published record, whose files a sweep would overwrite or add to. Run the "
                        "study into a folder of your own and copy what should be published, e.g. "
                        f"{_sweep_command(args, own, args.phase)}. Nothing was changed.")
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a new or empty folder for the study.")
    if (out / studyrec.RECORD).exists() or not any(out.iterdir()):
        return
    if (out / "select" / "benchmark.json").exists() or (out / "selection.json").exists():
        return  # a study folder from before study.json: recorded from now on
    what = ("a results folder of `run` (it holds benchmark.json)" if (out / "benchmark.json").exists()
            else "not a study folder (no study.json, select/ or selection.json)")
    raise UserError(f"--out {out} is {what}; its files are left as they are. Choose a new or empty folder for the "
                    f"study, e.g. {_sweep_command(args, Path(f'{out}-study'), args.phase)}.")


def study_threads(args):
    """(device kind, threads each run trains with) of this command: a --jobs N share of the cores
    (run_jobs), else this process's own PyTorch thread count (OMP_NUM_THREADS or the cores)."""
    import torch

    from ..training.shards import jobs_threads

    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    return ("cuda" if cuda else "cpu"), (jobs_threads(args.jobs) if args.jobs > 1 else torch.get_num_threads())


def study_state(args, study, out, phases, select_cfg):
    """The record this command would make of the study (study.json), after refusing what would mix
    two studies in one folder: another study (or --trials) than the one recorded, another thread
    count per run, or, under --shard, `--phase all` before the selection is complete."""
    from ..study import record as studyrec
    from ..study.study import study_path

    device, threads = study_threads(args)
    new = studyrec.record(study, study_path(args.study), threads, device)
    old = studyrec.read(out)
    if old is not None:
        changes = studyrec.differences(old, new)
        if changes == [studyrec.threads_difference(old, new)] and not _trains(args, study, out, phases):
            changes = []  # another thread count only rewrites the report here: no run would mix with the others
        if changes:
            shown = "; ".join(c if len(c) < 200 else c[:200] + "..." for c in changes[:5])
            fix = _threads_fix(args, out, old["threads"]) if changes[0].startswith("threads per run") else (
                f"Run the study {out / studyrec.RECORD} records (from {old.get('file')}), or give the changed one "
                f"a folder of its own: {_sweep_command(args, Path(str(out) + '-2'), args.phase)}.")
            raise UserError(f"{out} holds another study's runs ({shown}{'; ...' if len(changes) > 5 else ''}); a "
                            f"phase or resume of this one would mix the two. Nothing was changed. {fix}")
    if args.shard and args.phase == "all":
        rows = _selection_rows(out)
        from ..study import study as studies

        missing = (studyrec.screen_missing(study, rows, select_cfg.models)
                   or studies.missing_confirmations(study, rows))
        if missing:
            raise UserError(f"--phase all with --shard would let each shard confirm and choose among its own part of "
                            f"the selection, and {len(missing)} selection runs are missing (e.g. {missing[0][0]} seed "
                            f"{missing[0][1]}). Run the phases one after another on every task: first "
                            f"{_sweep_command(args, out, 'select')}, then {_sweep_command(args, out, 'confirm')}, "
                            f"then {_sweep_command(args, out, 'final')} (examples/slurm/study.sh chains them).")
    if phases[0] != "select":
        _phase_config(args, study, out, phases[0])  # refused unless the phases before it are complete
    return new


def _trains(args, study, out, phases):
    """Whether this command would train any run: a run of its phases (its shard of them) without
    a finished record (ok or diverged). A phase after one with runs to train trains too."""
    from ..reporting.folders import collect
    from ..training.shards import parse_shard, shard_matrix

    shard = parse_shard(args.shard) if args.shard else None
    for phase in phases:
        try:
            cfg = _phase_config(args, study, out, phase)
        except UserError:  # the phases before it are not complete: they, or it, will train
            return True
        if cfg is None:
            continue
        folder = out / _folder(phase)
        done = {(r["model"], str(r["seed"])) for r in collect([folder]).to_dict("records")
                if r.get("status") in ("ok", "diverged")} if folder.is_dir() else set()
        if any((m, str(s)) not in done for m, s in shard_matrix(cfg.models, cfg.seeds, shard, cfg.row_seeds)):
            return True
    return False


def _threads_fix(args, out, threads):
    """The command line that trains with `threads` threads per run on this machine."""
    from ..training.shards import jobs_threads

    cores = os.cpu_count() or 1
    jobs = next((j for j in range(2, cores + 1) if jobs_threads(j) == threads), None)
    if jobs:
        return (f"Run it with the recorded threads: "
                f"{_sweep_command(args, out, args.phase, '--jobs', str(jobs), drop=('--jobs',))}.")
    return (f"Run it with the recorded threads: set OMP_NUM_THREADS={threads} and run "
            f"{_sweep_command(args, out, args.phase, drop=('--jobs',))} (no --jobs).")


def _selection_to_redo(args, study, out, phases):
    """Why selection.json must be computed again before the report reads it (cut off, or not a
    selection), or None. Only an unsharded command reads it; the final phase writes it anew; a
    damaged one is otherwise computed again from select/ once the selection is complete, and
    refused, with the fix, while it is not."""
    from ..study import record as studyrec
    from ..study import study as studies

    path = out / "selection.json"
    if args.shard or not path.exists():
        return None
    try:
        studyrec.check_selection(json.loads(path.read_text()), study)
        return None
    except (OSError, ValueError) as e:
        why = f"{type(e).__name__}: {e}"
    rows = _selection_rows(out)
    if not (studyrec.screen_missing(study, rows, studies.select_config(study).models)
            or studies.missing_confirmations(study, rows)):
        return why
    if "final" in phases:
        return None  # the final phase chooses once the selection is complete, and writes it
    raise UserError(f"{path} is damaged ({why}) and the selection in {out / 'select'} is not complete, so it cannot "
                    "be computed again yet. Nothing was changed. Delete it, then run this command again; the final "
                    f"phase writes it once the selection is complete ({_sweep_command(args, out, 'final')}).")


def _with_phase(argv, phase):
    """The sweep command line for one phase: --phase PHASE in place of the given one."""
    return [*without(argv, ("--phase",)), "--phase", phase]
