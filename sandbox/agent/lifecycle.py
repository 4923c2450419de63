"""The agent host as a process: running it (`run_agent_host`: lock, subreaper, stale leftovers, main loop), and
starting, finding and stopping it from another process (`start_agent_host`, `running_agent_pid`,
`stop_agent_host`; the server, `ctl` and tests use these). One agent host per state directory: DIR/agent.lock is
held for its lifetime, DIR/agent.pid names it once it is ready."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sandbox import agentlink, isolation, store
from sandbox.agent.host import AgentHost
from sandbox.agent.model import (
    INSTANCES_DIR,
    LOCK_NAME,
    PR_SET_CHILD_SUBREAPER,
    READY_TIMEOUT,
    RUN_ENV_MARKER,
    SCRIPT_BASE_NAME,
    SCRIPT_BASE_PREFIX,
    log,
    tail_text,
)


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
    store.protect_state_dir(state_dir, traversable=mode == "process")
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


# ---- starting and stopping the agent host from another process (server, ctl, tests)


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
    root = str(Path(__file__).resolve().parents[2])  # the directory holding the sandbox package
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
                               f"see {state_dir / 'agent.log'}: {tail_text(state_dir / 'agent.log')}")
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
