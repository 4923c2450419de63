"""Namespace inits: each Running Linux instance's PID 1 in namespaces mode (start, wait for ready, restart on boot,
stop, retry with back-off, give up after INIT_MAX_FAILURES)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

from sandbox import filewrite, isolation
from sandbox.agent.jobs import JobsMixin
from sandbox.agent.model import INIT_MAX_FAILURES, INIT_READY_TIMEOUT, InitProc, Instance, log, tail_text


class InitsMixin(JobsMixin):
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
        try:
            isolation.hide_host_dirs(d / "upper")
        except OSError as exc:
            inst.init_error = f"cannot hide the host's private directories from the instance: {exc}"
            return None
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
            inst.init_error = tail_text(d / "init.log") or "the namespace init failed"
            log.warning("instance %s: namespace init failed: %s", inst.instance_id, inst.init_error)
            return None
        init.init_pid = int(words[1])
        init.ready = True
        with contextlib.suppress(OSError):
            init.root_id = filewrite.root_identity(init.init_pid)
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
