"""cloud_assistant_file against the naive way of sending a file in parts, on 20 sandbox instances.

For each size (1 KB, 1 MB, 5 MB of random bytes, so nothing compresses), in one run on one sandbox:
- ours: the module's own resource class (compare command, SendFile parts sent concurrently and awaited together
  with tag-filtered DescribeSendFileResults, one assembly command), called in-process as Ansible would call it;
- re-send: the same task again, unchanged (must cost one RunCommand and no SendFile);
- naive: the same parts, one SendFile at a time, each awaited (DescribeSendFileResults by InvokeId, the same
  poll schedule) before the next, then the same assembly command.
Each row reports wall time (median of ``--trials`` runs, 3 by default, and each run's), SendFile calls against
the fewest the 24 KB-per-call limit allows, and every HTTP request made. At the end one command reads the
SHA-256 of every file on every instance; a file is intact only when every instance printed the right one.

Run: `python -m benchmarks.file_send [--instances 20] [--sizes 1024,1048576,5242880] [--isolation namespaces]
[--latency-ms 0] [--trials 3]`. `--latency-ms` makes the sandbox answer every request that much later (`ctl faults
--latency-ms`), as a real endpoint does: on loopback the sandbox answers in about a millisecond and writes all
instances' files on this machine's two cores, so the naive way pays little for waiting and concurrency buys
only what the CPU has to spare.
Traffic goes to a sandbox on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.command_fanout import _import_collection
from benchmarks.sandbox_fanout import instance_ids, make_client, start_sandbox, stop_sandbox

DEST_DIR = "/srv/bench"
TIMEOUT = 900


class StubModule:
    """What CloudAssistantFile needs of an AnsibleModule: params, check_mode, _diff, warn, started, api()."""

    def __init__(self, params: dict[str, Any], api: Any) -> None:
        self.params = params
        self.check_mode = False
        self._diff = False
        self.started = time.monotonic()
        self._shared_api = api

    def warn(self, message: str) -> None:
        print("warning:", message, file=sys.stderr)

    def api(self, deadline: float) -> Any:
        return self._shared_api.with_deadline(deadline)


def new_api(info: dict[str, Any]) -> Any:
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import build_api
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import OptionAdapter
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy

    opts = OptionAdapter.from_dict({"region_id": info["region_id"], "endpoint": info["endpoint"],
                                    "access_key_id": info["access_key_id"],
                                    "access_key_secret": info["access_key_secret"],
                                    "validate_certs": False}).connection_options()
    return build_api(opts, RetryPolicy(time.monotonic() + TIMEOUT))


def params(src: str, dest: str, targets: list[str]) -> dict[str, Any]:
    return {"src": src, "content": None, "dest": dest, "mode": "0644", "owner": None, "group": None,
            "overwrite": True, "instance_ids": targets, "instance_tags": None, "wait_timeout": TIMEOUT}


def ours(info: dict[str, Any], src: str, dest: str, targets: list[str]) -> dict[str, Any]:
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules.cloud_assistant_file import (
        CloudAssistantFile,
    )

    api = new_api(info)
    started = time.monotonic()
    result = CloudAssistantFile(StubModule(params(src, dest, targets), api)).run()
    wall = time.monotonic() - started
    if result.get("failed"):
        raise SystemExit(f"cloud_assistant_file failed: {result['msg']}")
    return {"wall_s": round(wall, 2), "changed": result["changed"], "calls": dict(api.calls),
            "send_calls": api.calls.get("SendFile", 0), "api_calls": api.total_calls}


def naive(info: dict[str, Any], data: bytes, dest: str, targets: list[str]) -> dict[str, Any]:
    """The same parts, one SendFile at a time, each awaited before the next; then the same assembly."""
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import (
        invocations_of,
        invoke_instances,
        make_request,
    )
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._file_parts import (
        finalize_script,
        part_name,
        plan_payload,
        split_dest,
        staging,
    )
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._files import SendJob
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import poll
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import (
        CommandRunner,
        CommandSpec,
    )
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import all_terminal

    api = new_api(info)
    started = time.monotonic()
    deadline = started + TIMEOUT
    payload = plan_payload(data)
    transfer = f"naive{int(started * 1000)}"
    if payload.direct:
        directory, name = split_dest(dest)
        jobs = [SendJob(name, directory, payload.data, targets, mode="0644")]
    else:
        jobs = [SendJob(part_name(n), staging(dest, transfer), part, targets, mode="0600")
                for n, part in enumerate(payload.parts)]
    for n, job in enumerate(jobs):
        invoke_id = api.call("SendFile", job.request(f"naive-{transfer}-{n}", transfer)).invoke_id

        def fetch(invoke_id: str = invoke_id) -> Any:
            body = api.call("DescribeSendFileResults",
                            make_request("DescribeSendFileResultsRequest", invoke_id=invoke_id))
            return invocations_of(body)

        outcome = poll(fetch, lambda found: bool(found) and all_terminal(
            i.invocation_status for i in invoke_instances(found[0])), deadline)
        if not outcome.done:
            raise SystemExit(f"naive: part {n} did not finish")
    if not payload.direct:
        script = finalize_script(dest, transfer, payload.part_count, payload.compressed, payload.checksum, "0644")
        run = CommandRunner(api).run(CommandSpec(content=script, timeout=600), targets, deadline)
        if run.invocation_status != "Success":
            raise SystemExit(f"naive: assembly {run.invocation_status}")
    wall = time.monotonic() - started
    return {"wall_s": round(wall, 2), "changed": True, "calls": dict(api.calls),
            "send_calls": api.calls.get("SendFile", 0), "api_calls": api.total_calls}


def checksums(info: dict[str, Any], paths: list[str], targets: list[str]) -> dict[str, list[str]]:
    """{path: the SHA-256 each instance printed for it, one entry per line} ('missing' where a file is absent);
    an instance that printed nothing adds nothing, so a path is intact only with one right entry per instance."""
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import (
        CommandRunner,
        CommandSpec,
    )

    script = (f"for f in {' '.join(paths)}; do "
              'if [ -f "$f" ]; then sha256sum "$f"; else echo "missing $f"; fi; done')
    run = CommandRunner(new_api(info)).run(CommandSpec(content=script), targets, time.monotonic() + 300)
    seen: dict[str, list[str]] = {p: [] for p in paths}
    for entry in run.instances:
        for line in (entry["output"] or "").splitlines():
            first, _, path = line.partition(" ")
            seen.setdefault(path.strip(), []).append(first)
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--sizes", default="1024,1048576,5242880")
    parser.add_argument("--isolation", default="namespaces", choices=("process", "namespaces", "auto"),
                        help="namespaces (the default) gives every instance its own file system; with process "
                             "isolation the instances share one and the same dest would collide")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay every sandbox answer by this much")
    parser.add_argument("--trials", type=int, default=3, help="runs of every size and way (the table shows the "
                        "median wall time and every trial's)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="file-bench-") as tmp:
        _import_collection(Path(tmp))
        from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._file_parts import (
            min_send_calls,
        )

        proc, info = start_sandbox(Path(tmp) / "state", args.instances, args.isolation)
        try:
            targets = instance_ids(make_client(info), info["region_id"], args.instances)
            if args.latency_ms:
                subprocess.run([sys.executable, "-m", "sandbox", "ctl", "--state-dir", str(Path(tmp) / "state"),
                                "faults", "--latency-ms", str(args.latency_ms)], check=True, timeout=60)
            expected: dict[str, str] = {}
            for size in sizes:
                data = os.urandom(size)
                src = Path(tmp) / f"{size}.bin"
                src.write_bytes(data)
                digest = hashlib.sha256(data).hexdigest()
                least = min_send_calls(size, len(targets))
                for trial in range(args.trials):
                    for way in ("ours", "re-send", "naive"):
                        dest = f"{DEST_DIR}/{size}-{'naive' if way == 'naive' else 'ours'}-{trial}.bin"
                        expected[dest] = digest
                        got = (naive(info, data, dest, targets) if way == "naive"
                               else ours(info, str(src), dest, targets))
                        row = {"size": size, "way": way, "trial": trial, "min_send_calls": least, **got}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
            seen = checksums(info, sorted(expected), targets)
        finally:
            stop_sandbox(proc)

    print()
    print(f"{len(targets)} instances, isolation {args.isolation}, sandbox answers delayed by {args.latency_ms} ms, "
          f"{args.trials} trial(s); calls are those of the first trial")
    print("| size | way | wall (s), median | wall (s), each trial | SendFile calls | fewest possible | RunCommand "
          "| DescribeSendFileResults | all API calls | naive / ours (medians) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    trials: dict[tuple[int, str], list[float]] = {}
    for r in rows:
        trials.setdefault((r["size"], r["way"]), []).append(r["wall_s"])
    walls = {key: statistics.median(values) for key, values in trials.items()}
    for r in rows:
        if r["trial"]:
            continue
        key = (r["size"], r["way"])
        speed = ""
        if r["way"] == "ours":
            speed = f"{walls[(r['size'], 'naive')] / max(walls[key], 0.001):.1f}x"
        print(f"| {r['size']:,} | {r['way']} | {walls[key]:.2f} | {', '.join(str(w) for w in trials[key])} "
              f"| {r['send_calls']} | {r['min_send_calls']} "
              f"| {r['calls'].get('RunCommand', 0)} | {r['calls'].get('DescribeSendFileResults', 0)} "
              f"| {r['api_calls']} | {speed} |")
    intact = {path: seen.get(path) == [digest] * len(targets) for path, digest in expected.items()}
    print()
    for path, ok in sorted(intact.items()):
        print(f"{path}: {'intact on all' if ok else 'NOT intact: ' + str(seen.get(path))}")
    checks = {"every file intact on every instance": all(intact.values())}
    for r in rows:
        if r["way"] == "ours":
            checks[f"{r['size']:,} B: SendFile calls <= 1.1x the fewest"] = r["send_calls"] <= 1.1 * r["min_send_calls"]
            if r["min_send_calls"] > 1:
                checks[f"{r['size']:,} B: at least 4x faster than naive (medians)"] = (
                    walls[(r["size"], "naive")] >= 4 * walls[(r["size"], "ours")])
        if r["way"] == "re-send":
            checks[f"{r['size']:,} B: unchanged re-send = 1 RunCommand, 0 SendFile"] = (
                not r["changed"] and r["calls"].get("RunCommand", 0) == 1 and r["send_calls"] == 0)
    print()
    for name, ok in checks.items():
        print(f"{'met' if ok else 'NOT met'}: {name}")
    print()
    print("targets met" if all(checks.values()) else "targets NOT met")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
