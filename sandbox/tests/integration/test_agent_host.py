"""The agent host against a real database: rows are inserted the way the actions insert them, the agent host is
started with start_agent_host(), poked, and the database is polled (every wait is bounded)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sandbox import agent, agentlink, fleet, isolation, store
from sandbox.tests.proc_helpers import pids_matching

REGION = "cn-hangzhou"
ROOT = os.geteuid() == 0
NAMESPACES = ROOT and isolation.namespaces_trial() is None
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="namespaces isolation needs root + overlayfs")
DONE = store.TERMINAL_STATUSES


def _marker() -> str:
    """A unique `sleep` argument, to find a test's processes in /proc."""
    return f"{300 + uuid.uuid4().int % 600}.{uuid.uuid4().int % 10**6:06d}"


def wait_until(pred: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Sandbox:
    dir: Path
    mode: str
    conn: sqlite3.Connection
    pid: int = 0
    instances: list[str] = field(default_factory=list)

    # ---- setup

    def add_instances(self, count: int, **kw: Any) -> list[str]:
        ids = fleet.create_instances(self.conn, count, REGION, **kw)
        agentlink.poke(self.dir)
        return ids

    def start(self) -> int:
        self.pid = agent.start_agent_host(self.dir, self.mode)
        return self.pid

    # ---- work, inserted as the actions do

    def invoke(self, content: str, instance_ids: list[str], *, timeout: int = 60, repeat: str = "Once",
               frequency: str = "", working_dir: str = "", username: str = "", parameters: dict | None = None,
               command_type: str = "RunShellScript", status: str | None = None, next_run_at: float | None = None,
               visible: int = 1, poke: bool = True) -> str:
        now = store.now()
        invoke_id = store.new_id("t", REGION)
        command_id = store.new_id("c", REGION)
        if status is None:
            status = "Pending" if repeat == "Once" else "Scheduled"
            if repeat == "Once":
                next_run_at = now
        with store.transaction(self.conn):
            self.conn.execute(
                "INSERT INTO commands(command_id, region_id, name, type, content, timeout, visible, created_at, seq)"
                " VALUES (?, ?, 'test', ?, ?, ?, ?, ?, ?)",
                (command_id, REGION, command_type, content, timeout, visible, now,
                 store.next_seq(self.conn, "commands")),
            )
            self.conn.execute(
                "INSERT INTO invocations(invoke_id, region_id, command_id, command_type, command_content, parameters,"
                " repeat_mode, frequency, timeout, working_dir, username, created_at, seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (invoke_id, REGION, command_id, command_type, content, json.dumps(parameters or {}), repeat,
                 frequency, timeout, working_dir, username, now, store.next_seq(self.conn, "invocations")),
            )
            for iid in instance_ids:
                self.conn.execute(
                    "INSERT INTO invocation_instances(invoke_id, instance_id, status, run_no, next_run_at,"
                    " creation_time, update_time) VALUES (?, ?, ?, 0, ?, ?, ?)",
                    (invoke_id, iid, status, next_run_at, now, now),
                )
        if poke:
            agentlink.poke(self.dir)
        return invoke_id

    def send_file(self, instance_ids: list[str], name: str, target_dir: str, content: bytes, *,
                  owner: str = "root", group: str = "root", mode: str = "0644", overwrite: bool = False) -> str:
        now = store.now()
        invoke_id = store.new_id("f", REGION)
        with store.transaction(self.conn):
            self.conn.execute(
                "INSERT INTO file_tasks(invoke_id, region_id, name, content, content_type, target_dir, file_owner,"
                " file_group, file_mode, overwrite, timeout, created_at, seq)"
                " VALUES (?, ?, ?, ?, 'PlainText', ?, ?, ?, ?, ?, 60, ?, ?)",
                (invoke_id, REGION, name, content, target_dir, owner, group, mode, int(overwrite), now,
                 store.next_seq(self.conn, "file_tasks")),
            )
            for iid in instance_ids:
                self.conn.execute(
                    "INSERT INTO file_task_instances(invoke_id, instance_id, status, creation_time, update_time)"
                    " VALUES (?, ?, 'Pending', ?, ?)", (invoke_id, iid, now, now),
                )
        agentlink.poke(self.dir)
        return invoke_id

    # ---- reading back

    def rows(self, invoke_id: str) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM invocation_instances WHERE invoke_id = ? ORDER BY instance_id", (invoke_id,)
        ).fetchall()

    def row(self, invoke_id: str, instance_id: str) -> sqlite3.Row:
        return self.conn.execute(
            "SELECT * FROM invocation_instances WHERE invoke_id = ? AND instance_id = ?", (invoke_id, instance_id)
        ).fetchone()

    def wait_done(self, invoke_id: str, timeout: float = 15) -> list[sqlite3.Row]:
        return wait_until(lambda: (rows := self.rows(invoke_id)) and all(r["status"] in DONE for r in rows)
                          and rows, timeout, f"{invoke_id} to finish")

    def wait_status(self, invoke_id: str, instance_id: str, statuses: set[str], timeout: float = 15
                    ) -> sqlite3.Row:
        return wait_until(lambda: (r := self.row(invoke_id, instance_id)) is not None and r["status"] in statuses
                          and r, timeout, f"{invoke_id}/{instance_id} to reach {statuses}")

    def run(self, content: str, instance_id: str, **kw: Any) -> sqlite3.Row:
        """Run on one instance and return the finished row."""
        return self.wait_done(self.invoke(content, [instance_id], **kw))[0]

    def file_rows(self, invoke_id: str) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM file_task_instances WHERE invoke_id = ?", (invoke_id,)).fetchall()

    def wait_file(self, invoke_id: str, timeout: float = 15) -> sqlite3.Row:
        return wait_until(lambda: (rows := self.file_rows(invoke_id)) and rows[0]["status"] not in
                          ("Pending", "Running") and rows[0], timeout, f"file task {invoke_id}")

    def set_instance(self, instance_id: str, assignments: str) -> None:
        self.conn.execute(f"UPDATE instances SET {assignments} WHERE instance_id = ?", (instance_id,))
        agentlink.poke(self.dir)

    def init_pid(self, instance_id: str) -> int | None:
        try:
            return int((self.dir / "instances" / instance_id / "init.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def reboot(self, instance_id: str) -> None:
        old = self.init_pid(instance_id)
        self.set_instance(instance_id, "boot_count = boot_count + 1")
        if self.mode == "namespaces":
            wait_until(lambda: (p := self.init_pid(instance_id)) is not None and p != old, 15, "a new init")

    def duplicate_executions(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM executions WHERE starts > 1").fetchone()[0]


def _new_state_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="agent-test-", dir="/tmp"))


def assert_nothing_left(state_dir: Path, agent_pid: int, markers: tuple[str, ...] = ()) -> None:
    def leftovers() -> list[int]:
        found = set(pids_matching(str(state_dir)))
        for m in markers:
            found.update(pids_matching(m))
        for info in isolation.read_proc_table().values():
            if agent_pid and info.sid == agent_pid and info.state not in ("Z", "X"):
                found.add(info.pid)
        return sorted(found)

    deadline = time.monotonic() + 5
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers() == []


@contextlib.contextmanager
def sandbox(mode: str, instances: int = 0, start: bool = True) -> Iterator[Sandbox]:
    state_dir = _new_state_dir()
    conn = store.connect(state_dir)
    store.init_schema(conn)
    box = Sandbox(state_dir, mode, conn)
    if instances:
        box.instances = fleet.create_instances(conn, instances, REGION)
    try:
        if start:
            box.start()
        yield box
    finally:
        pid = agent.read_pidfile(state_dir) or box.pid
        agent.stop_agent_host(state_dir)
        try:
            assert box.duplicate_executions() == 0
            assert_nothing_left(state_dir, pid)
        finally:
            conn.close()
            shutil.rmtree(state_dir, ignore_errors=True)


MODES = ["process", pytest.param("namespaces", marks=needs_namespaces)]


@pytest.fixture(scope="module", params=MODES)
def box(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with sandbox(request.param, instances=3) as b:
        yield b


@pytest.fixture(scope="module")
def ns_box() -> Iterator[Sandbox]:
    if not NAMESPACES:
        pytest.skip("namespaces isolation needs root + overlayfs")
    with sandbox("namespaces", instances=2) as b:
        yield b


# ---------------------------------------------------------------------------------------------------------------
# Runs (both modes)


def test_success_output_and_bookkeeping(box: Sandbox):
    iid = box.instances[0]
    box.conn.execute("UPDATE instances SET last_invoked = NULL WHERE instance_id = ?", (iid,))
    row = box.run("echo out; echo err >&2; printf 'no newline'", iid)
    assert row["status"] == "Success"
    assert row["exit_code"] == 0
    assert row["error_code"] == ""
    assert row["output"] == b"out\nerr\nno newline"
    assert row["dropped"] == 0
    assert row["run_no"] == 1
    assert row["start_time"] <= row["finish_time"]
    starts = box.conn.execute("SELECT starts FROM executions WHERE invoke_id = ?", (row["invoke_id"],)).fetchone()
    assert starts[0] == 1
    assert box.conn.execute("SELECT last_invoked FROM instances WHERE instance_id = ?", (iid,)).fetchone()[0]


def test_many_instances_at_once(box: Sandbox):
    invoke_id = box.invoke("echo {{ACS::InstanceId}}", box.instances)
    rows = box.wait_done(invoke_id)
    assert {r["output"].decode().strip() for r in rows} == set(box.instances)
    assert all(r["status"] == "Success" for r in rows)


def test_nonzero_exit(box: Sandbox):
    row = box.run("echo before; exit 3", box.instances[0])
    assert (row["status"], row["exit_code"], row["error_code"]) == ("Failed", 3, "ExitCodeNonzero")
    assert row["error_info"] == "the command execution exit code is not zero"
    assert row["output"] == b"before\n"


def test_killed_by_a_signal_is_a_failure(box: Sandbox):
    row = box.run("kill -9 $$", box.instances[0])
    assert (row["status"], row["exit_code"]) == ("Failed", 137)


def test_timeout_kills_the_whole_tree(box: Sandbox):
    m1, m2 = _marker(), _marker()
    content = f"setsid sleep {m1} &\n(sh -c 'sleep {m2}' &)\necho started\nsleep {m1}\n"
    t0 = time.monotonic()
    row = box.run(content, box.instances[1], timeout=2)
    assert time.monotonic() - t0 < 6
    assert (row["status"], row["error_code"]) == ("Timeout", "ExecutionTimeout")
    assert row["finish_time"] == pytest.approx(row["start_time"] + 2)
    assert row["output"] == b"started\n"
    wait_until(lambda: not pids_matching(m1) and not pids_matching(m2), 5, "the timed-out tree to be gone")


def test_stop_terminates(box: Sandbox):
    m = _marker()
    invoke_id = box.invoke(f"echo begun; sleep {m}", [box.instances[2]])
    box.wait_status(invoke_id, box.instances[2], {"Running"})
    wait_until(lambda: pids_matching(m), 5, "the run to start")
    stop_at = store.now()
    box.conn.execute("UPDATE invocation_instances SET status = 'Stopping', stop_time = ?, update_time = ?"
                     " WHERE invoke_id = ? AND status = 'Running'", (stop_at, stop_at, invoke_id))
    agentlink.poke(box.dir)
    row = box.wait_status(invoke_id, box.instances[2], DONE, timeout=10)
    # the sandbox's record: ended soon after the stop (the sleep would have run 300+ s), and not before it
    assert stop_at <= row["finish_time"] < stop_at + 5, (stop_at, row["finish_time"])
    assert (row["status"], row["error_code"]) == ("Terminated", "ExecutionInterrupted")
    assert row["output"] == b"begun\n"
    wait_until(lambda: not pids_matching(m), 5, "the stopped run to be gone")


def test_output_keeps_the_last_24k(box: Sandbox):
    row = box.run("head -c 30000 /dev/zero | tr '\\0' a; printf END", box.instances[0])
    assert row["status"] == "Success"
    assert len(row["output"]) == 24576
    assert row["output"].endswith(b"aaaEND")
    assert row["dropped"] == 30003 - 24576


def test_missing_user(box: Sandbox):
    row = box.run("echo never", box.instances[0], username="no-such-user-x")
    assert (row["status"], row["error_code"]) == ("Invalid", "AccountNotExists")
    assert row["error_info"] == "the specified account does not exists"
    assert row["output"] == b""


def test_missing_directory(box: Sandbox):
    row = box.run("echo never", box.instances[0], working_dir="/no/such/dir")
    assert (row["status"], row["error_code"]) == ("Invalid", "DirectoryNotExists")
    assert row["output"] == b""


def test_working_dir_and_other_user(box: Sandbox):
    row = box.run("pwd; id -un", box.instances[0], working_dir="/usr", username="nobody")
    assert row["status"] == "Success", row["output"]
    assert row["output"] == b"/usr\nnobody\n"


def test_shebang_and_stdin(box: Sandbox):
    row = box.run("#!/usr/bin/env python3\nimport sys\nprint('py', 1 + 1, repr(sys.stdin.read()))", box.instances[0])
    assert row["status"] == "Success", row["output"]
    assert row["output"] == b"py 2 ''\n"


def test_background_process_does_not_hold_the_run(box: Sandbox):
    m = _marker()
    t0 = time.monotonic()
    row = box.run(f"sleep {m} &\necho done", box.instances[0])
    assert time.monotonic() - t0 < 3
    assert (row["status"], row["output"]) == ("Success", b"done\n")
    assert pids_matching(m)  # it keeps running on the instance, like a daemon would
    isolation.kill_process_trees(pids_matching(m))


def test_placeholders(box: Sandbox):
    iid = box.instances[0]
    row = box.run("echo {{greeting}} {{ ACS::InstanceId }} {{ACS::RegionId}} {{ACS::AccountId}} {{ACS::InvokeId}}",
                  iid, parameters={"greeting": "hi there"})
    assert row["output"].decode().split() == ["hi", "there", iid, REGION, "sandbox-account", row["invoke_id"]]


def test_windows_scripts_cannot_run(box: Sandbox):
    (win,) = box.add_instances(1, os_type="windows")
    row = box.run("echo hi", win, command_type="RunBatScript")
    assert (row["status"], row["error_code"]) == ("Error", "ExecutionException")
    assert "Windows" in row["error_info"]


def test_invisible_command_is_deleted_after_the_run(box: Sandbox):
    invoke_id = box.invoke("true", box.instances[:2], visible=0)
    box.wait_done(invoke_id)
    command_id = box.conn.execute("SELECT command_id FROM invocations WHERE invoke_id = ?", (invoke_id,)).fetchone()[0]
    wait_until(lambda: box.conn.execute("SELECT COUNT(*) FROM commands WHERE command_id = ?",
                                        (command_id,)).fetchone()[0] == 0, 5, "the hidden command to go")
    kept = box.invoke("true", box.instances[:1])
    box.wait_done(kept)
    assert box.conn.execute("SELECT COUNT(*) FROM commands c JOIN invocations i ON i.command_id = c.command_id"
                            " WHERE i.invoke_id = ?", (kept,)).fetchone()[0] == 1


def test_scheduled_run_goes_back_to_scheduled(box: Sandbox):
    iid = box.instances[1]
    due = store.now() + 1
    invoke_id = box.invoke("echo tick", [iid], repeat="Period", frequency="rate(1m)", timeout=30,
                           status="Scheduled", next_run_at=due)
    wait_until(lambda: box.row(invoke_id, iid)["run_no"] == 1 and box.row(invoke_id, iid)["status"] == "Scheduled",
               10, "the scheduled run")
    row = box.row(invoke_id, iid)
    assert row["start_time"] >= due, (row["start_time"], due)  # not before its time (the sandbox's record)
    created = box.conn.execute("SELECT created_at FROM invocations WHERE invoke_id = ?", (invoke_id,)).fetchone()[0]
    assert row["next_run_at"] == pytest.approx(created + 60, abs=1)
    assert row["output"] == b"tick\n"
    history = box.conn.execute("SELECT * FROM run_history WHERE invoke_id = ?", (invoke_id,)).fetchall()
    assert [(h["run_no"], h["status"], h["output"]) for h in history] == [(1, "Success", b"tick\n")]


def test_send_file(box: Sandbox):
    iid = box.instances[2]
    target = f"/opt/sandbox-test-{uuid.uuid4().hex[:8]}/sub"
    try:
        fid = box.send_file([iid], "hello.txt", target, b"content\x00\xff", mode="0640", group="nogroup")
        row = box.wait_file(fid)
        assert (row["status"], row["error_code"]) == ("Success", "")
        check = box.run(f"stat -c '%a %U %G' {target}/hello.txt; od -An -c {target}/hello.txt", iid)
        assert check["output"].decode().split("\n")[0] == "640 root nogroup"
        assert "\\0" in check["output"].decode()
        assert Path(target).exists() == (box.mode == "process")  # namespaces: only inside the instance

        again = box.wait_file(box.send_file([iid], "hello.txt", target, b"new"))
        assert (again["status"], again["error_code"], again["error_info"]) == ("Failed", "FileAlreadyExists",
                                                                              "File already exists")
        over = box.wait_file(box.send_file([iid], "hello.txt", target, b"new", overwrite=True))
        assert over["status"] == "Success"
        assert box.run(f"cat {target}/hello.txt", iid)["output"] == b"new"

        owner = box.wait_file(box.send_file([iid], "x", target, b"x", owner="no-such-user-x"))
        assert (owner["status"], owner["error_code"]) == ("Failed", "AccountNotExists")
        group = box.wait_file(box.send_file([iid], "x", target, b"x", group="no-such-group-x"))
        assert (group["status"], group["error_code"]) == ("Failed", "UserGroupNotExists")
        leftovers = box.run(f"ls -A {target}", iid)["output"].split()
        assert leftovers == [b"hello.txt"]  # no temporary files left behind
    finally:
        shutil.rmtree(Path(target).parent, ignore_errors=True)


@pytest.mark.parametrize(("cut", "interrupted", "refused"), [
    # the instance stops: its running work is aborted, new work too, until it boots again
    ("status = 'Stopped'", ("Aborted", "InstanceNotRunning"), ("Aborted", "InstanceNotRunning")),
    # the agent stops: its running work is interrupted, new work aborted, until the agent runs again
    ("agent_running = 0", ("Error", "ExecutionInterrupted"), ("Aborted", "ClientNotRunning")),
], ids=["instance-stop", "agent-stop"])
def test_losing_the_instance_or_agent_interrupts_and_refuses(box: Sandbox, cut: str, interrupted: tuple[str, str],
                                                            refused: tuple[str, str]):
    (iid,) = box.add_instances(1)
    m = _marker()
    invoke_id = box.invoke(f"sleep {m}", [iid])
    box.wait_status(invoke_id, iid, {"Running"})
    box.set_instance(iid, cut)
    row = box.wait_status(invoke_id, iid, DONE, timeout=5)
    assert (row["status"], row["error_code"]) == interrupted
    wait_until(lambda: not pids_matching(m), 5, "the cut-off run to be gone")
    pending = box.invoke("true", [iid])
    row = box.wait_status(pending, iid, DONE, timeout=5)
    assert (row["status"], row["error_code"]) == refused
    if cut.startswith("status"):
        if box.mode == "namespaces":
            wait_until(lambda: box.init_pid(iid) is None, 5, "the init to go")
        box.set_instance(iid, "status = 'Running', boot_count = boot_count + 1")
        wait_until(lambda: box.run("echo back", iid)["output"] == b"back\n", 20, "the restarted instance")
    else:
        box.set_instance(iid, "agent_running = 1")
        assert box.run("echo ok", iid)["status"] == "Success"


def test_release_kills_running_work_and_ends_its_schedules(box: Sandbox):
    (iid,) = box.add_instances(1)
    (other,) = box.add_instances(1)
    once_m, period_m = _marker(), _marker()
    once = box.invoke(f"echo started; sleep {once_m}", [iid, other])
    period = box.invoke(f"sleep {period_m}", [iid], repeat="Period", frequency="rate(1m)", timeout=120,
                        status="Scheduled", next_run_at=store.now())
    later = box.invoke("echo later", [iid], repeat="Period", frequency="rate(1m)", timeout=30,
                       status="Scheduled", next_run_at=store.now() + 600)
    box.wait_status(once, iid, {"Running"})
    box.wait_status(period, iid, {"Running"})
    wait_until(lambda: pids_matching(once_m) and pids_matching(period_m), 5, "both runs' processes")
    fleet.release_instances(box.conn, [iid])
    agentlink.poke(box.dir)
    for invoke_id in (once, period, later):
        row = box.wait_status(invoke_id, iid, DONE, timeout=5)
        assert (row["status"], row["error_code"], row["next_run_at"]) == ("Aborted", "InstanceReleased", None)
        assert row["error_info"] == fleet.RELEASED_RUN_INFO
    assert box.row(once, iid)["output"] == b"started\n"  # the output so far is kept
    wait_until(lambda: not pids_matching(period_m), 5, "the released instance's schedule run to be gone")
    assert box.row(once, other)["status"] == "Running"  # the other instance goes on
    box.conn.execute("UPDATE invocation_instances SET status = 'Stopping' WHERE invoke_id = ? AND instance_id = ?",
                     (once, other))
    agentlink.poke(box.dir)
    box.wait_status(once, other, {"Terminated"}, timeout=5)
    wait_until(lambda: not pids_matching(once_m), 5, "every run of the test to be gone")
    time.sleep(0.5)  # a tick or two: nothing brings the released schedules back
    assert box.row(period, iid)["status"] == "Aborted" and box.row(later, iid)["status"] == "Aborted"
    if box.mode == "namespaces":
        wait_until(lambda: box.init_pid(iid) is None, 5, "the released instance's init to go")


def test_reboot_runs_boot_tasks_and_installs_the_agent(box: Sandbox):
    (iid,) = box.add_instances(1, agent=False)
    box.conn.execute("UPDATE instances SET agent_install_pending = 1 WHERE instance_id = ?", (iid,))
    every = box.invoke("echo every", [iid], repeat="EveryReboot")
    once = box.invoke("echo next", [iid], repeat="NextRebootOnly")
    box.run("true", box.instances[0])  # the agent host has been through its loop since (instead of a sleep)
    assert box.row(every, iid)["status"] == "Scheduled" and box.row(every, iid)["run_no"] == 0
    assert box.row(once, iid)["status"] == "Scheduled" and box.row(once, iid)["run_no"] == 0

    box.reboot(iid)
    wait_until(lambda: box.row(once, iid)["status"] == "Success", 10, "the NextRebootOnly run")
    wait_until(lambda: box.row(every, iid)["run_no"] == 1 and box.row(every, iid)["status"] == "Scheduled", 10,
               "the EveryReboot run")
    inst = box.conn.execute("SELECT * FROM instances WHERE instance_id = ?", (iid,)).fetchone()
    assert (inst["agent_installed"], inst["agent_running"], inst["agent_install_pending"]) == (1, 1, 0)
    assert inst["last_heartbeat"] is not None
    assert box.row(every, iid)["next_run_at"] is None
    assert box.row(once, iid)["output"] == b"next\n"

    box.reboot(iid)
    wait_until(lambda: box.row(every, iid)["run_no"] == 2 and box.row(every, iid)["status"] == "Scheduled", 10,
               "the second EveryReboot run")
    assert box.row(once, iid)["run_no"] == 1
    history = box.conn.execute("SELECT run_no, status FROM run_history WHERE invoke_id = ? ORDER BY run_no",
                               (every,)).fetchall()
    assert [tuple(h) for h in history] == [(1, "Success"), (2, "Success")]


def test_heartbeat(box: Sandbox):
    assert box.conn.execute("SELECT COUNT(*) FROM instances WHERE status = 'Running' AND agent_running = 1"
                            " AND last_heartbeat IS NULL").fetchone()[0] == 0


def test_no_duplicate_executions(box: Sandbox):
    assert box.duplicate_executions() == 0
    assert agent.start_agent_host(box.dir, box.mode) == box.pid  # reused, not a second agent host


# ---------------------------------------------------------------------------------------------------------------
# Namespaces isolation


@needs_namespaces
def test_instances_are_isolated(ns_box: Sandbox):
    a, b = ns_box.instances
    name = f"iso-{uuid.uuid4().hex[:8]}"
    row = ns_box.run(f"echo secret > /root/{name}; echo e > /etc/{name}; echo t > /tmp/{name}; hostname; echo $$;"
                     " ps -e -o pid= | wc -l; cat /proc/1/cmdline | tr '\\0' ' ' | cut -c1-7", a)
    assert row["status"] == "Success", row["output"]
    host, pid, nprocs, init = row["output"].decode().split("\n")[:4]
    expected = ns_box.conn.execute("SELECT hostname FROM instances WHERE instance_id = ?", (a,)).fetchone()[0]
    assert host == expected
    assert int(pid) < 100  # a private PID space
    assert int(nprocs) < 10
    assert init.startswith("/bin/sh")
    assert not Path(f"/root/{name}").exists() and not Path(f"/etc/{name}").exists()
    assert not Path(f"/tmp/{name}").exists()

    other = ns_box.run(f"cat /root/{name} /etc/{name}", b)
    assert other["status"] == "Failed"
    assert ns_box.run(f"cat /root/{name} /etc/{name} /tmp/{name}", a)["output"] == b"secret\ne\nt\n"
    hidden = ns_box.run(f"ls -A {ns_box.dir} 2>/dev/null | wc -l; test -e {ns_box.dir}/sandbox.db && echo VISIBLE",
                        a)
    assert hidden["output"] == b"0\n"

    ns_box.reboot(a)  # the init is killed and started again: the upper layer stays, /tmp is fresh
    after = ns_box.run(f"cat /root/{name} /etc/{name}; test -e /tmp/{name} || echo tmp-gone", a)
    assert after["output"] == b"secret\ne\ntmp-gone\n"


@needs_namespaces
def test_host_private_dirs_look_empty(ns_box: Sandbox):
    """What holds the controller's secrets (home directories: Ansible's temporary files, credential files; the
    checkout with its test configuration) is empty inside an instance, which can still use its own /root."""
    a = ns_box.instances[0]
    name = _marker()
    checkout = Path(isolation.__file__).resolve().parents[1]
    planted = [Path("/root") / f".{name}", checkout / ".cache" / name]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("controller secret\n")
    try:
        row = ns_box.run(f"ls -A /root {checkout} 2>/dev/null | grep -c {name};"
                         f" cat {' '.join(map(str, planted))} 2>/dev/null;"
                         f" stat -c %a /root; echo mine > /root/{name}.own; cat /root/{name}.own", a)
        assert row["output"].decode().split("\n")[:3] == ["0", oct(Path("/root").stat().st_mode & 0o777)[2:], "mine"]
    finally:
        for path in planted:
            path.unlink()
    assert ns_box.run(f"cat /root/{name}.own", a)["output"] == b"mine\n"


def test_namespace_restart_after_agent_restart(ns_box: Sandbox):
    a = ns_box.instances[1]
    name = f"persist-{uuid.uuid4().hex[:8]}"
    assert ns_box.run(f"echo kept > /var/{name}", a)["status"] == "Success"
    old_pid = ns_box.pid
    old_init = ns_box.init_pid(a)
    agent.stop_agent_host(ns_box.dir)
    assert old_init is not None and isolation.wait_gone([old_init], 5)
    assert_nothing_left(ns_box.dir, old_pid)
    ns_box.start()
    assert ns_box.pid != old_pid
    assert ns_box.run(f"cat /var/{name}", a)["output"] == b"kept\n"


# ---------------------------------------------------------------------------------------------------------------
# Process mode specifics


def test_process_mode_home():
    with sandbox("process", instances=1) as box:
        iid = box.instances[0]
        home = box.dir / "instances" / iid / "home"
        row = box.run("pwd; echo $HOME; touch here", iid)
        assert row["output"].decode().split() == [str(home), str(home)]
        assert (home / "here").exists()


# ---------------------------------------------------------------------------------------------------------------
# Agent host lifecycle


def test_recovery_of_rows_left_by_a_previous_agent_host():
    with sandbox("process", instances=1, start=False) as box:
        iid = box.instances[0]
        once = box.invoke("true", [iid], status="Running", poke=False)
        period = box.invoke("true", [iid], repeat="Period", frequency="rate(5m)", status="Running", poke=False)
        every = box.invoke("true", [iid], repeat="EveryReboot", status="Stopping", poke=False)
        for invoke_id in (once, period, every):
            box.conn.execute("UPDATE invocation_instances SET run_no = 1, start_time = ? WHERE invoke_id = ?",
                             (store.now() - 5, invoke_id))
        box.start()
        row = box.row(once, iid)
        assert (row["status"], row["error_code"]) == ("Error", "ExecutionInterrupted")
        row = box.row(period, iid)
        assert row["status"] == "Scheduled" and row["next_run_at"] > store.now()
        assert box.conn.execute("SELECT status FROM run_history WHERE invoke_id = ?", (period,)).fetchone()[0] == \
            "Error"
        assert box.row(every, iid)["status"] == "Terminated"  # a stop request is honoured, not re-scheduled


@pytest.mark.parametrize("mode", MODES)
def test_stop_agent_host_leaves_nothing_behind(mode: str):
    with sandbox(mode, instances=2) as box:
        m1, m2 = _marker(), _marker()
        running = box.invoke(f"nohup setsid sleep {m1} >/dev/null 2>&1 & sleep {m2}", box.instances)
        wait_until(lambda: len(pids_matching(m2)) == 2 and len(pids_matching(m1)) == 2, 10, "the runs")
        pid = box.pid
        t0 = time.monotonic()
        agent.stop_agent_host(box.dir)
        assert time.monotonic() - t0 < 10
        assert_nothing_left(box.dir, pid, (m1, m2))
        assert not (box.dir / agentlink.PIDFILE_NAME).exists()
        assert not agentlink.socket_path(box.dir).exists()
        assert {r["status"] for r in box.rows(running)} == {"Error"}
        assert {r["error_code"] for r in box.rows(running)} == {"ExecutionInterrupted"}


@pytest.mark.parametrize("mode", MODES)
def test_agent_host_killed_hard_then_restarted(mode: str):
    with sandbox(mode, instances=1) as box:
        iid = box.instances[0]
        m1, m2 = _marker(), _marker()
        running = box.invoke(f"nohup setsid sleep {m1} >/dev/null 2>&1 & sleep {m2}", [iid])
        wait_until(lambda: pids_matching(m1) and pids_matching(m2), 10, "the run")
        init = box.init_pid(iid)
        if mode == "process":
            old_scripts = Path((box.dir / agent.SCRIPT_BASE_NAME).read_text().strip())
            assert old_scripts.is_dir()
        os.kill(box.pid, 9)
        assert isolation.wait_gone([box.pid] + ([init] if init else []), 5)  # namespaces die with the agent host
        box.start()  # a new agent host: kills what is left, recovers the row
        row = box.row(running, iid)
        assert (row["status"], row["error_code"]) == ("Error", "ExecutionInterrupted")
        wait_until(lambda: not pids_matching(m1) and not pids_matching(m2), 5, "the old run's processes to go")
        assert box.run("echo again", iid)["output"] == b"again\n"
        if mode == "process":  # the dead agent host's script directory is gone, the new one is removed on stop
            assert not old_scripts.exists()
            new_scripts = Path((box.dir / agent.SCRIPT_BASE_NAME).read_text().strip())
    if mode == "process":
        assert not new_scripts.exists()


def test_process_mode_100_instances_at_once():
    """100 process-mode runs at once all succeed, each started exactly once (speed: benchmarks/sandbox_fanout.py)."""
    with sandbox("process", instances=100) as box:
        invoke_id = box.invoke("sleep 2; echo ok", box.instances)
        rows = box.wait_done(invoke_id, timeout=30)
        assert len(rows) == 100
        assert all(r["status"] == "Success" and r["output"] == b"ok\n" for r in rows)
