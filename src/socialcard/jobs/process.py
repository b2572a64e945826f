"""This process as a runner of jobs: its identity (host, boot, pid and its start) and the
jobs it owns.

A job row names its owner. A job was interrupted (`service.recover`) when its owner is a
process of this machine that no longer exists (its pid gone, or given to a process started
later), or another machine's whose heartbeat is older than `jobs.stale_seconds`. On this
machine the heartbeat is not needed, nor trusted: on SQLite a rules run holds the write lock
until it commits, so its heartbeat cannot be written meanwhile.
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


def _started(pid: int) -> str:
    """When the process started (clock ticks since boot, Linux), so that a pid the system
    gave to another process since is not taken for the job's owner; "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return ""
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


@dataclass(frozen=True)
class Owner:
    host: str
    boot: str
    pid: int
    started: str = ""

    def __str__(self) -> str:
        return f"{self.host}|{self.boot}|{self.pid}|{self.started}"

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        if not text:
            return None
        parts = text.split("|")
        if len(parts) not in (3, 4):
            return None
        try:
            return cls(parts[0], parts[1], int(parts[2]), parts[3] if len(parts) == 4 else "")
        except ValueError:
            return None


def me() -> Owner:
    """This process (the pid read each time: a forked worker is another owner)."""
    pid = os.getpid()
    return Owner(socket.gethostname()[:80], _boot_id(), pid, _started(pid))


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


def _pid_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return not started or _started(pid) in ("", started)


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
        return who.pid != here.pid and _pid_alive(who.pid, who.started)
    return heartbeat_at is not None and now - heartbeat_at < timedelta(seconds=stale)
