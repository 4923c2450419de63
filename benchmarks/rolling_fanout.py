"""Rolling runs (max_concurrency, max_errors) of cloud_assistant_command's run engine against the sandbox.

Rows (the command benchmark's, `python -m benchmarks.command_fanout --rolling`):
- one-batch: `sleep 2; echo ok` on 50 instances at once (one RunCommand): the run's own overhead, wall - 2 s;
- window: `sleep 2; echo ok` on 200 instances with max_concurrency 50. Ideal: 4 windows of 2 s plus the one-batch
  run's overhead; goal: wall <= 1.2x the ideal. The most instances running at once is read from the sandbox's own
  records (`sandbox.cli.runs_on_tagged`'s peak, here over the run's invocations) and must be <= 50;
- max_errors: 200 instances where every fifth fails (after 1 s; the others sleep 2 s), max_concurrency 50,
  max_errors 5: how many started, failed and were skipped, and how many runs the sandbox saw start after the
  failure that crossed the threshold ended (must be 0).
Each row reports wall time (first RunCommand to outputs in hand, in one process, as CommandRunner runs it in the
module) and every HTTP request made, retries included. Traffic goes to a sandbox on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.sandbox_fanout import instance_ids, make_client, start_sandbox, stop_sandbox
from benchmarks.verdict import print_verdict
from sandbox import store
from sandbox.cli import peak_running

SECONDS = 2.0
WINDOW = 50
FLEET = 200


def _api(info: dict[str, Any], deadline: float) -> Any:
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import build_api
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import OptionAdapter
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy

    opts = OptionAdapter.from_dict({"region_id": info["region_id"], "endpoint": info["endpoint"],
                                    "access_key_id": info["access_key_id"],
                                    "access_key_secret": info["access_key_secret"],
                                    "validate_certs": False}).connection_options()
    return build_api(opts, RetryPolicy(deadline))


def _sandbox_runs(state_dir: Path, invoke_ids: list[str]) -> list[tuple[str, float, float | None]]:
    """(instance ID, start, end) of every run of these invocations, from the sandbox's database."""
    conn = sqlite3.connect(str(store.db_path(state_dir)))
    try:
        marks = ",".join("?" for _ in invoke_ids)
        rows = conn.execute(f"SELECT instance_id, start_time, finish_time FROM invocation_instances "  # noqa: S608
                            f"WHERE invoke_id IN ({marks}) AND start_time IS NOT NULL", invoke_ids).fetchall()
    finally:
        conn.close()
    return [(str(r[0]), float(r[1]), None if r[2] is None else float(r[2])) for r in rows]


def run_row(info: dict[str, Any], state_dir: Path, label: str, targets: list[str], content: str,
            parameters: dict[str, str] | None = None, window: int | None = None,
            max_errors: int | None = None) -> dict[str, Any]:
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._rolling import Amount, RollingPlan
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import (
        CommandRunner,
        CommandSpec,
    )

    started = time.monotonic()
    deadline = started + 300
    api = _api(info, deadline)
    runner = CommandRunner(api)
    spec = CommandSpec(content=content, parameters=parameters, timeout=60)
    if window is None and max_errors is None:
        result = runner.run(spec, targets, deadline)
        plan = None
    else:
        plan = RollingPlan(targets, max_concurrency=Amount(window) if window else None,
                           max_errors=Amount(max_errors) if max_errors is not None else None)
        result = runner.run_rolling(spec, plan, deadline)
    wall = time.monotonic() - started
    runs = _sandbox_runs(state_dir, result.invoke_ids)
    statuses = [i["invocation_status"] for i in result.instances]
    row: dict[str, Any] = {
        "row": label, "instances": len(targets), "wall_s": round(wall, 2), "api_calls": sum(api.calls.values()),
        "calls_by_action": dict(api.calls), "start_calls": len(result.batches),
        "peak_running": peak_running([(start, end) for _, start, end in runs]),
        "started": len(runs), "succeeded": statuses.count("Success"), "failed": statuses.count("Failed"),
        "skipped": sum(1 for i in result.instances if i["skipped"]),
    }
    if plan is not None and plan.failed and plan.max_errors is not None and len(plan.failed) > plan.max_errors:
        ends = sorted(end for iid, _, end in runs if iid in set(plan.failed) and end is not None)
        crossing = ends[plan.max_errors] if len(ends) > plan.max_errors else None
        row["started_after_threshold"] = (sum(1 for _, start, _ in runs if start > crossing)
                                          if crossing is not None else None)
    return row


def measure(isolation: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rolling-bench-") as tmp:
        from benchmarks.command_fanout import _import_collection

        _import_collection(Path(tmp))
        state = Path(tmp) / "state"
        proc, info = start_sandbox(state, FLEET, isolation)
        try:
            ids = instance_ids(make_client(info), info["region_id"], FLEET)
            sleeper = f"sleep {SECONDS:g}; echo ok"
            for label, kwargs in (
                ("one-batch", dict(targets=ids[:WINDOW], content=sleeper)),
                ("window", dict(targets=ids, content=sleeper, window=WINDOW)),
                ("max_errors", dict(targets=ids, window=WINDOW, max_errors=5,
                                    content='case " {{fail_on}} " in *" {{ACS::InstanceId}} "*) sleep 1; exit 1;; '
                                            'esac; sleep 2; echo ok',
                                    parameters={"fail_on": " ".join(ids[4::5])})),
            ):
                row = run_row(info, state, label, **kwargs)
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            stop_sandbox(proc)
    return rows


def report(rows: list[dict[str, Any]]) -> int:
    by = {r["row"]: r for r in rows}
    overhead = by["one-batch"]["wall_s"] - SECONDS
    ideal = FLEET / WINDOW * SECONDS + overhead
    print()
    print("| row | instances | wall (s) | API calls | start calls | peak running | started | failed | skipped |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['instances']} | {r['wall_s']} | {r['api_calls']} | {r['start_calls']} "
              f"| {r['peak_running']} | {r['started']} | {r['failed']} | {r['skipped']} |")
    window, errors = by["window"], by["max_errors"]
    goals = {
        f"window: wall {window['wall_s']} s <= 1.2x the ideal {ideal:.2f} s (4 x {SECONDS:g} s + one-batch "
        f"overhead {overhead:.2f} s): {window['wall_s'] / ideal:.2f}x": window["wall_s"] <= 1.2 * ideal,
        f"window: never more than {WINDOW} running (sandbox peak {window['peak_running']})":
            window["peak_running"] <= WINDOW and window["succeeded"] == FLEET,
        f"max_errors: nothing started after the threshold was crossed ({errors.get('started_after_threshold')})":
            errors.get("started_after_threshold") == 0,
        f"max_errors: started + skipped = {FLEET} ({errors['started']} + {errors['skipped']})":
            errors["started"] + errors["skipped"] == FLEET,
    }
    return print_verdict(goals)


def main(isolation: str = "process") -> int:
    return report(measure(isolation))
