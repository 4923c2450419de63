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

Modules: `model` (constants, ErrorInfo texts, in-memory state), `db` (the database thread and its queries), `base`
(shared host state), `jobs` (pre-start checks, spawning, output, results), `runs` and `files` (starting a run / a
file write), `inits` (namespace inits), `host` (`AgentHost`: main loop, instances, shutdown), `lifecycle` (the
process: lock, pidfile, start/stop from other processes).
"""

from sandbox.agent.host import AgentHost
from sandbox.agent.lifecycle import (
    agent_host_argv,
    kill_stale_inits,
    kill_stale_runs,
    read_pidfile,
    run_agent_host,
    running_agent_pid,
    start_agent_host,
    stop_agent_host,
)
from sandbox.agent.model import SCRIPT_BASE_NAME

__all__ = [
    "SCRIPT_BASE_NAME",
    "AgentHost",
    "agent_host_argv",
    "kill_stale_inits",
    "kill_stale_runs",
    "read_pidfile",
    "run_agent_host",
    "running_agent_pid",
    "start_agent_host",
    "stop_agent_host",
]
