from __future__ import annotations

import base64
import re
import time
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models

import sandbox.actions.files  # noqa: F401  (registers the actions)
from sandbox import fleet, store
from sandbox.actions import ACTIONS, Context
from sandbox.errors import ApiError
from sandbox.tests.unit.action_helpers import call, fail, ids_param


def send(ctx: Context, ids: list[str], **extra: Any) -> dict[str, Any]:
    params = {"RegionId": "cn-hangzhou", "Name": "a.txt", "TargetDir": "/tmp/x", "Content": "hello\n",
              **ids_param(ids), **extra}
    return call(ctx, "SendFile", params)


def send_fail(ctx: Context, ids: list[str], **extra: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        send(ctx, ids, **extra)
    return info.value


def task_rows(ctx: Context, invoke_id: str) -> dict[str, Any]:
    return {r["instance_id"]: r for r in ctx.db.execute(
        "SELECT * FROM file_task_instances WHERE invoke_id = ?", (invoke_id,))}


@pytest.fixture
def linux(ctx) -> list[str]:
    return fleet.create_instances(ctx.db, 2, "cn-hangzhou")


def test_registration_flags():
    spec = ACTIONS["SendFile"]
    assert spec.mutating and spec.client_token and spec.needs_region
    assert not ACTIONS["DescribeSendFileResults"].mutating


# ------------------------------------------------------------------------------------------------- SendFile
def test_send_file_defaults(ctx, linux):
    body = send(ctx, linux)
    invoke_id = body["InvokeId"]
    assert re.fullmatch(r"f-hz[a-z0-9]{14}", invoke_id)
    assert models.SendFileResponseBody().from_map({**body, "RequestId": "R"}).invoke_id == invoke_id
    task = ctx.db.execute("SELECT * FROM file_tasks WHERE invoke_id = ?", (invoke_id,)).fetchone()
    assert task["name"] == "a.txt" and task["target_dir"] == "/tmp/x"
    assert task["content"] == b"hello\n" and task["content_type"] == "PlainText"
    assert (task["file_owner"], task["file_group"], task["file_mode"]) == ("root", "root", "0644")
    assert task["overwrite"] == 0 and task["timeout"] == 60 and task["description"] == ""
    assert task["region_id"] == "cn-hangzhou" and task["seq"] == 1
    rows = task_rows(ctx, invoke_id)
    assert set(rows) == set(linux)
    assert {r["status"] for r in rows.values()} == {"Pending"}
    assert all(r["finish_time"] is None and r["error_code"] == "" for r in rows.values())
    assert ctx.extra["pokes"] == [1]


def test_send_file_options(ctx, linux):
    data = bytes(range(256))
    invoke_id = send(ctx, linux[:1], Content=base64.b64encode(data).decode(), ContentType="Base64",
                     Description="d", Timeout=5, FileOwner="app", FileGroup="staff", FileMode="755",
                     Overwrite="True", ResourceGroupId="rg-1", **{"Tag.1.Key": "k", "Tag.1.Value": "v",
                                                                 "Tag.2.Key": "empty"})["InvokeId"]
    task = ctx.db.execute("SELECT * FROM file_tasks WHERE invoke_id = ?", (invoke_id,)).fetchone()
    assert task["content"] == data and task["content_type"] == "Base64"
    assert task["timeout"] == 10  # raised to the minimum
    assert (task["file_owner"], task["file_group"], task["file_mode"]) == ("app", "staff", "755")
    assert task["overwrite"] == 1 and task["resource_group_id"] == "rg-1" and task["description"] == "d"
    assert store.tags_of(ctx.db, "file_task_tags", "invoke_id", invoke_id) == [
        {"TagKey": "empty", "TagValue": ""}, {"TagKey": "k", "TagValue": "v"}]


def test_send_file_timeout_and_content_type_case(ctx, linux):
    invoke_id = send(ctx, linux[:1], Timeout=86400, ContentType="base64",
                     Content=base64.b64encode(b"x").decode())["InvokeId"]
    task = ctx.db.execute("SELECT * FROM file_tasks WHERE invoke_id = ?", (invoke_id,)).fetchone()
    assert task["timeout"] == 86400 and task["content_type"] == "Base64" and task["content"] == b"x"
    e = send_fail(ctx, linux, Timeout=86401)
    assert (e.code, e.status) == ("InvalidTimeout.ExceedLimit", 403)
    e = send_fail(ctx, linux, Timeout="abc")
    assert (e.code, e.status) == ("InvalidParameter.Timeout", 400)


def test_send_file_instance_errors(ctx, linux):
    e = fail(ctx, "SendFile", {"Name": "a", "TargetDir": "/tmp", "Content": "x"})
    assert (e.code, e.status) == ("MissingParam.InstanceId", 400)
    many = fleet.create_instances(ctx.db, 51, "cn-hangzhou")
    e = send_fail(ctx, many)
    assert (e.code, e.status) == ("InstanceIds.ExceedLimit", 403)
    e = send_fail(ctx, [linux[0], "i-missing"])
    assert (e.code, e.status) == ("InvalidInstance.NotFound", 404)
    (beijing,) = fleet.create_instances(ctx.db, 1, "cn-beijing")
    e = send_fail(ctx, [beijing])
    assert (e.code, e.status) == ("InvalidInstance.NotFound", 404)
    (stopped,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou", stopped=True)
    e = send_fail(ctx, [linux[0], stopped])
    assert (e.code, e.status) == ("InvalidInstance.NotMatch", 400)
    (bare,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou", agent=False)
    e = send_fail(ctx, [bare])
    assert (e.code, e.status) == ("InvalidInstance.NotMatch", 400)
    assert ctx.db.execute("SELECT COUNT(*) FROM file_tasks").fetchone()[0] == 0
    assert ctx.extra["pokes"] == []
    # 50 is fine, duplicates collapse
    invoke_id = send(ctx, many[:50])["InvokeId"]
    assert len(task_rows(ctx, invoke_id)) == 50
    invoke_id = send(ctx, [linux[0], linux[0]])["InvokeId"]
    assert list(task_rows(ctx, invoke_id)) == [linux[0]]


def test_send_file_missing_parameters(ctx, linux):
    for name in ("Name", "TargetDir", "Content"):
        params = {"Name": "a", "TargetDir": "/tmp", "Content": "x", **ids_param(linux)}
        del params[name]
        e = fail(ctx, "SendFile", params)
        assert (e.code, e.status) == (f"MissingParameter.{name}", 400)


def test_send_file_parameter_errors(ctx, linux):
    cases = [
        ({"Name": "n" * 256}, "FileName.ExceedLimit", 403),
        ({"TargetDir": "relative/dir"}, "FileTargetDir.Invalid", 400),
        ({"TargetDir": "/" + "d" * 255}, "FileTargetDir.Invalid", 400),
        ({"ContentType": "Hex"}, "FileContentType.Invalid", 400),
        ({"ContentType": "Base64", "Content": "@@not base64@@"}, "FileContent.DecodeError", 400),
        ({"ContentType": "Base64", "Content": "YWJj="}, "FileContent.DecodeError", 400),
        ({"Description": "d" * 513}, "FileDesc.ExceedLimit", 403),
        ({"FileMode": "644x"}, "FileMode.Invalid", 400),
        ({"FileMode": "0888"}, "FileMode.Invalid", 400),
        ({"FileMode": "12"}, "FileMode.Invalid", 400),
        ({"FileMode": "07777"}, "FileMode.Invalid", 400),
        ({"FileOwner": "u" * 65}, "InvalidParameter.FileOwner", 400),
        ({"FileOwner": "bad user"}, "InvalidParameter.FileOwner", 400),
        ({"FileGroup": "g" * 65}, "InvalidParameter.FileGroup", 400),
        ({"Overwrite": "maybe"}, "InvalidParameter.Overwrite", 400),
        ({f"Tag.{n}.Key": f"k{n}" for n in range(1, 22)}, "NumberExceed.Tags", 400),
        ({"Tag.1.Value": "v"}, "MissingParameter.TagKey", 400),
        ({"Tag.1.Key": "k", "Tag.2.Key": "k"}, "Duplicate.TagKey", 400),
        ({"Tag.1.Key": "aliyun-x"}, "InvalidTagKey.Malformed", 400),
        ({"Tag.1.Key": "acs:x"}, "InvalidTagKey.Malformed", 400),
        ({"Tag.1.Key": "k" * 65}, "InvalidTagKey.Malformed", 400),
        ({"Tag.1.Key": "k", "Tag.1.Value": "v" * 129}, "InvalidTagValue.Malformed", 400),
        ({"Tag.1.Key": "k", "Tag.1.Value": "see https://x"}, "InvalidTagValue.Malformed", 400),
    ]
    for extra, code, status in cases:
        e = send_fail(ctx, linux, **extra)
        assert (e.code, e.status) == (code, status), extra
    assert ctx.db.execute("SELECT COUNT(*) FROM file_tasks").fetchone()[0] == 0


def test_send_file_size_limit(ctx, linux):
    limit_bytes = 32 * 1024 // 4 * 3  # 24576 bytes -> exactly 32768 Base64 characters
    send(ctx, linux, Content="a" * limit_bytes)
    e = send_fail(ctx, linux, Content="a" * (limit_bytes + 1))
    assert (e.code, e.status) == ("FileSize.ExceedLimit", 403)
    # multi-byte text counts by its UTF-8 bytes
    e = send_fail(ctx, linux, Content="é" * (limit_bytes // 2 + 1))
    assert e.code == "FileSize.ExceedLimit"
    e = send_fail(ctx, linux, ContentType="Base64", Content=base64.b64encode(b"a" * (limit_bytes + 1)).decode())
    assert e.code == "FileSize.ExceedLimit"
    send(ctx, linux, ContentType="Base64", Content=base64.b64encode(b"a" * limit_bytes).decode())


def test_send_file_per_instance_verdicts(ctx, linux):
    (win,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou", os_type="windows")
    (agent_off,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou")
    ctx.db.execute("UPDATE instances SET agent_running = 0 WHERE instance_id = ?", (agent_off,))
    invoke_id = send(ctx, [linux[0], win, agent_off])["InvokeId"]
    rows = task_rows(ctx, invoke_id)
    assert rows[linux[0]]["status"] == "Pending"
    assert (rows[win]["status"], rows[win]["error_code"]) == ("Invalid", "FileCreateFail")
    assert "Windows" in rows[win]["error_info"]
    assert (rows[agent_off]["status"], rows[agent_off]["error_code"]) == ("Aborted", "ClientNotRunning")
    assert rows[agent_off]["error_info"] == "the aliyun service is not running on the instance"
    assert rows[agent_off]["finish_time"] is not None


def test_send_file_name_path_content_verdicts(ctx, linux):
    for extra, code in (({"Name": "a/b"}, "FileNameInvalid"), ({"Name": ".."}, "FileNameInvalid"),
                        ({"TargetDir": "C:\\Users"}, "FilePathInvalid"), ({"Content": ""}, "FileContentInvalid")):
        rows = task_rows(ctx, send(ctx, linux[:1], **extra)["InvokeId"])
        assert (rows[linux[0]]["status"], rows[linux[0]]["error_code"]) == ("Invalid", code), extra


# --------------------------------------------------------------------------------- DescribeSendFileResults
def results(ctx: Context, **params: Any) -> dict[str, Any]:
    return call(ctx, "DescribeSendFileResults", {"RegionId": "cn-hangzhou", **params})


def test_describe_send_file_results_shape(ctx, linux):
    invoke_id = send(ctx, linux, Description="desc", FileMode="0600", Overwrite="true",
                     **{"Tag.1.Key": "k", "Tag.1.Value": "v"})["InvokeId"]
    now = time.time()
    ctx.db.execute("UPDATE file_task_instances SET status = 'Success', start_time = ?, finish_time = ?,"
                   " update_time = ? WHERE instance_id = ?", (now, now, now, linux[0]))
    body = results(ctx)
    assert (body["TotalCount"], body["PageNumber"], body["PageSize"], body["NextToken"]) == (1, 1, 10, "")
    inv = body["Invocations"]["Invocation"][0]
    task = ctx.db.execute("SELECT * FROM file_tasks").fetchone()
    assert {k: v for k, v in inv.items() if k != "InvokeInstances"} == {
        "InvokeId": invoke_id, "Name": "a.txt", "Description": "desc", "Content": "hello\n",
        "ContentType": "PlainText", "TargetDir": "/tmp/x", "FileOwner": "root", "FileGroup": "root",
        "FileMode": "0600", "Overwrite": "true", "VmCount": 2, "CreationTime": store.iso(task["created_at"]),
        "InvocationStatus": "Pending", "Tags": {"Tag": [{"TagKey": "k", "TagValue": "v"}]},
    }
    instances = inv["InvokeInstances"]["InvokeInstance"]
    assert [i["InstanceId"] for i in instances] == linux
    assert instances[0] == {
        "InstanceId": linux[0], "InvocationStatus": "Success", "ErrorCode": "", "ErrorInfo": "",
        "CreationTime": store.iso(task["created_at"]), "StartTime": store.iso(now), "FinishTime": store.iso(now),
        "UpdateTime": store.iso(now),
    }
    assert instances[1]["StartTime"] == "" and instances[1]["FinishTime"] == ""
    model = models.DescribeSendFileResultsResponseBody().from_map({**body, "RequestId": "R"})
    m = model.invocations.invocation[0]
    assert m.invoke_id == invoke_id and m.overwrite == "true" and m.vm_count == 2
    assert m.tags.tag[0].tag_value == "v"
    assert m.invoke_instances.invoke_instance[0].invocation_status == "Success"


def test_describe_send_file_results_content_and_overall(ctx, linux):
    data = b"\x00\xffbinary"
    invoke_id = send(ctx, linux, ContentType="Base64", Content=base64.b64encode(data).decode())["InvokeId"]
    inv = results(ctx)["Invocations"]["Invocation"][0]
    assert inv["Content"] == base64.b64encode(data).decode() and inv["ContentType"] == "Base64"
    assert inv["Overwrite"] == "false"
    for statuses, overall in ((("Running", "Success"), "Running"), (("Success", "Success"), "Success"),
                              (("Failed", "Invalid"), "Failed"), (("Success", "Failed"), "PartialFailed")):
        for instance_id, status in zip(linux, statuses, strict=True):
            ctx.db.execute("UPDATE file_task_instances SET status = ? WHERE invoke_id = ? AND instance_id = ?",
                           (status, invoke_id, instance_id))
        assert results(ctx)["Invocations"]["Invocation"][0]["InvocationStatus"] == overall
        assert results(ctx, InvocationStatus=overall)["TotalCount"] == 1
        assert results(ctx, InvocationStatus="Pending")["TotalCount"] == 0


def test_describe_send_file_results_filters(ctx, linux):
    (third,) = fleet.create_instances(ctx.db, 1, "cn-hangzhou")
    a = send(ctx, linux, Name="a.txt", **{"Tag.1.Key": "env", "Tag.1.Value": "prod"})["InvokeId"]
    b = send(ctx, [linux[1], third], Name="b.txt", ResourceGroupId="rg-1",
             **{"Tag.1.Key": "env", "Tag.1.Value": "dev", "Tag.2.Key": "team", "Tag.2.Value": "x"})["InvokeId"]
    ctx.db.execute("UPDATE file_task_instances SET status = 'Success' WHERE invoke_id = ?", (a,))

    def found(**params):
        return [i["InvokeId"] for i in results(ctx, **params)["Invocations"]["Invocation"]]

    assert found() == [b, a]  # newest first
    assert found(InvokeId=a) == [a]
    assert found(InvokeId="f-nope") == []
    assert found(Name="b.txt") == [b]
    assert found(Name="b") == []
    assert found(InstanceId=linux[0]) == [a]
    assert found(InstanceId=linux[1]) == [b, a]
    assert found(ResourceGroupId="rg-1") == [b]
    assert found(InvocationStatus="Success") == [a]
    assert found(InvocationStatus="Pending") == [b]
    assert found(InvocationStatus="success") == [a]
    assert found(**{"Tag.1.Key": "env", "Tag.1.Value": "prod"}) == [a]
    assert found(**{"Tag.1.Key": "env"}) == [b, a]
    assert found(**{"Tag.1.Key": "env", "Tag.1.Value": "dev", "Tag.2.Key": "team", "Tag.2.Value": "x"}) == [b]
    assert found(**{"Tag.1.Key": "env", "Tag.1.Value": "prod", "Tag.2.Key": "team", "Tag.2.Value": "x"}) == []
    # the InstanceId filter narrows InvokeInstances; VmCount and the overall status cover the whole task
    inv = results(ctx, InstanceId=third)["Invocations"]["Invocation"][0]
    assert [i["InstanceId"] for i in inv["InvokeInstances"]["InvokeInstance"]] == [third]
    assert inv["VmCount"] == 2
    ctx.region_id = "cn-beijing"
    assert found() == []


def test_describe_send_file_results_errors(ctx):
    for extra, code in (({f"Tag.{n}.Key": f"k{n}" for n in range(1, 22)}, "NumberExceed.Tags"),
                        ({"Tag.1.Value": "v"}, "MissingParameter.TagKey"),
                        ({"Tag.1.Key": "k", "Tag.2.Key": "k"}, "Duplicate.TagKey"),
                        ({"Tag.1.Key": "acs:k"}, "InvalidTagKey.Malformed"),
                        ({"Tag.1.Key": "k", "Tag.1.Value": "v" * 129}, "InvalidTagValue.Malformed"),
                        ({"MaxResults": 51}, "InvalidParameter.MaxResults"),
                        ({"MaxResults": 0}, "InvalidParameter.MaxResults"),
                        ({"NextToken": "???"}, "InvalidParameter.NextToken"),
                        ({"PageSize": 51}, "InvalidParam.PageSize"),
                        ({"PageNumber": -1}, "InvalidParam.PageNumber")):
        e = fail(ctx, "DescribeSendFileResults", extra)
        assert (e.code, e.status) == (code, 400), extra


def test_describe_send_file_results_paging(ctx, linux):
    ids = [send(ctx, linux[:1], Name=f"f{n}")["InvokeId"] for n in range(23)]
    newest_first = ids[::-1]
    seen, token = [], None
    while True:
        params: dict[str, Any] = {"MaxResults": 10}
        if token:
            params["NextToken"] = token
        body = results(ctx, **params)
        seen += [i["InvokeId"] for i in body["Invocations"]["Invocation"]]
        token = body["NextToken"]
        if not token:
            break
    assert seen == newest_first
    body = results(ctx, PageNumber=2, PageSize=5)
    assert [i["InvokeId"] for i in body["Invocations"]["Invocation"]] == newest_first[5:10]
    assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (23, 2, 5)
    body = results(ctx, MaxResults=50)
    assert len(body["Invocations"]["Invocation"]) == 23
    # paging with the overall-status filter
    body = results(ctx, InvocationStatus="Pending", MaxResults=20)
    assert body["TotalCount"] == 23 and len(body["Invocations"]["Invocation"]) == 20 and body["NextToken"]
    body = results(ctx, InvocationStatus="Pending", MaxResults=20, NextToken=body["NextToken"])
    assert [i["InvokeId"] for i in body["Invocations"]["Invocation"]] == newest_first[20:]
    assert body["NextToken"] == ""
