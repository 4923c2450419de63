"""Drive a running sandbox with one third-party client and print, as one JSON object, what that client reports.

Runs in the compatibility virtualenv (sandbox/compat/requirements.txt), not the project's: it imports nothing of
the sandbox package. Usage:

    python sandbox/compat/clients.py legacy-sdk|footmark DIR/sandbox.json

Each client lists the instances, runs a command that succeeds and one that exits 3 on the first instance, and
reads their results, each through its own API and its own way of reading answers. test_compat.py compares the
report with what the sandbox holds. Loops are bounded (POLL_TIMEOUT).
"""

from __future__ import annotations

import base64
import json
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

POLL_TIMEOUT = 30.0
POLL_INTERVAL = 0.3
OK_SCRIPT = "echo compat-ok; hostname"
FAIL_SCRIPT = "echo compat-fail; exit 3"
ENDED = frozenset({"Success", "Failed", "Invalid", "Aborted", "Error", "Timeout", "Cancelled", "Terminated"})


def _poll(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        result = read()
        if result["status"] in ENDED:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"no final status within {POLL_TIMEOUT:.0f} s: {result}")
        time.sleep(POLL_INTERVAL)


# ------------------------------------------------------------------ legacy core SDK + legacy ECS request classes
def legacy_sdk(info: dict[str, Any]) -> dict[str, Any]:
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest
    from aliyunsdkecs.request.v20140526.DescribeInvocationResultsRequest import DescribeInvocationResultsRequest
    from aliyunsdkecs.request.v20140526.DescribeInvocationsRequest import DescribeInvocationsRequest
    from aliyunsdkecs.request.v20140526.RunCommandRequest import RunCommandRequest

    region = info["region_id"]
    client = AcsClient(info["access_key_id"], info["access_key_secret"], region, timeout=20, connect_timeout=5)
    client.add_endpoint(region, "Ecs", info["endpoint"].split("://", 1)[1])

    def call(request: Any) -> Any:
        return json.loads(client.do_action_with_exception(request))  # which asks for JSON itself

    listing = DescribeInstancesRequest()
    listing.set_PageSize(100)
    instances = call(listing)["Instances"]["Instance"]
    # the same listing as XML, as older code reads it: do_action() keeps the request's Format (reference §1.5)
    as_xml = DescribeInstancesRequest()
    as_xml.set_accept_format("xml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        xml_root = ET.fromstring(client.do_action(as_xml))  # noqa: S314 - our own loopback sandbox
    xml_ids = [e.text for e in xml_root.findall("./Instances/Instance/InstanceId")]
    first = instances[0]["InstanceId"]

    def run(script: str) -> dict[str, Any]:
        request = RunCommandRequest()
        request.set_Type("RunShellScript")
        request.set_CommandContent(script)
        request.set_InstanceIds([first])
        invoke_id = call(request)["InvokeId"]

        def read() -> dict[str, Any]:
            results = DescribeInvocationResultsRequest()
            results.set_InvokeId(invoke_id)
            (row,) = call(results)["Invocation"]["InvocationResults"]["InvocationResult"]
            return {"status": row["InvocationStatus"], "exit_code": row.get("ExitCode"),
                    "record_status": row["InvokeRecordStatus"],
                    "output": base64.b64decode(row["Output"]).decode()}  # Base64 by default (reference §2.5)

        result = _poll(read)
        overall = DescribeInvocationsRequest()
        overall.set_InvokeId(invoke_id)
        (inv,) = call(overall)["Invocations"]["Invocation"]
        return {"invoke_id": invoke_id, **result, "invocation_status": inv["InvocationStatus"],
                "invoke_status": inv["InvokeStatus"]}

    return {
        "instances": [{"id": i["InstanceId"], "name": i["InstanceName"], "status": i["Status"],
                       "private_ip": i["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0],
                       "tags": {t["TagKey"]: t["TagValue"] for t in i["Tags"]["Tag"]}} for i in instances],
        "xml_instance_ids": xml_ids,
        "target": first,
        "ok": run(OK_SCRIPT),
        "fail": run(FAIL_SCRIPT),
    }


# --------------------------------------------------------------------------------------------------- footmark
def footmark_client(info: dict[str, Any]) -> dict[str, Any]:
    import footmark.ecs
    from aliyunsdkcore.profile import region_provider
    from footmark.ecs.ecsobject import TaggedECSObject

    region = info["region_id"]
    # footmark builds its AcsClient itself: the legacy SDK's process-wide endpoint table is how it is redirected
    region_provider.add_endpoint("Ecs", region, info["endpoint"].split("://", 1)[1])
    conn = footmark.ecs.connect_to_region(region, acs_access_key_id=info["access_key_id"],
                                          acs_secret_access_key=info["access_key_secret"])
    instances = conn.describe_instances()
    first = instances[0].id
    by_id = [i.id for i in conn.describe_instances(instance_ids=[first])]

    def request(**params: Any) -> Any:
        """footmark's generic path (the one its own methods use): request class setters from the parameter
        names, its YAML-based parser, snake_case attributes on the object."""
        return conn.get_object_new(conn.build_request_params({"RegionId": region, **params}), TaggedECSObject)

    def run(script: str) -> dict[str, Any]:
        invoke_id = request(Action="RunCommand", Type="RunShellScript", CommandContent=script,
                            InstanceIds=[first]).invoke_id

        def read() -> dict[str, Any]:
            got = request(Action="DescribeInvocationResults", InvokeId=invoke_id, ContentEncoding="PlainText")
            (row,) = got.invocation["invocation_results"]["invocation_result"]
            return {"status": row["invocation_status"], "exit_code": row.get("exit_code"),
                    "record_status": row["invoke_record_status"], "output": row["output"]}

        result = _poll(read)
        (inv,) = request(Action="DescribeInvocations", InvokeId=invoke_id).invocations["invocation"]
        return {"invoke_id": invoke_id, **result, "invocation_status": inv["invocation_status"],
                "invoke_status": inv["invoke_status"]}

    return {
        # footmark's Instance properties: state lower-cased, the first private IP, the EIP as public IP, tags as dict
        "instances": [{"id": i.id, "name": i.name, "status": i.state, "private_ip": i.private_ip_address,
                       "public_ip": i.public_ip_address, "vpc_id": i.vpc_id, "vswitch_id": i.vswitch_id,
                       "tags": i.tags} for i in instances],
        "by_id": by_id,
        "target": first,
        "ok": run(OK_SCRIPT),
        "fail": run(FAIL_SCRIPT),
    }


CLIENTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "legacy-sdk": legacy_sdk,
    "footmark": footmark_client,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in CLIENTS:
        print(f"usage: clients.py {'|'.join(CLIENTS)} DIR/sandbox.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        info = json.load(fh)
    print(json.dumps(CLIENTS[argv[0]](info)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
