"""`AgentHost`: the agent host's main loop (poll or poke -> tick), instance power changes and boots, heartbeats,
the pidfile, and shutting down everything it started."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from sandbox import agentlink, isolation, store
from sandbox.agent.db import db_booted, db_claim, db_heartbeat, db_init, db_recover, db_snapshot
from sandbox.agent.files import FilesMixin
from sandbox.agent.inits import InitsMixin
from sandbox.agent.model import (
    HEARTBEAT_INTERVAL,
    INIT_CONCURRENCY,
    INIT_MAX_FAILURES,
    POLL_INTERVAL,
    SCRIPT_BASE_NAME,
    SCRIPT_BASE_PREFIX,
    STARTUP_INIT_WAIT,
    Instance,
    log,
)
from sandbox.agent.runs import RunsMixin


class AgentHost(RunsMixin, FilesMixin, InitsMixin):
    """One asyncio process playing the agent of every instance (see the package docstring)."""

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
            await self.db.call(db_init)
            recovered = await self.db.call(db_recover)
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
        instances, stopping = await self.db.call(db_snapshot)
        if self.stop_requested:
            return
        self._reconcile(instances)
        if self.boot_events:
            booted, self.boot_events = self.boot_events, []
            await self.db.call(db_booted, booted, store.now())
            for iid in booted:
                inst = self.instances.get(iid)
                if inst is not None:
                    self._write_boot_file(inst)
        await self._handle_stopping(stopping)
        available = {iid: state for iid, inst in self.instances.items() if (state := self._availability(inst))}
        claimed, claimed_files = await self.db.call(db_claim, store.now(), available)
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
            await self.db.call(db_heartbeat, now)

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
            log.info("instance %s is gone (released)", iid)
            self._kill_instance_jobs(iid, "released")
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


def _kill_descendants() -> None:
    me = os.getpid()
    table = isolation.read_proc_table()
    children = [p.pid for p in table.values() if p.ppid == me]
    if children:
        isolation.kill_process_trees(children)
