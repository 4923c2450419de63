"""Fault injection with `ctl faults`: throttling, server errors, dropped replies (+ ClientToken retry)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_tea_openapi import exceptions as tea_exc
from darabonba.exceptions import UnretryableException

from sandbox.tests.integration.sandbox_fixture import (
    add_instances,
    clear_faults,
    ctl,
    ctl_raw,
    executions_of,
    invoke_instances,
    models,
    output_of,
    run_command,
    stats,
    wait_agent_ready,
    wait_invocation,
)


@pytest.fixture()
def faults(sandbox_info: dict[str, Any]) -> Iterator[None]:
    clear_faults(sandbox_info)
    try:
        yield
    finally:
        clear_faults(sandbox_info)


def _regions(client: Any) -> Any:
    return client.describe_regions(models().DescribeRegionsRequest())


def test_throttling(sandbox_info: dict[str, Any], client: Any, faults: None) -> None:
    out = ctl(sandbox_info, "faults", "--throttle", "1", "--actions", "DescribeRegions")
    assert out.get("throttle") and out.get("actions") == "DescribeRegions", out
    for _ in range(3):
        with pytest.raises(tea_exc.ThrottlingException) as info:
            _regions(client)
        exc = info.value
        assert exc.code.startswith("Throttling"), exc
        assert exc.retry_after is not None and int(exc.retry_after) > 0, exc.retry_after
        assert 400 <= exc.status_code < 500
        assert (exc.data or {}).get("RequestId")
    # other actions are not targeted
    client.describe_instances(models().DescribeInstancesRequest(region_id=sandbox_info["region_id"]))
    ctl(sandbox_info, "faults", "--throttle", "0")
    assert _regions(client).status_code == 200


def test_server_errors(sandbox_info: dict[str, Any], client: Any, faults: None) -> None:
    ctl(sandbox_info, "faults", "--server-errors", "1", "--actions", "DescribeRegions")
    for _ in range(3):
        with pytest.raises(tea_exc.ServerException) as info:
            _regions(client)
        assert info.value.status_code >= 500, info.value
        assert info.value.code in ("InternalError", "ServiceUnavailable"), info.value
    ctl(sandbox_info, "faults", "--server-errors", "0")
    assert _regions(client).status_code == 200


def test_dropped_reply_then_client_token_retry(sandbox_info: dict[str, Any], client: Any, faults: None) -> None:
    (iid,) = add_instances(sandbox_info, 1)
    wait_agent_ready(client, iid)
    token = uuid.uuid4().hex
    ctl(sandbox_info, "faults", "--drop", "1", "--actions", "RunCommand")
    with pytest.raises(UnretryableException):
        run_command(client, "echo dropped-once", [iid], client_token=token)
    ctl(sandbox_info, "faults", "--drop", "0")
    resp = run_command(client, "echo dropped-once", [iid], client_token=token)
    inv = wait_invocation(client, resp["InvokeId"])
    row = invoke_instances(inv)[iid]
    assert row["InvocationStatus"] == "Success", row
    assert output_of(row) == b"dropped-once\n"
    # the dropped request did its work once: one invocation on the instance, one execution
    body = client.describe_invocations(
        models().DescribeInvocationsRequest(region_id=sandbox_info["region_id"], instance_id=iid, max_results=50)
    ).body.to_map()
    assert [i["InvokeId"] for i in body["Invocations"]["Invocation"]] == [resp["InvokeId"]]
    st = stats(sandbox_info)
    assert st["duplicate_executions"] == 0
    assert executions_of(st, resp["InvokeId"]) == 1
    # retrying once more still answers the same InvokeId
    assert run_command(client, "echo dropped-once", [iid], client_token=token)["InvokeId"] == resp["InvokeId"]


def test_latency(sandbox_info: dict[str, Any], client: Any, faults: None) -> None:
    import time

    ctl(sandbox_info, "faults", "--latency-ms", "700", "--actions", "DescribeRegions")
    started = time.monotonic()
    _regions(client)
    assert time.monotonic() - started >= 0.65
    ctl(sandbox_info, "faults", "--latency-ms", "0")
    started = time.monotonic()
    _regions(client)
    assert time.monotonic() - started < 0.65


def test_denied_region(sandbox_info: dict[str, Any], client: Any, faults: None) -> None:
    """A RAM policy denying one region: every action there answers Forbidden.RAM 403; other regions and the
    regionless DescribeRegions still work; '' lifts it."""
    regions = [r.region_id for r in _regions(client).body.regions.region]
    assert len(regions) >= 2, regions
    denied, allowed = regions[1], regions[0]
    out = ctl(sandbox_info, "faults", "--deny-regions", denied)
    assert out.get("deny_regions") == denied, out
    with pytest.raises(tea_exc.ClientException) as info:
        client.describe_instances(models().DescribeInstancesRequest(region_id=denied))
    assert info.value.status_code == 403 and info.value.code == "Forbidden.RAM", info.value
    assert denied in info.value.message
    client.describe_instances(models().DescribeInstancesRequest(region_id=allowed))
    assert _regions(client).status_code == 200
    ctl(sandbox_info, "faults", "--deny-regions", "")
    client.describe_instances(models().DescribeInstancesRequest(region_id=denied))


def test_drop_first_counts_down(sandbox_info: dict[str, Any], client: Any, faults: None) -> None:
    """`--drop-first 2`: exactly the next two RunCommand replies are lost after the work was done (the second one is
    the stored answer to the retried token), the third is answered; stats lists both with their token, and the
    token was stored once."""
    (iid,) = add_instances(sandbox_info, 1)
    wait_agent_ready(client, iid)
    before = stats(sandbox_info)
    out = ctl(sandbox_info, "faults", "--drop-first", "2", "--actions", "RunCommand")
    assert out.get("drop_first") == "2", out
    _regions(client)  # not targeted: answered, and does not count down
    token = uuid.uuid4().hex
    for _ in range(2):
        with pytest.raises(UnretryableException):
            run_command(client, "echo dropped-twice", [iid], client_token=token)
    resp = run_command(client, "echo dropped-twice", [iid], client_token=token)
    assert run_command(client, "echo answered", [iid])["InvokeId"] != resp["InvokeId"]  # the countdown is over
    inv = wait_invocation(client, resp["InvokeId"])
    assert output_of(invoke_instances(inv)[iid]) == b"dropped-twice\n"
    after = stats(sandbox_info)
    assert after["dropped_replies"][len(before["dropped_replies"]):] == [
        {"action": "RunCommand", "client_token": token}] * 2
    assert after["client_tokens"]["RunCommand"] == before["client_tokens"].get("RunCommand", 0) + 1
    assert after["api_calls"]["RunCommand"] == before["api_calls"].get("RunCommand", 0) + 4
    assert executions_of(after, resp["InvokeId"]) == 1
    assert "drop_first" not in ctl(sandbox_info, "faults", "--drop-first", "0"), "0 clears the countdown"


def test_drop_first_rejects_negative(sandbox_info: dict[str, Any]) -> None:
    proc = ctl_raw(sandbox_info, "faults", "--drop-first", "-1")
    assert proc.returncode == 2 and "--drop-first must be 0 or more" in proc.stderr, proc
