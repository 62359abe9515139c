"""Run-folder lock and per-job claims, so two runners never corrupt one run folder.

The lock is ``<run_dir>/.lock``, held with ``flock`` for as long as the runner lives: the kernel
releases it when the holder exits in any way (even SIGKILL), so a lock left by a dead runner is
simply taken over. The file's text names the holder(s) — one JSON line each with pid, host,
start time and command — for the message a refused runner prints.

* ``RunLock(run_dir)`` (exclusive): a second runner fails with :class:`LockedError` (a
  :class:`~unnas.errors.UserError`, exit status 2) naming the owner.
* ``RunLock(run_dir, shared=True)`` (``--join``): any number of joined runners share the folder
  and an exclusive runner is refused. Joined runners split the jobs with :class:`Claims`: a job
  is run by whoever holds ``<run_dir>/claims/<job_id>`` (also ``flock``-ed, so a dead runner's
  claims free themselves); the claimer re-reads the store after claiming, so a job committed by
  another runner in the meantime is not run twice.

On file systems without working ``flock`` the lock falls back to the pid/host written in the
file: a holder on this host whose pid is gone is stale and taken over; one on another host is
assumed alive.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from unnas.errors import UserError

_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class LockedError(UserError):
    """The run folder is used by another runner."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder_line(mode: str) -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "mode": mode,
                       "since": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": " ".join(sys.argv)[:300]}) + "\n"


def read_holders(path: Path) -> list[dict]:
    """Holder records of a lock file (unparseable lines are ignored)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "pid" in rec:
            out.append(rec)
    return out


def _is_live(rec: dict) -> bool:
    return rec.get("host") != socket.gethostname() or pid_alive(int(rec.get("pid", -1)))


def describe(holders: list[dict]) -> str:
    if not holders:
        return "another process"
    return "; ".join(f"pid {h.get('pid')} on host {h.get('host')} since {h.get('since', '?')}"
                     + (f" ({h['argv']})" if h.get("argv") else "") for h in holders)


class RunLock:
    """Exclusive (or, with ``shared=True``, joinable) lock on a run folder."""

    def __init__(self, run_dir: str | Path, shared: bool = False, log: Callable[[str], None] | None = None):
        self.path = Path(run_dir) / ".lock"
        self.shared = shared
        self.log = log
        self.fd: int | None = None
        self.took_over: list[dict] = []  # stale holders found when the lock was taken

    def acquire(self) -> "RunLock":
        mode = "join" if self.shared else "exclusive"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        flock_works = True
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holders = [h for h in read_holders(self.path) if _is_live(h)]
            hint = ("; start every runner with --join to share it" if self.shared or
                    any(h.get("mode") == "join" for h in holders) else "")
            raise LockedError("run folder", str(self.path.parent), None,
                              message=f"in use by {describe(holders)}{hint}") from None
        except OSError as e:
            if e.errno not in _NO_LOCKING:
                os.close(fd)
                raise
            flock_works = False
        previous = read_holders(self.path)
        live = [h for h in previous if _is_live(h) and h.get("pid") != os.getpid()]
        if not flock_works and live and not (self.shared and all(h.get("mode") == "join" for h in live)):
            os.close(fd)
            raise LockedError("run folder", str(self.path.parent), None,
                              message=f"in use by {describe(live)} (this file system has no flock: delete "
                                      f"{self.path} if that runner is gone)")
        if flock_works:  # the kernel says nobody holds it exclusively: earlier holders are gone
            live = [h for h in live if self.shared and h.get("mode") == "join"]
        self.took_over = [h for h in previous if h not in live]
        if self.took_over and self.log:
            self.log(f"took over the lock of {describe(self.took_over)} (no longer running)")
        text = "".join(json.dumps(h) + "\n" for h in live) + _holder_line(mode)
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            rest = [h for h in read_holders(self.path) if h.get("pid") != os.getpid() and _is_live(h)]
            text = "".join(json.dumps(h) + "\n" for h in rest)
            os.ftruncate(self.fd, 0)
            if text:
                os.pwrite(self.fd, text.encode(), 0)
        except OSError:
            pass
        finally:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class Claims:
    """Per-job claims of joined runners (see the module docstring)."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "claims"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.held: dict[str, int] = {}

    def claim(self, job_id: str) -> bool:
        """True if this runner now holds ``job_id`` (until :meth:`release`)."""
        if job_id in self.held:
            return True
        path = self.dir / job_id
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_line("claim").encode(), 0)
        self.held[job_id] = fd
        return True

    def release(self, job_id: str) -> None:
        fd = self.held.pop(job_id, None)
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def release_all(self) -> None:
        for job_id in list(self.held):
            self.release(job_id)
