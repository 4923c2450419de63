"""The answers of DescribeInstances, DescribeInvocations and DescribeInvocationResults hold exactly the fields of
the SDK's response models (alibabacloud_ecs20140526), with the annotated types: every model field is in the answer
(except the documented conditional ones) and every answer field is in the model."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models

from sandbox import fleet, store
from sandbox.actions import Context
from sandbox.tests.model_fields import compare, leaf_paths, model_schema
from sandbox.tests.unit.action_helpers import call, ids_param

INVOKE_INSTANCE = "Invocations.Invocation[].InvokeInstances.InvokeInstance[]."
RESULT = "Invocation.InvocationResults.InvocationResult[]."


def answer(ctx: Context, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"RequestId": ctx.request_id, **call(ctx, action, params)}


def finish(ctx: Context, invoke_id: str, instance_id: str, status: str, exit_code: int) -> None:
    at = store.now()
    ctx.db.execute(
        "UPDATE invocation_instances SET status = ?, exit_code = ?, output = ?, run_no = 1, start_time = ?,"
        " finish_time = ?, update_time = ?, next_run_at = NULL WHERE invoke_id = ? AND instance_id = ?",
        (status, exit_code, b"out\n", at, at + 1, at + 1, invoke_id, instance_id),
    )


@pytest.fixture
def run(ctx: Context) -> dict[str, Any]:
    """Two instances (one tagged), one RunCommand to both: one still pending, one finished with exit 3."""
    first = fleet.create_instances(ctx.db, 1, "cn-hangzhou", tags={"env": "prod"})
    second = fleet.create_instances(ctx.db, 1, "cn-hangzhou")
    ids = first + second
    out = call(ctx, "RunCommand", {"Type": "RunShellScript", "CommandContent": "exit 3", "Tag.1.Key": "k",
                                   "Tag.1.Value": "v", **ids_param(ids)})
    finish(ctx, out["InvokeId"], ids[1], "Failed", 3)
    return {"ids": ids, **out}


def test_helper_finds_every_difference() -> None:
    schema = model_schema(models.DescribeInstancesResponseBody)
    assert "Instances.Instance[].CpuOptions.ThreadsPerCore" in leaf_paths(schema)
    wrong = {"RequestId": 1, "Extra": "", "Instances": {"Instance": [{"Cpu": "2", "Tags": {"Tag": [{"TagKey": "k"}]}}]}}
    problems = compare(wrong, schema)
    assert "Extra: in the answer, not in the SDK model" in problems
    assert "RequestId: str expected, got int 1" in problems
    assert "Instances.Instance[].Cpu: int expected, got str '2'" in problems
    assert "Instances.Instance[].Tags.Tag[].TagValue: in the SDK model, missing from the answer" in problems
    assert "TotalCount: in the SDK model, missing from the answer" in problems
    # allowed_absent excuses a missing field only, never an unknown one or a wrong type
    excused = compare(wrong, schema, frozenset(leaf_paths(schema)))
    assert sorted(excused) == sorted(p for p in problems if "missing from the answer" not in p)


def test_describe_instances_fields(ctx: Context) -> None:
    fleet.create_instances(ctx.db, 1, "cn-hangzhou", tags={"env": "prod"})
    fleet.create_instances(ctx.db, 1, "cn-hangzhou", os_type="windows", stopped=True)
    body = answer(ctx, "DescribeInstances")
    assert len(body["Instances"]["Instance"]) == 2
    assert compare(body, model_schema(models.DescribeInstancesResponseBody)) == []


def test_describe_invocations_fields(ctx: Context, run: dict[str, Any]) -> None:
    schema = model_schema(models.DescribeInvocationsResponseBody)
    with_output = answer(ctx, "DescribeInvocations", {"InvokeId": run["InvokeId"], "IncludeOutput": "true"})
    # ExitCode: only once the instance's run has ended (the pending instance has none yet)
    assert compare(with_output, schema, frozenset({INVOKE_INSTANCE + "ExitCode"})) == []
    pending, failed = with_output["Invocations"]["Invocation"][0]["InvokeInstances"]["InvokeInstance"]
    assert "ExitCode" not in pending and failed["ExitCode"] == 3
    # Output: only with IncludeOutput=true (ref §2.4)
    without = answer(ctx, "DescribeInvocations", {"InvokeId": run["InvokeId"]})
    assert compare(without, schema, frozenset({INVOKE_INSTANCE + "ExitCode", INVOKE_INSTANCE + "Output"})) == []
    assert all("Output" not in i for i in without["Invocations"]["Invocation"][0]["InvokeInstances"]["InvokeInstance"])


def test_describe_invocation_results_fields(ctx: Context, run: dict[str, Any]) -> None:
    body = answer(ctx, "DescribeInvocationResults", {"InvokeId": run["InvokeId"]})
    results = body["Invocation"]["InvocationResults"]["InvocationResult"]
    assert [r["InstanceId"] for r in results] == run["ids"]
    assert compare(body, model_schema(models.DescribeInvocationResultsResponseBody),
                   frozenset({RESULT + "ExitCode"})) == []
    finish(ctx, run["InvokeId"], run["ids"][0], "Success", 0)
    body = answer(ctx, "DescribeInvocationResults", {"InvokeId": run["InvokeId"]})
    assert compare(body, model_schema(models.DescribeInvocationResultsResponseBody)) == []
