"""CPU seconds of a process or of one of this process's threads, from Linux ``/proc``.

User + system time in clock ticks (10 ms on most kernels): read around a few epochs, not
around one call.
"""

from __future__ import annotations

import os


def _stat_seconds(path: str) -> float:
    with open(path, encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # the name may hold spaces: split after it
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far.

    Raises:
        OSError: no process ``pid`` (any more).
    """
    return _stat_seconds(f"/proc/{pid}/stat")


def thread_cpu_seconds(thread_id: int) -> float:
    """User + system CPU seconds of this process's thread ``thread_id`` (a native id) so far.

    Raises:
        OSError: no such thread (any more).
    """
    return _stat_seconds(f"/proc/self/task/{thread_id}/stat")
