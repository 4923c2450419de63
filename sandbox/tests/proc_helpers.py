"""Finding a test's own processes in /proc (shared by the unit and integration tests)."""

from __future__ import annotations

import os

from sandbox import isolation


def pids_matching(needle: str) -> list[int]:
    """Live processes (not zombies, not this one) whose command line contains `needle`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if needle.encode() in cmd:
            info = isolation.read_stat(int(name))
            if info is not None and info.state not in ("Z", "X") and int(name) != os.getpid():
                found.append(int(name))
    return found
