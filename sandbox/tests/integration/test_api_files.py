"""SendFile + DescribeSendFileResults."""

from __future__ import annotations

import base64
import grp
import pwd
from typing import Any

import pytest

from sandbox.tests.integration.sandbox_fixture import (
    TERMINAL_FILE,
    api_error,
    models,
    output_of,
    run_one,
    target_root,
    unique,
    wait_for,
)


@pytest.fixture()
def root(sandbox_info: dict[str, Any]) -> str:
    return target_root(sandbox_info)


def _send(client: Any, instance_ids: list[str], name: str, target_dir: str, content: str, **kw: Any) -> str:
    m = models()
    resp = client.send_file(
        m.SendFileRequest(
            region_id=client._region_id,
            instance_id=instance_ids,
            name=name,
            target_dir=target_dir,
            content=content,
            **kw,
        )
    )
    invoke_id = resp.body.to_map()["InvokeId"]
    assert invoke_id.startswith("f-"), invoke_id
    return str(invoke_id)


def _result(client: Any, invoke_id: str) -> dict[str, Any]:
    m = models()
    body = client.describe_send_file_results(
        m.DescribeSendFileResultsRequest(region_id=client._region_id, invoke_id=invoke_id)
    ).body.to_map()
    invs = body.get("Invocations", {}).get("Invocation", [])
    assert len(invs) == 1, body
    return dict(invs[0])


def _wait_file(client: Any, invoke_id: str, timeout: float = 20.0) -> dict[str, Any]:
    state: dict[str, Any] = {}

    def done() -> bool:
        state["inv"] = _result(client, invoke_id)
        return state["inv"]["InvocationStatus"] in TERMINAL_FILE

    try:
        wait_for(done, timeout, 0.2, f"file task {invoke_id}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {state.get('inv')}") from None
    return dict(state["inv"])


def _rows(inv: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["InstanceId"]: r for r in inv.get("InvokeInstances", {}).get("InvokeInstance", [])}


def _nobody_group() -> str:
    return grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name


def test_send_file_mode_owner(client: Any, linux_ids: list[str], root: str) -> None:
    targets = linux_ids[:2]
    name = unique("file-") + ".txt"
    target_dir = f"{root}/{unique('sendfile-')}/sub"
    group = _nobody_group()
    invoke_id = _send(
        client,
        targets,
        name,
        target_dir,
        "hello file\n",
        file_mode="0640",
        file_owner="nobody",
        file_group=group,
        description="a test file",
        overwrite=True,  # with --isolation process both instances share the host's filesystem
    )
    inv = _wait_file(client, invoke_id)
    assert inv["InvocationStatus"] == "Success", inv
    assert inv["Name"] == name and inv["TargetDir"] == target_dir, inv
    assert inv["FileMode"] == "0640" and inv["FileOwner"] == "nobody" and inv["FileGroup"] == group, inv
    rows = _rows(inv)
    assert set(rows) == set(targets)
    for iid, row in rows.items():
        assert row["InvocationStatus"] == "Success", row
        out = run_one(client, f"stat -c '%a %U %G' {target_dir}/{name}; cat {target_dir}/{name}", iid)
        assert out["InvocationStatus"] == "Success", out
        assert output_of(out).decode() == f"640 nobody {group}\nhello file\n"


def test_send_file_root_fast_path(client: Any, linux_ids: list[str], root: str) -> None:
    """root:root with mode 0600 or the default 0644 writes without chown/chmod where nothing would change, and
    still ends root:root in a setgid directory whose group new files would inherit."""
    iid = linux_ids[1]
    base = f"{root}/{unique('fast-')}"
    group = _nobody_group()
    prep = run_one(client, f"mkdir -p {base}/sgid && chgrp {group} {base}/sgid && chmod 2775 {base}/sgid", iid)
    assert prep["InvocationStatus"] == "Success", prep
    for target_dir, mode in ((base, "0600"), (base, None), (f"{base}/sgid", "0600")):
        name = unique("f-")
        extra = {"file_mode": mode} if mode else {}
        inv = _wait_file(client, _send(client, [iid], name, target_dir, "x", overwrite=True, **extra))
        assert inv["InvocationStatus"] == "Success", inv
        out = run_one(client, f"stat -c '%a %U %G' {target_dir}/{name}; ls -A {target_dir} | grep -c sandbox-send", iid)
        assert output_of(out).decode() == f"{'600' if mode else '644'} root root\n0\n", out


def test_send_file_base64_binary(client: Any, linux_ids: list[str], root: str) -> None:
    data = bytes(range(256)) * 4
    name = unique("bin-")
    invoke_id = _send(client, [linux_ids[2]], name, root, base64.b64encode(data).decode(), content_type="Base64")
    assert _wait_file(client, invoke_id)["InvocationStatus"] == "Success"
    out = run_one(client, f"base64 -w0 {root}/{name}; rm -f {root}/{name}", linux_ids[2])
    assert base64.b64decode(output_of(out)) == data
    assert out["InvocationStatus"] == "Success"


def test_send_file_overwrite_rules(client: Any, linux_ids: list[str], root: str) -> None:
    iid = linux_ids[3]
    name = unique("ow-")
    target_dir = f"{root}/{unique('ow-dir-')}"
    first = _wait_file(client, _send(client, [iid], name, target_dir, "one"))
    assert first["InvocationStatus"] == "Success", first
    second = _wait_file(client, _send(client, [iid], name, target_dir, "two", overwrite=False))
    assert second["InvocationStatus"] == "Failed", second
    row = _rows(second)[iid]
    assert row["InvocationStatus"] == "Failed", row
    assert row["ErrorCode"] == "FileAlreadyExists", row
    assert output_of(run_one(client, f"cat {target_dir}/{name}", iid)) == b"one"
    third = _wait_file(client, _send(client, [iid], name, target_dir, "three", overwrite=True))
    assert third["InvocationStatus"] == "Success", third
    assert output_of(run_one(client, f"cat {target_dir}/{name}", iid)) == b"three"


def test_send_file_size_limit(client: Any, linux_ids: list[str], root: str) -> None:
    iid = linux_ids[4]
    # 24576 plain bytes are exactly 32768 Base64 characters: allowed
    ok = _wait_file(client, _send(client, [iid], unique("max-"), root, "a" * 24576))
    assert ok["InvocationStatus"] == "Success", ok
    name = unique("big-")
    exc = api_error(lambda: _send(client, [iid], name, root, "a" * 24577))
    assert exc.code == "FileSize.ExceedLimit", exc
    assert 400 <= exc.status_code < 500
    exc = api_error(
        lambda: _send(client, [iid], name, root, base64.b64encode(b"b" * 30000).decode(), content_type="Base64")
    )
    assert exc.code == "FileSize.ExceedLimit", exc
    m = models()
    body = client.describe_send_file_results(
        m.DescribeSendFileResultsRequest(region_id=client._region_id, name=name)
    ).body.to_map()
    assert body.get("Invocations", {}).get("Invocation", []) == [], body


def test_send_file_missing_owner(client: Any, linux_ids: list[str], root: str) -> None:
    iid = linux_ids[5]
    inv = _wait_file(client, _send(client, [iid], unique("own-"), root, "x", file_owner="no_such_owner_zz"))
    row = _rows(inv)[iid]
    assert row["InvocationStatus"] in ("Failed", "Invalid"), row
    assert row["ErrorCode"] in ("AccountNotExists", "FileAuthorityInvalid", "UserGroupNotExists"), row
