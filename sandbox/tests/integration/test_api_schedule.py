"""Scheduling: Period (cron), NextRebootOnly, EveryReboot; StopInstance / StartInstance / RebootInstance."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from sandbox.tests.integration.sandbox_fixture import (
    add_instances,
    api_epoch,
    api_error,
    assistant_status,
    b64decode,
    describe_instances,
    describe_invocation,
    executions_of,
    invocation_results,
    invoke_instances,
    models,
    run_and_wait,
    run_command,
    stats,
    wait_agent_ready,
    wait_for,
    wait_instance_status,
    wait_invocation,
    wait_no_process,
)


def _repeats(client: Any, invoke_id: str) -> dict[str, int]:
    inv = describe_invocation(client, invoke_id, include_output=False)
    return {iid: int(r.get("Repeats") or 0) for iid, r in invoke_instances(inv).items()}


def test_period_cron_runs_and_stops(sandbox_info: dict[str, Any], client: Any, linux_ids: list[str]) -> None:
    m = models()
    targets = linux_ids[:2]
    started = time.time()
    invoke_id = run_command(
        client, "echo tick-{{ACS::InstanceId}}", targets, repeat_mode="Period", frequency="*/10 * * * * ?", timeout=10
    )["InvokeId"]
    inv = describe_invocation(client, invoke_id)
    assert inv["RepeatMode"] == "Period" and inv["Frequency"] == "*/10 * * * * ?", inv
    assert inv["Timed"] is True, inv
    # two runs each within ~25 s (first at the next multiple of 10 s, the second 10 s later)
    wait_for(lambda: min(_repeats(client, invoke_id).values()) >= 2, 27, 0.5, "two periodic runs")
    inv = describe_invocation(client, invoke_id)
    assert inv["InvocationStatus"] in ("Scheduled", "Running"), inv
    assert inv["InvokeStatus"] == "Running", inv  # legacy: periodic tasks stay Running until stopped

    history = invocation_results(client, invoke_id, include_history=True)
    for iid in targets:
        runs = [r for r in history if r["InstanceId"] == iid]
        finished = [r for r in runs if r["InvocationStatus"] == "Success"]
        assert len(finished) >= 2, runs
        for r in finished:
            assert b64decode(r["Output"]) == f"tick-{iid}\n".encode(), r
            assert r["ExitCode"] == 0
        starts = sorted(api_epoch(r["StartTime"]) for r in finished)
        # distinct runs, one per tick: the sandbox's own start times are 10 s apart (not both at once)
        assert all(b - a >= 5 for a, b in itertools.pairwise(starts)), starts
        assert starts[0] >= int(started), (started, starts)
    # without IncludeHistory: one row per instance
    assert sorted(r["InstanceId"] for r in invocation_results(client, invoke_id)) == sorted(targets)

    client.stop_invocation(m.StopInvocationRequest(region_id=client._region_id, invoke_id=invoke_id))
    inv = wait_invocation(client, invoke_id, timeout=15)
    assert inv["InvocationStatus"] in ("Stopped", "Success"), inv
    for row in invoke_instances(inv).values():
        assert row["InvocationStatus"] in ("Cancelled", "Terminated"), row
    frozen = executions_of(stats(sandbox_info), invoke_id)
    frozen_repeats = _repeats(client, invoke_id)
    # a probe with the same schedule on the same instance: once it has run, a tick has passed since the stop, and
    # the stopped schedule must not have run at it (the sandbox's records, not a sleep to a clock boundary)
    probe = run_command(client, "echo probe", targets[:1], repeat_mode="Period", frequency="*/10 * * * * ?",
                        timeout=10)["InvokeId"]
    try:
        wait_for(lambda: executions_of(stats(sandbox_info), probe) >= 1, 25, 0.5, "the probe's first tick")
    finally:
        client.stop_invocation(m.StopInvocationRequest(region_id=client._region_id, invoke_id=probe))
    assert executions_of(stats(sandbox_info), invoke_id) == frozen
    assert _repeats(client, invoke_id) == frozen_repeats


def test_period_frequency_validation(client: Any, linux_ids: list[str]) -> None:
    # interval below Timeout
    exc = api_error(
        lambda: run_command(
            client, "echo x", [linux_ids[0]], repeat_mode="Period", frequency="*/10 * * * * ?", timeout=60
        )
    )
    assert exc.code == "InvalidParam.Frequency", exc
    # not a schedule at all
    exc = api_error(
        lambda: run_command(
            client, "echo x", [linux_ids[0]], repeat_mode="Period", frequency="every now and then", timeout=10
        )
    )
    assert exc.code == "InvalidParam.Frequency", exc
    # Period without Frequency
    exc = api_error(lambda: run_command(client, "echo x", [linux_ids[0]], repeat_mode="Period", timeout=10))
    assert exc.code == "MissingParam.Frequency", exc


def _reboot(client: Any, instance_id: str) -> None:
    m = models()
    client.reboot_instance(m.RebootInstanceRequest(instance_id=instance_id))


def test_reboot_triggered_invocations(sandbox_info: dict[str, Any], client: Any) -> None:
    m = models()
    (iid,) = add_instances(sandbox_info, 1)
    wait_agent_ready(client, iid)
    once = run_command(client, "echo next-reboot", [iid], repeat_mode="NextRebootOnly")["InvokeId"]
    every = run_command(client, "echo every-reboot", [iid], repeat_mode="EveryReboot")["InvokeId"]
    # nothing may run before a reboot: once a later one-time run on the instance has finished, the agent host has
    # gone over the instance's queue (the sandbox's records instead of a sleep)
    run_and_wait(client, "true", [iid])
    for invoke_id in (once, every):
        row = invoke_instances(describe_invocation(client, invoke_id))[iid]
        assert row["InvocationStatus"] == "Scheduled", row
        assert int(row.get("Repeats") or 0) == 0, row
    assert executions_of(stats(sandbox_info), once) == 0
    assert executions_of(stats(sandbox_info), every) == 0

    _reboot(client, iid)
    inv = wait_invocation(client, once, timeout=30)
    row = invoke_instances(inv)[iid]
    assert row["InvocationStatus"] == "Success", row
    assert b64decode(row["Output"]) == b"next-reboot\n"
    wait_for(lambda: _repeats(client, every)[iid] >= 1, 30, 0.25, "EveryReboot first run")

    def settled() -> bool:
        row = invoke_instances(describe_invocation(client, every))[iid]
        return row["InvocationStatus"] == "Scheduled"

    wait_for(settled, 15, 0.25, "EveryReboot back to Scheduled")

    _reboot(client, iid)
    wait_for(lambda: _repeats(client, every)[iid] >= 2, 30, 0.25, "EveryReboot second run")
    wait_for(settled, 15, 0.25, "EveryReboot back to Scheduled after the second run")
    st = stats(sandbox_info)
    assert executions_of(st, once) == 1, st["executions"].get(once)
    assert executions_of(st, every) == 2, st["executions"].get(every)
    assert _repeats(client, once)[iid] == 1
    history = invocation_results(client, every, include_history=True)
    assert len([r for r in history if r["InvocationStatus"] == "Success"]) >= 2, history
    assert all(b64decode(r["Output"]) == b"every-reboot\n" for r in history if r["InvocationStatus"] == "Success")

    client.stop_invocation(m.StopInvocationRequest(region_id=client._region_id, invoke_id=every))
    inv = wait_invocation(client, every, timeout=15)
    assert invoke_instances(inv)[iid]["InvocationStatus"] == "Cancelled", inv


def test_stop_and_start_instance(sandbox_info: dict[str, Any], client: Any) -> None:
    m = models()
    (iid,) = add_instances(sandbox_info, 1)
    wait_agent_ready(client, iid)

    def status() -> str:
        (inst,) = describe_instances(client, [iid])
        return str(inst["Status"])

    assert status() == "Running"
    marker = f"sleep 30.{uuid.uuid4().int % 1000:03d}3"
    running = run_command(client, f"echo up; {marker}; echo never", [iid])["InvokeId"]
    wait_instance_status(client, running, iid, {"Running"}, timeout=15)
    client.stop_instance(m.StopInstanceRequest(instance_id=iid))
    wait_for(lambda: status() == "Stopped", 15, 0.2, "instance Stopped")
    # a stopped instance's running command is aborted and its processes are gone
    row = invoke_instances(wait_invocation(client, running, timeout=15))[iid]
    assert row["InvocationStatus"] == "Aborted", row
    assert row["ErrorCode"] == "InstanceNotRunning", row
    wait_no_process(marker)
    assert assistant_status(client, iid) == "false"
    stopped = describe_instances(client, None, status="Stopped", max_results=100)
    assert iid in {i["InstanceId"] for i in stopped}
    assert all(i["Status"] == "Stopped" for i in stopped)
    # Cloud Assistant is not reachable on a stopped instance; a command does not run there
    try:
        invoke_id = run_command(client, "echo on-stopped", [iid])["InvokeId"]
    except Exception as exc:  # the whole call may be refused (InvalidInstance.NotMatch / IncorrectInstanceStatus)
        assert 400 <= getattr(exc, "status_code", 0) < 500, exc
    else:
        row = invoke_instances(wait_invocation(client, invoke_id, timeout=20))[iid]
        assert row["InvocationStatus"] in ("Aborted", "Invalid", "Failed", "Error"), row
        assert b64decode(row.get("Output")) == b""
    client.start_instance(m.StartInstanceRequest(instance_id=iid))
    wait_for(lambda: status() == "Running", 15, 0.2, "instance Running")
    wait_agent_ready(client, iid, timeout=30)
    row = invoke_instances(wait_invocation(client, run_command(client, "echo up", [iid])["InvokeId"]))[iid]
    assert row["InvocationStatus"] == "Success", row


def test_install_cloud_assistant_takes_effect_after_reboot(sandbox_info: dict[str, Any], client: Any,
                                                           linux_ids: list[str]) -> None:
    m = models()
    (iid,) = add_instances(sandbox_info, 1, "--no-agent")
    assert assistant_status(client, iid) == "false"
    try:
        invoke_id = run_command(client, "echo no-agent", [iid])["InvokeId"]
    except Exception as exc:  # the whole call may be refused (InvalidInstance.NotMatch)
        assert 400 <= getattr(exc, "status_code", 0) < 500, exc
    else:
        row = invoke_instances(wait_invocation(client, invoke_id, timeout=15))[iid]
        assert row["InvocationStatus"] in ("Aborted", "Invalid"), row
    client.install_cloud_assistant(m.InstallCloudAssistantRequest(region_id=client._region_id, instance_id=[iid]))
    # only after a reboot: once a run on another instance has finished, the agent host has been through its loop
    # since the install (the sandbox's records instead of a sleep), and the agent is still not there
    run_and_wait(client, "true", linux_ids[:1])
    assert assistant_status(client, iid) == "false"
    _reboot(client, iid)
    wait_agent_ready(client, iid, timeout=30)
    row = invoke_instances(wait_invocation(client, run_command(client, "echo agent-ok", [iid])["InvokeId"]))[iid]
    assert row["InvocationStatus"] == "Success", row
    assert b64decode(row["Output"]) == b"agent-ok\n"
