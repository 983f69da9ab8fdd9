"""What the records runs write mean to every stage that reads them back: a run's training time
across record ages (training resumes from it, reporting tabulates it) and the shape of a
references record (evaluation caches it, reporting prints it).
"""
import json
import numbers
from pathlib import Path

# Marks the records and checkpoints whose train_seconds leave compilation out (compile_seconds
# beside them); in older ones train_seconds included it (`training_seconds` reads either).
COMPILE_APART = "train_seconds_exclude_compile"


def training_seconds(record):
    """Training seconds without compilation from a run record or checkpoint of any age: older
    ones counted compile_seconds inside train_seconds; None when the record has no time."""
    seconds = record.get("train_seconds")
    if not isinstance(seconds, numbers.Real) or isinstance(seconds, bool):
        return None
    compile_s = record.get("compile_seconds")
    if record.get(COMPILE_APART) or not isinstance(compile_s, numbers.Real) or isinstance(compile_s, bool):
        return seconds
    return seconds - compile_s


def read_references(path):
    """A references record (cache entry or a folder's references.json) if it has the shape
    Evaluator.references() (evaluation/references.py) writes, else None: a damaged entry is
    recomputed, never trusted."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(rec, dict) and isinstance(rec.get("key"), str) and isinstance(rec.get("notes"), dict)
          and all(isinstance(rec["notes"].get(k), str) for k in ("references", "chance"))
          and isinstance(rec.get("values"), dict))
    return rec if ok else None
