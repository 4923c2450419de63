"""Listing a large fleet: the inventory plugin against the vendor's approach and Ansible's own cost.

One sandbox (process isolation: its instances are rows, no process runs for them) with N instances (default
10,000) spread over two regions, Linux and Windows, with tags. Every row is a separate process, timed by this
harness from just before it starts to its exit:
- plugin, uncached: `ansible-inventory --list` of an `alicloud_ops.cloud_assistant.ecs` configuration (both
  regions, default groups, no cache);
- plugin, cached: the same with `cache: true` (ansible.builtin.jsonfile), filled in the warm-up round;
- static YAML: `ansible-inventory --list` of a static YAML inventory with the same hosts, hostvars and groups
  (written from the plugin's own output in the warm-up round): Ansible's own cost, which no plugin avoids;
- vendor approach: benchmarks/baselines/vendor_inventory.py (PageNumber paging, 10 instances a page, the regions
  one after another, with the same SDK), which only lists.
API calls are counted at the sandbox (its `api_calls` table, as `python -m sandbox ctl stats` prints it) before
and after each process; every row must report all N hosts. The rows are interleaved after one warm-up round
(discarded), and medians reported.

Goals (issue 8, as gated here): the uncached plugin makes at most 110 DescribeInstances calls; its listing cost,
uncached minus cached (the same process without the API calls), is at most 0.4x the vendor approach's listing
time; cached, it makes no API call. The exit status is 1 when one of these is not met.
The issue's goals against the static YAML inventory are reported but not gated: on ansible-core 2.19 the static
inventory is slower than the plugin itself (parsing YAML with origin tracking), so "uncached - static" is
negative and "cached <= 1.2x static" holds whatever the plugin does; they could not fail.

Run: `python -m benchmarks.inventory_listing [--instances 10000] [--trials 3] [--regions cn-hangzhou,cn-beijing]`
Traffic goes to the sandbox on 127.0.0.1 only; every process has ALIBABA_CLOUD_ECS_METADATA_DISABLED=true.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.sandbox_fanout import start_sandbox, stop_sandbox
from benchmarks.task_timing import _counters, _environment, _link_collection
from benchmarks.verdict import print_verdict

REPO = Path(__file__).resolve().parent.parent
BASELINES = Path(__file__).resolve().parent / "baselines"
ROWS = ("uncached", "cached", "static", "vendor")
LABELS = {
    "uncached": "plugin, uncached (`ansible-inventory --list`)",
    "cached": "plugin, cached",
    "static": "static YAML inventory, same hosts and hostvars",
    "vendor": "vendor approach (PageNumber, 10 a page, regions in turn)",
}
GOAL_CALLS = 110
GOAL_LISTING_VS_VENDOR = 0.4
GOAL_CACHED_VS_STATIC = 1.2  # reported, not gated (see the module docstring)
WINDOWS_SHARE = 5  # one instance in this many is Windows


def add_fleet(state_dir: Path, regions: list[str], instances: int) -> None:
    """N instances over the regions: one in WINDOWS_SHARE Windows (app=db), the rest Linux (app=web)."""
    for index, region in enumerate(regions):
        count = instances // len(regions) + (1 if index < instances % len(regions) else 0)
        windows = count // WINDOWS_SHARE
        for os_type, n, app in (("linux", count - windows, "web"), ("windows", windows, "db")):
            if n:
                subprocess.run([sys.executable, "-m", "sandbox", "ctl", "--state-dir", str(state_dir), "instances",
                                "add", "--count", str(n), "--region", region, "--os", os_type, "--name",
                                f"{app}-{region}", "--tag", f"app={app}", "--tag", "env=bench"],
                               cwd=REPO, check=True, stdout=subprocess.DEVNULL, timeout=600)


def write_configs(tmp: Path, regions: list[str]) -> dict[str, Path]:
    base = {"plugin": "alicloud_ops.cloud_assistant.ecs", "regions": regions, "validate_certs": False}
    cached = dict(base, cache=True, cache_plugin="ansible.builtin.jsonfile", cache_connection=str(tmp / "cache"),
                  cache_timeout=86400)
    paths = {"uncached": tmp / "uncached.ecs.yml", "cached": tmp / "cached.ecs.yml"}
    paths["uncached"].write_text(json.dumps(base) + "\n")
    paths["cached"].write_text(json.dumps(cached) + "\n")
    return paths


def _plain(value: Any) -> Any:
    """ansible-inventory's JSON with the `{"__ansible_unsafe": ...}` wrappers removed."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def write_static(path: Path, listing: dict[str, Any]) -> None:
    """A YAML inventory with the hosts, hostvars and groups of an `ansible-inventory --list` answer."""
    hostvars = _plain(listing["_meta"]["hostvars"])
    children = {name: {"hosts": {host: None for host in group.get("hosts", [])}}
                for name, group in listing.items() if name not in ("_meta", "all", "ungrouped")}
    data = {"all": {"hosts": hostvars, "children": children}}
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(yaml.dump(data, Dumper=dumper, default_flow_style=False, sort_keys=False))


def _run(name: str, cmd: list[str], env: dict[str, str], cwd: Path, state_dir: Path,
         expected_hosts: int) -> tuple[dict[str, Any], str]:
    calls0, _, _ = _counters(state_dir)
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800, check=False)
    wall = time.monotonic() - started
    calls1, _, _ = _counters(state_dir)
    by_action = {a: n - calls0.get(a, 0) for a, n in calls1.items() if n != calls0.get(a, 0)}
    hosts = -1
    if proc.returncode == 0:
        out = json.loads(proc.stdout.strip().splitlines()[-1] if name == "vendor" else proc.stdout)
        hosts = out["hosts"] if name == "vendor" else len(out["_meta"]["hostvars"])
    if hosts != expected_hosts:
        raise SystemExit(f"{name} failed: rc={proc.returncode}, {hosts} hosts of {expected_hosts}:\n"
                         f"{(proc.stdout[-1500:] + proc.stderr[-1500:])}")
    return {"row": name, "wall_s": round(wall, 3), "api_calls": sum(by_action.values()),
            "describe_instances": by_action.get("DescribeInstances", 0), "calls_by_action": by_action}, proc.stdout


def measure(instances: int, trials: int, regions: list[str], warmup: bool = True,
            collection: Path = REPO) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ROWS}
    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as tmp_name:
        tmp = Path(tmp_name)
        _link_collection(tmp, collection)
        state_dir = tmp / "state"
        os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
        proc, info = start_sandbox(state_dir, 0, "process", ("--regions", ",".join(regions)))
        try:
            started = time.monotonic()
            add_fleet(state_dir, regions, instances)
            print(json.dumps({"setup": f"{instances} instances in {len(regions)} regions",
                              "seconds": round(time.monotonic() - started, 1)}), flush=True)
            env = _environment(tmp, info)
            env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
            configs = write_configs(tmp, regions)
            bindir = Path(sys.executable).parent
            inventory = str(bindir / "ansible-inventory")
            if not Path(inventory).exists():
                inventory = "ansible-inventory"
            static = tmp / "static.yml"
            commands = {
                "uncached": [inventory, "-i", str(configs["uncached"]), "--list"],
                "cached": [inventory, "-i", str(configs["cached"]), "--list"],
                "static": [inventory, "-i", str(static), "--list"],
                "vendor": [sys.executable, str(BASELINES / "vendor_inventory.py"), *regions],
            }
            # the static inventory is written from the plugin's output, and the cache filled, before any row
            row, stdout = _run("uncached", commands["uncached"], env, tmp, state_dir, instances)
            write_static(static, json.loads(stdout))
            row, _ = _run("cached", commands["cached"], env, tmp, state_dir, instances)
            if row["api_calls"] == 0:
                raise SystemExit("the first cached run made no API call: the cache was not empty")
            rounds = ([0] if warmup else []) + list(range(1, trials + 1))
            for trial in rounds:
                for name in ROWS:
                    row, _ = _run(name, commands[name], env, tmp, state_dir, instances)
                    row["trial"] = trial if trial else "warm-up"
                    print(json.dumps(row), flush=True)
                    if trial:
                        runs[name].append(row)
        finally:
            stop_sandbox(proc)
    return summarize(runs, instances, regions)


def summarize(runs: dict[str, list[dict[str, Any]]], instances: int, regions: list[str]) -> dict[str, Any]:
    rows = {name: {"median_s": statistics.median(r["wall_s"] for r in runs[name]),
                   "trials_s": [r["wall_s"] for r in runs[name]],
                   "api_calls": max(r["api_calls"] for r in runs[name]),
                   "describe_instances": max(r["describe_instances"] for r in runs[name])} for name in ROWS}
    over_static = rows["uncached"]["median_s"] - rows["static"]["median_s"]
    over_static_vs_vendor = over_static / rows["vendor"]["median_s"]
    listing = rows["uncached"]["median_s"] - rows["cached"]["median_s"]
    listing_vs_vendor = listing / rows["vendor"]["median_s"]
    cached_vs_static = rows["cached"]["median_s"] / rows["static"]["median_s"]
    return {
        "instances": instances, "regions": regions, "trials": len(runs["uncached"]), "rows": rows,
        "uncached_over_static_s": round(over_static, 3), "over_static_vs_vendor": round(over_static_vs_vendor, 3),
        "listing_s": round(listing, 3), "listing_vs_vendor": round(listing_vs_vendor, 3),
        "cached_vs_static": round(cached_vs_static, 3),
        "calls_by_action": {name: runs[name][-1]["calls_by_action"] for name in ROWS},
        "goals": {
            f"uncached: at most {GOAL_CALLS} DescribeInstances calls":
                rows["uncached"]["describe_instances"] <= GOAL_CALLS,
            f"uncached - cached <= {GOAL_LISTING_VS_VENDOR}x vendor": listing_vs_vendor <= GOAL_LISTING_VS_VENDOR,
            "cached: no API call": rows["cached"]["api_calls"] == 0,
        },
        # the static-YAML goals: vacuous on ansible-core 2.19 (the static inventory is the slowest row)
        "not_gated": {
            f"uncached - static <= {GOAL_LISTING_VS_VENDOR}x vendor":
                over_static_vs_vendor <= GOAL_LISTING_VS_VENDOR,
            f"cached <= {GOAL_CACHED_VS_STATIC}x static": cached_vs_static <= GOAL_CACHED_VS_STATIC,
        },
    }


def report(result: dict[str, Any]) -> int:
    rows = result["rows"]
    print()
    print(f"{result['instances']} instances in {', '.join(result['regions'])}, median of {result['trials']} "
          "interleaved trials, whole processes")
    print()
    print("| row | wall, median (s) | trials (s) | API calls | DescribeInstances |")
    print("|---|---|---|---|---|")
    for key in ROWS:
        r = rows[key]
        trials = ", ".join(f"{t:.2f}" for t in r["trials_s"])
        print(f"| {LABELS[key]} | {r['median_s']:.2f} | {trials} | {r['api_calls']} | {r['describe_instances']} |")
    print()
    print(f"uncached - cached (the listing) = {result['listing_s']:.2f} s = {result['listing_vs_vendor']:.2f}x the "
          "vendor approach")
    print(f"uncached - static = {result['uncached_over_static_s']:.2f} s = {result['over_static_vs_vendor']:.2f}x the "
          f"vendor approach; cached = {result['cached_vs_static']:.2f}x static (not gated)")
    print("API calls by action (last trial): " + "; ".join(
        f"{name}: " + (", ".join(f"{a} {n}" for a, n in sorted(calls.items())) or "none")
        for name, calls in result["calls_by_action"].items()))
    return print_verdict(result["goals"], notes=[
        f"- {label}: {'holds' if met else 'does not hold'} (not gated: cannot fail on ansible-core 2.19)"
        for label, met in result["not_gated"].items()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--regions", default="cn-hangzhou,cn-beijing")
    parser.add_argument("--no-warmup", action="store_true", help="skip the discarded first round")
    parser.add_argument("--collection", type=Path, default=REPO,
                        help="the collection's directory to time (default: this checkout)")
    args = parser.parse_args(argv)
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    return report(measure(args.instances, args.trials, regions, not args.no_warmup, args.collection))


if __name__ == "__main__":
    sys.exit(main())
