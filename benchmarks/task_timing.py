"""What users time: the ansible-playbook task against two whole-process baselines, on 100 instances.

One sandbox with N instances (default 100); `sleep 2; echo ok` runs on all of them once per row and trial.
Every row is a separate process, timed by this harness from just before it is started to its exit (start-up,
imports and everything else included):
- ansible-playbook, task: `ansible-playbook` of one play (localhost, connection local, no facts) with one
  `alicloud_ops.cloud_assistant.cloud_assistant_command` task on the N instances;
- ansible-playbook, empty: the same play with no tasks (ansible-playbook's own cost);
- task = task playbook - empty playbook (medians), the figure users see as the task's duration;
- minimal client: benchmarks/baselines/minimal_client.py (RunCommand, DescribeInvocations every 50 ms,
  one DescribeInvocations with IncludeOutput);
- vendor sample: benchmarks/baselines/vendor_sample.py (the SDK samples' 2-second polling, outputs through
  DescribeInvocationResults).
API calls are counted at the sandbox: the difference of its `api_calls` table (what `python -m sandbox ctl
stats` prints; every request the server received, whatever the answer) before and after each process. The
same difference of `executions_total` checks that each process ran the script exactly once per instance.
The rows are interleaved (task, empty, minimal, vendor, task, ...) after one discarded warm-up round, and
medians reported. Targets: task <= 1.15x the minimal client, <= 0.8x the vendor sample, <= 20 API calls; the
exit status is 1 when a target is not met (as benchmarks/command_fanout.py).

Run: `python -m benchmarks.task_timing [--instances 100] [--trials 3] [--collection DIR]`
  or `python -m benchmarks.command_fanout --task [--task-instances 100] [--trials 3]`.
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

from benchmarks.sandbox_fanout import instance_ids, make_client, start_sandbox, stop_sandbox
from benchmarks.verdict import print_verdict

REPO = Path(__file__).resolve().parent.parent
BASELINES = Path(__file__).resolve().parent / "baselines"
ROWS = ("task", "empty", "minimal", "vendor")
LABELS = {
    "task_playbook": "ansible-playbook, one-task playbook",
    "empty": "ansible-playbook, empty playbook",
    "task": "**task** (one-task - empty playbook)",
    "minimal": "minimal client (50 ms polling)",
    "vendor": "vendor sample (2 s polling)",
}
TARGET_VS_MINIMAL = 1.15
TARGET_VS_VENDOR = 0.8
TARGET_CALLS = 20


def _link_collection(tmp: Path, collection: Path) -> None:
    """`collections/ansible_collections/alicloud_ops/cloud_assistant` -> the checkout, for ANSIBLE_COLLECTIONS_PATH."""
    parent = tmp / "collections" / "ansible_collections" / "alicloud_ops"
    parent.mkdir(parents=True)
    os.symlink(collection.resolve(), parent / "cloud_assistant")


def _playbooks(play_dir: Path, info: dict[str, Any], targets: list[str], seconds: float) -> dict[str, Path]:
    """The task playbook and the empty one; JSON is YAML, so no quoting questions."""
    play: dict[str, Any] = {"name": "Cloud Assistant task timing", "hosts": "localhost", "connection": "local",
                            "gather_facts": False,
                            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}}
    task = {"name": "Run the script on every instance",
            "alicloud_ops.cloud_assistant.cloud_assistant_command": {
                "instance_ids": targets, "command_content": f"sleep {seconds:g}; echo ok",
                "region_id": info["region_id"], "endpoint": info["endpoint"],
                "access_key_id": info["access_key_id"], "access_key_secret": info["access_key_secret"],
                "validate_certs": False}}
    play_dir.mkdir(parents=True)
    paths = {"task": play_dir / "task.yml", "empty": play_dir / "empty.yml"}
    paths["task"].write_text(json.dumps([{**play, "tasks": [task]}], indent=1) + "\n")
    paths["empty"].write_text(json.dumps([{**play, "tasks": []}], indent=1) + "\n")
    for path in paths.values():
        path.chmod(0o600)
    return paths


def _environment(tmp: Path, info: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ALICLOUD_", "ANSIBLE_"))}
    ansible_cfg = tmp / "ansible.cfg"
    ansible_cfg.write_text("[defaults]\n")
    env.update({
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        # the baselines read these, as users of the SDK samples do; the task gets its settings as options
        "ALIBABA_CLOUD_ACCESS_KEY_ID": info["access_key_id"],
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": info["access_key_secret"],
        "ALIBABA_CLOUD_REGION_ID": info["region_id"],
        "ALIBABA_CLOUD_ECS_ENDPOINT": info["endpoint"],
        "ANSIBLE_CONFIG": str(ansible_cfg),
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_COLLECTIONS_PATH": str(tmp / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    })
    return env


def _commands(playbooks: dict[str, Path], targets: list[str], seconds: float) -> dict[str, list[str]]:
    bindir = Path(sys.executable).parent
    playbook = str(bindir / "ansible-playbook") if (bindir / "ansible-playbook").exists() else "ansible-playbook"
    script = f"sleep {seconds:g}; echo ok"
    return {
        "task": [playbook, str(playbooks["task"])],
        "empty": [playbook, str(playbooks["empty"])],
        "minimal": [sys.executable, str(BASELINES / "minimal_client.py"), "--command", script, *targets],
        "vendor": [sys.executable, str(BASELINES / "vendor_sample.py"), "--command", script, *targets],
    }


def _counters(state_dir: Path) -> tuple[dict[str, int], int, int]:
    """(api_calls per action, executions_total, duplicate_executions), as `python -m sandbox ctl stats`."""
    from sandbox import store
    from sandbox.cli import stats

    conn = store.connect(state_dir)
    try:
        out = stats(conn)
    finally:
        conn.close()
    return dict(out["api_calls"]), int(out["executions_total"]), int(out["duplicate_executions"])


def _run(name: str, cmd: list[str], env: dict[str, str], cwd: Path, state_dir: Path, expected: int) -> dict[str, Any]:
    """One row's process, timed from start to exit; it must succeed and run the script once per instance."""
    calls0, execs0, _ = _counters(state_dir)
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    wall = time.monotonic() - started
    calls1, execs1, duplicates = _counters(state_dir)
    by_action = {a: n - calls0.get(a, 0) for a, n in calls1.items() if n != calls0.get(a, 0)}
    if proc.returncode == 0 and execs1 - execs0 == expected and duplicates == 0:
        return {"row": name, "wall_s": round(wall, 3), "api_calls": sum(by_action.values()),
                "calls_by_action": by_action}
    tail = (proc.stdout + proc.stderr)[-3000:]
    raise SystemExit(f"{name} failed: rc={proc.returncode}, executions {execs1 - execs0} of {expected}, "
                     f"duplicates {duplicates}:\n{tail}")


def measure(instances: int, trials: int, seconds: float, isolation: str, warmup: bool = True,
            collection: Path = REPO) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ROWS}
    with tempfile.TemporaryDirectory(prefix="task-bench-") as tmp_name:
        tmp = Path(tmp_name)
        _link_collection(tmp, collection)
        state_dir = tmp / "state"
        os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
        proc, info = start_sandbox(state_dir, instances, isolation)
        try:
            targets = instance_ids(make_client(info), info["region_id"], instances)
            if len(targets) < instances:
                raise SystemExit(f"only {len(targets)} instances available")
            env = _environment(tmp, info)
            commands = _commands(_playbooks(tmp / "play", info, targets, seconds), targets, seconds)
            rounds = ([0] if warmup else []) + list(range(1, trials + 1))
            for trial in rounds:
                for name in ROWS:
                    row = _run(name, commands[name], env, tmp, state_dir,
                               expected=0 if name == "empty" else len(targets))
                    row["trial"] = trial if trial else "warm-up"
                    print(json.dumps(row), flush=True)
                    if trial:
                        runs[name].append(row)
        finally:
            stop_sandbox(proc)
    return summarize(runs, instances, seconds)


def summarize(runs: dict[str, list[dict[str, Any]]], instances: int, seconds: float) -> dict[str, Any]:
    def med(name: str) -> float:
        return statistics.median(r["wall_s"] for r in runs[name])

    task = med("task") - med("empty")
    per_trial_task = [round(t["wall_s"] - e["wall_s"], 3) for t, e in zip(runs["task"], runs["empty"], strict=True)]
    rows = {
        "task_playbook": {"median_s": med("task"), "trials_s": [r["wall_s"] for r in runs["task"]],
                          "api_calls": max(r["api_calls"] for r in runs["task"])},
        "empty": {"median_s": med("empty"), "trials_s": [r["wall_s"] for r in runs["empty"]],
                  "api_calls": max(r["api_calls"] for r in runs["empty"])},
        "task": {"median_s": task, "trials_s": per_trial_task,
                 "api_calls": max(r["api_calls"] for r in runs["task"])},
        "minimal": {"median_s": med("minimal"), "trials_s": [r["wall_s"] for r in runs["minimal"]],
                    "api_calls": max(r["api_calls"] for r in runs["minimal"])},
        "vendor": {"median_s": med("vendor"), "trials_s": [r["wall_s"] for r in runs["vendor"]],
                   "api_calls": max(r["api_calls"] for r in runs["vendor"])},
    }
    vs_minimal = task / rows["minimal"]["median_s"]
    vs_vendor = task / rows["vendor"]["median_s"]
    return {
        "instances": instances, "command_seconds": seconds, "trials": len(runs["task"]), "rows": rows,
        "calls_by_action": {name: runs[name][-1]["calls_by_action"] for name in ROWS},
        "task_vs_minimal": round(vs_minimal, 3), "task_vs_vendor": round(vs_vendor, 3),
        "targets": {
            f"task <= {TARGET_VS_MINIMAL}x minimal": vs_minimal <= TARGET_VS_MINIMAL,
            f"task <= {TARGET_VS_VENDOR}x vendor": vs_vendor <= TARGET_VS_VENDOR,
            f"task <= {TARGET_CALLS} API calls": rows["task"]["api_calls"] <= TARGET_CALLS,
        },
    }


def report(result: dict[str, Any]) -> int:
    rows = result["rows"]
    task = rows["task"]["median_s"]
    print()
    print(f"{result['instances']} instances, `sleep {result['command_seconds']:g}; echo ok`, "
          f"median of {result['trials']} interleaved trials, whole processes")
    print()
    print("| row | wall, median (s) | trials (s) | API calls | task vs this row |")
    print("|---|---|---|---|---|")
    for key in ("task_playbook", "empty", "task", "minimal", "vendor"):
        r = rows[key]
        ratio = f"{task / r['median_s']:.2f}x" if key in ("minimal", "vendor") else ""
        trials = ", ".join(f"{t:.2f}" for t in r["trials_s"])
        print(f"| {LABELS[key]} | {r['median_s']:.2f} | {trials} | {r['api_calls']} | {ratio} |")
    print()
    print("API calls by action (last trial): " + "; ".join(
        f"{name}: " + ", ".join(f"{a} {n}" for a, n in sorted(calls.items()))
        for name, calls in result["calls_by_action"].items()))
    return print_verdict(result["targets"], word="targets")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--no-warmup", action="store_true", help="skip the discarded first round")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--isolation", default="process", choices=("process", "namespaces", "auto"))
    parser.add_argument("--collection", type=Path, default=REPO,
                        help="the collection's directory to time (default: this checkout)")
    args = parser.parse_args(argv)
    return report(measure(args.instances, args.trials, args.seconds, args.isolation, not args.no_warmup,
                          args.collection))


if __name__ == "__main__":
    sys.exit(main())
