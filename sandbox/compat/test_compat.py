"""Compatibility suite: clients this project did not write drive a sandbox; the assertions are on what each client
itself reports (sandbox/compat/clients.py, run with the compatibility virtualenv's Python), compared with what the
sandbox holds (read through the official SDK and `ctl`).

Needs SANDBOX_COMPAT_PYTHON: the Python of a virtualenv built from sandbox/compat/requirements.txt (`bash
scripts/test` builds .cache/compat-venv and sets it).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.tests.integration.sandbox_fixture import (
    REPO_ROOT,
    Sandbox,
    add_instances,
    describe_instances,
    describe_invocation,
    ecs_client,
    invoke_instances,
    start_sandbox,
    stats,
    stop_sandbox,
    wait_agent_ready,
)

COMPAT_PYTHON = os.environ.get("SANDBOX_COMPAT_PYTHON", "")
CLIENTS_SCRIPT = Path(__file__).with_name("clients.py")
CLIENT_TIMEOUT = 90.0

pytestmark = pytest.mark.skipif(
    not COMPAT_PYTHON, reason="SANDBOX_COMPAT_PYTHON is not set (bash scripts/test builds the virtualenv and sets it)"
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One instance from `serve`, one tagged instance added with `ctl`, both agents ready."""
    sb = start_sandbox(tmp_path_factory.mktemp("compat") / "state", instances=1, windows_instances=0,
                       isolation=os.environ.get("SANDBOX_TEST_ISOLATION", "auto"))
    try:
        add_instances(sb.info, 1, "--tag", "env=compat")
        client = ecs_client(sb.info)
        for instance in describe_instances(client):
            wait_agent_ready(client, instance["InstanceId"])
        yield sb
    finally:
        stop_sandbox(sb)


@pytest.fixture(scope="module")
def truth(sandbox: Sandbox) -> list[dict[str, Any]]:
    """The instances as the official SDK reads them."""
    instances = describe_instances(ecs_client(sandbox.info))
    assert len(instances) == 2
    return instances


def run_client(sandbox: Sandbox, name: str) -> dict[str, Any]:
    env = {**os.environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
    done = subprocess.run(
        [COMPAT_PYTHON, str(CLIENTS_SCRIPT), name, str(Path(sandbox.info["state_dir"]) / "sandbox.json")],
        cwd=str(REPO_ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout)
    assert isinstance(report, dict)
    return report


def check_runs(sandbox: Sandbox, report: dict[str, Any], truth: list[dict[str, Any]]) -> None:
    """The command results the client read, and that the sandbox ran each command once on the listed target."""
    target = truth[0]
    assert report["target"] == target["InstanceId"]
    ok, fail = report["ok"], report["fail"]
    assert (ok["status"], ok["exit_code"], ok["output"]) == ("Success", 0, f"compat-ok\n{target['HostName']}\n")
    assert (ok["invocation_status"], ok["invoke_status"], ok["record_status"]) == ("Success", "Finished", "Finished")
    assert (fail["status"], fail["exit_code"], fail["output"]) == ("Failed", 3, "compat-fail\n")
    # legacy statuses as the documented sample has them for a non-zero exit of the only instance
    assert (fail["invocation_status"], fail["invoke_status"], fail["record_status"]) == (
        "Failed", "Finished", "Finished")
    client = ecs_client(sandbox.info)
    executions = stats(sandbox.info)["executions"]
    for run in (ok, fail):
        rows = invoke_instances(describe_invocation(client, run["invoke_id"], include_output=False))
        assert list(rows) == [target["InstanceId"]]
        assert rows[target["InstanceId"]]["InvocationStatus"] == run["status"]
        assert executions[run["invoke_id"]] == {target["InstanceId"]: 1}


def test_legacy_sdk(sandbox: Sandbox, truth: list[dict[str, Any]]) -> None:
    """aliyun-python-sdk-core with the legacy ECS request classes (aliyun-python-sdk-ecs), JSON and XML answers."""
    report = run_client(sandbox, "legacy-sdk")
    assert report["instances"] == [
        {"id": i["InstanceId"], "name": i["InstanceName"], "status": "Running",
         "private_ip": i["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0],
         "tags": {t["TagKey"]: t["TagValue"] for t in i["Tags"]["Tag"]}}
        for i in truth
    ]
    assert report["instances"][1]["tags"] == {"env": "compat"}
    assert report["xml_instance_ids"] == [i["InstanceId"] for i in truth]
    check_runs(sandbox, report, truth)


def test_footmark(sandbox: Sandbox, truth: list[dict[str, Any]]) -> None:
    """footmark (the wrapper the vendor's alibaba.alicloud collection builds on): its Instance objects read the
    DescribeInstances fields in arrival order, its generic request path parses the Cloud Assistant answers."""
    report = run_client(sandbox, "footmark")
    assert report["instances"] == [
        {"id": i["InstanceId"], "name": i["InstanceName"], "status": "running",
         "private_ip": i["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0], "public_ip": "",
         "vpc_id": i["VpcAttributes"]["VpcId"], "vswitch_id": i["VpcAttributes"]["VSwitchId"],
         "tags": {t["TagKey"]: t["TagValue"] for t in i["Tags"]["Tag"]}}
        for i in truth
    ]
    assert report["instances"][1]["tags"] == {"env": "compat"}
    assert report["by_id"] == [truth[0]["InstanceId"]]
    check_runs(sandbox, report, truth)
