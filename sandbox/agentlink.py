"""How the API server and `ctl` wake the agent host: one datagram to DIR/agent.sock (best effort).

The agent host also polls the database on its own, so a lost poke only delays work, never loses it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

SOCKET_NAME = "agent.sock"
PIDFILE_NAME = "agent.pid"


def socket_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / SOCKET_NAME


def poke(state_dir: str | os.PathLike[str]) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"w", str(socket_path(state_dir)))
    except OSError:
        pass
