from __future__ import annotations

import json
import time
from typing import Any

from alibabacloud_ecs20140526 import models

import sandbox.actions.instances  # noqa: F401  (registers the actions)
from sandbox import fleet, store
from sandbox.actions import ACTIONS, Context
from sandbox.tests.unit.action_helpers import call, fail, ids_param


def row(ctx: Context, instance_id: str):
    return ctx.db.execute("SELECT * FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()


def test_registration_flags():
    assert ACTIONS["DescribeRegions"].needs_region is False
    for name in ("StartInstance", "StopInstance", "RebootInstance", "InstallCloudAssistant"):
        assert ACTIONS[name].mutating
    for name in ("DescribeInstances", "DescribeCloudAssistantStatus", "DescribeRegions"):
        assert not ACTIONS[name].mutating


# ------------------------------------------------------------------------------------------- DescribeRegions
def test_describe_regions(ctx):
    ctx.region_id = ""
    body = call(ctx, "DescribeRegions", {"AcceptLanguage": "en-US"})
    assert body == {"Regions": {"Region": [
        {"RegionId": "cn-hangzhou", "LocalName": "China (Hangzhou)",
         "RegionEndpoint": "ecs.cn-hangzhou.aliyuncs.com", "Status": "available"},
        {"RegionId": "cn-beijing", "LocalName": "China (Beijing)",
         "RegionEndpoint": "ecs.cn-beijing.aliyuncs.com", "Status": "available"},
    ]}}
    model = models.DescribeRegionsResponseBody().from_map({**body, "RequestId": "R"})
    assert model.regions.region[1].region_endpoint == "ecs.cn-beijing.aliyuncs.com"


def test_describe_regions_errors(ctx):
    e = fail(ctx, "DescribeRegions", {"AcceptLanguage": "xx"})
    assert (e.code, e.status) == ("InvalidAcceptLanguage.NotFound", 404)
    e = fail(ctx, "DescribeRegions", {"ResourceType": "bogus"})
    assert (e.code, e.status) == ("InvalidResourceType.NotFound", 404)
    assert call(ctx, "DescribeRegions", {"ResourceType": "instance", "AcceptLanguage": "zh-CN"})["Regions"]


# ----------------------------------------------------------------------------------------- DescribeInstances
def test_describe_instances_shape(ctx):
    (iid,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou", name="web", tags={"env": "prod", "app": "x"})
    fleet.create_instances(ctx.db, 2, "cn-beijing")
    body = call(ctx, "DescribeInstances")
    assert body["TotalCount"] == 1 and body["PageNumber"] == 1 and body["PageSize"] == 10
    assert body["NextToken"] == ""
    inst = body["Instances"]["Instance"][0]
    r = row(ctx, iid)
    assert inst["InstanceId"] == iid
    assert inst["InstanceName"] == "web" and inst["HostName"] == "web"
    assert inst["OSType"] == "linux"
    assert inst["Status"] == "Running"
    assert inst["ZoneId"] == "cn-hangzhou-h" and inst["RegionId"] == "cn-hangzhou"
    assert inst["CreationTime"] == store.iso_minute(r["created_at"])
    assert inst["VpcAttributes"]["PrivateIpAddress"] == {"IpAddress": [r["private_ip"]]}
    assert inst["PublicIpAddress"] == {"IpAddress": []}
    assert inst["Tags"] == {"Tag": [{"TagKey": "app", "TagValue": "x"}, {"TagKey": "env", "TagValue": "prod"}]}
    nic = inst["NetworkInterfaces"]["NetworkInterface"][0]
    assert nic["PrimaryIpAddress"] == r["private_ip"] and nic["Type"] == "Primary"
    model = models.DescribeInstancesResponseBody().from_map({**body, "RequestId": "R"})
    m = model.instances.instance[0]
    assert m.instance_id == iid
    assert m.vpc_attributes.private_ip_address.ip_address == [r["private_ip"]]
    assert m.network_interfaces.network_interface[0].private_ip_sets.private_ip_set[0].primary is True
    assert m.tags.tag[0].tag_key == "app"
    assert m.public_ip_address.ip_address == []
    assert model.to_map()["Instances"]["Instance"][0]["OSType"] == "linux"


def test_describe_instances_windows_ostype(ctx):
    fleet.create_instances(ctx.db, 1, "cn-hangzhou", os_type="windows")
    assert call(ctx, "DescribeInstances")["Instances"]["Instance"][0]["OSType"] == "windows"


def test_describe_instances_filters(ctx):
    web = fleet.create_instances(ctx.db, 3, "cn-hangzhou", name="web", tags={"env": "prod", "tier": "front"})
    db = fleet.create_instances(ctx.db, 2, "cn-hangzhou", name="db", tags={"env": "prod"}, stopped=True)
    other = fleet.create_instances(ctx.db, 1, "cn-hangzhou", name="we[ird]?*")

    def found(params):
        return [i["InstanceId"] for i in call(ctx, "DescribeInstances", params)["Instances"]["Instance"]]

    assert found({"InstanceIds": json.dumps([db[1], web[0], "i-unknown"])}) == [web[0], db[1]]
    assert found({"InstanceName": "web-*"}) == web
    assert found({"InstanceName": "*-002"}) == [web[1], db[1]]
    assert found({"InstanceName": "web"}) == []
    assert found({"InstanceName": "we[ird]?*"}) == other
    assert found({"InstanceName": "WEB-*"}) == []
    assert found({"Status": "Stopped"}) == db
    assert found({"Status": "Running", "InstanceName": "web*"}) == web
    assert found({"ZoneId": "cn-hangzhou-h"}) == web + db + other
    assert found({"ZoneId": "cn-hangzhou-b"}) == []
    assert found({"InstanceType": "ecs.g7.large"}) == web + db + other
    assert found({"InstanceType": "ecs.g6.large"}) == []
    assert found({"Tag.1.Key": "env", "Tag.1.Value": "prod"}) == web + db
    assert found({"Tag.1.Key": "env", "Tag.1.Value": "prod", "Tag.2.Key": "tier", "Tag.2.Value": "front"}) == web
    assert found({"Tag.1.Key": "tier"}) == web
    assert found({"Tag.1.Key": "env", "Tag.1.Value": "dev"}) == []
    ip = row(ctx, db[0])["private_ip"]
    assert found({"PrivateIpAddresses": json.dumps([ip])}) == [db[0]]
    assert found({"PublicIpAddresses": json.dumps(["1.2.3.4"])}) == []
    assert found({"InstanceIds": "[]"}) == web + db + other
    vpc = call(ctx, "DescribeInstances")["Instances"]["Instance"][0]["VpcAttributes"]
    assert found({"VpcId": vpc["VpcId"], "VSwitchId": vpc["VSwitchId"]}) == web + db + other
    assert found({"VpcId": "vpc-other"}) == []
    assert found({"VSwitchId": "vsw-other"}) == []
    assert found({"ResourceGroupId": "rg-x"}) == []


def test_describe_instances_region_isolation(ctx):
    fleet.create_instances(ctx.db, 2, "cn-beijing")
    assert call(ctx, "DescribeInstances")["TotalCount"] == 0
    ctx.region_id = "cn-beijing"
    assert call(ctx, "DescribeInstances")["TotalCount"] == 2


def test_describe_instances_errors(ctx):
    e = fail(ctx, "DescribeInstances", {"InstanceIds": "not json"})
    assert (e.code, e.status) == ("InvalidParameter.InstanceIds", 400)
    e = fail(ctx, "DescribeInstances", {"InstanceIds": json.dumps({"a": 1})})
    assert e.code == "InvalidParameter.InstanceIds"
    e = fail(ctx, "DescribeInstances", {"InstanceIds": json.dumps([f"i-{n}" for n in range(101)])})
    assert (e.code, e.status) == ("InvalidParameter.InstanceIds", 400)
    e = fail(ctx, "DescribeInstances", {"PrivateIpAddresses": "[1, 2]"})
    assert e.code == "InvalidParameter.PrivateIpAddresses"
    e = fail(ctx, "DescribeInstances", {"Status": "Sleeping"})
    assert (e.code, e.status) == ("InvalidStatus.NotFound", 404)
    tags = {f"Tag.{n}.Key": f"k{n}" for n in range(1, 22)}
    e = fail(ctx, "DescribeInstances", tags)
    assert (e.code, e.status) == ("InvalidTagCount", 400)
    e = fail(ctx, "DescribeInstances", {"Tag.1.Value": "v"})
    assert (e.code, e.status) == ("InvalidTag.Mismatch", 400)
    e = fail(ctx, "DescribeInstances", {"NextToken": "garbage!"})
    assert (e.code, e.status) == ("InvalidParameter.NextToken", 400)
    e = fail(ctx, "DescribeInstances", {"PageNumber": "0"})
    assert (e.code, e.status) == ("InvalidParam.PageNumber", 400)


def test_describe_instances_next_token_paging(ctx):
    ids = fleet.create_instances(ctx.db, 25, "cn-hangzhou")
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict[str, Any] = {"MaxResults": 3}  # clamped to 10
        if token:
            params["NextToken"] = token
        body = call(ctx, "DescribeInstances", params)
        assert body["PageSize"] == 10
        assert body["TotalCount"] == 25
        seen += [i["InstanceId"] for i in body["Instances"]["Instance"]]
        pages += 1
        token = body["NextToken"]
        if not token:
            break
    assert pages == 3
    assert seen == ids
    body = call(ctx, "DescribeInstances", {"MaxResults": 500})
    assert body["PageSize"] == 100 and len(body["Instances"]["Instance"]) == 25


def test_describe_instances_page_number_paging(ctx):
    ids = fleet.create_instances(ctx.db, 12, "cn-hangzhou")
    body = call(ctx, "DescribeInstances", {"PageNumber": 2, "PageSize": 5})
    assert [i["InstanceId"] for i in body["Instances"]["Instance"]] == ids[5:10]
    assert (body["PageNumber"], body["PageSize"], body["TotalCount"]) == (2, 5, 12)
    body = call(ctx, "DescribeInstances", {"PageNumber": 3, "PageSize": 5})
    assert [i["InstanceId"] for i in body["Instances"]["Instance"]] == ids[10:]
    body = call(ctx, "DescribeInstances", {"PageNumber": 9, "PageSize": 5})
    assert body["Instances"]["Instance"] == []
    body = call(ctx, "DescribeInstances", {"PageSize": 1000})
    assert body["PageSize"] == 100


def test_describe_instances_1000_and_order(ctx):
    ids = fleet.create_instances(ctx.db, 1000, "cn-hangzhou")
    body = call(ctx, "DescribeInstances", {"MaxResults": 100, "InstanceName": "sandbox-*"})
    assert body["TotalCount"] == 1000
    assert [i["InstanceId"] for i in body["Instances"]["Instance"]] == ids[:100]


# ------------------------------------------------------------------------------------------ power operations
def test_stop_start_reboot(ctx):
    (iid,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou")
    assert call(ctx, "StopInstance", {"InstanceId": iid, "ForceStop": "True"}) == {}
    assert row(ctx, iid)["status"] == "Stopped"
    assert row(ctx, iid)["boot_count"] == 1
    e = fail(ctx, "StopInstance", {"InstanceId": iid})
    assert (e.code, e.status) == ("IncorrectInstanceStatus", 403)
    e = fail(ctx, "RebootInstance", {"InstanceId": iid})
    assert (e.code, e.status) == ("IncorrectInstanceStatus", 403)
    assert call(ctx, "StartInstance", {"InstanceId": iid}) == {}
    r = row(ctx, iid)
    assert (r["status"], r["boot_count"]) == ("Running", 2)
    e = fail(ctx, "StartInstance", {"InstanceId": iid})
    assert (e.code, e.status) == ("IncorrectInstanceStatus", 403)
    assert call(ctx, "RebootInstance", {"InstanceId": iid, "ForceStop": "false"}) == {}
    r = row(ctx, iid)
    assert (r["status"], r["boot_count"]) == ("Running", 3)
    assert len(ctx.extra["pokes"]) == 3


def test_power_unknown_and_missing(ctx):
    (other_region,) = fleet.create_instances(ctx.db, 1, "cn-beijing")
    for action in ("StartInstance", "StopInstance", "RebootInstance"):
        e = fail(ctx, action, {"InstanceId": "i-nope"})
        assert (e.code, e.status) == ("InvalidInstanceId.NotFound", 404)
        # no RegionId in these requests: an instance is found in any region, unless RegionId narrows it
        e = fail(ctx, action, {"InstanceId": other_region, "RegionId": "cn-hangzhou"})
        assert e.code == "InvalidInstanceId.NotFound"
        e = fail(ctx, action, {})
        assert (e.code, e.status) == ("MissingParameter.InstanceId", 400)
    assert ctx.extra["pokes"] == []


def test_power_dry_run(ctx):
    (iid,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou")
    e = fail(ctx, "StopInstance", {"InstanceId": iid, "DryRun": "true"})
    assert (e.code, e.status) == ("DryRunOperation", 400)
    assert row(ctx, iid)["status"] == "Running"


def test_power_sdk_response_model(ctx):
    (iid,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou")
    body = call(ctx, "RebootInstance", {"InstanceId": iid})
    assert models.RebootInstanceResponseBody().from_map({**body, "RequestId": "R"}).request_id == "R"


# ------------------------------------------------------------------------------ DescribeCloudAssistantStatus
def add_invocation_rows(ctx, instance_id, statuses):
    ts = time.time()
    for n, status in enumerate(statuses):
        ctx.db.execute(
            "INSERT INTO invocation_instances(invoke_id, instance_id, status, creation_time, update_time)"
            " VALUES (?, ?, ?, ?, ?)", (f"t-{n}", instance_id, status, ts, ts))


def test_cloud_assistant_status_fields(ctx):
    linux, = fleet.create_instances(ctx.db, 1, "cn-hangzhou")
    win, = fleet.create_instances(ctx.db, 1, "cn-hangzhou", os_type="windows")
    bare, = fleet.create_instances(ctx.db, 1, "cn-hangzhou", agent=False)
    add_invocation_rows(ctx, linux, ["Running", "Stopping", "Success", "Failed"])
    ctx.db.execute("UPDATE instances SET last_invoked = 1700000000 WHERE instance_id = ?", (linux,))
    body = call(ctx, "DescribeCloudAssistantStatus", ids_param([bare, linux, win]))
    items = {i["InstanceId"]: i for i in body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"]}
    assert [i["InstanceId"] for i in body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"]] == [
        bare, linux, win]
    assert body["TotalCount"] == 3
    hb = row(ctx, linux)["last_heartbeat"]
    assert items[linux] == {
        "InstanceId": linux, "CloudAssistantStatus": "true", "CloudAssistantVersion": "2.2.3.857",
        "OSType": "Linux", "LastHeartbeatTime": store.iso(hb), "LastInvokedTime": "2023-11-14T22:13:20Z",
        "ActiveTaskCount": 2, "InvocationCount": 4, "SupportSessionManager": True,
    }
    assert items[win]["OSType"] == "Windows"
    assert items[win]["CloudAssistantVersion"] == "2.1.3.857"
    assert items[win]["CloudAssistantStatus"] == "true"
    assert items[bare]["CloudAssistantStatus"] == "false"
    assert items[bare]["CloudAssistantVersion"] == ""
    assert items[bare]["SupportSessionManager"] is False
    assert items[bare]["LastHeartbeatTime"] == "" and items[bare]["LastInvokedTime"] == ""
    assert items[bare]["ActiveTaskCount"] == 0 and items[bare]["InvocationCount"] == 0
    model = models.DescribeCloudAssistantStatusResponseBody().from_map({**body, "RequestId": "R"})
    m = model.instance_cloud_assistant_status_set.instance_cloud_assistant_status[1]
    assert m.cloud_assistant_status == "true" and m.active_task_count == 2 and m.ostype == "Linux"


def test_cloud_assistant_status_false_cases(ctx):
    stale, stopped, agent_off = fleet.create_instances(ctx.db, 3, "cn-hangzhou")
    ctx.db.execute("UPDATE instances SET last_heartbeat = ? WHERE instance_id = ?", (time.time() - 121, stale))
    ctx.db.execute("UPDATE instances SET status = 'Stopped' WHERE instance_id = ?", (stopped,))
    ctx.db.execute("UPDATE instances SET agent_running = 0 WHERE instance_id = ?", (agent_off,))
    body = call(ctx, "DescribeCloudAssistantStatus", ids_param([stale, stopped, agent_off]))
    items = body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"]
    assert [i["CloudAssistantStatus"] for i in items] == ["false", "false", "false"]
    assert items[0]["CloudAssistantVersion"] == "2.2.3.857"
    assert items[1]["CloudAssistantVersion"] == "2.2.3.857"
    assert items[2]["CloudAssistantVersion"] == ""


def test_cloud_assistant_status_os_filter(ctx):
    linux = fleet.create_instances(ctx.db, 2, "cn-hangzhou")
    win = fleet.create_instances(ctx.db, 1, "cn-hangzhou", os_type="windows")

    def found(params):
        body = call(ctx, "DescribeCloudAssistantStatus", params)
        return [i["InstanceId"] for i in body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"]]

    assert found({"OSType": "Linux"}) == linux
    assert found({"OSType": "Windows"}) == win
    assert found({"OSType": "windows"}) == win
    assert found({"OSType": "FreeBSD"}) == []
    assert found({"OSType": "Windows", **ids_param(linux + win)}) == win
    e = fail(ctx, "DescribeCloudAssistantStatus", {"OSType": "Solaris"})
    assert (e.code, e.status) == ("InvalidParameter.OSType", 400)


def test_cloud_assistant_status_paging(ctx):
    ids = fleet.create_instances(ctx.db, 23, "cn-hangzhou")
    fleet.create_instances(ctx.db, 3, "cn-beijing")
    body = call(ctx, "DescribeCloudAssistantStatus")
    assert body["PageSize"] == 10 and body["TotalCount"] == 23
    seen, token = [], None
    while True:
        params: dict[str, Any] = {"MaxResults": 10}
        if token:
            params["NextToken"] = token
        body = call(ctx, "DescribeCloudAssistantStatus", params)
        seen += [i["InstanceId"] for i in body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"]]
        token = body["NextToken"]
        if not token:
            break
    assert seen == ids
    body = call(ctx, "DescribeCloudAssistantStatus", {"PageNumber": 3, "PageSize": 10})
    assert len(body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"]) == 3
    e = fail(ctx, "DescribeCloudAssistantStatus", {"MaxResults": 51})
    assert (e.code, e.status) == ("InvalidParameter.MaxResults", 400)
    e = fail(ctx, "DescribeCloudAssistantStatus", {"PageSize": 51})
    assert (e.code, e.status) == ("InvalidParam.PageSize", 400)
    # MaxResults is ignored when InstanceId is given
    body = call(ctx, "DescribeCloudAssistantStatus", {"MaxResults": 1, **ids_param(ids[:5])})
    assert body["TotalCount"] == 5 and body["NextToken"] == ""
    assert len(body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"]) == 5


def test_cloud_assistant_status_errors(ctx):
    ids = fleet.create_instances(ctx.db, 2, "cn-hangzhou")
    (other,) = fleet.create_instances(ctx.db, 1, "cn-beijing")
    e = fail(ctx, "DescribeCloudAssistantStatus", ids_param([f"i-{n}" for n in range(101)]))
    assert (e.code, e.status) == ("InstanceIds.ExceedLimit", 403)
    e = fail(ctx, "DescribeCloudAssistantStatus", ids_param([ids[0], "i-missing"]))
    assert (e.code, e.status) == ("InvalidInstance.NotFound", 404)
    e = fail(ctx, "DescribeCloudAssistantStatus", ids_param([other]))
    assert e.code == "InvalidInstance.NotFound"
    body = call(ctx, "DescribeCloudAssistantStatus", ids_param([ids[0]] * 100))
    assert body["TotalCount"] == 1


# ------------------------------------------------------------------------------------- InstallCloudAssistant
def test_install_cloud_assistant(ctx):
    bare_linux, = fleet.create_instances(ctx.db, 1, "cn-hangzhou", agent=False)
    bare_win, = fleet.create_instances(ctx.db, 1, "cn-hangzhou", agent=False, os_type="windows")
    has_agent, = fleet.create_instances(ctx.db, 1, "cn-hangzhou")
    body = call(ctx, "InstallCloudAssistant", ids_param([bare_linux, bare_win, has_agent]))
    assert body == {}
    assert models.InstallCloudAssistantResponseBody().from_map({**body, "RequestId": "R"}).request_id == "R"
    r = row(ctx, bare_linux)
    assert (r["agent_install_pending"], r["agent_installed"], r["agent_running"]) == (1, 0, 0)
    assert r["agent_version"] == "2.2.3.857"
    assert row(ctx, bare_win)["agent_version"] == "2.1.3.857"
    assert row(ctx, has_agent)["agent_install_pending"] == 0
    # not installed until the next boot: the status still reports no agent
    status = call(ctx, "DescribeCloudAssistantStatus", ids_param([bare_linux]))
    item = status["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"][0]
    assert item["CloudAssistantStatus"] == "false" and item["CloudAssistantVersion"] == ""
    assert ctx.extra["pokes"] == [1]
    # idempotent
    call(ctx, "InstallCloudAssistant", ids_param([bare_linux]))
    assert row(ctx, bare_linux)["agent_install_pending"] == 1


def test_install_cloud_assistant_noop_for_agent(ctx):
    (iid,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou")
    call(ctx, "InstallCloudAssistant", ids_param([iid]))
    r = row(ctx, iid)
    assert (r["agent_install_pending"], r["agent_installed"]) == (0, 1)
    assert ctx.extra["pokes"] == []


def test_install_cloud_assistant_errors(ctx):
    ids = fleet.create_instances(ctx.db, 51, "cn-hangzhou", agent=False)
    e = fail(ctx, "InstallCloudAssistant", {})
    assert (e.code, e.status) == ("MissingParam.InstanceId", 400)
    e = fail(ctx, "InstallCloudAssistant", ids_param(ids))
    assert (e.code, e.status) == ("InstanceIds.ExceedLimit", 403)
    e = fail(ctx, "InstallCloudAssistant", ids_param([ids[0], "i-missing"]))
    assert (e.code, e.status) == ("InvalidInstance.NotFound", 404)
    # nothing changed by the failed call
    assert row(ctx, ids[0])["agent_install_pending"] == 0
    call(ctx, "InstallCloudAssistant", ids_param(ids[:50]))
    assert ctx.db.execute("SELECT SUM(agent_install_pending) FROM instances").fetchone()[0] == 50
