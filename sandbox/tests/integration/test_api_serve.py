"""The `serve` / `env` command line contract: the JSON line, DIR/sandbox.json, env exports, loopback only."""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

from sandbox.tests.integration.sandbox_fixture import PYTHON, REPO_ROOT, Sandbox, processes_of


def test_info_file_matches_json_line(sandbox_proc: Sandbox) -> None:
    info_path = Path(sandbox_proc.info["state_dir"]) / "sandbox.json"
    assert stat.S_IMODE(info_path.stat().st_mode) == 0o600
    assert json.loads(info_path.read_text()) == sandbox_proc.info
    assert Path(sandbox_proc.info["state_dir"]) == sandbox_proc.state_dir.resolve()
    assert sandbox_proc.info["isolation"] in ("namespaces", "process")
    assert sandbox_proc.info["endpoint"].startswith("http://127.0.0.1:")


def test_env_exports(sandbox_info: dict[str, Any]) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "sandbox", "env", "--state-dir", sandbox_info["state_dir"]],
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    exported = {}
    for line in done.stdout.splitlines():
        assert line.startswith("export "), line
        name, _, value = line[len("export ") :].partition("=")
        exported[name] = shlex.split(value)[0]
    assert exported == {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": sandbox_info["access_key_id"],
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sandbox_info["access_key_secret"],
        "ALIBABA_CLOUD_REGION_ID": sandbox_info["region_id"],
        "ALIBABA_CLOUD_ECS_ENDPOINT": sandbox_info["endpoint"],
    }


def test_non_loopback_host_refused(tmp_path: Path) -> None:
    state_dir = tmp_path / "refused"
    done = subprocess.run(
        [PYTHON, "-m", "sandbox", "serve", "--state-dir", str(state_dir), "--host", "0.0.0.0", "--instances", "1"],
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stdout == ""
    assert "loopback" in done.stderr
    assert processes_of(state_dir) == []
