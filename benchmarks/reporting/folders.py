"""Reading results folders defensively, for report: which folders may be merged into one table,
every run record once (a record of the wrong shape is a row that says why, never a dropped run),
the folder's references and protocol, and which folder report may write into.

Reads only what runs wrote (metrics.json, config.json, benchmark.json, references.json).
"""
import json
from pathlib import Path

import pandas as pd

from ..config import FOLDER_KEYS, backfilled, config_diff
from ..core.errors import UserError
from ..core.records import COMPILE_APART, read_references, training_seconds

# compile_seconds, flops_per_step and train_flops are written by newer runs only; older folders get blank cells.
RUN_COLUMNS = ["model", "seed", "status", "g_steps", "d_steps", "images_seen", "train_seconds", "compile_seconds",
               "params_g", "params_e", "params_d", "flops_per_step", "train_flops", "recon_mse", "probe_acc"]


def _folder_config(d):
    """The config a results folder's runs share (benchmark.json, else its first run's record),
    reduced to what decides whether two folders' numbers can be compared; None when neither reads."""
    for path in [d / "benchmark.json", *sorted(d.glob("*/seed*/config.json"))]:
        try:
            c = backfilled(json.loads(path.read_text())["config"])
            return {k: c.get(k) for k in FOLDER_KEYS}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def check_mergeable(dirs):
    """Folders that may be merged into one table: the same folder reached by two paths counts
    once, and folders of different configs (dataset, budget, protocol) are refused, naming both.
    Returns the distinct folders in order."""
    distinct, seen = [], set()
    for d in map(Path, dirs):
        if not d.is_dir():
            raise UserError(f"Results folder {d} does not exist; `python -m benchmarks run` writes one.")
        if d.resolve() not in seen:
            seen.add(d.resolve())
            distinct.append(d)
    configs = [(d, _folder_config(d)) for d in distinct]
    known = [(d, c) for d, c in configs if c is not None]
    for d, c in known[1:]:
        changes = config_diff(known[0][1], c)
        if changes:
            raise UserError(f"Results folders {known[0][0]} and {d} hold runs of different configs "
                            f"({'; '.join(changes[:5])}{'; ...' if len(changes) > 5 else ''}); one table would "
                            "average numbers that cannot be compared. Report each folder on its own.")
    return distinct


def _read_run(path):
    """One run's metrics.json as a row; a file that does not parse, or parses to anything but a
    run record (a list, null, {}), is a row of status "unreadable" that says why."""
    model, seed = path.parent.parent.name, path.parent.name[4:]
    try:
        row = json.loads(path.read_text())
        why = None if isinstance(row, dict) and isinstance(row.get("status"), str) else \
            f"holds {type(row).__name__ if not isinstance(row, dict) else 'no status'}, not a run record"
    except (OSError, ValueError) as e:
        row, why = None, f"{type(e).__name__}"
    if why:
        return {"model": model, "seed": seed, "status": "unreadable", "error": f"{path}: {why}"}
    if "train_seconds" in row:  # the same meaning in records of every age: the steps, compilation apart
        row = {**row, "train_seconds": training_seconds(row), COMPILE_APART: True}
    return {**row, "model": model, "seed": row.get("seed", seed)}


def collect(dirs):
    """Every run under the folders, each once: a (model, seed) found in two folders is counted once
    when the two records are identical (a copy) and refused when they differ."""
    rows, where = [], {}
    for d in dirs:
        for path in sorted(Path(d).glob("*/seed*/metrics.json")):
            row = _read_run(path)
            key = (row["model"], str(row["seed"]))
            if key in where:
                first, first_row = where[key]
                same = {k: v for k, v in first_row.items() if k != "folder"} == row
                if same:
                    continue
                raise UserError(f"{row['model']} seed {row['seed']} is in both {first} and {d} with different "
                                "results: a run is counted once. Report the folders separately, or move one away.")
            where[key] = (d, {**row, "folder": str(d)})
            rows.append({**row, "folder": str(d)})
    df = pd.DataFrame(rows)
    for c in RUN_COLUMNS:
        if c not in df:
            df[c] = pd.NA
    return df


MANIFEST = ".report.json"  # the files report wrote into a folder: the only ones it may remove or overwrite


def read_manifest(out):
    """The folder's manifest as written ({} when there is none or it is damaged): "files", and once
    a report finished, its "key" and "terminal" table (report.locked_report)."""
    try:
        done = json.loads((out / MANIFEST).read_text())
        return done if isinstance(done, dict) else {}
    except (OSError, ValueError):
        return {}


def manifest(out):
    """The files report wrote into the folder."""
    files = read_manifest(out).get("files")
    return {str(f) for f in files} if isinstance(files, list) else set()


def check_output(out, inputs):
    """report writes only into one of the folders it reports, a new or empty folder, or one it
    wrote before (it holds the manifest); anything else is someone's folder, left untouched."""
    out = Path(out)
    if not out.exists() or out.resolve() in {d.resolve() for d in inputs}:
        return
    if not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a new or empty folder.")
    if any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserError(f"--out {out} is not empty and was not written by `report` (no {MANIFEST}); its files are "
                        "left as they are. Choose a new or empty folder, or one of the folders reported.")


def dataset_meta(dirs):
    for path in (p for d in dirs for p in sorted(Path(d).glob("*/seed*/config.json"))):
        try:
            meta = json.loads(path.read_text()).get("dataset_meta")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(meta, dict):
            return meta
    return {}


def protocol(dirs, df):
    """What every number in the table depends on, as markdown bullet lines."""
    lines = []
    for d in dirs:
        bench = Path(d) / "benchmark.json"
        try:
            c = json.loads(bench.read_text())["config"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            if bench.exists():
                lines.append(f"- {bench} is unreadable ({type(e).__name__}): the next `run` in this folder records "
                             "it again; the runs' own config.json files below still say what they ran")
            continue
        recs = []
        for path in sorted(Path(d).glob("*/seed*/config.json")):
            try:
                recs.append(json.loads(path.read_text()))
            except ValueError:
                continue  # an unreadable record: its run shows as unreadable in the tables
        meta = recs[0].get("dataset_meta", {}) if recs else {}
        lines += [
            f"- benchmark `{c['benchmark']}`, budget `{c['budget']}` ({d})",
            f"- dataset `{c['dataset']}` {json.dumps(c['dataset_options']) if c['dataset_options'] else ''}: "
            f"split sizes {json.dumps(meta.get('split_sizes'))}, size {meta.get('size')} px"
            + (f", crop {meta['crop']} (box {meta.get('crop_box')}, {meta.get('resize_filter')})"
               if meta.get("crop") else "")
            + (f", source hash {json.dumps(meta['source_hash'])}" if meta.get("source_hash") else ""),
            f"- training: {c['train']['steps']} G/E steps at batch {c['train']['batch_size']}, "
            f"arch `{c['arch'].get('style', 'shared')}` z_dim {c['arch']['z_dim']} width {c['arch']['width']}; "
            f"seeds {sorted(set(int(s) for s in df['seed'].dropna()))}",
            f"- evaluation: {json.dumps(c['eval'])}",
        ]
        # Every distinct value over the runs, not the first run's: a folder may be filled by
        # several commands (seed subsets, shards, resumes) on several machines.
        if recs:
            # A run's first start and every later one (a resume, an evaluation again) count.
            starts = [s for r in recs for s in [r, *(r.get("resumed") or [])]]
            versions = [dict(s.get("versions") or {}) for s in starts]
            commits = sorted({str(v.pop("git_commit", None)) for v in versions})
            started = sorted({s.get("started") or "?" for s in starts})
            again = sum(bool(r.get("resumed")) for r in recs)
            if again:
                lines.append(f"- resumed or evaluated again: {again} of {len(recs)} runs (each run's config.json "
                             "lists its later starts under `resumed`)")
            lines += [f"- device: {'; '.join(sorted({json.dumps(s.get('runtime'), sort_keys=True) for s in starts}))}",
                      f"- versions: {'; '.join(sorted({json.dumps(v, sort_keys=True) for v in versions}))}",
                      f"- code (git commit): {', '.join(commits)}",
                      f"- started: {started[0]} to {started[-1]}",
                      *[f"- command: `{cmd}`" for cmd in sorted({s.get('command') or '?' for s in starts})]]
    notes = {}
    for p in df.get("protocol", pd.Series(dtype=object)).dropna():
        if isinstance(p, dict):
            notes.update(p)
    for d in dirs:  # the folder's references, written by its latest `run`, over what older runs recorded
        refs = read_references(Path(d) / "references.json")
        if refs:
            notes.update(refs["notes"])
    lines += [f"- `{k}`: {v}" for k, v in sorted(notes.items())]
    return "\n".join(lines)
