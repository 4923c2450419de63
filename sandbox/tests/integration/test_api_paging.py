"""Paging with NextToken and with PageNumber/PageSize; newest invocations first."""

from __future__ import annotations

import json
from typing import Any

from sandbox.tests.integration.sandbox_fixture import (
    add_instances,
    api_error,
    instance_list,
    models,
    run_command,
    unique,
    wait_agent_ready,
    wait_invocation,
)


def test_describe_instances_paging(sandbox_info: dict[str, Any], client: Any) -> None:
    m = models()
    rid = sandbox_info["region_id"]
    expected = [r["instance_id"] for r in instance_list(sandbox_info)]
    assert len(expected) >= 7

    seen: list[str] = []
    token = None
    pages = 0
    for _ in range(100):
        body = client.describe_instances(
            m.DescribeInstancesRequest(region_id=rid, max_results=10, next_token=token)
        ).body.to_map()
        page = [i["InstanceId"] for i in body["Instances"]["Instance"]]
        assert len(page) <= 10
        seen.extend(page)
        pages += 1
        token = body.get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)), "an instance was listed twice"
    assert sorted(seen) == sorted(expected)
    assert pages == -(-len(expected) // 10)

    seen = []
    total = None
    for page_number in range(1, 100):
        body = client.describe_instances(
            m.DescribeInstancesRequest(region_id=rid, page_number=page_number, page_size=3)
        ).body.to_map()
        page = [i["InstanceId"] for i in body["Instances"]["Instance"]]
        total = body["TotalCount"]
        assert body["PageNumber"] == page_number and body["PageSize"] == 3, body
        if not page:
            break
        assert len(page) <= 3
        seen.extend(page)
    assert total == len(expected)
    assert seen == [i for i in seen if i in expected] and sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))


def test_describe_invocations_paging_newest_first(sandbox_info: dict[str, Any], client: Any) -> None:
    m = models()
    rid = sandbox_info["region_id"]
    (iid,) = add_instances(sandbox_info, 1)
    wait_agent_ready(client, iid)
    created = []
    for n in range(5):
        created.append(run_command(client, f"echo {n}", [iid])["InvokeId"])
    for invoke_id in created:
        wait_invocation(client, invoke_id)
    newest_first = list(reversed(created))

    seen: list[str] = []
    token = None
    for _ in range(10):
        body = client.describe_invocations(
            m.DescribeInvocationsRequest(region_id=rid, instance_id=iid, max_results=2, next_token=token)
        ).body.to_map()
        page = [i["InvokeId"] for i in body["Invocations"]["Invocation"]]
        assert len(page) <= 2
        seen.extend(page)
        token = body.get("NextToken")
        if not token:
            break
    assert seen == newest_first

    seen = []
    for page_number in (1, 2, 3):
        body = client.describe_invocations(
            m.DescribeInvocationsRequest(region_id=rid, instance_id=iid, page_number=page_number, page_size=2)
        ).body.to_map()
        assert body["TotalCount"] == 5, body
        seen.extend(i["InvokeId"] for i in body["Invocations"]["Invocation"])
    assert seen == newest_first
    body = client.describe_invocations(
        m.DescribeInvocationsRequest(region_id=rid, instance_id=iid, page_number=4, page_size=2)
    ).body.to_map()
    assert body["Invocations"]["Invocation"] == []

    # the whole region's list is newest first as well
    body = client.describe_invocations(m.DescribeInvocationsRequest(region_id=rid, max_results=50)).body.to_map()
    region_ids = [i["InvokeId"] for i in body["Invocations"]["Invocation"]]
    assert region_ids[0] == created[-1], region_ids[:5]
    positions = [region_ids.index(i) for i in newest_first]
    assert positions == sorted(positions)


def test_paging_parameter_errors(sandbox_info: dict[str, Any], client: Any) -> None:
    m = models()
    rid = sandbox_info["region_id"]
    exc = api_error(
        lambda: client.describe_invocations(m.DescribeInvocationsRequest(region_id=rid, next_token="not-a-token"))
    )
    assert exc.code == "InvalidParameter.NextToken", exc
    exc = api_error(lambda: client.describe_invocations(m.DescribeInvocationsRequest(region_id=rid, max_results=51)))
    assert exc.code == "InvalidParameter.MaxResults", exc
    exc = api_error(lambda: client.describe_invocations(m.DescribeInvocationsRequest(region_id=rid, page_size=51)))
    assert exc.code == "InvalidParam.PageSize", exc
    exc = api_error(lambda: client.describe_invocations(m.DescribeInvocationsRequest(region_id=rid, page_number=0)))
    assert exc.code == "InvalidParam.PageNumber", exc


def test_describe_instances_filters(sandbox_info: dict[str, Any], client: Any) -> None:
    m = models()
    rid = sandbox_info["region_id"]
    name = unique("web")
    value = unique("v")
    ids = add_instances(sandbox_info, 2, "--name", name, "--tag", f"role={value}")

    def find(**kw: Any) -> list[str]:
        body = client.describe_instances(m.DescribeInstancesRequest(region_id=rid, max_results=100, **kw)).body
        return sorted(i["InstanceId"] for i in body.to_map()["Instances"]["Instance"])

    assert find(tag=[m.DescribeInstancesRequestTag(key="role", value=value)]) == sorted(ids)
    assert find(instance_name=f"{name}-*") == sorted(ids)
    assert find(instance_name=f"{name}-001") == [ids[0]]  # exact name; batches are numbered in order
    assert find(instance_ids=json.dumps(ids)) == sorted(ids)
    assert set(ids) <= set(find(status="Running"))
    body = client.describe_instances(m.DescribeInstancesRequest(region_id=rid, instance_ids=json.dumps(ids))).body
    for inst in body.to_map()["Instances"]["Instance"]:
        assert inst["InstanceName"].startswith(f"{name}-"), inst
        assert inst["HostName"] == inst["InstanceName"].lower(), inst
        assert {"TagKey": "role", "TagValue": value} in inst["Tags"]["Tag"], inst
        assert inst["OSType"] == "linux" and inst["RegionId"] == rid
