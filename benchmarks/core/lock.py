"""One writer at a time: an exclusive lock per run folder, and one per results folder while its
report is written.

The lock is a kernel `flock` on a `.lock` file, so it dies with its holder however the holder
dies (kill -9 included): a lock left by a dead process is simply free again, nothing to clean
up. The file records the holder's PID, host and command for the message a second writer gets.
Shards of one matrix (`--shard`, `--jobs`) work on different runs and never contend; two
commands that would write the same run do, and the second stops at once.
"""
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import UserError


class Busy(UserError):
    """Another live process holds the lock."""


class FolderLock:
    """Exclusive lock of `folder`, held through the file `lock_file` (default folder/.lock; a run
    keeps its lock beside its folder, so that --force can delete and recreate the folder)."""

    def __init__(self, folder, what, lock_file=None):
        self.folder, self.what = Path(folder), what
        self.path = Path(lock_file) if lock_file else self.folder / ".lock"
        self.fd = None

    def acquire(self, wait=0.0):
        """Take the lock, waiting up to `wait` seconds; Busy (exit 2) names the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise Busy(f"{self.what} {self.folder} is being written by another process ({holder}). "
                               "Wait for it to finish, or stop it; a second writer would corrupt its logs. "
                               "Use another --out to run elsewhere meanwhile.") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "command": " ".join(sys.argv)[:300]}).encode(), 0)
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the file stays (removing it would race)
            self.fd = None

    def __enter__(self):
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def _read_holder(fd):
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"PID {info.get('pid', '?')} on host {info.get('host', '?')}: {info.get('command', '?')}"
    except ValueError:
        return "holder unknown"
