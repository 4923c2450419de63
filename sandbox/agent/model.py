"""What the agent host keeps in memory and its fixed texts: constants, ErrorInfo tables, InitProc, Instance, Job,
Result."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import fleet, isolation, store

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
    "InstanceReleased": fleet.RELEASED_RUN_INFO,
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
    "InstanceReleased": fleet.RELEASED_FILE_INFO,
}


@dataclass
class InitProc:
    """A namespaces instance's PID 1 (`init_pid`, host pid) and the `unshare` process above it (`pid`)."""

    pid: int
    init_pid: int = 0
    ready: bool = False
    exited: asyncio.Future[int] | None = None
    expected_exit: bool = False
    root_id: tuple[int, int] | None = None  # (st_dev, st_ino) of its root once ready: file writes check it


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


def info(kind: str, code: str) -> str:
    """The ErrorInfo of `code` for a run (kind 'run') or a file write (kind 'file')."""
    table = RUN_INFO if kind == "run" else FILE_INFO
    return table.get(code, "")


def tail_text(path: Path, limit: int = 400) -> str:
    """The last line of the last `limit` bytes of a log file ('' when there is none)."""
    try:
        text = path.read_bytes()[-limit:].decode(errors="replace").strip()
    except OSError:
        return ""
    return text.splitlines()[-1] if text else ""
