"""Authentication through the real SDKs against a running sandbox (V3, V1, aliyun-python-sdk-core, STS, replay,
clock skew, read-only keys, unknown actions)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alibabacloud_tea_openapi import exceptions as tea_exc

from sandbox.tests.integration.sandbox_fixture import (
    CaptureServer,
    acs_call,
    acs_client,
    add_instances,
    api_error,
    describe_instances,
    describe_invocation,
    ecs_client,
    ecs_client_readonly,
    ecs_client_sts,
    ecs_client_v1,
    invoke_instances,
    mint_sts,
    models,
    replay,
    run_command,
    stats,
    unique,
    wait_agent_ready,
    wait_invocation,
)

ERROR_FIELDS = ("RequestId", "HostId", "Code", "Message", "Recommend")


def _regions(client: Any) -> list[str]:
    resp = client.describe_regions(models().DescribeRegionsRequest())
    assert resp.status_code == 200
    return [r["RegionId"] for r in resp.body.to_map()["Regions"]["Region"]]


def _instance_ids(client: Any) -> list[str]:
    return [i["InstanceId"] for i in describe_instances(client, max_results=100)]


def test_v3_signature_default(sandbox_info: dict[str, Any], client: Any, linux_ids: list[str]) -> None:
    assert sandbox_info["region_id"] in _regions(client)
    assert set(linux_ids) <= set(_instance_ids(client))


def test_v1_signature(sandbox_info: dict[str, Any], linux_ids: list[str]) -> None:
    v1 = ecs_client_v1(sandbox_info)
    assert sandbox_info["region_id"] in _regions(v1)
    assert set(linux_ids) <= set(_instance_ids(v1))


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_core_sdk_common_request(sandbox_info: dict[str, Any], linux_ids: list[str], method: str) -> None:
    body = acs_call(sandbox_info, "DescribeRegions", method=method)
    assert "RequestId" in body
    assert sandbox_info["region_id"] in [r["RegionId"] for r in body["Regions"]["Region"]]
    body = acs_call(
        sandbox_info, "DescribeInstances", {"RegionId": sandbox_info["region_id"], "PageSize": 100}, method=method
    )
    assert set(linux_ids) <= {i["InstanceId"] for i in body["Instances"]["Instance"]}


def test_sts_key_and_token(sandbox_info: dict[str, Any]) -> None:
    sts = ecs_client_sts(sandbox_info)
    assert sandbox_info["region_id"] in _regions(sts)
    assert sandbox_info["region_id"] in _regions(ecs_client_sts(sandbox_info, signature_algorithm="v2"))
    # a freshly minted STS key works too
    key_id, secret, token = mint_sts(sandbox_info, ttl=600)
    fresh = ecs_client(sandbox_info, access_key_id=key_id, access_key_secret=secret, security_token=token)
    assert sandbox_info["region_id"] in _regions(fresh)


def _check_error_body(exc: Any, code: str, status: int | None) -> None:
    assert getattr(exc, "code", None) == code, f"expected {code}, got {getattr(exc, 'code', None)}: {exc}"
    if status is not None:
        assert exc.status_code == status, exc
    data = exc.data or {}
    for key in ERROR_FIELDS:
        assert data.get(key), f"error body lacks {key}: {data}"
    assert data["Code"] == code
    assert code in data["Recommend"]


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3", "v1"])
def test_wrong_secret(sandbox_info: dict[str, Any], algorithm: str | None) -> None:
    kw = {"signature_algorithm": algorithm} if algorithm else {}
    bad = ecs_client(sandbox_info, access_key_secret=sandbox_info["access_key_secret"] + "x", **kw)
    exc = api_error(lambda: _regions(bad))
    assert isinstance(exc, tea_exc.ClientException), type(exc)
    _check_error_body(exc, "SignatureDoesNotMatch", 400)


def test_wrong_secret_core_sdk(sandbox_info: dict[str, Any]) -> None:
    from aliyunsdkcore.acs_exception.exceptions import ServerException

    client = acs_client(sandbox_info, access_key_secret="not-the-secret")
    with pytest.raises(ServerException) as info:
        acs_call(sandbox_info, "DescribeRegions", client=client)
    # The core SDK rewrites SignatureDoesNotMatch to InvalidAccessKeySecret when the server's string to sign
    # (after "server string to sign is:") equals its own.
    assert info.value.get_error_code() in ("SignatureDoesNotMatch", "InvalidAccessKeySecret")
    assert info.value.get_http_status() == 400
    assert info.value.get_request_id()


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3", "v1"])
def test_unknown_access_key(sandbox_info: dict[str, Any], algorithm: str | None) -> None:
    kw = {"signature_algorithm": algorithm} if algorithm else {}
    bad = ecs_client(sandbox_info, access_key_id="LTAI" + "0" * 20, **kw)
    exc = api_error(lambda: _regions(bad))
    _check_error_body(exc, "InvalidAccessKeyId.NotFound", None)
    assert exc.status_code in (400, 404)


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3", "v1"])
def test_sts_without_or_with_wrong_token(sandbox_info: dict[str, Any], algorithm: str | None) -> None:
    kw: dict[str, Any] = {"signature_algorithm": algorithm} if algorithm else {}
    no_token = ecs_client(
        sandbox_info,
        access_key_id=sandbox_info["sts_access_key_id"],
        access_key_secret=sandbox_info["sts_access_key_secret"],
        **kw,
    )
    exc = api_error(lambda: _regions(no_token))
    assert exc.code.startswith("InvalidSecurityToken."), exc
    assert 400 <= exc.status_code < 500
    wrong = ecs_client_sts(sandbox_info, security_token=sandbox_info["sts_security_token"] + "x", **kw)
    exc = api_error(lambda: _regions(wrong))
    assert exc.code.startswith("InvalidSecurityToken."), exc
    assert 400 <= exc.status_code < 500
    # somebody else's token with this key
    _, _, other_token = mint_sts(sandbox_info, ttl=600)
    other = ecs_client_sts(sandbox_info, security_token=other_token, **kw)
    exc = api_error(lambda: _regions(other))
    assert exc.code.startswith("InvalidSecurityToken."), exc


def test_sts_token_expires(sandbox_info: dict[str, Any]) -> None:
    key_id, secret, token = mint_sts(sandbox_info, ttl=1)
    minted = time.monotonic()
    client = ecs_client(sandbox_info, access_key_id=key_id, access_key_secret=secret, security_token=token)
    time.sleep(max(0.0, 2.0 - (time.monotonic() - minted)))
    exc = api_error(lambda: _regions(client))
    _check_error_body(exc, "InvalidSecurityToken.Expired", None)
    assert 400 <= exc.status_code < 500


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3", "v1"])
def test_nonce_replay(sandbox_info: dict[str, Any], algorithm: str | None) -> None:
    kw = {"signature_algorithm": algorithm} if algorithm else {}
    with CaptureServer() as cap:
        capturing = ecs_client(sandbox_info, endpoint=cap.info_override, **kw)
        _regions(capturing)
    assert len(cap.requests) == 1
    captured = cap.requests[0]
    status, _, body = replay(sandbox_info, captured)
    assert status == 200, body
    assert sandbox_info["region_id"] in [r["RegionId"] for r in body["Regions"]["Region"]]
    status, _, body = replay(sandbox_info, captured)
    assert status == 400, body
    assert body["Code"] == "SignatureNonceUsed", body
    for key in ERROR_FIELDS:
        assert body.get(key), body


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3", "v1"])
def test_clock_skew(sandbox_info: dict[str, Any], monkeypatch: pytest.MonkeyPatch, algorithm: str | None) -> None:
    from alibabacloud_tea_openapi.utils import Utils

    past = (datetime.now(UTC) - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: past))
    kw = {"signature_algorithm": algorithm} if algorithm else {}
    skewed = ecs_client(sandbox_info, **kw)
    exc = api_error(lambda: _regions(skewed))
    _check_error_body(exc, "InvalidTimeStamp.Expired", 400)
    # 10 minutes off is still accepted (15-minute window)
    near = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: near))
    assert sandbox_info["region_id"] in _regions(ecs_client(sandbox_info, **kw))


def test_failed_auth_executes_nothing(sandbox_info: dict[str, Any], client: Any) -> None:
    (instance_id,) = add_instances(sandbox_info, 1)
    wait_agent_ready(client, instance_id)
    before = stats(sandbox_info)
    marker = unique("never-")
    bad_clients = [
        ecs_client(sandbox_info, access_key_secret="wrong"),
        ecs_client_v1(sandbox_info, access_key_secret="wrong"),
        ecs_client(sandbox_info, access_key_id="LTAI-no-such-key"),
        ecs_client_sts(sandbox_info, security_token="forged"),
    ]
    for bad in bad_clients:
        exc = api_error(lambda bad=bad: run_command(bad, f"echo {marker}", [instance_id]))
        assert 400 <= exc.status_code < 500, exc
    from aliyunsdkcore.acs_exception.exceptions import ServerException

    with pytest.raises(ServerException):
        acs_call(
            sandbox_info,
            "RunCommand",
            {
                "RegionId": sandbox_info["region_id"],
                "Type": "RunShellScript",
                "CommandContent": f"echo {marker}",
                "InstanceId.1": instance_id,
            },
            client=acs_client(sandbox_info, access_key_secret="wrong"),
        )
    # give a (wrongly) created invocation the time to be picked up by the agent host
    time.sleep(1.5)
    after = stats(sandbox_info)
    assert after["executions_total"] == before["executions_total"], (before, after)
    assert after["executions"] == before["executions"]
    assert after["created"] == before["created"] and set(after["created"]) == {"commands", "invocations", "file_tasks"}
    body = client.describe_invocations(
        models().DescribeInvocationsRequest(
            region_id=sandbox_info["region_id"], instance_id=instance_id, max_results=50
        )
    ).body.to_map()
    assert body.get("Invocations", {}).get("Invocation", []) == [], body


def test_readonly_key(sandbox_info: dict[str, Any], client: Any, linux_ids: list[str]) -> None:
    m = models()
    ro = ecs_client_readonly(sandbox_info)
    rid = sandbox_info["region_id"]
    (instance_id,) = add_instances(sandbox_info, 1)
    wait_agent_ready(client, instance_id)
    # Describe* work
    assert instance_id in _instance_ids(ro)
    ro.describe_invocations(m.DescribeInvocationsRequest(region_id=rid))
    ro.describe_commands(m.DescribeCommandsRequest(region_id=rid))
    ro.describe_send_file_results(m.DescribeSendFileResultsRequest(region_id=rid))
    ro.describe_cloud_assistant_status(m.DescribeCloudAssistantStatusRequest(region_id=rid, instance_id=[instance_id]))
    # a running invocation the read-only key will try to stop
    running = run_command(client, "sleep 3; echo survived", [linux_ids[0]])["InvokeId"]
    name = unique("ro-")
    denied = {
        "RunCommand": lambda: run_command(ro, "echo no", [instance_id]),
        "CreateCommand": lambda: ro.create_command(
            m.CreateCommandRequest(region_id=rid, name=name, type="RunShellScript", command_content="ZWNobyBubw==")
        ),
        "SendFile": lambda: ro.send_file(
            m.SendFileRequest(region_id=rid, instance_id=[instance_id], name=name, target_dir="/tmp", content="x")
        ),
        "StopInvocation": lambda: ro.stop_invocation(m.StopInvocationRequest(region_id=rid, invoke_id=running)),
    }
    for action, call in denied.items():
        exc = api_error(call)
        assert exc.code == "Forbidden.RAM", (action, exc)
        assert exc.status_code == 403, (action, exc)
        assert (exc.data or {}).get("RequestId"), exc.data
    # also denied through the V1 path with the read-only key
    exc = api_error(
        lambda: run_command(ecs_client_readonly(sandbox_info, signature_algorithm="v2"), "echo no", [instance_id])
    )
    assert exc.code == "Forbidden.RAM" and exc.status_code == 403
    # a read-only STS key is read-only too
    key_id, secret, token = mint_sts(sandbox_info, ttl=600, readonly=True)
    ro_sts = ecs_client(sandbox_info, access_key_id=key_id, access_key_secret=secret, security_token=token)
    assert instance_id in _instance_ids(ro_sts)
    exc = api_error(lambda: run_command(ro_sts, "echo no", [instance_id]))
    assert exc.code == "Forbidden.RAM" and exc.status_code == 403
    # nothing was created or stopped
    cmds = client.describe_commands(m.DescribeCommandsRequest(region_id=rid, name=name)).body.to_map()
    assert cmds.get("Commands", {}).get("Command", []) == [], cmds
    files = client.describe_send_file_results(m.DescribeSendFileResultsRequest(region_id=rid, name=name)).body
    assert (files.to_map().get("Invocations", {}).get("Invocation", [])) == []
    invs = client.describe_invocations(
        m.DescribeInvocationsRequest(region_id=rid, instance_id=instance_id, max_results=50)
    ).body.to_map()
    assert invs.get("Invocations", {}).get("Invocation", []) == [], invs
    inv = wait_invocation(client, running, timeout=20)
    row = invoke_instances(inv)[linux_ids[0]]
    assert row["InvocationStatus"] == "Success", row
    assert json.dumps(row).count("Terminated") == 0


def test_unknown_action(sandbox_info: dict[str, Any]) -> None:
    from aliyunsdkcore.acs_exception.exceptions import ServerException

    with pytest.raises(ServerException) as info:
        acs_call(sandbox_info, "NoSuchAction", {"RegionId": sandbox_info["region_id"]})
    assert info.value.get_error_code() == "InvalidApi.NotFound"
    assert info.value.get_http_status() == 404
    # and through the tea SDK's generic call_api (V3)
    from alibabacloud_tea_openapi import models as open_api_models
    from darabonba.runtime import RuntimeOptions

    client = ecs_client(sandbox_info)
    params = open_api_models.Params(
        action="NoSuchAction",
        version="2014-05-26",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    request = open_api_models.OpenApiRequest(query={"RegionId": sandbox_info["region_id"]})
    exc = api_error(lambda: client.call_api(params, request, RuntimeOptions()))
    _check_error_body(exc, "InvalidApi.NotFound", 404)


def test_invocation_of_authenticated_v1_and_sts_clients_run(
    sandbox_info: dict[str, Any], client: Any, linux_ids: list[str]
) -> None:
    """A RunCommand signed with V1 and one with an STS key both execute (not only Describe* work)."""
    for signer in (ecs_client_v1(sandbox_info), ecs_client_sts(sandbox_info)):
        invoke_id = run_command(signer, "echo signed-ok", [linux_ids[1]])["InvokeId"]
        inv = wait_invocation(client, invoke_id, timeout=20)
        row = invoke_instances(inv)[linux_ids[1]]
        assert row["InvocationStatus"] == "Success", row
    assert describe_invocation(client, invoke_id)["InvocationStatus"] == "Success"


def _v1_url(info: dict[str, Any], params: dict[str, str], secret: str | None = None, method: str = "GET") -> str:
    """Sign a V1 (HMAC-SHA1) request by hand, as the 2021 docs describe it."""
    import base64
    import hashlib
    import hmac
    import uuid
    from urllib.parse import quote

    def enc(text: str) -> str:
        return quote(text, safe="-_.~")

    full = {
        "Version": "2014-05-26",
        "AccessKeyId": info["access_key_id"],
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **params,
    }
    canonical = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(full.items()))
    to_sign = f"{method}&{enc('/')}&{enc(canonical)}"
    key = ((secret or info["access_key_secret"]) + "&").encode()
    signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha1).digest()).decode()
    return f"{info['endpoint']}/?{canonical}&Signature={enc(signature)}"


def test_v1_without_format_answers_xml(sandbox_info: dict[str, Any]) -> None:
    import urllib.error
    import urllib.request
    import xml.etree.ElementTree as ET

    url = _v1_url(sandbox_info, {"Action": "DescribeRegions"})
    with urllib.request.urlopen(url, timeout=20) as resp:
        assert resp.status == 200
        assert "xml" in resp.headers.get("Content-Type", "")
        root = ET.fromstring(resp.read())
    assert root.tag == "DescribeRegionsResponse"
    assert sandbox_info["region_id"] in [e.text for e in root.iter("RegionId")]
    assert root.findtext("RequestId")
    # Format=JSON switches to JSON
    with urllib.request.urlopen(
        _v1_url(sandbox_info, {"Action": "DescribeRegions", "Format": "JSON"}), timeout=20
    ) as r:
        assert json.loads(r.read())["Regions"]["Region"]
    # an error is an <Error> document
    bad = _v1_url(sandbox_info, {"Action": "DescribeRegions"}, secret="wrong")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=20)
    assert info.value.code == 400
    err = ET.fromstring(info.value.read())
    assert err.tag == "Error"
    assert err.findtext("Code") == "SignatureDoesNotMatch"
    for key in ERROR_FIELDS:
        assert err.findtext(key), key
