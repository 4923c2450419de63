"""Saved commands: CreateCommand / DescribeCommands / ModifyCommand / InvokeCommand / DeleteCommand."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from sandbox.tests.integration.sandbox_fixture import (
    api_error,
    executions_of,
    invoke_instances,
    models,
    output_of,
    stats,
    target_root,
    unique,
    wait_invocation,
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _create(client: Any, name: str, content: str, **kw: Any) -> str:
    m = models()
    kw.setdefault("type", "RunShellScript")
    resp = client.create_command(
        m.CreateCommandRequest(region_id=client._region_id, name=name, command_content=content, **kw)
    )
    command_id = resp.body.to_map()["CommandId"]
    assert command_id.startswith("c-"), command_id
    return str(command_id)


def _describe(client: Any, **kw: Any) -> dict[str, Any]:
    m = models()
    return dict(client.describe_commands(m.DescribeCommandsRequest(region_id=client._region_id, **kw)).body.to_map())


def _commands(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body.get("Commands", {}).get("Command", []))


def test_create_describe_modify_invoke_delete(client: Any, linux_ids: list[str]) -> None:
    m = models()
    rid = client._region_id
    name = unique("cmd-")
    content = 'echo "hello {{who}} from $(pwd)"'
    command_id = _create(
        client, name, _b64(content), description="first", working_dir="/tmp", timeout=30, enable_parameter=True
    )

    (cmd,) = _commands(_describe(client, command_id=command_id))
    assert cmd["Name"] == name
    assert cmd["Type"] == "RunShellScript"
    assert cmd["Description"] == "first"
    assert base64.b64decode(cmd["CommandContent"]).decode() == content  # Base64 by default
    assert cmd["WorkingDir"] == "/tmp"
    assert cmd["Timeout"] == 30
    assert cmd["EnableParameter"] is True
    assert cmd["ParameterNames"]["ParameterName"] == ["who"]
    assert cmd["InvokeTimes"] == 0
    assert cmd["CreationTime"].endswith("Z")
    (plain,) = _commands(_describe(client, command_id=command_id, content_encoding="PlainText"))
    assert plain["CommandContent"] == content

    client.modify_command(
        m.ModifyCommandRequest(
            region_id=rid,
            command_id=command_id,
            name=name + "-v2",
            description="second",
            timeout=45,
            working_dir="/",
            command_content=_b64("echo ignored"),  # deprecated and ignored (reference §2.8)
        )
    )
    (cmd,) = _commands(_describe(client, command_id=command_id))
    assert (cmd["Name"], cmd["Description"], cmd["Timeout"], cmd["WorkingDir"]) == (name + "-v2", "second", 45, "/")
    assert base64.b64decode(cmd["CommandContent"]).decode() == content  # content unchanged

    resp = client.invoke_command(
        m.InvokeCommandRequest(
            region_id=rid, command_id=command_id, instance_id=linux_ids[:2], parameters={"who": "Ann"}
        )
    )
    invoke_id = resp.body.to_map()["InvokeId"]
    inv = wait_invocation(client, invoke_id)
    assert inv["CommandId"] == command_id
    assert inv["CommandName"] == name + "-v2"
    for row in invoke_instances(inv).values():
        assert row["InvocationStatus"] == "Success", row
        assert output_of(row) == b"hello Ann from /\n"
    (cmd,) = _commands(_describe(client, command_id=command_id))
    assert cmd["InvokeTimes"] == 1

    # InvokeCommand overrides WorkingDir for one run
    resp = client.invoke_command(
        m.InvokeCommandRequest(
            region_id=rid,
            command_id=command_id,
            instance_id=[linux_ids[0]],
            parameters={"who": "Bo"},
            working_dir="/tmp",
        )
    )
    inv = wait_invocation(client, resp.body.to_map()["InvokeId"])
    assert output_of(invoke_instances(inv)[linux_ids[0]]) == b"hello Bo from /tmp\n"

    client.delete_command(m.DeleteCommandRequest(region_id=rid, command_id=command_id))
    assert _commands(_describe(client, command_id=command_id)) == []
    for call in (
        lambda: client.invoke_command(
            m.InvokeCommandRequest(
                region_id=rid, command_id=command_id, instance_id=[linux_ids[0]], parameters={"who": "x"}
            )
        ),
        lambda: client.modify_command(m.ModifyCommandRequest(region_id=rid, command_id=command_id, name="x")),
        lambda: client.delete_command(m.DeleteCommandRequest(region_id=rid, command_id=command_id)),
    ):
        exc = api_error(call)
        assert exc.code == "InvalidCmdId.NotFound", exc
        assert exc.status_code == 404, exc
    # the finished invocation still describes its (deleted) command
    assert wait_invocation(client, invoke_id)["CommandId"] == command_id


def test_invoke_unknown_command(client: Any, linux_ids: list[str]) -> None:
    m = models()
    exc = api_error(
        lambda: client.invoke_command(
            m.InvokeCommandRequest(
                region_id=client._region_id, command_id="c-hz0000000000000", instance_id=[linux_ids[0]]
            )
        )
    )
    assert exc.code == "InvalidCmdId.NotFound" and exc.status_code == 404, exc


def test_describe_commands_wildcard_and_paging(client: Any) -> None:
    prefix = unique("page-")
    created = [_create(client, f"{prefix}-{n}", _b64(f"echo {n}")) for n in range(5)]
    _create(client, unique("other-"), _b64("echo other"))

    body = _describe(client, name=f"{prefix}-*", max_results=50)
    assert {c["CommandId"] for c in _commands(body)} == set(created)
    assert {c["CommandId"] for c in _commands(_describe(client, name=f"*{prefix[2:]}*", max_results=50))} == set(
        created
    )
    (one,) = _commands(_describe(client, name=f"{prefix}-3"))
    assert one["CommandId"] == created[3]

    # NextToken paging
    seen: list[str] = []
    token = None
    for _ in range(10):
        body = _describe(client, name=f"{prefix}-*", max_results=2, next_token=token)
        page = [c["CommandId"] for c in _commands(body)]
        assert len(page) <= 2
        seen.extend(page)
        token = body.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(created), seen
    assert len(seen) == len(set(seen))

    # PageNumber / PageSize paging
    seen = []
    for page_number in range(1, 5):
        body = _describe(client, name=f"{prefix}-*", page_number=page_number, page_size=2)
        assert body["TotalCount"] == 5, body
        assert body["PageNumber"] == page_number
        seen.extend(c["CommandId"] for c in _commands(body))
    assert sorted(seen) == sorted(created), seen
    assert len(seen) == 5


def test_create_command_plaintext_and_type_errors(client: Any) -> None:
    name = unique("plain-")
    command_id = _create(client, name, "echo plain", content_encoding="PlainText")
    (cmd,) = _commands(_describe(client, command_id=command_id, content_encoding="PlainText"))
    assert cmd["CommandContent"] == "echo plain"
    exc = api_error(lambda: _create(client, unique("bad-"), _b64("echo x"), type="RunPythonScript"))
    assert exc.code == "InvalidCmdType.NotFound", exc


def test_client_token_on_create_invoke_and_send_file(
    sandbox_info: dict[str, Any], client: Any, linux_ids: list[str]
) -> None:
    m = models()
    rid = client._region_id
    name = unique("tok-")
    token = uuid.uuid4().hex
    first = _create(client, name, _b64("echo tok"), client_token=token)
    assert _create(client, name, _b64("echo tok"), client_token=token) == first
    assert [c["CommandId"] for c in _commands(_describe(client, name=name))] == [first]
    exc = api_error(lambda: _create(client, name, _b64("echo other"), client_token=token))
    assert exc.code == "IdempotentParameterMismatch", exc

    def invoke() -> str:
        resp = client.invoke_command(
            m.InvokeCommandRequest(region_id=rid, command_id=first, instance_id=[linux_ids[0]], client_token=token)
        )
        return str(resp.body.to_map()["InvokeId"])

    invoke_id = invoke()
    wait_invocation(client, invoke_id)
    assert invoke() == invoke_id
    assert executions_of(stats(sandbox_info), invoke_id) == 1

    def send() -> str:
        resp = client.send_file(
            m.SendFileRequest(
                region_id=rid,
                instance_id=[linux_ids[0]],
                name=name,
                target_dir=target_root(sandbox_info),
                content="x",
                client_token=token,
                overwrite=True,
            )
        )
        return str(resp.body.to_map()["InvokeId"])

    file_id = send()
    assert send() == file_id
    body = client.describe_send_file_results(m.DescribeSendFileResultsRequest(region_id=rid, name=name)).body
    assert [i["InvokeId"] for i in body.to_map()["Invocations"]["Invocation"]] == [file_id]
