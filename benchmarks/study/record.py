"""What a study folder records of the study it runs (OUT/study.json), and how far its selection has
got, so that every later phase, resume and shard is checked against it before anything is written.

A study's phases run as separate commands (a job array, a resume days later). Each resolves its
runs from the study file as it is then: an edited study, other --trials, or another thread count
per run would mix two studies' runs in one folder without a word (convolutions sum in another
order with another thread count, so even the same settings score differently in their last
digits). study.json holds the resolved study and the threads each run trains with; a command
whose study or threads differ is refused with the difference named.
"""
import dataclasses
import json

from ..config import config_diff
from ..core.errors import UserError

RECORD = "study.json"
# What a claim says in words: editing it changes no run and no number.
WORDING = ("text", "source")


def describe(study):
    """The study as plain data, everything a run or the choice depends on: claims and targets keyed
    by their names (so a difference names the claim), the file's name and the claims' wording left out."""
    plain = json.loads(json.dumps(dataclasses.asdict(study)))
    plain.pop("name")
    plain["targets"] = {t.pop("name"): t for t in plain["targets"]}
    plain["claims"] = {c.pop("id"): {k: v for k, v in c.items() if k not in WORDING} for c in plain["claims"]}
    plain["select_set"], plain["final_set"] = dict(plain["select_set"]), dict(plain["final_set"])
    return plain


def record(study, path, threads, device):
    return {"study": describe(study), "file": str(path), "threads": threads, "device": device}


def read(out):
    """OUT/study.json, or None when there is none; a damaged one is refused with the fix."""
    path = out / RECORD
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
        if not isinstance(rec, dict) or not isinstance(rec.get("study"), dict):
            raise ValueError("not a study record")
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is unreadable ({type(e).__name__}: {e}). It records the study this folder ran, so no "
                        "phase can be checked against it: restore it (from a backup), or, if the study file is "
                        f"unchanged since, delete it and run the same command again, which records the study anew.") \
            from None
    return rec


def differences(old, new):
    """'key: old -> new' for every difference of two records that would mix two studies' runs."""
    out = config_diff(old["study"], new["study"])
    threads = threads_difference(old, new)
    return [*out, threads] if threads else out


def threads_difference(old, new):
    """'threads per run: a -> b' when both records train on the CPU with other thread counts, else
    None (on a GPU the CPU's threads change no number)."""
    if old.get("device") == new["device"] == "cpu" and old.get("threads") != new["threads"]:
        return f"threads per run: {old.get('threads')} -> {new['threads']}"
    return None


def screen_missing(study, rows, names):
    """The screen's (trial, seed) runs (every trial on the first selection seed; `names`: the
    select phase's trials) that the selection folder's records (`rows`) do not hold yet."""
    have = {(r.get("model"), r.get("seed")) for r in rows if r.get("status") in ("ok", "diverged", "failed")}
    seed = study.selection_seeds[0]
    return [(n, seed) for n in names if (n, seed) not in have]


def check_selection(chosen, study):
    """ValueError unless `chosen` (selection.json) has the shape study.select writes, for every swept
    model it holds: {model: {target: None or {"trial", "arm", "options", "value", "row", ...}}}."""
    if not isinstance(chosen, dict):
        raise ValueError(f"expected a mapping of models, got a {type(chosen).__name__}")
    for m in study.models:
        per = chosen.get(m)
        if per is None:
            continue
        if not isinstance(per, dict):
            raise ValueError(f"the entry of {m!r} is a {type(per).__name__}, not a mapping of targets")
        for target, pick in per.items():
            if pick is None:
                continue
            ok = (isinstance(pick, dict) and isinstance(pick.get("row"), str) and isinstance(pick.get("options"), dict)
                  and isinstance(pick.get("trial"), int) and isinstance(pick.get("value"), (int, float)))
            if not ok:
                raise ValueError(f"the choice of {m!r} for {target!r} is not a chosen trial ({{trial, row, options, "
                                 "value}})")
