"""One 10-task playbook three ways: the cloud_assistant connection plugin, Ansible's ssh connection, local.

On one sandbox (namespaces isolation) with the largest instance count asked for, for each count (default 1 and
10: the first N instances) and trial, the same playbook runs as three separate `ansible-playbook` processes:
- cloud_assistant: `ansible_connection: alicloud_ops.cloud_assistant.cloud_assistant`, one inventory host per
  instance (`ansible_cloud_assistant_instance_id`); region, keys and endpoint from the ALIBABA_CLOUD_* variables
  `python -m sandbox env` prints, ALIBABA_CLOUD_VALIDATE_CERTS=false; the collection is a copy of the plugins/,
  meta/ and galaxy.yml of `--collection-root` taken at the start (its commit is printed, `+changes` when they
  differ from it);
- ssh: Ansible's `ssh` connection to one Debian sshd per instance, started by this benchmark INSIDE the instance
  (`nsenter -t <init PID> -m -u -p`, the PID the agent host records in DIR/instances/<id>/init.pid, as every
  command and file write of the sandbox enters it), so files land in the instance's root as the plugin's do;
  each sshd listens on 127.0.0.1 on its own port (instances share the host's network), key auth with a
  throwaway key, pipelining on, ControlPersist on (Ansible's default `-C -o ControlMaster=auto -o
  ControlPersist=60s`). The master connections are closed after every ssh run, so each run starts cold as a
  user's first run would; every sshd is stopped at the end (always, bounded);
- local: `ansible_connection: local`, each host working in its own directory on this machine.
The tasks (no fact gathering; one run directory per way and trial, so every copy/template/file/lineinfile
changes something): ping, setup, command (`mkdir -p` the run directory), copy 1 KB, template, stat, file
(directory), lineinfile, fetch, shell. Every run is checked: exit status 0, every task ok on every host, the
fetched file equal to the 1 KB payload, the shell task's output, and (ssh and cloud_assistant) the file in the
instance's overlay upper directory.

Measured, as a user would time it:
- whole playbook: wall time of the `ansible-playbook` process, from just before it starts to its exit;
- per task: a tiny callback (benchmarks/callback_plugins/task_clock.py) takes, per host, the time from
  `v2_runner_on_start` to the result; the table shows the median over hosts and trials;
- API calls per task (per host): the same callback reads the sandbox's `api_calls` table (what `python -m sandbox
  ctl stats` prints) at each task start and at the end of the run; a task's calls are the difference to the next
  task's start (the last task's: to the end of the run), divided by the host count; median over trials.
Rounds are interleaved (cloud_assistant, ssh, local, ...; even trials in the reverse order, since a way run second
finds the instances warmer) after one warm-up round that stays out of the medians
(its whole-playbook times and API calls are printed apart): it is the first run on fresh instances, where the
plugin fills its module cache on the instance, so the medians are those of a user's later runs.
Goals (issue 9): per task, cloud_assistant <= 1.3x ssh; a task whose module payload fits in one command (one
RunCommand per host and no SendFile, as the sandbox counted them) <= 3 API calls per host. Exit status 1 when a
goal is not met.

Run: `python -m benchmarks.connection_playbook [--instances 1,10] [--trials 3] [--collection-root DIR]
[--ways cloud_assistant,ssh,local] [--ecs-inventory] [--preload] [--json [PATH]]`. `--ecs-inventory`: the
cloud_assistant hosts come from the collection's `ecs` inventory plugin with `use_cloud_assistant_connection` (the
controller process then has the SDK loaded before Ansible forks the task workers) instead of host variables.
`--preload`: the cloud_assistant runs enable the collection's `preload` vars plugin (ANSIBLE_VARS_ENABLED), which
loads the connection plugin and the SDK in the controller process before Ansible forks the task workers.
Needs root (nsenter) and /usr/sbin/sshd (Debian:
`apt-get install -y openssh-server`). Traffic goes to 127.0.0.1 only; every process has
ALIBABA_CLOUD_ECS_METADATA_DISABLED=true; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.sandbox_fanout import instance_ids, make_client, start_sandbox, stop_sandbox
from benchmarks.task_timing import _counters, _environment
from benchmarks.verdict import print_verdict

REPO = Path(__file__).resolve().parent.parent
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
PLUGIN = "alicloud_ops.cloud_assistant.cloud_assistant"
WAYS = ("cloud_assistant", "ssh", "local")
TASKS = ("ping", "setup", "command", "copy 1 KB", "template", "stat", "file", "lineinfile", "fetch", "shell")
TARGET_RATIO = 1.3
TARGET_CALLS = 3
SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
PYTHON = "/usr/bin/python3"
SSHD_DIR = "/root/.bench-sshd"  # inside each instance
REMOTE_BASE = "/root/bench-connection"  # inside each instance
RUN_TIMEOUT = 900
MARKER = "CONNECTION_BENCH_RUN"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------------
# sshd inside the instances


def _init_pids(state_dir: Path, ids: list[str], timeout: float = 60.0) -> dict[str, int]:
    """Each instance's namespace init (host PID), from DIR/instances/<id>/init.pid, waiting for the agent host."""
    deadline = time.monotonic() + timeout
    found: dict[str, int] = {}
    while time.monotonic() < deadline:
        for iid in ids:
            path = state_dir / "instances" / iid / "init.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(path.read_text().split()[0])
                if Path(f"/proc/{pid}").exists():
                    found[iid] = pid
        if len(found) == len(ids):
            return found
        time.sleep(0.2)
    raise SystemExit(f"no namespace init for {sorted(set(ids) - set(found))} within {timeout:g} s "
                     "(is the sandbox in namespaces isolation?)")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


class SshdFleet:
    """One sshd per instance, inside the instance's mount/UTS/PID namespaces, on 127.0.0.1:<own port>."""

    def __init__(self, work: Path, state_dir: Path, ids: list[str]) -> None:
        from sandbox import isolation

        self.isolation = isolation
        self.tools = isolation.find_tools()
        self.work = work
        self.state_dir = state_dir
        self.ids = ids
        self.ports: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.client_key = work / "client_key"
        self.env = {"PATH": isolation.ENV_PATH, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}

    def _enter(self, init_pid: int) -> list[str]:
        return self.isolation.enter_prefix(self.tools, init_pid)

    def start(self) -> None:
        if not Path(SSHD).exists():
            raise SystemExit(f"{SSHD} is missing: install it first (Debian: apt-get install -y openssh-server)")
        self.work.mkdir(mode=0o700)
        for key in (self.client_key, self.work / "host_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "connection-bench", "-f", str(key)],
                           check=True, timeout=30, env=self.env)
        init_pids = _init_pids(self.state_dir, self.ids)
        ports = _free_ports(len(self.ids))
        files = {
            "host_key": ((self.work / "host_key").read_text(), "600"),
            "authorized_keys": ((self.work / "client_key.pub").read_text(), "600"),
        }
        for iid, port in zip(self.ids, ports, strict=True):
            config = (f"Port {port}\nListenAddress 127.0.0.1\nHostKey {SSHD_DIR}/host_key\n"
                      f"AuthorizedKeysFile {SSHD_DIR}/authorized_keys\nPidFile none\n"
                      "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                      "KbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\n"
                      f"MaxSessions 50\nMaxStartups 100\nLogLevel ERROR\nSubsystem sftp {SFTP_SERVER}\n")
            prefix = self._enter(init_pids[iid])
            subprocess.run([*prefix, "/bin/sh", "-c",
                            f"umask 077 && mkdir -p {SSHD_DIR} /run/sshd && chmod 755 /run/sshd"],
                           check=True, timeout=30, env=self.env)
            for name, (text, mode) in {**files, "sshd_config": (config, "600")}.items():
                subprocess.run([*prefix, "/bin/sh", "-c", 'umask 077 && cat > "$1" && chmod "$2" "$1"', "write",
                                f"{SSHD_DIR}/{name}", mode], input=text.encode(), check=True, timeout=30, env=self.env)
            log = open(self.work / f"sshd-{iid}.log", "wb")
            try:
                self.procs[iid] = subprocess.Popen([*prefix, SSHD, "-D", "-e", "-f", f"{SSHD_DIR}/sshd_config"],
                                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
                                                   start_new_session=True)
            finally:
                log.close()
            self.ports[iid] = port
        deadline = time.monotonic() + 30
        waiting = dict(self.ports)
        while waiting and time.monotonic() < deadline:
            for iid, port in list(waiting.items()):
                if self.procs[iid].poll() is not None:
                    raise SystemExit(f"sshd for {iid} exited: {(self.work / f'sshd-{iid}.log').read_text()[-2000:]}")
                if _banner(port):
                    del waiting[iid]
            time.sleep(0.1)
        if waiting:
            raise SystemExit(f"sshd did not answer within 30 s on {sorted(waiting.values())}")

    def stop(self) -> list[int]:
        """Kill every sshd tree (listener and per-connection children); returns the PIDs still alive after 10 s."""
        roots = [p.pid for p in self.procs.values()]
        killed = self.isolation.kill_process_trees(roots) if roots else set()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self.isolation.wait_gone(killed, 10):
            return []
        alive = {pid: self.isolation.read_stat(pid) for pid in killed}
        return sorted(pid for pid, info in alive.items() if info is not None and info.state not in ("Z", "X"))

    def close_clients(self, token: str) -> None:
        """End the ssh ControlPersist masters the last ssh run left (found by the marker in their environment)."""
        pids = self.isolation.pids_with_env(MARKER, token)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        if not self.isolation.wait_gone(pids, 10):
            self.isolation.kill_process_trees(pids)


# --------------------------------------------------------------------------------------------------------------------
# playbook, inventories, runs


def _write_play(play_dir: Path) -> tuple[Path, bytes]:
    play_dir.mkdir(parents=True)
    payload = (secrets.token_hex(511) + "\n\n").encode()  # 1,024 bytes
    (play_dir / "payload-1k.txt").write_bytes(payload)
    (play_dir / "bench.conf.j2").write_text("# written by the connection benchmark\nhost = {{ inventory_hostname }}\n"
                                            "run = {{ bench_run }}\n")
    tasks: list[dict[str, Any]] = [
        {"name": "ping", "ansible.builtin.ping": {}},
        {"name": "setup", "ansible.builtin.setup": {}},
        {"name": "command", "ansible.builtin.command": {"argv": ["mkdir", "-p", "{{ bench_dir }}"]}},
        {"name": "copy 1 KB", "ansible.builtin.copy": {"src": str(play_dir / "payload-1k.txt"),
                                                      "dest": "{{ bench_dir }}/payload.txt", "mode": "0644"}},
        {"name": "template", "ansible.builtin.template": {"src": str(play_dir / "bench.conf.j2"),
                                                         "dest": "{{ bench_dir }}/bench.conf", "mode": "0644"}},
        {"name": "stat", "ansible.builtin.stat": {"path": "{{ bench_dir }}/payload.txt"}},
        {"name": "file", "ansible.builtin.file": {"path": "{{ bench_dir }}/sub", "state": "directory",
                                                 "mode": "0755"}},
        {"name": "lineinfile", "ansible.builtin.lineinfile": {"path": "{{ bench_dir }}/bench.conf",
                                                             "line": "added = yes"}},
        {"name": "fetch", "ansible.builtin.fetch": {"src": "{{ bench_dir }}/payload.txt", "dest": "{{ fetch_dir }}/"}},
        {"name": "shell", "ansible.builtin.shell": "set -e; wc -c < {{ bench_dir }}/payload.txt"},
    ]
    assert tuple(t["name"] for t in tasks) == TASKS
    play = {"name": "Connection benchmark", "hosts": "all", "gather_facts": False,
            "vars": {"bench_dir": "{{ bench_base }}/run-{{ bench_run }}"}, "tasks": tasks}
    path = play_dir / "playbook.yml"
    path.write_text(json.dumps([play], indent=1) + "\n")
    return path, payload


def _host_vars(way: str, iid: str, tmp: Path, fleet: SshdFleet | None) -> dict[str, Any]:
    base = {"ansible_python_interpreter": PYTHON}
    if way == "local":
        return {**base, "ansible_connection": "local", "bench_base": str(tmp / "local" / iid)}
    if way == "ssh":
        assert fleet is not None
        return {**base, "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": fleet.ports[iid],
                "ansible_user": "root", "ansible_ssh_private_key_file": str(fleet.client_key),
                "bench_base": REMOTE_BASE}
    # ALIBABA_CLOUD_VALIDATE_CERTS=false is in the environment too; the sandbox endpoint is plain HTTP anyway
    return {**base, "ansible_connection": PLUGIN, "ansible_cloud_assistant_instance_id": iid,
            "ansible_alicloud_validate_certs": False, "bench_base": REMOTE_BASE}


def _inventory(path: Path, way: str, ids: list[str], tmp: Path, fleet: SshdFleet | None,
               ecs_region: str | None = None) -> Path:
    if way == "cloud_assistant" and ecs_region:
        # The collection's inventory plugin with use_cloud_assistant_connection (how users are expected to reach a
        # fleet): it lists the instances in the controller process, which therefore has the SDK loaded before
        # Ansible forks the task workers.
        ecs = path.with_name("fleet.ecs.yml")
        ecs.write_text(json.dumps({
            "plugin": "alicloud_ops.cloud_assistant.ecs", "regions": [ecs_region], "validate_certs": False,
            "filters": {"instance_ids": ids}, "use_cloud_assistant_connection": True,
            "compose": {"ansible_python_interpreter": repr(PYTHON), "bench_base": repr(REMOTE_BASE),
                        "ansible_alicloud_validate_certs": "false"}}, indent=1) + "\n")
        return ecs
    hosts = {iid: _host_vars(way, iid, tmp, fleet) for iid in ids}
    path.write_text(json.dumps({"all": {"hosts": hosts}}, indent=1) + "\n")
    return path


def _ansible_cfg(path: Path, tmp: Path, forks: int) -> None:
    path.write_text(
        "[defaults]\n"
        f"forks = {forks}\n"
        "host_key_checking = False\n"
        "gathering = explicit\n"
        "retry_files_enabled = False\n"
        f"callback_plugins = {CALLBACKS}\n"
        "callbacks_enabled = task_clock\n"
        f"interpreter_python = {PYTHON}\n"
        "[connection]\n"
        "pipelining = True\n"
        "[ssh_connection]\n"
        f"control_path_dir = {tmp / 'cp'}\n"
        "ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null\n")


def _task_figures(clock: dict[str, Any], hosts: int) -> dict[str, dict[str, Any]]:
    """Per task: per-host seconds, API calls per host (total / hosts) and calls by action."""
    tasks = [t for t in clock["tasks"] if t["name"] in TASKS]
    if [t["name"] for t in tasks] != list(TASKS):
        raise SystemExit(f"tasks seen {[t['name'] for t in clock['tasks']]}, expected {list(TASKS)}")
    out: dict[str, dict[str, Any]] = {}
    all_tasks = clock["tasks"]
    for task in tasks:
        nxt = all_tasks.index(task) + 1
        after = all_tasks[nxt]["calls"] if nxt < len(all_tasks) else clock["calls_end"]
        by_action = {a: n - task["calls"].get(a, 0) for a, n in after.items() if n != task["calls"].get(a, 0)}
        bad = {h: v for h, v in task["hosts"].items() if v.get("status") != "ok"}
        if len(task["hosts"]) != hosts or bad:
            raise SystemExit(f"task {task['name']}: {len(task['hosts'])} of {hosts} hosts, not ok: {bad}")
        out[task["name"]] = {
            "host_s": [v["end"] - v["start"] for v in task["hosts"].values()],
            "calls_per_host": sum(by_action.values()) / hosts,
            "calls_by_action": by_action,
            "stdout": {h: v.get("stdout") for h, v in task["hosts"].items()},
        }
    return out


def _snapshot_collection(tmp: Path, root: Path) -> None:
    """A copy of the collection's plugins/, meta/ and galaxy.yml at ANSIBLE_COLLECTIONS_PATH (tmp/collections), so
    that edits made in the checkout while the benchmark runs do not mix into its figures."""
    target = tmp / "collections" / "ansible_collections" / "alicloud_ops" / "cloud_assistant"
    target.mkdir(parents=True)
    for name in ("plugins", "meta"):
        if (root / name).is_dir():
            shutil.copytree(root / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if (root / "galaxy.yml").exists():
        shutil.copy2(root / "galaxy.yml", target / "galaxy.yml")


class Bench:
    def __init__(self, tmp: Path, info: dict[str, Any], state_dir: Path, ids: list[str], fleet: SshdFleet | None,
                 collection_root: Path, ecs_inventory: bool = False, preload: bool = False) -> None:
        self.tmp = tmp
        self.preload = preload
        self.ecs_region: str | None = info["region_id"] if ecs_inventory else None
        self.state_dir = state_dir
        self.ids = ids
        self.fleet = fleet
        _snapshot_collection(tmp, collection_root)
        self.env = _environment(tmp, info)
        _ansible_cfg(Path(self.env["ANSIBLE_CONFIG"]), tmp, len(ids))
        self.env.update({
            "ALIBABA_CLOUD_VALIDATE_CERTS": "false",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp / "cp"),
            "TASK_CLOCK_SANDBOX_DB": str(state_dir / "sandbox.db"),
        })
        (tmp / "cp").mkdir(mode=0o700)
        self.playbook, self.payload = _write_play(tmp / "play")
        bindir = Path(sys.executable).parent
        self.ansible_playbook = (str(bindir / "ansible-playbook") if (bindir / "ansible-playbook").exists()
                                 else "ansible-playbook")

    def run(self, way: str, count: int, label: str) -> dict[str, Any]:
        ids = self.ids[:count]
        run_dir = self.tmp / "runs" / f"{way}-{count}-{label}"
        run_dir.mkdir(parents=True)
        if way == "local":
            for iid in ids:
                (self.tmp / "local" / iid).mkdir(parents=True, exist_ok=True)
        inventory = _inventory(run_dir / "inventory.json", way, ids, self.tmp, self.fleet, self.ecs_region)
        token = secrets.token_hex(8)
        env = {**self.env, "TASK_CLOCK_OUT": str(run_dir / "clock.json"), MARKER: token}
        if way == "cloud_assistant" and self.preload:
            env["ANSIBLE_VARS_ENABLED"] = "host_group_vars,alicloud_ops.cloud_assistant.preload"
        run = f"{way}-{count}-{label}"   # the way too: a way run after another must not find its files there
        cmd = [self.ansible_playbook, "-i", str(inventory), str(self.playbook), "-e", f"bench_run={run}",
               "-e", f"fetch_dir={run_dir / 'fetched'}"]
        calls0 = _counters(self.state_dir)[0]
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, env=env, cwd=self.tmp, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                                  check=False)
        finally:
            wall = time.monotonic() - started
            if way == "ssh" and self.fleet is not None:
                self.fleet.close_clients(token)
        calls1 = _counters(self.state_dir)[0]
        (run_dir / "output.txt").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not (run_dir / "clock.json").exists():
            raise SystemExit(f"{way} on {count} failed (rc={proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
        tasks = _task_figures(json.loads((run_dir / "clock.json").read_text()), count)
        self._check(way, ids, run, run_dir, tasks)
        return {"way": way, "instances": count, "trial": label, "wall_s": round(wall, 3),
                "api_calls": sum(n - calls0.get(a, 0) for a, n in calls1.items()), "tasks": tasks}

    def _check(self, way: str, ids: list[str], run: str, run_dir: Path, tasks: dict[str, dict[str, Any]]) -> None:
        for iid in ids:
            base = Path(REMOTE_BASE) if way != "local" else self.tmp / "local" / iid
            remote = base / f"run-{run}" / "payload.txt"
            fetched = run_dir / "fetched" / iid / str(remote).lstrip("/")
            if not fetched.exists() or fetched.read_bytes() != self.payload:
                raise SystemExit(f"{way}: the fetched file {fetched} is missing or differs from the payload")
            if (tasks["shell"]["stdout"].get(iid) or "").strip() != str(len(self.payload)):
                raise SystemExit(f"{way}: the shell task printed {tasks['shell']['stdout'].get(iid)!r} on {iid}")
            if way != "local":
                upper = self.state_dir / "instances" / iid / "upper" / str(remote).lstrip("/")
                if not upper.exists() or upper.read_bytes() != self.payload:
                    raise SystemExit(f"{way}: {remote} is not in {iid}'s root ({upper})")
                if (Path(REMOTE_BASE) / f"run-{run}").exists():
                    raise SystemExit(f"{way}: {REMOTE_BASE}/run-{run} reached this machine's own root")


# --------------------------------------------------------------------------------------------------------------------
# measure and report


def measure(counts: list[int], trials: int, ways: list[str], collection_root: Path,
            warmup: bool = True, ecs_inventory: bool = False, preload: bool = False) -> dict[str, Any]:
    os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
    runs: list[dict[str, Any]] = []
    warmups: list[dict[str, Any]] = []
    leftovers: list[int] = []
    revision = ""
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="conn-bench-") as tmp_name:
        tmp = Path(tmp_name)
        state_dir = tmp / "state"
        proc, info = start_sandbox(state_dir, max(counts), "namespaces")
        try:
            if info.get("isolation") != "namespaces":
                raise SystemExit(f"the sandbox runs in {info.get('isolation')} isolation, not namespaces")
            ids = instance_ids(make_client(info), info["region_id"], max(counts))
            fleet = SshdFleet(tmp / "ssh", state_dir, ids) if "ssh" in ways else None
            try:
                if fleet is not None:
                    fleet.start()
                    _log(f"sshd on ports {sorted(fleet.ports.values())}")
                revision = _revision(collection_root)
                bench = Bench(tmp, info, state_dir, ids, fleet, collection_root, ecs_inventory, preload)
                rounds = (["warm-up"] if warmup else []) + [str(n) for n in range(1, trials + 1)]
                for label in rounds:
                    # even trials in the reverse order: the way run second finds the instances warmer (with 3
                    # trials, the first way listed runs first twice)
                    order = ways[::-1] if label != "warm-up" and int(label) % 2 == 0 else ways
                    for count in counts:
                        for way in order:
                            row = bench.run(way, count, label)
                            _log(json.dumps({k: row[k] for k in ("way", "instances", "trial", "wall_s", "api_calls")}))
                            (warmups if label == "warm-up" else runs).append(row)
            finally:
                if fleet is not None:
                    leftovers = fleet.stop()
        finally:
            stop_sandbox(proc)
    result = summarize(runs, counts, ways, trials, leftovers)
    result["collection"] = {"root": str(collection_root), "revision": revision}
    result["cloud_assistant_inventory"] = "ecs inventory plugin" if ecs_inventory else "static (host vars)"
    result["preload"] = preload
    result["load_average"] = {"start": [round(x, 1) for x in load_start],
                              "end": [round(x, 1) for x in os.getloadavg()], "cpus": os.cpu_count()}
    result["runs"] = runs
    result["warmup"] = [{k: r[k] for k in ("way", "instances", "wall_s", "api_calls")} for r in warmups]
    return result


def _median_by_action(trials: list[dict[str, int]], hosts: int) -> dict[str, float]:
    """Per action, the median over trials of its calls per host (0 in a trial that made none)."""
    actions = sorted({a for t in trials for a in t})
    return {a: round(_median([t.get(a, 0) / hosts for t in trials]), 2) for a in actions}


def _revision(root: Path) -> str:
    """The collection checkout's commit (and `+changes` when its tree differs from it), for the report."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--", "plugins", "meta") else "")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(runs: list[dict[str, Any]], counts: list[int], ways: list[str], trials: int,
              leftovers: list[int]) -> dict[str, Any]:
    result: dict[str, Any] = {"trials": trials, "ways": ways, "sshd_left_running": leftovers, "counts": {}}
    goals: dict[str, bool] = {}
    for count in counts:
        mine = [r for r in runs if r["instances"] == count]
        per_way = {way: [r for r in mine if r["way"] == way] for way in ways}
        tasks: dict[str, Any] = {}
        slow: list[str] = []
        one_command: list[str] = []
        chatty: list[str] = []
        for name in TASKS:
            entry: dict[str, Any] = {}
            for way, rows in per_way.items():
                entry[way] = {
                    "median_s": round(_median([s for r in rows for s in r["tasks"][name]["host_s"]]), 3),
                    "calls_per_host": _median([r["tasks"][name]["calls_per_host"] for r in rows]),
                    "calls_by_action": _median_by_action([r["tasks"][name]["calls_by_action"] for r in rows], count),
                }
            if "cloud_assistant" in entry and "ssh" in entry:
                ratio = entry["cloud_assistant"]["median_s"] / entry["ssh"]["median_s"]
                entry["ratio_ca_ssh"] = round(ratio, 2)
                if ratio > TARGET_RATIO:
                    slow.append(f"{name} {ratio:.2f}x")
            if "cloud_assistant" in entry:
                # "fits in one command": the sandbox saw one RunCommand per host and no SendFile in every trial
                entry["one_command"] = bool(per_way["cloud_assistant"]) and all(
                    r["tasks"][name]["calls_by_action"].get("RunCommand", 0) == count
                    and not r["tasks"][name]["calls_by_action"].get("SendFile")
                    and not r["tasks"][name]["calls_by_action"].get("InvokeCommand")
                    for r in per_way["cloud_assistant"])
                if entry["one_command"]:
                    one_command.append(name)
                    calls = entry["cloud_assistant"]["calls_per_host"]
                    if calls > TARGET_CALLS:
                        chatty.append(f"{name} {calls:g}")
            tasks[name] = entry
        label = f"{count} instance{'s' if count != 1 else ''}"
        if "cloud_assistant" in ways and "ssh" in ways:
            goals[f"{label}: cloud_assistant <= {TARGET_RATIO}x ssh on every task"
                  + (f" (over: {', '.join(slow)})" if slow else "")] = not slow
        if "cloud_assistant" in ways:
            goals[f"{label}: <= {TARGET_CALLS} API calls per host on every one-command task "
                  f"({', '.join(one_command) or 'none'})" + (f" (over: {', '.join(chatty)})" if chatty else "")
                  ] = not chatty
        result["counts"][str(count)] = {
            "tasks": tasks,
            "playbook": {way: {"median_s": round(_median([r["wall_s"] for r in rows]), 3),
                               "trials_s": [r["wall_s"] for r in rows],
                               "api_calls": max((r["api_calls"] for r in rows), default=0)}
                         for way, rows in per_way.items()},
        }
    goals["every sshd stopped"] = not leftovers
    result["goals"] = goals
    return result


def report(result: dict[str, Any]) -> int:
    ways = result["ways"]
    print(f"cloud_assistant hosts from: {result['cloud_assistant_inventory']}; preload vars plugin: "
          f"{'on' if result.get('preload') else 'off'}")
    print(f"collection: {result['collection']['root']} at {result['collection']['revision']}; load average "
          f"(1, 5, 15 min) at start {result['load_average']['start']}, at end {result['load_average']['end']}, "
          f"{result['load_average']['cpus']} CPUs")
    for count, data in result["counts"].items():
        print()
        print(f"### {count} instance{'s' if count != '1' else ''} (per task: median over hosts and "
              f"{result['trials']} trials, seconds)")
        print()
        head = ["task", *ways]
        if "cloud_assistant" in ways and "ssh" in ways:
            head.append("ratio ca/ssh")
        if "cloud_assistant" in ways:
            head.append("API calls per host")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for name, entry in data["tasks"].items():
            cells = [name, *(f"{entry[way]['median_s']:.2f}" for way in ways)]
            if "ratio_ca_ssh" in entry:
                cells.append(f"{entry['ratio_ca_ssh']:.2f}x")
            if "cloud_assistant" in ways:
                by_action = entry["cloud_assistant"]["calls_by_action"]
                detail = ", ".join(f"{a} {n:g}" for a, n in sorted(by_action.items()))
                cells.append(f"{entry['cloud_assistant']['calls_per_host']:g} ({detail})" if detail else "0")
            print("| " + " | ".join(cells) + " |")
        playbook = data["playbook"]
        cells = ["**whole playbook** (process wall)", *(f"{playbook[way]['median_s']:.2f}" for way in ways)]
        if "cloud_assistant" in ways and "ssh" in ways:
            cells.append(f"{playbook['cloud_assistant']['median_s'] / playbook['ssh']['median_s']:.2f}x")
        if "cloud_assistant" in ways:
            cells.append(f"{playbook['cloud_assistant']['api_calls'] / int(count):g}")
        print("| " + " | ".join(cells) + " |")
        print()
        print("whole playbook, each trial (s): " + "; ".join(
            f"{way} " + ", ".join(f"{t:.2f}" for t in playbook[way]["trials_s"]) for way in ways))
    if result["warmup"]:
        print()
        print("warm-up round (first runs on fresh instances, not in the medians): " + "; ".join(
            f"{w['way']} on {w['instances']}: {w['wall_s']:.2f} s, {w['api_calls']} API calls"
            for w in result["warmup"]))
    return print_verdict(result["goals"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", default="1,10", help="comma-separated instance counts")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--no-warmup", action="store_true", help="skip the discarded first round")
    parser.add_argument("--ways", default=",".join(WAYS), help="comma-separated subset of " + ",".join(WAYS))
    parser.add_argument("--collection-root", type=Path, default=REPO,
                        help="the collection checkout whose connection plugin is timed (default: this one)")
    parser.add_argument("--ecs-inventory", action="store_true",
                        help="reach the cloud_assistant hosts through the collection's ecs inventory plugin "
                             "(use_cloud_assistant_connection) instead of host variables")
    parser.add_argument("--preload", action="store_true",
                        help="enable the collection's preload vars plugin for the cloud_assistant runs")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="print the result as JSON instead of Markdown; with PATH, write it there as well")
    args = parser.parse_args(argv)
    counts = sorted({int(c) for c in args.instances.split(",") if c.strip()})
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    if not counts or min(counts) < 1 or args.trials < 1 or not ways or set(ways) - set(WAYS):
        parser.error("--instances needs positive counts, --trials >= 1, --ways a subset of " + ",".join(WAYS))
    plugin = args.collection_root / "plugins" / "connection" / "cloud_assistant.py"
    if "cloud_assistant" in ways and not plugin.exists():
        parser.error(f"{plugin} does not exist: pass --collection-root, or --ways ssh,local")
    if "ssh" in ways and os.geteuid() != 0:
        parser.error("the ssh row starts sshd inside the instances with nsenter: run as root, or --ways without ssh")
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop every sshd and the sandbox
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    result = measure(counts, args.trials, ways, args.collection_root, not args.no_warmup, args.ecs_inventory,
                     args.preload)
    if args.json == "-":
        print(json.dumps(result, indent=2))
        return 0 if all(result["goals"].values()) else 1
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return report(result)


if __name__ == "__main__":
    sys.exit(main())
