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
and after each process; every row must report all N hosts. The first uncached run (which writes the static
inventory) and the first cached run (which fills the cache) warm up and are not counted; then the rows are
interleaved, trial after trial (`--warmup`: one more round first, discarded).

The plugin's rows run with -vvv, so each also reports the plugin's own timing of its listing phase (the API calls,
or the cache read) apart from adding the hosts (the line `phase_timing` in plugins/module_utils/_inventory.py
writes); the vendor script reports its own listing time. The static row, the slowest by far and not gated, runs in
the first trial only (`--static-trials`), so that more trials fit in the same time.

Goals (issue 8, as gated here), each decided on per-trial ratios of the same interleaved trial:
- the uncached plugin makes at most 110 DescribeInstances calls; cached, it makes no API call;
- whole processes (the primary figure: users time whole processes): the listing's cost, uncached minus cached of
  the same trial (the same process without the API calls), divided by that trial's vendor process;
- inside the processes (the second figure): the plugin's listing phase, divided by the vendor script's own
  listing time of the same trial (both without interpreter start-up and imports).
A ratio goal is met when the upper end of a distribution-free confidence interval of the median ratio (at least
90 %: order statistics of the trials, the sign test) is at most 0.4; NOT met when its lower end is above 0.4;
otherwise it is undecided, which fails the run too and says that more trials (`--trials`) or a quieter machine are
needed. With 3 trials the interval is the whole range of the trials (75 %); 5 give 94 %.
The exit status is 1 unless every goal is met.
The issue's goals against the static YAML inventory are reported but not gated: on ansible-core 2.19 the static
inventory is slower than the plugin itself (parsing YAML with origin tracking), so "uncached - static" is
negative and "cached <= 1.2x static" holds whatever the plugin does; they could not fail.

`--latency-ms N` makes the sandbox answer every request N ms later (`sandbox ctl faults --latency-ms`), as a real
endpoint does: on loopback a call costs little beyond its records, so 1,002 small pages cost hardly more than
100 large ones, which a network round trip per call changes.

Run: `python -m benchmarks.inventory_listing [--instances 10000] [--trials 5] [--static-trials 1]
[--latency-ms 0] [--regions cn-hangzhou,cn-beijing]`
Traffic goes to the sandbox on 127.0.0.1 only; every process has ALIBABA_CLOUD_ECS_METADATA_DISABLED=true.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
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
CONFIDENCE = 0.9  # the least coverage of the interval a ratio goal is decided on
WINDOWS_SHARE = 5  # one instance in this many is Windows
PHASE_MODULE = "ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._inventory"


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


def phase_pattern(collection_root: Path) -> re.Pattern[str] | None:
    """The plugin's own `PHASE_PATTERN` (the -vvv line of its timing), from the collection being timed; None for
    a version of the collection without it (`--collection` of an older checkout: whole processes only)."""
    sys.path.insert(0, str(collection_root))
    try:
        pattern: re.Pattern[str] | None = getattr(importlib.import_module(PHASE_MODULE), "PHASE_PATTERN", None)
        return pattern
    finally:
        sys.path.remove(str(collection_root))
        for name in [m for m in sys.modules if m.startswith("ansible_collections")]:
            del sys.modules[name]


def split_output(name: str, stdout: str, pattern: re.Pattern[str] | None) -> tuple[dict[str, Any], dict[str, float]]:
    """(the row's JSON answer, its own timing): the vendor script's last line, or ansible-inventory's JSON after
    the -vvv lines and the plugin's timing line among them."""
    if name == "vendor":
        out = json.loads(stdout.strip().splitlines()[-1])
        return out, {"listing_s": float(out["seconds"])}
    start = 0 if stdout.startswith("{") else stdout.index("\n{") + 1
    inside: dict[str, float] = {}
    found = pattern.search(stdout[:start]) if pattern is not None else None
    if found:
        inside = {"listing_s": float(found.group("listing")), "populate_s": float(found.group("populate"))}
    return json.loads(stdout[start:]), inside


def _run(name: str, cmd: list[str], env: dict[str, str], cwd: Path, state_dir: Path, expected_hosts: int,
         pattern: re.Pattern[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    calls0, _, _ = _counters(state_dir)
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800, check=False)
    wall = time.monotonic() - started
    calls1, _, _ = _counters(state_dir)
    by_action = {a: n - calls0.get(a, 0) for a, n in calls1.items() if n != calls0.get(a, 0)}
    hosts = -1
    out: dict[str, Any] = {}
    inside: dict[str, float] = {}
    if proc.returncode == 0:
        out, inside = split_output(name, proc.stdout, pattern)
        hosts = out["hosts"] if name == "vendor" else len(out["_meta"]["hostvars"])
    if hosts != expected_hosts or (pattern is not None and not inside):
        raise SystemExit(f"{name} failed: rc={proc.returncode}, {hosts} hosts of {expected_hosts}, own timing "
                         f"{inside or 'missing'}:\n{(proc.stdout[-1500:] + proc.stderr[-1500:])}")
    row = {"row": name, "wall_s": round(wall, 3), "api_calls": sum(by_action.values()),
           "describe_instances": by_action.get("DescribeInstances", 0), "calls_by_action": by_action, **inside}
    return row, out


def measure(instances: int, trials: int, regions: list[str], warmup: bool = False,
            collection: Path = REPO, static_trials: int = 1, latency_ms: int = 0) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ROWS}
    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as tmp_name:
        tmp = Path(tmp_name)
        _link_collection(tmp, collection)
        pattern = phase_pattern(tmp / "collections")
        state_dir = tmp / "state"
        os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
        proc, info = start_sandbox(state_dir, 0, "process", ("--regions", ",".join(regions)))
        try:
            started = time.monotonic()
            add_fleet(state_dir, regions, instances)
            if latency_ms:
                subprocess.run([sys.executable, "-m", "sandbox", "ctl", "--state-dir", str(state_dir), "faults",
                                "--latency-ms", str(latency_ms)], cwd=REPO, check=True, timeout=60,
                               stdout=subprocess.DEVNULL)
            print(json.dumps({"setup": f"{instances} instances in {len(regions)} regions",
                              "latency_ms": latency_ms, "seconds": round(time.monotonic() - started, 1)}), flush=True)
            env = _environment(tmp, info)
            env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
            configs = write_configs(tmp, regions)
            bindir = Path(sys.executable).parent
            inventory = str(bindir / "ansible-inventory")
            if not Path(inventory).exists():
                inventory = "ansible-inventory"
            static = tmp / "static.yml"
            commands = {
                "uncached": [inventory, "-i", str(configs["uncached"]), "--list", "-vvv"],
                "cached": [inventory, "-i", str(configs["cached"]), "--list", "-vvv"],
                "static": [inventory, "-i", str(static), "--list"],
                "vendor": [sys.executable, str(BASELINES / "vendor_inventory.py"), *regions],
            }
            patterns = {"uncached": pattern, "cached": pattern, "static": None, "vendor": None}
            # the static inventory is written from the plugin's output, and the cache filled, before any row
            row, out = _run("uncached", commands["uncached"], env, tmp, state_dir, instances, pattern)
            write_static(static, out)
            row, _ = _run("cached", commands["cached"], env, tmp, state_dir, instances, pattern)
            if row["api_calls"] == 0:
                raise SystemExit("the first cached run made no API call: the cache was not empty")
            # those two runs warmed the caches (the collection's and the SDK's .pyc, the sandbox's pages); an extra
            # discarded round only with warmup
            rounds = ([0] if warmup else []) + list(range(1, trials + 1))
            for trial in rounds:
                for name in ROWS:
                    if name == "static" and not 1 <= trial <= static_trials:
                        continue
                    row, _ = _run(name, commands[name], env, tmp, state_dir, instances, patterns[name])
                    row["trial"] = trial if trial else "warm-up"
                    print(json.dumps(row), flush=True)
                    if trial:
                        runs[name].append(row)
        finally:
            stop_sandbox(proc)
    result = summarize(runs, instances, regions)
    result["latency_ms"] = latency_ms
    return result


def median_interval(values: list[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The median of `values` and a distribution-free interval for it: the k-th smallest and k-th largest value,
    k as large as keeps the coverage 1 - 2 P(Binomial(n, 1/2) < k) at least `confidence` (the sign test).
    `low`/`high` are None when even the smallest and largest value cover less (fewer than 5 values at 90 %)."""
    ordered = sorted(values)
    n = len(ordered)

    def coverage(k: int) -> float:
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n

    k = 0
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= confidence:
        k += 1
    result: dict[str, Any] = {"median": round(statistics.median(ordered), 3), "n": n, "low": None, "high": None,
                              "coverage": round(coverage(max(k, 1)), 3)}
    if k:
        result.update(low=round(ordered[k - 1], 3), high=round(ordered[n - k], 3))
    return result


def decide(interval: dict[str, Any], goal: float) -> str:
    """'met' (the whole interval at or under `goal`), 'NOT met' (all of it over), else 'undecided'."""
    if interval["high"] is not None and interval["high"] <= goal:
        return "met"
    if interval["low"] is not None and interval["low"] > goal:
        return "NOT met"
    return "undecided"


def _ratio_goal(label: str, interval: dict[str, Any], goal: float) -> tuple[str, bool]:
    verdict = decide(interval, goal)
    if interval["low"] is None:
        where = f"{interval['n']} trials: too few to decide (at least 5 are needed for {CONFIDENCE:.0%})"
    else:
        where = (f"{interval['coverage']:.1%} interval {interval['low']:.2f}x-{interval['high']:.2f}x over "
                 f"{interval['n']} trials")
    return f"{label}: median {interval['median']:.2f}x, {where}, {verdict}", verdict == "met"


def summarize(runs: dict[str, list[dict[str, Any]]], instances: int, regions: list[str]) -> dict[str, Any]:
    rows = {name: {"median_s": statistics.median(r["wall_s"] for r in runs[name]),
                   "trials_s": [r["wall_s"] for r in runs[name]],
                   "api_calls": max(r["api_calls"] for r in runs[name]),
                   "describe_instances": max(r["describe_instances"] for r in runs[name])}
            for name in ROWS if runs[name]}  # no static row with --static-trials 0
    for name in ("uncached", "cached", "vendor"):
        own = [r["listing_s"] for r in runs[name] if "listing_s" in r]
        if own:
            rows[name]["listing_median_s"] = statistics.median(own)
            rows[name]["listing_trials_s"] = own
        populate = [r["populate_s"] for r in runs[name] if "populate_s" in r]
        if populate:
            rows[name]["populate_median_s"] = statistics.median(populate)
    # paired by trial: the rows of trial i ran one after another, under the same load
    trials = list(zip(runs["uncached"], runs["cached"], runs["vendor"], strict=True))
    differences = [u["wall_s"] - c["wall_s"] for u, c, _ in trials]
    whole = [(u["wall_s"] - c["wall_s"]) / v["wall_s"] for u, c, v in trials]
    inside = [u["listing_s"] / v["listing_s"] for u, _, v in trials if "listing_s" in u and "listing_s" in v]
    whole_interval = median_interval(whole)
    inside_interval = median_interval(inside) if inside else None
    not_gated: dict[str, bool] = {}
    over_static = over_static_vs_vendor = cached_vs_static = None
    if "static" in rows:
        over_static = rows["uncached"]["median_s"] - rows["static"]["median_s"]
        over_static_vs_vendor = over_static / rows["vendor"]["median_s"]
        cached_vs_static = rows["cached"]["median_s"] / rows["static"]["median_s"]
        # the static-YAML goals: vacuous on ansible-core 2.19 (the static inventory is the slowest row)
        not_gated = {f"uncached - static <= {GOAL_LISTING_VS_VENDOR}x vendor":
                     over_static_vs_vendor <= GOAL_LISTING_VS_VENDOR,
                     f"cached <= {GOAL_CACHED_VS_STATIC}x static": cached_vs_static <= GOAL_CACHED_VS_STATIC}
    goals = dict([
        (f"uncached: at most {GOAL_CALLS} DescribeInstances calls ({rows['uncached']['describe_instances']})",
         rows["uncached"]["describe_instances"] <= GOAL_CALLS),
        (f"cached: no API call ({rows['cached']['api_calls']})", rows["cached"]["api_calls"] == 0),
        _ratio_goal(f"whole processes, (uncached - cached) / vendor of the same trial <= {GOAL_LISTING_VS_VENDOR}x",
                    whole_interval, GOAL_LISTING_VS_VENDOR),
    ])
    if inside_interval is not None:
        label, met = _ratio_goal(f"inside the processes, plugin listing / vendor listing of the same trial <= "
                                 f"{GOAL_LISTING_VS_VENDOR}x", inside_interval, GOAL_LISTING_VS_VENDOR)
        goals[label] = met
    return {
        "instances": instances, "regions": regions, "trials": len(runs["uncached"]), "rows": rows,
        "uncached_over_static_s": _rounded(over_static), "over_static_vs_vendor": _rounded(over_static_vs_vendor),
        "paired_differences_s": [round(d, 3) for d in differences],
        "listing_s": round(statistics.median(differences), 3),
        "whole_ratios": [round(r, 3) for r in whole], "whole": whole_interval,
        "inside_ratios": [round(r, 3) for r in inside], "inside": inside_interval,
        "cached_vs_static": _rounded(cached_vs_static),
        "calls_by_action": {name: runs[name][-1]["calls_by_action"] for name in ROWS if runs[name]},
        "goals": goals,
        "not_gated": not_gated,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in values)


def report(result: dict[str, Any]) -> int:
    rows = result["rows"]
    print()
    print(f"{result['instances']} instances in {', '.join(result['regions'])}, {result['trials']} interleaved "
          "trials, whole processes (medians; the static row in its first trial(s) only); every sandbox answer "
          f"delayed by {result.get('latency_ms', 0)} ms")
    print()
    print("| row | wall, median (s) | trials (s) | own listing phase, median (s) | API calls | DescribeInstances |")
    print("|---|---|---|---|---|---|")
    for key in (name for name in ROWS if name in rows):
        r = rows[key]
        own = f"{r['listing_median_s']:.2f}" if "listing_median_s" in r else "-"
        print(f"| {LABELS[key]} | {r['median_s']:.2f} | {_seconds(r['trials_s'])} | {own} | {r['api_calls']} | "
              f"{r['describe_instances']} |")
    print()
    print(f"uncached - cached, paired by trial (s): {_seconds(result['paired_differences_s'])}; median "
          f"{result['listing_s']:.2f}")
    print(f"  / vendor of the same trial: {', '.join(f'{x:.2f}' for x in result['whole_ratios'])}")
    if result["inside"] is not None:
        print(f"plugin listing phase / vendor listing, same trial: "
              f"{', '.join(f'{x:.2f}' for x in result['inside_ratios'])}")
    if "populate_median_s" in rows["uncached"]:
        print(f"plugin adding the hosts (median): uncached {rows['uncached']['populate_median_s']:.2f} s, cached "
              f"{rows['cached'].get('populate_median_s', float('nan')):.2f} s")
    if result["uncached_over_static_s"] is not None:
        print(f"uncached - static = {result['uncached_over_static_s']:.2f} s = {result['over_static_vs_vendor']:.2f}x "
              f"the vendor approach; cached = {result['cached_vs_static']:.2f}x static (not gated)")
    print("API calls by action (last trial): " + "; ".join(
        f"{name}: " + (", ".join(f"{a} {n}" for a, n in sorted(calls.items())) or "none")
        for name, calls in result["calls_by_action"].items()))
    return print_verdict(result["goals"], notes=[
        f"- {label}: {'holds' if met else 'does not hold'} (not gated: cannot fail on ansible-core 2.19)"
        for label, met in result["not_gated"].items()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--static-trials", type=int, default=1,
                        help="trials that also time the static YAML inventory (not gated; the slowest row; 0: none)")
    parser.add_argument("--regions", default="cn-hangzhou,cn-beijing")
    parser.add_argument("--latency-ms", type=int, default=0,
                        help="delay every sandbox answer by this much (sandbox ctl faults), as a real endpoint does")
    parser.add_argument("--warmup", action="store_true",
                        help="one more round first, discarded (the runs that fill the cache already warm up)")
    parser.add_argument("--collection", type=Path, default=REPO,
                        help="the collection's directory to time (default: this checkout)")
    args = parser.parse_args(argv)
    if args.trials < 1 or not 0 <= args.static_trials <= args.trials or args.latency_ms < 0:
        parser.error("--trials must be at least 1, --static-trials from 0 to --trials, --latency-ms 0 or more")
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    return report(measure(args.instances, args.trials, regions, args.warmup, args.collection,
                          args.static_trials, args.latency_ms))


if __name__ == "__main__":
    sys.exit(main())
