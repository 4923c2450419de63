"""The `serve` / `env` command line contract: the JSON line, DIR/sandbox.json, env exports, loopback only."""

from __future__ import annotations

import json
import shlex
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sandbox import fleet, store
from sandbox.tests.integration.sandbox_fixture import (
    PYTHON,
    REPO_ROOT,
    Sandbox,
    describe_instances,
    ecs_client,
    processes_of,
    stop_sandbox,
    wait_agent_ready,
)


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


def _port(sb: Sandbox) -> int:
    port = urlsplit(sb.info["endpoint"]).port
    assert port is not None
    return port


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _up(sb: Sandbox) -> Sandbox:
    """Wait until the instance is booted: a stop while the agent host is still starting namespace inits can
    leave one behind (a known race, not what this test is about)."""
    client = ecs_client(sb.info)
    (instance,) = describe_instances(client)
    wait_agent_ready(client, instance["InstanceId"])
    return sb


def test_restart_reuses_the_address_unless_taken_or_overridden(isolated_sandbox: Callable[..., Sandbox]) -> None:
    first = _up(isolated_sandbox(instances=1))
    stop_sandbox(first)
    # the same DIR again: the same endpoint, so clients configured for the first run reach the second
    second = isolated_sandbox(first.state_dir)
    assert second.info["endpoint"] == first.info["endpoint"]
    _up(second)
    stop_sandbox(second)
    # that port taken meanwhile: another one, and the sandbox still serves
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the last run's connections in TIME_WAIT
        squatter.bind(("127.0.0.1", _port(first)))
        squatter.listen(1)
        third = _up(isolated_sandbox(first.state_dir))
        assert _port(third) != _port(first)
        stop_sandbox(third)
    # --port overrides the remembered one
    wanted = _free_port()
    fourth = _up(isolated_sandbox(first.state_dir, extra_args=("--port", str(wanted))))
    assert fourth.info["endpoint"] == f"http://127.0.0.1:{wanted}"
    assert json.loads((first.state_dir / "sandbox.json").read_text())["endpoint"] == fourth.info["endpoint"]


def test_ctl_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`python -m sandbox ctl ... | head`: no BrokenPipeError traceback, the exit status of a tool killed by
    SIGPIPE (141). The listing is far larger than a pipe's buffer, so the writer does meet the closed pipe."""
    conn = store.connect(tmp_path)
    store.init_schema(conn)
    fleet.seed_regions(conn, fleet.DEFAULT_REGIONS)
    fleet.create_instances(conn, 1500, "cn-hangzhou")
    conn.close()
    ctl = shlex.join([PYTHON, "-m", "sandbox", "ctl", "--state-dir", str(tmp_path), "instances", "list"])
    done = subprocess.run(
        ["bash", "-c", f"{ctl} | head -c 20; exit ${{PIPESTATUS[0]}}"],
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stderr == ""
    assert done.stdout == '[{"instance_id": "i-'
    assert done.returncode == 141
    # the whole listing is still written when someone reads it
    full = subprocess.run(
        [PYTHON, "-m", "sandbox", "ctl", "--state-dir", str(tmp_path), "instances", "list"],
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len(json.loads(full.stdout)) == 1500
