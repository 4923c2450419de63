"""The fastest honest client: RunCommand, DescribeInvocations every 50 ms, one DescribeInvocations with output.

A standalone script, run as its own process, so its time includes interpreter start-up and the SDK import:

    python benchmarks/baselines/minimal_client.py [--command 'sleep 2; echo ok'] [--interval 0.05] ID [ID ...]

Connection settings come from the variables `python -m sandbox env` exports (ALIBABA_CLOUD_ACCESS_KEY_ID,
ALIBABA_CLOUD_ACCESS_KEY_SECRET, ALIBABA_CLOUD_REGION_ID, ALIBABA_CLOUD_ECS_ENDPOINT), or the options below.
Work done: one RunCommand per 100 instances, then, every `--interval` seconds, one DescribeInvocations per
unfinished invocation until its overall status is final (Pending/Scheduled/Running/Stopping come first in the
status precedence, so a final overall status means every instance is final), then one DescribeInvocations with
IncludeOutput per invocation. No retries, no ClientToken, no validation beyond what the API does.
Prints one JSON line; exits 0 when every instance reached Success with the expected output.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time

from alibabacloud_ecs20140526 import models
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as open_api_models

NOT_FINAL = ("Pending", "Scheduled", "Running", "Stopping")
BATCH = 100


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("instance_ids", nargs="+")
    parser.add_argument("--command", default="sleep 2; echo ok")
    parser.add_argument("--expect", default="ok\n", help="expected output of every instance")
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--limit", type=float, default=120.0, help="give up after this many seconds")
    parser.add_argument("--endpoint", default=os.environ.get("ALIBABA_CLOUD_ECS_ENDPOINT"))
    parser.add_argument("--region-id", default=os.environ.get("ALIBABA_CLOUD_REGION_ID"))
    parser.add_argument("--access-key-id", default=os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"))
    parser.add_argument("--access-key-secret", default=os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET"))
    args = parser.parse_args(argv)

    protocol, _, host = (args.endpoint or "").rpartition("://")
    client = Client(open_api_models.Config(
        access_key_id=args.access_key_id, access_key_secret=args.access_key_secret, region_id=args.region_id,
        endpoint=host or None, protocol=protocol or "https"))
    calls = 0

    invoke_ids = []
    for i in range(0, len(args.instance_ids), BATCH):
        invoke_ids.append(client.run_command(models.RunCommandRequest(
            region_id=args.region_id, type="RunShellScript", command_content=args.command,
            instance_id=args.instance_ids[i:i + BATCH], timeout=60)).body.invoke_id)
        calls += 1

    polls = 0
    pending = list(invoke_ids)
    deadline = started + args.limit
    while pending:
        if time.monotonic() > deadline:
            print(json.dumps({"client": "minimal", "error": "timed out", "api_calls": calls}))
            return 1
        time.sleep(args.interval)
        polls += 1
        still = []
        for invoke_id in pending:
            inv = client.describe_invocations(models.DescribeInvocationsRequest(
                region_id=args.region_id, invoke_id=invoke_id)).body.invocations.invocation[0]
            calls += 1
            if inv.invocation_status in NOT_FINAL:
                still.append(invoke_id)
        pending = still

    statuses: dict[str, int] = {}
    outputs_ok = 0
    for invoke_id in invoke_ids:
        inv = client.describe_invocations(models.DescribeInvocationsRequest(
            region_id=args.region_id, invoke_id=invoke_id, include_output=True)).body.invocations.invocation[0]
        calls += 1
        for item in inv.invoke_instances.invoke_instance:
            statuses[item.invocation_status] = statuses.get(item.invocation_status, 0) + 1
            outputs_ok += base64.b64decode(item.output or "").decode("utf-8", "replace") == args.expect

    ok = statuses.get("Success", 0) == len(args.instance_ids) and outputs_ok == len(args.instance_ids)
    print(json.dumps({"client": "minimal", "instances": len(args.instance_ids), "statuses": statuses,
                      "outputs_ok": outputs_ok, "polls": polls, "api_calls": calls,
                      "in_process_s": round(time.monotonic() - started, 3)}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
