"""RunCommand end to end through both SDKs: output, exit codes, statuses, timeouts, stop, parameters, users,
directories, tag targeting, OS applicability, agent state, ClientToken."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest

from sandbox.tests.integration.sandbox_fixture import (
    acs_call,
    add_instances,
    api_epoch,
    api_error,
    assistant_status,
    b64decode,
    ctl,
    ctl_raw,
    describe_instances,
    describe_invocation,
    ecs_client_v1,
    executions_of,
    invocation_results,
    invoke_instances,
    models,
    output_of,
    processes_matching,
    run_and_wait,
    run_command,
    run_one,
    stats,
    unique,
    wait_agent_ready,
    wait_for,
    wait_instance_status,
    wait_invocation,
    wait_no_process,
)

OUTPUT_LIMIT = 24576


def test_run_command_tea_sdk(client: Any, linux_ids: list[str]) -> None:
    targets = linux_ids[:2]
    resp = run_command(client, "echo hello; echo oops >&2; exit 0", targets)
    invoke_id = resp["InvokeId"]
    assert invoke_id.startswith("t-"), resp
    assert resp.get("CommandId", "").startswith("c-"), resp
    inv = wait_invocation(client, invoke_id)
    assert inv["InvocationStatus"] == "Success", inv
    assert inv["InvokeStatus"] == "Finished", inv
    assert inv["CommandType"] == "RunShellScript"
    assert inv["RepeatMode"] == "Once"
    rows = invoke_instances(inv)
    assert set(rows) == set(targets)
    for row in rows.values():
        assert row["InvocationStatus"] == "Success", row
        assert row["InstanceInvokeStatus"] == "Finished", row
        assert row["ExitCode"] == 0
        assert row["ErrorCode"] in ("", None), row
        assert output_of(row) == b"hello\noops\n", row
        assert row["Dropped"] == 0
        assert row["StartTime"] and row["FinishTime"], row
    # PlainText output through DescribeInvocations and DescribeInvocationResults
    plain = describe_invocation(client, invoke_id, content_encoding="PlainText")
    assert {r["Output"] for r in invoke_instances(plain).values()} == {"hello\noops\n"}
    results = invocation_results(client, invoke_id, content_encoding="PlainText")
    assert {r["InstanceId"] for r in results} == set(targets)
    for r in results:
        assert r["Output"] == "hello\noops\n", r
        assert r["ExitCode"] == 0 and r["InvocationStatus"] == "Success", r
        assert r["FinishedTime"], r
    results = invocation_results(client, invoke_id)
    assert {b64decode(r["Output"]) for r in results} == {b"hello\noops\n"}


def test_run_command_core_sdk(sandbox_info: dict[str, Any], client: Any, linux_ids: list[str]) -> None:
    rid = sandbox_info["region_id"]
    body = acs_call(
        sandbox_info,
        "RunCommand",
        {
            "RegionId": rid,
            "Type": "RunShellScript",
            "CommandContent": "echo core-sdk; exit 4",
            "InstanceId.1": linux_ids[2],
            "InstanceId.2": linux_ids[3],
            "Timeout": "30",
        },
    )
    invoke_id = body["InvokeId"]
    assert body["RequestId"]

    def finished() -> dict[str, Any] | None:
        got = acs_call(
            sandbox_info,
            "DescribeInvocations",
            {"RegionId": rid, "InvokeId": invoke_id, "IncludeOutput": "true"},
            method="GET",
        )
        inv = got["Invocations"]["Invocation"][0]
        return inv if inv["InvocationStatus"] in ("Success", "Failed", "PartialFailed", "Stopped") else None

    inv = wait_for(finished, 30, 0.2, "core SDK invocation")
    assert inv["InvocationStatus"] == "Failed", inv
    rows = {r["InstanceId"]: r for r in inv["InvokeInstances"]["InvokeInstance"]}
    assert set(rows) == {linux_ids[2], linux_ids[3]}
    for row in rows.values():
        assert row["InvocationStatus"] == "Failed"
        assert row["ErrorCode"] == "ExitCodeNonzero"
        assert row["ExitCode"] == 4
        assert base64.b64decode(row["Output"]) == b"core-sdk\n"
    res = acs_call(
        sandbox_info,
        "DescribeInvocationResults",
        {"RegionId": rid, "InvokeId": invoke_id, "ContentEncoding": "PlainText"},
    )
    results = res["Invocation"]["InvocationResults"]["InvocationResult"]
    assert {r["Output"] for r in results} == {"core-sdk\n"}
    # Base64 CommandContent through the core SDK
    body = acs_call(
        sandbox_info,
        "RunCommand",
        {
            "RegionId": rid,
            "Type": "RunShellScript",
            "ContentEncoding": "Base64",
            "CommandContent": base64.b64encode(b"echo from-b64").decode(),
            "InstanceId.1": linux_ids[2],
        },
    )
    inv = wait_invocation(client, body["InvokeId"])
    assert output_of(invoke_instances(inv)[linux_ids[2]]) == b"from-b64\n"


def test_large_command_content(client: Any, linux_ids: list[str]) -> None:
    # 16000 bytes of script are 21336 Base64 characters: under the 24 KB limit
    filler = "#" + "a" * 15900 + "\n"
    row = run_one(client, filler + "echo big-ok", linux_ids[0])
    assert row["InvocationStatus"] == "Success", row
    assert output_of(row) == b"big-ok\n"
    # 20000 bytes are 26668 Base64 characters: over the limit
    exc = api_error(lambda: run_command(client, "#" + "b" * 20000 + "\necho no", [linux_ids[0]]))
    assert exc.code == "CmdContent.ExceedLimit", exc
    assert 400 <= exc.status_code < 500


def test_nonzero_exit(client: Any, linux_ids: list[str]) -> None:
    row = run_one(client, "echo before; exit 3", linux_ids[0])
    assert row["InvocationStatus"] == "Failed", row
    assert row["ErrorCode"] == "ExitCodeNonzero", row
    assert row["ExitCode"] == 3
    assert output_of(row) == b"before\n"
    # one Success + one Failed → PartialFailed overall
    script = '[ "{{ACS::InstanceId}}" = "' + linux_ids[0] + '" ] || exit 1'
    _, inv = run_and_wait(client, script, linux_ids[:2])
    assert inv["InvocationStatus"] == "PartialFailed", inv


def test_timeout_kills(client: Any, linux_ids: list[str]) -> None:
    marker = f"sleep 30.{uuid.uuid4().int % 1000:03d}1"
    started = time.monotonic()
    script = f"echo started; ({marker}; echo child-never) & {marker}; echo never"
    invoke_id = run_command(client, script, [linux_ids[4]], timeout=10)["InvokeId"]
    wait_for(lambda: processes_matching(marker), 10, 0.1, "the script's sleep processes to start")
    inv = wait_invocation(client, invoke_id, timeout=25, interval=0.25)
    elapsed = time.monotonic() - started
    row = invoke_instances(inv)[linux_ids[4]]
    assert row["InvocationStatus"] == "Timeout", row
    assert row["ErrorCode"] == "ExecutionTimeout", row
    assert output_of(row) == b"started\n"
    assert elapsed < 25, f"timed out after {elapsed:.1f} s instead of ~10 s"
    # the sandbox's own record: killed 10 s after the start (second resolution), not at once nor after the 30 s sleep
    ran = api_epoch(row["FinishTime"]) - api_epoch(row["StartTime"])
    assert 9 <= ran <= 12, (row["StartTime"], row["FinishTime"])
    assert inv["InvocationStatus"] == "Failed", inv
    (res,) = invocation_results(client, invoke_id)
    assert res["InvocationStatus"] == "Timeout" and res["ErrorCode"] == "ExecutionTimeout", res
    assert res["InvokeRecordStatus"] == "Failed", res  # reference §3.3: a timed-out one-time run is Failed
    wait_no_process(marker)  # the whole process tree is gone, the background subshell included


def test_stop_running_invocation(client: Any, linux_ids: list[str]) -> None:
    m = models()
    marker = f"sleep 30.{uuid.uuid4().int % 1000:03d}2"
    script = f"echo go; setsid {marker} & {marker}; echo never"
    invoke_id = run_command(client, script, [linux_ids[5]])["InvokeId"]
    wait_instance_status(client, invoke_id, linux_ids[5], {"Running"}, timeout=15)
    wait_for(lambda: len(processes_matching(marker)) >= 2, 10, 0.1, "both sleeps to start")
    stopped_at = time.monotonic()
    client.stop_invocation(m.StopInvocationRequest(region_id=client._region_id, invoke_id=invoke_id))
    inv = wait_invocation(client, invoke_id, timeout=15)
    assert time.monotonic() - stopped_at < 10
    row = invoke_instances(inv)[linux_ids[5]]
    assert row["InvocationStatus"] == "Terminated", row
    assert row["ErrorCode"] == "ExecutionInterrupted", row
    assert row["StopTime"], row
    assert output_of(row) == b"go\n"
    assert inv["InvocationStatus"] == "Stopped", inv
    assert inv["InvokeStatus"] == "Stopped", inv  # legacy overall status
    assert row["InstanceInvokeStatus"] == "Stopped", row  # legacy per-instance status
    # the process tree is killed, including a descendant in its own session (setsid)
    wait_no_process(marker)


def test_stop_period_invocation_cancels(client: Any, linux_ids: list[str]) -> None:
    m = models()
    # every January 1st: never due during the test
    invoke_id = run_command(
        client, "echo yearly", linux_ids[:2], repeat_mode="Period", frequency="0 0 0 1 1 ?", timeout=10
    )["InvokeId"]
    rows = invoke_instances(describe_invocation(client, invoke_id))
    assert {r["InvocationStatus"] for r in rows.values()} == {"Scheduled"}, rows
    assert describe_invocation(client, invoke_id)["InvocationStatus"] == "Scheduled"
    client.stop_invocation(m.StopInvocationRequest(region_id=client._region_id, invoke_id=invoke_id))
    inv = wait_invocation(client, invoke_id, timeout=10)
    rows = invoke_instances(inv)
    assert {r["InvocationStatus"] for r in rows.values()} == {"Cancelled"}, rows
    assert all(r["Repeats"] == 0 for r in rows.values()), rows
    assert inv["InvocationStatus"] == "Stopped", inv


def test_output_over_24k_keeps_tail(client: Any, linux_ids: list[str]) -> None:
    full = "".join(f"{i}\n" for i in range(1, 10001)).encode()
    invoke_id, inv = run_and_wait(client, "seq 1 10000", [linux_ids[1]])
    row = invoke_instances(inv)[linux_ids[1]]
    assert row["InvocationStatus"] == "Success", row
    out = output_of(row)
    assert len(out) == OUTPUT_LIMIT, len(out)
    assert out == full[-OUTPUT_LIMIT:]
    assert row["Dropped"] == len(full) - OUTPUT_LIMIT
    (res,) = invocation_results(client, invoke_id)
    assert b64decode(res["Output"]) == full[-OUTPUT_LIMIT:]
    assert res["Dropped"] == len(full) - OUTPUT_LIMIT


def test_output_exactly_24k_not_dropped(client: Any, linux_ids: list[str]) -> None:
    row = run_one(client, f"head -c {OUTPUT_LIMIT} /dev/zero | tr '\\0' 'x'", linux_ids[1])
    assert output_of(row) == b"x" * OUTPUT_LIMIT
    assert row["Dropped"] == 0


def test_unicode_and_binary_output(client: Any, linux_ids: list[str]) -> None:
    all_bytes = bytes(range(256))
    fmt = "".join(f"\\{b:03o}" for b in all_bytes)
    text = "héllo 世界 🚀 ✓"
    invoke_id, inv = run_and_wait(client, f"printf '{fmt}'; printf '%s\\n' '{text}'", [linux_ids[2]])
    expected = all_bytes + (text + "\n").encode()
    row = invoke_instances(inv)[linux_ids[2]]
    assert row["InvocationStatus"] == "Success", row
    assert output_of(row) == expected
    (res,) = invocation_results(client, invoke_id)
    assert b64decode(res["Output"]) == expected
    # Unicode alone also survives PlainText
    invoke_id, _ = run_and_wait(client, f"printf '%s' '{text}'", [linux_ids[2]])
    (res,) = invocation_results(client, invoke_id, content_encoding="PlainText")
    assert res["Output"] == text
    # and the command content itself is stored faithfully (Base64 by default in DescribeInvocations)
    inv = describe_invocation(client, invoke_id, include_output=False)
    assert b64decode(inv["CommandContent"]).decode() == f"printf '%s' '{text}'"


def test_parameters_and_builtins(sandbox_info: dict[str, Any], client: Any, linux_ids: list[str]) -> None:
    target = linux_ids[3]
    content = (
        'echo "{{greeting}} {{ name }}"\n'
        "echo {{ACS::InstanceId}}\necho {{ACS::RegionId}}\necho {{ACS::InvokeId}}\n"
        "echo {{ACS::CommandId}}\necho '{{ACS::InstanceName}}'"
    )
    resp = run_command(
        client, content, [target], enable_parameter=True, parameters={"greeting": "hi there", "name": "Jack"}
    )
    inv = wait_invocation(client, resp["InvokeId"])
    row = invoke_instances(inv)[target]
    assert row["InvocationStatus"] == "Success", row
    (described,) = describe_instances(client, [target])
    expected = (
        "\n".join(
            [
                "hi there Jack",
                target,
                sandbox_info["region_id"],
                resp["InvokeId"],
                resp["CommandId"],
                described["InstanceName"],
            ]
        )
        + "\n"
    )
    assert output_of(row).decode() == expected
    params = inv.get("Parameters")
    params = json.loads(params) if isinstance(params, str) else params
    assert params == {"greeting": "hi there", "name": "Jack"}, inv.get("Parameters")
    # the stored content keeps the placeholders (substitution happens per instance)
    assert "{{greeting}}" in b64decode(inv["CommandContent"]).decode()


def test_parameter_errors(client: Any, linux_ids: list[str]) -> None:
    before = describe_invocations_count(client, linux_ids[0])
    # a placeholder without a value
    exc = api_error(lambda: run_command(client, "echo {{who}}", [linux_ids[0]], enable_parameter=True, parameters={}))
    assert exc.code == "Parameter.MissingValue", exc
    assert 400 <= exc.status_code < 500
    # a value for a name the content does not use
    exc = api_error(
        lambda: run_command(
            client, "echo {{who}}", [linux_ids[0]], enable_parameter=True, parameters={"who": "a", "other": "b"}
        )
    )
    assert exc.code == "Parameter.NotMatched", exc
    # parameters without EnableParameter
    exc = api_error(lambda: run_command(client, "echo {{who}}", [linux_ids[0]], parameters={"who": "a"}))
    assert exc.code == "Parameter.Disabled", exc
    # without EnableParameter the braces are plain text
    assert output_of(run_one(client, "echo '{{who}}'", linux_ids[0])) == b"{{who}}\n"
    assert describe_invocations_count(client, linux_ids[0]) == before + 1  # the refused calls created nothing


def describe_invocations_count(client: Any, instance_id: str) -> int:
    body = client.describe_invocations(
        models().DescribeInvocationsRequest(region_id=client._region_id, instance_id=instance_id, page_size=1)
    ).body.to_map()
    return int(body["TotalCount"])


def test_working_dir_and_username(client: Any, linux_ids: list[str]) -> None:
    row = run_one(client, "pwd; id -un; id -u", linux_ids[4], working_dir="/tmp", username="nobody")
    assert row["InvocationStatus"] == "Success", row
    lines = output_of(row).decode().split()
    assert lines[0] == "/tmp" and lines[1] == "nobody" and lines[2] != "0", lines
    row = run_one(client, "id -u", linux_ids[4])
    assert output_of(row) == b"0\n", row  # default user root
    described = describe_invocation(
        client, run_command(client, "true", [linux_ids[4]], username="nobody")["InvokeId"], include_output=False
    )
    assert described["Username"] == "nobody"


def test_missing_user_and_dir(client: Any, linux_ids: list[str]) -> None:
    row = run_one(client, "echo should-not-run", linux_ids[5], username="no_such_user_" + uuid.uuid4().hex[:6])
    assert row["InvocationStatus"] == "Invalid", row
    assert row["ErrorCode"] == "AccountNotExists", row
    assert output_of(row) == b""
    row = run_one(client, "echo should-not-run", linux_ids[5], working_dir="/no/such/dir/" + uuid.uuid4().hex[:6])
    assert row["InvocationStatus"] == "Invalid", row
    assert row["ErrorCode"] == "DirectoryNotExists", row
    assert output_of(row) == b""


def test_resource_tag_targeting(sandbox_info: dict[str, Any], client: Any, linux_ids: list[str]) -> None:
    m = models()
    value = unique("blue-")
    tagged = add_instances(sandbox_info, 3, "--tag", f"env={value}")
    for iid in tagged:
        wait_agent_ready(client, iid)
    tag = m.RunCommandRequestResourceTag(key="env", value=value)
    resp = run_command(client, "echo {{ACS::InstanceId}}", None, resource_tag=[tag])
    inv = wait_invocation(client, resp["InvokeId"])
    rows = invoke_instances(inv)
    assert set(rows) == set(tagged), rows
    for iid, row in rows.items():
        assert row["InvocationStatus"] == "Success", row
        assert output_of(row) == f"{iid}\n".encode()
    # a tag nobody carries
    exc = api_error(
        lambda: run_command(
            client, "echo x", None, resource_tag=[m.RunCommandRequestResourceTag(key="env", value=unique("nobody-"))]
        )
    )
    assert exc.code == "InvalidResourceTag.InstanceNotFound", exc
    assert 400 <= exc.status_code < 500, exc
    # InstanceId and ResourceTag together conflict
    exc = api_error(lambda: run_command(client, "echo x", [linux_ids[0]], resource_tag=[tag]))
    assert exc.code == "InvalidResourceTag.ConflictWithInstanceIds", exc
    assert 400 <= exc.status_code < 500, exc


def test_windows_instance_shell_not_applicable(client: Any, windows_id: str) -> None:
    body = client.describe_cloud_assistant_status(
        models().DescribeCloudAssistantStatusRequest(region_id=client._region_id, instance_id=[windows_id])
    ).body.to_map()
    (status,) = body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"]
    assert status["OSType"] == "Windows" and status["CloudAssistantStatus"] == "true", status
    (inst,) = describe_instances(client, [windows_id])
    assert inst["OSType"] == "windows" and len(inst["HostName"]) <= 15, inst
    row = run_one(client, "echo hi", windows_id)
    assert row["InvocationStatus"] == "Invalid", row
    assert row["ErrorCode"] == "CommandNotApplicable", row


def test_windows_bat_script_error(client: Any, windows_id: str) -> None:
    row = run_one(client, "echo hi", windows_id, type="RunBatScript")
    assert row["InvocationStatus"] == "Error", row
    assert row["ErrorCode"], row
    assert row["ErrorInfo"] and "windows" in row["ErrorInfo"].lower(), row


def test_linux_powershell_not_applicable(client: Any, linux_ids: list[str]) -> None:
    row = run_one(client, "Write-Output hi", linux_ids[0], type="RunPowerShellScript")
    assert row["InvocationStatus"] == "Invalid", row
    assert row["ErrorCode"] == "CommandNotApplicable", row
    row = run_one(client, "echo hi", linux_ids[0], type="RunBatScript")
    assert row["ErrorCode"] == "CommandNotApplicable", row


def test_agent_stopped_and_restarted(sandbox_info: dict[str, Any], client: Any) -> None:
    (iid,) = add_instances(sandbox_info, 1)
    wait_agent_ready(client, iid)
    ctl(sandbox_info, "agent", "stop", iid)
    assert assistant_status(client, iid) == "false"
    row = run_one(client, "echo nope", iid)
    assert row["InvocationStatus"] == "Aborted", row
    assert row["ErrorCode"] == "ClientNotRunning", row
    ctl(sandbox_info, "agent", "start", iid)
    wait_agent_ready(client, iid, timeout=30)
    row = run_one(client, "echo back", iid)
    assert row["InvocationStatus"] == "Success", row
    assert output_of(row) == b"back\n"


def test_client_token_idempotent(sandbox_info: dict[str, Any], client: Any, linux_ids: list[str]) -> None:
    token = uuid.uuid4().hex
    first = run_command(client, "echo once", [linux_ids[1]], client_token=token)
    wait_invocation(client, first["InvokeId"])
    before = stats(sandbox_info)
    assert executions_of(before, first["InvokeId"]) == 1
    again = run_command(client, "echo once", [linux_ids[1]], client_token=token)
    assert again["InvokeId"] == first["InvokeId"]
    assert again.get("CommandId") == first.get("CommandId")
    # the V1 path with the same key shares the token space
    v1_again = run_command(ecs_client_v1(sandbox_info), "echo once", [linux_ids[1]], client_token=token)
    assert v1_again["InvokeId"] == first["InvokeId"]
    # a later run on the instance has finished: the agent host has been through its queue since the retries
    probe, _ = run_and_wait(client, "true", [linux_ids[1]])
    after = stats(sandbox_info)
    assert after["executions_total"] == before["executions_total"] + 1, (before, after)  # the probe only
    assert executions_of(after, probe) == 1
    assert executions_of(after, first["InvokeId"]) == 1
    assert after["duplicate_executions"] == 0
    # concurrent retries with one new token: one invocation, one execution
    from concurrent.futures import ThreadPoolExecutor

    burst = uuid.uuid4().hex

    def attempt(_: int) -> str:
        try:
            return str(run_command(client, "echo burst", [linux_ids[1]], client_token=burst)["InvokeId"])
        except Exception as exc:  # a retry racing the first one may be told IdempotentProcessing
            assert getattr(exc, "code", None) == "IdempotentProcessing", exc
            return ""

    with ThreadPoolExecutor(6) as pool:
        got = {i for i in pool.map(attempt, range(6)) if i}
    assert len(got) == 1, got
    (burst_id,) = got
    wait_invocation(client, burst_id)
    assert executions_of(stats(sandbox_info), burst_id) == 1
    exc = api_error(lambda: run_command(client, "echo twice", [linux_ids[1]], client_token=token))
    assert exc.code == "IdempotentParameterMismatch", exc
    assert 400 <= exc.status_code < 500
    # a different token runs again
    other = run_command(client, "echo once", [linux_ids[1]], client_token=uuid.uuid4().hex)
    assert other["InvokeId"] != first["InvokeId"]


def test_keep_command(client: Any, linux_ids: list[str]) -> None:
    m = models()
    name = unique("keep-")
    kept = run_command(client, "echo kept", [linux_ids[2]], keep_command=True, name=name)
    gone = run_command(client, "echo gone", [linux_ids[2]], keep_command=False, name=name + "-not")
    wait_invocation(client, kept["InvokeId"])
    wait_invocation(client, gone["InvokeId"])
    listed = client.describe_commands(m.DescribeCommandsRequest(region_id=client._region_id, name=name + "*")).body
    ids = [c["CommandId"] for c in listed.to_map().get("Commands", {}).get("Command", [])]
    assert ids == [kept["CommandId"]], ids


SPECIAL = "a+b c*d~e%f&g=h/i?j#k;l'm\"n 世界 é ✓"


@pytest.mark.parametrize("signer", ["v3", "v1", "core-get", "core-post"])
def test_special_characters_survive_signing(
    sandbox_info: dict[str, Any], client: Any, linux_ids: list[str], signer: str
) -> None:
    """Characters that percent-encoding treats specially (+ * ~ % & = / space, non-ASCII) in the content and in
    Parameters: signature accepted and the text reaches the instance unchanged."""
    quoted = SPECIAL.replace("'", "'\\''")
    content = f"printf '%s\\n' '{quoted}'; printf '%s\\n' '{{{{v}}}}'"
    params = {"v": SPECIAL.replace("'", "")}
    if signer.startswith("core"):
        body = acs_call(
            sandbox_info,
            "RunCommand",
            {
                "RegionId": sandbox_info["region_id"],
                "Type": "RunShellScript",
                "CommandContent": content,
                "InstanceId.1": linux_ids[0],
                "EnableParameter": "true",
                "Parameters": json.dumps(params),
            },
            method=signer.split("-")[1].upper(),
        )
        invoke_id = body["InvokeId"]
    else:
        signing = client if signer == "v3" else ecs_client_v1(sandbox_info)
        invoke_id = run_command(signing, content, [linux_ids[0]], enable_parameter=True, parameters=params)["InvokeId"]
    row = invoke_instances(wait_invocation(client, invoke_id))[linux_ids[0]]
    assert row["InvocationStatus"] == "Success", row
    assert output_of(row).decode() == f"{SPECIAL}\n{params['v']}\n"


def test_stop_one_instance_of_an_invocation(client: Any, linux_ids: list[str]) -> None:
    a, b = linux_ids[2], linux_ids[3]
    invoke_id = run_command(client, "sleep 3; echo done", [a, b])["InvokeId"]
    wait_instance_status(client, invoke_id, a, {"Running"}, timeout=15)
    client.stop_invocation(
        models().StopInvocationRequest(region_id=client._region_id, invoke_id=invoke_id, instance_id=[a])
    )
    inv = wait_invocation(client, invoke_id, timeout=20)
    rows = invoke_instances(inv)
    assert rows[a]["InvocationStatus"] == "Terminated", rows[a]
    assert rows[b]["InvocationStatus"] == "Success", rows[b]
    assert output_of(rows[b]) == b"done\n"
    # reference §3.2: Success plus only Stopped-class instances is Success overall; legacy Finished
    assert inv["InvocationStatus"] == "Success", inv
    assert inv["InvokeStatus"] == "Finished", inv


def test_instance_released_mid_run(sandbox_info: dict[str, Any], client: Any) -> None:
    gone, other = add_instances(sandbox_info, 2)
    wait_agent_ready(client, gone)
    wait_agent_ready(client, other)
    invoke_id = run_command(client, "echo started; sleep 3; echo done", [gone, other])["InvokeId"]
    wait_instance_status(client, invoke_id, gone, {"Running"}, timeout=15)
    assert ctl(sandbox_info, "instances", "release", gone) == {"released": [gone]}
    inv = wait_invocation(client, invoke_id, timeout=20)
    rows = invoke_instances(inv)
    # the invocation still reports what happened on the released instance; the other one finishes
    assert (rows[gone]["InvocationStatus"], rows[gone]["ErrorCode"]) == ("Aborted", "InstanceReleased"), rows[gone]
    assert output_of(rows[gone]) == b"started\n"
    assert (rows[other]["InvocationStatus"], output_of(rows[other])) == ("Success", b"started\ndone\n")
    assert inv["InvocationStatus"] == "PartialFailed", inv
    assert describe_instances(client, [gone]) == []
    err = api_error(lambda: run_command(client, "true", [gone]))
    assert (err.code, err.status_code) == ("InvalidInstance.NotFound", 404)
    again = ctl_raw(sandbox_info, "instances", "release", gone)
    assert again.returncode == 2 and f"no such instance: {gone}" in again.stderr
