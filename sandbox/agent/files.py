"""Starting one file write (SendFile) on one instance: name and target checks, then the file wrapper inside the
instance (mkdir -p, owner/group/mode, the Overwrite rule)."""

from __future__ import annotations

from typing import Any

from sandbox import isolation
from sandbox.agent.jobs import JobsMixin, Refusal
from sandbox.agent.model import Instance


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
        job, _, init_pid = prepared
        content = row["content"]
        if isinstance(content, str):
            content = content.encode()
        argv = [*isolation.enter_prefix(self.tools, init_pid), "/bin/sh", "-c", isolation.FILE_WRAPPER,
                "sandbox-sendfile", target, name, row["file_owner"] or "root", row["file_group"] or "root",
                row["file_mode"] or "0644", "1" if row["overwrite"] else "0"]
        self._spawn_job(job, argv, {"PATH": isolation.ENV_PATH, "HOME": "/root"}, bytes(content))
