"""The agent host's database side: one SQLite connection on one worker thread (`Db`), and the `db_*` functions
that run there (claims, results, recovery, heartbeats, boots). Contract: INTERNALS.md, "Work hand-off"."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sandbox import store
from sandbox.agent.model import FILE_INFO, RUN_INFO, TERMINAL, Result, log

T = TypeVar("T")


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


def db_init(conn: sqlite3.Connection) -> None:
    store.init_schema(conn)


def db_snapshot(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[tuple[str, str, int]]]:
    instances = [dict(r) for r in conn.execute(
        "SELECT instance_id, region_id, instance_name, hostname, os_type, status, agent_installed, agent_running,"
        " boot_count FROM instances"
    )]
    stopping = [(r[0], r[1], int(r[2])) for r in conn.execute(
        "SELECT invoke_id, instance_id, run_no FROM invocation_instances WHERE status = 'Stopping'"
    )]
    return instances, stopping


def db_claim(conn: sqlite3.Connection, now: float, available: dict[str, str]
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Claim due runs and pending file writes on `available` instances (id -> 'ready' | 'broken').

    Pending work on instances that cannot take it is aborted (InstanceNotExists / InstanceNotRunning /
    ClientNotRunning). Returns (claimed runs, claimed file writes); each claimed run has its new run_no and
    start_time."""
    runs = conn.execute(_RUN_CANDIDATES, (now, now)).fetchall()
    files = conn.execute(_FILE_CANDIDATES).fetchall()
    if not runs and not files:
        return [], []
    touched: set[str] = set()
    with store.transaction(conn):
        claimed = _claim_rows(conn, runs, now, available, _claim_run, _abort_run, touched)
        claimed_files = _claim_rows(conn, files, now, available, _claim_file, _abort_file, touched)
        if claimed:
            conn.executemany("UPDATE instances SET last_invoked = ? WHERE instance_id = ?",
                             [(now, iid) for iid in {c["instance_id"] for c in claimed}])
        _drop_finished_invisible_commands(conn, touched)
    return claimed, claimed_files


_Claim = Callable[[sqlite3.Connection, sqlite3.Row, float], "dict[str, Any] | None"]
_Abort = Callable[[sqlite3.Connection, sqlite3.Row, str, float], bool]


def _claim_rows(conn: sqlite3.Connection, rows: list[sqlite3.Row], now: float, available: dict[str, str],
                claim: _Claim, abort: _Abort, touched: set[str]) -> list[dict[str, Any]]:
    """The one ladder every candidate goes through: abort it when its instance cannot take it, wait when the
    instance is not ready yet, else claim it. Aborted rows' invoke IDs go into `touched`."""
    claimed: list[dict[str, Any]] = []
    for row in rows:
        verdict = _availability(row, available)
        if verdict != "ok":
            if verdict and abort(conn, row, verdict, now):
                touched.add(row["invoke_id"])
            continue
        item = claim(conn, row, now)
        if item is not None:
            item["start_time"] = now
            item["broken"] = available.get(row["instance_id"]) == "broken"
            claimed.append(item)
    return claimed


def _abort_run(conn: sqlite3.Connection, row: sqlite3.Row, code: str, now: float) -> bool:
    if row["status"] != "Pending":
        return False
    cur = conn.execute(
        "UPDATE invocation_instances SET status = 'Aborted', error_code = ?, error_info = ?, finish_time = ?,"
        " update_time = ?, next_run_at = NULL"
        " WHERE invoke_id = ? AND instance_id = ? AND status = 'Pending' AND run_no = ?",
        (code, RUN_INFO[code], now, now, row["invoke_id"], row["instance_id"], row["run_no"]),
    )
    return cur.rowcount == 1


def _claim_run(conn: sqlite3.Connection, row: sqlite3.Row, now: float) -> dict[str, Any] | None:
    cur = conn.execute(
        "UPDATE invocation_instances SET status = 'Running', run_no = run_no + 1, start_time = ?,"
        " update_time = ?, next_run_at = NULL, finish_time = NULL"
        " WHERE invoke_id = ? AND instance_id = ? AND status IN ('Pending', 'Scheduled') AND run_no = ?",
        (now, now, row["invoke_id"], row["instance_id"], row["run_no"]),
    )
    if cur.rowcount != 1:
        return None
    run_no = int(row["run_no"]) + 1
    conn.execute(
        "INSERT INTO executions(invoke_id, instance_id, run_no, starts) VALUES (?, ?, ?, 1)"
        " ON CONFLICT(invoke_id, instance_id, run_no) DO UPDATE SET starts = starts + 1",
        (row["invoke_id"], row["instance_id"], run_no),
    )
    item = dict(row)
    item["run_no"] = run_no
    return item


def _abort_file(conn: sqlite3.Connection, row: sqlite3.Row, code: str, now: float) -> bool:
    conn.execute(
        "UPDATE file_task_instances SET status = 'Aborted', error_code = ?, error_info = ?,"
        " finish_time = ?, update_time = ?"
        " WHERE invoke_id = ? AND instance_id = ? AND status = 'Pending'",
        (code, FILE_INFO[code], now, now, row["invoke_id"], row["instance_id"]),
    )
    return False  # file tasks have no command to drop


def _claim_file(conn: sqlite3.Connection, row: sqlite3.Row, now: float) -> dict[str, Any] | None:
    cur = conn.execute(
        "UPDATE file_task_instances SET status = 'Running', attempts = attempts + 1, start_time = ?,"
        " update_time = ? WHERE invoke_id = ? AND instance_id = ? AND status = 'Pending'",
        (now, now, row["invoke_id"], row["instance_id"]),
    )
    return dict(row) if cur.rowcount == 1 else None


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


def db_finish(conn: sqlite3.Connection, results: list[Result]) -> None:
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
    if not stopping and code != "InstanceReleased":  # a released instance runs nothing again
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


def db_recover(conn: sqlite3.Connection) -> int:
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
        db_finish(conn, results)
    return len(results)


def db_heartbeat(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(
        "UPDATE instances SET last_heartbeat = ?"
        " WHERE status = 'Running' AND agent_installed = 1 AND agent_running = 1",
        (now,),
    )


def db_booted(conn: sqlite3.Connection, instance_ids: list[str], now: float) -> None:
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
        db_heartbeat(conn, now)


def db_terminate_orphans(conn: sqlite3.Connection, keys: list[tuple[str, str, int]], now: float) -> None:
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
