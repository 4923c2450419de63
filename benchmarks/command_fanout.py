"""cloud_assistant_command's workflow against the vendor sample's polling, on 10, 100 and 1,000 instances.

For each size, `sleep 2; echo ok` runs three times in one process, through the collection's own
CommandRunner (batching, ClientTokens, concurrent batches, one output fetch at the end), changing only
how it waits:
- ours: the collection's adaptive PollSchedule;
- fixed-2s: the vendor sample's fixed 2-second polling;
- backoff: the vendor sample's exponential backoff (1, 2, 4, 8 s ...).
Each row reports wall time (RunCommand to outputs in hand; ansible-playbook start-up is not part of it)
and every HTTP request made (retries included). Traffic goes to a sandbox on 127.0.0.1 only.

Run: `python -m benchmarks.command_fanout [--sizes 10,100,1000] [--seconds 2]`.
With `--task [--task-instances 100] [--trials 3]` it runs benchmarks/task_timing.py instead: the
ansible-playbook task, as users time it, against two whole-process baselines. With `--rolling` it runs
benchmarks/rolling_fanout.py instead: rolling runs (max_concurrency, max_errors) on 200 instances.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.sandbox_fanout import make_client, start_sandbox, stop_sandbox

REPO = Path(__file__).resolve().parent.parent


def _import_collection(tmp: Path) -> None:
    """Make `ansible_collections.alicloud_ops.cloud_assistant` importable from this checkout."""
    root = tmp / "collections"
    (root / "ansible_collections" / "alicloud_ops").mkdir(parents=True)
    os.symlink(REPO, root / "ansible_collections" / "alicloud_ops" / "cloud_assistant")
    sys.path.insert(0, str(root))


class FixedSchedule:
    """The vendor sample's loop: sleep 2 s, then ask."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval

    def next_delay(self, elapsed: float, polls: int) -> float:
        return self.interval


class DoublingSchedule:
    """The vendor sample's exponential backoff: sleep 2**n s before the n-th question (1, 2, 4, 8 ...)."""

    def next_delay(self, elapsed: float, polls: int) -> float:
        return float(2 ** polls)


def run_once(info: dict[str, Any], targets: list[str], seconds: float, schedule: Any) -> dict[str, Any]:
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import build_api
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import OptionAdapter
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import (
        CommandRunner,
        CommandSpec,
    )

    started = time.monotonic()
    deadline = started + 120
    opts = OptionAdapter.from_dict({"region_id": info["region_id"], "endpoint": info["endpoint"],
                                    "access_key_id": info["access_key_id"],
                                    "access_key_secret": info["access_key_secret"],
                                    "validate_certs": False}).connection_options()
    api = build_api(opts, RetryPolicy(deadline))
    runner = CommandRunner(api, schedule=schedule)
    spec = CommandSpec(content=f"sleep {seconds:g}; echo ok", command_type="RunShellScript", timeout=60)
    result = runner.run(spec, targets, deadline)
    wall = time.monotonic() - started
    statuses = [i["invocation_status"] for i in result.instances]
    if statuses.count("Success") != len(targets):
        raise SystemExit(f"run failed: {result.invocation_status}")
    calls = sum(api.calls.values())
    return {"wall_s": round(wall, 2), "ratio_to_command": round(wall / seconds, 2), "api_calls": calls,
            "calls_per_instance": round(calls / len(targets), 3), "calls_by_action": dict(api.calls)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--isolation", default="process", choices=("process", "namespaces", "auto"))
    parser.add_argument("--task", action="store_true",
                        help="instead: time the ansible-playbook task against the whole-process baselines "
                             "(benchmarks/task_timing.py)")
    parser.add_argument("--task-instances", type=int, default=100, help="with --task")
    parser.add_argument("--trials", type=int, default=3, help="with --task")
    parser.add_argument("--rolling", action="store_true",
                        help="instead: rolling runs on 200 instances (benchmarks/rolling_fanout.py)")
    args = parser.parse_args(argv)
    if args.rolling:
        from benchmarks import rolling_fanout

        return rolling_fanout.main(args.isolation)
    if args.task:
        from benchmarks import task_timing

        return task_timing.report(task_timing.measure(args.task_instances, args.trials, args.seconds,
                                                      args.isolation))
    sizes = [int(s) for s in args.sizes.split(",")]

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cmd-bench-") as tmp:
        _import_collection(Path(tmp))
        from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule

        from benchmarks.sandbox_fanout import instance_ids

        proc, info = start_sandbox(Path(tmp) / "state", max(sizes), args.isolation)
        try:
            all_ids = instance_ids(make_client(info), info["region_id"], max(sizes))
            for size in sizes:
                for label, schedule in (("ours", PollSchedule()), ("fixed-2s", FixedSchedule()),
                                        ("backoff", DoublingSchedule())):
                    row = {"instances": size, "waiter": label,
                           **run_once(info, all_ids[:size], args.seconds, schedule)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            stop_sandbox(proc)

    print()
    print(f"| instances | waiter | wall (s) | wall / {args.seconds:g} s | API calls | calls per instance |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['instances']} | {r['waiter']} | {r['wall_s']} | {r['ratio_to_command']}x | {r['api_calls']} "
              f"| {r['calls_per_instance']} |")
    ours = {r["instances"]: r for r in rows if r["waiter"] == "ours"}
    checks = []
    if 100 in ours:
        checks.append(ours[100]["ratio_to_command"] <= 1.25 and ours[100]["api_calls"] <= 20)
    if 1000 in ours:
        checks.append(ours[1000]["calls_per_instance"] <= 0.2)
    print()
    print("targets met" if all(checks) else "targets NOT met")
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
