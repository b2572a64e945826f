"""This process as a runner of jobs: its identity (host, boot, pid) and the jobs it owns.

A job row names its owner. A job whose owner is this machine's process that no longer
exists, or another machine's whose heartbeat is older than `jobs.stale_seconds`, was
interrupted (`service.recover`).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_lock = threading.Lock()
_mine: set[int] = set()


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    host: str
    boot: str
    pid: int

    def __str__(self) -> str:
        return f"{self.host}|{self.boot}|{self.pid}"

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        if not text:
            return None
        host, _, rest = text.partition("|")
        boot, _, pid = rest.rpartition("|")
        try:
            return cls(host, boot, int(pid))
        except ValueError:
            return None


def me() -> Owner:
    """This process (the pid read each time: a forked worker is another owner)."""
    return Owner(socket.gethostname()[:80], _boot_id(), os.getpid())


def adopt(job_id: int) -> None:
    """Record that this process runs (or is about to run) the job."""
    with _lock:
        _mine.add(job_id)


def release(job_id: int) -> None:
    with _lock:
        _mine.discard(job_id)


def owns(job_id: int) -> bool:
    with _lock:
        return job_id in _mine


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def is_alive(
    job_id: int, owner: str | None, heartbeat_at: datetime | None, *, now: datetime, stale: float
) -> bool:
    """Whether the job's owner still runs it: this process by its own record, a process of
    this machine (same boot) by its pid, another machine's by its heartbeat's age."""
    if owns(job_id):
        return True
    who = Owner.parse(owner)
    here = me()
    if who is not None and who.host == here.host and who.boot and who.boot == here.boot:
        return who.pid != here.pid and _pid_alive(who.pid)
    return heartbeat_at is not None and now - heartbeat_at < timedelta(seconds=stale)
