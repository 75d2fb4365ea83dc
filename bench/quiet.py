"""How much CPU other processes used during a measurement, so that a load point disturbed by them is retried.

The benchmark's processes are this one and its descendants (servers, ``wrk``); everything else is foreign.
A foreign process's CPU time is read from ``/proc/<pid>/stat`` (its own and that of its reaped children, so
short-lived commands started by a long-lived shell or test runner are counted too).
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
KTHREADD = 2


def _stat_fields(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(root: int, parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


class CpuSnapshot:
    """CPU ticks (own + reaped children) of every process, and which of them are the benchmark's."""

    def __init__(self) -> None:
        self.ticks: dict[int, int] = {}
        parents: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            fields = _stat_fields(entry.name)
            if fields is None:
                continue
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            if pid == KTHREADD or parents[pid] == KTHREADD:
                continue  # kernel threads: mostly the loopback traffic of the benchmark itself
            self.ticks[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        self.ours = _descendants(os.getpid(), parents)


def foreign_cpu_seconds(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """CPU seconds used between two snapshots by processes that are not the benchmark's."""
    ours = before.ours | after.ours
    used = 0
    for pid, ticks in after.ticks.items():
        if pid in ours:
            continue
        used += ticks - before.ticks.get(pid, 0)
    return max(0, used) / TICKS
