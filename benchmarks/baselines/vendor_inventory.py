"""The listing of the vendor's inventory plugin (alibaba.alicloud's `alicloud_ecs`), reproduced with the same SDK
as this collection (shared/reference/ansible-anchors.md §1.4, §1.5).

A standalone script, run as its own process:

    python benchmarks/baselines/vendor_inventory.py REGION [REGION ...]

What it takes from the vendor plugin and footmark, its SDK wrapper:
- `describe_instances` pages with PageNumber and a page size of 10 (footmark's default), until a page is short;
- the regions are walked one after another, and any failure in one region ends the whole listing;
- every attribute of every instance is kept (the plugin copies them all into hostvars), keyed by instance ID.
The only differences are the SDK (alibabacloud_ecs20140526 instead of footmark over aliyun-python-sdk-core), the
endpoint and protocol (the vendor resolves the endpoint from the region) and a JSON summary line at the end.
It does not build an Ansible inventory: what it measures is the vendor's listing alone.
Connection settings come from the variables `python -m sandbox env` exports.
"""

from __future__ import annotations

import json
import os
import sys
import time

from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as open_api_models

PAGE_SIZE = 10  # footmark's describe_instances default
MAX_PAGES = 100_000


def client_for(region_id: str) -> Client:
    protocol, _, host = os.environ.get("ALIBABA_CLOUD_ECS_ENDPOINT", "").rpartition("://")
    return Client(open_api_models.Config(
        access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
        access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        region_id=region_id, endpoint=host or None, protocol=protocol or "https"))


def list_region(region_id: str) -> tuple[list[dict[str, object]], int]:
    client = client_for(region_id)
    found: list[dict[str, object]] = []
    calls = 0
    for page in range(1, MAX_PAGES + 1):
        body = client.describe_instances(ecs_models.DescribeInstancesRequest(
            region_id=region_id, page_number=page, page_size=PAGE_SIZE)).body
        calls += 1
        items = body.instances.instance if body.instances else []
        found.extend(item.to_map() for item in items)
        if len(items) < PAGE_SIZE:
            break
    return found, calls


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: vendor_inventory.py REGION [REGION ...]", file=sys.stderr)
        return 2
    started = time.monotonic()
    hosts: dict[str, dict[str, object]] = {}
    calls = 0
    for region_id in argv:  # one after another, as the vendor plugin does
        instances, made = list_region(region_id)
        calls += made
        for item in instances:
            hosts[str(item["InstanceId"])] = item
    print(json.dumps({"hosts": len(hosts), "api_calls": calls, "seconds": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
