"""What a train_step returns, checked and read (LossReader: on the device until a window ends) and
logged (LossLog: losses.csv and track.csv, resumed from the rows before the checkpoint)."""
import csv
import io
import numbers
import sys

import torch

from ..core.io import atomic_write_text


def check_losses(out, who):
    """The train_step contract: a dict of scalar losses (floats, or tensors of one element) under
    string names. Host-side metadata only, so it costs no device synchronisation."""
    fix = (f"{who} must return a dict of scalar losses for the log, e.g. "
           "{'loss_d': loss_d.detach(), 'loss_ge': loss_ge.detach()}")
    if not isinstance(out, dict) or not out:
        raise TypeError(f"{fix}; it returned {type(out).__name__}{'' if out is None else ' ' + repr(out)[:80]}.")
    for k, v in out.items():
        if not isinstance(k, str):
            raise TypeError(f"{fix}; key {k!r} is a {type(k).__name__}, not a string.")
        if torch.is_tensor(v):
            if v.numel() != 1:
                raise TypeError(f"{fix}; {k!r} is a tensor of shape {tuple(v.shape)}: reduce it (.mean()).")
        elif not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"{fix}; {k!r} is a {type(v).__name__}.")


class LossReader:
    """Loss values as the model returns them (device tensors, or floats from a plug-in),
    read to the host in one transfer per window: the training step never waits for the GPU.
    Under data parallelism the values are averaged over the processes: the global batch's."""

    def __init__(self, runtime, who="train_step"):
        self.runtime, self.pending, self.who = runtime, [], who

    def add(self, step, out):
        check_losses(out, self.who)  # at once, not at the next read (every sync_every steps)
        self.pending.append((step, out))

    def read(self):
        """[(step, {name: float})] for the pending steps, oldest first."""
        if not self.pending:
            return []
        dev = self.runtime.device
        with torch.no_grad():  # one conversion call per value: the plain path reads every step
            flat = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=dev).reshape(())
                                for _, out in self.pending for v in out.values()])
        values = self.runtime.mean_over_processes(flat).tolist()
        rows, i = [], 0
        for step, out in self.pending:
            rows.append((step, dict(zip(out, values[i:i + len(out)]))))
            i += len(out)
        self.pending = []
        return rows


class LossLog:
    """Loss rows in memory, written to `losses.csv` (atomically, the whole file) at each
    checkpoint, so the file on disk always matches the last checkpoint; on resume, rows past it
    are dropped, and so are unreadable ones (a damaged file), with a warning."""

    def __init__(self, path, resume_step):
        self.path, self.rows = path, []
        self._fields, self._text, self._rendered = None, "", 0  # the CSV text of rows[:_rendered]
        if path.exists():
            self.rows, bad = _read_log(path, resume_step)
            if bad:
                print(f"warning: {path}: {bad} unreadable row(s) dropped; the log keeps the readable ones",
                      file=sys.stderr)
        self.flush()

    def append(self, step, values):
        self.rows.append({"step": step, **{k: f"{v:.6g}" for k, v in values.items()}})

    def flush(self):
        # The rows already written are kept as CSV text, so a flush renders only the new ones
        # (rendering every row at every checkpoint grows with the run); a new column re-renders all.
        new = self.rows[self._rendered:]
        keys = {k for r in new for k in r} | set(self._fields or ())
        fields = ["step"] + sorted(keys - {"step"})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fields)
        if fields != self._fields:
            self._fields, self._text, new = fields, "", self.rows
            w.writeheader()
        w.writerows(new)
        self._text += buf.getvalue()
        self._rendered = len(self.rows)
        atomic_write_text(self.path, self._text)


def _read_log(path, before):
    """(rows with step < before, count of unreadable rows) of a loss or tracking log."""
    try:
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        cut = bool(lines) and not text.endswith("\n")  # a last row without its newline was cut off
        rows = list(csv.DictReader(lines[:-1] if cut else lines))
    except (OSError, UnicodeDecodeError, csv.Error):
        return [], 1
    kept, bad = [], int(cut)
    for r in rows:
        try:
            ok = None not in r and None not in r.values() and int(r["step"]) >= 0  # None: a cut-off row
            for k, v in r.items():
                if k != "step" and v != "":  # "": a column the row's step did not log
                    float(v)
        except (KeyError, ValueError, TypeError, AttributeError):
            ok = False
        if not ok:
            bad += 1
        elif int(r["step"]) < before:
            kept.append(r)
    return kept, bad
