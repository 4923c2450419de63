"""`HostBase`: the agent host's state and the small helpers every part of it uses (event loop, wake-up, background
tasks, instance directories, reaping children)."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox import filewrite, isolation
from sandbox.agent.db import Db
from sandbox.agent.model import INSTANCES_DIR, Instance, Job, Result, log


class HostBase:
    def __init__(self, state_dir: Path, mode: str) -> None:
        self.dir = state_dir
        self.mode = mode
        self.tools = isolation.find_tools()
        # SendFile writes from this process through the instance's root (filewrite.py), or, where openat2 is missing
        # or SANDBOX_FILE_WRITES=wrapper asks for it, with isolation.FILE_WRAPPER run inside the instance.
        self.direct_files = os.environ.get("SANDBOX_FILE_WRITES", "") != "wrapper" and filewrite.available()
        self.db = Db(state_dir)
        self.instances: dict[str, Instance] = {}
        self.jobs: dict[tuple[str, str], Job] = {}
        self.file_jobs: dict[tuple[str, str], Job] = {}
        self.children: dict[int, Callable[[int], None]] = {}
        self.results: list[tuple[Job | None, Result]] = []
        self.boot_events: list[str] = []
        self.stop_requested = False
        self.closing = False
        self.heartbeat_due = True
        self.last_heartbeat = 0.0
        self.sock: socket.socket | None = None
        self.me = pwd.getpwuid(os.geteuid()).pw_name
        self.script_base: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._results_ready: asyncio.Event | None = None
        self._init_sem: asyncio.Semaphore | None = None
        self._bg: set[asyncio.Future[Any]] = set()

    # ---- small helpers

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _background(self, aw: Any) -> None:
        fut = asyncio.ensure_future(aw)
        self._bg.add(fut)
        fut.add_done_callback(self._bg_done)

    def _bg_done(self, fut: asyncio.Future[Any]) -> None:
        self._bg.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("background task failed", exc_info=fut.exception())

    def inst_dir(self, instance_id: str) -> Path:
        return self.dir / INSTANCES_DIR / instance_id

    # ---- children

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            callback = self.children.pop(pid, None)
            if callback is not None:
                try:
                    callback(status)
                except Exception:
                    log.exception("exit handler of pid %d failed", pid)
