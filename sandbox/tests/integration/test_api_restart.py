"""Restarting `serve` on the same state dir: after SIGKILL (agent host keeps running) and after a clean SIGTERM."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

from sandbox.tests.integration.sandbox_fixture import (
    CaptureServer,
    Sandbox,
    agent_pid,
    describe_instances,
    describe_invocation,
    ecs_client,
    invoke_instances,
    kill_server,
    linux_instances,
    models,
    output_of,
    pid_alive,
    processes_matching,
    replay,
    run_command,
    stats,
    stop_sandbox,
    unique,
    wait_agent_ready,
    wait_for,
    wait_instance_status,
    wait_invocation,
)


def _create_command(client: Any, name: str) -> str:
    m = models()
    resp = client.create_command(
        m.CreateCommandRequest(
            region_id=client._region_id,
            name=name,
            type="RunShellScript",
            command_content=base64.b64encode(b"echo saved").decode(),
        )
    )
    return str(resp.body.to_map()["CommandId"])


def _command_ids(client: Any, name: str) -> list[str]:
    m = models()
    body = client.describe_commands(m.DescribeCommandsRequest(region_id=client._region_id, name=name)).body
    return [c["CommandId"] for c in body.to_map().get("Commands", {}).get("Command", [])]


def test_server_killed_mid_run(isolated_sandbox: Callable[..., Sandbox]) -> None:
    first = isolated_sandbox()
    client = ecs_client(first.info)
    ids = linux_instances(first.info)
    assert len(ids) == 2
    wait_agent_ready(client, ids[0])
    name = unique("persist-")
    command_id = _create_command(client, name)
    invoke_id = run_command(client, "sleep 4; echo done", [ids[0]])["InvokeId"]
    wait_instance_status(client, invoke_id, ids[0], {"Running"}, timeout=15)
    host_pid = agent_pid(first.state_dir)
    assert host_pid is not None and pid_alive(host_pid)
    # a signed request, used once before the crash: its nonce must stay used afterwards
    with CaptureServer() as cap:
        ecs_client(first.info, endpoint=cap.info_override).describe_regions(models().DescribeRegionsRequest())
    (captured,) = cap.requests
    assert replay(first.info, captured)[0] == 200

    kill_server(first)
    assert pid_alive(host_pid), "the agent host died with the server"

    second = isolated_sandbox(first.state_dir)
    assert agent_pid(second.state_dir) == host_pid, "a new agent host was started instead of reusing the live one"
    assert second.info["endpoint"] == first.info["endpoint"], "the restarted server took another address"
    client = ecs_client(second.info)
    inv = wait_invocation(client, invoke_id, timeout=20)
    row = invoke_instances(inv)[ids[0]]
    assert row["InvocationStatus"] == "Success", row
    assert output_of(row) == b"done\n"
    assert sorted(i["InstanceId"] for i in describe_instances(client, None, max_results=100)) == sorted(ids)
    assert _command_ids(client, name) == [command_id]
    st = stats(second.info)
    assert st["duplicate_executions"] == 0
    assert sum(st["executions"][invoke_id].values()) == 1
    status, _, body = replay(second.info, captured)
    assert (status, body.get("Code")) == (400, "SignatureNonceUsed"), body


def test_clean_restart_keeps_state_and_resumes_schedule(isolated_sandbox: Callable[..., Sandbox]) -> None:
    m = models()
    first = isolated_sandbox(instances=1)
    client = ecs_client(first.info)
    (iid,) = linux_instances(first.info)
    wait_agent_ready(client, iid)
    name = unique("persist-")
    command_id = _create_command(client, name)
    once_id = run_command(client, "echo before-restart", [iid])["InvokeId"]
    once_inv = wait_invocation(client, once_id)
    assert invoke_instances(once_inv)[iid]["InvocationStatus"] == "Success"
    period_id = run_command(
        client, "echo periodic", [iid], repeat_mode="Period", frequency="*/10 * * * * ?", timeout=10
    )["InvokeId"]

    def repeats() -> int:
        return int(
            invoke_instances(describe_invocation(client, period_id, include_output=False))[iid].get("Repeats") or 0
        )

    wait_for(lambda: repeats() >= 1, 15, 0.25, "first periodic run")
    before = repeats()
    # a Once run still going when the sandbox stops ends Error/ExecutionInterrupted and is not run again
    marker = f"sleep 30.{uuid.uuid4().int % 1000:03d}4"
    cut_id = run_command(client, f"{marker}; echo never", [iid])["InvokeId"]
    wait_instance_status(client, cut_id, iid, {"Running"}, timeout=15)

    stop_sandbox(first)  # SIGTERM; asserts nothing of the state dir is left running
    second = isolated_sandbox(first.state_dir, instances=3)  # --instances only acts on a new DIR
    assert second.info["endpoint"] == first.info["endpoint"], "the restarted server took another address"
    client = ecs_client(second.info)
    assert [i["InstanceId"] for i in describe_instances(client, None, max_results=100)] == [iid]
    assert _command_ids(client, name) == [command_id]
    inv = describe_invocation(client, once_id)
    assert inv["InvocationStatus"] == "Success"
    assert output_of(invoke_instances(inv)[iid]) == b"before-restart\n"
    assert not processes_matching(marker), "a command process outlived the sandbox"
    cut = invoke_instances(wait_invocation(client, cut_id, timeout=15))[iid]
    assert cut["InvocationStatus"] == "Error", cut
    assert cut["ErrorCode"] == "ExecutionInterrupted", cut
    wait_agent_ready(client, iid)
    started = time.monotonic()
    wait_for(lambda: repeats() > before, 25, 0.25, "a periodic run after the restart")
    assert time.monotonic() - started < 25
    client.stop_invocation(m.StopInvocationRequest(region_id=client._region_id, invoke_id=period_id))
    wait_invocation(client, period_id, timeout=15)
    st = stats(second.info)
    assert st["duplicate_executions"] == 0
    assert sum(st["executions"][cut_id].values()) == 1
    assert not processes_matching(marker)
