"""The same job as minimal_client.py, written the way the vendor's SDK samples do it (/work/shared/seeds/).

A standalone script, run as its own process:

    python benchmarks/baselines/vendor_sample.py [--command 'sleep 2; echo ok'] ID [ID ...]

What it takes from the samples:
- the Python sample's structure: logging at INFO, `get_ecs_client`, `execute_command` (command type and
  instance list checked first), `query_invocations` reading `to_map()['body']`;
- the Java sample's wait: sleep 2 s, then DescribeInvocations, while the status is Pending, Running or
  Stopping, at most `timeout / 2` times (the Python sample's 1, 2, 4 ... s backoff and its check for the
  legacy `Finished` status, which InvocationStatus never takes, are not used);
- the outputs, as the samples get them, from DescribeInvocationResults, here by InvokeId and 50 results a page
  (the samples ask per instance, which would be one call per instance; this is the cheaper reading).
The only additions are the endpoint and protocol (the samples resolve the endpoint from the region), one
RunCommand per 100 instances (the API's limit) and a JSON summary line at the end.
Connection settings come from the variables `python -m sandbox env` exports, as in the samples.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import time

from alibabacloud_ecs20140526 import models as ecs_20140526_models
from alibabacloud_ecs20140526.client import Client as Ecs20140526Client
from alibabacloud_tea_openapi import models as open_api_models

logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(levelname)s - %(message)s")

ACCESS_KEY_ID = os.getenv("ALIBABA_CLOUD_ACCESS_KEY_ID")
ACCESS_KEY_SECRET = os.getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
ENDPOINT = os.getenv("ALIBABA_CLOUD_ECS_ENDPOINT", "")
if not ACCESS_KEY_ID or not ACCESS_KEY_SECRET:
    raise OSError(
        "Missing required environment variables: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET")

API_CALLS = 0


def get_ecs_client(region_id: str) -> Ecs20140526Client:
    protocol, _, host = ENDPOINT.rpartition("://")
    config = open_api_models.Config(
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=ACCESS_KEY_SECRET,
        region_id=region_id,
        endpoint=host or None,
        protocol=protocol or "https",
    )
    return Ecs20140526Client(config)


def execute_command(client: Ecs20140526Client, command_content: str, region_id: str, instance_ids: list[str],
                    command_timeout: int, command_type: str) -> str:
    global API_CALLS
    if not instance_ids:
        raise ValueError("Instance IDs list cannot be empty.")
    valid_command_types = ["RunShellScript", "RunBatScript", "RunPowerShellScript"]
    if command_type not in valid_command_types:
        raise ValueError(f"Invalid command type: {command_type}. Valid types are {valid_command_types}.")
    request = ecs_20140526_models.RunCommandRequest()
    request.region_id = region_id
    request.type = command_type
    request.command_content = command_content
    request.instance_id = instance_ids
    request.timeout = command_timeout
    try:
        API_CALLS += 1
        run_command_response = client.run_command(request)
        return str(run_command_response.to_map()["body"]["InvokeId"])
    except Exception as e:
        logging.error(f"Failed to execute command: {e}")
        raise


def query_invocations(client: Ecs20140526Client, region_id: str, invoke_id: str) -> dict:
    global API_CALLS
    request = ecs_20140526_models.DescribeInvocationsRequest()
    request.region_id = region_id
    request.invoke_id = invoke_id
    try:
        API_CALLS += 1
        describe_invocations_response = client.describe_invocations(request)
        return dict(describe_invocations_response.to_map()["body"])
    except Exception as e:
        logging.error(f"Failed to query invocations: {e}")
        raise


def wait_for_command_completion(client: Ecs20140526Client, region_id: str, invoke_id: str, max_retries: int,
                                delay: float = 2) -> dict:
    retry_count = 0
    while retry_count < max_retries:
        time.sleep(delay)
        results = query_invocations(client, region_id, invoke_id)
        invocation_list = results.get("Invocations", {}).get("Invocation", [])
        if not invocation_list:
            raise RuntimeError("The command execution result was not found.")
        invocation_status = invocation_list[0].get("InvocationStatus")
        logging.info(f"Current invocation status: {invocation_status}")
        if invocation_status in ("Pending", "Running", "Stopping"):
            retry_count += 1
            continue
        return dict(invocation_list[0])
    raise TimeoutError("Max retries exceeded for command execution result.")


def query_invocation_results(client: Ecs20140526Client, region_id: str, invoke_id: str) -> list[dict]:
    global API_CALLS
    results: list[dict] = []
    next_token = None
    while True:
        request = ecs_20140526_models.DescribeInvocationResultsRequest()
        request.region_id = region_id
        request.invoke_id = invoke_id
        request.max_results = 50
        request.next_token = next_token
        try:
            API_CALLS += 1
            body = client.describe_invocation_results(request).to_map()["body"]
        except Exception as e:
            logging.error(f"Failed to query invocation results: {e}")
            raise
        results.extend(body["Invocation"]["InvocationResults"]["InvocationResult"])
        next_token = body["Invocation"].get("NextToken")
        if not next_token:
            return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("instance_ids", nargs="+")
    parser.add_argument("--command", default="sleep 2; echo ok")
    parser.add_argument("--expect", default="ok\n", help="expected output of every instance")
    args = parser.parse_args(argv)

    region_id = os.getenv("ALIBABA_CLOUD_REGION_ID", "cn-hangzhou")
    command_timeout = 60
    command_type = "RunShellScript"
    client = get_ecs_client(region_id)
    invoke_ids = [execute_command(client, args.command, region_id, args.instance_ids[i:i + 100], command_timeout,
                                  command_type)
                  for i in range(0, len(args.instance_ids), 100)]
    max_retries = max(int(command_timeout // 2), 1)
    statuses: dict[str, int] = {}
    outputs_ok = 0
    for invoke_id in invoke_ids:
        invocation = wait_for_command_completion(client, region_id, invoke_id, max_retries)
        logging.info(f"Invocation {invoke_id}: {invocation.get('InvocationStatus')}")
        for item in query_invocation_results(client, region_id, invoke_id):
            status = item.get("InvocationStatus", "")
            statuses[status] = statuses.get(status, 0) + 1
            output = base64.b64decode(item.get("Output") or "").decode("utf-8", "replace")
            outputs_ok += output == args.expect
            logging.info(f"{item.get('InstanceId')}: {status} {output!r}")

    ok = statuses.get("Success", 0) == len(args.instance_ids) and outputs_ok == len(args.instance_ids)
    print(json.dumps({"client": "vendor", "instances": len(args.instance_ids), "statuses": statuses,
                      "outputs_ok": outputs_ok, "api_calls": API_CALLS}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
