"""Sandbox capacity: one sandbox with N instances, RunCommand `sleep S; echo ok` to 100 of them.

Measures, in one run:
- start-up time of a sandbox with N instances;
- for each trial, the time from sending RunCommand to the first DescribeInvocations that shows all 100
  instances Success, and its overhead over the command's own run time S;
- the same 100 scripts started directly as local subprocesses (the floor the sandbox cannot beat), so the
  figure that matters is a ratio measured on this machine at this moment.

Run: `python -m benchmarks.sandbox_fanout [--instances 1000] [--targets 100] [--trials 3]`.
Traffic goes to the sandbox on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.1


def start_sandbox(state_dir: Path, instances: int, isolation: str,
                  extra_args: tuple[str, ...] = ()) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """`python -m sandbox serve` from the repository root; `extra_args` go to `serve` (for example `--regions`)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--state-dir", str(state_dir), "--instances", str(instances),
         "--isolation", isolation, *extra_args],
        stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit("sandbox did not start (see its state dir for server.log/agent.log)")
    return proc, json.loads(line)


def stop_sandbox(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def make_client(info: dict[str, Any]) -> Any:
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi import models as open_api_models

    host = info["endpoint"].split("://", 1)[1]
    return Client(open_api_models.Config(
        access_key_id=info["access_key_id"], access_key_secret=info["access_key_secret"],
        region_id=info["region_id"], endpoint=host, protocol="http"))


def instance_ids(client: Any, region_id: str, count: int) -> list[str]:
    from alibabacloud_ecs20140526 import models

    ids: list[str] = []
    token = None
    for _ in range(1000):
        body = client.describe_instances(models.DescribeInstancesRequest(
            region_id=region_id, max_results=100, next_token=token)).body
        ids.extend(i.instance_id for i in body.instances.instance)
        token = body.next_token
        if not token or len(ids) >= count:
            break
    return ids[:count]


def one_trial(client: Any, region_id: str, targets: list[str], seconds: float, limit: float) -> dict[str, float]:
    from alibabacloud_ecs20140526 import models

    started = time.monotonic()
    invoke_id = client.run_command(models.RunCommandRequest(
        region_id=region_id, type="RunShellScript", command_content=f"sleep {seconds:g}; echo ok",
        instance_id=targets, timeout=60)).body.invoke_id
    dispatched = time.monotonic() - started
    polls = 0
    deadline = started + limit
    while time.monotonic() < deadline:
        polls += 1
        inv = client.describe_invocations(models.DescribeInvocationsRequest(
            region_id=region_id, invoke_id=invoke_id)).body.invocations.invocation[0]
        statuses = [i.invocation_status for i in inv.invoke_instances.invoke_instance]
        if inv.invocation_status not in ("Pending", "Running"):
            if statuses.count("Success") != len(targets):
                raise SystemExit(f"trial failed: {inv.invocation_status} {statuses}")
            elapsed = time.monotonic() - started
            return {"dispatch_s": dispatched, "all_success_s": elapsed, "overhead_s": elapsed - seconds,
                    "polls": polls}
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"trial did not finish within {limit} s")


async def _direct(count: int, seconds: float) -> float:
    started = time.monotonic()
    procs = [await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", f"sleep {seconds:g}; echo ok", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT) for _ in range(count)]
    await asyncio.gather(*(p.communicate() for p in procs))
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--isolation", default="process", choices=("process", "namespaces", "auto"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sbx-bench-") as tmp:
        t0 = time.monotonic()
        proc, info = start_sandbox(Path(tmp) / "state", args.instances, args.isolation)
        startup = time.monotonic() - t0
        try:
            client = make_client(info)
            targets = instance_ids(client, info["region_id"], args.targets)
            if len(targets) < args.targets:
                raise SystemExit(f"only {len(targets)} instances available")
            trials = [one_trial(client, info["region_id"], targets, args.seconds, limit=args.seconds + 30)
                      for _ in range(args.trials)]
            direct = [asyncio.run(_direct(args.targets, args.seconds)) for _ in range(args.trials)]
        finally:
            stop_sandbox(proc)

    sandbox_median = statistics.median(t["all_success_s"] for t in trials)
    direct_median = statistics.median(direct)
    report = {
        "instances": args.instances,
        "targets": args.targets,
        "isolation": info["isolation"],
        "command_seconds": args.seconds,
        "startup_s": round(startup, 2),
        "trials": [{k: round(v, 3) for k, v in t.items()} for t in trials],
        "direct_subprocess_s": [round(d, 3) for d in direct],
        "median_all_success_s": round(sandbox_median, 3),
        "median_overhead_over_command_s": round(sandbox_median - args.seconds, 3),
        "ratio_sandbox_vs_direct": round(sandbox_median / direct_median, 3),
        "target_met": max(t["all_success_s"] for t in trials) <= args.seconds + 2.0,
    }
    print(json.dumps(report, indent=2))
    return 0 if report["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
