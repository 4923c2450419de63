"""Ansible callback for benchmarks/connection_playbook.py: per task and host, when the task started on the host and
when its result arrived; per task, the sandbox's API call counters when the task started (and once more at the end).

Not part of the collection. Enabled only by the benchmark (ANSIBLE_CALLBACK_PLUGINS = this directory,
ANSIBLE_CALLBACKS_ENABLED = task_clock). Environment:
- TASK_CLOCK_OUT: where to write the JSON document at the end of the run (required, or the plugin does nothing);
- TASK_CLOCK_SANDBOX_DB: the sandbox's `sandbox.db`; its `api_calls` table is read (read-only) at each task start.

Times are `time.monotonic()` of the ansible-playbook process: a host's time for a task is from
`v2_runner_on_start` (the task is queued to a worker for that host) to the result reaching the controller. The
shell task's stdout and a failed result's msg are kept (short) so the benchmark can check the run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: task_clock
    type: aggregate
    short_description: per-task, per-host times and sandbox API call counters (benchmark helper)
    description:
      - Writes one JSON document at the end of the run (path from TASK_CLOCK_OUT).
"""


def _calls(db: str) -> dict[str, int]:
    if not db:
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {str(a): int(n) for a, n in conn.execute("SELECT action, count FROM api_calls")}
    finally:
        conn.close()


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_clock"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._out = os.environ.get("TASK_CLOCK_OUT", "")
        self._db = os.environ.get("TASK_CLOCK_SANDBOX_DB", "")
        self._tasks: list[dict[str, Any]] = []
        self._by_uuid: dict[str, dict[str, Any]] = {}

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        entry = {"name": task.get_name(), "start": time.monotonic(), "calls": _calls(self._db), "hosts": {}}
        self._tasks.append(entry)
        self._by_uuid[task._uuid] = entry

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        entry = self._by_uuid.get(task._uuid)
        if entry is not None:
            entry["hosts"][host.get_name()] = {"start": time.monotonic()}

    def _end(self, result: Any, status: str) -> None:
        entry = self._by_uuid.get(result._task._uuid)
        if entry is not None:
            host = entry["hosts"].setdefault(result._host.get_name(), {"start": entry["start"]})
            host.update(end=time.monotonic(), status=status)
            stdout = result._result.get("stdout")
            if isinstance(stdout, str):
                host["stdout"] = stdout[:200]
            if status != "ok":
                host["msg"] = str(result._result.get("msg", ""))[:500]

    def v2_runner_on_ok(self, result: Any) -> None:
        self._end(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._end(result, "failed")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._end(result, "unreachable")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._end(result, "skipped")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self._out:
            return
        document = {"tasks": self._tasks, "end": time.monotonic(), "calls_end": _calls(self._db)}
        with open(self._out, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
