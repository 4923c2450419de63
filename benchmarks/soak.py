"""Soak: a scheduled command every minute on a fleet, a steady stream of one-off runs, faults switched on and off.

Not part of `bash scripts/test` (it runs for minutes by design). What it checks at the end:
- every one-off playbook succeeded, and each of its instances ran its command exactly once;
- the schedule ran on every instance once per minute, give or take one run (counted from the sandbox's records);
- no execution was started twice (`duplicate_executions` is 0);
- memory stayed flat: the sandbox's server and agent host, sampled every round, grew less than MEMORY_GROWTH after
  the warm-up, and the controller's peak (the ansible-playbook runs' maximum RSS) did too;
- nothing is left running: no process of the sandbox's state directory once it has stopped.

Run: `python -m benchmarks.soak [--minutes 10] [--instances 50]`, as root for namespaces isolation. The
playbooks are real `ansible-playbook` runs of `cloud_assistant_command` from this checkout. Traffic goes to the
sandbox on 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.sandbox_fanout import start_sandbox, stop_sandbox
from benchmarks.task_timing import _environment, _link_collection
from benchmarks.verdict import print_verdict

REPO = Path(__file__).resolve().parent.parent
TAG = "soak"
ROUND_SECONDS = 20.0       # one one-off playbook per round
FAULT_PERIOD_ROUNDS = 6    # faults on for 6 rounds (2 minutes), off for 6
ONE_OFF_INSTANCES = 10
MEMORY_GROWTH = 0.25       # at most 25 % more resident memory at the end than after the warm-up
WARMUP_ROUNDS = 3
FAULTS_ON = ["--throttle", "0.3", "--server-errors", "0.1", "--drop", "0.1"]
FAULTS_OFF = ["--throttle", "0", "--server-errors", "0", "--drop", "0"]


def _ctl(state_dir: Path, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "sandbox", "ctl", "--state-dir", str(state_dir), *args], cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _playbook(path: Path, info: dict[str, Any], task: dict[str, Any]) -> Path:
    connection = {"access_key_id": info["access_key_id"], "access_key_secret": info["access_key_secret"],
                  "region_id": info["region_id"], "endpoint": info["endpoint"], "validate_certs": False}
    play = [{"name": "soak", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": sys.executable},
             "tasks": [{"name": "soak task", "alicloud_ops.cloud_assistant.cloud_assistant_command":
                        dict(connection, **task), "register": "soak"},
                       {"name": "result", "ansible.builtin.copy": {
                           "content": "{{ soak | to_json }}", "dest": str(path) + ".result", "mode": "0600"}}]}]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(play, handle)
    return path


def _run_playbook(playbook: Path, env: dict[str, str], cwd: Path) -> tuple[int, dict[str, Any], int]:
    """(rc, the registered result, the run's peak RSS in KiB)."""
    bindir = Path(sys.executable).parent
    exe = str(bindir / "ansible-playbook") if (bindir / "ansible-playbook").exists() else "ansible-playbook"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([exe, str(playbook)], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result: dict[str, Any] = {}
    written = Path(str(playbook) + ".result")
    if written.exists():
        result = json.loads(written.read_text())
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-2000:])
    return proc.returncode, result, max(peak, before)


def soak(minutes: float, instances: int, isolation: str) -> int:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp_name:
        tmp = Path(tmp_name)
        _link_collection(tmp, REPO)
        state_dir = tmp / "sandbox"
        server, info = start_sandbox(state_dir, 0, isolation)
        left_behind: list[str] = []
        try:
            ids = _ctl(state_dir, "instances", "add", "--count", str(instances), "--tag", f"{TAG}=1")
            env = _environment(tmp, info)
            agent_pid = int((state_dir / "agent.pid").read_text().strip())
            schedule = _playbook(tmp / "schedule.json", info, {
                "command_content": "echo tick", "instance_tags": {TAG: "1"}, "repeat_mode": "Period",
                "frequency": "rate(1m)", "timeout": 30, "name": "soak-tick"})
            rc, created, _ = _run_playbook(schedule, env, tmp)
            if rc != 0 or not created.get("invoke_id"):
                raise SystemExit("could not create the schedule")
            schedule_id = created["invoke_id"]
            schedule_started = time.time()
            rounds = int(minutes * 60 / ROUND_SECONDS)
            one_offs: list[tuple[str, list[str]]] = []
            failures: list[str] = []
            server_rss: list[int] = []
            agent_rss: list[int] = []
            controller_rss: list[int] = []
            rng = random.Random(20261130)
            faults_on = False
            for n in range(rounds):
                round_started = time.monotonic()
                if n % FAULT_PERIOD_ROUNDS == 0 and n:
                    faults_on = not faults_on
                    _ctl(state_dir, "faults", *(FAULTS_ON if faults_on else FAULTS_OFF))
                targets = rng.sample(ids, min(ONE_OFF_INSTANCES, len(ids)))
                playbook = _playbook(tmp / f"one-off-{n}.json", info, {
                    "command_content": f"echo one-off {n}", "instance_ids": targets, "timeout": 30,
                    "wait_timeout": 120})
                rc, result, peak = _run_playbook(playbook, env, tmp)
                if rc != 0 or not result.get("invoke_id"):
                    failures.append(f"round {n} (faults {'on' if faults_on else 'off'}): rc {rc}")
                else:
                    one_offs.append((result["invoke_id"], targets))
                controller_rss.append(peak)
                server_rss.append(_rss_kib(server.pid))
                agent_rss.append(_rss_kib(agent_pid))
                print(f"round {n + 1}/{rounds}: faults {'on ' if faults_on else 'off'} rc {rc} "
                      f"server {server_rss[-1] // 1024} MiB agent {agent_rss[-1] // 1024} MiB "
                      f"controller peak {peak // 1024} MiB", flush=True)
                time.sleep(max(0.0, ROUND_SECONDS - (time.monotonic() - round_started)))
            _ctl(state_dir, *["faults", *FAULTS_OFF])
            elapsed = time.time() - schedule_started
            stats = _ctl(state_dir, "stats")
            runs = _ctl(state_dir, "runs", "--tag", f"{TAG}=1")["runs"]
        finally:
            stop_sandbox(server)
            time.sleep(2)
            ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout
            left_behind = [line for line in ps.splitlines() if str(state_dir) in line]

    # process starts per instance (ctl stats): a schedule keeps one row per instance in `ctl runs`, however often
    # it ran, so its runs are counted from the executions
    per_schedule: dict[str, int] = stats["executions"].get(schedule_id, {})
    runs_seen = {(run["invoke_id"], run["instance_id"]) for run in runs}
    expected_ticks = int(elapsed // 60)
    tick_counts = sorted(per_schedule.get(i, 0) for i in ids)
    executions = stats["executions"]
    one_off_ok = all(executions.get(inv, {}).get(i) == 1 and (inv, i) in runs_seen
                     for inv, targets in one_offs for i in targets)

    def grew(samples: list[int]) -> float:
        base = samples[min(WARMUP_ROUNDS, len(samples) - 1)] or 1
        return max(samples[WARMUP_ROUNDS:] or samples) / base - 1

    print(f"\n{len(one_offs)} one-off runs, {len(failures)} failed; schedule {schedule_id}: {expected_ticks} minutes, "
          f"runs per instance {tick_counts[0]}-{tick_counts[-1]}; duplicate executions "
          f"{stats['duplicate_executions']}")
    print(f"memory growth after warm-up: server {grew(server_rss):+.0%}, agent host {grew(agent_rss):+.0%}, "
          f"controller peak {grew(controller_rss):+.0%}; processes left: {len(left_behind)}")
    for line in failures + left_behind:
        print("  " + line)
    return print_verdict({
        "every one-off playbook succeeded": not failures,
        "every one-off instance ran exactly once": one_off_ok,
        "the schedule ran once a minute on every instance (+-1)":
            bool(tick_counts) and tick_counts[0] >= expected_ticks - 1 and tick_counts[-1] <= expected_ticks + 1,
        "no duplicate execution": stats["duplicate_executions"] == 0,
        f"memory flat (under {MEMORY_GROWTH:.0%} growth)":
            max(grew(server_rss), grew(agent_rss), grew(controller_rss)) < MEMORY_GROWTH,
        "no process left behind": not left_behind,
    }, word="checks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--isolation", default="auto", choices=["auto", "namespaces", "process"])
    args = parser.parse_args(argv)
    os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
    return soak(args.minutes, args.instances, args.isolation)


if __name__ == "__main__":
    sys.exit(main())
