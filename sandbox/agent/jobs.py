"""Starting and following jobs (one run of a command, or one file write, on one instance): the pre-start checks
both kinds share, spawning, output, exit, timeouts, kills, results and writing them back in batches."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from sandbox import isolation, store
from sandbox.agent.base import HostBase
from sandbox.agent.db import db_finish, db_terminate_orphans
from sandbox.agent.model import EOF_GRACE, FILE_INFO, RUN_INFO, Instance, Job, Result, log
from sandbox.agent.model import info as info_text

# Where a job cannot start because its instance's namespace never came up: ErrorCode and the ErrorInfo's start.
_BROKEN = {
    "run": ("ExecutionException", RUN_INFO["ExecutionException"]),
    "file": ("FileCreateFail", "the file creation is failed"),
}
# A namespaces instance whose init is gone between the claim and the start.
_NO_INIT = {"run": "ExecutionInterrupted", "file": "FileCreateFail"}

Refusal = tuple[str, str, str | None]  # (status, ErrorCode, ErrorInfo or None for the code's own text)


class JobsMixin(HostBase):
    def _new_job(self, kind: str, row: dict[str, Any], timeout: float) -> Job:
        return Job(kind=kind, invoke_id=row["invoke_id"], instance_id=row["instance_id"],
                   run_no=int(row.get("run_no") or 0), start_time=float(row["start_time"]), timeout=float(timeout),
                   repeat_mode=row.get("repeat_mode") or "Once", frequency=row.get("frequency") or "",
                   created_at=float(row.get("created_at") or 0.0))


    def _prepare(self, kind: str, row: dict[str, Any], timeout: float,
                 refuse: Callable[[Instance], Refusal | None]) -> tuple[Job, Instance, int | None] | None:
        """Register the job of a claimed row (kind 'run' or 'file') and take it through the checks both kinds pass
        before anything starts on the instance: the instance still exists, the kind's own `refuse` (OS, names),
        its namespace could start, its init is up. Returns (job, instance, init pid; None in process mode), or None
        when a check failed and the job is already finished with that check's status."""
        job = self._new_job(kind, row, timeout)
        (self.jobs if kind == "run" else self.file_jobs)[job.key] = job
        inst = self.instances.get(job.instance_id)
        if inst is None:
            self._finish_now(job, "Aborted", "InstanceNotExists")
            return None
        refused = refuse(inst)
        if refused is not None:
            self._finish_now(job, *refused)
            return None
        if row.get("broken"):
            code, text = _BROKEN[kind]
            self._finish_now(job, "Error", code,
                             f"{text}: the sandbox could not start the instance ({inst.init_error})")
            return None
        init_pid = None
        if self.mode == "namespaces":
            init_pid = inst.init.init_pid if inst.init else None
            if init_pid is None:
                self._finish_now(job, "Error", _NO_INIT[kind])
                return None
        return job, inst, init_pid

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
            self._finish_now(job, "Error", code, f"{info_text(job.kind, code)}: {exc}")
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
        elif reason == "released":
            base.status, base.error_code = "Aborted", "InstanceReleased"
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
        elif reason == "released":
            base.status, base.error_code = "Aborted", "InstanceReleased"
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
                        info if info is not None else info_text(job.kind, code), start_time=job.start_time,
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
            await self.db.call(db_finish, [r for _, r in batch])
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
            await self.db.call(db_terminate_orphans, orphans, store.now())
