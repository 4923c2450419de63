"""Starting one file write (SendFile) on one instance: name and target checks, then the write itself, done by the
agent host through the instance's root (`sandbox/filewrite.py`: no process started), or, where that is not
available, by the file wrapper run inside the instance (mkdir -p, owner/group/mode, the Overwrite rule)."""

from __future__ import annotations

import os
from typing import Any

from sandbox import filewrite, isolation
from sandbox.agent.jobs import JobsMixin, Refusal
from sandbox.agent.model import Instance, Job


class FilesMixin(JobsMixin):
    def _start_file(self, row: dict[str, Any]) -> None:
        name, target = row["name"] or "", row["target_dir"] or ""

        def refuse(inst: Instance) -> Refusal | None:
            if not inst.linux:
                return ("Invalid", "FileCreateFail",
                        "the file creation is failed: the sandbox does not write files on Windows instances")
            if not name or "/" in name or "\0" in name or name in (".", ".."):
                return "Invalid", "FileNameInvalid", None
            if not target.startswith("/") or "\0" in target:
                return "Invalid", "FilePathInvalid", None
            return None

        prepared = self._prepare("file", row, max(10, int(row["timeout"] or 60)), refuse)
        if prepared is None:
            return
        job, inst, init_pid = prepared
        content = row["content"]
        if isinstance(content, str):
            content = content.encode()
        owner, group = row["file_owner"] or "root", row["file_group"] or "root"
        mode, overwrite = row["file_mode"] or "0644", bool(row["overwrite"])
        if self.direct_files:
            self._write_direct(job, inst, init_pid, target, name, bytes(content), owner, group, mode, overwrite)
            return
        argv = [*isolation.enter_prefix(self.tools, init_pid), "/bin/sh", "-c", isolation.FILE_WRAPPER,
                "sandbox-sendfile", target, name, owner, group, mode, "1" if overwrite else "0"]
        self._spawn_job(job, argv, {"PATH": isolation.ENV_PATH, "HOME": "/root"}, bytes(content))

    def _write_direct(self, job: Job, inst: Instance, init_pid: int | None, target: str, name: str, content: bytes,
                      owner: str, group: str, mode: str, overwrite: bool) -> None:
        """The whole write, now, on the event loop: a few system calls on a file of at most 24 KB, so nothing else
        can happen to the instance (a stop, a restart of its namespace) while it runs."""
        identity = None
        if init_pid is not None:
            identity = inst.init.root_id if inst.init is not None else None
            if identity is None:
                self._finish_now(job, "Error", "FileCreateFail")
                return
        try:
            root_fd = filewrite.open_root(init_pid, identity)
        except OSError:
            self._finish_now(job, "Error", "FileCreateFail")
            return
        try:
            code = filewrite.write_file(root_fd, target, name, content, owner, group, mode, overwrite)
        finally:
            os.close(root_fd)
        if code is None:
            self._finish_now(job, "Success", "")
        else:
            self._finish_now(job, "Failed", code)
