"""Starting one run of a command on one instance: the wrapper's argv, the user, the working directory, the script
with its `{{placeholders}}` filled in."""

from __future__ import annotations

import json
import os
from typing import Any

from sandbox import isolation, placeholders
from sandbox.agent.jobs import JobsMixin, Refusal
from sandbox.agent.model import ACCOUNT_ID, RUN_ENV_MARKER, RUN_INFO, WINDOWS_INFO, WINDOWS_TYPES, Instance


class RunsMixin(JobsMixin):
    def _start_run(self, row: dict[str, Any]) -> None:
        def refuse(inst: Instance) -> Refusal | None:
            if (row["os_type"] or "").lower() == "windows" or row["command_type"] in WINDOWS_TYPES:
                return "Error", "ExecutionException", WINDOWS_INFO
            return None

        prepared = self._prepare("run", row, int(row["timeout"] or 0) or 60, refuse)
        if prepared is None:
            return
        job, inst, init_pid = prepared
        try:
            content = self._render(row, inst)
        except Exception as exc:
            self._finish_now(job, "Error", "ExecutionException", f"{RUN_INFO['ExecutionException']}: {exc}")
            return
        user = row["username"] or "root"
        env = {"PATH": isolation.ENV_PATH}
        if self.mode == "namespaces":
            workdir = row["working_dir"] or "/root"
            script_dir = isolation.INSTANCE_SCRIPT_DIR
            home = ""
            switch = user != "root"
            env.update(HOME="/root", USER="root", LOGNAME="root")
        else:
            home_dir = str(self.inst_dir(inst.instance_id) / "home")
            workdir = row["working_dir"] or home_dir
            assert self.script_base is not None
            script_dir = str(self.script_base / inst.instance_id)
            same = user == self.me or (user == "root" and os.geteuid() != 0)
            switch = not same
            home = "" if switch else home_dir
            env.update(HOME=home_dir, USER=self.me, LOGNAME=self.me)
            env[RUN_ENV_MARKER] = str(self.dir)
        argv = [*isolation.enter_prefix(self.tools, init_pid), "/bin/sh", "-c", isolation.RUN_WRAPPER,
                "sandbox-run", user if switch else (user if self.mode == "namespaces" else self.me), workdir,
                script_dir, f"{job.invoke_id}.sh", home, "1" if switch else "0",
                *isolation.shebang_argv(content)]
        self._spawn_job(job, argv, env, content.encode())

    def _render(self, row: dict[str, Any], inst: Instance) -> str:
        try:
            params = json.loads(row["parameters"] or "{}")
        except ValueError:
            params = {}
        if not isinstance(params, dict):
            params = {}
        builtins = {
            "ACS::InstanceId": inst.instance_id,
            "ACS::RegionId": row["inst_region"] or row["region_id"] or inst.region_id,
            "ACS::InvokeId": row["invoke_id"],
            "ACS::CommandId": row["command_id"],
            "ACS::InstanceName": row["instance_name"] or inst.name,
            "ACS::AccountId": ACCOUNT_ID,
        }
        return placeholders.substitute(row["command_content"] or "", params, builtins)
