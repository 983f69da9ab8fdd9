"""`load_study(FOLDER)`: a finished study's choices (selection.json) with their final-phase runs."""
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from .run import load_run


@dataclass(frozen=True)
class Choice:
    """The setting a study chose for one model and target, with its final-phase runs.
    `row`: its row (folder) in final/; `trial`: the selection trial (0: the model's defaults);
    `options`: the options it sets; `value`: its validation score on the target's metric;
    `runs`: the final phase's run folders of the row, in seed order."""
    model: str
    target: str
    row: str
    trial: int | None
    options: dict
    value: float | None
    runs: tuple

    def metrics(self):
        """The metrics.json of each run (None for one not finished), in seed order."""
        out = []
        for run_dir in self.runs:
            try:
                out.append(json.loads((run_dir / "metrics.json").read_text()))
            except (OSError, ValueError):
                out.append(None)
        return out

    def load(self, seed=None, device="auto", plugins=()):
        """The Run of seed `seed` (default: the first seed), loaded with load_run."""
        if not self.runs:
            raise UserError(f"The final phase holds no runs of {self.row!r} ({self.model}, chosen for "
                            f"{self.target}): run the study's final phase first.")
        by_seed = {p.name: p for p in self.runs}
        if seed is None:
            return load_run(self.runs[0], device=device, plugins=plugins)
        if f"seed{seed}" not in by_seed:
            raise UserError(f"{self.row!r} has no final run of seed {seed}; its seeds: "
                            f"{', '.join(p.name[4:] for p in self.runs)}.")
        return load_run(by_seed[f"seed{seed}"], device=device, plugins=plugins)


@dataclass(frozen=True)
class StudyRuns:
    """A study folder read back (`load_study`): `choices[model][target]` is a Choice; `unchosen`
    lists the (model, target) pairs for which no trial finished; `selection` is selection.json
    as written."""
    folder: Path
    choices: dict
    unchosen: tuple
    selection: dict

    def choice(self, model, target):
        if model not in self.choices or target not in self.choices[model]:
            known = ", ".join(f"{m}/{t}" for m in self.choices for t in self.choices[m]) or "none"
            raise UserError(f"The study in {self.folder} chose no setting of {model!r} for {target!r}; its "
                            f"choices: {known}.")
        return self.choices[model][target]


def load_study(folder):
    """A study folder (`sweep`: select/, final/, selection.json) as a StudyRuns: per swept model
    and target the chosen setting and its final runs. selection.json is read for what it says
    (each model's chosen trial per target) and any other entry is left alone, so a record written
    by another version of the study code still reads."""
    folder = Path(folder)
    sel_path = folder / "selection.json"
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; a study folder is what `sweep` writes: select/, final/ and "
                        "selection.json.")
    if not sel_path.is_file():
        raise UserError(f"{folder} holds no selection.json, so it is not a study folder or its final phase has not "
                        "started: `python -m benchmarks sweep STUDY --phase final --out "
                        f"{folder}` writes it.")
    try:
        selection = json.loads(sel_path.read_text())
        if not isinstance(selection, dict):
            raise ValueError(f"expected a mapping of models, got a {type(selection).__name__}")
    except (OSError, ValueError) as e:
        raise UserError(f"{sel_path} is unreadable ({type(e).__name__}: {e}); rerun the study's final phase "
                        "(`sweep STUDY --phase final`), which writes it again.") from None
    choices, unchosen = {}, []
    for model, targets in selection.items():
        if not isinstance(targets, dict):
            continue  # not a model's choices: another entry of the record
        for target, pick in targets.items():
            if not isinstance(pick, dict):
                unchosen.append((model, target))
                continue
            trial = pick.get("trial") if isinstance(pick.get("trial"), int) else None
            row = pick.get("row") or (pick.get("arm") if trial else model)
            if not isinstance(row, str):
                unchosen.append((model, target))
                continue
            value = pick.get("value")
            runs = tuple(sorted((p.parent for p in (folder / "final" / row).glob("seed*/config.json")),
                                key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else math.inf))
            choices.setdefault(model, {})[target] = Choice(
                model=model, target=target, row=row, trial=trial,
                options=dict(pick.get("options") or {}) if isinstance(pick.get("options") or {}, dict) else {},
                value=float(value) if isinstance(value, (int, float)) else None, runs=runs)
    return StudyRuns(folder=folder, choices=choices, unchosen=tuple(unchosen), selection=selection)
