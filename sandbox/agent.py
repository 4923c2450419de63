"""The agent host: one asyncio process that plays the Cloud Assistant agent of every sandbox instance.

It picks up work the API actions leave in `invocation_instances` / `file_task_instances` (contract: INTERNALS.md,
"Work hand-off between actions and the agent host"), runs it on the instances (`isolation.py`: namespaces or plain
processes), writes the results back, heartbeats, follows instance power changes and runs the schedules.

Design (what keeps 1,000 instances cheap on a small box):
- woken by a datagram on DIR/agent.sock (`agentlink.poke`) and otherwise polling every POLL_INTERVAL;
- all database work on one dedicated thread (the event loop never waits on SQLite locks), claims and results in
  batched transactions;
- processes started with posix_spawn and reaped by one SIGCHLD handler (no thread per child); the agent host is a
  child subreaper, so nothing it started can escape it while it lives, and its direct children get
  PR_SET_PDEATHSIG (via `setpriv --pdeathsig`), so instances' namespaces die with it even on SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import pwd
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sandbox import agentlink, isolation, store

log = logging.getLogger("sandbox.agent")

POLL_INTERVAL = 0.15          # seconds between database polls when nobody pokes
HEARTBEAT_INTERVAL = 20.0
EOF_GRACE = 0.25              # after a run's main process exits, wait this long for the rest of its output
INIT_READY_TIMEOUT = 20.0     # one namespace init must report ready within this
STARTUP_INIT_WAIT = 45.0      # before writing the pidfile, wait at most this long for the initial inits
INIT_CONCURRENCY = 8
INIT_MAX_FAILURES = 3
READY_TIMEOUT = 60.0          # start_agent_host: how long to wait for the pidfile
ACCOUNT_ID = "sandbox-account"
LOCK_NAME = "agent.lock"
SCRIPT_BASE_NAME = "agent.scripts"  # process mode: where the running agent host keeps scripts (removed on exit)
SCRIPT_BASE_PREFIX = "sandbox-assist-"
INSTANCES_DIR = "instances"
WINDOWS_TYPES = frozenset({"RunBatScript", "RunPowerShellScript"})
REPEATING = frozenset({"Period", "EveryReboot", "NextRebootOnly"})
TERMINAL = store.TERMINAL_STATUSES
PR_SET_CHILD_SUBREAPER = 36
# Process mode: every run carries this variable (value: the state directory), so a new agent host can find what a
# killed one left running (namespaces need nothing: an instance's processes die with its PID 1).
RUN_ENV_MARKER = "SANDBOX_AGENT_DIR"

# ErrorInfo texts (reference §4.1 / §4.2, old style)
RUN_INFO = {
    "AccountNotExists": "the specified account does not exists",
    "DirectoryNotExists": "the specified directory does not exists",
    "ExecutionTimeout": "the command execution has been timeout",
    "ExecutionInterrupted": "the command execution has been interrupted",
    "ExitCodeNonzero": "the command execution exit code is not zero",
    "ExecutionException": "the command execution got an exception",
    "InstanceNotRunning": "the instance is not running when create task",
    "InstanceNotExists": "the specified instance does not exists",
    "ClientNotRunning": "the aliyun service is not running on the instance",
}
WINDOWS_INFO = ("the command execution got an exception: the sandbox cannot execute Windows scripts "
                "(RunBatScript/RunPowerShellScript); Windows sandbox instances only simulate the inventory")
FILE_INFO = {
    "AccountNotExists": "Owner not exists",
    "UserGroupNotExists": "Group not exists",
    "FileAlreadyExists": "File already exists",
    "FilePathInvalid": "File path is invalid",
    "FileNameInvalid": "File name is invalid",
    "FileAuthorityInvalid": "Mode is invalid",
    "FileCreateFail": "the file creation is failed due to unknown error",
    "InstanceNotRunning": "the instance is not running when create task",
    "InstanceNotExists": "the specified instance does not exists",
    "ClientNotRunning": "the aliyun service is not running on the instance",
}

T = TypeVar("T")


# --------------------------------------------------------------------------------------------------------------------
# State kept in memory


@dataclass
class InitProc:
    """A namespaces instance's PID 1 (`init_pid`, host pid) and the `unshare` process above it (`pid`)."""

    pid: int
    init_pid: int = 0
    ready: bool = False
    exited: asyncio.Future[int] | None = None
    expected_exit: bool = False


@dataclass
class Instance:
    instance_id: str
    region_id: str
    name: str
    hostname: str
    os_type: str
    status: str
    agent_installed: bool
    agent_running: bool
    boot_count: int
    init: InitProc | None = None
    init_task: asyncio.Task[None] | None = None
    init_failures: int = 0
    init_error: str = ""
    next_init_attempt: float = 0.0

    @property
    def linux(self) -> bool:
        return self.os_type.lower() != "windows"

    @property
    def running(self) -> bool:
        return self.status == "Running"

    @property
    def agent_ok(self) -> bool:
        return self.running and self.agent_installed and self.agent_running


@dataclass
class Job:
    """One run of an invocation on one instance (kind 'run') or one file write (kind 'file')."""

    kind: str
    invoke_id: str
    instance_id: str
    run_no: int
    start_time: float
    timeout: float
    repeat_mode: str = "Once"
    frequency: str = ""
    created_at: float = 0.0
    pid: int = 0
    out_fd: int = -1
    st_fd: int = -1
    tail: isolation.OutputTail = field(default_factory=isolation.OutputTail)
    status_buf: bytearray = field(default_factory=bytearray)
    exit_status: int | None = None
    eof: bool = False
    kill_reason: str | None = None
    done: bool = False
    timer: asyncio.TimerHandle | None = None
    grace: asyncio.TimerHandle | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.invoke_id, self.instance_id)


@dataclass
class Result:
    kind: str
    invoke_id: str
    instance_id: str
    run_no: int
    status: str
    error_code: str = ""
    error_info: str = ""
    exit_code: int | None = None
    output: bytes = b""
    dropped: int = 0
    start_time: float | None = None
    finish_time: float = 0.0
    repeat_mode: str = "Once"
    frequency: str = ""
    timeout: int = 60
    created_at: float = 0.0
    requeue: bool = False  # interrupted by the sandbox (not by the user or the command): repeating rows go on


# --------------------------------------------------------------------------------------------------------------------
# Database side (runs on the database thread only)


class Db:
    """One SQLite connection used from one worker thread; `call(fn, ...)` runs fn(conn, ...) there."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-db")
        self.conn: sqlite3.Connection | None = None

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self.conn is None:
            self.conn = store.connect(self.state_dir)
        return fn(self.conn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._run, fn, args)

    def close(self) -> None:
        def _close() -> None:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
        with contextlib.suppress(Exception):
            self.pool.submit(_close).result(timeout=10)
        self.pool.shutdown(wait=False)


_RUN_CANDIDATES = """
SELECT ii.invoke_id, ii.instance_id, ii.run_no, ii.status,
       i.command_id, i.command_type, i.command_content, i.parameters, i.repeat_mode, i.frequency, i.timeout,
       i.working_dir, i.username, i.region_id, i.created_at,
       n.status AS inst_status, n.agent_installed, n.agent_running, n.os_type, n.instance_name,
       n.region_id AS inst_region
FROM invocation_instances ii
JOIN invocations i ON i.invoke_id = ii.invoke_id
LEFT JOIN instances n ON n.instance_id = ii.instance_id
WHERE (ii.status = 'Pending' AND (ii.next_run_at IS NULL OR ii.next_run_at <= ?))
   OR (ii.status = 'Scheduled' AND ii.next_run_at IS NOT NULL AND ii.next_run_at <= ?
       AND n.status = 'Running' AND n.agent_installed = 1 AND n.agent_running = 1)
ORDER BY ii.next_run_at
LIMIT 5000
"""

_FILE_CANDIDATES = """
SELECT f.invoke_id, f.instance_id, t.content, t.name, t.target_dir, t.file_owner, t.file_group, t.file_mode,
       t.overwrite, t.timeout,
       n.status AS inst_status, n.agent_installed, n.agent_running, n.os_type
FROM file_task_instances f
JOIN file_tasks t ON t.invoke_id = f.invoke_id
LEFT JOIN instances n ON n.instance_id = f.instance_id
WHERE f.status = 'Pending'
LIMIT 5000
"""

_TERMINAL_SQL = ", ".join(f"'{s}'" for s in sorted(TERMINAL))


def _db_init(conn: sqlite3.Connection) -> None:
    store.init_schema(conn)


def _db_snapshot(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[tuple[str, str, int]]]:
    instances = [dict(r) for r in conn.execute(
        "SELECT instance_id, region_id, instance_name, hostname, os_type, status, agent_installed, agent_running,"
        " boot_count FROM instances"
    )]
    stopping = [(r[0], r[1], int(r[2])) for r in conn.execute(
        "SELECT invoke_id, instance_id, run_no FROM invocation_instances WHERE status = 'Stopping'"
    )]
    return instances, stopping


def _abort_row(conn: sqlite3.Connection, row: sqlite3.Row, code: str, now: float) -> bool:
    cur = conn.execute(
        "UPDATE invocation_instances SET status = 'Aborted', error_code = ?, error_info = ?, finish_time = ?,"
        " update_time = ?, next_run_at = NULL"
        " WHERE invoke_id = ? AND instance_id = ? AND status = 'Pending' AND run_no = ?",
        (code, RUN_INFO[code], now, now, row["invoke_id"], row["instance_id"], row["run_no"]),
    )
    return cur.rowcount == 1


def _db_claim(conn: sqlite3.Connection, now: float, available: dict[str, str]
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Claim due runs and pending file writes on `available` instances (id -> 'ready' | 'broken').

    Pending work on instances that cannot take it is aborted (InstanceNotExists / InstanceNotRunning /
    ClientNotRunning). Returns (claimed runs, claimed file writes); each claimed run has its new run_no and
    start_time."""
    runs = conn.execute(_RUN_CANDIDATES, (now, now)).fetchall()
    files = conn.execute(_FILE_CANDIDATES).fetchall()
    if not runs and not files:
        return [], []
    claimed: list[dict[str, Any]] = []
    claimed_files: list[dict[str, Any]] = []
    touched: set[str] = set()
    with store.transaction(conn):
        for row in runs:
            verdict = _availability(row, available)
            if verdict != "ok":
                if verdict and row["status"] == "Pending" and _abort_row(conn, row, verdict, now):
                    touched.add(row["invoke_id"])
                continue
            cur = conn.execute(
                "UPDATE invocation_instances SET status = 'Running', run_no = run_no + 1, start_time = ?,"
                " update_time = ?, next_run_at = NULL, finish_time = NULL"
                " WHERE invoke_id = ? AND instance_id = ? AND status IN ('Pending', 'Scheduled') AND run_no = ?",
                (now, now, row["invoke_id"], row["instance_id"], row["run_no"]),
            )
            if cur.rowcount != 1:
                continue
            run_no = int(row["run_no"]) + 1
            conn.execute(
                "INSERT INTO executions(invoke_id, instance_id, run_no, starts) VALUES (?, ?, ?, 1)"
                " ON CONFLICT(invoke_id, instance_id, run_no) DO UPDATE SET starts = starts + 1",
                (row["invoke_id"], row["instance_id"], run_no),
            )
            item = dict(row)
            item["run_no"] = run_no
            item["start_time"] = now
            item["broken"] = available.get(row["instance_id"]) == "broken"
            claimed.append(item)
        for row in files:
            verdict = _availability(row, available)
            if verdict != "ok":
                if verdict:
                    conn.execute(
                        "UPDATE file_task_instances SET status = 'Aborted', error_code = ?, error_info = ?,"
                        " finish_time = ?, update_time = ?"
                        " WHERE invoke_id = ? AND instance_id = ? AND status = 'Pending'",
                        (verdict, FILE_INFO[verdict], now, now, row["invoke_id"], row["instance_id"]),
                    )
                continue
            cur = conn.execute(
                "UPDATE file_task_instances SET status = 'Running', attempts = attempts + 1, start_time = ?,"
                " update_time = ? WHERE invoke_id = ? AND instance_id = ? AND status = 'Pending'",
                (now, now, row["invoke_id"], row["instance_id"]),
            )
            if cur.rowcount == 1:
                item = dict(row)
                item["start_time"] = now
                item["broken"] = available.get(row["instance_id"]) == "broken"
                claimed_files.append(item)
        if claimed:
            conn.executemany("UPDATE instances SET last_invoked = ? WHERE instance_id = ?",
                             [(now, iid) for iid in {c["instance_id"] for c in claimed}])
        _drop_finished_invisible_commands(conn, touched)
    return claimed, claimed_files


def _availability(row: sqlite3.Row, available: dict[str, str]) -> str:
    """'ok', an abort ErrorCode, or '' (not now, try again later)."""
    if row["inst_status"] is None:
        return "InstanceNotExists"
    if row["inst_status"] != "Running":
        return "InstanceNotRunning"
    if not row["agent_installed"] or not row["agent_running"]:
        return "ClientNotRunning"
    return "ok" if row["instance_id"] in available else ""


def _drop_finished_invisible_commands(conn: sqlite3.Connection, invoke_ids: Iterable[str]) -> None:
    """KeepCommand=false: delete the hidden command once none of its invocations has work left."""
    for invoke_id in invoke_ids:
        row = conn.execute(
            "SELECT c.command_id FROM invocations i JOIN commands c ON c.command_id = i.command_id"
            " WHERE i.invoke_id = ? AND c.visible = 0", (invoke_id,)
        ).fetchone()
        if row is None:
            continue
        busy = conn.execute(
            "SELECT 1 FROM invocations i JOIN invocation_instances ii ON ii.invoke_id = i.invoke_id"  # noqa: S608
            f" WHERE i.command_id = ? AND ii.status NOT IN ({_TERMINAL_SQL}) LIMIT 1", (row[0],)
        ).fetchone()
        if busy is None:
            conn.execute("DELETE FROM commands WHERE command_id = ? AND visible = 0", (row[0],))
            conn.execute("DELETE FROM command_tags WHERE command_id = ?", (row[0],))


def _next_run(frequency: str, timeout: int, created_at: float, now: float) -> float | None:
    from sandbox import schedule

    try:
        sched = schedule.parse_frequency(frequency, int(timeout), now=now, anchor=created_at or None)
        return sched.next_after(now)
    except Exception as exc:  # a Frequency the API accepted should parse; if not, the schedule ends here
        log.warning("cannot compute the next run of %r: %s", frequency, exc)
        return None


def _db_finish(conn: sqlite3.Connection, results: list[Result]) -> None:
    now = store.now()
    touched: set[str] = set()
    with store.transaction(conn):
        for r in results:
            if r.kind == "file":
                _finish_file(conn, r, now)
            else:
                if _finish_run(conn, r, now):
                    touched.add(r.invoke_id)
        _drop_finished_invisible_commands(conn, touched)


def _finish_run(conn: sqlite3.Connection, r: Result, now: float) -> bool:
    cur = conn.execute(
        "SELECT status, run_no FROM invocation_instances WHERE invoke_id = ? AND instance_id = ?",
        (r.invoke_id, r.instance_id),
    ).fetchone()
    if cur is None or int(cur["run_no"]) != r.run_no or cur["status"] not in ("Running", "Stopping"):
        return False
    status, code, info, exit_code = r.status, r.error_code, r.error_info, r.exit_code
    stopping = cur["status"] == "Stopping"
    if stopping and status != "Terminated":
        # StopInvocation arrived while the run was going: the run counts as stopped.
        status, code, info = "Terminated", "ExecutionInterrupted", RUN_INFO["ExecutionInterrupted"]
    mode = r.repeat_mode
    if mode in ("Period", "EveryReboot") or (mode == "NextRebootOnly" and r.requeue):
        conn.execute(
            "INSERT OR REPLACE INTO run_history(invoke_id, instance_id, run_no, status, exit_code, output, dropped,"
            " error_code, error_info, start_time, finish_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (r.invoke_id, r.instance_id, r.run_no, status, exit_code, r.output, r.dropped, code, info,
             r.start_time, r.finish_time),
        )
    new_status, next_run = status, None
    if not stopping:
        if mode == "Period":
            next_run = _next_run(r.frequency, r.timeout, r.created_at, max(now, r.finish_time))
            if next_run is not None:
                new_status = "Scheduled"
        elif mode == "EveryReboot" or (mode == "NextRebootOnly" and r.requeue):
            new_status = "Scheduled"
    conn.execute(
        "UPDATE invocation_instances SET status = ?, exit_code = ?, output = ?, dropped = ?, error_code = ?,"
        " error_info = ?, finish_time = ?, update_time = ?, next_run_at = ?"
        " WHERE invoke_id = ? AND instance_id = ? AND run_no = ?",
        (new_status, exit_code, r.output, r.dropped, code, info, r.finish_time, now, next_run,
         r.invoke_id, r.instance_id, r.run_no),
    )
    return True


def _finish_file(conn: sqlite3.Connection, r: Result, now: float) -> None:
    if r.requeue:
        conn.execute(
            "UPDATE file_task_instances SET status = 'Pending', start_time = NULL, update_time = ?"
            " WHERE invoke_id = ? AND instance_id = ? AND status = 'Running'",
            (now, r.invoke_id, r.instance_id),
        )
        return
    conn.execute(
        "UPDATE file_task_instances SET status = ?, error_code = ?, error_info = ?, finish_time = ?, update_time = ?"
        " WHERE invoke_id = ? AND instance_id = ? AND status = 'Running'",
        (r.status, r.error_code, r.error_info, r.finish_time, now, r.invoke_id, r.instance_id),
    )


def _db_recover(conn: sqlite3.Connection) -> int:
    """A new agent host: rows a previous one left Running/Stopping are interrupted runs (INTERNALS.md)."""
    now = store.now()
    rows = conn.execute(
        "SELECT ii.invoke_id, ii.instance_id, ii.run_no, ii.status, ii.start_time, i.repeat_mode, i.frequency,"
        " i.timeout, i.created_at FROM invocation_instances ii JOIN invocations i ON i.invoke_id = ii.invoke_id"
        " WHERE ii.status IN ('Running', 'Stopping')"
    ).fetchall()
    results = [
        Result("run", r["invoke_id"], r["instance_id"], int(r["run_no"]), "Error", "ExecutionInterrupted",
               RUN_INFO["ExecutionInterrupted"], start_time=r["start_time"], finish_time=now,
               repeat_mode=r["repeat_mode"], frequency=r["frequency"], timeout=int(r["timeout"]),
               created_at=float(r["created_at"]), requeue=True)
        for r in rows
    ]
    # Orphan rows of invocations that vanished: nothing to schedule, just end them.
    with store.transaction(conn):
        conn.execute(
            "UPDATE invocation_instances SET status = 'Error', error_code = 'ExecutionInterrupted', error_info = ?,"
            " finish_time = ?, update_time = ? WHERE status IN ('Running', 'Stopping')"
            " AND invoke_id NOT IN (SELECT invoke_id FROM invocations)",
            (RUN_INFO["ExecutionInterrupted"], now, now),
        )
        # File writes are idempotent enough to retry (a finished Overwrite=false write then reports
        # FileAlreadyExists); give up after three attempts.
        conn.execute(
            "UPDATE file_task_instances SET status = 'Pending', start_time = NULL, update_time = ?"
            " WHERE status = 'Running' AND attempts < 3", (now,)
        )
        conn.execute(
            "UPDATE file_task_instances SET status = 'Error', error_code = 'FileCreateFail', error_info = ?,"
            " finish_time = ?, update_time = ? WHERE status = 'Running'",
            (FILE_INFO["FileCreateFail"], now, now),
        )
    if results:
        _db_finish(conn, results)
    return len(results)


def _db_heartbeat(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(
        "UPDATE instances SET last_heartbeat = ?"
        " WHERE status = 'Running' AND agent_installed = 1 AND agent_running = 1",
        (now,),
    )


def _db_booted(conn: sqlite3.Connection, instance_ids: list[str], now: float) -> None:
    """Instances that just (re)booted: pending agent installs take effect, boot-triggered rows become due."""
    with store.transaction(conn):
        for iid in instance_ids:
            conn.execute(
                "UPDATE instances SET agent_installed = 1, agent_running = 1, agent_install_pending = 0"
                " WHERE instance_id = ? AND agent_install_pending = 1", (iid,)
            )
            conn.execute(
                "UPDATE invocation_instances SET next_run_at = ?, update_time = ?"
                " WHERE instance_id = ? AND status = 'Scheduled' AND next_run_at IS NULL AND invoke_id IN"
                " (SELECT invoke_id FROM invocations WHERE repeat_mode IN ('NextRebootOnly', 'EveryReboot'))",
                (now, now, iid),
            )
        _db_heartbeat(conn, now)


def _db_terminate_orphans(conn: sqlite3.Connection, keys: list[tuple[str, str, int]], now: float) -> None:
    """'Stopping' rows nobody is running (nothing to kill): Terminated right away."""
    with store.transaction(conn):
        for invoke_id, instance_id, run_no in keys:
            conn.execute(
                "UPDATE invocation_instances SET status = 'Terminated', error_code = 'ExecutionInterrupted',"
                " error_info = ?, finish_time = ?, update_time = ?, next_run_at = NULL"
                " WHERE invoke_id = ? AND instance_id = ? AND run_no = ? AND status = 'Stopping'",
                (RUN_INFO["ExecutionInterrupted"], now, now, invoke_id, instance_id, run_no),
            )
        _drop_finished_invisible_commands(conn, {k[0] for k in keys})


# --------------------------------------------------------------------------------------------------------------------
# The agent host


class AgentHost:
    def __init__(self, state_dir: Path, mode: str) -> None:
        self.dir = state_dir
        self.mode = mode
        self.tools = isolation.find_tools()
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

    # ---- main

    async def main(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._results_ready = asyncio.Event()
        self._init_sem = asyncio.Semaphore(INIT_CONCURRENCY)
        loop = self.loop
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._request_stop)
        self._bind_socket()
        if self.mode == "process":
            # Outside DIR on purpose: DIR may be 0700, and runs as other users must reach their script.
            self.script_base = Path(tempfile.mkdtemp(prefix=SCRIPT_BASE_PREFIX))
            self.script_base.chmod(0o711)
            (self.dir / SCRIPT_BASE_NAME).write_text(f"{self.script_base}\n")
        writer = asyncio.ensure_future(self._writer())
        try:
            await self.db.call(_db_init)
            recovered = await self.db.call(_db_recover)
            if recovered:
                log.info("recovered %d interrupted rows left by a previous agent host", recovered)
            await self._tick()
            starting = [i.init_task for i in self.instances.values() if i.init_task is not None]
            if starting:
                t0 = time.monotonic()
                await asyncio.wait(starting, timeout=STARTUP_INIT_WAIT)
                log.info("%d namespace inits started in %.2fs", len(starting), time.monotonic() - t0)
            await self._heartbeat(force=True)
            if self.stop_requested:
                return 0
            self._write_pidfile()
            log.info("agent host ready (pid %d, isolation %s, %d instances)", os.getpid(), self.mode,
                     len(self.instances))
            while not self.stop_requested:
                assert self._wake is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
                self._wake.clear()
                if self.stop_requested:
                    break
                try:
                    await self._tick()
                except Exception:
                    log.exception("agent host tick failed")
                    await asyncio.sleep(POLL_INTERVAL)
        finally:
            await self._shutdown()
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer
        return 0

    def _request_stop(self) -> None:
        if not self.stop_requested:
            log.info("stop requested")
        self.stop_requested = True
        self.wake()

    def _bind_socket(self) -> None:
        path = agentlink.socket_path(self.dir)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(path))
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._on_poke)

    def _on_poke(self) -> None:
        assert self.sock is not None
        for _ in range(256):
            try:
                self.sock.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        self.wake()

    def _write_pidfile(self) -> None:
        path = self.dir / agentlink.PIDFILE_NAME
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(path)

    # ---- tick

    async def _tick(self) -> None:
        self._reap()
        instances, stopping = await self.db.call(_db_snapshot)
        if self.stop_requested:
            return
        self._reconcile(instances)
        if self.boot_events:
            booted, self.boot_events = self.boot_events, []
            await self.db.call(_db_booted, booted, store.now())
            for iid in booted:
                inst = self.instances.get(iid)
                if inst is not None:
                    self._write_boot_file(inst)
        await self._handle_stopping(stopping)
        available = {iid: state for iid, inst in self.instances.items() if (state := self._availability(inst))}
        claimed, claimed_files = await self.db.call(_db_claim, store.now(), available)
        for row in claimed:
            self._start_run(row)
        for row in claimed_files:
            self._start_file(row)
        await self._heartbeat()

    async def _heartbeat(self, force: bool = False) -> None:
        now = store.now()
        if force or self.heartbeat_due or now - self.last_heartbeat >= HEARTBEAT_INTERVAL:
            self.heartbeat_due = False
            self.last_heartbeat = now
            await self.db.call(_db_heartbeat, now)

    def _availability(self, inst: Instance) -> str:
        """'ready' (can run now), 'broken' (its namespace cannot start: fail the work), '' (not now)."""
        if not inst.agent_ok:
            return ""
        if self.mode != "namespaces" or not inst.linux:
            return "ready"
        if inst.init is not None and inst.init.ready and inst.init_task is None:
            return "ready"
        if inst.init_failures >= INIT_MAX_FAILURES and inst.init_task is None:
            return "broken"
        return ""

    # ---- instances

    def _reconcile(self, rows: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        for r in rows:
            iid = r["instance_id"]
            seen.add(iid)
            inst = self.instances.get(iid)
            fresh = Instance(iid, r["region_id"], r["instance_name"], r["hostname"], r["os_type"], r["status"],
                             bool(r["agent_installed"]), bool(r["agent_running"]), int(r["boot_count"]))
            if inst is None:
                self.instances[iid] = fresh
                self._first_sight(fresh)
                continue
            was_running, was_agent_ok, old_boot = inst.running, inst.agent_ok, inst.boot_count
            inst.region_id, inst.name, inst.hostname, inst.os_type = (fresh.region_id, fresh.name, fresh.hostname,
                                                                      fresh.os_type)
            inst.status, inst.agent_installed, inst.agent_running = fresh.status, fresh.agent_installed, \
                fresh.agent_running
            inst.boot_count = fresh.boot_count
            if inst.running and inst.boot_count != old_boot:
                log.info("instance %s booted (boot %d)", iid, inst.boot_count)
                self._kill_instance_jobs(iid, "instance")
                self._restart_init(inst)
                self.boot_events.append(iid)
            elif was_running and not inst.running:
                log.info("instance %s stopped", iid)
                self._kill_instance_jobs(iid, "instance")
                self._stop_init(inst)
            elif inst.running and not was_running:
                self._ensure_init(inst)
            elif was_agent_ok and not inst.agent_ok:
                self._kill_instance_jobs(iid, "agent")
            if inst.agent_ok and not was_agent_ok:
                self.heartbeat_due = True
            if inst.running and inst.init is None and inst.init_task is None:
                self._ensure_init(inst)
        for iid in set(self.instances) - seen:
            inst = self.instances.pop(iid)
            log.info("instance %s is gone", iid)
            self._kill_instance_jobs(iid, "instance")
            self._stop_init(inst)

    def _first_sight(self, inst: Instance) -> None:
        d = self.inst_dir(inst.instance_id)
        d.mkdir(parents=True, exist_ok=True)
        if self.mode == "process":
            (d / "home").mkdir(exist_ok=True)
        stored = self._read_boot_file(inst)
        if inst.running:
            self._ensure_init(inst)
            self.heartbeat_due = True
            if stored is not None and stored != inst.boot_count:
                self.boot_events.append(inst.instance_id)
                return
        if stored is None or not inst.running:
            self._write_boot_file(inst)

    def _read_boot_file(self, inst: Instance) -> int | None:
        try:
            return int((self.inst_dir(inst.instance_id) / "boot_count").read_text().strip())
        except (OSError, ValueError):
            return None

    def _write_boot_file(self, inst: Instance) -> None:
        with contextlib.suppress(OSError):
            (self.inst_dir(inst.instance_id) / "boot_count").write_text(f"{inst.boot_count}\n")

    # ---- namespace inits

    def _ensure_init(self, inst: Instance) -> None:
        if self.mode != "namespaces" or not inst.linux or not inst.running or self.closing:
            return
        if inst.init is not None or inst.init_task is not None:
            return
        if inst.init_failures >= INIT_MAX_FAILURES:
            return
        inst.init_task = asyncio.ensure_future(self._init_lifecycle(inst, restart=False))

    def _restart_init(self, inst: Instance) -> None:
        if self.mode != "namespaces" or not inst.linux:
            return
        if inst.init_task is not None:
            inst.init_task.cancel()
        inst.init_failures = 0
        inst.init_task = asyncio.ensure_future(self._init_lifecycle(inst, restart=True))

    def _stop_init(self, inst: Instance) -> None:
        if inst.init_task is not None:
            inst.init_task.cancel()
            inst.init_task = None
        if inst.init is not None:
            self._kill_init(inst.init)
            inst.init = None
        with contextlib.suppress(OSError):
            (self.inst_dir(inst.instance_id) / "init.pid").unlink()

    def _kill_init(self, init: InitProc) -> None:
        init.expected_exit = True
        for pid in (init.init_pid, init.pid):
            if pid > 0:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    async def _init_lifecycle(self, inst: Instance, restart: bool) -> None:
        me = asyncio.current_task()
        try:
            old = inst.init
            if old is not None:
                inst.init = None
                self._kill_init(old)
                if old.exited is not None:
                    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(asyncio.shield(old.exited), 10)
            delay = inst.next_init_attempt - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            assert self._init_sem is not None
            async with self._init_sem:
                if self.closing or not inst.running:
                    return
                init = await self._start_init(inst)
            if init is None:
                inst.init_failures += 1
                inst.next_init_attempt = time.monotonic() + 0.5 * inst.init_failures
                if inst.init_failures >= INIT_MAX_FAILURES:
                    log.error("instance %s: its namespace cannot start (%s); its work will fail", inst.instance_id,
                              inst.init_error)
                self.wake()
                return
            inst.init = init
            inst.init_failures = 0
            self.wake()
        finally:
            if inst.init_task is me:
                inst.init_task = None
                if inst.init is None and inst.running and not self.closing \
                        and inst.init_failures and inst.init_failures < INIT_MAX_FAILURES:
                    self.loop.call_soon(self._ensure_init, inst)

    async def _start_init(self, inst: Instance) -> InitProc | None:
        d = self.inst_dir(inst.instance_id)
        for sub in ("upper", "work", "merged"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        argv = isolation.init_argv(self.tools, d / "merged", d / "upper", d / "work",
                                   isolation.hostname_ok(inst.hostname), self.dir)
        st_r, st_w = os.pipe()
        life_r, life_w = os.pipe()
        logfd = os.open(d / "init.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            pid = isolation.spawn(argv, {"PATH": isolation.ENV_PATH},
                                  {0: devnull, 1: logfd, 2: logfd, 3: st_w, 4: life_r, 5: life_w})
        except OSError as exc:
            inst.init_error = f"cannot start unshare: {exc}"
            for fd in (st_r, st_w, life_r, life_w, logfd, devnull):
                os.close(fd)
            return None
        for fd in (st_w, life_r, life_w, logfd, devnull):
            os.close(fd)
        init = InitProc(pid=pid, exited=self.loop.create_future())
        self.children[pid] = lambda status: self._on_init_exit(inst, init, status)
        line = b""
        try:
            line = await asyncio.wait_for(self._read_line(st_r), INIT_READY_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError) as exc:
            self._kill_init(init)
            os.close(st_r)
            if isinstance(exc, asyncio.CancelledError):
                raise
            inst.init_error = "timed out waiting for the namespace init"
            return None
        os.close(st_r)
        words = line.split()
        if len(words) != 2 or words[0] != b"ready" or not words[1].isdigit():
            self._kill_init(init)
            inst.init_error = _tail_text(d / "init.log") or "the namespace init failed"
            log.warning("instance %s: namespace init failed: %s", inst.instance_id, inst.init_error)
            return None
        init.init_pid = int(words[1])
        init.ready = True
        info = isolation.read_stat(init.init_pid)
        unshare_info = isolation.read_stat(pid)
        with contextlib.suppress(OSError):
            (d / "init.pid").write_text(f"{init.init_pid} {info.starttime if info else 0}\n"
                                        f"{pid} {unshare_info.starttime if unshare_info else 0}\n")
        return init

    async def _read_line(self, fd: int) -> bytes:
        os.set_blocking(fd, False)
        fut: asyncio.Future[bytes] = self.loop.create_future()
        buf = bytearray()

        def on_readable() -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            buf.extend(data)
            if (not data or b"\n" in buf) and not fut.done():
                fut.set_result(bytes(buf).split(b"\n", 1)[0])

        self.loop.add_reader(fd, on_readable)
        try:
            return await fut
        finally:
            self.loop.remove_reader(fd)

    def _on_init_exit(self, inst: Instance, init: InitProc, status: int) -> None:
        if init.exited is not None and not init.exited.done():
            init.exited.set_result(status)
        if inst.init is init:
            inst.init = None
            with contextlib.suppress(OSError):
                (self.inst_dir(inst.instance_id) / "init.pid").unlink()
            if not init.expected_exit and not self.closing:
                log.warning("instance %s: namespace init exited unexpectedly (status %d); restarting it",
                            inst.instance_id, status)
                self._kill_instance_jobs(inst.instance_id, "init")
                if inst.running and self.instances.get(inst.instance_id) is inst:
                    inst.next_init_attempt = time.monotonic() + 0.5
                    self._ensure_init(inst)

    # ---- runs

    def _new_job(self, kind: str, row: dict[str, Any], timeout: float) -> Job:
        return Job(kind=kind, invoke_id=row["invoke_id"], instance_id=row["instance_id"],
                   run_no=int(row.get("run_no") or 0), start_time=float(row["start_time"]), timeout=float(timeout),
                   repeat_mode=row.get("repeat_mode") or "Once", frequency=row.get("frequency") or "",
                   created_at=float(row.get("created_at") or 0.0))

    def _start_run(self, row: dict[str, Any]) -> None:
        job = self._new_job("run", row, int(row["timeout"] or 0) or 60)
        self.jobs[job.key] = job
        inst = self.instances.get(job.instance_id)
        if inst is None:
            self._finish_now(job, "Aborted", "InstanceNotExists")
            return
        if (row["os_type"] or "").lower() == "windows" or row["command_type"] in WINDOWS_TYPES:
            self._finish_now(job, "Error", "ExecutionException", WINDOWS_INFO)
            return
        if row.get("broken"):
            self._finish_now(job, "Error", "ExecutionException",
                             f"{RUN_INFO['ExecutionException']}: the sandbox could not start the instance "
                             f"({inst.init_error})")
            return
        try:
            content = self._render(row, inst)
        except Exception as exc:
            self._finish_now(job, "Error", "ExecutionException", f"{RUN_INFO['ExecutionException']}: {exc}")
            return
        user = row["username"] or "root"
        env = {"PATH": isolation.ENV_PATH}
        if self.mode == "namespaces":
            init_pid = inst.init.init_pid if inst.init else None
            if init_pid is None:
                self._finish_now(job, "Error", "ExecutionInterrupted")
                return
            workdir = row["working_dir"] or "/root"
            script_dir = isolation.INSTANCE_SCRIPT_DIR
            home = ""
            switch = user != "root"
            env.update(HOME="/root", USER="root", LOGNAME="root")
        else:
            init_pid = None
            home_dir = str(self.inst_dir(inst.instance_id) / "home")
            workdir = row["working_dir"] or home_dir
            assert self.script_base is not None
            script_dir = str(self.script_base / inst.instance_id)
            same = user == self.me or (user == "root" and os.geteuid() != 0)
            switch = not same
            home = "" if switch else home_dir
            env.update(HOME=home_dir, USER=self.me, LOGNAME=self.me)
            env[RUN_ENV_MARKER] = str(self.dir)
        argv = [*isolation.enter_prefix(self.tools, init_pid), "/bin/sh", "-c", isolation.RUN_WRAPPER,
                "sandbox-run", user if switch else (user if self.mode == "namespaces" else self.me), workdir,
                script_dir, f"{job.invoke_id}.sh", home, "1" if switch else "0",
                *isolation.shebang_argv(content)]
        self._spawn_job(job, argv, env, content.encode())

    def _render(self, row: dict[str, Any], inst: Instance) -> str:
        from sandbox import placeholders

        try:
            params = json.loads(row["parameters"] or "{}")
        except ValueError:
            params = {}
        if not isinstance(params, dict):
            params = {}
        builtins = {
            "ACS::InstanceId": inst.instance_id,
            "ACS::RegionId": row["inst_region"] or row["region_id"] or inst.region_id,
            "ACS::InvokeId": row["invoke_id"],
            "ACS::CommandId": row["command_id"],
            "ACS::InstanceName": row["instance_name"] or inst.name,
            "ACS::AccountId": ACCOUNT_ID,
        }
        return placeholders.substitute(row["command_content"] or "", params, builtins)

    def _start_file(self, row: dict[str, Any]) -> None:
        job = self._new_job("file", row, max(10, int(row["timeout"] or 60)))
        self.file_jobs[job.key] = job
        inst = self.instances.get(job.instance_id)
        name, target = row["name"] or "", row["target_dir"] or ""
        if inst is None:
            self._finish_now(job, "Aborted", "InstanceNotExists")
            return
        if not inst.linux:
            self._finish_now(job, "Invalid", "FileCreateFail",
                             "the file creation is failed: the sandbox does not write files on Windows instances")
            return
        if not name or "/" in name or "\0" in name or name in (".", ".."):
            self._finish_now(job, "Invalid", "FileNameInvalid")
            return
        if not target.startswith("/") or "\0" in target:
            self._finish_now(job, "Invalid", "FilePathInvalid")
            return
        if row.get("broken"):
            self._finish_now(job, "Error", "FileCreateFail",
                             f"the file creation is failed: the sandbox could not start the instance "
                             f"({inst.init_error})")
            return
        init_pid = None
        if self.mode == "namespaces":
            init_pid = inst.init.init_pid if inst.init else None
            if init_pid is None:
                self._finish_now(job, "Error", "FileCreateFail")
                return
        content = row["content"]
        if isinstance(content, str):
            content = content.encode()
        argv = [*isolation.enter_prefix(self.tools, init_pid), "/bin/sh", "-c", isolation.FILE_WRAPPER,
                "sandbox-sendfile", target, name, row["file_owner"] or "root", row["file_group"] or "root",
                row["file_mode"] or "0644", "1" if row["overwrite"] else "0"]
        self._spawn_job(job, argv, {"PATH": isolation.ENV_PATH, "HOME": "/root"}, bytes(content))

    def _spawn_job(self, job: Job, argv: list[str], env: dict[str, str], stdin_data: bytes) -> None:
        memfd = os.memfd_create("sandbox-input", os.MFD_CLOEXEC)
        out_r, out_w = os.pipe()
        st_r, st_w = os.pipe()
        try:
            view = memoryview(stdin_data)
            while view:
                n = os.write(memfd, view)
                view = view[n:]
            os.lseek(memfd, 0, os.SEEK_SET)
            job.pid = isolation.spawn(argv, env, {0: memfd, 1: out_w, 2: out_w, 3: st_w})
        except OSError as exc:
            for fd in (out_r, st_r):
                os.close(fd)
            code = "ExecutionException" if job.kind == "run" else "FileCreateFail"
            self._finish_now(job, "Error", code, f"{_info(job.kind, code)}: {exc}")
            return
        finally:
            for fd in (memfd, out_w, st_w):
                os.close(fd)
        os.set_blocking(out_r, False)
        os.set_blocking(st_r, False)
        job.out_fd, job.st_fd = out_r, st_r
        self.loop.add_reader(out_r, self._on_output, job)
        self.children[job.pid] = lambda status: self._on_exit(job, status)
        delay = max(0.0, job.start_time + job.timeout - time.time())
        job.timer = self.loop.call_later(delay, self._on_timeout, job)

    def _on_output(self, job: Job) -> None:
        try:
            data = os.read(job.out_fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            if not job.done:
                job.tail.feed(data)
            return
        self.loop.remove_reader(job.out_fd)
        os.close(job.out_fd)
        job.out_fd = -1
        job.eof = True
        if job.exit_status is not None and not job.done:
            self._complete(job)

    def _on_exit(self, job: Job, status: int) -> None:
        job.exit_status = status
        if job.st_fd >= 0:
            with contextlib.suppress(OSError):
                while True:
                    chunk = os.read(job.st_fd, 4096)
                    if not chunk:
                        break
                    job.status_buf.extend(chunk)
            os.close(job.st_fd)
            job.st_fd = -1
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        if job.eof:
            self._complete(job)
        else:
            job.grace = self.loop.call_later(EOF_GRACE, self._complete, job)

    def _on_timeout(self, job: Job) -> None:
        job.timer = None
        self._kill_jobs([job], "timeout")

    def _kill_jobs(self, jobs: Iterable[Job], reason: str) -> None:
        roots: list[int] = []
        for job in jobs:
            if job.done or job.exit_status is not None or job.kill_reason is not None or job.pid <= 0:
                continue
            job.kill_reason = reason
            roots.append(job.pid)
        if roots:
            self._background(asyncio.to_thread(isolation.kill_process_trees, roots))

    def _kill_instance_jobs(self, instance_id: str, reason: str) -> None:
        jobs = [j for j in (*self.jobs.values(), *self.file_jobs.values()) if j.instance_id == instance_id]
        self._kill_jobs(jobs, reason)

    def _complete(self, job: Job) -> None:
        if job.done:
            return
        job.done = True
        if job.grace is not None:
            job.grace.cancel()
            job.grace = None
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        result = self._job_result(job)
        self._push(job, result)

    def _job_result(self, job: Job) -> Result:
        now = store.now()
        base = Result(job.kind, job.invoke_id, job.instance_id, job.run_no, "Success", start_time=job.start_time,
                      finish_time=now, repeat_mode=job.repeat_mode, frequency=job.frequency,
                      timeout=int(job.timeout), created_at=job.created_at)
        lines = bytes(job.status_buf).decode(errors="replace").splitlines()
        errors = [ln[2:].strip() for ln in lines if ln.startswith("E ")]
        reason = job.kill_reason
        if job.kind == "file":
            return self._file_result(base, job, reason, errors, lines)
        base.output, base.dropped = job.tail.data, job.tail.dropped
        if reason == "timeout":
            base.status, base.error_code = "Timeout", "ExecutionTimeout"
            base.finish_time = job.start_time + job.timeout
        elif reason == "stop":
            base.status, base.error_code = "Terminated", "ExecutionInterrupted"
        elif reason == "instance":
            base.status, base.error_code, base.requeue = "Aborted", "InstanceNotRunning", True
        elif reason in ("agent", "shutdown", "init"):
            base.status, base.error_code, base.requeue = "Error", "ExecutionInterrupted", True
        elif errors:
            code, _, detail = errors[0].partition(" ")
            base.status = "Invalid" if code in ("AccountNotExists", "DirectoryNotExists") else "Error"
            base.error_code = code if code in RUN_INFO else "ExecutionException"
            base.error_info = RUN_INFO[base.error_code] + (f": {detail}" if detail else "")
            return base
        elif "S" not in lines:
            base.status, base.error_code = "Error", "ExecutionException"
            last = job.tail.data.decode(errors="replace").strip().splitlines()
            base.error_info = RUN_INFO["ExecutionException"] + (f": {last[-1]}" if last else "")
            return base
        else:
            rc = os.waitstatus_to_exitcode(job.exit_status or 0)
            base.exit_code = rc if rc >= 0 else 128 - rc
            if base.exit_code == 0:
                return base
            base.status, base.error_code = "Failed", "ExitCodeNonzero"
        base.error_info = RUN_INFO[base.error_code]
        return base

    def _file_result(self, base: Result, job: Job, reason: str | None, errors: list[str], lines: list[str]
                     ) -> Result:
        if reason == "timeout":
            base.status = "Timeout"
            base.finish_time = job.start_time + job.timeout
        elif reason == "instance":
            base.status, base.error_code = "Aborted", "InstanceNotRunning"
        elif reason == "agent":
            base.status, base.error_code = "Aborted", "ClientNotRunning"
        elif reason == "shutdown":
            base.requeue = True
        elif reason == "init" or (not errors and "OK" not in lines):
            base.status, base.error_code = "Error", "FileCreateFail"
        elif errors:
            base.status = "Failed"
            base.error_code = errors[0].split(" ", 1)[0]
            if base.error_code not in FILE_INFO:
                base.error_code = "FileCreateFail"
        if base.error_code:
            base.error_info = FILE_INFO[base.error_code]
        return base

    def _finish_now(self, job: Job, status: str, code: str, info: str | None = None) -> None:
        job.done = True
        result = Result(job.kind, job.invoke_id, job.instance_id, job.run_no, status, code,
                        info if info is not None else _info(job.kind, code), start_time=job.start_time,
                        finish_time=store.now(), repeat_mode=job.repeat_mode, frequency=job.frequency,
                        timeout=int(job.timeout), created_at=job.created_at,
                        requeue=code in ("ExecutionInterrupted",))
        self._push(job, result)

    def _push(self, job: Job | None, result: Result) -> None:
        self.results.append((job, result))
        if self._results_ready is not None:
            self._results_ready.set()

    async def _writer(self) -> None:
        assert self._results_ready is not None
        while True:
            await self._results_ready.wait()
            await asyncio.sleep(0.01)  # let results finishing at the same moment share one transaction
            self._results_ready.clear()
            await self._flush()

    async def _flush(self) -> None:
        if not self.results:
            return
        batch, self.results = self.results, []
        try:
            await self.db.call(_db_finish, [r for _, r in batch])
        except Exception:
            log.exception("writing %d results failed; retrying", len(batch))
            self.results[:0] = batch
            await asyncio.sleep(0.5)
            if self._results_ready is not None:
                self._results_ready.set()
            return
        for job, _ in batch:
            if job is None:
                continue
            table = self.jobs if job.kind == "run" else self.file_jobs
            if table.get(job.key) is job:
                del table[job.key]
        self.wake()  # repeating rows may be due again; new work may have been waiting for the slot

    async def _handle_stopping(self, stopping: list[tuple[str, str, int]]) -> None:
        orphans: list[tuple[str, str, int]] = []
        to_kill: list[Job] = []
        for invoke_id, instance_id, run_no in stopping:
            job = self.jobs.get((invoke_id, instance_id))
            if job is not None and job.run_no == run_no:
                if not job.done and job.exit_status is None:
                    to_kill.append(job)
                continue
            orphans.append((invoke_id, instance_id, run_no))
        self._kill_jobs(to_kill, "stop")
        if orphans:
            await self.db.call(_db_terminate_orphans, orphans, store.now())

    # ---- shutdown

    async def _shutdown(self) -> None:
        self.closing = True
        loop = self.loop
        jobs = [j for j in (*self.jobs.values(), *self.file_jobs.values())]
        self._kill_jobs(jobs, "shutdown")
        for inst in self.instances.values():
            if inst.init_task is not None:
                inst.init_task.cancel()
        pending_inits = [i.init_task for i in self.instances.values() if i.init_task is not None]
        if pending_inits:
            await asyncio.wait(pending_inits, timeout=5)
        for inst in self.instances.values():
            if inst.init is not None:
                self._kill_init(inst.init)
        # Everything that still descends from us (runs' leftovers adopted by us as subreaper included).
        await asyncio.to_thread(_kill_descendants)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            self.children or any(not j.done for j in (*self.jobs.values(), *self.file_jobs.values()))
        ):
            self._reap()
            await asyncio.sleep(0.05)
        for job in [*self.jobs.values(), *self.file_jobs.values()]:
            if not job.done:
                job.kill_reason = job.kill_reason or "shutdown"
                self._complete(job)
            if job.out_fd >= 0:
                with contextlib.suppress(Exception):
                    loop.remove_reader(job.out_fd)
                os.close(job.out_fd)
                job.out_fd = -1
        try:
            await self._flush()
        except Exception:
            log.exception("final result flush failed")
        for inst in self.instances.values():
            with contextlib.suppress(OSError):
                (self.inst_dir(inst.instance_id) / "init.pid").unlink()
        pidfile = self.dir / agentlink.PIDFILE_NAME
        with contextlib.suppress(OSError, ValueError):
            if int(pidfile.read_text().split()[0]) == os.getpid():
                pidfile.unlink()
        if self.sock is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(self.sock.fileno())
            self.sock.close()
            with contextlib.suppress(OSError):
                agentlink.socket_path(self.dir).unlink()
        if self.script_base is not None:
            shutil.rmtree(self.script_base, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.dir / SCRIPT_BASE_NAME).unlink()
        self.db.close()
        log.info("agent host stopped")


def _info(kind: str, code: str) -> str:
    table = RUN_INFO if kind == "run" else FILE_INFO
    return table.get(code, "")


def _tail_text(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_bytes()[-limit:].decode(errors="replace").strip()
    except OSError:
        return ""
    return text.splitlines()[-1] if text else ""


def _kill_descendants() -> None:
    me = os.getpid()
    table = isolation.read_proc_table()
    children = [p.pid for p in table.values() if p.ppid == me]
    if children:
        isolation.kill_process_trees(children)


# --------------------------------------------------------------------------------------------------------------------
# Process-level plumbing


def _set_subreaper() -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _raise_nofile() -> None:
    with contextlib.suppress(Exception):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def kill_stale_inits(state_dir: Path) -> int:
    """Kill namespace inits a dead agent host left behind (DIR/instances/*/init.pid: 'pid starttime' lines)."""
    killed = 0
    base = Path(state_dir) / INSTANCES_DIR
    if not base.is_dir():
        return 0
    for pidfile in base.glob("*/init.pid"):
        try:
            lines = pidfile.read_text().split("\n")
        except OSError:
            continue
        for line in lines:
            words = line.split()
            if len(words) != 2 or not all(w.isdigit() for w in words):
                continue
            pid, start = int(words[0]), int(words[1])
            info = isolation.read_stat(pid)
            if info is not None and info.starttime == start and info.state not in ("Z", "X"):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
        with contextlib.suppress(OSError):
            pidfile.unlink()
    return killed


def kill_stale_runs(state_dir: Path) -> int:
    """Kill process-mode runs (and what they started) that a dead agent host left behind; drop its script dir."""
    pids = isolation.pids_with_env(RUN_ENV_MARKER, str(Path(state_dir).resolve()))
    killed = len(isolation.kill_process_trees(pids, groups=())) if pids else 0
    record = Path(state_dir) / SCRIPT_BASE_NAME
    with contextlib.suppress(OSError):
        old = Path(record.read_text().strip())
        if old.name.startswith(SCRIPT_BASE_PREFIX) and old.is_dir() and old.stat().st_uid == os.geteuid():
            shutil.rmtree(old, ignore_errors=True)
        record.unlink()
    return killed


def _lock(state_dir: Path, wait: float = 2.0) -> int | None:
    """Hold DIR/agent.lock for the agent host's lifetime (one agent host per state directory). Retries briefly:
    `running_agent_pid` probes the lock by taking it for an instant."""
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.02)


def _lock_held(state_dir: Path) -> bool:
    path = state_dir / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing also releases the lock if we got it
    return False


def run_agent_host(state_dir: Path, isolation_mode: str) -> int:
    """The agent host main loop (blocking). Returns the exit code; SIGTERM/SIGINT: kill everything it started
    (runs and namespace inits), write what they became, exit 0."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s agent-host[%(process)d] %(levelname)s %(message)s")
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        mode = isolation.detect_isolation(isolation_mode, trial_dir=state_dir)
    except (RuntimeError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    lock_fd = _lock(state_dir)
    if lock_fd is None:
        log.error("another agent host is already running for %s", state_dir)
        return 1
    try:
        _set_subreaper()
        _raise_nofile()
        isolation.make_fds_cloexec()
        stale = kill_stale_inits(state_dir) + kill_stale_runs(state_dir)
        if stale:
            log.info("killed %d namespace processes left by a previous agent host", stale)
        host = AgentHost(state_dir, mode)
        return asyncio.run(host.main())
    finally:
        os.close(lock_fd)


# --------------------------------------------------------------------------------------------------------------------
# Starting and stopping the agent host from another process (server, tests)


def read_pidfile(state_dir: Path) -> int | None:
    try:
        return int((Path(state_dir) / agentlink.PIDFILE_NAME).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _is_agent_process(pid: int) -> bool:
    info = isolation.read_stat(pid)
    if info is None or info.state in ("Z", "X"):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"agent" in cmdline


def running_agent_pid(state_dir: Path) -> int | None:
    """The pid of the live agent host serving `state_dir`, if any."""
    state_dir = Path(state_dir).resolve()
    pid = read_pidfile(state_dir)
    if pid is None or not _is_agent_process(pid) or not _lock_held(state_dir):
        return None
    return pid


def agent_host_argv(state_dir: Path, isolation_mode: str) -> list[str]:
    return [sys.executable, "-m", "sandbox", "agent-host", "--state-dir", str(state_dir), "--isolation", isolation_mode]


def start_agent_host(state_dir: Path, isolation_mode: str) -> int:
    """Reuse the live agent host of `state_dir` or start one (detached, own session, output to DIR/agent.log) and
    wait until it is ready (it writes DIR/agent.pid). Returns its pid."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = running_agent_pid(state_dir)
    if pid is not None:
        return pid
    pidfile = state_dir / agentlink.PIDFILE_NAME
    with contextlib.suppress(OSError):
        pidfile.unlink()
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(state_dir / "agent.log", "ab") as logf:
        proc = subprocess.Popen(agent_host_argv(state_dir, isolation_mode), stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, cwd="/", env=env)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if read_pidfile(state_dir) == proc.pid:
            return proc.pid
        rc = proc.poll()
        if rc is not None:
            other = running_agent_pid(state_dir)
            if other is not None:  # lost a race with another starter: use the winner
                return other
            if _lock_held(state_dir):  # the winner is still starting up
                time.sleep(0.05)
                continue
            raise RuntimeError(f"the agent host exited with status {rc} before it was ready; "
                               f"see {state_dir / 'agent.log'}: {_tail_text(state_dir / 'agent.log')}")
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"the agent host did not become ready within {READY_TIMEOUT:.0f}s; "
                       f"see {state_dir / 'agent.log'}")


def stop_agent_host(state_dir: Path, timeout: float = 20.0) -> None:
    """SIGTERM the agent host named by DIR/agent.pid, wait for it (bounded), SIGKILL its whole tree as a last resort.
    Leaves no process behind (also kills namespace inits a crashed agent host left)."""
    state_dir = Path(state_dir).resolve()
    pid = read_pidfile(state_dir)
    if pid is not None and _is_agent_process(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not _wait_exit(pid, timeout):
            log.warning("agent host %d did not stop within %.0fs; killing it", pid, timeout)
            isolation.kill_process_trees([pid])
            _wait_exit(pid, 5.0)
    if not _lock_held(state_dir):  # no agent host (any more): clean up what a crashed one may have left
        kill_stale_inits(state_dir)
        kill_stale_runs(state_dir)
    with contextlib.suppress(OSError):
        if read_pidfile(state_dir) == pid:
            (state_dir / agentlink.PIDFILE_NAME).unlink()


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # our own child (tests, or a server that started it): reap it
        info = isolation.read_stat(pid)
        if info is None or info.state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
